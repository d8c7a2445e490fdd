"""A faithful local tastytrade REST server (aiohttp.web) for tests, demos and offline work.

It speaks the API's shapes (spec §3-§6): dashed keys, ``{"data": ..., "context": path}``
envelopes (lists under ``data.items``), a ``pagination`` block on paginated lists, money as
strings, some integers as numbers, order ``updated-at`` as epoch milliseconds, and the error
envelope ``{"error": {"code", "message", "errors": [...]}}``.

* ``POST /oauth/token`` (JSON or form body): any non-empty ``refresh_token`` + ``client_secret``
  are accepted unless ``credentials=(client_secret, refresh_token)`` is given. Access tokens
  really expire after ``token_ttl`` seconds; afterwards requests get 401 ``token_invalid``.
  Requests without a ``User-Agent: product/version`` header get 401 like the real API.
* Accounts, balances (and daily snapshots, net-liq history, margin requirements), positions
  (``include-marks`` marks from the simulated market), transactions (paginated), trading status,
  orders (place, dry-run, live, search, by id, replace, cancel), complex orders (OCO/OTO/OTOCO:
  place, dry-run, live, history, by id, cancel), instruments, flat and nested option chains,
  futures option chains, market data and metrics, dividends/earnings, symbol search,
  ``POST /sessions/validate``, the public risk-free rate (no token) and ``/api-quote-tokens``
  (pointing at the given dxLink URL). Unknown routes get JSON 404/405 error bodies.
* Orders fill against the dxLink server's market (:mod:`~ttfast.sim.rest.lifecycle`): market
  orders at once at the ask/bid, limit/stop orders when crossed, large orders in parts, OCO/OTO/
  OTOCO triggers, Day orders expire at the session close; fills move positions, balances and
  transactions.
* The account streamer (spec §7, :mod:`~ttfast.sim.rest.account_stream`) at
  ``ws://<host:port>/account-streamer`` (``RestSimServer.streamer_url``) pushes every change,
  with fault switches (:class:`StreamFaults`: auth reject, stall, close/drop).
* Fault switches (:class:`Fault`): latency, hang (timeout), HTTP status (5xx, 429, any body),
  malformed JSON, dropped connection — each optionally *after* the handler ran, e.g. an order
  that was accepted and stored but whose response never arrives. ``state.orders_accepted``
  counts accepted orders so tests can prove nothing was sent twice. At runtime the same switches
  are reachable over HTTP: ``POST /_sim/faults`` (a Fault as JSON), ``DELETE /_sim/faults``,
  ``GET /_sim/state``.

Run it with ``ttfast sim`` (together with the local dxLink server).

Modules: :mod:`~ttfast.sim.rest.server` (routes, app, :class:`RestSimServer`),
:mod:`~ttfast.sim.rest.state` (:class:`SimState`, :class:`Fault`), :mod:`~ttfast.sim.rest.wire`
(envelopes, errors, timestamps), :mod:`~ttfast.sim.rest.fixtures` (seed data),
:mod:`~ttfast.sim.rest.auth`, :mod:`~ttfast.sim.rest.faults`, :mod:`~ttfast.sim.rest.accounts`,
:mod:`~ttfast.sim.rest.orders`, :mod:`~ttfast.sim.rest.instruments`,
:mod:`~ttfast.sim.rest.market_data` (the endpoints), :mod:`~ttfast.sim.rest.lifecycle` (fills)
and :mod:`~ttfast.sim.rest.account_stream` (the streamer).
"""

from ttfast.sim.rest.account_stream import STREAM_PATH, StreamFaults
from ttfast.sim.rest.server import RestSimServer, create_rest_app
from ttfast.sim.rest.state import Fault, SimState

__all__ = ["STREAM_PATH", "Fault", "RestSimServer", "SimState", "StreamFaults", "create_rest_app"]
