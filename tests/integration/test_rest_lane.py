"""The order lane (ttfast.rest.lane): the kept-alive connection order mutations use.

Against the REST sim (the same requests as over aiohttp), and against a small loopback HTTP
server for what the sim does not do (chunked bodies, ``Connection: close``, a server that
closes idle connections). The order rules are the client's and are tested in
test_rest_order_outcome.py / test_rest_server.py, which run over the lane by default."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.integration.test_rest_server import ACCT, buy_aapl, make_client

from ttfast.errors import ApiConnectionError, OrderOutcomeUnknown
from ttfast.rest import OAuthSession, TastytradeClient
from ttfast.rest.lane import LaneLost, OrderLane, _LaneProtocol
from ttfast.sim.rest import RestSimServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def sim() -> AsyncIterator[RestSimServer]:
    from tests.integration.test_rest_server import DXLINK, MARKET, REFRESH, SECRET

    srv = RestSimServer(DXLINK, credentials=(SECRET, REFRESH), market=MARKET, tick_interval=None)
    await srv.start()
    yield srv
    await srv.stop()


async def test_orders_go_over_one_kept_alive_connection(sim: RestSimServer) -> None:
    async with make_client(sim) as c:
        lane = c.session.order_lane
        await lane.warm()
        for _ in range(5):
            placed = await c.place_order(ACCT, buy_aapl())
            assert placed.order is not None and placed.order.id is not None
        await c.cancel_order(ACCT, placed.order.id)
        assert (lane.requests, lane.connects) == (6, 1)
    assert sim.state.orders_accepted == 5


async def test_concurrent_orders_use_the_pool_while_the_lane_is_busy(sim: RestSimServer) -> None:
    async with make_client(sim) as c:
        got = await asyncio.gather(*(c.place_order(ACCT, buy_aapl()) for _ in range(4)))
        ids = {g.order.id for g in got if g.order is not None}
        assert len(ids) == 4 and c.session.order_lane.requests >= 1
    assert sim.state.orders_accepted == 4  # each sent once


async def test_lane_off_uses_aiohttp(sim: RestSimServer) -> None:
    async with make_client(sim, order_lane=False) as c:
        await c.place_order(ACCT, buy_aapl())
        assert c.session._lane is None  # never created


async def test_cannot_connect_is_not_sent(sim: RestSimServer) -> None:
    from tests.integration.test_rest_server import REFRESH, SECRET

    sess = OAuthSession(SECRET, REFRESH, base_url=sim.base_url)
    async with TastytradeClient(sess) as c:
        await c.get_accounts()  # a token
        c.session.order_lane.port = 9  # nothing listens there
        with pytest.raises(ApiConnectionError) as ei:
            await c.place_order(ACCT, buy_aapl())
        assert not isinstance(ei.value, OrderOutcomeUnknown) and "not sent" in ei.value.message
    assert sim.state.orders_accepted == 0


# -- a loopback HTTP server for the edges -------------------------------------------------------

Reply = Callable[[bytes], bytes]


class _Http:
    """Answers each request with `reply(request bytes)`; closes after it if the reply says
    ``Connection: close``; counts connections and requests."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> _Http:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.drop_all()
        await self.server.wait_closed()

    async def drop_all(self) -> None:
        """Close every connection from the server's side (as an idle timeout does)."""
        for w in self.writers:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        self.writers.clear()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(w)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                req = head + (await r.readexactly(n) if n else b"")
                self.requests.append(req)
                out = self.reply(req)
                w.write(out)
                await w.drain()
                if b"Connection: close" in out:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        w.close()
        with contextlib.suppress(Exception):
            await w.wait_closed()


ORDER = {"data": {"order": {"id": 7, "status": "Routed"}}, "context": "/x"}


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, i = [], 0
    for n in sizes:
        if i >= len(body):
            break
        out.append(b"%x\r\n%b\r\n" % (len(body[i : i + n]), body[i : i + n]))
        i += n
    if i < len(body):
        out.append(b"%x\r\n%b\r\n" % (len(body) - i, body[i:]))
    return b"".join(out) + b"0\r\n\r\n"


