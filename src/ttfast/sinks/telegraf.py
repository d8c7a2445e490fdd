"""Telegraf / InfluxDB 1.x sink: line protocol batches over HTTP ``/write`` or UDP.

Rows are encoded to line protocol in compiled code (`ttfast._core.LineEncoder`), a whole
worker batch per call; this module only buffers the bytes and ships them:

* HTTP (``http://host:port`` → ``POST /write?db=<db>&precision=ns``, optional gzip): a Telegraf
  ``inputs.influxdb_listener`` or InfluxDB 1.x. A body is sent when `batch_bytes` are buffered
  or `flush_interval` seconds have passed. 5xx and connection errors are retried with
  exponential backoff (the batch stays at the head of the buffer); a 4xx is the data's fault:
  the server's message is logged, that batch is dropped and its lines counted.
* UDP (``udp://host:port``): Telegraf ``socket_listener`` / InfluxDB's ``[[udp]]``; datagrams
  are split on line boundaries to at most `udp_payload` bytes. UDP has no acknowledgement.

The buffer is bounded (`max_buffer_bytes`); when full the oldest chunks are dropped and their
lines counted in `stats.lines_dropped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gzip_mod
import logging
import socket
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
import numpy.typing as npt

from ttfast._core import LineEncoder
from ttfast._util import redact_url

log = logging.getLogger("ttfast.sinks.telegraf")

CANDLE_FIELDS = ("open", "high", "low", "close", "volume")
INDICATOR_FIELDS = ("macd", "signal", "hist", "hma")


@dataclass
class TelegrafSinkStats:
    lines_sent: int = 0  # lines acknowledged (HTTP 2xx) or handed to the socket (UDP)
    lines_dropped: int = 0  # lines dropped from a full buffer or at close
    lines_rejected: int = 0  # lines in batches the server refused with a 4xx
    batches_sent: int = 0
    retries: int = 0  # failed attempts (5xx / connection errors) that were retried
    fields_omitted: int = 0  # NaN/inf fields left out by the encoder
    buffered_bytes: int = 0


class TelegrafSink:
    """Buffers encoded line protocol and ships it in batches (see module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        database: str = "ttfast",
        period: str = "",
        gzip: bool = False,
        batch_bytes: int = 512 * 1024,
        flush_interval: float = 1.0,
        max_buffer_bytes: int = 64 * 1024 * 1024,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        timeout: float = 10.0,
        udp_payload: int = 8192,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https", "udp"):
            raise ValueError(f"telegraf url must be http(s):// or udp://, got {redact_url(url)}")
        self.url = url
        self.scheme = parts.scheme
        if self.scheme == "udp":
            if not parts.hostname or not parts.port:
                raise ValueError("udp url needs host and port")
            self._udp_addr = (parts.hostname, parts.port)
            self._write_url = ""
        else:
            path = parts.path.rstrip("/")
            if not path.endswith("/write"):
                path += "/write"
            query = dict(urllib.parse.parse_qsl(parts.query))
            query.setdefault("db", database)
            query["precision"] = "ns"
            self._write_url = urllib.parse.urlunsplit(
                (parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), "")
            )
        self.period = period
        self.gzip = gzip
        self.batch_bytes = batch_bytes
        self.flush_interval = flush_interval
        self.max_buffer_bytes = max_buffer_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.udp_payload = udp_payload
        self.stats = TelegrafSinkStats()
        tags = ("symbol", "period") if period else ("symbol",)
        self._candles = LineEncoder("candle", tags, CANDLE_FIELDS)
        self._indicators = LineEncoder("indicators", tags, INDICATOR_FIELDS)
        self._chunks: deque[tuple[bytes, int]] = deque()  # (lines, line count)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sock: socket.socket | None = None
        self._first_at = 0.0

    def __repr__(self) -> str:
        return f"<TelegrafSink {redact_url(self.url)} buffered={self.stats.buffered_bytes}B>"

    @property
    def backlog_lines(self) -> int:
        return sum(n for _, n in self._chunks)

    # -- producer side -----------------------------------------------------------------------
    def write_rows(
        self,
        symbols: Sequence[str] | str,
        time_ms: npt.NDArray[np.int64],
        candle: Sequence[npt.NDArray[np.float64]],
        indicators: Sequence[npt.NDArray[np.float64]],
    ) -> None:
        """Queue `candle` (open, high, low, close, volume) and `indicators` (macd, signal, hist,
        hma) points for n rows; `symbols` is one symbol or n of them; times in epoch ms."""
        t_ns = np.asarray(time_ms, dtype=np.int64) * 1_000_000
        tags: tuple[str | Sequence[str], ...] = (
            (symbols, self.period) if self.period else (symbols,)
        )
        before = self._candles.fields_omitted + self._indicators.fields_omitted
        w0 = self._candles.rows_written + self._indicators.rows_written
        body = self._candles.encode(t_ns, tags, candle)
        body += self._indicators.encode(t_ns, tags, indicators)
        self.stats.fields_omitted += (
            self._candles.fields_omitted + self._indicators.fields_omitted - before
        )
        self.write_lines(body, self._candles.rows_written + self._indicators.rows_written - w0)

    def write_lines(self, body: bytes, lines: int) -> None:
        """Queue already-encoded line protocol (`lines` lines, newline-terminated)."""
        if not body:
            return
        if not self._chunks:
            self._first_at = time.monotonic()
        if len(body) <= self.batch_bytes:
            self._chunks.append((body, lines))
        else:  # keep every chunk <= batch_bytes (one request each), cut on line boundaries
            start, n = 0, len(body)
            while start < n:
                end = start + self.batch_bytes
                if end < n:
                    cut = body.rfind(b"\n", start, end)
                    if cut < start:
                        cut = body.find(b"\n", end)
                    end = n if cut < 0 else cut + 1
                piece = body[start:end]
                self._chunks.append((piece, piece.count(b"\n")))
                start = end
        self.stats.buffered_bytes += len(body)
        while self.stats.buffered_bytes > self.max_buffer_bytes and len(self._chunks) > 1:
            old, n = self._chunks.popleft()
            self.stats.buffered_bytes -= len(old)
            self.stats.lines_dropped += n
        self._idle.clear()
        if self.stats.buffered_bytes >= self.batch_bytes:
            self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        if self.scheme == "udp":
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._sock.connect(self._udp_addr)
        else:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._task = asyncio.create_task(self._run(), name="ttfast-telegraf-sink")

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered now; False if not acknowledged within `timeout`."""
        self._first_at = 0.0  # due immediately
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        if self._task is not None:
            if not await self.flush(timeout):
                n = self.backlog_lines
                self.stats.lines_dropped += n
                log.warning("telegraf sink closing with %d lines unsent", n)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- shipping ----------------------------------------------------------------------------
    def _take(self) -> tuple[bytes, int, int]:
        parts: list[bytes] = []
        size = lines = k = 0
        for body, n in self._chunks:
            if parts and size + len(body) > self.batch_bytes:
                break
            parts.append(body)
            size += len(body)
            lines += n
            k += 1
        return b"".join(parts), lines, k

    def _consume(self, k: int) -> None:
        for _ in range(k):
            body, _n = self._chunks.popleft()
            self.stats.buffered_bytes -= len(body)

    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            if not self._chunks:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            due = self._first_at + self.flush_interval - time.monotonic()
            if self.stats.buffered_bytes < self.batch_bytes and due > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due)
                continue
            body, lines, k = self._take()
            outcome = await (self._send_udp(body) if self._sock else self._send_http(body))
            if outcome == "retry":
                self.stats.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = self.backoff_initial
            self._consume(k)
            if outcome == "ok":
                self.stats.lines_sent += lines
                self.stats.batches_sent += 1
            else:
                self.stats.lines_rejected += lines
            self._first_at = time.monotonic() if self._chunks else 0.0

    async def _send_http(self, body: bytes) -> str:
        assert self._session is not None
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        data = body
        if self.gzip:
            data = gzip_mod.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            async with self._session.post(self._write_url, data=data, headers=headers) as resp:
                if resp.status < 300:
                    return "ok"
                text = (await resp.text(errors="replace"))[:500]
                if resp.status >= 500:
                    log.warning(
                        "telegraf %s: HTTP %d %s; retrying",
                        redact_url(self.url),
                        resp.status,
                        text.strip(),
                    )
                    return "retry"
                log.error(
                    "telegraf %s rejected a batch (HTTP %d): %s; batch dropped",
                    redact_url(self.url),
                    resp.status,
                    text.strip(),
                )
                return "rejected"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning(
                "telegraf %s unreachable (%s); retrying", redact_url(self.url), type(exc).__name__
            )
            return "retry"

    async def _send_udp(self, body: bytes) -> str:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        start = 0
        n = len(body)
        try:
            while start < n:
                end = min(start + self.udp_payload, n)
                if end < n:
                    cut = body.rfind(b"\n", start, end)
                    if cut < start:  # one line longer than a datagram: send it alone
                        cut = body.find(b"\n", end)
                        cut = n - 1 if cut < 0 else cut
                    end = cut + 1
                await loop.sock_sendall(self._sock, body[start:end])
                start = end
        except OSError as exc:
            log.warning("telegraf udp %s: %s; retrying", redact_url(self.url), exc)
            return "retry"
        return "ok"
