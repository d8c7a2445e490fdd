"""Issue 13: an order mutation is either definitely answered or OrderOutcomeUnknown; never a
redirect follow-up (real HTTP peers on loopback: the local REST server, or a small aiohttp
server for responses the local server cannot produce).

* defect 3: a 2xx with an unexpected body, a 5xx, a redirect, a 4xx without the API's error
  envelope, a body lost after the status line: OrderOutcomeUnknown (carrying the raw response),
  never an ApiError a caller would read as "rejected, safe to resend".
* defect 5: no mutating request (order POST/PUT/DELETE, dry-run, OAuth token POST) follows a
  redirect; the peer counts the requests it received: exactly one, no GET follow-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from ttfast.errors import (
    MAX_RAW_BODY,
    ApiConnectionError,
    ApiError,
    AuthError,
    OrderOutcomeUnknown,
    RateLimitedError,
    ResponseDecodeError,
)
from ttfast.rest import TastytradeClient
from ttfast.rest import orders as o
from ttfast.rest.session import AccessToken, OAuthSession
from ttfast.sim import RestSimServer

ACCT = "5WT00000"
SECRET = "cs-SUPERSECRET-77aa"
REFRESH = "rt-SUPERSECRET-88bb"
TOKEN = "at-SUPERSECRET-99cc"
ORDERS = f"/accounts/{ACCT}/orders"
COMPLEX = f"/accounts/{ACCT}/complex-orders"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ORDER = {
    "id": 77,
    "account-number": ACCT,
    "external-identifier": "x",
    "status": "Live",
    "order-type": "Limit",
    "time-in-force": "Day",
    "legs": [],
}
GOOD_BODIES: dict[str, Any] = {
    "place": {"data": {"order": ORDER}},
    "dry_run": {"data": {"order": {**ORDER, "id": None, "status": "Received"}}},
    "complex": {"data": {"complex-order": {"id": 5, "type": "OCO", "orders": [ORDER, ORDER]}}},
    "order": {"data": ORDER},
    "complex_order": {"data": {"id": 5, "type": "OCO"}},
}


class Peer:
    """A real HTTP server on loopback that counts every request and answers via ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: Counter[str] = Counter()
        self.bodies: list[bytes] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        self.bodies.append(await request.read())
        return await self.handler(request)

    async def start(self) -> Peer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@pytest.fixture
async def peers() -> AsyncIterator[Callable[[Handler], Awaitable[Peer]]]:
    started: list[Peer] = []

    async def make(handler: Handler) -> Peer:
        p = await Peer(handler).start()
        started.append(p)
        return p

    yield make
    for p in started:
        await p.stop()


def client_for(url: str, **kw: Any) -> TastytradeClient:
    sess = OAuthSession(SECRET, REFRESH, base_url=url, refresh_attempts=1)
    sess.set_token(AccessToken(TOKEN, time.time() + 3600))
    kw.setdefault("order_timeout", 5.0)
    return TastytradeClient(sess, **kw)


def buy(**kw: Any) -> o.OrderRequest:
    return o.limit_order(o.leg("AAPL", 1, "Buy to Open"), -100.5, **kw)


def oco() -> o.ComplexOrderRequest:
    sell = o.leg("AAPL", 100, "Sell to Close")
    return o.oco(o.limit_order(sell, 200, "Credit"), o.stop_order(sell, 150))


# Every mutating call: (name, coroutine factory, request line, outcome matters?)
CALLS: dict[str, tuple[Callable[[TastytradeClient], Awaitable[Any]], str, bool]] = {
    "place": (lambda c: c.place_order(ACCT, buy()), f"POST {ORDERS}", True),
    "place_complex": (lambda c: c.place_complex_order(ACCT, oco()), f"POST {COMPLEX}", True),
    "replace": (lambda c: c.replace_order(ACCT, 12, buy()), f"PUT {ORDERS}/12", True),
    "cancel": (lambda c: c.cancel_order(ACCT, 12), f"DELETE {ORDERS}/12", True),
    "cancel_complex": (lambda c: c.cancel_complex_order(ACCT, 9), f"DELETE {COMPLEX}/9", True),
    "dry_run": (lambda c: c.dry_run_order(ACCT, buy()), f"POST {ORDERS}/dry-run", False),
    "dry_run_complex": (
        lambda c: c.dry_run_complex_order(ACCT, oco()),
        f"POST {COMPLEX}/dry-run",
        False,
    ),
}