async def _place(port: int, **lane_kw: Any) -> tuple[TastytradeClient, OrderLane]:
    sess = OAuthSession("s", "r", base_url=f"http://127.0.0.1:{port}")
    sess.set_token(_token())
    c = TastytradeClient(sess)
    lane = sess.order_lane
    for k, v in lane_kw.items():
        setattr(lane, k, v)
    return c, lane


def _token() -> Any:
    import time

    from ttfast.rest.session import AccessToken

    return AccessToken("tok-SECRET", time.time() + 3600)


async def test_chunked_and_connection_close_responses() -> None:
    body = json.dumps(ORDER).encode()
    replies = [
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(body, [5, 9]),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%b" % (len(body), body),
        b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body),
    ]
    it = iter(replies)
    async with _Http(lambda req: next(it)) as srv:
        c, lane = await _place(srv.port)
        for _ in range(3):
            r = await c.place_order(ACCT, buy_aapl())
            assert r.order is not None and r.order.id == 7
        # the second reply closed its connection: the third went over a new one
        assert srv.connections == 2 and lane.connects == 2 and len(srv.requests) == 3
        req = srv.requests[0].decode("latin-1")
        assert req.startswith(f"POST /accounts/{ACCT}/orders HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{srv.port}\r\n" in req and "User-Agent: ttfast/" in req
        assert "Authorization: Bearer tok-SECRET\r\n" in req
        assert "Content-Type: application/json\r\n" in req
        await c.session.close()


async def test_an_idle_connection_is_replaced_before_an_order() -> None:
    body = json.dumps(ORDER).encode()
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    async with _Http(lambda req: ok) as srv:
        c, lane = await _place(srv.port, idle_reconnect=0.05, keep_warm=0.0)
        await c.place_order(ACCT, buy_aapl())
        await asyncio.sleep(0.1)  # idle past idle_reconnect (servers drop idle keep-alives)
        await c.place_order(ACCT, buy_aapl())
        assert lane.connects == 2 and srv.connections == 2 and len(srv.requests) == 2
        await c.session.close()


async def test_a_warm_lane_is_kept_fresh_in_the_background() -> None:
    """After `warm` (or an order) the connection is replaced before it turns stale, so an order
    after a quiet spell finds a fresh one and does not wait for a connect; `close` stops it."""
    body = json.dumps(ORDER).encode()
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    async with _Http(lambda req: ok) as srv:
        c, lane = await _place(srv.port, idle_reconnect=1.0)
        await lane.warm()
        await asyncio.sleep(1.0)  # quiet past the lifetime of the first connection
        before = lane.connects
        assert before >= 2 and lane._fresh()  # replaced at ~0.8 s
        await c.place_order(ACCT, buy_aapl())
        assert lane.connects == before  # the order did not connect
        await c.session.close()
        n = lane.connects
        await asyncio.sleep(0.3)
        assert lane.connects == n  # closed: no more replacements
    async with _Http(lambda req: ok) as srv:
        c, lane = await _place(srv.port, idle_reconnect=0.2, keep_warm=0.0)
        await c.place_order(ACCT, buy_aapl())
        await asyncio.sleep(0.3)
        assert lane.connects == 1  # keep_warm=0: nothing in the background
        await c.session.close()


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    body = json.dumps(ORDER).encode()
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    async with _Http(lambda req: ok) as srv:
        c, lane = await _place(srv.port)
        await c.place_order(ACCT, buy_aapl())
        await srv.drop_all()  # the server drops the idle keep-alive connection
        await asyncio.sleep(0.05)
        assert lane._proto is not None and lane._proto.closed  # its EOF was seen
        await c.place_order(ACCT, buy_aapl())  # over a new connection: not an unknown outcome
        assert lane.connects == 2 and len(srv.requests) == 2
        await c.session.close()


async def test_a_truncated_response_is_an_unknown_outcome() -> None:
    cut = b'HTTP/1.1 201 Created\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{"da'
    async with _Http(lambda req: cut) as srv:
        c, _lane = await _place(srv.port)
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy_aapl())
        assert ei.value.status == 201 and "body lost" in ei.value.cause
        assert "tok-SECRET" not in repr(ei.value) + str(ei.value)
        assert len(srv.requests) == 1  # never resent
        await c.session.close()


