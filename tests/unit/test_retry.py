"""ttfast._retry.Backoff: schedules, caps, jitter bounds, reset, seeded determinism, and that it
reproduces each retry loop it replaced (dxLink reconnect, REST GET, token refresh, sinks)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttfast._retry import Backoff


class _Fixed(random.Random):
    """A random source that always returns `x` (to hit the ends of the jitter range)."""

    def __init__(self, x: float) -> None:
        super().__init__(0)
        self.x = x

    def random(self) -> float:
        return self.x


def test_defaults_are_the_dxlink_reconnect_policy() -> None:
    b = Backoff()
    assert (b.base, b.cap, b.attempt, b.jitter) == (0.5, 30.0, 0, "equal")
    b = Backoff(base=1.0, cap=8.0)  # the keyword form the dxLink streamer uses
    assert (b.base, b.cap) == (1.0, 8.0)


def test_equal_jitter_schedule_and_cap() -> None:
    b = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    assert b.attempt == 8
    for d, c in zip(delays, [1, 2, 4, 8, 8, 8, 8, 8], strict=True):
        assert c / 2 <= d <= c
    assert len({round(d, 9) for d in delays[3:]}) > 1  # jittered, not constant at the cap


def test_equal_jitter_ends() -> None:
    lo = Backoff(base=1.0, cap=8.0, rng=_Fixed(0.0))
    assert [lo.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    hi = Backoff(base=1.0, cap=8.0, rng=_Fixed(1.0))  # random() < 1: the supremum
    assert [hi.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_centered_jitter_ends_and_cap_bounds_the_nominal_delay() -> None:
    lo = Backoff(0.25, 1.0, rng=_Fixed(0.0), jitter="centered")
    assert [lo.next_delay() for _ in range(4)] == [0.125, 0.25, 0.5, 0.5]
    hi = Backoff(0.25, 1.0, rng=_Fixed(1.0), jitter="centered")
    assert [hi.next_delay() for _ in range(4)] == [0.375, 0.75, 1.5, 1.5]


def test_no_jitter_doubles_to_the_cap_without_touching_the_rng() -> None:
    rng = random.Random(3)
    state = rng.getstate()
    b = Backoff(0.05, 2.0, rng=rng, jitter="none")
    assert [b.next_delay() for _ in range(8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert rng.getstate() == state


def test_reset_starts_over() -> None:
    b = Backoff(0.1, 5.0, jitter="none")
    for _ in range(10):
        b.next_delay()
    assert b.attempt == 10
    b.reset()
    assert b.attempt == 0
    assert b.next_delay() == 0.1
    assert b.attempt == 1


def test_seeded_rng_gives_the_same_schedule() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.next_delay() for _ in range(20)] == [b.next_delay() for _ in range(20)]


def test_huge_attempt_counts_neither_overflow_nor_exceed_the_cap() -> None:
    b = Backoff(base=0.5, cap=30.0, attempt=10_000, rng=_Fixed(0.999))
    assert 15.0 <= b.next_delay() <= 30.0
    unbounded = Backoff(0.25, math.inf, attempt=10_000, jitter="none")
    assert math.isfinite(unbounded.next_delay())


def test_unknown_jitter_is_rejected() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter="full")  # type: ignore[arg-type]


@given(
    base=st.floats(1e-4, 10.0),
    cap=st.floats(1e-4, 100.0),
    n=st.integers(0, 80),
    seed=st.integers(0, 2**32),
)
def test_bounds_hold_for_every_policy(base: float, cap: float, n: int, seed: int) -> None:
    d = min(cap, base * 2.0 ** min(n, 62))
    eq = Backoff(base, cap, rng=random.Random(seed), attempt=n).next_delay()
    assert d / 2 <= eq <= d
    ce = Backoff(base, cap, rng=random.Random(seed), attempt=n, jitter="centered").next_delay()
    assert d / 2 <= ce <= 1.5 * d
    assert Backoff(base, cap, attempt=n, jitter="none").next_delay() == d


# -- the loops Backoff replaced: same formulas, same random draws -----------------------------


def test_reproduces_the_dxlink_backoff_bit_for_bit() -> None:
    """The former ttfast.dxlink.protocol.Backoff: d/2 + U * d/2, d = min(cap, base * 2**n)."""
    r_old, r_new = random.Random(7), random.Random(7)
    b = Backoff(base=0.5, cap=30.0, rng=r_new)
    for n in range(12):
        d = min(30.0, 0.5 * (2.0 ** min(n, 62)))
        assert b.next_delay() == d / 2 + r_old.random() * d / 2


def test_reproduces_the_rest_get_retry_schedule() -> None:
    """The former TastytradeClient._backoff: min(max, base * 2**n) * (0.5 + U)."""
    r_old, r_new = random.Random(11), random.Random(11)
    b = Backoff(0.25, 8.0, rng=r_new, jitter="centered")
    for n in range(8):
        want = min(8.0, 0.25 * (2.0**n)) * (0.5 + r_old.random())
        assert b.next_delay() == pytest.approx(want, rel=1e-12)


def test_reproduces_the_token_refresh_schedule() -> None:
    """The former OAuthSession._grant delay before attempt k >= 1: base * 2**(k-1) * (0.5 + U),
    no cap."""
    r_old, r_new = random.Random(5), random.Random(5)
    b = Backoff(0.25, math.inf, rng=r_new, jitter="centered")
    for k in range(1, 10):
        want = 0.25 * (2 ** (k - 1)) * (0.5 + r_old.random())
        assert b.next_delay() == pytest.approx(want, rel=1e-12)


def test_reproduces_the_sinks_reconnect_schedule() -> None:
    """The former sink loops: delay = initial, then min(delay * 2, max) after each failure."""
    for initial, cap in ((0.05, 2.0), (0.1, 5.0), (0.001, 0.005), (0.02, 0.1)):
        b = Backoff(initial, cap, jitter="none")
        delay = initial
        for _ in range(12):
            assert b.next_delay() == delay
            delay = min(delay * 2, cap)
