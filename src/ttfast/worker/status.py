"""What the worker shows: its counters (`WorkerStats`), the status line, the ``--print`` table
and the task that prints them. Reads the worker, its pipeline and its sinks; changes nothing
but `Worker.loop_lag`.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ttfast._core import HIST_COLORS, HMA_DOWN_COLOR, HMA_UP_COLOR

if TYPE_CHECKING:
    from ttfast.worker.app import Worker

__all__ = ["WorkerStats", "status_line", "status_loop", "table"]


@dataclass
class WorkerStats:
    events: int = 0  # candle events taken in (dxLink: rows the store applied; redis: messages)
    batches: int = 0
    rows: int = 0  # indicator rows produced (forming + final + history)
    finals: int = 0  # bars closed and committed
    malformed: int = 0  # messages/rows skipped as bad input (sum of malformed_by_reason)
    malformed_by_reason: dict[str, int] = field(default_factory=dict)  # MALFORMED_REASONS
    symbols_refused: int = 0  # messages/rows of new symbols refused (max_symbols reached)
    symbols_discarded: int = 0  # idle symbols discarded (idle_discard)
    process_ns: int = 0  # time spent in store.apply + pipeline + sink queueing
    last_batch_at: float = 0.0
    # (monotonic time, events, rows) samples of the last RATE_WINDOW seconds: recent rates
    samples: deque[tuple[float, int, int]] = field(default_factory=deque)


RATE_WINDOW = 10.0  # seconds the status line's events/s and rows/s are averaged over


def _recent_rates(s: WorkerStats, now: float, started: float) -> tuple[float, float]:
    """events/s and rows/s over the last RATE_WINDOW seconds (since start while shorter): a
    rate that falls to 0 when data stops, not an average since start."""
    q = s.samples
    q.append((now, s.events, s.rows))
    while len(q) > 2 and now - q[1][0] >= RATE_WINDOW:
        q.popleft()
    t0, e0, r0 = q[0] if len(q) > 1 else (started, 0, 0)
    dt = max(now - t0, 1e-9)
    return (s.events - e0) / dt, (s.rows - r0) / dt


def _in_flight(n: int) -> str:
    return f" (in flight {n})" if n else ""


def status_line(w: Worker) -> str:
    """One line: rates, counters, loop lag, per-batch cost, sinks (backlog: not acknowledged
    yet, of which in flight: sent and awaiting the server), bad input, limits."""
    s = w.stats
    now = time.monotonic()
    el = max(now - w.started, 1e-9)
    ev_rate, row_rate = _recent_rates(s, now, w.started)
    parts = [
        f"{el:6.1f}s",
        f"events {s.events} ({ev_rate:,.0f}/s)",
        f"rows {s.rows} ({row_rate:,.0f}/s)",
        f"closed {s.finals}",
        f"symbols {w.pipeline.symbol_count}",
    ]
    parts.append(f"loop lag {w.loop_lag * 1000:.1f}ms")
    if s.last_batch_at:
        parts.append(f"last batch {time.monotonic() - s.last_batch_at:.1f}s ago")
    if s.batches:
        parts.append(f"{s.process_ns / s.batches / 1000:.1f}us/batch")
    if s.malformed:
        why = ", ".join(f"{k} {v}" for k, v in sorted(s.malformed_by_reason.items()))
        parts.append(f"malformed {s.malformed} ({why})")
    if s.symbols_refused:
        parts.append(f"refused {s.symbols_refused}")
    if s.symbols_discarded:
        parts.append(f"discarded {s.symbols_discarded}")
    if w.redis is not None:
        r = w.redis.stats
        parts.append(
            f"redis {'up' if r.connected else 'DOWN'} pub {r.published} "
            f"backlog {w.redis.backlog}{_in_flight(w.redis.in_flight)} dropped {r.dropped} "
            f"reconnects {r.reconnects}"
        )
    for name, sink in (("telegraf", w.telegraf), ("influx", w.influx)):  # the same counters
        if sink is not None:
            t = sink.stats
            parts.append(
                f"{name} sent {t.lines_sent} backlog {sink.backlog_lines}"
                f"{_in_flight(sink.inflight_lines)} "
                f"dropped {t.lines_dropped} rejected {t.lines_rejected}"
            )
    edge = w.edge.status()
    if edge:
        parts.append(edge)
    if w.reconnects:
        parts.append(f"source reconnects {w.reconnects}")
    return " | ".join(parts)


def table(w: Worker) -> str:
    """The ``--print`` table: newest close, MACD histogram (coloured), HMA direction."""
    rows = [f"{'symbol':<10} {'bar (UTC)':<17} {'close':>12} {'MACD hist':>14}  HMA"]
    for sym in sorted(w.latest):
        t, close, hist, color, hma, direction = w.latest[sym]
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t / 1000))
        h = "n/a" if math.isnan(hist) else f"{hist:+.5f}"
        h = _ansi(HIST_COLORS[color], f"{h:>14}") if color >= 0 else f"{h:>14}"
        d = "up" if direction > 0 else "down" if direction < 0 else "-"
        d = _ansi(HMA_UP_COLOR if direction > 0 else HMA_DOWN_COLOR, d) if direction else d
        hs = "" if math.isnan(hma) else f" {hma:.4f}"
        rows.append(f"{sym:<10} {when:<17} {close:>12.4f} {h}  {d}{hs}")
    return "\n".join(rows)


def _ansi(hex_color: str, text: str) -> str:
    if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        return text
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"\x1b[38;2;{r};{g};{b}m{text}\x1b[0m"


async def status_loop(w: Worker) -> None:
    """Every ``status_interval`` s: measure the loop lag, print the status (and table)."""
    cfg = w.cfg
    tty = sys.stderr.isatty()
    while True:
        t = time.monotonic()
        await asyncio.sleep(cfg.status_interval)
        # how late the loop woke us: every frame waits at least this long to be processed
        w.loop_lag = max(0.0, time.monotonic() - t - cfg.status_interval)
        if cfg.quiet:
            continue
        if cfg.print_table and sys.stdout.isatty():
            # one screen: the table and the status line under it
            print("\x1b[H\x1b[2J" + table(w) + "\n" + status_line(w), flush=True)
        elif cfg.print_table:
            # piped: the table to stdout (what it computes), the status line to stderr
            print(table(w) + "\n", flush=True)
            print(status_line(w), file=sys.stderr, flush=True)
        elif tty:
            print("\r" + status_line(w) + "\x1b[K", end="", file=sys.stderr, flush=True)
        else:
            print(status_line(w), file=sys.stderr, flush=True)
