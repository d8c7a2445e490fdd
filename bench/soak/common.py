"""Shared pieces of the soak: result rows, the final table, defensive counter reads, RSS."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from typing import Any

NA = "n/a"


@dataclass
class Row:
    """One line of the final table.

    ``ok``: True (pass), False (an invariant failed), None (not checked: informational, or the
    counters it needs are missing).
    """

    part: str
    what: str
    tried: str
    result: str
    ok: bool | None
    notes: list[str] = field(default_factory=list)


def verdict(ok: bool | None) -> str:
    return "PASS" if ok is True else "FAIL" if ok is False else "n/a"


def render_table(rows: list[Row]) -> str:
    head = ("part", "what", "tried", "lost / counted / result", "verdict")
    cells = [head] + [(r.part, r.what, r.tried, r.result, verdict(r.ok)) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    widths[3] = min(widths[3], 90)
    sep = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [sep]
    for k, c in enumerate(cells):
        # wrap the long result column on "; "
        res_lines = _wrap(c[3], widths[3])
        for j, res in enumerate(res_lines):
            parts = [c[0], c[1], c[2], res, c[4]] if j == 0 else ["", "", "", res, ""]
            cols = (p.ljust(w) for p, w in zip(parts, widths, strict=True))
            out.append("| " + " | ".join(cols) + " |")
        if k == 0:
            out.append(sep.replace("-", "="))
    out.append(sep)
    return "\n".join(out)


def render_markdown(rows: list[Row]) -> str:
    out = [
        "| part | what | tried | lost / counted / result | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        res = r.result.replace("|", "\\|")
        out.append(f"| {r.part} | {r.what} | {r.tried} | {res} | {verdict(r.ok)} |")
    return "\n".join(out)


def _wrap(text: str, width: int) -> list[str]:
    """Wrap on "; " (then on spaces for a piece that is still too long)."""
    if len(text) <= width:
        return [text]
    words: list[str] = []
    pieces = text.split("; ")
    for k, piece in enumerate(pieces):
        ws = piece.split(" ")
        if k < len(pieces) - 1:
            ws[-1] += ";"
        words += ws
    lines: list[str] = []
    cur = ""
    for w in words:
        cand = w if not cur else cur + " " + w
        if len(cand) <= width or not cur:
            cur = cand
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return lines


def counter(obj: Any, *names: str) -> int | None:
    """The first of `names` found on `obj` as an int (attribute, property or mapping key).

    The sinks and the worker are being changed by other people while this soak exists: a
    counter that was renamed or removed is reported as n/a, never a crash.
    """
    if obj is None:
        return None
    for name in names:
        try:
            v = obj[name] if isinstance(obj, dict) else getattr(obj, name)
        except Exception:
            continue
        if callable(v):
            try:
                v = v()
            except Exception:
                continue
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, int | float):
            return int(v)
    return None


def fmt(v: int | None) -> str:
    return NA if v is None else f"{v:,}"


def all_counters(obj: Any) -> dict[str, Any]:
    """Every public scalar field of a stats object (dataclass or plain), for the detail log."""
    if obj is None:
        return {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    else:
        items = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return {k: v for k, v in items.items() if isinstance(v, int | float | bool | str)}


def rss_kib() -> int:
    """VmRSS of this process in KiB (Linux /proc)."""
    return _status_kib("VmRSS")


def trimmed_rss_kib() -> int:
    """VmRSS after glibc's malloc_trim(0): without the free memory the allocator keeps.

    Mutated frames make the decoder allocate and free buffers of very different sizes; glibc
    keeps some of the freed memory mapped (measured: +9 MiB raw RSS in steps, back to the
    warm-up value after malloc_trim with the decoders still alive). A leak survives the trim.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_kib()


def _status_kib(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return NA


_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress to stderr (the table alone goes to stdout)."""
    print(f"[soak {time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)
