"""Async REST client for the tastytrade API (accounts, orders, instruments, quote tokens).

``TastytradeClient(session)`` wraps an :class:`ttfast.rest.OAuthSession`. Responses are decoded
with msgspec into the lenient models of :mod:`ttfast.rest.models` (each keeps ``.raw``).

Retry policy (spec §5.5, §6):

* GET: retried with exponential backoff + jitter on connection errors, timeouts, 5xx and 429
  (``max_retries`` times); a 401 forces one token refresh and one retry.
* Order mutations (place, replace, cancel, complex place/cancel, dry-runs) are sent **exactly
  once** and **never follow a redirect**. Every submission carries an ``external-identifier``
  (generated if absent).

What an order mutation raises (issue 13):

* **Definite rejection** → :class:`ttfast.errors.ApiError` (``AuthError`` for 403,
  ``RateLimitedError`` for 429; 422 exposes the nested preflight codes as ``err.codes``): a 4xx
  other than 401/408 whose body is the API's error envelope ``{"error": {"code": ..., ...}}``.
  Nothing was created or changed.
* **Outcome unknown** → :class:`ttfast.errors.OrderOutcomeUnknown` (place, complex place,
  replace, cancel, complex cancel): everything that is neither a definite rejection nor a
  well-formed success: timeout, connection lost (also after the status line), any 5xx, 401, 408,
  a redirect (3xx, not followed), a 4xx without the error envelope, a 2xx whose body is not the
  expected JSON. It carries ``external_identifier`` (resolve with
  :meth:`TastytradeClient.find_order_by_external_id`), ``order_id`` (cancel/replace), ``status``
  and the raw response (bounded ``body``, ``headers`` without secrets).
* Well-formed success: place → 2xx with ``data.order`` carrying an ``id``; complex place →
  ``data.complex-order`` with an ``id``; replace → ``data`` = the new order with an ``id``;
  cancel → 2xx whose body is empty or a JSON object (returns the order if ``data`` is one).
* Dry-runs create nothing, so their outcome is never unknown: a definite rejection is an
  ``ApiError`` as above and every other failure is an ``ApiError`` too (``ApiConnectionError``
  for timeouts/lost connections, ``ResponseDecodeError`` for an unusable 2xx body, ``ApiError``
  with ``code="redirect_not_followed"`` for a 3xx, the status for a 5xx); calling again is safe.
* A connection that was never established raises ``ApiConnectionError`` for every call (the
  request was not sent).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from ttfast._retry import Backoff
from ttfast._util import redact_url
from ttfast.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    OrderOutcomeUnknown,
    RateLimitedError,
    ResponseDecodeError,
)
from ttfast.rest import models as m
from ttfast.rest.lane import LaneLost, LaneNotSent
from ttfast.rest.orders import (
    ComplexOrderRequest,
    OrderRequest,
    validate_complex_order,
    validate_order,
)
from ttfast.rest.session import OAuthSession

__all__ = ["QuoteTokenProvider", "TastytradeClient", "new_external_identifier", "parse_error"]

log = logging.getLogger("ttfast.rest.client")

T = TypeVar("T", bound=m.ApiModel)
QuoteTokenProvider = Callable[[], Awaitable[tuple[str, str]]]
Params = Mapping[str, Any] | None

_QUOTE_TOKEN_TTL = 24 * 3600.0


def new_external_identifier() -> str:
    """A fresh unique order tag: ``ttf-`` + 32 hex chars."""
    return "ttf-" + uuid.uuid4().hex


def _seg(s: str) -> str:
    """URL-encode one path segment (``/`` → ``%2F``, space → ``%20``)."""
    return quote(s, safe="")


def _error_pairs(items: Any) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    if isinstance(items, list):
        for e in items:
            if isinstance(e, dict):
                if "code" in e or "message" in e:
                    out.append((str(e.get("code", "")), str(e.get("message", ""))))
                elif "domain" in e or "reason" in e:
                    out.append((str(e.get("domain", "")), str(e.get("reason", ""))))
    return tuple(out)


def parse_error(status: int, body: bytes, path: str) -> ApiError:
    """Build the right :class:`ApiError` subclass from an error response."""
    code: str | int | None = None
    message = ""
    errors: tuple[tuple[str, str], ...] = ()
    try:
        d = msgspec.json.decode(body)
    except msgspec.DecodeError:
        d = None
        message = f"non-JSON error body ({len(body)} bytes)"
    if isinstance(d, dict):
        err = d.get("error")
        if isinstance(err, dict):
            c = err.get("code")
            code = c if isinstance(c, int | str) else None
            message = str(err.get("message") or "")
            errors = _error_pairs(err.get("errors"))
        elif "error_code" in d or "error_description" in d or isinstance(err, str):
            c = d.get("error_code", err)
            code = None if c is None else str(c)
            message = str(d.get("error_description") or "")
        else:
            message = "error response without an 'error' member"
    cls: type[ApiError] = ApiError
    if status in (401, 403):
        cls = AuthError
    elif status == 429:
        cls = RateLimitedError
    return cls(status, code, message, errors=errors, path=path)


def _definite_rejection(status: int, body: bytes) -> bool:
    """True if a response to an order mutation is a definite rejection: a 4xx (other than 401,
    which may come from a gateway, and 408) whose body is the API's error envelope
    ``{"error": {"code": <non-empty string or number>, ...}}`` (spec §6)."""
    if not 400 <= status < 500 or status in (401, 408):
        return False
    try:
        d = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    err = d.get("error") if isinstance(d, dict) else None
    if not isinstance(err, dict):
        return False
    code = err.get("code")
    if isinstance(code, bool):
        return False
    return isinstance(code, int) or (isinstance(code, str) and bool(code.strip()))


class _Response:
    __slots__ = ("body", "data", "headers", "raw", "status")

    def __init__(
        self,
        status: int,
        body: Any,
        raw: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.status = status
        self.body = body  # decoded JSON (dict)
        self.data: Any = body.get("data") if isinstance(body, dict) else None
        self.raw = raw  # the undecoded body (mutations only)
        self.headers = headers or []


class _Mutation:
    """One order mutation: what to put into an :class:`OrderOutcomeUnknown` about it."""

    __slots__ = ("dry_run", "external_identifier", "method", "order_id", "path", "token")

    def __init__(
        self,
        method: str,
        path: str,
        external_identifier: str | None,
        order_id: int | None,
        dry_run: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.external_identifier = external_identifier
        self.order_id = order_id
        self.dry_run = dry_run
        self.token = ""  # the access token sent: scrubbed from anything we keep

    def unknown(
        self,
        cause: str,
        status: int = 0,
        raw: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> OrderOutcomeUnknown:
        log.error(
            "%s %s: outcome unknown (%s); NOT resending; external-identifier=%s order-id=%s",
            self.method,
            self.path,
            cause,
            self.external_identifier,
            self.order_id,
        )
        return OrderOutcomeUnknown(
            self.external_identifier,
            self.method,
            self.path,
            cause,
            status,
            body=raw,
            headers=headers,
            order_id=self.order_id,
            redact=(self.token,),
        )

    def unknown_from(self, r: _Response, what: str) -> OrderOutcomeUnknown:
        return self.unknown(f"HTTP {r.status} {what}", r.status, r.raw, r.headers)


class TastytradeClient:
    """Typed async client. All methods are coroutines; list endpoints return ``list[Model]``.

    ``max_retries``/``retry_backoff`` govern GET retries; ``order_timeout`` the single attempt of
    order mutations (default: the session's request timeout).
    """

    def __init__(
        self,
        session: OAuthSession,
        *,
        max_retries: int = 3,
        retry_backoff: float = 0.25,
        retry_backoff_max: float = 8.0,
        order_timeout: float | None = None,
        order_lane: bool = True,
    ) -> None:
        self.session = session
        #: order mutations over the session's kept-alive order connection (`ttfast.rest.lane`)
        #: rather than aiohttp's pool (which still takes one sent while another is in flight)
        self.order_lane = order_lane
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.order_timeout = order_timeout
        self._quote_token: m.QuoteToken | None = None
        self._quote_token_expiry = 0.0
        self._quote_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TastytradeClient({self.session!r})"

    async def __aenter__(self) -> TastytradeClient:
        await self.session.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    # --- transport ------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.session.base_url + path

    @staticmethod
    def _decode(status: int, body: bytes, path: str) -> _Response:
        try:
            decoded = m.json_decoder.decode(body) if body else {}
        except msgspec.DecodeError:
            e = ResponseDecodeError(
                status, "malformed_json", "response body is not valid JSON", path=path
            )
            raise e from None
        return _Response(status, decoded)

    async def _get(self, path: str, params: Params = None) -> _Response:
        """GET with retries (5xx/429/connection/timeout/malformed) and one refresh on 401."""
        refreshed = False
        # "centered": retry_backoff_max caps the nominal delay d, each delay is in [d/2, 3d/2)
        backoff = Backoff(self.retry_backoff, self.retry_backoff_max, jitter="centered")
        while True:
            headers = await self.session.headers()
            try:
                async with self.session.http.get(
                    self._url(path), params=_query(params), headers=headers
                ) as resp:
                    status = resp.status
                    body = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                err: ApiError = ApiConnectionError(
                    0, "connection_error", f"GET failed: {type(exc).__name__}", path=path
                )
            else:
                if 200 <= status < 300:
                    try:
                        return self._decode(status, body, path)
                    except ResponseDecodeError as e:
                        err = e
                elif status == 401 and not refreshed:
                    refreshed = True
                    log.info("401 on GET %s: refreshing the access token once", path)
                    self.session.invalidate(headers["Authorization"][7:])
                    continue
                else:
                    err = parse_error(status, body, path)
                    if not (status == 429 or status >= 500):
                        raise err
            if backoff.attempt >= self.max_retries:
                raise err
            delay = backoff.next_delay()
            log.warning(
                "GET %s failed (%s); retry %d/%d in %.2fs",
                path,
                err.code or err.status,
                backoff.attempt,
                self.max_retries,
                delay,
            )
            await asyncio.sleep(delay)

    async def _mutate(self, call: _Mutation, body: bytes | None) -> _Response:
        """Send ``call`` once, never following a redirect. Returns the decoded 2xx response;
        raises ApiError for a definite rejection, OrderOutcomeUnknown (ApiError for dry-runs)
        for everything else (see the module docstring)."""
        method, path = call.method, call.path
        headers = await self.session.headers()
        call.token = headers["Authorization"][7:]
        if body is not None:
            headers["Content-Type"] = "application/json"
        total = self.order_timeout or self.session.request_timeout
        status = 0
        rh: list[tuple[str, str]] = []
        cause = ""
        lane = self.session.order_lane if self.order_lane else None
        if lane is not None and not lane.busy:  # the kept-alive order connection
            try:
                status, rh, raw = await lane.request(method, path, headers, body, total)
            except LaneNotSent as exc:  # nothing written: it cannot have reached the server
                raise ApiConnectionError(
                    0, "connection_error", f"{method} not sent: {exc}", path=path
                ) from None
            except LaneLost as exc:
                status, cause = exc.status, exc.cause
        else:  # aiohttp's pool (also while the lane carries another order)
            try:
                async with self.session.http.request(
                    method,
                    self._url(path),
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=total),
                    allow_redirects=False,  # a redirect must never re-send (or GET) an order
                ) as resp:
                    status = resp.status
                    rh = list(resp.headers.items())
                    raw = await resp.read()
            except aiohttp.ClientConnectorError as exc:
                # never connected: the request cannot have reached the server
                raise ApiConnectionError(
                    0, "connection_error", f"{method} not sent: {type(exc).__name__}", path=path
                ) from None
            except (TimeoutError, aiohttp.ClientError) as exc:
                cause = type(exc).__name__
        if cause:  # sent (or maybe sent), no complete response
            if status:
                cause = f"HTTP {status}, body lost: {cause}"
            if call.dry_run:
                raise ApiConnectionError(
                    0, "connection_error", f"{method} failed: {cause}", path=path
                ) from None
            raise call.unknown(cause, status, None, rh) from None
        if 200 <= status < 300:
            try:
                decoded = m.json_decoder.decode(raw) if raw else {}
            except msgspec.DecodeError:
                if call.dry_run:
                    e = ResponseDecodeError(
                        status, "malformed_json", "response body is not valid JSON", path=path
                    )
                    raise e from None
                raise call.unknown(
                    f"HTTP {status} with a malformed (not JSON) body", status, raw, rh
                ) from None
            return _Response(status, decoded, raw, rh)
        if _definite_rejection(status, raw):
            raise parse_error(status, raw, path)
        if status == 401:
            self.session.invalidate(call.token)
        if 300 <= status < 400:
            location = next((v for k, v in rh if k.lower() == "location"), "")
            target = redact_url(location, from_peer=True) or "?"
            cause = f"HTTP {status} redirect to {target} not followed"
            if call.dry_run:
                raise ApiError(status, "redirect_not_followed", cause, path=path)
        elif status == 401 or status >= 500:
            cause = f"HTTP {status}"
        else:
            cause = f"HTTP {status} without the API's error body"
        if call.dry_run:
            raise parse_error(status, raw, path)
        raise call.unknown(cause, status, raw, rh)

    @staticmethod
    def _one(r: _Response, model: type[T], path: str) -> T:
        if not isinstance(r.data, dict):
            raise ResponseDecodeError(
                r.status, "missing_data", "response has no 'data' object", path=path
            )
        return _convert(r.data, model, r.status, path)

    @staticmethod
    def _items(r: _Response, model: type[T], path: str) -> list[T]:
        items = r.data.get("items") if isinstance(r.data, dict) else None
        if not isinstance(items, list):
            raise ResponseDecodeError(
                r.status, "missing_items", "response has no 'data.items'", path=path
            )
        return _convert_list(items, model, r.status, path)

    async def get_one(self, path: str, model: type[T], params: Params = None) -> T:
        """GET an object endpoint (``data`` = object) into ``model``. For endpoints we lack."""
        return self._one(await self._get(path, params), model, path)

    async def get_list(self, path: str, model: type[T], params: Params = None) -> list[T]:
        """GET a list endpoint (``data.items``) into ``model``."""
        return self._items(await self._get(path, params), model, path)

    async def get_all_pages(
        self, path: str, model: type[T], params: Params = None, per_page: int = 250
    ) -> list[T]:
        """GET every page of a paginated endpoint (``page-offset`` 0..total-pages-1)."""
        p = dict(params or {})
        p["per-page"] = per_page
        offset = 0
        out: list[T] = []
        while True:
            p["page-offset"] = offset
            r = await self._get(path, p)
            out.extend(self._items(r, model, path))
            pag = r.body.get("pagination") if isinstance(r.body, dict) else None
            if not isinstance(pag, dict):
                return out
            total_pages = _int(pag.get("total-pages"))
            if total_pages is None or offset >= total_pages - 1:
                return out
            offset += 1

    # --- customer / accounts --------------------------------------------------------------------

    async def get_customer(self) -> m.Customer:
        return await self.get_one("/customers/me", m.Customer)

    async def get_accounts(self, include_closed: bool = False) -> list[m.Account]:
        """Accounts of the customer (``GET /customers/me/accounts``), closed ones filtered out."""
        auths = await self.get_list("/customers/me/accounts", m.AccountAuthority)
        return [
            a.account
            for a in auths
            if a.account is not None and (include_closed or not a.account.is_closed)
        ]

    async def get_account(self, account_number: str) -> m.Account:
        return await self.get_one(f"/customers/me/accounts/{_seg(account_number)}", m.Account)

    async def get_balances(self, account_number: str, currency: str | None = "USD") -> m.Balance:
        """Balances in ``currency`` (``/balances/{currency}``); ``currency=None`` calls
        ``/balances``, which some API versions answer with ``items`` (the first is returned)."""
        path = f"/accounts/{_seg(account_number)}/balances"
        if currency:
            path += "/" + _seg(currency)
        r = await self._get(path)
        if isinstance(r.data, dict) and isinstance(r.data.get("items"), list) and r.data["items"]:
            return _convert(r.data["items"][0], m.Balance, r.status, path)
        return self._one(r, m.Balance, path)

    async def get_positions(self, account_number: str, **filters: Any) -> list[m.Position]:
        """Positions; ``filters`` are query params in snake_case (``underlying_symbol=[..]``...)."""
        return await self.get_list(
            f"/accounts/{_seg(account_number)}/positions", m.Position, _filters(filters)
        )

    async def get_transactions(
        self, account_number: str, per_page: int = 250, **filters: Any
    ) -> list[m.Transaction]:
        """All transactions (every page). ``start_date=date(...)``, ``types=[...]``, ..."""
        return await self.get_all_pages(
            f"/accounts/{_seg(account_number)}/transactions",
            m.Transaction,
            _filters(filters),
            per_page,
        )

    async def get_total_fees(self, account_number: str, day: date | None = None) -> m.TotalFees:
        params = {"date": day.isoformat()} if day else None
        return await self.get_one(
            f"/accounts/{_seg(account_number)}/transactions/total-fees", m.TotalFees, params
        )

    async def get_trading_status(self, account_number: str) -> m.TradingStatus:
        return await self.get_one(
            f"/accounts/{_seg(account_number)}/trading-status", m.TradingStatus
        )

    # --- orders: reads --------------------------------------------------------------------------

    async def get_live_orders(self, account_number: str) -> list[m.Order]:
        """Orders created/updated today in any status, plus working GTCs."""
        return await self.get_list(f"/accounts/{_seg(account_number)}/orders/live", m.Order)

    async def get_order(self, account_number: str, order_id: int) -> m.Order:
        return await self.get_one(
            f"/accounts/{_seg(account_number)}/orders/{int(order_id)}", m.Order
        )

    async def search_orders(
        self,
        account_number: str,
        start_date: date | None = None,
        per_page: int = 100,
        **filters: Any,
    ) -> list[m.Order]:
        """Order search (every page). ``start_date`` defaults to 7 days ago (required by newer
        API versions); other filters: ``end_date``, ``underlying_symbol``, ``status=[...]``..."""
        f = _filters(filters)
        f["start-date"] = (start_date or (date.today() - timedelta(days=7))).isoformat()
        return await self.get_all_pages(
            f"/accounts/{_seg(account_number)}/orders", m.Order, f, per_page
        )

    async def find_order_by_external_id(
        self, account_number: str, external_identifier: str | None, *, search_days: int = 2
    ) -> m.Order | None:
        """Resolve an :class:`OrderOutcomeUnknown`: the order carrying ``external_identifier``
        (live orders first, then order search over ``search_days``), or ``None`` if it does
        not exist. These are GETs, retried as usual.

        Takes ``e.external_identifier`` as it is: ``None`` (what a cancel's outcome-unknown
        carries; cancels send no tag) matches no order and returns ``None`` without a request
        (check ``e.order_id`` with :meth:`get_order` instead); it never matches an untagged
        order."""
        if external_identifier is None:
            return None
        for o in await self.get_live_orders(account_number):
            if o.external_identifier == external_identifier:
                return o
        start = date.today() - timedelta(days=search_days)
        for o in await self.search_orders(account_number, start_date=start):
            if o.external_identifier == external_identifier:
                return o
        return None

    # --- orders: mutations (never resent) -------------------------------------------------------

    @staticmethod
    def _tagged(order: OrderRequest) -> OrderRequest:
        validate_order(order)
        if not order.external_identifier:
            order = order.with_external_identifier(new_external_identifier())
        return order

    async def place_order(self, account_number: str, order: OrderRequest) -> m.OrderResponse:
        """Place an order (once). Generates an ``external-identifier`` if absent.

        Returns ``data`` with ``order`` (carrying its ``id``). A definite rejection raises
        :class:`ApiError`; anything else that is not such a success raises
        :class:`OrderOutcomeUnknown` (look the order up by ``external_identifier``)."""
        order = self._tagged(order)
        path = f"/accounts/{_seg(account_number)}/orders"
        log.info("placing order external-identifier=%s", order.external_identifier)
        call = _Mutation("POST", path, order.external_identifier, None, False)
        r = await self._mutate(call, order.to_json())
        res = _accepted(call, r, m.OrderResponse, "order")
        if res.order is None or res.order.id is None:
            raise call.unknown_from(r, "without data.order.id")
        return res

    async def dry_run_order(self, account_number: str, order: OrderRequest) -> m.OrderResponse:
        """Validate an order server-side (buying-power effect, fees, warnings); nothing routed.
        Every failure is an :class:`ApiError` (a dry-run creates nothing: safe to call again)."""
        order = self._tagged(order)
        path = f"/accounts/{_seg(account_number)}/orders/dry-run"
        call = _Mutation("POST", path, order.external_identifier, None, True)
        r = await self._mutate(call, order.to_json())
        return self._one(r, m.OrderResponse, path)

    async def replace_order(
        self, account_number: str, order_id: int, new_order: OrderRequest
    ) -> m.Order:
        """Cancel-replace (``PUT``, once): price / order-type / time-in-force may change; legs
        are kept by the server (not sent). Returns the new order (with its ``id``).

        :class:`OrderOutcomeUnknown` carries the new order's ``external_identifier`` and the old
        ``order_id``: the replacement exists iff ``find_order_by_external_id`` finds it."""
        order = self._tagged(new_order)
        body = order.to_dict()
        body.pop("legs", None)
        oid = int(order_id)
        path = f"/accounts/{_seg(account_number)}/orders/{oid}"
        call = _Mutation("PUT", path, order.external_identifier, oid, False)
        r = await self._mutate(call, msgspec.json.encode(body))
        new = _accepted(call, r, m.Order, None)
        if new.id is None:
            raise call.unknown_from(r, "without the new order's id in data")
        return new

    async def cancel_order(self, account_number: str, order_id: int) -> m.Order | None:
        """Request cancellation (``DELETE``, once). Returns the order if the server echoes it.

        A 2xx with an empty body or a JSON object means the cancel was accepted (``None`` if
        ``data`` is not an order). A definite rejection (e.g. 422 not cancellable) raises
        :class:`ApiError`; anything else raises :class:`OrderOutcomeUnknown` with ``order_id``
        (check it with :meth:`get_order`; resending a cancel is harmless)."""
        oid = int(order_id)
        path = f"/accounts/{_seg(account_number)}/orders/{oid}"
        call = _Mutation("DELETE", path, None, oid, False)
        return _cancelled(call, await self._mutate(call, None), m.Order)

    @staticmethod
    def _tagged_complex(c: ComplexOrderRequest) -> ComplexOrderRequest:
        validate_complex_order(c)
        trig = c.trigger_order
        if trig is not None and not trig.external_identifier:
            trig = trig.with_external_identifier(new_external_identifier())
        orders = [
            o if o.external_identifier else o.with_external_identifier(new_external_identifier())
            for o in c.orders
        ]
        return msgspec.structs.replace(c, trigger_order=trig, orders=orders)

    async def place_complex_order(
        self, account_number: str, order: ComplexOrderRequest
    ) -> m.ComplexOrderResponse:
        """Place an OCO/OTO/OTOCO (once); each member gets an ``external-identifier``.
        ``OrderOutcomeUnknown.external_identifier`` is the first member's (trigger if any)."""
        c = self._tagged_complex(order)
        path = f"/accounts/{_seg(account_number)}/complex-orders"
        call = _Mutation("POST", path, c.all_orders()[0].external_identifier, None, False)
        r = await self._mutate(call, c.to_json())
        res = _accepted(call, r, m.ComplexOrderResponse, "complex-order")
        if res.complex_order is None or res.complex_order.id is None:
            raise call.unknown_from(r, "without data.complex-order.id")
        return res

    async def dry_run_complex_order(
        self, account_number: str, order: ComplexOrderRequest
    ) -> m.ComplexOrderResponse:
        """Dry-run of a complex order; every failure is an :class:`ApiError` (nothing created)."""
        c = self._tagged_complex(order)
        path = f"/accounts/{_seg(account_number)}/complex-orders/dry-run"
        call = _Mutation("POST", path, c.all_orders()[0].external_identifier, None, True)
        r = await self._mutate(call, c.to_json())
        return self._one(r, m.ComplexOrderResponse, path)

    async def get_complex_order(self, account_number: str, complex_id: int) -> m.ComplexOrder:
        return await self.get_one(
            f"/accounts/{_seg(account_number)}/complex-orders/{int(complex_id)}", m.ComplexOrder
        )

    async def get_live_complex_orders(self, account_number: str) -> list[m.ComplexOrder]:
        return await self.get_list(
            f"/accounts/{_seg(account_number)}/complex-orders/live", m.ComplexOrder
        )

    async def cancel_complex_order(
        self, account_number: str, complex_id: int
    ) -> m.ComplexOrder | None:
        """Cancel a complex order by its **complex** id (not a member order id), once. Same
        outcomes as :meth:`cancel_order` (``OrderOutcomeUnknown.order_id`` = the complex id)."""
        cid = int(complex_id)
        path = f"/accounts/{_seg(account_number)}/complex-orders/{cid}"
        call = _Mutation("DELETE", path, None, cid, False)
        return _cancelled(call, await self._mutate(call, None), m.ComplexOrder)

    # --- instruments ----------------------------------------------------------------------------

    async def get_equities(self, symbols: Iterable[str]) -> list[m.Equity]:
        return await self.get_list("/instruments/equities", m.Equity, {"symbol[]": list(symbols)})

    async def get_equity(self, symbol: str) -> m.Equity:
        return await self.get_one(f"/instruments/equities/{_seg(symbol)}", m.Equity)

    async def get_equity_option(self, symbol: str) -> m.EquityOption:
        """One option by OCC symbol (``"SPY   230731C00393000"``)."""
        return await self.get_one(f"/instruments/equity-options/{_seg(symbol)}", m.EquityOption)

    async def get_futures(
        self, symbols: Sequence[str] = (), product_codes: Sequence[str] = ()
    ) -> list[m.Future]:
        params: dict[str, Any] = {}
        if symbols:
            params["symbol[]"] = list(symbols)
        if product_codes:
            params["product-code[]"] = list(product_codes)
        return await self.get_list("/instruments/futures", m.Future, params)

    async def get_future(self, symbol: str) -> m.Future:
        return await self.get_one(f"/instruments/futures/{_seg(symbol.lstrip('/'))}", m.Future)

    async def get_future_option(self, symbol: str) -> m.FutureOption:
        return await self.get_one(f"/instruments/future-options/{_seg(symbol)}", m.FutureOption)

    async def get_cryptocurrencies(self, symbols: Sequence[str] = ()) -> list[m.Cryptocurrency]:
        params = {"symbol[]": list(symbols)} if symbols else None
        return await self.get_list("/instruments/cryptocurrencies", m.Cryptocurrency, params)

    async def get_cryptocurrency(self, symbol: str) -> m.Cryptocurrency:
        return await self.get_one(f"/instruments/cryptocurrencies/{_seg(symbol)}", m.Cryptocurrency)

    async def get_nested_option_chain(self, underlying: str) -> list[m.NestedOptionChain]:
        return await self.get_list(f"/option-chains/{_seg(underlying)}/nested", m.NestedOptionChain)

    async def get_market_metrics(self, symbols: Iterable[str]) -> list[m.MarketMetric]:
        return await self.get_list(
            "/market-metrics", m.MarketMetric, {"symbols": ",".join(symbols)}
        )

    async def symbol_search(self, prefix: str) -> list[m.SymbolSearchResult]:
        return await self.get_list(f"/symbols/search/{_seg(prefix)}", m.SymbolSearchResult)

    # --- quote tokens (dxLink) ------------------------------------------------------------------

    async def get_quote_token(self) -> m.QuoteToken:
        """``GET /api-quote-tokens`` (uncached)."""
        return await self.get_one("/api-quote-tokens", m.QuoteToken)

    def quote_token_provider(self, refresh_margin: float = 600.0) -> QuoteTokenProvider:
        """An async callable returning ``(dxlink_url, token)`` for the dxLink client.

        The token is cached until ``refresh_margin`` seconds before it expires (``expires-at``
        if the server sends one, else 24 h after it was fetched); concurrent calls share one
        fetch. Its ``invalidate(token)`` drops the cached token if it is ``token`` (the
        :class:`~ttfast.dxlink.DxLinkStreamer` calls it when dxLink rejects the token), so the
        next call fetches a new one.
        """
        return _QuoteTokens(self, refresh_margin)

    def _invalidate_quote_token(self, token: str) -> None:
        tok = self._quote_token
        if tok is not None and tok.token == token:
            self._quote_token = None


class _QuoteTokens:
    """What :meth:`TastytradeClient.quote_token_provider` returns (the client holds the cache)."""

    __slots__ = ("client", "refresh_margin")

    def __init__(self, client: TastytradeClient, refresh_margin: float) -> None:
        self.client = client
        self.refresh_margin = refresh_margin

    def _expiring(self) -> bool:
        return time.time() >= self.client._quote_token_expiry - self.refresh_margin

    async def __call__(self) -> tuple[str, str]:
        c = self.client
        tok = c._quote_token
        if tok is None or self._expiring():
            async with c._quote_lock:
                tok = c._quote_token
                if tok is None or self._expiring():
                    tok = await c.get_quote_token()
                    if not tok.token or not tok.dxlink_url:
                        raise ResponseDecodeError(
                            200,
                            "missing_fields",
                            "api-quote-tokens lacks token/dxlink-url",
                            path="/api-quote-tokens",
                        )
                    c._quote_token = tok
                    c._quote_token_expiry = _expiry(tok.expires_at)
        assert tok.dxlink_url is not None and tok.token is not None
        return tok.dxlink_url, tok.token

    def invalidate(self, token: str) -> None:
        """Forget the cached token if it is ``token``: the next call fetches a new one."""
        self.client._invalidate_quote_token(token)


# --- helpers --------------------------------------------------------------------------------------


def _accepted(call: _Mutation, r: _Response, model: type[T], key: str | None) -> T:
    """``data`` (``key`` must be an object in it) of a 2xx order response as ``model``; any
    other shape is OrderOutcomeUnknown: the server said 2xx, so the order may well exist."""
    obj = r.data.get(key) if key is not None and isinstance(r.data, dict) else r.data
    if not isinstance(obj, dict):
        where = "data" if key is None else f"data.{key}"
        raise call.unknown_from(r, f"without an object in {where}")
    try:
        return m.convert(r.data, model)
    except msgspec.ValidationError as exc:
        raise call.unknown_from(r, f"with an unexpected shape ({exc})") from None


def _cancelled(call: _Mutation, r: _Response, model: type[T]) -> T | None:
    """A 2xx to a cancel: accepted if the body is empty or a JSON object; the echoed order (if
    ``data`` is a non-empty object with an ``id``) is returned."""
    if not isinstance(r.body, dict):
        raise call.unknown_from(r, "with a body that is not a JSON object")
    if not (isinstance(r.data, dict) and r.data):
        return None
    try:
        obj = m.convert(r.data, model)
    except msgspec.ValidationError as exc:
        raise call.unknown_from(r, f"with an unexpected shape ({exc})") from None
    return obj if getattr(obj, "id", None) is not None else None


def _convert(raw: Any, model: type[T], status: int, path: str) -> T:
    try:
        return m.convert(raw, model)
    except msgspec.ValidationError as exc:
        e = ResponseDecodeError(status, "unexpected_shape", f"{model.__name__}: {exc}", path=path)
        e.raw = raw
        raise e from None


def _convert_list(items: list[Any], model: type[T], status: int, path: str) -> list[T]:
    try:
        return m.convert_list(items, model)  # one msgspec call for the whole list
    except msgspec.ValidationError:
        pass
    # error path only: convert item by item so the error names (and carries) the bad item
    return [_convert(i, model, status, path) for i in items]


def _int(x: Any) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _expiry(expires_at: datetime | int | None) -> float:
    if isinstance(expires_at, datetime):
        return expires_at.timestamp()
    if isinstance(expires_at, int) and expires_at > 0:
        return expires_at / 1000.0 if expires_at > 10**11 else float(expires_at)
    return time.time() + _QUOTE_TOKEN_TTL


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, date | datetime):
        return v.isoformat()
    return str(v)


def _filters(kw: Mapping[str, Any]) -> dict[str, Any]:
    """snake_case filter kwargs → dasherized params; list values get the ``[]`` suffix."""
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if v is None:
            continue
        key = k.replace("_", "-")
        if isinstance(v, list | tuple | set | frozenset):
            out[key if key.endswith("[]") else key + "[]"] = list(v)
        else:
            out[key] = v
    return out


def _query(params: Params) -> list[tuple[str, str]] | None:
    if not params:
        return None
    q: list[tuple[str, str]] = []
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, list | tuple):
            q.extend((k, _fmt(x)) for x in v)
        else:
            q.append((k, _fmt(v)))
    return q