GOOD_BODY_OF = {
    "place": "place",
    "place_complex": "complex",
    "replace": "order",
    "cancel": "order",
    "cancel_complex": "complex_order",
    "dry_run": "dry_run",
    "dry_run_complex": "complex",
}


def json_response(body: Any, status: int) -> web.Response:
    return web.json_response(body, status=status)


# --- defect 3: accepted orders are never reported as rejected ------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[RestSimServer]:
    srv = RestSimServer(credentials=(SECRET, REFRESH))
    await srv.start()
    yield srv
    await srv.stop()


def sim_client(srv: RestSimServer) -> TastytradeClient:
    return TastytradeClient(OAuthSession(SECRET, REFRESH, base_url=srv.base_url))


ODD_2XX_BODIES = [
    {},
    {"data": []},
    {"data": {}},
    {"data": None},
    {"data": {"order": []}},
    {"data": {"order": {}}},  # an order without an id
    {"data": {"order": {"id": "not-a-number", "status": "Live"}}},
    [],
    "accepted",
]


@pytest.mark.parametrize("body", ODD_2XX_BODIES, ids=repr)
async def test_accepted_order_with_odd_2xx_body_is_unknown(sim: RestSimServer, body: Any) -> None:
    """The server stores the order, then answers 201 with an unexpected body."""
    sim.add_fault(
        "status", status=201, body=body, method="POST", path="/orders$", after_handler=True
    )
    async with sim_client(sim) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy(external_identifier="tag-odd-1"))
        e = ei.value
        assert e.status == 201 and e.external_identifier == "tag-odd-1"
        assert e.body and e.headers.get("content-type", "").startswith("application/json")
        assert sim.state.requests[f"POST {ORDERS}"] == 1 and sim.state.orders_accepted == 1
        found = await c.find_order_by_external_id(ACCT, "tag-odd-1")
        assert found is not None and found.status == "Live"


@pytest.mark.parametrize("body", [{}, {"data": []}, {"data": {"complex-order": {}}}], ids=repr)
async def test_accepted_complex_order_with_odd_2xx_body_is_unknown(
    sim: RestSimServer, body: Any
) -> None:
    sim.add_fault(
        "status", status=201, body=body, method="POST", path="/complex-orders$", after_handler=True
    )
    async with sim_client(sim) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_complex_order(ACCT, oco())
        assert ei.value.status == 201 and ei.value.external_identifier
        assert sim.state.requests[f"POST {COMPLEX}"] == 1
        found = await c.find_order_by_external_id(ACCT, ei.value.external_identifier)
        assert found is not None


@pytest.mark.parametrize("body", [{}, {"data": []}, {"data": {}}], ids=repr)
async def test_accepted_replace_with_odd_2xx_body_is_unknown(sim: RestSimServer, body: Any) -> None:
    async with sim_client(sim) as c:
        placed = await c.place_order(ACCT, buy())
        oid = placed.order.id  # type: ignore[union-attr]
        assert oid is not None
        sim.add_fault("status", status=200, body=body, method="PUT", after_handler=True)
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.replace_order(ACCT, oid, buy(external_identifier="tag-new"))
        e = ei.value
        assert e.order_id == oid and e.external_identifier == "tag-new" and e.status == 200
        assert sim.state.requests[f"PUT {ORDERS}/{oid}"] == 1
        new = await c.find_order_by_external_id(ACCT, "tag-new")
        assert new is not None and new.replaces_order_id == oid


@pytest.mark.parametrize(
    ("payload", "ctype"),
    [
        (b"<html><body>OK</body></html>", "text/html"),
        (b'{"data": {"order": {"id": 77, "status": "Li', "application/json"),  # truncated
        (b"", "application/json"),
    ],
    ids=["html", "truncated-json", "empty"],
)
async def test_non_json_2xx_to_an_order_post_is_unknown(
    peers: Callable[[Handler], Awaitable[Peer]], payload: bytes, ctype: str
) -> None:
    async def h(request: web.Request) -> web.Response:
        return web.Response(body=payload, status=201, content_type=ctype)

    peer = await peers(h)
    async with client_for(peer.url) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy(external_identifier="tag-2"))
    e = ei.value
    assert e.status == 201 and e.external_identifier == "tag-2" and e.body == payload
    assert e.headers["content-type"].startswith(ctype)
    assert peer.requests[f"POST {ORDERS}"] == 1 and peer.total == 1


