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

Run it with ``ttfast sim`` (together with the local dxLink server).

Modules: :mod:`~ttfast.sim.rest.server` (routes, app, :class:`RestSimServer`),
:mod:`~ttfast.sim.rest.state` (:class:`SimState`, :class:`Fault`), :mod:`~ttfast.sim.rest.wire`
(envelopes, errors, timestamps), :mod:`~ttfast.sim.rest.fixtures` (seed data),
:mod:`~ttfast.sim.rest.auth`, :mod:`~ttfast.sim.rest.faults`, :mod:`~ttfast.sim.rest.accounts`,
:mod:`~ttfast.sim.rest.orders`, :mod:`~ttfast.sim.rest.instruments` (the endpoints).
"""

from ttfast.sim.rest.server import RestSimServer, create_rest_app
from ttfast.sim.rest.state import Fault, SimState

__all__ = ["Fault", "RestSimServer", "SimState", "create_rest_app"]
