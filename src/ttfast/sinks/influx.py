"""InfluxDB v2 sink: line protocol batches to ``/api/v2/write`` through ``influxdb-client``.

The same buffer, batching and accounting as `ttfast.sinks.telegraf.TelegrafSink` (this class
is one: only the transport differs), so the same guarantees hold: a line is sent within
`flush_interval` of being written, sooner once `batch_bytes` are buffered; the buffer is
bounded (`max_buffer_bytes`, oldest queued lines dropped and counted, never the batch in
flight); 5xx, 408, 429 and connection errors are retried with backoff, re-sending the same
batch; any other 4xx is logged with the server's message and its lines counted in
`stats.lines_rejected`; redirects are never followed. At any time
``lines_enqueued == lines_sent + lines_dropped + lines_rejected + backlog_lines``.

What ``influxdb-client`` (optional extra ``ttfast[influx]``) does here: the v2 endpoint and its
``org``/``bucket``/``precision`` parameters, the ``Authorization: Token`` header and the HTTP
call, through its asyncio client (`InfluxDBClientAsync`). What it does not do: build rows. Its
`Point` objects cost ~60x our compiled `LineEncoder` per row, so the sink hands the client the
encoder's bytes as they are (``WriteApiAsync.write(record=bytes)`` passes bytes through).

Gzip: the client's own ``enable_gzip`` compresses every batch at zlib level 9 (measured on a
840 kB batch: 37 ms, against 5.7 ms at level 1 and 2 ms to encode it). With ``gzip=True`` the
sink compresses once per batch at level 1 (a retry re-sends the same compressed bytes) and
posts through the client's generated ``WriteService.post_write_async`` with
``content_encoding="gzip"``: the same endpoint, authentication and error handling.

A ``Retry-After`` header on a retried answer (429, 503) is honoured: the next attempt waits at
least that long (at most `retry_after_max` seconds), or the backoff if that is longer.

The token is passed in (the worker reads it from an environment variable); it is never logged
and never part of a ``repr``.
"""

from __future__ import annotations

import email.utils
import gzip as gzip_mod
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import aiohttp

from ttfast._util import redact_url
from ttfast.sinks import LogLimiter
from ttfast.sinks.telegraf import _RETRY_4XX, TelegrafSink, _Outcome

if TYPE_CHECKING:
    from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

__all__ = ["InfluxV2Sink", "error_message", "import_client", "retry_after_seconds"]

log = logging.getLogger("ttfast.sinks.influx")

_MISSING = (
    "the InfluxDB v2 sink needs influxdb-client with its asyncio extras: "
    "pip install 'ttfast[influx]'"
)


def import_client() -> type[InfluxDBClientAsync]:
    """`InfluxDBClientAsync`, or ImportError saying which extra to install."""
    try:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return InfluxDBClientAsync


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)


