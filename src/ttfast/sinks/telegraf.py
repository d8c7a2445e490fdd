"""Telegraf / InfluxDB 1.x sink: line protocol batches over HTTP ``/write`` or UDP.

Rows are encoded to line protocol in compiled code (`ttfast._core.LineEncoder`), a whole
worker batch per call; this module only buffers the bytes and ships them:

* HTTP (``http://host:port`` → ``POST /write?db=<db>&precision=ns``, optional gzip): a Telegraf
  ``inputs.influxdb_listener`` or InfluxDB 1.x. A line is sent at the latest `flush_interval`
  seconds after it was written, sooner once `batch_bytes` are buffered. The batch being sent
  (at most `batch_bytes`, or one chunk) belongs to the sender until the server answers: 5xx,
  408, 429 and connection errors are retried with exponential backoff, re-sending the same
  batch unchanged; any other 4xx is the data's fault: the server's message is logged, that
  batch is dropped and its lines counted in `stats.lines_rejected`. Redirects (3xx) are never
  followed (they would re-send the batch and any credentials elsewhere): the batch is rejected
  the same way, with the target in the log. Delivery is at-least-once:
  a batch whose answer was lost (timeout, dropped connection) is sent again, and InfluxDB keeps
  one point per series and timestamp, so the repeat overwrites the same points.
* Database: before the first batch, the sink asks ``POST /query`` to ``CREATE DATABASE`` the
  target database (a no-op when it exists; `create_database=False` turns this off). Telegraf's
  listener answers any query with ``{"results":[]}`` and accepts every database; a server
  without ``/query`` (404, or a redirect) cannot create it. When the server refuses (not an
  admin user) and the database does not exist, that is logged as an error at start-up; a batch
  rejected with ``database not found`` gets one clear hint in the log.
* UDP (``udp://host:port``): Telegraf ``socket_listener`` / InfluxDB's ``[[udp]]``; datagrams
  are split on line boundaries to at most `udp_payload` bytes. UDP has no acknowledgement.

The buffer is bounded: `max_buffer_bytes` covers the lines queued and the batch in flight.
When full, the oldest queued (never the in-flight) lines are dropped and counted in
`stats.lines_dropped`; so is whatever is still unacknowledged at `close()`. At any time
``lines_enqueued == lines_sent + lines_dropped + lines_rejected + backlog_lines``.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_mod
import json
import logging
import socket
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp
import numpy as np
import numpy.typing as npt

from ttfast._core import LineEncoder
from ttfast._util import redact_url
from ttfast.sinks._base import BatchingSink

log = logging.getLogger("ttfast.sinks.telegraf")

CANDLE_FIELDS = ("open", "high", "low", "close", "volume")
INDICATOR_FIELDS = ("macd", "signal", "hist", "hma")

_Outcome = Literal["ok", "retry", "rejected"]
# state of the target database: not asked yet / nothing more to do / the server has no /query
# (cannot create) / refused to create it and it does not exist
_DbState = Literal["unknown", "done", "no_query", "refused"]
_RETRY_4XX = (408, 429)  # request timeout, too many requests: the server's state, not the data


@dataclass
class TelegrafSinkStats:
    lines_enqueued: int = 0  # lines written (= sent + dropped + rejected + backlog_lines)
    lines_sent: int = 0  # lines acknowledged (HTTP 2xx) or handed to the socket (UDP)
    lines_dropped: int = 0  # dropped from a full buffer, or unacknowledged at close
    lines_rejected: int = 0  # lines in batches the server refused with a 4xx
    batches_sent: int = 0
    retries: int = 0  # failed attempts (5xx / 408 / 429 / connection errors), retried
    fields_omitted: int = 0  # NaN/inf fields left out by the encoder
    buffered_bytes: int = 0  # bytes not yet acknowledged: queued + in flight


class TelegrafSink(BatchingSink):
    """Buffers encoded line protocol and ships it in batches (see module docstring)."""

    kind = "telegraf"
    _sender_name = "sender"
    _unit = "lines"

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
        create_database: bool = True,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https", "udp"):
            raise ValueError(f"telegraf url must be http(s):// or udp://, got {redact_url(url)}")
        super().__init__(url, log, backoff_initial=backoff_initial, backoff_max=backoff_max)
        self.scheme = parts.scheme
        self.database = ""
        self._query_url = ""
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
            self.database = query["db"]
            query["precision"] = "ns"
            self._write_url = urllib.parse.urlunsplit(
                (parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), "")
            )
            # InfluxDB 1.x reads credentials from the URL's query (u, p) or basic auth (netloc)
            creds = {k: v for k, v in query.items() if k in ("u", "p")}
            self._query_url = urllib.parse.urlunsplit(
                (
                    parts.scheme,
                    parts.netloc,
                    path[: -len("/write")] + "/query",
                    urllib.parse.urlencode(creds),
                    "",
                )
            )
        self.period = period
        self.gzip = gzip
        self.batch_bytes = batch_bytes
        self.flush_interval = flush_interval
        self.max_buffer_bytes = max_buffer_bytes
        self.timeout = timeout
        self.udp_payload = udp_payload
        self.create_database = create_database
        self.stats = TelegrafSinkStats()
        tags = ("symbol", "period") if period else ("symbol",)
        self._candles = LineEncoder("candle", tags, CANDLE_FIELDS)
        self._indicators = LineEncoder("indicators", tags, INDICATOR_FIELDS)
        # queued, not yet handed to the sender: (lines, line count, time written)
        self._chunks: deque[tuple[bytes, int, float]] = deque()
        self._queued_bytes = 0
        self._queued_lines = 0
        # the batch being sent: (lines, line count, bytes on the wire); only the sender
        # touches it, and it leaves only when the server has answered (or at close)
        self._inflight: tuple[bytes, int, bytes] | None = None
        self._udp_offset = 0  # bytes of the in-flight batch already sent as datagrams
        self._session: aiohttp.ClientSession | None = None
        self._sock: socket.socket | None = None
        self._db_state: _DbState = "unknown" if self._query_url and create_database else "done"
        self._db_hinted = False
        self._db_retried = False  # the in-flight batch was already resent after creating the db

    def __repr__(self) -> str:
        return f"<TelegrafSink {redact_url(self.url)} buffered={self.stats.buffered_bytes}B>"

    @property
    def backlog_lines(self) -> int:
        """Lines written and not yet acknowledged, rejected or dropped (queued + in flight)."""
        return self._queued_lines + self.inflight_lines

    @property
    def inflight_lines(self) -> int:
        """Lines in the batch being sent (awaiting the server's answer or a retry)."""
        return 0 if self._inflight is None else self._inflight[1]

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
        now = time.monotonic()
        was_empty = not self._chunks
        if len(body) <= self.batch_bytes:
            self._chunks.append((body, lines, now))
        else:  # keep every chunk <= batch_bytes (one request each), cut on line boundaries
            start, n, lines = 0, len(body), 0
            while start < n:
                end = start + self.batch_bytes
                if end < n:
                    cut = body.rfind(b"\n", start, end)
                    if cut < start:
                        cut = body.find(b"\n", end)
                    end = n if cut < 0 else cut + 1
                piece = body[start:end]
                k = piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1)
                self._chunks.append((piece, k, now))
                lines += k
                start = end
        self.stats.lines_enqueued += lines
        self._queued_lines += lines
        self._queued_bytes += len(body)
        self.stats.buffered_bytes += len(body)
        if self.stats.buffered_bytes > self.max_buffer_bytes:
            self._drop_oldest()
        self._idle.clear()
        # wake the sender when its timer must start (nothing was queued) or a batch is full
        if was_empty or self._queued_bytes >= self.batch_bytes:
            self._wake.set()

    def _drop_oldest(self) -> None:
        """Drop queued chunks, oldest first, until the buffer fits; never the in-flight batch.
        With nothing in flight the newest chunk stays, whatever its size."""
        keep = 0 if self._inflight is not None else 1
        dropped = 0
        while self.stats.buffered_bytes > self.max_buffer_bytes and len(self._chunks) > keep:
            old, n, _ = self._chunks.popleft()
            self._queued_bytes -= len(old)
            self._queued_lines -= n
            self.stats.buffered_bytes -= len(old)
            dropped += n
        if dropped:
            self.stats.lines_dropped += dropped
            self._limiter.log(
                "dropped",
                logging.WARNING,
                "%s %s: buffer full (max_buffer_bytes=%d), oldest lines dropped "
                "(%d dropped in all)",
                self.kind,
                redact_url(self.url),
                self.max_buffer_bytes,
                self.stats.lines_dropped,
            )

    # -- lifecycle (BatchingSink hooks) --------------------------------------------------------
    def _open(self) -> None:
        if self.scheme == "udp":
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._sock.connect(self._udp_addr)
        else:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def _prepare(self) -> None:
        if self._db_state == "unknown":
            await self._ensure_database()

    def _has_work(self) -> bool:
        return bool(self._chunks) or self._inflight is not None

    def _due(self) -> float:
        """A line waits at most `flush_interval` unless a batch is full, a flush was asked or a
        batch is already in flight (being retried)."""
        if self._inflight is not None or self._flush_all or self._queued_bytes >= self.batch_bytes:
            return 0.0
        return self._chunks[0][2] + self.flush_interval - time.monotonic()

    def _unsent(self) -> int:
        return self.backlog_lines

    def _recovered(self, failed: int) -> None:
        self._log.info(
            "%s %s: batch delivered after %d failed attempts",
            self.kind,
            redact_url(self.url),
            failed,
        )
        self._limiter.reset("retry")

    async def _shutdown(self) -> None:
        n = self.backlog_lines
        if n:
            self.stats.lines_dropped += n
            self._log.warning(
                "%s %s: closing with %d lines unsent", self.kind, redact_url(self.url), n
            )
        self._chunks.clear()
        self._inflight = None
        self._queued_bytes = self._queued_lines = 0
        self.stats.buffered_bytes = 0
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- shipping ----------------------------------------------------------------------------
    def _take(self) -> None:
        """Move the oldest queued chunks (up to `batch_bytes`, at least one) in flight."""
        parts: list[bytes] = []
        size = lines = 0
        while self._chunks:
            body, n, _ = self._chunks[0]
            if parts and size + len(body) > self.batch_bytes:
                break
            self._chunks.popleft()
            parts.append(body)
            size += len(body)
            lines += n
        self._queued_bytes -= size
        self._queued_lines -= lines
        body = b"".join(parts)
        wire = gzip_mod.compress(body, compresslevel=1) if self.gzip and self._session else body
        self._inflight = (body, lines, wire)
        self._udp_offset = 0

    async def _send(self) -> bool:
        """One attempt at the in-flight batch (taken from the queue if there is none); False
        to retry it after the backoff."""
        if self._inflight is None:
            self._take()
            self._db_retried = False
        while True:
            if self._db_state == "unknown":
                await self._ensure_database()
            assert self._inflight is not None
            body, lines, wire = self._inflight
            if self._sock is not None:
                outcome, text = await self._send_udp(body), ""
            else:
                outcome, text = await self._send_http(wire)
            if outcome == "rejected" and "database not found" in text:
                if not self._db_retried and self.create_database and self._db_state == "done":
                    # created earlier and gone since (dropped?): create again, send again once
                    self._db_retried = True
                    self._db_state = "unknown"
                    if await self._ensure_database() == "done":
                        continue
                self._hint_missing_database()
            break
        if outcome == "retry":
            self.stats.retries += 1
            return False
        self._inflight = None
        self.stats.buffered_bytes -= len(body)
        if outcome == "ok":
            self.stats.lines_sent += lines
            self.stats.batches_sent += 1
        else:
            self.stats.lines_rejected += lines
        return True

    async def _send_http(self, data: bytes) -> tuple[_Outcome, str]:
        assert self._session is not None
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            # never follow a redirect: it would re-POST the batch (and the credentials in the
            # URL or the basic-auth header) to wherever Location points
            async with self._session.post(
                self._write_url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                if resp.status < 300:
                    return "ok", ""
                if resp.status < 400:
                    self._limiter.log(
                        "rejected",
                        logging.ERROR,
                        "telegraf %s answered HTTP %d (redirect to %s), not followed: batch "
                        "dropped (%d lines rejected in all); point the sink's url at the "
                        "server itself",
                        redact_url(self.url),
                        resp.status,
                        redact_url(resp.headers.get("Location", ""), from_peer=True) or "?",
                        self.stats.lines_rejected + (self._inflight[1] if self._inflight else 0),
                    )
                    return "rejected", ""
                text = (await resp.text(errors="replace"))[:500].strip()
                if resp.status >= 500 or resp.status in _RETRY_4XX:
                    self._limiter.log(
                        "retry",
                        logging.WARNING,
                        "telegraf %s: HTTP %d %s; retrying",
                        redact_url(self.url),
                        resp.status,
                        text,
                    )
                    return "retry", text
                self._limiter.log(
                    "rejected",
                    logging.ERROR,
                    "telegraf %s rejected a batch (HTTP %d): %s; batch dropped (%d lines "
                    "rejected in all)",
                    redact_url(self.url),
                    resp.status,
                    text,
                    self.stats.lines_rejected + (self._inflight[1] if self._inflight else 0),
                )
                return "rejected", text
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._limiter.log(
                "retry",
                logging.WARNING,
                "telegraf %s unreachable (%s); retrying",
                redact_url(self.url),
                type(exc).__name__,
            )
            return "retry", ""

    async def _send_udp(self, body: bytes) -> _Outcome:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        n = len(body)
        try:
            while self._udp_offset < n:  # resumes after a failed datagram, no line sent twice
                start = self._udp_offset
                end = min(start + self.udp_payload, n)
                if end < n:
                    cut = body.rfind(b"\n", start, end)
                    if cut < start:  # one line longer than a datagram: send it alone
                        cut = body.find(b"\n", end)
                        cut = n - 1 if cut < 0 else cut
                    end = cut + 1
                await loop.sock_sendall(self._sock, body[start:end])
                self._udp_offset = end
        except OSError as exc:
            self._limiter.log(
                "retry",
                logging.WARNING,
                "telegraf udp %s: %s; retrying",
                redact_url(self.url),
                type(exc).__name__,
            )
            return "retry"
        return "ok"

    # -- database ----------------------------------------------------------------------------
    async def _query(self, q: str) -> tuple[int, dict[str, object] | None]:
        """POST `q` to /query: (HTTP status, JSON body or None); raises on connection errors."""
        assert self._session is not None
        async with self._session.post(
            self._query_url, data={"q": q}, allow_redirects=False
        ) as resp:
            raw = await resp.read()
            try:
                body = json.loads(raw)
            except ValueError:
                return resp.status, None
            return resp.status, body if isinstance(body, dict) else None

    @staticmethod
    def _error_of(status: int, body: dict[str, object] | None) -> str | None:
        """The server's error for a one-statement query, or None when it succeeded."""
        if body is None:
            return f"HTTP {status}, not a JSON answer"
        if "error" in body:
            return str(body["error"])
        results = body.get("results")
        if isinstance(results, list):
            for res in results:
                if isinstance(res, dict) and "error" in res:
                    return str(res["error"])
        return None if status < 300 else f"HTTP {status}"

    async def _ensure_database(self) -> _DbState:
        """CREATE DATABASE on an InfluxDB 1.x (idempotent); see the module docstring. Leaves
        `_db_state` "unknown" only when the server could not be asked (tried again later)."""
        await self._ensure_database_once()
        return self._db_state

    async def _ensure_database_once(self) -> None:
        name = self.database
        ident = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        url = redact_url(self.url)
        err: str | None = None
        try:
            status, body = await self._query(f"CREATE DATABASE {ident}")
            if status == 404:
                self._db_state = "no_query"
                log.info(
                    "telegraf %s has no /query endpoint (not InfluxDB 1.x?): "
                    'database "%s" cannot be checked or created from here',
                    url,
                    name,
                )
                return
            if 300 <= status < 400:
                self._db_state = "no_query"
                log.warning(
                    "telegraf %s: /query answered HTTP %d, a redirect (not followed): "
                    'database "%s" cannot be checked or created from here',
                    url,
                    status,
                    name,
                )
                return
            if status >= 500 or status in _RETRY_4XX:
                return  # ask again before the next attempt
            err = self._error_of(status, body)
            if err is None:
                self._db_state = "done"
                results = body.get("results") if body else None
                if results == []:  # Telegraf's influxdb_listener: any database is fine
                    log.debug("telegraf %s: /query is a stub (Telegraf listener)", url)
                else:
                    log.info('telegraf %s: database "%s" ready', url, name)
                return
            # refused (e.g. not an admin): fine if the database exists already
            status, body = await self._query("SHOW DATABASES")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("telegraf %s: cannot check the database yet (%s)", url, type(exc).__name__)
            return
        if self._error_of(status, body) is None and name in _database_names(body):
            self._db_state = "done"
            log.info('telegraf %s: database "%s" exists', url, name)
            return
        self._db_state = "refused"
        self._db_hinted = True
        log.error(
            'telegraf %s: cannot create database "%s" (%s) and it does not exist (or this user '
            "cannot see it): every batch will be rejected until it is created "
            "(CREATE DATABASE %s, as an admin user)",
            url,
            name,
            err,
            ident,
        )

    def _hint_missing_database(self) -> None:
        if self._db_hinted:
            return
        self._db_hinted = True
        why = (
            "create_database is off"
            if not self.create_database
            else "the server has no /query endpoint to create it"
            if self._db_state == "no_query"
            else "it could not be created"
        )
        log.error(
            'telegraf %s: database "%s" does not exist (%s): batches are rejected until it is '
            'created on the InfluxDB server (CREATE DATABASE "%s") or the sink\'s database '
            "names one that exists",
            redact_url(self.url),
            self.database,
            why,
            self.database,
        )


def _database_names(body: dict[str, object] | None) -> set[str]:
    """Names in a ``SHOW DATABASES`` answer."""
    names: set[str] = set()
    results = body.get("results") if body else None
    if not isinstance(results, list):
        return names
    for res in results:
        series = res.get("series") if isinstance(res, dict) else None
        for s in series if isinstance(series, list) else []:
            for row in s.get("values", []) if isinstance(s, dict) else []:
                if isinstance(row, list) and row:
                    names.add(str(row[0]))
    return names