async def test_body_lost_after_the_status_line_is_unknown_with_the_status(
    peers: Callable[[Handler], Awaitable[Peer]],
) -> None:
    async def h(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=201, headers={"Content-Length": "1000"})
        resp.content_type = "application/json"
        await resp.prepare(request)
        await resp.write(b'{"data": {"order": {"id": 1')
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return resp

    peer = await peers(h)
    async with client_for(peer.url) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy())
    assert ei.value.status == 201 and "body lost" in ei.value.cause
    assert peer.total == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("name", ["place", "place_complex", "replace", "cancel", "cancel_complex"])
async def test_5xx_to_a_mutation_is_unknown_even_with_an_error_body(
    peers: Callable[[Handler], Awaitable[Peer]], status: int, name: str
) -> None:
    body = {"error": {"code": "service_unavailable", "message": "try later"}}

    async def h(request: web.Request) -> web.Response:
        return json_response(body, status)

    peer = await peers(h)
    call, line, _ = CALLS[name]
    async with client_for(peer.url) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await call(c)
    e = ei.value
    assert e.status == status and f"HTTP {status}" in e.cause
    assert b"service_unavailable" in e.body
    assert peer.requests[line] == 1 and peer.total == 1
    if name in ("replace", "cancel"):
        assert e.order_id == 12
    if name == "cancel_complex":
        assert e.order_id == 9
    if name.startswith("place") or name == "replace":
        assert e.external_identifier


@pytest.mark.parametrize(
    ("status", "payload", "ctype"),
    [
        (403, b"<html>Forbidden by WAF</html>", "text/html"),
        (404, b"Not Found", "text/plain"),
        (400, b'{"message": "bad request"}', "application/json"),
        (422, b'{"error": "unprocessable"}', "application/json"),
        (422, b'{"error": {"message": "no code"}}', "application/json"),
        (409, b"[]", "application/json"),
        (408, b'{"error": {"code": "timeout", "message": "request timeout"}}', "application/json"),
        (401, b'{"error": {"code": "token_invalid", "message": "expired"}}', "application/json"),
    ],
)
@pytest.mark.parametrize("name", ["place", "place_complex", "replace", "cancel"])
async def test_4xx_without_a_definite_api_rejection_is_unknown(
    peers: Callable[[Handler], Awaitable[Peer]],
    status: int,
    payload: bytes,
    ctype: str,
    name: str,
) -> None:
    async def h(request: web.Request) -> web.Response:
        return web.Response(body=payload, status=status, content_type=ctype)

    peer = await peers(h)
    call, line, _ = CALLS[name]
    async with client_for(peer.url) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await call(c)
    assert ei.value.status == status and ei.value.body == payload
    assert peer.requests[line] == 1 and peer.total == 1


@pytest.mark.parametrize(
    ("status", "error", "cls"),
    [
        (400, {"code": "invalid_order", "message": "bad"}, ApiError),
        (403, {"code": "not_permitted", "message": "User not permitted access"}, AuthError),
        (404, {"code": "record_not_found", "message": "no such account"}, ApiError),
        (406, {"code": 406, "message": "The requested version is not supported."}, ApiError),
        (
            422,
            {
                "code": "preflight_check_failure",
                "message": "One or more preflight checks failed",
                "errors": [{"code": "cant_buy_for_credit", "message": "no"}],
            },
            ApiError,
        ),
        (429, {"code": "rate_limited", "message": "slow down"}, RateLimitedError),
    ],
)
@pytest.mark.parametrize("name", list(CALLS))
async def test_well_formed_4xx_is_a_definite_rejection(
    peers: Callable[[Handler], Awaitable[Peer]],
    status: int,
    error: dict[str, Any],
    cls: type[ApiError],
    name: str,
) -> None:
    async def h(request: web.Request) -> web.Response:
        return json_response({"error": error}, status)

    peer = await peers(h)
    call, line, _ = CALLS[name]
    async with client_for(peer.url) as c:
        with pytest.raises(ApiError) as ei:
            await call(c)
    assert type(ei.value) is cls and ei.value.status == status
    assert ei.value.code == error["code"]
    assert peer.requests[line] == 1 and peer.total == 1


