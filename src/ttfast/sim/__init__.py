"""Local servers that speak the tastytrade APIs (REST, dxLink) for tests and offline work.

* :class:`DxLinkServer` -- a strict dxLink (dxFeed WebSocket) server on picows, fed by
  :mod:`ttfast.sim.market` -- a seeded market simulator (pure functions of seed/symbol/time);
  :class:`Faults` -- its fault switches (silent socket, restarts, late eventFields, SNIP, ...).
* :mod:`ttfast.sim.rest_server` -- the local REST server (``/api-quote-tokens`` hands out the
  local dxLink URL).
"""

from ttfast.sim.dxlink_server import EVENT_FIELDS, DxLinkServer, Faults, SimClock, corrected_bar
from ttfast.sim.javafmt import java_double, json_double

__all__ = [
    "EVENT_FIELDS",
    "DxLinkServer",
    "Faults",
    "SimClock",
    "corrected_bar",
    "java_double",
    "json_double",
]
