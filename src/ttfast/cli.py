"""The ``ttfast`` command: ``--version``, ``doctor``, ``sim`` (local dxLink + REST servers),
``backfill`` (past candles from dxLink into InfluxDB)."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import platform
import sys
from collections.abc import Sequence

from ttfast._version import __version__

_DEPS = ("numpy", "msgspec", "picows", "uvloop", "redis", "hiredis", "aiohttp")


def doctor() -> int:
    """Print versions, whether the compiled core loads, and optional accelerators. 0 = healthy."""
    ok = True
    print(f"ttfast {__version__}")
    print(f"python {platform.python_version()} ({platform.machine()}, {platform.system()})")
    for dep in _DEPS:
        try:
            ver = importlib.metadata.version(dep)
        except importlib.metadata.PackageNotFoundError:
            ver = "MISSING"
            if dep not in ("uvloop", "hiredis"):
                ok = False
        print(f"  {dep:<10} {ver}")
    try:
        core = importlib.import_module("ttfast._core")
        mods = core.compiled_modules()
        print(f"compiled core: loaded ({len(mods)} modules)")
        for name, path in mods.items():
            print(f"  {name:<28} {path}")
        if not mods:
            ok = False
    except ImportError as exc:
        print(f"compiled core: NOT LOADED ({exc})")
        ok = False
    try:
        importlib.import_module("uvloop")
        print("uvloop: present (used for the event loop)")
    except ImportError:
        print("uvloop: absent (asyncio default loop)")
    print("status:", "ok" if ok else "PROBLEMS")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ttfast", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ttfast {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("doctor", help="report versions, compiled core and uvloop")
    from ttfast.sim.cli import add_sim_arguments, run_sim

    sim = sub.add_parser("sim", help="run the local dxLink and REST servers until interrupted")
    add_sim_arguments(sim)
    import ttfast.backfill as backfill

    bf = sub.add_parser(
        "backfill",
        help="write past candles from dxLink into InfluxDB (resumable, idempotent)",
        description=backfill.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_backfill_arguments(bf)
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor()
    if args.command == "sim":
        return run_sim(args.host, args.dxlink_port, args.rest_port, args.seed)
    if args.command == "backfill":
        return backfill.run_backfill(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
