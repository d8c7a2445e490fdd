"""``ttfast sim``: run the local dxLink and REST servers until interrupted.

The REST server's ``/api-quote-tokens`` hands out the local dxLink URL, so any client (ours, the
tastytrade SDK, ...) pointed at the REST base URL finds the local market data by itself. Both
accept any non-empty credentials. Also runnable as ``python -m ttfast.sim.cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence

from ttfast._run import run
from ttfast.sim.dxlink_server import DxLinkServer

__all__ = ["add_sim_arguments", "main", "run_sim", "serve_sim"]


async def serve_sim(
    host: str = "127.0.0.1",
    dxlink_port: int = 8081,
    rest_port: int = 8080,
    seed: int = 0,
    *,
    ready: Callable[[str, str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever). ``ready(dxlink_url, rest_url)`` once listening."""
    from ttfast.sim.rest import RestSimServer

    dx = DxLinkServer(host, dxlink_port, seed=seed)
    dx_url = await dx.start()
    rest = RestSimServer(dx_url, market=dx)  # one market: REST fills at the streamed prices
    try:
        rest_url = await rest.start(host, rest_port)
        if ready is not None:
            ready(dx_url, rest_url)
        await (stop or asyncio.Event()).wait()
    finally:
        await rest.stop()
        await dx.stop()


def _print_ready(dx_url: str, rest_url: str) -> None:
    print(f"ttfast sim: dxLink  {dx_url}", flush=True)
    print(f"ttfast sim: REST    {rest_url}   (/api-quote-tokens -> {dx_url})", flush=True)
    stream = "ws" + rest_url[len("http") :] + "/account-streamer"
    print(f"ttfast sim: account streamer {stream}", flush=True)
    print("ttfast sim: any non-empty credentials are accepted; Ctrl-C to stop", flush=True)


def run_sim(
    host: str = "127.0.0.1", dxlink_port: int = 8081, rest_port: int = 8080, seed: int = 0
) -> int:
    """Blocking runner behind ``ttfast sim``; returns the exit code (0 after Ctrl-C)."""
    with contextlib.suppress(KeyboardInterrupt):
        run(serve_sim(host, dxlink_port, rest_port, seed, ready=_print_ready))
    return 0


def add_sim_arguments(p: argparse.ArgumentParser) -> None:
    """The ``ttfast sim`` options (shared with ``ttfast.cli``)."""
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--dxlink-port", type=int, default=8081, help="dxLink port (0 = any free)")
    p.add_argument("--rest-port", type=int, default=8080, help="REST port (0 = any free)")
    p.add_argument("--seed", type=int, default=0, help="market simulator seed")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ttfast sim", description=__doc__)
    add_sim_arguments(p)
    a = p.parse_args(argv)
    return run_sim(a.host, a.dxlink_port, a.rest_port, a.seed)


if __name__ == "__main__":
    sys.exit(main())
