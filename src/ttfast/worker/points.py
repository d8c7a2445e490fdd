"""The worker's points: the candle and indicator rows of every pipeline output, as Influx line
protocol, to Telegraf / InfluxDB 1.x (``--telegraf``) and/or InfluxDB v2 (``--influx``),
encoded once for both. Used by the single-process worker and by the scale-out compute role.

May touch: the HTTP endpoints of its sinks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ttfast._core import COLUMN_MACD, KIND_FORMING, LineEncoder, PipelineOutput
from ttfast.sinks.influx import InfluxV2Sink
from ttfast.sinks.telegraf import CANDLE_FIELDS, INDICATOR_FIELDS, TelegrafSink
from ttfast.worker.config import WorkerConfig

__all__ = ["PointsOutput"]

log = logging.getLogger("ttfast.worker")


class PointsOutput:
    """`candle` and `indicators` points tagged symbol=<tag symbol>,period=<period>.

    `on_bad_row(detail)` is called for a row whose tag the encoder refuses (it is skipped).
    """

    def __init__(
        self, cfg: WorkerConfig, display_period: str, on_bad_row: Callable[[str], None]
    ) -> None:
        self.final_only = cfg.telegraf_final_only
        self.on_bad_row = on_bad_row
        self.telegraf: TelegrafSink | None = (
            TelegrafSink(
                cfg.telegraf_url,
                database=cfg.telegraf_db,
                period=display_period,
                gzip=cfg.telegraf_gzip,
            )
            if cfg.telegraf_url
            else None
        )
        self.influx: InfluxV2Sink | None = None
        if cfg.influx_url:
            token = os.environ.get(cfg.influx_token_env, "")
            if not token:
                log.warning("influx: $%s is not set: writing without a token", cfg.influx_token_env)
            self.influx = InfluxV2Sink(
                cfg.influx_url,
                org=cfg.influx_org,
                bucket=cfg.influx_bucket,
                token=token,
                period=display_period,
                gzip=cfg.influx_gzip,
            )
        tags = ("symbol", "period")
        self._lp_candle = LineEncoder("candle", tags, CANDLE_FIELDS)
        self._lp_indicators = LineEncoder("indicators", tags, INDICATOR_FIELDS)

    @property
    def sinks(self) -> list[TelegrafSink]:
        return [s for s in (self.telegraf, self.influx) if s is not None]

    @property
    def active(self) -> bool:
        return self.telegraf is not None or self.influx is not None

    def emit(self, out: PipelineOutput) -> None:
        """Queue the rows of `out` (only the closed ones with ``--telegraf-final-only``)."""
        if out.n == 0:
            return
        if self.final_only:
            sel = np.flatnonzero(out.kind != KIND_FORMING)
            if len(sel):
                tags = [out.tag_symbols[i] for i in sel]
                periods = [out.periods[i] for i in sel]
                self.write(tags, periods, out.time[sel], out.columns[:, sel])
        else:
            self.write(out.tag_symbols, out.periods, out.time, out.columns)

    def write(
        self,
        tags: Sequence[str],
        periods: Sequence[str],
        time_ms: npt.NDArray[np.int64],
        cols: npt.NDArray[np.float64],
    ) -> None:
        """Queue the rows: encoded here rather than by TelegrafSink.write_rows, whose period tag
        is one value per sink (the rows of one batch can belong to several periods); once for
        both sinks."""
        enc_c, enc_i = self._lp_candle, self._lp_indicators
        nc = COLUMN_MACD  # rows [0, nc): the candle fields; [nc, ...): the indicators
        t_ns = np.asarray(time_ms, dtype=np.int64) * 1_000_000
        omitted0 = enc_c.fields_omitted + enc_i.fields_omitted
        written0 = enc_c.rows_written + enc_i.rows_written
        try:
            body = enc_c.encode(t_ns, (tags, periods), tuple(cols[:nc]))
            body += enc_i.encode(t_ns, (tags, periods), tuple(cols[nc:]))
        except ValueError:  # a tag the edge let through: encode row by row, skip the bad ones
            parts: list[bytes] = []
            for i in range(len(t_ns)):
                try:
                    one = (tags[i : i + 1], periods[i : i + 1])
                    parts.append(enc_c.encode(t_ns[i : i + 1], one, tuple(cols[:nc, i : i + 1])))
                    parts.append(enc_i.encode(t_ns[i : i + 1], one, tuple(cols[nc:, i : i + 1])))
                except ValueError as exc:
                    self.on_bad_row(f"influx row of {tags[i]!r}: {exc}")
            body = b"".join(parts)
        for sink in self.sinks:
            sink.stats.fields_omitted += enc_c.fields_omitted + enc_i.fields_omitted - omitted0
            sink.write_lines(body, enc_c.rows_written + enc_i.rows_written - written0)

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    async def flush(self, timeout: float | None = None) -> bool:
        """Everything queued so far acknowledged by every sink within `timeout`?"""
        ok = True
        for sink in self.sinks:
            ok = await sink.flush(timeout) and ok
        return ok

    async def close(self) -> None:
        for sink in self.sinks:
            await sink.close()
