"""``ttfast-worker``: candles in -> MACD(12,26,9) and HMA(20) per symbol -> Redis and Telegraf.

Sources (``--source``):
* ``sim`` (default without credentials): the local dxLink server + seeded market simulator run
  in-process and the real dxLink client connects to it -- the whole pipeline, offline.
* ``dxlink``: a real tastytrade session (OAuth from ``TASTYTRADE_*`` env) -> ``/api-quote-tokens``
  -> the dxLink streamer.
* ``redis``: raw candles published by another process on ``market:CandleEvent:<symbol>``
  (pattern subscription), JSON objects with ``time`` (epoch ms), ``open``..``volume`` and
  optionally ``eventSymbol``, ``eventFlags``, ``sequence``, ``count``. A symbol without a
  period attribute (``SPY``, or only the channel) is taken as the worker's ``--period``.

Bad input never stops the worker: every raw candle (and every new symbol of a dxLink batch) is
validated at the edge; a bad one is skipped, counted per reason (json, shape, symbol, time,
number, field, too_large, error; status line ``malformed N (reason n, ...)``) and logged at most
once per 10 s per reason.

Names: the worker's own period (``--period``) keeps ``snapshot:SPY`` / ``analytics:delta:SPY``;
any other period is named by its full candle symbol (``snapshot:SPY{=1h}``). Payloads carry
``"period"``; Influx points are tagged ``symbol=SPY,period=1h``.

Per batch (never per candle in Python): the batch goes into the ``CandleStore``; the compiled
``IndicatorPipeline`` turns the store's changes into rows and encoded JSON payloads; the sinks
queue them and flush from their own tasks. See docs/worker.md.
"""

# Modules: config (WorkerConfig, the command line, edge limits), sources (sim, dxlink, redis and
# the Redis source's message validation), status (counters, status line, --print table), app
# (Worker: store + pipeline + sinks, edge accounting, lifecycle; main).

from ttfast.symbols import validate_symbol
from ttfast.worker.app import Worker, main
from ttfast.worker.config import WorkerConfig, parse_args
from ttfast.worker.status import WorkerStats

__all__ = ["Worker", "WorkerConfig", "WorkerStats", "main", "parse_args", "validate_symbol"]