async def test_no_token_in_unknown_outcome_logs_str_repr(
    peers: Callable[[Handler], Awaitable[Peer]], caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that echoes the Authorization header back (body and headers), with a huge body."""
    caplog.set_level(logging.DEBUG)

    async def h(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        body = ("<pre>" + auth + "</pre>" + "z" * (4 * MAX_RAW_BODY) + auth).encode()
        return web.Response(
            body=body,
            status=502,
            content_type="text/html",
            headers={
                "X-Echo-Authorization": auth,
                "X-Echo": auth,
                "Set-Cookie": "session=" + TOKEN,
                "X-Request-Id": "req-123",
            },
        )

    peer = await peers(h)
    async with client_for(peer.url) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy())
    e = ei.value
    assert len(e.body) <= MAX_RAW_BODY and e.body_truncated and e.body_size > 4 * MAX_RAW_BODY
    assert e.headers["x-request-id"] == "req-123"
    assert e.headers["set-cookie"] == "<redacted>"
    texts = [str(e), repr(e), e.cause, repr(e.headers), e.body.decode(), caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    for t in texts:
        assert TOKEN not in t and SECRET not in t and REFRESH not in t


# --- cancel and dry-run semantics -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "want"),
    [
        (200, b'{"data": {"id": 12, "status": "Cancel Requested"}}', "order"),
        (200, b'{"data": {}, "context": "/x"}', None),
        (200, b"{}", None),
        (204, b"", None),
    ],
)
async def test_cancel_accepted(
    peers: Callable[[Handler], Awaitable[Peer]], status: int, payload: bytes, want: str | None
) -> None:
    async def h(request: web.Request) -> web.Response:
        return web.Response(body=payload, status=status, content_type="application/json")

    peer = await peers(h)
    async with client_for(peer.url) as c:
        got = await c.cancel_order(ACCT, 12)
    if want is None:
        assert got is None
    else:
        assert got is not None and got.id == 12 and got.status == "Cancel Requested"
    assert peer.total == 1


@pytest.mark.parametrize(
    "payload", [b"<html>ok</html>", b'{"data": {"id": 12, "sta', b"[]", b'{"data": {"id": "x"}}']
)
async def test_cancel_with_unusable_2xx_is_unknown(
    peers: Callable[[Handler], Awaitable[Peer]], payload: bytes
) -> None:
    async def h(request: web.Request) -> web.Response:
        return web.Response(body=payload, status=200, content_type="application/json")

    peer = await peers(h)
    async with client_for(peer.url) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.cancel_order(ACCT, 12)
    assert ei.value.order_id == 12 and ei.value.external_identifier is None
    assert ei.value.body == payload and peer.total == 1


async def test_find_by_external_id_none_matches_nothing(
    peers: Callable[[Handler], Awaitable[Peer]],
) -> None:
    """A cancel's OrderOutcomeUnknown carries no tag: passing it on finds nothing and sends
    nothing, even when an untagged order exists (a None tag must not match it)."""
    untagged = {k: v for k, v in ORDER.items() if k != "external-identifier"}

    async def h(request: web.Request) -> web.Response:
        return json_response({"data": {"items": [untagged]}}, 200)

    peer = await peers(h)
    async with client_for(peer.url) as c:
        assert await c.find_order_by_external_id(ACCT, None) is None
        assert peer.total == 0
        assert await c.find_order_by_external_id(ACCT, "ttf-x") is None
    assert peer.total == 2  # live orders, then the search


@pytest.mark.parametrize("name", ["dry_run", "dry_run_complex"])
async def test_dry_run_failures_are_api_errors_not_unknown(
    peers: Callable[[Handler], Awaitable[Peer]], name: str
) -> None:
    """A dry-run creates nothing, so its outcome is never unknown: every failure is an ApiError
    (safe to call again)."""
    mode = {"v": "503"}

    async def h(request: web.Request) -> web.Response:
        if mode["v"] == "503":
            return json_response({"error": {"code": "unavailable", "message": "x"}}, 503)
        if mode["v"] == "html":
            return web.Response(body=b"<html/>", status=200, content_type="text/html")
        if mode["v"] == "empty":
            return json_response({}, 200)
        await asyncio.sleep(10)
        return json_response({}, 200)

    peer = await peers(h)
    call, line, _ = CALLS[name]
    async with client_for(peer.url, order_timeout=0.5) as c:
        with pytest.raises(ApiError) as ei:
            await call(c)
        assert ei.value.status == 503
        mode["v"] = "html"
        with pytest.raises(ResponseDecodeError):
            await call(c)
        mode["v"] = "empty"
        with pytest.raises(ResponseDecodeError):
            await call(c)
        mode["v"] = "hang"
        with pytest.raises(ApiConnectionError):
            await call(c)
    assert peer.requests[line] == 4


# --- defect 5: mutations never follow redirects ------------------------------------------------


REDIRECTS = [301, 302, 303, 307, 308]


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("name", list(CALLS))
async def test_mutations_never_follow_redirects(
    peers: Callable[[Handler], Awaitable[Peer]], status: int, name: str
) -> None:
    """The peer redirects every request to /elsewhere, which would answer a plausible success."""

    async def h(request: web.Request) -> web.Response:
        if request.path == "/elsewhere":
            return json_response(GOOD_BODIES[GOOD_BODY_OF[name]], 201)
        return web.Response(status=status, headers={"Location": "/elsewhere?sig=abc"})

    peer = await peers(h)
    call, line, outcome_matters = CALLS[name]
    async with client_for(peer.url) as c:
        with pytest.raises((OrderOutcomeUnknown, ApiError)) as ei:
            await call(c)
    e = ei.value
    assert peer.requests[line] == 1 and peer.total == 1, peer.requests  # no follow-up of any kind
    if outcome_matters:
        assert isinstance(e, OrderOutcomeUnknown)
        assert e.status == status and "redirect" in e.cause and "/elsewhere" in e.cause
        assert "sig=abc" not in str(e)
    else:
        assert isinstance(e, ApiError) and not isinstance(e, OrderOutcomeUnknown)
        assert e.status == status and e.code == "redirect_not_followed"


@pytest.mark.parametrize("status", [307, 308])
async def test_order_post_redirect_loop_is_one_post(
    peers: Callable[[Handler], Awaitable[Peer]], status: int
) -> None:
    """Today's code re-POSTed the order 10 times before TooManyRedirects."""

    async def h(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": request.path})

    peer = await peers(h)
    async with client_for(peer.url) as c:
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy())
    assert ei.value.status == status
    assert peer.requests[f"POST {ORDERS}"] == 1 and peer.total == 1


@pytest.mark.parametrize("status", REDIRECTS)
async def test_token_post_never_follows_a_redirect(
    peers: Callable[[Handler], Awaitable[Peer]], status: int
) -> None:
    """The refresh token must never be re-POSTed to the redirect target (another host/port)."""

    async def thief(request: web.Request) -> web.Response:
        return json_response({"access_token": "stolen", "expires_in": 900}, 200)

    other = await peers(thief)

    async def h(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": other.url + "/oauth/token?code=zz"})

    peer = await peers(h)
    sess = OAuthSession(SECRET, REFRESH, base_url=peer.url, refresh_attempts=3)
    async with sess:
        with pytest.raises(AuthError) as ei:
            await sess.access_token()
    e = ei.value
    assert e.status == status and e.code == "redirect_not_followed"
    assert peer.requests["POST /oauth/token"] == 1 and peer.total == 1  # not retried either
    assert other.total == 0
    for t in (str(e), repr(e)):
        assert REFRESH not in t and SECRET not in t and "code=zz" not in t


async def test_well_formed_2xx_order_post_still_succeeds(
    peers: Callable[[Handler], Awaitable[Peer]],
) -> None:
    async def h(request: web.Request) -> web.Response:
        return json_response(GOOD_BODIES["place"], 201)

    peer = await peers(h)
    async with client_for(peer.url) as c:
        r = await c.place_order(ACCT, buy())
    assert r.order is not None and r.order.id == 77 and peer.total == 1
