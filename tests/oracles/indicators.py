"""Pure-Python twins of ttfast._core.indicators, written for reading, not for speed.

Each class keeps the same O(1) state as the compiled code and performs the same IEEE-754
operations in the same order, so on the same inputs it gives the same bits. `fused=True` makes
the EMA step a single-rounding fma (what TA-Lib 0.8 runs on an x86 CPU with FMA); Python 3.11
has no math.fma, so it is computed exactly with fractions and rounded once.

Also: `naive_wma`/`naive_hma` compute the textbook definitions from scratch (no running sums),
to check the recurrences up to rounding, and `hist_color`/`hma_direction` spell out the colour
rules of the spec.
"""

from __future__ import annotations

import math
from fractions import Fraction

NAN = math.nan

HIST_COLORS = ("#26a69a", "#b2dfdb", "#ffcdd2", "#ff5252")


def fma(a: float, b: float, c: float) -> float:
    """a*b + c rounded once (exact rational arithmetic, then float() rounds to nearest)."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    return float(Fraction(a) * Fraction(b) + Fraction(c))


class EmaO:
    def __init__(self, n: int, seed: str = "talib", fused: bool = False) -> None:
        self.n, self.k, self.first, self.fused = n, 2.0 / (n + 1), seed == "first", fused
        self.e, self.seed_sum, self.count = NAN, 0.0, 0

    def _step(self, x: float) -> float:
        if self.fused:
            return fma(x - self.e, self.k, self.e)
        return (x - self.e) * self.k + self.e  # TA-Lib's order, not k*x + (1-k)*e

    @property
    def ready(self) -> bool:
        return self.count >= (1 if self.first else self.n)

    def revise(self, x: float) -> float:
        c = self.count + 1
        if self.first:
            return x if c == 1 else self._step(x)
        if c < self.n:
            return NAN
        if c == self.n:
            return (self.seed_sum + x) / self.n  # mean of the first n, summed from 0.0
        return self._step(x)

    def update(self, x: float) -> float:
        v = self.revise(x)
        self.count += 1
        if not self.first and self.count <= self.n:
            self.seed_sum += x
        if self.ready:
            self.e = v
        return v


class WmaO:
    """TA-Lib 0.8: S = window sum, P = weighted sum minus S, re-anchored every 8n outputs."""

    def __init__(self, n: int) -> None:
        self.n, self.div = n, float(n * (n + 1) // 2)
        self.window: list[float] = []  # last n inputs, oldest first
        self.S = self.P = 0.0
        self.count = 0
        self.cd = 8 * n
        self.last = NAN

    def _anchor(self, x: float) -> tuple[float, float]:
        # re-sum the whole window (n-1 newest committed values + x), oldest first
        s = p = 0.0
        for i, w in enumerate([*self.window[-(self.n - 1) :], x], start=1):
            s += w
            p += w * i
        return s, p

    def revise(self, x: float) -> float:
        if self.n == 1:
            return x
        if self.count < self.n - 1:
            return NAN
        if self.cd - 1 <= 0:
            return self._anchor(x)[1] / self.div
        return (self.P + x * self.n) / self.div

    def update(self, x: float) -> float:
        n = self.n
        self.count += 1
        if n == 1:
            self.last = x
            return x
        if self.count < n:  # warm-up: weights 1..n-1
            self.S += x
            self.P += x * self.count
            self.window.append(x)
            return NAN
        self.cd -= 1
        if self.cd <= 0:
            self.S, self.P = self._anchor(x)
            self.cd = 8 * n
        else:
            trailing = self.window[0] if len(self.window) == n else 0.0
            self.S += x
            self.S -= trailing
            self.P += x * n
        self.window.append(x)
        if len(self.window) > n:
            self.window.pop(0)
        out = self.P / self.div
        self.P -= self.S
        self.last = out
        return out


class HmaO:
    def __init__(self, n: int, lookback: int = 1) -> None:
        self.half, self.full, self.outer = WmaO(n // 2), WmaO(n), WmaO(math.isqrt(n))
        self.lookback = lookback
        self.values: list[float] = []  # committed HMA values
        self.direction: str | None = None

    def revise(self, x: float) -> float:
        h, f = self.half.revise(x), self.full.revise(x)
        if self.full.count + 1 < self.full.n or self.outer.count + 1 < self.outer.n:
            return NAN
        return self.outer.revise(2.0 * h - f)

    def direction_for(self, v: float) -> str | None:
        return hma_direction(v, self.values, self.lookback, self.direction)

    def update(self, x: float) -> float:
        h, f = self.half.update(x), self.full.update(x)
        if self.full.count < self.full.n:
            return NAN
        v = self.outer.update(2.0 * h - f)
        if self.outer.count < self.outer.n:
            return NAN
        self.direction = self.direction_for(v)
        self.values.append(v)
        return v


def hma_direction(v: float, history: list[float], lookback: int, prev: str | None) -> str | None:
    """Return "up" if v > the value `lookback` bars back, "down" if lower, a tie keeps `prev`."""
    if math.isnan(v):
        return None
    if len(history) >= lookback:
        old = history[-lookback]
        if v > old:
            return "up"
        if v < old:
            return "down"
    return prev


def hist_color(hist: float, prev: float) -> str | None:
    """TradingView MACD histogram colour; zero counts as above, a tie (or no prev) as falling."""
    if math.isnan(hist):
        return None
    rising = hist > prev  # False when prev is NaN (first bar)
    if hist >= 0:
        return "#26a69a" if rising else "#b2dfdb"
    return "#ffcdd2" if rising else "#ff5252"


class MacdO:
    def __init__(
        self,
        fast: int = 12,
        slow: int = 26,
        signal: int = 9,
        seed: str = "talib",
        fused: bool = False,
    ) -> None:
        if slow < fast:
            fast, slow = slow, fast
        self.fast, self.slow = EmaO(fast, seed, fused), EmaO(slow, seed, fused)
        self.sig = EmaO(signal, seed, fused)
        self.skip = 0 if seed == "first" else slow - fast  # fast seed window ends with slow's
        self.count = 0
        self.value = (NAN, NAN, NAN)
        self.prev_hist = NAN

    def _compute(self, x: float, commit: bool) -> tuple[float, float, float]:
        none = (NAN, NAN, NAN)
        f = NAN
        if self.count >= self.skip:
            f = self.fast.update(x) if commit else self.fast.revise(x)
        s = self.slow.update(x) if commit else self.slow.revise(x)
        slow_ready = (
            self.slow.ready if commit else (self.slow.first or self.slow.count + 1 >= self.slow.n)
        )
        if not slow_ready:
            return none
        m = f - s
        if commit:
            g = self.sig.update(m)
            if not self.sig.ready:
                return none
        else:
            if not (self.sig.first or self.sig.count + 1 >= self.sig.n):
                return none
            g = self.sig.revise(m)
        return (m, g, m - g)

    def revise(self, x: float) -> tuple[float, float, float]:
        return self._compute(x, commit=False)

    def update(self, x: float) -> tuple[float, float, float]:
        v = self._compute(x, commit=True)
        self.count += 1
        self.prev_hist = self.value[2]
        self.value = v
        return v

    @property
    def hist_color(self) -> str | None:
        return hist_color(self.value[2], self.prev_hist)


def naive_wma(xs: list[float], n: int) -> list[float]:
    div = n * (n + 1) / 2
    return [
        NAN if t < n - 1 else sum((i + 1) * xs[t - n + 1 + i] for i in range(n)) / div
        for t in range(len(xs))
    ]


def naive_hma(xs: list[float], n: int) -> list[float]:
    a, b = naive_wma(xs, n // 2), naive_wma(xs, n)
    raw = [2 * p - q for p, q in zip(a, b, strict=True)][n - 1 :]
    return [NAN] * (n - 1) + naive_wma(raw, math.isqrt(n))