# -- the response parser, split anywhere ----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 400), max_size=8),
    chunked=st.booleans(),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
)
def test_parser_gives_the_same_response_however_the_bytes_arrive(
    cuts: list[int], chunked: bool, sizes: list[int]
) -> None:
    body = json.dumps({"data": {"items": list(range(30))}}).encode()
    if chunked:
        wire = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(
            body, sizes
        )
    else:
        wire = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    loop = asyncio.new_event_loop()
    try:
        p = _LaneProtocol()
        fut = loop.create_future()
        p.waiter = fut
        at = 0
        for cut in sorted(set(cuts)):
            if cut >= len(wire):
                break
            p.data_received(wire[at:cut])
            at = cut
        p.data_received(wire[at:])
        r = fut.result()
        assert (r.status, bytes(r.body), ("X-A", "1") in r.headers) == (200, body, True)
        assert not p.buf
    finally:
        loop.close()


def test_malformed_responses_fail_the_request() -> None:
    for wire in (b"HTTP/2 200\r\n\r\n", b"SMTP hello\r\n\r\n", b"HTTP/1.1 200 OK\r\nbad\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"):  # fmt: skip
        loop = asyncio.new_event_loop()
        try:
            p = _LaneProtocol()
            fut = loop.create_future()
            p.waiter = fut
            p.data_received(wire)
            with pytest.raises(LaneLost):
                fut.result()
        finally:
            loop.close()


def test_lane_refuses_other_schemes() -> None:
    with pytest.raises(ValueError):
        OrderLane("unix:///tmp/x", "ttfast/1")
    lane = OrderLane("https://api.tastyworks.com", "ttfast/1")
    assert (lane.tls, lane.port, lane._fixed.split(b"\r\n")[0]) == (
        True, 443, b"Host: api.tastyworks.com",
    )  # fmt: skip


# -- TLS: the production path (https) -------------------------------------------------------------


async def test_orders_over_tls_verify_the_certificate(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https base URL: the lane speaks TLS with SNI and verifies the server's certificate
    against the system's trust store (here a test CA given as ``SSL_CERT_FILE``); a server whose
    certificate is not trusted is never sent the order (not sent, not an unknown outcome)."""
    import ssl
    import subprocess

    from tests.servers import require_binary

    openssl = require_binary("openssl")
    key, crt = tmp_path / "key.pem", tmp_path / "crt.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(crt), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, key)
    body = json.dumps(ORDER).encode()
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    srv = _Http(lambda req: ok)
    srv.server = await asyncio.start_server(srv._serve, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.server.sockets[0].getsockname()[1]
    try:
        # not trusted (the default trust store): refused before anything is sent
        sess = OAuthSession("s", "r", base_url=f"https://localhost:{port}")
        sess.set_token(_token())
        c = TastytradeClient(sess)
        with pytest.raises(ApiConnectionError) as ei:
            await c.place_order(ACCT, buy_aapl())
        assert not isinstance(ei.value, OrderOutcomeUnknown) and srv.requests == []
        await sess.close()
        # trusted: the order goes over TLS, once, on one connection
        monkeypatch.setenv("SSL_CERT_FILE", str(crt))
        sess = OAuthSession("s", "r", base_url=f"https://localhost:{port}")
        sess.set_token(_token())
        c = TastytradeClient(sess)
        for _ in range(2):
            r = await c.place_order(ACCT, buy_aapl())
            assert r.order is not None and r.order.id == 7
        assert len(srv.requests) == 2 and sess.order_lane.connects == 1
        assert srv.requests[0].startswith(f"POST /accounts/{ACCT}/orders HTTP/1.1".encode())
        assert f"Host: localhost:{port}\r\n".encode() in srv.requests[0]
        await sess.close()
    finally:
        srv.server.close()
        await srv.drop_all()
