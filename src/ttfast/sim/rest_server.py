"""A faithful local tastytrade REST server (aiohttp.web) for tests, demos and offline work.

It speaks the API's shapes (spec §3-§6): dashed keys, ``{"data": ..., "context": path}``
envelopes (lists under ``data.items``), a ``pagination`` block on paginated lists, money as
strings, some integers as numbers, order ``updated-at`` as epoch milliseconds, and the error
envelope ``{"error": {"code", "message", "errors": [...]}}``.

* ``POST /oauth/token`` (JSON or form body): any non-empty ``refresh_token`` + ``client_secret``
  are accepted unless ``credentials=(client_secret, refresh_token)`` is given. Access tokens
  really expire after ``token_ttl`` seconds; afterwards requests get 401 ``token_invalid``.
  Requests without a ``User-Agent: product/version`` header get 401 like the real API.
* Accounts, balances, positions, transactions (paginated), trading status, orders (place,
  dry-run, live, search, by id, replace, cancel), complex orders (OCO/OTO/OTOCO: place, dry-run,
  live, by id, cancel), instruments, nested option chains, market metrics, symbol search and
  ``/api-quote-tokens`` (pointing at the given dxLink URL). Placed orders appear in live orders;
  cancel moves them to ``Cancelled``. Orders are never filled (they rest ``Live``).
* Fault switches (:class:`Fault`): latency, hang (timeout), HTTP status (5xx, 429, any body),
  malformed JSON, dropped connection — each optionally *after* the handler ran, e.g. an order
  that was accepted and stored but whose response never arrives. ``state.orders_accepted``
  counts accepted orders so tests can prove nothing was sent twice. At runtime the same switches
  are reachable over HTTP: ``POST /_sim/faults`` (a Fault as JSON), ``DELETE /_sim/faults``,
  ``GET /_sim/state``.

Run standalone: ``python -m ttfast.sim.rest_server --port 8080 --dxlink-url ws://...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import parse_qs

from aiohttp import web

__all__ = ["Fault", "RestSimServer", "SimState", "create_rest_app", "serve"]

log = logging.getLogger("ttfast.sim.rest")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UA_RE = re.compile(r"^[^\s/]+/\S+")
_TERMINAL = {"Filled", "Cancelled", "Rejected", "Expired", "Removed", "Partially Removed"}


@dataclass
class Fault:
    """One fault switch. Matched against each request (first match wins, ``count`` consumed).

    kind: ``latency`` (sleep ``seconds`` then serve), ``hang`` (sleep ``seconds`` before
    answering: provokes client timeouts), ``status`` (answer ``status`` with ``body`` or a
    standard error body), ``malformed`` (200 with truncated JSON), ``drop`` (close the
    connection without an answer). ``after_handler``: run the real handler first (the order is
    accepted/stored), then misbehave. ``count``: times to fire (-1 = forever). ``method`` /
    ``path`` (regex, searched) restrict the requests it applies to.
    """

    kind: Literal["latency", "hang", "status", "malformed", "drop"]
    count: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 503
    seconds: float = 0.0
    after_handler: bool = False
    body: Any = None

    def matches(self, request: web.Request) -> bool:
        if self.count == 0:
            return False
        if self.method and request.method.upper() != self.method.upper():
            return False
        return not (self.path and not re.search(self.path, request.path))


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _err(
    status: int, code: str | int, message: str, errors: list[dict[str, str]] | None = None
) -> web.Response:
    e: dict[str, Any] = {"code": code, "message": message}
    if errors:
        e["errors"] = errors
    return web.json_response({"error": e}, status=status)


def _dec(x: Any) -> Decimal | None:
    if x is None:
        return None
    try:
        return Decimal(str(x))
    except InvalidOperation:
        return None


# --- seed data (shaped like the examples in the developer docs) ----------------------------------


def _seed_account(n: str, nickname: str) -> dict[str, Any]:
    return {
        "account-number": n,
        "external-id": "A" + n,
        "opened-at": "2024-01-02T14:30:00.000+00:00",
        "nickname": nickname,
        "account-type-name": "Individual",
        "day-trader-status": False,
        "is-closed": False,
        "is-firm-error": False,
        "is-firm-proprietary": False,
        "is-futures-approved": True,
        "is-test-drive": False,
        "margin-or-cash": "Margin",
        "is-foreign": False,
        "investment-objective": "SPECULATION",
        "suitable-options-level": "No Restrictions",
        "created-at": "2024-01-02T14:30:00.000+00:00",
    }


def _seed_balance(n: str) -> dict[str, Any]:
    z = "0.0"
    b: dict[str, Any] = {
        k: z
        for k in [
            "short-equity-value",
            "long-derivative-value",
            "short-derivative-value",
            "long-futures-value",
            "short-futures-value",
            "long-futures-derivative-value",
            "short-futures-derivative-value",
            "long-margineable-value",
            "short-margineable-value",
            "day-trading-buying-power",
            "futures-margin-requirement",
            "available-trading-funds",
            "maintenance-call-value",
            "reg-t-call-value",
            "day-trading-call-value",
            "day-equity-call-value",
            "pending-cash",
            "short-cryptocurrency-value",
            "unsettled-cryptocurrency-fiat-amount",
            "equity-offering-margin-requirement",
            "long-bond-value",
            "bond-margin-requirement",
            "futures-overnight-margin-requirement",
            "futures-intraday-margin-requirement",
            "pending-margin-interest",
        ]
    }
    b.update(
        {
            "account-number": n,
            "currency": "USD",
            "cash-balance": "7218.997",
            "long-equity-value": "24629.746",
            "margin-equity": "32520.734",
            "equity-buying-power": "45657.048",
            "derivative-buying-power": "22828.524",
            "maintenance-requirement": "9692.211",
            "net-liquidating-value": "32520.734",
            "cash-available-to-withdraw": "22828.53",
            "day-trade-excess": "22828.53",
            "pending-cash-effect": "None",
            "long-cryptocurrency-value": "671.991",
            "cryptocurrency-margin-requirement": "671.99207435",
            "unsettled-cryptocurrency-fiat-effect": "None",
            "closed-loop-available-balance": "22828.53",
            "used-derivative-buying-power": "9692.211",
            "snapshot-date": date.today().isoformat(),
            "reg-t-margin-requirement": "9692.21066152",
            "maintenance-excess": "22828.52392233",
            "effective-cryptocurrency-buying-power": "22828.524",
            "updated-at": _iso(_now()),
        }
    )
    return b


def _seed_positions(n: str) -> list[dict[str, Any]]:
    base = {
        "account-number": n,
        "quantity-direction": "Long",
        "is-suppressed": False,
        "is-frozen": False,
        "restricted-quantity": "0.0",
        "realized-day-gain": "0.0",
        "realized-day-gain-effect": "None",
        "realized-today": "0.0",
        "realized-today-effect": "None",
        "created-at": "2024-08-22T17:56:51.872+00:00",
        "updated-at": _iso(_now()),
    }
    return [
        {
            **base,
            "symbol": "AAPL",
            "instrument-type": "Equity",
            "underlying-symbol": "AAPL",
            "quantity": "100",
            "close-price": "282.48",
            "average-open-price": "288.7",
            "average-daily-market-close-price": "282.48",
            "multiplier": 1,
            "cost-effect": "Debit",
        },
        {
            **base,
            "symbol": "SPY   261218C00600000",
            "instrument-type": "Equity Option",
            "underlying-symbol": "SPY",
            "quantity": 2,
            "close-price": "41.5",
            "average-open-price": "38.25",
            "multiplier": 100,
            "cost-effect": "Debit",
            "expires-at": "2026-12-18T21:15:00.000+00:00",
        },
    ]


def _seed_transactions(n: str, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    d0 = date.today()
    for i in range(count):
        d = d0 - timedelta(days=i)
        out.append(
            {
                "id": 252640000 + i,
                "account-number": n,
                "symbol": "KBWD",
                "instrument-type": "Equity",
                "underlying-symbol": "KBWD",
                "transaction-type": "Money Movement",
                "transaction-sub-type": "Dividend",
                "description": f"sim dividend {i}",
                "executed-at": f"{d.isoformat()}T21:00:00.000+00:00",
                "transaction-date": d.isoformat(),
                "value": f"{1 + i}.25",
                "value-effect": "Credit",
                "net-value": f"{1 + i}.25",
                "net-value-effect": "Credit",
                "is-estimated-fee": True,
            }
        )
    return out


def _seed_trading_status(n: str) -> dict[str, Any]:
    return {
        "account-number": n,
        "equities-margin-calculation-type": "Reg T",
        "fee-schedule-name": "default",
        "futures-margin-rate-multiplier": "0.0",
        "has-intraday-equities-margin": False,
        "id": 1,
        "is-aggregated-at-clearing": False,
        "is-closed": False,
        "is-closing-only": False,
        "is-cryptocurrency-enabled": True,
        "is-frozen": False,
        "is-full-equity-margin-required": False,
        "is-futures-closing-only": False,
        "is-futures-intra-day-enabled": True,
        "is-futures-enabled": True,
        "is-in-day-trade-equity-maintenance-call": False,
        "is-in-margin-call": False,
        "is-pattern-day-trader": False,
        "is-small-notional-futures-intra-day-enabled": False,
        "is-roll-the-day-forward-enabled": False,
        "are-far-otm-net-options-restricted": True,
        "options-level": "No Restrictions",
        "short-calls-enabled": True,
        "small-notional-futures-margin-rate-multiplier": "0.0",
        "is-equity-offering-enabled": False,
        "is-equity-offering-closing-only": False,
        "updated-at": _iso(_now()),
        "day-trade-count": 0,
    }


_CUSTOMER_ADDR = {
    "city": "Chicago",
    "country": "USA",
    "is-domestic": True,
    "is-foreign": False,
    "postal-code": "60606",
    "state-region": "IL",
    "street-one": "1 Sim Plaza",
}
CUSTOMER: dict[str, Any] = {
    "id": "me",
    "first-name": "Sim",
    "last-name": "Trader",
    "address": _CUSTOMER_ADDR,
    "mailing-address": _CUSTOMER_ADDR,
    "is-foreign": False,
    "usa-citizenship-type": "Citizen",
    "mobile-phone-number": "+1 555 0100",
    "birth-date": "1980-01-01",
    "email": "sim@example.invalid",
    "tax-number-type": "SSN",
    "subject-to-tax-withholding": False,
    "has-industry-affiliation": False,
    "has-listed-affiliation": False,
    "has-political-affiliation": False,
    "has-delayed-quotes": False,
    "has-pending-or-approved-application": False,
    "is-professional": False,
    "permitted-account-types": [],
    "created-at": "2024-01-02T14:30:00.000+00:00",
}

_TICKS = [{"value": "0.0001", "threshold": "1.0"}, {"value": "0.01"}]
_OPT_TICKS = [{"value": "0.01", "threshold": "3.0"}, {"value": "0.05"}]
EQUITIES: dict[str, dict[str, Any]] = {
    s: {
        "id": i,
        "symbol": s,
        "instrument-type": "Equity",
        "cusip": c,
        "short-description": d,
        "description": d,
        "is-index": idx,
        "listed-market": "XNAS",
        "lendability": "Easy To Borrow",
        "borrow-rate": "0.0",
        "market-time-instrument-collection": "Equity",
        "is-closing-only": False,
        "is-options-closing-only": False,
        "active": True,
        "is-fractional-quantity-eligible": not idx,
        "is-illiquid": False,
        "is-etf": etf,
        "streamer-symbol": s,
        "tick-sizes": _TICKS,
        "option-tick-sizes": _OPT_TICKS,
    }
    for i, (s, c, d, idx, etf) in enumerate(
        [
            ("AAPL", "037833100", "APPLE INC", False, False),
            ("SPY", "78462F103", "SPDR S&P 500 ETF TRUST", False, True),
            ("SPX", "648815108", "S & P 500 INDEX", True, False),
            ("META", "30303M102", "META PLATFORMS INC", False, False),
            ("TSLA", "88160R101", "TESLA INC", False, False),
        ],
        start=700,
    )
}


def _occ(root: str, exp: date, cp: str, strike: Decimal) -> str:
    return f"{root:<6}{exp:%y%m%d}{cp}{int(strike * 1000):08d}"


def _streamer_opt(root: str, exp: date, cp: str, strike: Decimal) -> str:
    k = format(strike.normalize(), "f")
    return f".{root}{exp:%y%m%d}{cp}{k}"


def _expirations() -> list[date]:
    d = date.today()
    out: list[date] = []
    while len(out) < 3:
        d += timedelta(days=1)
        if d.weekday() == 4:
            out.append(d)
    return out


def _build_chain(root: str, center: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    exps = []
    options: dict[str, dict[str, Any]] = {}
    for exp in _expirations():
        strikes = []
        for k in range(center - 10, center + 11, 5):
            sk = Decimal(k)
            row: dict[str, Any] = {"strike-price": f"{k}.0"}
            for cp, name in (("C", "call"), ("P", "put")):
                occ = _occ(root, exp, cp, sk)
                st = _streamer_opt(root, exp, cp, sk)
                row[name] = occ
                row[f"{name}-streamer-symbol"] = st
                options[occ] = {
                    "symbol": occ,
                    "instrument-type": "Equity Option",
                    "active": True,
                    "strike-price": f"{k}.0",
                    "root-symbol": root,
                    "underlying-symbol": root,
                    "expiration-date": exp.isoformat(),
                    "exercise-style": "American",
                    "shares-per-contract": 100,
                    "option-type": cp,
                    "option-chain-type": "Standard",
                    "expiration-type": "Weekly",
                    "settlement-type": "PM",
                    "stops-trading-at": f"{exp.isoformat()}T20:15:00.000+00:00",
                    "market-time-instrument-collection": "Equity Option",
                    "days-to-expiration": (exp - date.today()).days,
                    "expires-at": f"{exp.isoformat()}T20:15:00.000+00:00",
                    "is-closing-only": False,
                    "streamer-symbol": st,
                }
            strikes.append(row)
        exps.append(
            {
                "expiration-type": "Weekly",
                "expiration-date": exp.isoformat(),
                "days-to-expiration": (exp - date.today()).days,
                "settlement-type": "PM",
                "strikes": strikes,
            }
        )
    chain = {
        "underlying-symbol": root,
        "root-symbol": root,
        "option-chain-type": "Standard",
        "shares-per-contract": 100,
        "tick-sizes": _OPT_TICKS,
        "deliverables": [],
        "expirations": exps,
    }
    return chain, options


FUTURES: dict[str, dict[str, Any]] = {
    "/ESZ6": {
        "symbol": "/ESZ6",
        "product-code": "ES",
        "contract-size": "50.0",
        "tick-size": "0.25",
        "notional-multiplier": "50.0",
        "main-fraction": "0.0",
        "sub-fraction": "0.0",
        "display-factor": "0.01",
        "last-trade-date": "2026-12-18",
        "expiration-date": "2026-12-18",
        "closing-only-date": "2026-12-18",
        "active": True,
        "active-month": True,
        "next-active-month": False,
        "is-closing-only": False,
        "stops-trading-at": "2026-12-18T14:30:00.000+00:00",
        "expires-at": "2026-12-18T14:30:00.000+00:00",
        "product-group": "CME_ES",
        "exchange": "CME",
        "roll-target-symbol": "/ESH7",
        "streamer-exchange-code": "XCME",
        "streamer-symbol": "/ESZ26:XCME",
        "back-month-first-calendar-symbol": True,
        "is-tradeable": True,
        "tick-sizes": [{"value": "0.25"}],
        "option-tick-sizes": [{"value": "0.05", "threshold": "5.0"}, {"value": "0.25"}],
    },
}
FUTURE_OPTIONS: dict[str, dict[str, Any]] = {
    "./ESZ6 E4AZ6 261218P6000": {
        "symbol": "./ESZ6 E4AZ6 261218P6000",
        "underlying-symbol": "/ESZ6",
        "product-code": "ES",
        "expiration-date": "2026-12-18",
        "root-symbol": "/ES",
        "option-root-symbol": "E4A",
        "strike-price": "6000.0",
        "exchange": "CME",
        "exchange-symbol": "E4AZ6 P6000",
        "streamer-symbol": "./E4AZ26P6000:XCME",
        "option-type": "P",
        "exercise-style": "American",
        "is-vanilla": True,
        "is-primary-deliverable": True,
        "future-price-ratio": "1.0",
        "multiplier": "1.0",
        "underlying-count": "1.0",
        "is-confirmed": True,
        "notional-value": "0.5",
        "display-factor": "0.01",
        "settlement-type": "Future",
        "strike-factor": "1.0",
        "maturity-date": "2026-12-18",
        "is-exercisable-weekly": True,
        "last-trade-time": "0",
        "days-to-expiration": 30,
        "is-closing-only": False,
        "active": True,
        "stops-trading-at": "2026-12-18T20:00:00.000+00:00",
        "expires-at": "2026-12-18T20:00:00.000+00:00",
    },
}
CRYPTOS: dict[str, dict[str, Any]] = {
    s: {
        "id": i,
        "symbol": s,
        "instrument-type": "Cryptocurrency",
        "short-description": d,
        "description": f"{d} to USD",
        "is-closing-only": False,
        "active": True,
        "tick-size": "0.01",
        "streamer-symbol": f"{s}:CXTALP",
    }
    for i, (s, d) in enumerate([("BTC/USD", "Bitcoin"), ("ETH/USD", "Ethereum")], start=1)
}


# --- state ------------------------------------------------------------------------------------


@dataclass
class SimState:
    """Everything the server knows; mutate freely from tests."""

    account_numbers: tuple[str, ...] = ("5WT00000", "5WT00001")
    token_ttl: float = 900.0
    credentials: tuple[str, str] | None = None
    dxlink_url: str = "ws://127.0.0.1:0/realtime"
    quote_token: str = field(default_factory=lambda: "sim-quote-" + secrets.token_hex(8))
    latency: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    complex_orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: accepted order POSTs (placed orders, complex members included, dry-runs excluded)
    orders_accepted: int = 0
    token_grants: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100001))

    def __post_init__(self) -> None:
        for n in self.account_numbers:
            self.transactions.setdefault(n, _seed_transactions(n, 7))
        self.chains: dict[str, dict[str, Any]] = {}
        self.options: dict[str, dict[str, Any]] = {}
        for root, center in (("SPY", 600), ("AAPL", 250)):
            chain, opts = _build_chain(root, center)
            self.chains[root] = chain
            self.options.update(opts)

    def next_id(self) -> int:
        return next(self._ids)

    def summary(self) -> dict[str, Any]:
        return {
            "orders_accepted": self.orders_accepted,
            "token_grants": self.token_grants,
            "orders": len(self.orders),
            "complex_orders": len(self.complex_orders),
            "requests": dict(self.requests),
            "faults": [asdict(f) for f in self.faults],
        }


# --- app --------------------------------------------------------------------------------------


def _state(request: web.Request) -> SimState:
    st: SimState = request.app[STATE_KEY]
    return st


STATE_KEY = web.AppKey("ttfast_sim_state", SimState)


def _ok(
    request: web.Request, data: Any, status: int = 200, pagination: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"data": data, "api-version": "v1", "context": request.path}
    if pagination is not None:
        body["pagination"] = pagination
    return web.json_response(body, status=status)


def _items(request: web.Request, items: list[Any]) -> web.Response:
    return _ok(request, {"items": items})


def _paged(request: web.Request, items: list[Any], default_per_page: int) -> web.Response:
    q = request.query
    try:
        per_page = max(1, int(q.get("per-page", default_per_page)))
        offset = max(0, int(q.get("page-offset", 0)))
    except ValueError:
        return _err(400, "invalid_params", "per-page/page-offset must be integers")
    total = len(items)
    pages = max(1, -(-total // per_page))
    chunk = items[offset * per_page : (offset + 1) * per_page]
    pag = {
        "per-page": per_page,
        "page-offset": offset,
        "item-offset": offset * per_page,
        "total-items": total,
        "total-pages": pages,
        "current-item-count": len(chunk),
        "previous-link": None,
        "next-link": None,
        "paging-link-template": None,
    }
    return _ok(request, {"items": chunk}, pagination=pag)


@web.middleware
async def _fault_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    st = _state(request)
    st.requests[f"{request.method} {request.path}"] += 1
    if st.latency:
        await asyncio.sleep(st.latency)
    fault = next((f for f in st.faults if f.matches(request)), None)
    if fault is None:
        return await handler(request)
    if fault.count > 0:
        fault.count -= 1
    log.info("sim fault %s on %s %s", fault.kind, request.method, request.path)
    if fault.kind == "latency":
        await asyncio.sleep(fault.seconds)
        return await handler(request)
    resp: web.StreamResponse | None = None
    if fault.after_handler:
        resp = await handler(request)
    if fault.kind == "hang":
        await asyncio.sleep(fault.seconds or 3600.0)
        return resp if resp is not None else await handler(request)
    if fault.kind == "status":
        if fault.body is not None:
            return web.json_response(fault.body, status=fault.status)
        return _err(fault.status, "sim_fault", f"simulated HTTP {fault.status}")
    if fault.kind == "malformed":
        return web.Response(
            body=b'{"data": {"items": [{"id": 1,', status=200, content_type="application/json"
        )
    # drop: close the socket without answering
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # aiohttp treats this as a lost client: nothing is written


@web.middleware
async def _auth_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sim/"):
        return await handler(request)
    if not _UA_RE.match(request.headers.get("User-Agent", "")):
        return _err(401, "invalid_user_agent", "User-Agent must look like <product>/<version>")
    if request.path == "/oauth/token":
        return await handler(request)
    st = _state(request)
    auth = request.headers.get("Authorization", "")
    tok = auth[7:] if auth.startswith("Bearer ") else ""
    exp = st.tokens.get(tok)
    if exp is None or time.time() >= exp:
        return _err(401, "token_invalid", "This token is invalid or has expired")
    return await handler(request)


async def _oauth_token(request: web.Request) -> web.Response:
    st = _state(request)
    raw = await request.read()
    ctype = request.headers.get("Content-Type", "")
    try:
        if "json" in ctype:
            body = json.loads(raw)
        else:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if not isinstance(body, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        return web.json_response(
            {"error": "invalid_request", "error_description": "malformed body"}, status=400
        )
    if body.get("grant_type") != "refresh_token":
        return web.json_response(
            {"error": "unsupported_grant_type", "error_description": "only refresh_token"},
            status=400,
        )
    secret, refresh = body.get("client_secret"), body.get("refresh_token")
    if not secret or not refresh:
        return web.json_response(
            {"error": "invalid_request", "error_description": "missing credentials"}, status=400
        )
    if st.credentials is not None and (secret, refresh) != st.credentials:
        return web.json_response(
            {"error": "invalid_grant", "error_description": "Grant revoked or invalid"}, status=401
        )
    token = "sim-at-" + secrets.token_urlsafe(24)
    st.tokens[token] = time.time() + st.token_ttl
    st.token_grants += 1
    return web.json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": st.token_ttl,
            "scope": "read trade",
        }
    )


def _account(request: web.Request) -> str:
    n = request.match_info["account"]
    if n not in _state(request).account_numbers:
        raise web.HTTPNotFound(
            text=json.dumps(
                {"error": {"code": "record_not_found", "message": f"Account {n} not found"}}
            ),
            content_type="application/json",
        )
    return n


async def _customer(request: web.Request) -> web.Response:
    return _ok(request, CUSTOMER)


async def _accounts(request: web.Request) -> web.Response:
    st = _state(request)
    return _items(
        request,
        [
            {"account": _seed_account(n, f"sim {i}"), "authority-level": "owner"}
            for i, n in enumerate(st.account_numbers)
        ],
    )


async def _one_account(request: web.Request) -> web.Response:
    n = _account(request)
    return _ok(request, _seed_account(n, "sim"))


async def _balances(request: web.Request) -> web.Response:
    n = _account(request)
    cur = request.match_info.get("currency", "USD")
    if cur != "USD":
        return _err(404, "record_not_found", f"no {cur} balance")
    return _ok(request, _seed_balance(n))


async def _positions(request: web.Request) -> web.Response:
    n = _account(request)
    pos = _seed_positions(n)
    unders = request.query.getall("underlying-symbol[]", [])
    if unders:
        pos = [p for p in pos if p["underlying-symbol"] in unders]
    return _items(request, pos)


async def _transactions(request: web.Request) -> web.Response:
    n = _account(request)
    return _paged(request, _state(request).transactions[n], 250)


async def _total_fees(request: web.Request) -> web.Response:
    _account(request)
    return _ok(request, {"total-fees": "0.0", "total-fees-effect": "None"})


async def _trading_status(request: web.Request) -> web.Response:
    return _ok(request, _seed_trading_status(_account(request)))


# --- orders -------------------------------------------------------------------------------------

_BUYS = {"Buy to Open", "Buy to Close", "Buy"}
_SELLS = {"Sell to Open", "Sell to Close", "Sell"}


def _preflight(o: Any) -> list[dict[str, str]]:
    """Server-side checks mirroring the documented 422 preflight failures."""
    if not isinstance(o, dict):
        return [{"code": "invalid_order", "message": "order must be an object"}]
    errs: list[dict[str, str]] = []
    legs = o.get("legs")
    if not isinstance(legs, list) or not legs or not all(isinstance(x, dict) for x in legs):
        return [{"code": "invalid_legs", "message": "An order needs at least one leg."}]
    ot, tif = o.get("order-type"), o.get("time-in-force")
    if not ot or not tif:
        errs.append({"code": "invalid_order", "message": "order-type and time-in-force required"})
    actions = {x.get("action") for x in legs}
    effect = o.get("price-effect") or o.get("value-effect")
    if effect == "Credit" and actions <= _BUYS:
        errs.append({"code": "cant_buy_for_credit", "message": "You cannot buy for a credit."})
    if effect == "Debit" and actions <= _SELLS:
        errs.append({"code": "cant_sell_for_debit", "message": "You cannot sell for a debit."})
    if ot == "Market" and tif in ("GTC", "GTD"):
        errs.append(
            {
                "code": "gtc_market_orders_not_supported",
                "message": "GTC/GTD Market orders are not supported.",
            }
        )
    if ot in ("Limit", "Stop Limit") and _dec(o.get("price")) is None:
        errs.append({"code": "price_required", "message": "A price is required."})
    if ot in ("Stop", "Stop Limit") and _dec(o.get("stop-trigger")) is None:
        errs.append({"code": "stop_trigger_required", "message": "A stop trigger is required."})
    if o.get("price") is not None and o.get("value") is not None:
        errs.append({"code": "price_and_value", "message": "Price and value are exclusive."})
    if tif == "GTD" and not o.get("gtc-date"):
        errs.append({"code": "gtc_date_required", "message": "GTD orders need a gtc-date."})
    return errs


def _underlying(leg: dict[str, Any]) -> tuple[str, str]:
    sym = str(leg.get("symbol", ""))
    it = str(leg.get("instrument-type", "Equity"))
    if it == "Equity Option":
        return sym[:6].strip() or sym, "Equity"
    if it == "Future Option":
        return sym.split(" ")[0].lstrip("."), "Future"
    return sym, it


def _num(x: Any) -> Any:
    d = _dec(x)
    if d is None:
        return None
    return int(d) if d == d.to_integral_value() else str(d)


def _make_order(
    st: SimState, account: str, o: dict[str, Any], dry_run: bool, status: str = "Live"
) -> dict[str, Any]:
    now = _now()
    legs = []
    for x in o["legs"]:
        q = _num(x.get("quantity"))
        legs.append(
            {
                "instrument-type": x.get("instrument-type"),
                "symbol": x.get("symbol"),
                "quantity": q,
                "remaining-quantity": q,
                "action": x.get("action"),
                "fills": [],
            }
        )
    und, und_type = _underlying(o["legs"][0])
    sizes = [leg["quantity"] for leg in legs if isinstance(leg["quantity"], int)]
    order: dict[str, Any] = {
        "account-number": account,
        "time-in-force": o.get("time-in-force"),
        "order-type": o.get("order-type"),
        "size": min(sizes) if sizes else 1,
        "underlying-symbol": und,
        "underlying-instrument-type": und_type,
        "status": "Received" if dry_run else status,
        "cancellable": True,
        "editable": True,
        "edited": False,
        "received-at": _iso(now),
        "updated-at": 0 if dry_run else _ms(now),
        "legs": legs,
    }
    if not dry_run:
        order["id"] = st.next_id()
        order["live-at"] = _iso(now)
    for k in ("price", "stop-trigger", "value"):
        if o.get(k) is not None:
            d = _dec(o[k])
            order[k] = str(d) if d is not None else o[k]
    for k in (
        "price-effect",
        "value-effect",
        "gtc-date",
        "external-identifier",
        "source",
        "partition-key",
    ):
        if o.get(k) is not None:
            order[k] = o[k]
    return order


def _bpe(o: dict[str, Any]) -> dict[str, Any]:
    price = _dec(o.get("price") or o.get("value") or o.get("stop-trigger")) or Decimal(0)
    mult = 100 if any(leg.get("instrument-type") == "Equity Option" for leg in o["legs"]) else 1
    size = Decimal(o.get("size") or 1)
    impact = (price * size * mult).quantize(Decimal("0.001"))
    eff = o.get("price-effect") or o.get("value-effect") or "Debit"
    cur = Decimal("45657.048")
    new = cur - impact if eff == "Debit" else cur
    return {
        "change-in-margin-requirement": str(impact),
        "change-in-margin-requirement-effect": eff,
        "change-in-buying-power": str(impact),
        "change-in-buying-power-effect": eff,
        "current-buying-power": str(cur),
        "current-buying-power-effect": "Credit",
        "new-buying-power": str(new),
        "new-buying-power-effect": "Credit",
        "isolated-order-margin-requirement": str(impact),
        "isolated-order-margin-requirement-effect": eff,
        "is-spread": len(o["legs"]) > 1,
        "impact": str(impact),
        "effect": eff,
    }


_FEES = {
    "regulatory-fees": "0.02",
    "regulatory-fees-effect": "Debit",
    "clearing-fees": "0.08",
    "clearing-fees-effect": "Debit",
    "commission": "1.0",
    "commission-effect": "Debit",
    "proprietary-index-option-fees": "0.0",
    "proprietary-index-option-fees-effect": "None",
    "total-fees": "1.1",
    "total-fees-effect": "Debit",
}


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"code": "invalid_json", "message": "Malformed JSON"}}),
            content_type="application/json",
        ) from None


def _preflight_error(errs: list[dict[str, str]]) -> web.Response:
    return _err(422, "preflight_check_failure", "One or more preflight checks failed", errs)


async def _place(request: web.Request) -> web.Response:
    st = _state(request)
    n = _account(request)
    dry = request.path.endswith("/dry-run")
    o = await _json_body(request)
    errs = _preflight(o)
    if errs:
        return _preflight_error(errs)
    order = _make_order(st, n, o, dry)
    if not dry:
        st.orders[order["id"]] = order
        st.orders_accepted += 1
        log.info("sim order %d accepted (%s)", order["id"], order.get("external-identifier"))
    data = {
        "order": order,
        "warnings": [],
        "buying-power-effect": _bpe(order),
        "fee-calculation": _FEES,
    }
    return _ok(request, data, status=200 if dry else 201)


def _find(request: web.Request, n: str) -> dict[str, Any]:
    try:
        oid = int(request.match_info["order_id"])
    except ValueError:
        oid = -1
    o = _state(request).orders.get(oid)
    if o is None or o["account-number"] != n:
        raise web.HTTPNotFound(
            text=json.dumps({"error": {"code": "record_not_found", "message": "Order not found"}}),
            content_type="application/json",
        )
    return o


def _cancel(o: dict[str, Any]) -> None:
    now = _now()
    o.update(
        {
            "status": "Cancelled",
            "cancellable": False,
            "editable": False,
            "cancelled-at": _iso(now),
            "terminal-at": _iso(now),
            "updated-at": _ms(now),
        }
    )


async def _get_order(request: web.Request) -> web.Response:
    return _ok(request, _find(request, _account(request)))


async def _delete_order(request: web.Request) -> web.Response:
    n = _account(request)
    o = _find(request, n)
    if o["status"] in _TERMINAL or o.get("complex-order-id"):
        code = "order_not_cancellable" if o["status"] in _TERMINAL else "cancel_complex_order"
        return _err(422, code, f"order {o['id']} cannot be cancelled here ({o['status']})")
    _cancel(o)
    return _ok(request, o)


async def _replace_order(request: web.Request) -> web.Response:
    st = _state(request)
    n = _account(request)
    old = _find(request, n)
    if old["status"] in _TERMINAL:
        return _err(422, "order_not_editable", f"order {old['id']} is {old['status']}")
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _err(400, "invalid_order", "body must be an object")
    merged = {k: old.get(k) for k in ("time-in-force", "order-type", "gtc-date")}
    merged["legs"] = [
        {k: leg[k] for k in ("instrument-type", "symbol", "quantity", "action")}
        for leg in old["legs"]
    ]
    merged.update({k: v for k, v in body.items() if k != "legs"})
    errs = _preflight(merged)
    if errs:
        return _preflight_error(errs)
    new = _make_order(st, n, merged, dry_run=False)
    new["replaces-order-id"] = old["id"]
    _cancel(old)
    old["replacing-order-id"] = new["id"]
    st.orders[new["id"]] = new
    st.orders_accepted += 1
    return _ok(request, new)


async def _live_orders(request: web.Request) -> web.Response:
    n = _account(request)
    return _items(request, [o for o in _state(request).orders.values() if o["account-number"] == n])


async def _search_orders(request: web.Request) -> web.Response:
    n = _account(request)
    q = request.query
    statuses = set(q.getall("status[]", []))
    und = q.get("underlying-symbol")
    items = [
        o
        for o in _state(request).orders.values()
        if o["account-number"] == n
        and (not statuses or o["status"] in statuses)
        and (not und or o["underlying-symbol"] == und)
    ]
    items.sort(key=lambda o: o["id"], reverse=q.get("sort", "Desc") != "Asc")
    return _paged(request, items, 10)


async def _place_complex(request: web.Request) -> web.Response:
    st = _state(request)
    n = _account(request)
    dry = request.path.endswith("/dry-run")
    c = await _json_body(request)
    if not isinstance(c, dict) or c.get("type") not in ("OCO", "OTO", "OTOCO", "PAIRS"):
        return _err(400, "invalid_complex_order", "type must be OCO, OTO, OTOCO or PAIRS")
    orders = c.get("orders")
    trig = c.get("trigger-order")
    if not isinstance(orders, list) or not orders:
        return _err(400, "invalid_complex_order", "orders[] required")
    if (c["type"] in ("OTO", "OTOCO")) != (trig is not None):
        return _err(400, "invalid_complex_order", f"{c['type']}: trigger-order mismatch")
    errs = [e for o in ([trig] if trig else []) + orders for e in _preflight(o)]
    if errs:
        return _preflight_error(errs)
    contingent = "Contingent" if trig else "Live"
    cid = None if dry else st.next_id()
    made_trig = _make_order(st, n, trig, dry) if trig else None
    made = [_make_order(st, n, o, dry, status=contingent) for o in orders]
    cx: dict[str, Any] = {
        "account-number": n,
        "type": c["type"],
        "orders": made,
        "related-orders": [],
    }
    if made_trig is not None:
        cx["trigger-order"] = made_trig
    if cid is not None:
        cx["id"] = cid
        for o in ([made_trig] if made_trig else []) + made:
            o["complex-order-id"] = cid
            st.orders[o["id"]] = o
            st.orders_accepted += 1
        st.complex_orders[cid] = cx
    data = {
        "complex-order": cx,
        "warnings": [],
        "buying-power-effect": _bpe(made_trig or made[0]),
        "fee-calculation": _FEES,
    }
    return _ok(request, data, status=200 if dry else 201)


def _find_complex(request: web.Request, n: str) -> dict[str, Any]:
    try:
        cid = int(request.match_info["order_id"])
    except ValueError:
        cid = -1
    cx = _state(request).complex_orders.get(cid)
    if cx is None or cx["account-number"] != n:
        raise web.HTTPNotFound(
            text=json.dumps(
                {"error": {"code": "record_not_found", "message": "Complex order not found"}}
            ),
            content_type="application/json",
        )
    return cx


async def _get_complex(request: web.Request) -> web.Response:
    return _ok(request, _find_complex(request, _account(request)))


async def _live_complex(request: web.Request) -> web.Response:
    n = _account(request)
    return _items(
        request, [c for c in _state(request).complex_orders.values() if c["account-number"] == n]
    )


async def _delete_complex(request: web.Request) -> web.Response:
    cx = _find_complex(request, _account(request))
    members = ([cx["trigger-order"]] if cx.get("trigger-order") else []) + cx["orders"]
    for o in members:
        if o["status"] not in _TERMINAL:
            _cancel(o)
    cx["terminal-at"] = _iso(_now())
    return _ok(request, cx)


# --- instruments / market data ------------------------------------------------------------------


def _lookup(table: dict[str, dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    v = table.get(key)
    if v is None:
        raise web.HTTPNotFound(
            text=json.dumps(
                {"error": {"code": "record_not_found", "message": f"{what} {key} not found"}}
            ),
            content_type="application/json",
        )
    return v


async def _equities(request: web.Request) -> web.Response:
    syms = request.query.getall("symbol[]", []) or request.query.getall("symbol", [])
    items = [EQUITIES[s] for s in syms if s in EQUITIES] if syms else list(EQUITIES.values())
    return _items(request, items)


async def _equity(request: web.Request) -> web.Response:
    return _ok(request, _lookup(EQUITIES, request.match_info["symbol"], "Equity"))


async def _equity_option(request: web.Request) -> web.Response:
    sym = request.match_info["symbol"]
    opts = _state(request).options
    if sym not in opts:  # accept the unpadded OCC form too
        root, _, rest = sym.partition(" ")
        sym = f"{root:<6}{rest.strip()}"
    return _ok(request, _lookup(opts, sym, "Equity option"))


async def _futures(request: web.Request) -> web.Response:
    syms = request.query.getall("symbol[]", [])
    codes = request.query.getall("product-code[]", [])
    items = [
        f
        for f in FUTURES.values()
        if (not syms or f["symbol"] in syms or f["symbol"].lstrip("/") in syms)
        and (not codes or f["product-code"] in codes)
    ]
    return _items(request, items)


async def _future(request: web.Request) -> web.Response:
    return _ok(request, _lookup(FUTURES, "/" + request.match_info["symbol"].lstrip("/"), "Future"))


async def _future_option(request: web.Request) -> web.Response:
    return _ok(request, _lookup(FUTURE_OPTIONS, request.match_info["symbol"], "Future option"))


async def _cryptos(request: web.Request) -> web.Response:
    syms = request.query.getall("symbol[]", [])
    return _items(request, [c for c in CRYPTOS.values() if not syms or c["symbol"] in syms])


async def _crypto(request: web.Request) -> web.Response:
    return _ok(request, _lookup(CRYPTOS, request.match_info["symbol"], "Cryptocurrency"))


async def _nested_chain(request: web.Request) -> web.Response:
    chain = _lookup(_state(request).chains, request.match_info["symbol"], "Option chain")
    return _items(request, [chain])


async def _market_metrics(request: web.Request) -> web.Response:
    syms = [s for s in request.query.get("symbols", "").split(",") if s]
    items = []
    for i, s in enumerate(syms):
        items.append(
            {
                "symbol": s,
                "implied-volatility-index": f"0.{21 + i}",
                "implied-volatility-index-rank": f"0.{30 + i}",
                "implied-volatility-percentile": "0.5",
                "liquidity-rating": 4,
                "beta": "1.05",
                "market-cap": 2.5e12,
                "updated-at": _iso(_now()),
            }
        )
    return _items(request, items)


async def _symbol_search(request: web.Request) -> web.Response:
    prefix = request.match_info["prefix"].upper()
    return _items(
        request,
        [
            {"symbol": e["symbol"], "description": e["description"]}
            for e in EQUITIES.values()
            if e["symbol"].startswith(prefix)
        ],
    )


async def _quote_token(request: web.Request) -> web.Response:
    st = _state(request)
    return _ok(
        request,
        {
            "token": st.quote_token,
            "dxlink-url": st.dxlink_url,
            "level": "api",
            "expires-at": _iso(_now() + timedelta(hours=24)),
        },
    )


# --- admin --------------------------------------------------------------------------------------


async def _sim_state(request: web.Request) -> web.Response:
    return web.json_response(_state(request).summary())


async def _sim_add_fault(request: web.Request) -> web.Response:
    body = await _json_body(request)
    try:
        f = Fault(**body)
    except TypeError as exc:
        return _err(400, "invalid_fault", str(exc))
    if f.kind not in ("latency", "hang", "status", "malformed", "drop"):
        return _err(400, "invalid_fault", f"unknown fault kind {f.kind!r}")
    _state(request).faults.append(f)
    return web.json_response(asdict(f), status=201)


async def _sim_clear_faults(request: web.Request) -> web.Response:
    _state(request).faults.clear()
    return web.json_response({"faults": []})


def create_rest_app(
    dxlink_url: str = "ws://127.0.0.1:0/realtime",
    *,
    state: SimState | None = None,
    token_ttl: float = 900.0,
    latency: float = 0.0,
    faults: list[Fault] | None = None,
    credentials: tuple[str, str] | None = None,
) -> web.Application:
    """The aiohttp application. ``state`` (or the other keywords to build one) holds the data."""
    st = state or SimState(
        token_ttl=token_ttl, credentials=credentials, dxlink_url=dxlink_url, latency=latency
    )
    if faults:
        st.faults.extend(faults)
    app = web.Application(middlewares=[_fault_mw, _auth_mw])
    app[STATE_KEY] = st
    r = app.router
    a = "/accounts/{account}"
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/oauth/token", _oauth_token),
        ("GET", "/customers/me", _customer),
        ("GET", "/customers/me/accounts", _accounts),
        ("GET", "/customers/me/accounts/{account}", _one_account),
        ("GET", a + "/balances", _balances),
        ("GET", a + "/balances/{currency}", _balances),
        ("GET", a + "/positions", _positions),
        ("GET", a + "/transactions", _transactions),
        ("GET", a + "/transactions/total-fees", _total_fees),
        ("GET", a + "/trading-status", _trading_status),
        ("POST", a + "/orders", _place),
        ("POST", a + "/orders/dry-run", _place),
        ("GET", a + "/orders", _search_orders),
        ("GET", a + "/orders/live", _live_orders),
        ("GET", a + "/orders/{order_id}", _get_order),
        ("PUT", a + "/orders/{order_id}", _replace_order),
        ("DELETE", a + "/orders/{order_id}", _delete_order),
        ("POST", a + "/complex-orders", _place_complex),
        ("POST", a + "/complex-orders/dry-run", _place_complex),
        ("GET", a + "/complex-orders/live", _live_complex),
        ("GET", a + "/complex-orders/{order_id}", _get_complex),
        ("DELETE", a + "/complex-orders/{order_id}", _delete_complex),
        ("GET", "/instruments/equities", _equities),
        ("GET", "/instruments/equities/{symbol}", _equity),
        ("GET", "/instruments/equity-options/{symbol}", _equity_option),
        ("GET", "/instruments/futures", _futures),
        ("GET", "/instruments/futures/{symbol}", _future),
        ("GET", "/instruments/future-options/{symbol}", _future_option),
        ("GET", "/instruments/cryptocurrencies", _cryptos),
        ("GET", "/instruments/cryptocurrencies/{symbol}", _crypto),
        ("GET", "/option-chains/{symbol}/nested", _nested_chain),
        ("GET", "/market-metrics", _market_metrics),
        ("GET", "/symbols/search/{prefix}", _symbol_search),
        ("GET", "/api-quote-tokens", _quote_token),
        ("GET", "/_sim/state", _sim_state),
        ("POST", "/_sim/faults", _sim_add_fault),
        ("DELETE", "/_sim/faults", _sim_clear_faults),
    ]
    for method, path, h in routes:
        r.add_route(method, path, h)
    return app


class RestSimServer:
    """Owns a :class:`SimState` and serves it; ``await start()`` returns the base URL."""

    def __init__(
        self,
        dxlink_url: str = "ws://127.0.0.1:0/realtime",
        *,
        token_ttl: float = 900.0,
        latency: float = 0.0,
        credentials: tuple[str, str] | None = None,
        account_numbers: tuple[str, ...] = ("5WT00000", "5WT00001"),
    ) -> None:
        self.state = SimState(
            account_numbers=account_numbers,
            token_ttl=token_ttl,
            credentials=credentials,
            dxlink_url=dxlink_url,
            latency=latency,
        )
        self.app = create_rest_app(dxlink_url, state=self.state)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def add_fault(
        self, kind: Literal["latency", "hang", "status", "malformed", "drop"], **kw: Any
    ) -> Fault:
        """Add a :class:`Fault` (keywords as its fields); returns it (``count`` is live)."""
        if kind not in ("latency", "hang", "status", "malformed", "drop"):
            raise ValueError(f"unknown fault kind {kind!r}")
        f = Fault(kind=kind, **kw)
        self.state.faults.append(f)
        return f

    def clear_faults(self) -> None:
        self.state.faults.clear()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        h, p = sock.getsockname()[:2]
        self.base_url = f"http://{h}:{p}"
        log.info("REST sim listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RestSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    dxlink_url: str = "ws://127.0.0.1:8081/realtime",
    token_ttl: float = 900.0,
) -> None:
    """Run the REST sim until cancelled (for `ttfast sim`)."""
    srv = RestSimServer(dxlink_url, token_ttl=token_ttl)
    url = await srv.start(host, port)
    print(f"ttfast REST sim on {url} (dxLink URL handed out: {dxlink_url})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await srv.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ttfast.sim.rest_server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--dxlink-url", default="ws://127.0.0.1:8081/realtime")
    ap.add_argument("--token-ttl", type=float, default=900.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.dxlink_url, args.token_ttl))


if __name__ == "__main__":
    main()
