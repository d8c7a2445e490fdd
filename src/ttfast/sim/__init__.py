"""Local tastytrade stand-ins for tests, the offline demo and benchmarks (``ttfast sim``).

* :class:`DxLinkServer` -- a strict dxLink (dxFeed WebSocket) server on picows, fed by
* :mod:`ttfast.sim.market` -- a seeded market simulator (pure functions of seed/symbol/time),
* :class:`Faults` -- fault switches (silent socket, restarts, late eventFields, SNIP, ...).
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
