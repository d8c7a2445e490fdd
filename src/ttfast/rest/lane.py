"""The order lane: one kept-alive HTTP/1.1 connection reserved for order mutations.

Why: an order's latency is the bot's latency. Through aiohttp's request machinery the POST of
an order cost ~100 µs of the ~190 µs from a candle frame to the order's bytes on the socket
(bench/bench_bot.py, docs/account.md); here the request is one ``transport.write`` of a head
built from a few cached parts and the body, in the caller's task.

What it keeps of the client's order rules (`TastytradeClient._mutate` decides, this only
carries): one attempt, never resent, never redirected; `LaneNotSent` only when the request
cannot have reached the server (the connection could not be opened before anything was
written), everything after the first byte written that is not a complete response raises
`LaneLost` (outcome unknown). A connection idle longer than ``idle_reconnect`` (below servers'
usual keep-alive) or closed by the server is replaced *before* the request is written, so a
request is never written on a connection the server has given up, except in the instant it
closes it. One request at a time: while one is in flight (`busy`), the client sends others
through aiohttp's pool. No proxies (the client's aiohttp session does not use any either).

May touch: the API host of the session's base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from typing import cast
from urllib.parse import urlsplit

__all__ = ["LaneLost", "LaneNotSent", "OrderLane"]

MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class LaneNotSent(Exception):
    """Nothing was written: the connection could not be opened (the request never left)."""


class LaneLost(Exception):
    """The request was written (or may have been) but no complete response came: `status` is
    the response's status if its head arrived, else 0."""

    def __init__(self, cause: str, status: int = 0) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status


