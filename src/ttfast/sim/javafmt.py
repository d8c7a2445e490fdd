"""Java ``Double.toString`` formatting for the local dxLink server (``ttfast.sim``).

dxFeed's server is written in Java and prints doubles with ``Double.toString``: the shortest
decimal that round-trips, always with a fractional part (``100.0``), in plain notation for
``1e-3 <= |x| < 1e7`` and otherwise as ``<d>.<ddd>E<exp>`` (``1.3743299E7``, ``1.0E-4``).
NaN and the infinities are sent as JSON *strings* (``"NaN"``, ``"Infinity"``, ``"-Infinity"``).

Python's ``repr`` yields the same shortest round-trip digits (JDK >= 19 uses the same
shortest-digits rule; older JDKs occasionally printed one extra digit), so only the layout
differs. Pure Python; used only by the simulator, never by hot client code.
"""

from __future__ import annotations

import math

__all__ = ["java_double", "json_double"]

_CACHE: dict[float, str] = {}
_CACHE_MAX = 1 << 18


def _digits_exp(x: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``abs(x)`` (no leading/trailing zeros) and the decimal
    exponent ``e`` such that ``abs(x) = 0.d1d2d3... * 10**e`` -> we return sci exponent."""
    r = repr(abs(x))
    if "e" in r:
        mant, _, exp_s = r.partition("e")
        exp = int(exp_s)
    else:
        mant, exp = r, 0
    if "." in mant:
        ip, _, fp = mant.partition(".")
    else:
        ip, fp = mant, ""
    digits = (ip + fp).lstrip("0")
    # position of the decimal point relative to the first digit of ip+fp
    point = len(ip) + exp
    lead_zeros = len(ip + fp) - len((ip + fp).lstrip("0"))
    sci_exp = point - lead_zeros - 1
    digits = digits.rstrip("0") or "0"
    if len(digits) == 1:
        # Java (JDK >= 19) picks, when the shortest decimal has one digit, the 2-digit decimal
        # closest to x instead (matters only for subnormals: 4.9E-324, not 5.0E-324).
        m, _, e2 = f"{abs(x):.1e}".partition("e")
        digits = m.replace(".", "").rstrip("0") or "0"
        sci_exp = int(e2)
    return digits, sci_exp


def java_double(x: float) -> str:
    """Format ``x`` exactly as Java's ``Double.toString`` does (NaN -> ``NaN``, no quotes)."""
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if 1e-3 <= abs(x) < 1e7:
        # Python's repr uses plain notation here and the same shortest digits: identical
        return repr(x)
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    digits, e = _digits_exp(x)
    ax = abs(x)
    if 1e-3 <= ax < 1e7:
        if e >= 0:
            ip = digits[: e + 1].ljust(e + 1, "0")
            fp = digits[e + 1 :] or "0"
        else:
            ip = "0"
            fp = "0" * (-e - 1) + digits
        return f"{sign}{ip}.{fp}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{e}"


def json_double(x: float) -> str:
    """JSON token for a dxLink double: a Java-formatted number, or a quoted NaN/Infinity string.

    Cached: the simulator formats the same cent-rounded prices over and over.
    """
    if x == 0.0:
        return java_double(x)  # 0.0 and -0.0 are the same dict key: never cache them
    s = _CACHE.get(x)
    if s is not None:
        return s
    if x != x:
        return '"NaN"'  # NaN never hits the cache (NaN != NaN)
    s = java_double(x)
    if math.isinf(x):
        s = f'"{s}"'
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[x] = s
    return s
