"""Local servers that speak the tastytrade APIs (REST, dxLink) for tests and offline work.

* :class:`DxLinkServer` -- a strict dxLink (dxFeed WebSocket) server on picows, fed by
  :mod:`ttfast.sim.market` -- a seeded market simulator (pure functions of seed/symbol/time);
  :class:`Faults` -- its fault switches (silent socket, restarts, late eventFields, SNIP, ...).
* :class:`RestSimServer` (:mod:`ttfast.sim.rest`) -- the local REST server
  (``/api-quote-tokens`` hands out the local dxLink URL) with the account streamer
  (``/account-streamer``) and an order lifecycle that fills against the dxLink server's market
  (:mod:`ttfast.sim.pricing`: marks, Black–Scholes option prices). It loads aiohttp on first
  access.
* ``ttfast sim`` (:mod:`ttfast.sim.cli`) runs both.
"""

from typing import TYPE_CHECKING

from ttfast._util import lazy_exports
from ttfast.sim.dxlink_server import EVENT_FIELDS, DxLinkServer, Faults, SimClock, corrected_bar
from ttfast.sim.javafmt import java_double, json_double

if TYPE_CHECKING:
    from ttfast.sim.rest import RestSimServer

__all__ = [
    "EVENT_FIELDS",
    "DxLinkServer",
    "Faults",
    "RestSimServer",
    "SimClock",
    "corrected_bar",
    "java_double",
    "json_double",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"RestSimServer": "ttfast.sim.rest"})
