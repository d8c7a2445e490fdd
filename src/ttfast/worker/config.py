"""The worker's configuration: `WorkerConfig`, the command line (`parse_args`) and the limits
applied to input at the edges. Reads the environment (``TTFAST_*``, ``TASTYTRADE_*``), nothing
else; validates with `ttfast.symbols`, the one candle-symbol/period parser.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from ttfast.symbols import normalize_period, validate_symbol

__all__ = [
    "LOG_EVERY",
    "MALFORMED_REASONS",
    "MAX_ABS_VALUE",
    "MAX_MESSAGE_BYTES",
    "MAX_TIME_MS",
    "Source",
    "WorkerConfig",
    "parse_args",
]

Source = Literal["sim", "dxlink", "redis"]

# -- edge limits -----------------------------------------------------------------------------
MAX_MESSAGE_BYTES: Final = 64 * 1024  # one raw candle message
MAX_ABS_VALUE: Final = 1e15  # |open|..|volume|: beyond this the indicators' sums lose meaning
MAX_TIME_MS: Final = 2**32 * 1000  # bar times in [0, 2**32 s): the range of a dxFeed index
MALFORMED_REASONS: Final = (
    "json",
    "shape",
    "symbol",
    "time",
    "number",
    "field",
    "too_large",
    "error",
)
LOG_EVERY: Final = 10.0  # seconds between two log lines about the same kind of bad input


@dataclass
class WorkerConfig:
    symbols: list[str] = field(default_factory=lambda: ["SPY", "QQQ", "AAPL", "MSFT", "NVDA"])
    period: str = "5m"  # any spelling `ttfast.symbols.normalize_period` reads
    source: Source = "sim"
    redis_url: str | None = None
    telegraf_url: str | None = None
    telegraf_db: str = "ttfast"
    telegraf_gzip: bool = False
    telegraf_final_only: bool = False  # closed bars only, into Telegraf and InfluxDB v2
    influx_url: str | None = None  # InfluxDB v2 (/api/v2/write)
    influx_org: str = ""
    influx_bucket: str = ""
    influx_token_env: str = "INFLUX_TOKEN"  # the token's environment variable, never the token
    influx_gzip: bool = False
    warm_from: Literal["influx", "redis"] | None = None  # seed store + indicators from there
    warm_bars: int = 1000  # newest stored bars read per symbol by the warm start
    history_days: float = 2.0
    capacity: int = 4096
    duration: float | None = None
    status_interval: float = 1.0
    print_table: bool = False
    quiet: bool = False
    sim_seed: int = 7
    sim_speed: float = 60.0
    sim_anchor_ms: int | None = None  # sim clock = wall clock at this epoch ms (None: start)
    redis_backlog: int = 100_000
    max_symbols: int = 10_000  # symbols with state (store, pipeline, Redis keys); new ones refused
    idle_discard: float = 0.0  # redis source: forget symbols silent this long (s); 0 = never
    serve: str | None = None  # [HOST:]PORT: serve the edge (ttfast.edge) in-process
    serve_auto: bool = False  # serve was the sim source's default: skip it if the port is taken
    history_bars: int = 0  # closed bars per symbol for GET /history; the CLI default is 1000
    # scale-out (ttfast.worker.scaleout; docs/scale-out.md): "single" is today's worker
    role: Literal["single", "ingest", "compute"] = "single"
    partitions: int = 16  # candle streams {p<n>}:candles, crc32(candle symbol) % partitions
    stream_maxlen: int = 100_000  # XADD MAXLEN ~ per partition stream
    lease_ms: int = 2000  # compute: partition lease TTL (renewed every quarter of it)
    durable: int = 0  # scale-out roles: WAIT for this many replicas before a round counts
    durable_timeout_ms: int = 1000  # ... waiting at most this long per round (then resent)
    cluster_client: Literal["resp", "redis-py"] = "resp"  # scale-out write rounds
    points_flush_timeout: float = 5.0  # compute: wait this long for the points before an ack


def have_credentials() -> bool:
    return bool(
        os.environ.get("TASTYTRADE_CLIENT_SECRET") and os.environ.get("TASTYTRADE_REFRESH_TOKEN")
    )


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and shows every option's default (unless its help
    already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def parse_args(argv: Sequence[str] | None = None) -> WorkerConfig:
    import ttfast.worker

    env = os.environ
    p = argparse.ArgumentParser(
        prog="ttfast-worker",
        description=ttfast.worker.__doc__,
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--symbols",
        default=env.get("TTFAST_SYMBOLS", "SPY,QQQ,AAPL,MSFT,NVDA"),
        help="comma-separated symbols (env TTFAST_SYMBOLS)",
    )
    p.add_argument(
        "--period",
        default=env.get("TTFAST_PERIOD", "5m"),
        help="candle period, e.g. 1m, 5m, 1h, 1d (default: 5m; env TTFAST_PERIOD). Its "
        "candles keep the plain names (snapshot:SPY, analytics:delta:SPY); candles of any other "
        "period (redis source) are named by their candle symbol (snapshot:SPY{=1h}). Payloads "
        'carry "period"; Influx points are tagged symbol and period',
    )
    p.add_argument(
        "--source",
        choices=("sim", "dxlink", "redis"),
        default=env.get("TTFAST_SOURCE"),
        help="sim (default without credentials), dxlink (with TASTYTRADE_* env), "
        "redis (raw candles on market:CandleEvent:*)",
    )
    p.add_argument(
        "--redis",
        default=env.get("TTFAST_REDIS_URL"),
        help="redis://host:port/db for snapshots/deltas (env TTFAST_REDIS_URL)",
    )
    p.add_argument(
        "--telegraf",
        default=env.get("TTFAST_TELEGRAF_URL"),
        help="http://host:port (influxdb_listener or InfluxDB 1.x /write) or "
        "udp://host:port (env TTFAST_TELEGRAF_URL)",
    )
    p.add_argument("--telegraf-db", default=env.get("TTFAST_TELEGRAF_DB", "ttfast"))
    p.add_argument("--telegraf-gzip", action="store_true")
    p.add_argument(
        "--telegraf-final-only",
        action="store_true",
        help="write only closed bars (and rebuilt history), not forming-bar updates "
        "(Telegraf and InfluxDB v2)",
    )
    p.add_argument(
        "--influx",
        default=env.get("TTFAST_INFLUX_URL"),
        help="InfluxDB v2 http(s)://host:port (/api/v2/write; needs ttfast[influx]) "
        "(env TTFAST_INFLUX_URL)",
    )
    p.add_argument("--influx-org", default=env.get("TTFAST_INFLUX_ORG", ""))
    p.add_argument("--influx-bucket", default=env.get("TTFAST_INFLUX_BUCKET", ""))
    p.add_argument(
        "--influx-token-env",
        default="INFLUX_TOKEN",
        metavar="NAME",
        help="environment variable holding the InfluxDB v2 token (default: INFLUX_TOKEN); "
        "the token itself is never taken on the command line",
    )
    # an exact match for the flag people will try: without it argparse would take
    # `--influx-token SECRET` as an abbreviation of --influx-token-env
    p.add_argument("--influx-token", dest="influx_token_argv", help=argparse.SUPPRESS)
    p.add_argument("--influx-gzip", action="store_true")
    p.add_argument(
        "--warm-from",
        choices=("influx", "redis"),
        default=None,
        help="before the live stream: read the newest --warm-bars stored bars per symbol "
        "(influx: Flux on --influx, else InfluxQL on --telegraf; redis: the history:<name> "
        "sets in --redis), seed the candles and indicators, and ask dxLink only for the bars "
        "after them",
    )
    p.add_argument("--warm-bars", type=int, default=1000, metavar="N")
    p.add_argument(
        "--history-days", type=float, default=2.0, help="candle history requested at start (days)"
    )
    p.add_argument("--capacity", type=int, default=4096, help="bars kept per symbol")
    p.add_argument(
        "--max-symbols",
        type=int,
        metavar="N",
        default=env.get("TTFAST_MAX_SYMBOLS", "10000"),
        help="at most N symbols (candle symbols: SPY{=5m} and SPY{=1h} are two) have state "
        "and Redis keys; messages of further new symbols are refused, counted ('refused' in "
        "the status line) and logged (default: 10000; env TTFAST_MAX_SYMBOLS)",
    )
    p.add_argument(
        "--idle-discard",
        type=float,
        metavar="SECONDS",
        default=env.get("TTFAST_IDLE_DISCARD", "0"),
        help="redis source: forget a symbol (its bars and indicator state, not its Redis "
        "snapshot) after SECONDS without a message, freeing its --max-symbols slot; if it "
        "comes back it starts over from that message, so MACD/HMA warm up again "
        "(default: 0 = never; env TTFAST_IDLE_DISCARD)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (flush and exit 0); without it the worker runs "
        "until Ctrl-C / SIGTERM",
    )
    p.add_argument(
        "--status-interval", type=float, default=1.0, help="seconds between status lines"
    )
    p.add_argument(
        "--print",
        dest="print_table",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live table on stdout: close, MACD hist (colour), HMA direction per symbol "
        "(default: on with --source sim or when stdout is a terminal)",
    )
    p.add_argument("--quiet", action="store_true", help="no status output")
    p.add_argument("--sim-seed", type=int, default=7)
    p.add_argument(
        "--sim-speed",
        type=float,
        default=60.0,
        help="simulated seconds per real second (sim source)",
    )
    p.add_argument(
        "--sim-anchor",
        type=int,
        default=None,
        metavar="EPOCH_MS",
        help="sim source: the simulated clock equals the wall clock at this epoch ms and runs "
        "--sim-speed times faster from there (default: from this process's start); give "
        "processes that must share one market clock (two --role ingest) the same value",
    )
    p.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        default=env.get("TTFAST_SERVE") or None,
        help="serve the chart page, HTTP API and WebSockets (ttfast.edge) from this process, "
        "fed in-process (no Redis needed); default with --source sim: 127.0.0.1:8000 when "
        "that port is free (env TTFAST_SERVE; 'off' = --no-serve). Token: $TTFAST_EDGE_TOKEN",
    )
    p.add_argument("--no-serve", action="store_true", help="do not serve (see --serve)")
    p.add_argument(
        "--history-bars",
        type=int,
        metavar="N",
        default=env.get("TTFAST_HISTORY_BARS", "1000"),
        help="closed bars kept per symbol for GET /history: in Redis (history:<name>, a sorted "
        "set by bar time) with --redis, in memory with --serve (default: 1000; 0: none; env "
        "TTFAST_HISTORY_BARS)",
    )
    p.add_argument(
        "--role",
        choices=("single", "ingest", "compute"),
        default=env.get("TTFAST_ROLE", "single"),
        help="single: this process does everything (the default); ingest: the source into one "
        "Redis stream per partition; compute: one of N processes sharing the partitions "
        "through leases (docs/scale-out.md; --redis redis+cluster://host:port,... for a "
        "Redis Cluster) (env TTFAST_ROLE)",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=16,
        metavar="P",
        help="scale-out roles: candle stream partitions (the same P for every process)",
    )
    p.add_argument(
        "--stream-maxlen",
        type=int,
        default=100_000,
        metavar="N",
        help="--role ingest: XADD MAXLEN ~N per partition stream",
    )
    p.add_argument(
        "--lease-ms",
        type=int,
        default=2000,
        metavar="MS",
        help="--role compute: partition lease TTL (renewed every quarter of it)",
    )
    p.add_argument(
        "--durable",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="N",
        help="scale-out roles: a round of stream appends (ingest) or outputs (compute) counts "
        "as written only once N replicas have it (WAIT N; N=1 without a value); default 0: "
        "asynchronous replication (docs/scale-out.md says what a primary crash can lose)",
    )
    p.add_argument(
        "--durable-timeout-ms",
        type=int,
        default=1000,
        metavar="MS",
        help="--durable: how long one WAIT may block before the round is sent again",
    )
    p.add_argument(
        "--cluster-client",
        choices=("resp", "redis-py"),
        default="resp",
        help="scale-out roles: who sends the append / output rounds: ttfast's hand-packed RESP "
        "with cluster routing (default; docs/scale-out.md) or redis-py's cluster pipeline",
    )
    p.add_argument("--log-level", default=env.get("TTFAST_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    logging.basicConfig(
        level=a.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # picows logs every connection at INFO; the worker logs its own connection events
        logging.getLogger("picows").setLevel(logging.WARNING)
    source: Source = a.source or ("dxlink" if have_credentials() else "sim")
    if a.role not in ("single", "ingest", "compute"):
        p.error("--role must be single, ingest or compute")
    if a.role != "single":
        if not a.redis:
            p.error(f"--role {a.role} needs --redis URL (redis:// or redis+cluster://h:p,...)")
        if not 1 <= a.partitions <= 16384:
            p.error("--partitions must be in 1..16384")
        if a.stream_maxlen < 1 or a.lease_ms < 100:
            p.error("--stream-maxlen must be >= 1 and --lease-ms >= 100")
        if not 0 <= a.durable <= 16 or a.durable_timeout_ms < 1:
            p.error("--durable must be in 0..16 and --durable-timeout-ms >= 1")
    elif a.durable:
        p.error("--durable is for --role ingest/compute (docs/scale-out.md)")
    elif (a.redis or "").startswith("redis+cluster://"):
        p.error("redis+cluster:// URLs are for --role ingest/compute (docs/scale-out.md)")
    if source == "redis" and not a.redis:
        p.error("--source redis needs --redis URL")
    symbols = [s.strip() for s in a.symbols.split(",") if s.strip()]
    if not symbols and source != "redis":
        p.error("no symbols")
    for sym in symbols:
        why = validate_symbol(sym)
        if why is not None or "{" in sym:
            p.error(f"--symbols: {why or f'{sym!r} has attributes (give --period instead)'}")
    try:
        normalize_period(a.period)
    except ValueError as exc:
        p.error(f"--period: {exc}")
    if a.duration is not None and not (a.duration > 0 and math.isfinite(a.duration)):
        p.error("--duration must be a number of seconds > 0 (omit it to run until Ctrl-C)")
    if not (a.status_interval > 0 and math.isfinite(a.status_interval)):
        p.error("--status-interval must be a number of seconds > 0")
    print_table = a.print_table
    if print_table is None:
        print_table = source == "sim" or sys.stdout.isatty()
    if a.max_symbols < 1:
        p.error("--max-symbols must be >= 1")
    if len(symbols) > a.max_symbols and source != "redis":
        p.error(f"--symbols lists {len(symbols)} symbols, more than --max-symbols {a.max_symbols}")
    if a.influx_token_argv is not None:
        p.error(
            "the InfluxDB token is not taken on the command line: set it in the environment "
            "($INFLUX_TOKEN, or the variable --influx-token-env names)"
        )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", a.influx_token_env):
        p.error("--influx-token-env must name an environment variable (letters, digits, _)")
    if a.influx and not (a.influx_org and a.influx_bucket):
        p.error("--influx needs --influx-org and --influx-bucket")
    if a.warm_from == "influx" and not (a.influx or (a.telegraf or "").startswith("http")):
        p.error("--warm-from influx needs --influx URL or an http --telegraf URL to read from")
    if a.warm_from == "redis" and not a.redis:
        p.error("--warm-from redis needs --redis URL")
    if not 1 <= a.warm_bars <= 1_000_000:
        p.error("--warm-bars must be in 1..1000000")
    if not a.idle_discard >= 0 or math.isinf(a.idle_discard):
        p.error("--idle-discard must be a number of seconds >= 0")
    serve, serve_auto = a.serve, False
    if a.no_serve or (serve or "").lower() in ("off", "no", "none"):
        serve = None
    elif serve is None and source == "sim":
        serve, serve_auto = "127.0.0.1:8000", True
    if serve is not None:
        from ttfast.edge.embed import parse_hostport

        try:
            parse_hostport(serve)
        except ValueError as exc:
            p.error(f"--serve: {exc}")
    if not 0 <= a.history_bars <= 100_000:
        p.error("--history-bars must be in [0, 100000]")
    return WorkerConfig(
        symbols=symbols,
        period=a.period,
        source=source,
        redis_url=a.redis,
        telegraf_url=a.telegraf,
        telegraf_db=a.telegraf_db,
        telegraf_gzip=a.telegraf_gzip,
        telegraf_final_only=a.telegraf_final_only,
        influx_url=a.influx,
        influx_org=a.influx_org,
        influx_bucket=a.influx_bucket,
        influx_token_env=a.influx_token_env,
        influx_gzip=a.influx_gzip,
        warm_from=a.warm_from,
        warm_bars=a.warm_bars,
        history_days=a.history_days,
        capacity=a.capacity,
        duration=a.duration,
        status_interval=a.status_interval,
        print_table=print_table,
        quiet=a.quiet,
        sim_seed=a.sim_seed,
        sim_speed=a.sim_speed,
        sim_anchor_ms=a.sim_anchor,
        max_symbols=a.max_symbols,
        idle_discard=a.idle_discard,
        serve=serve,
        serve_auto=serve_auto,
        history_bars=a.history_bars,
        role=a.role,
        partitions=a.partitions,
        stream_maxlen=a.stream_maxlen,
        lease_ms=a.lease_ms,
        durable=a.durable,
        durable_timeout_ms=a.durable_timeout_ms,
        cluster_client=a.cluster_client,
    )
