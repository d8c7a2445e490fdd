"""Retry delays: the one exponential backoff behind every reconnect and retry loop in ttfast.

Sans-IO, stdlib only: :class:`Backoff` says how long to wait, the caller sleeps. Used by the
reconnect loop of the dxLink and account streamers (``ttfast._wsclient``), REST GET and
token-refresh retries, the sinks' sender loop (``ttfast.sinks._base``) and the scale-out roles.
Its random source is injectable (``rng=random.Random(seed)``), so tests see a fixed schedule.

A server's ``Retry-After`` is not handled here: the sinks' sender loop waits the longer of the
backoff and the delay the InfluxDB v2 sink read from it (tastytrade's 429 carries no rate-limit
headers, spec §6, so REST retries follow this schedule alone).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Backoff", "Jitter"]

Jitter = Literal["equal", "centered", "none"]

# delay = d * low + U[0, 1) * d * width, d the nominal (capped) delay
_JITTER: dict[str, tuple[float, float]] = {
    "equal": (0.5, 0.5),  # [d/2, d]: never above the cap, never below half the schedule
    "centered": (0.5, 1.0),  # [d/2, 3d/2): mean d; may exceed the cap by half
    "none": (1.0, 0.0),  # exactly d
}

# one unseeded generator for every Backoff not given its own: seeding a fresh random.Random
# reads os.urandom, which a REST call retrying nothing should not pay for
_RNG = random.Random()


def _shared_rng() -> random.Random:
    return _RNG


@dataclass
class Backoff:
    """Exponential backoff with jitter: the n-th delay (n = `attempt`, counted from 0) is drawn
    around d = min(cap, base * 2**n) as `jitter` says:

    * ``"equal"`` (default, "equal jitter"): uniform in [d/2, d];
    * ``"centered"``: uniform in [d/2, 3d/2), mean d (the cap bounds d, not the delay);
    * ``"none"``: exactly d (the random source is not used).

    ``next_delay()`` returns the delay and counts the attempt; ``reset()`` starts over (call it
    after a success). ``attempt`` is the number of delays handed out since the last reset.
    """

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=_shared_rng)
    attempt: int = 0
    jitter: Jitter = "equal"

    def __post_init__(self) -> None:
        if self.jitter not in _JITTER:
            raise ValueError(f"jitter must be one of {sorted(_JITTER)}, got {self.jitter!r}")

    def next_delay(self) -> float:
        d = min(self.cap, self.base * (2.0 ** min(self.attempt, 62)))
        self.attempt += 1
        low, width = _JITTER[self.jitter]
        if not width:
            return d * low
        return d * low + self.rng.random() * d * width

    def reset(self) -> None:
        self.attempt = 0