class InfluxV2Sink(TelegrafSink):
    """Buffers encoded line protocol and ships it to an InfluxDB v2 ``/api/v2/write``."""

    kind = "influx"

    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        token: str | None = None,
        period: str = "",
        gzip: bool = False,
        batch_bytes: int = 512 * 1024,
        flush_interval: float = 1.0,
        max_buffer_bytes: int = 64 * 1024 * 1024,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        timeout: float = 10.0,
        retry_after_max: float = 60.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"influx url must be http(s)://host[:port], got {redact_url(url)}")
        if not org or not bucket:
            raise ValueError("influx sink needs an org and a bucket")
        import_client()  # fail at configuration time, not in the sender task
        super().__init__(
            url,
            period=period,
            gzip=False,  # compressed in _take, at level 1 (see the module docstring)
            batch_bytes=batch_bytes,
            flush_interval=flush_interval,
            max_buffer_bytes=max_buffer_bytes,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            timeout=timeout,
            create_database=False,  # buckets are made by an admin; a missing one is a 404
        )
        self.gzip = gzip
        self.org = org
        self.bucket = bucket
        self.retry_after_max = retry_after_max
        self._base_url = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")
        )
        self._token = token or ""
        self._log = log
        self._limiter = LogLimiter(log)
        self._client: InfluxDBClientAsync | None = None
        self._write: Any = None  # WriteApiAsync.write
        self._post: Any = None  # WriteService.post_write_async (gzip)

    def __repr__(self) -> str:
        return (
            f"<InfluxV2Sink {redact_url(self.url)} org={self.org!r} bucket={self.bucket!r} "
            f"buffered={self.stats.buffered_bytes}B>"
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def _open(self) -> None:
        from influxdb_client.service.write_service import WriteService

        client_cls = import_client()
        self._client = client_cls(
            url=self._base_url,
            token=self._token,
            org=self.org,
            timeout=int(self.timeout * 1000),
            enable_gzip=False,
            allow_redirects=False,  # a redirect would re-send the batch and the token elsewhere
        )
        self._write = self._client.write_api().write
        self._post = WriteService(self._client.api_client).post_write_async  # type: ignore[no-untyped-call]

    async def _shutdown(self) -> None:
        await super()._shutdown()
        if self._client is not None:
            client, self._client = self._client, None
            self._write = self._post = None
            await client.close()  # type: ignore[no-untyped-call]

    def _take(self) -> None:
        super()._take()
        if self.gzip and self._inflight is not None:
            body, lines, _ = self._inflight
            self._inflight = (body, lines, gzip_mod.compress(body, compresslevel=1))

    # -- the write call ------------------------------------------------------------------------
    async def _send_http(self, data: bytes) -> tuple[_Outcome, str]:
        """One POST of the in-flight batch; the outcome for `TelegrafSink._send`."""
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.rest import ApiException

        assert self._write is not None
        try:
            if self.gzip:
                await self._post(
                    org=self.org,
                    bucket=self.bucket,
                    body=data,
                    precision="ns",
                    content_encoding="gzip",
                    content_type="text/plain; charset=utf-8",
                )
            else:
                await self._write(self.bucket, self.org, record=data, write_precision="ns")
            return "ok", ""
        except ApiException as exc:
            return self._answer(exc.status or 0, exc)
        except InfluxDBError as exc:  # no HTTP answer (should not happen with a body of bytes)
            self._limiter.log(
                "rejected",
                logging.ERROR,
                "influx %s: %s; batch dropped",
                redact_url(self.url),
                str(exc.message)[:300],
            )
            return "rejected", ""
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._limiter.log(
                "retry",
                logging.WARNING,
                "influx %s unreachable (%s); retrying",
                redact_url(self.url),
                type(exc).__name__,
            )
            return "retry", ""

    def _answer(self, status: int, exc: Any) -> tuple[_Outcome, str]:
        url = redact_url(self.url)
        headers = exc.headers or {}
        inflight = self._inflight[1] if self._inflight else 0
        if 300 <= status < 400:
            self._limiter.log(
                "rejected",
                logging.ERROR,
                "influx %s answered HTTP %d (redirect to %s), not followed: batch dropped "
                "(%d lines rejected in all); point the sink's url at the server itself",
                url,
                status,
                redact_url(headers.get("Location", ""), from_peer=True) or "?",
                self.stats.lines_rejected + inflight,
            )
            return "rejected", ""
        message = error_message(exc)
        if status >= 500 or status in _RETRY_4XX:
            wait = retry_after_seconds(headers.get("Retry-After"))
            self._limiter.log(
                "retry",
                logging.WARNING,
                "influx %s: HTTP %d %s; retrying%s",
                url,
                status,
                message,
                "" if wait is None else f" after {min(wait, self.retry_after_max):g}s",
            )
            if wait:  # the base waits this long, or its backoff if that is longer
                self._retry_after = min(wait, self.retry_after_max)
            return "retry", ""
        self._limiter.log(
            "rejected",
            logging.ERROR,
            "influx %s rejected a batch (HTTP %d): %s; batch dropped (%d lines rejected in all)",
            url,
            status,
            message,
            self.stats.lines_rejected + inflight,
        )
        return "rejected", ""


def error_message(exc: Any) -> str:
    """The server's message in an influxdb-client error (v2's JSON ``message``, else the body),
    one line, at most 500 characters."""
    msg = getattr(exc, "message", None)
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    if not msg:
        body = getattr(exc, "body", None)
        msg = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return " ".join(str(msg).split())[:500] or str(getattr(exc, "reason", "") or "")
