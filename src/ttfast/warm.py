"""Reading candle history back from InfluxDB: what `ttfast backfill` resumes from and what a
worker warm-starts from.

Two readers with one interface (`HistoryReader`):

* `InfluxQLReader` — InfluxDB 1.x ``GET /query`` (InfluxQL, ``epoch=ms``), the database the
  Telegraf sink writes (`--telegraf URL --telegraf-db DB`); credentials as the sink takes them
  (``u``/``p`` in the URL's query, or basic auth in its netloc). Redirects are not followed.
* `FluxReader` — InfluxDB v2 ``POST /api/v2/query`` (Flux) through influxdb-client's asyncio
  query API (extra ``ttfast[influx]``), org/bucket/token as the v2 sink takes them.
* `RedisHistoryReader` — the closed bars a worker with ``--redis`` keeps for ``GET /history``
  (``history:<name>``, a sorted set scored by bar time with the bar's JSON as member;
  `ttfast.edge.history`), read with ``ZRANGE``/``ZREVRANGEBYSCORE``.

Both read the points the sinks write: measurement ``candle``, tags ``symbol`` (the plain
symbol, ``SPY``) and ``period`` (``5m``), fields open/high/low/close/volume, times in epoch ms.
A reader raises `HistoryUnavailable` when the server cannot answer the question (no such
endpoint, not authorized, a 5xx, unreachable); the callers then start without history.

`snapshot_batch` turns stored bars into the Candle snapshot a `CandleStore` applies (newest
first, SNAPSHOT_BEGIN ... SNAPSHOT_END), so a warm start seeds the store, and through its
`Changes` the indicators, exactly as a dxLink snapshot would; `warm_bars` reads the newest bars
of every symbol.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import numpy as np
import numpy.typing as npt

from ttfast._util import redact_url

__all__ = [
    "Bars",
    "FluxReader",
    "HistoryReader",
    "HistoryUnavailable",
    "InfluxQLReader",
    "RedisHistoryReader",
    "flux_string",
    "influxql_string",
    "snapshot_batch",
    "warm_bars",
]

log = logging.getLogger("ttfast.warm")

FIELDS = ("open", "high", "low", "close", "volume")


class HistoryUnavailable(Exception):
    """The server could not be asked, or refused the query (the message says why)."""


@dataclass
class Bars:
    """Stored candles of one symbol, oldest first: time (epoch ms) and the five fields."""

    time: npt.NDArray[np.int64]
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def from_rows(cls, rows: list[tuple[int, list[float]]]) -> Bars:
        """From (time ms, [open, high, low, close, volume]) rows in any order (sorted here;
        a repeated time keeps the last row)."""
        by_t = {t: v for t, v in rows}
        ts = sorted(by_t)
        vals = np.array([by_t[t] for t in ts], dtype=np.float64).reshape(len(ts), 5)
        return cls(np.array(ts, dtype=np.int64), *(vals[:, k].copy() for k in range(5)))


class HistoryReader(Protocol):
    """What backfill and warm start need from a database."""

    async def last_time(self, symbol: str, period: str, start_ms: int, stop_ms: int) -> int | None:
        """Time (epoch ms) of the newest stored bar in [start_ms, stop_ms], None if none."""
        ...

    async def last_bars(self, symbol: str, period: str, n: int) -> Bars:
        """The newest `n` stored bars, oldest first."""
        ...

    async def close(self) -> None: ...


def influxql_string(s: str) -> str:
    """An InfluxQL single-quoted string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def flux_string(s: str) -> str:
    """A Flux double-quoted string literal (``${`` would start an interpolation)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _num(v: object) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


class InfluxQLReader:
    """InfluxDB 1.x: InfluxQL over ``GET /query`` (see the module docstring)."""

    def __init__(self, url: str, database: str = "ttfast", *, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"InfluxDB 1.x url must be http(s)://, got {redact_url(url)}")
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.database = query.get("db", database)
        self.url = url
        self._params = {k: v for k, v in query.items() if k in ("u", "p")}
        path = parts.path.rstrip("/")
        if path.endswith("/write"):
            path = path[: -len("/write")]
        self._query_url = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, path + "/query", "", "")
        )
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<InfluxQLReader {redact_url(self.url)} db={self.database!r}>"

    async def query(self, q: str) -> list[dict[str, Any]]:
        """Rows of the first statement's series (column name -> value, plus the series' tags);
        [] when nothing matches or the database does not exist."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        params = {**self._params, "db": self.database, "q": q, "epoch": "ms"}
        where = redact_url(self.url)
        try:
            async with self._session.get(
                self._query_url, params=params, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise HistoryUnavailable(f"{where} unreachable ({type(exc).__name__})") from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise HistoryUnavailable(f"{where}: /query answered HTTP {status}, not JSON") from None
        if not isinstance(body, dict):
            raise HistoryUnavailable(f"{where}: /query answered HTTP {status}, not an object")
        err = body.get("error")
        results = body.get("results")
        if err is None and isinstance(results, list) and results:
            err = results[0].get("error") if isinstance(results[0], dict) else None
        if err is not None:
            if "database not found" in str(err):
                return []
            raise HistoryUnavailable(f"{where}: {str(err)[:300]}")
        if status >= 300:
            raise HistoryUnavailable(f"{where}: /query answered HTTP {status}")
        if results == []:  # Telegraf's influxdb_listener: a stub that stores nothing
            raise HistoryUnavailable(f"{where} has no readable /query (a Telegraf listener?)")
        rows: list[dict[str, Any]] = []
        first = results[0] if isinstance(results, list) and results else {}
        for series in first.get("series", []) if isinstance(first, dict) else []:
            tags = series.get("tags") or {}
            cols = series.get("columns", [])
            for vals in series.get("values", []):
                row = dict(zip(cols, vals, strict=False))
                row.update(tags)
                rows.append(row)
        return rows

    def _where(self, symbol: str, period: str) -> str:
        return f'"symbol" = {influxql_string(symbol)} AND "period" = {influxql_string(period)}'

    async def last_time(self, symbol: str, period: str, start_ms: int, stop_ms: int) -> int | None:
        rows = await self.query(
            f'SELECT last("close") FROM "candle" WHERE {self._where(symbol, period)} '
            f"AND time >= {int(start_ms)}ms AND time <= {int(stop_ms)}ms"
        )
        times = [int(r["time"]) for r in rows if isinstance(r.get("time"), int)]
        return max(times) if times else None

    async def last_bars(self, symbol: str, period: str, n: int) -> Bars:
        fields = ", ".join(f'"{f}"' for f in FIELDS)
        rows = await self.query(
            f'SELECT {fields} FROM "candle" WHERE {self._where(symbol, period)} '
            f"ORDER BY time DESC LIMIT {max(0, int(n))}"
        )
        return Bars.from_rows(
            [(int(r["time"]), [_num(r.get(f)) for f in FIELDS]) for r in rows if "time" in r]
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class FluxReader:
    """InfluxDB v2: Flux over ``/api/v2/query`` through influxdb-client (module docstring)."""

    def __init__(
        self, url: str, *, org: str, bucket: str, token: str | None = None, timeout: float = 30.0
    ) -> None:
        from ttfast.sinks.influx import import_client

        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"influx url must be http(s)://, got {redact_url(url)}")
        self._client_cls = import_client()
        self.url = url
        self.org = org
        self.bucket = bucket
        self._token = token or ""
        self._timeout = timeout
        self._client: Any = None

    def __repr__(self) -> str:
        return f"<FluxReader {redact_url(self.url)} org={self.org!r} bucket={self.bucket!r}>"

    async def query(self, flux: str) -> list[dict[str, Any]]:
        """Every record of every table as a dict (Flux column name -> value)."""
        from influxdb_client.client.exceptions import InfluxDBError

        from ttfast.sinks.influx import error_message

        if self._client is None:
            self._client = self._client_cls(
                url=self.url,
                token=self._token,
                org=self.org,
                timeout=int(self._timeout * 1000),
                allow_redirects=False,
            )
        where = redact_url(self.url)
        try:
            tables = await self._client.query_api().query(flux, org=self.org)
        except InfluxDBError as exc:
            status = getattr(exc, "status", None)
            msg = error_message(exc)[:300]
            raise HistoryUnavailable(f"{where}: Flux query failed (HTTP {status}): {msg}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise HistoryUnavailable(f"{where} unreachable ({type(exc).__name__})") from None
        return [dict(rec.values) for table in tables for rec in table.records]

    def _source(self, symbol: str, period: str, start: str, stop: str | None) -> str:
        rng = f"start: {start}" + (f", stop: {stop}" if stop else "")
        return (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range({rng})\n"
            f'  |> filter(fn: (r) => r._measurement == "candle" and '
            f"r.symbol == {flux_string(symbol)} and r.period == {flux_string(period)})\n"
        )

    async def last_time(self, symbol: str, period: str, start_ms: int, stop_ms: int) -> int | None:
        # Flux's range stop is exclusive: one ms past the last bar asked for
        flux = (
            self._source(symbol, period, _rfc3339(start_ms), _rfc3339(stop_ms + 1))
            + '  |> filter(fn: (r) => r._field == "close")\n'
            + "  |> last()\n"
            + '  |> keep(columns: ["_time", "_value"])\n'
        )
        times = [_ms(r.get("_time")) for r in await self.query(flux)]
        known = [t for t in times if t is not None]
        return max(known) if known else None

    async def last_bars(self, symbol: str, period: str, n: int) -> Bars:
        flux = (
            self._source(symbol, period, "0", None)
            + '  |> filter(fn: (r) => contains(value: r._field, set: ["open", "high", "low", '
            + '"close", "volume"]))\n'
            + '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            + '  |> group()\n  |> sort(columns: ["_time"], desc: true)\n'
            + f"  |> limit(n: {max(0, int(n))})\n"
        )
        rows: list[tuple[int, list[float]]] = []
        for r in await self.query(flux):
            t = _ms(r.get("_time"))
            if t is not None:
                rows.append((t, [_num(r.get(f)) for f in FIELDS]))
        return Bars.from_rows(rows)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def _ms(t: object) -> int | None:
    """Epoch ms of a Flux `_time` (influxdb-client parses it to an aware datetime)."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        delta = t - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return None


class RedisHistoryReader:
    """``history:<name>`` sorted sets in Redis (see the module docstring). `symbol` is the
    worker's name for the series: the plain symbol for the worker's own period."""

    def __init__(self, url: str, *, prefix: str = "history:", timeout: float = 10.0) -> None:
        self.url = url
        self.prefix = prefix
        self._timeout = timeout
        self._client: Any = None

    def __repr__(self) -> str:
        return f"<RedisHistoryReader {redact_url(self.url)} {self.prefix}*>"

    async def _call(self, name: str, *args: object, **kw: object) -> Any:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=self._timeout, socket_timeout=self._timeout
            )
        try:
            return await getattr(self._client, name)(*args, **kw)
        except (RedisError, OSError) as exc:
            raise HistoryUnavailable(f"{redact_url(self.url)}: {type(exc).__name__}") from None

    @staticmethod
    def _rows(members: list[bytes]) -> list[tuple[int, list[float]]]:
        rows: list[tuple[int, list[float]]] = []
        for m in members:
            try:
                d = json.loads(m)
                t = d["time"]
            except (ValueError, TypeError, KeyError):
                continue  # not a bar: skipped, not fatal
            if isinstance(t, int) and not isinstance(t, bool):
                rows.append((t, [_num(d.get(f)) for f in FIELDS]))
        return rows

    async def last_time(self, symbol: str, period: str, start_ms: int, stop_ms: int) -> int | None:
        got = await self._call(
            "zrevrangebyscore", self.prefix + symbol, stop_ms, start_ms, start=0, num=1,
            withscores=True,
        )  # fmt: skip
        return int(got[0][1]) if got else None

    async def last_bars(self, symbol: str, period: str, n: int) -> Bars:
        members = await self._call("zrange", self.prefix + symbol, -max(1, int(n)), -1)
        return Bars.from_rows(self._rows(members))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def snapshot_batch(candle_symbol: str, bars: Bars) -> Any:
    """A `ttfast.ColumnBatch` of `bars` as a complete Candle snapshot of `candle_symbol`
    (``SPY{=5m}``): newest first, SNAPSHOT_BEGIN on the first row, SNAPSHOT_END on the last
    (one row: both). `CandleStore.apply` replaces the series with it and reports SNAPSHOT."""
    from ttfast._core import SNAPSHOT_BEGIN, SNAPSHOT_END
    from ttfast.batch import ColumnBatch

    n = len(bars)
    if n == 0:
        raise ValueError("no bars to seed from")
    flags = np.zeros(n, dtype=np.int64)
    flags[0] |= SNAPSHOT_BEGIN
    flags[-1] |= SNAPSHOT_END
    cols: dict[str, Any] = {
        "eventSymbol": [candle_symbol] * n,
        "time": bars.time[::-1],
        "eventFlags": flags,
    }
    for f in FIELDS:
        cols[f] = getattr(bars, f)[::-1]
    return ColumnBatch("Candle", cols)


async def warm_bars(
    reader: HistoryReader, symbols: list[str], period: str, n: int
) -> dict[str, Bars]:
    """The newest `n` stored bars of each symbol that has any (`period` as the points are
    tagged, e.g. ``5m``); raises `HistoryUnavailable` if the server cannot be asked."""
    out: dict[str, Bars] = {}
    for sym in symbols:
        bars = await reader.last_bars(sym, period, n)
        if len(bars):
            out[sym] = bars
    return out