class _Response:
    __slots__ = ("body", "chunked", "close", "headers", "length", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.length: int | None = None
        self.chunked = False
        self.close = False
        self.body = bytearray()


class _LaneProtocol(asyncio.Protocol):
    """One connection; parses one response (status line, headers, a Content-Length, chunked or
    until-close body) for the request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[_Response] | None = None
        self.resp: _Response | None = None
        self.closed = False
        self.lost: str = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > MAX_RESPONSE_BYTES:
            self._fail("response larger than 8 MiB")
            return
        if self.waiter is None:  # the server spoke unasked: this connection is not ours
            self._fail("unexpected data")
            return
        try:
            self._parse()
        except ValueError as exc:
            self._fail(f"malformed HTTP response: {exc}")

    def eof_received(self) -> bool | None:
        r = self.resp
        if r is not None and r.length is None and not r.chunked and r.status:
            self._finish(r)  # a body delimited by the end of the connection
        self._fail("ServerDisconnectedError")  # (aiohttp's name for it: one vocabulary)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(
            f"ServerDisconnectedError ({type(exc).__name__})" if exc else "ServerDisconnectedError"
        )

    def _fail(self, why: str) -> None:
        self.closed = True
        self.lost = self.lost or why
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_exception(LaneLost(why, self.resp.status if self.resp else 0))
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, r: _Response) -> None:
        w, self.waiter = self.waiter, None
        self.resp = None
        if r.close:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        if w is not None and not w.done():
            w.set_result(r)

    def _parse(self) -> None:
        while True:
            r = self.resp
            if r is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > 64 * 1024:
                        raise ValueError("response head larger than 64 KiB")
                    return
                head = bytes(self.buf[:end]).decode("latin-1")
                del self.buf[: end + 4]
                line, _, rest = head.partition("\r\n")
                parts = line.split(" ", 2)
                if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                    raise ValueError(f"status line {line[:60]!r}")
                status = int(parts[1])
                if 100 <= status < 200:
                    continue  # an interim response: the real one follows
                r = self.resp = _Response()
                r.status = status
                r.close = parts[0] == "HTTP/1.0"
                for h in rest.split("\r\n") if rest else ():
                    k, sep, v = h.partition(":")
                    if not sep:
                        raise ValueError(f"header line {h[:60]!r}")
                    k, v = k.strip(), v.strip()
                    r.headers.append((k, v))
                    lk = k.lower()
                    if lk == "content-length":
                        r.length = int(v)
                    elif lk == "transfer-encoding" and "chunked" in v.lower():
                        r.chunked = True
                    elif lk == "connection":
                        r.close = "close" in v.lower()
                if status in (204, 304):
                    r.length = 0
            if r.chunked:
                while True:
                    eol = self.buf.find(b"\r\n")
                    if eol < 0:
                        return
                    size = int(bytes(self.buf[:eol]).split(b";", 1)[0], 16)
                    if size == 0:
                        end = self.buf.find(b"\r\n\r\n", eol)  # (trailers, if any)
                        if end < 0 and self.buf[eol + 2 : eol + 4] != b"\r\n":
                            return
                        cut = end + 4 if end >= 0 else eol + 4
                        del self.buf[:cut]
                        self._finish(r)
                        return
                    if len(self.buf) < eol + 2 + size + 2:
                        return
                    r.body += self.buf[eol + 2 : eol + 2 + size]
                    del self.buf[: eol + 2 + size + 2]
            if r.length is None:
                if not r.close:
                    raise ValueError("a keep-alive response without a length")
                r.body += self.buf
                self.buf.clear()
                return  # until the end of the connection (eof_received)
            if len(self.buf) < r.length:
                return
            r.body += self.buf[: r.length]
            del self.buf[: r.length]
            self._finish(r)
            return


class OrderLane:
    """See the module docstring. `request` sends one mutation; `warm` opens the connection
    ahead of the first order; `close` ends it."""

    def __init__(
        self,
        base_url: str,
        user_agent: str,
        *,
        idle_reconnect: float = 10.0,
        connect_timeout: float = 5.0,
        keep_warm: float = 600.0,
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"the order lane speaks http(s) only: {base_url!r}")
        self.tls = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        self.prefix = u.path.rstrip("/")
        default = 443 if self.tls else 80
        host_header = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host and not host_header.startswith("["):  # an IPv6 literal
            host_header = f"[{self.host}]" + ("" if self.port == default else f":{self.port}")
        self._fixed = (
            f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\nAccept: application/json\r\n"
        ).encode()
        self.idle_reconnect = idle_reconnect
        self.connect_timeout = connect_timeout
        #: for this long after `warm` or the last order, a connection about to turn stale is
        #: replaced in the background, so that an order never waits for a connect (a bot's
        #: orders come seconds or minutes apart, and a TLS connect costs round trips)
        self.keep_warm = keep_warm
        self._warm_until = 0.0
        self._refresh: asyncio.TimerHandle | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self.busy = False
        self.requests = 0
        self.connects = 0
        self._proto: _LaneProtocol | None = None
        self._last = 0.0
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None

    def _fresh(self) -> bool:
        p = self._proto
        return (
            p is not None and not p.closed and time.monotonic() - self._last < self.idle_reconnect
        )

    async def warm(self) -> None:
        """Open the connection now (a fresh one if the current one is stale) and keep one
        fresh for `keep_warm` seconds: the next order does not pay the connect. Raises
        `LaneNotSent` if it cannot connect."""
        self._warm_until = time.monotonic() + self.keep_warm
        if not self._fresh():
            await self._connect()

    def _arm(self) -> None:
        """Replace the connection in the background shortly before it turns stale."""
        if self._refresh is not None:
            self._refresh.cancel()
        loop = asyncio.get_running_loop()
        self._refresh = loop.call_later(self.idle_reconnect * 0.8, self._on_refresh)

    def _on_refresh(self) -> None:
        self._refresh = None
        if self.busy or time.monotonic() >= self._warm_until or self._proto is None:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return

        async def refresh() -> None:
            if self.busy:
                return
            self.busy = True  # (an order arriving now goes through the pool meanwhile)
            try:
                await self._connect()
            except LaneNotSent:
                pass  # the next order connects itself (and says "not sent" if it cannot)
            finally:
                self.busy = False

        self._refreshing = asyncio.get_running_loop().create_task(refresh())

    async def _connect(self) -> None:
        self._drop()
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await asyncio.wait_for(
                loop.create_connection(
                    _LaneProtocol,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self.tls else None,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise LaneNotSent(f"cannot connect: {type(exc).__name__}") from None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        proto.transport = transport  # (uvloop may call connection_made after the return)
        self._proto = proto
        self._last = time.monotonic()
        self.connects += 1
        if self._last < self._warm_until:
            self._arm()

    def close(self) -> None:
        """End the connection and stop keeping one warm."""
        self._warm_until = 0.0
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        t, self._refreshing = self._refreshing, None
        if t is not None and not t.done() and t is not asyncio.current_task():
            t.cancel()
        self._drop()

    def _drop(self) -> None:
        p, self._proto = self._proto, None
        if p is not None and p.transport is not None:
            p.closed = True
            p.transport.close()

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout: float,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request, once: (status, headers, body). `LaneNotSent`: nothing was written;
        `LaneLost`: written (or possibly written), no complete response (timeout included)."""
        if self.busy:
            raise LaneNotSent("busy")
        self.busy = True
        self._warm_until = time.monotonic() + self.keep_warm
        try:
            if not self._fresh():
                await self._connect()
            p = self._proto
            assert p is not None and p.transport is not None
            parts = [f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode(), self._fixed]
            for k, v in headers.items():
                parts.append(f"{k}: {v}\r\n".encode())
            if body is not None:
                parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
                parts.append(body)
            else:
                parts.append(b"\r\n")
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[_Response] = loop.create_future()
            p.waiter = waiter
            p.buf.clear()
            p.transport.write(b"".join(parts))
            self.requests += 1
            timer = loop.call_later(timeout, _expire, p, waiter)
            try:
                r = await waiter
            finally:
                timer.cancel()
            self._last = time.monotonic()
            self._arm()
            return r.status, r.headers, bytes(r.body)
        except LaneLost:
            self._drop()
            raise
        except asyncio.CancelledError:
            self._drop()  # its response can no longer be matched
            raise
        finally:
            self.busy = False


def _expire(p: _LaneProtocol, waiter: asyncio.Future[_Response]) -> None:
    if not waiter.done():
        waiter.set_exception(LaneLost("TimeoutError", p.resp.status if p.resp is not None else 0))
        p.waiter = None
        p.closed = True
        if p.transport is not None:
            p.transport.abort()
