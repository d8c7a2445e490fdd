"""InfluxV2Sink (InfluxDB v2 ``/api/v2/write`` through influxdb-client).

The real v2-write server is VictoriaMetrics (no InfluxDB 2.x server can be installed here):
points are read back through its ``/api/v1/export``. Faults a real server cannot be made to
show on demand (429 with Retry-After, 400 with a message, a slow answer, a redirect) come from
a small loopback aiohttp peer speaking the v2 write API's documented answers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from aiohttp import web
from tests.servers import VictoriaMetricsServer, free_port, victoria_metrics

from ttfast.sinks.influx import InfluxV2Sink, retry_after_seconds

TOKEN = "tok-S3CRET-v2"


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetricsServer]:
    with victoria_metrics() as srv:
        yield srv


def _rows(n: int, seed: int = 1) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 300_000
    close = np.round(100 + np.cumsum(rng.normal(0, 0.5, n)), 2)
    candle = [close - 0.1, close + 0.5, close - 0.5, close, np.round(rng.uniform(0, 1e6, n))]
    macd = rng.normal(0, 1, n)
    macd[:5] = math.nan
    ind = [macd, macd * 0.5, macd * 0.25, close + 0.01]
    return t, candle, ind


def _check_invariant(sink: InfluxV2Sink) -> None:
    s = sink.stats
    assert s.lines_enqueued == s.lines_sent + s.lines_dropped + s.lines_rejected + (
        sink.backlog_lines
    ), s


def _sink(url: str, **kw: object) -> InfluxV2Sink:
    kw.setdefault("org", "o")
    kw.setdefault("bucket", "b")
    kw.setdefault("token", TOKEN)
    return InfluxV2Sink(url, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("gz", [False, True])
async def test_points_read_back_from_victoria_metrics(
    vm: VictoriaMetricsServer, gz: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sym = f"V{int(gz)}{free_port()}"
    sink = _sink(vm.url, period="5m", gzip=gz, batch_bytes=4096)
    await sink.start()
    t, candle, ind = _rows(300)
    sink.write_rows(sym, t, candle, ind)
    assert await sink.flush(10.0)
    await sink.close()
    s = sink.stats
    assert s.lines_sent == 600 and s.lines_rejected == s.lines_dropped == 0
    assert s.batches_sent > 1 and s.fields_omitted == 5 * 3
    _check_invariant(sink)
    pts = vm.points(f'{{symbol="{sym}",period="5m"}}')
    for k, f in enumerate(("open", "high", "low", "close", "volume")):
        got = [pts[(f"candle_{f}", sym, int(x))] for x in t]
        # VictoriaMetrics stores decimals (about 15 significant digits), not float64 bits
        assert got == pytest.approx([float(v) for v in candle[k]], rel=1e-13)
    hist = [pts.get(("indicators_hist", sym, int(x))) for x in t]
    assert hist[:5] == [None] * 5
    assert hist[5:] == pytest.approx([float(v) for v in ind[2][5:]], rel=1e-13)
    assert TOKEN not in caplog.text and TOKEN not in repr(sink)


async def test_writing_the_same_rows_twice_leaves_one_point(vm: VictoriaMetricsServer) -> None:
    sym = f"D{free_port()}"
    t, candle, ind = _rows(50, seed=3)
    for _ in range(2):
        sink = _sink(vm.url, period="5m")
        await sink.start()
        sink.write_rows(sym, t, candle, ind)
        assert await sink.flush(10.0)
        await sink.close()
    pts = vm.points(f'{{__name__="candle_close",symbol="{sym}"}}')  # raises on a duplicate
    assert len(pts) == 50


async def test_server_down_for_a_while_loses_nothing(vm: VictoriaMetricsServer) -> None:
    sym = f"O{free_port()}"
    sink = _sink(vm.url, period="1m", flush_interval=0.0, backoff_initial=0.02, backoff_max=0.2)
    await sink.start()
    t, candle, ind = _rows(200, seed=4)
    sink.write_rows(sym, t[:100], [c[:100] for c in candle], [x[:100] for x in ind])
    assert await sink.flush(10.0)
    # stopped, not SIGKILLed: VictoriaMetrics keeps seconds of acknowledged points in memory
    vm.stop()
    try:
        sink.write_rows(sym, t[100:], [c[100:] for c in candle], [x[100:] for x in ind])
        deadline = time.monotonic() + 10
        while sink.stats.retries < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert sink.stats.retries >= 3 and sink.backlog_lines == 200
        _check_invariant(sink)
    finally:
        vm.start()
    assert await sink.flush(20.0)
    await sink.close()
    s = sink.stats
    assert s.lines_sent == 400 and s.lines_dropped == s.lines_rejected == 0
    pts = vm.points(f'{{__name__="candle_close",symbol="{sym}"}}')
    assert sorted(t for _, _, t in pts) == [int(x) for x in t]


async def test_unreachable_retries_then_drops_at_close(caplog: pytest.LogCaptureFixture) -> None:
    sink = _sink(f"http://127.0.0.1:{free_port()}", backoff_initial=0.01, backoff_max=0.02)
    await sink.start()
    t, candle, ind = _rows(4)
    sink.write_rows("SPY", t, candle, ind)
    assert not await sink.flush(0.3)
    assert sink.stats.retries >= 2
    await sink.close(timeout=0.1)
    assert sink.stats.lines_dropped == 8 and sink.stats.lines_sent == 0
    _check_invariant(sink)
    assert "unreachable" in caplog.text and TOKEN not in caplog.text


async def test_bounded_buffer_drops_oldest_and_counts() -> None:
    sink = _sink("http://127.0.0.1:9", max_buffer_bytes=1000)
    for i in range(100):
        sink.write_lines(b"m x=%d.0 %d\n" % (i, i), 1)
    assert sink.stats.buffered_bytes <= 1000
    assert sink.stats.lines_dropped == 100 - sink.backlog_lines > 0
    _check_invariant(sink)


async def test_shared_buffer_logs_name_the_influx_sink(caplog: pytest.LogCaptureFixture) -> None:
    # the buffer and close paths are TelegrafSink's: their logs must still say "influx"
    caplog.set_level(logging.INFO)
    sink = _sink("http://127.0.0.1:9", max_buffer_bytes=100)
    for i in range(20):
        sink.write_lines(b"m x=%d.0 %d\n" % (i, i), 1)
    await sink.close()
    msgs = [(r.name, r.getMessage()) for r in caplog.records]
    assert any(m.startswith("influx ") and "buffer full" in m for _, m in msgs), msgs
    assert any(m.startswith("influx ") and "closing with" in m for _, m in msgs), msgs
    assert all(n == "ttfast.sinks.influx" for n, _ in msgs), msgs
    assert not any("telegraf" in m for _, m in msgs), msgs


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="http"):
        InfluxV2Sink("udp://127.0.0.1:1", org="o", bucket="b")
    with pytest.raises(ValueError, match="org and a bucket"):
        InfluxV2Sink("http://127.0.0.1:1", org="", bucket="b")


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-4") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    now = 1_800_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 7))
    assert retry_after_seconds(date, now=now) == 7.0


# -- a scripted v2 peer -----------------------------------------------------------------------
@dataclass
class V2Peer:
    """POST /api/v2/write: every request recorded (time, query, headers, body) and answered
    from `script` (status, headers, body) in order, then 204; `hold` keeps requests waiting
    until `release`."""

    script: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    requests: list[tuple[float, dict[str, str], dict[str, str], bytes]] = field(
        default_factory=list
    )
    hold: asyncio.Event | None = None
    runner: web.AppRunner | None = None
    url: str = ""
    paths: list[str] = field(default_factory=list)

    async def _any(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.path != "/api/v2/write":
            return web.Response(status=204)
        body = await request.read()  # aiohttp's server inflates a gzip body itself
        self.requests.append((time.monotonic(), dict(request.query), dict(request.headers), body))
        if self.hold is not None:
            await self.hold.wait()
        if self.script:
            status, headers, text = self.script.pop(0)
            return web.Response(status=status, headers=headers, text=text or None)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self.runner is not None:
            await self.runner.cleanup()


def _lines(start: int, k: int) -> bytes:
    return b"".join(b"m,s=a v=%di %d\n" % (i, i) for i in range(start, start + k))


@pytest.mark.parametrize("gz", [False, True])
async def test_request_shape_token_org_bucket(gz: bool) -> None:
    peer = V2Peer()
    await peer.start()
    sink = _sink(peer.url, org="my org", bucket="my/bucket", gzip=gz, flush_interval=0.0)
    await sink.start()
    sink.write_lines(_lines(0, 3), 3)
    assert await sink.flush(5.0)
    await sink.close()
    await peer.stop()
    (_, query, headers, body) = peer.requests[0]
    assert query == {"org": "my org", "bucket": "my/bucket", "precision": "ns"}
    assert headers["Authorization"] == f"Token {TOKEN}"
    assert headers.get("Content-Encoding") == ("gzip" if gz else None)
    assert body == _lines(0, 3)
    assert sink.stats.lines_sent == 3


async def test_429_waits_for_retry_after_then_delivers(caplog: pytest.LogCaptureFixture) -> None:
    peer = V2Peer(script=[(429, {"Retry-After": "1"}, '{"code":"too many requests"}')])
    await peer.start()
    sink = _sink(peer.url, flush_interval=0.0, backoff_initial=0.01, backoff_max=0.02)
    await sink.start()
    sink.write_lines(_lines(0, 5), 5)
    assert await sink.flush(10.0)
    await sink.close()
    await peer.stop()
    assert [r[3] for r in peer.requests] == [_lines(0, 5)] * 2  # the same batch, re-sent
    # the server asked for 1 s: the retry did not come sooner (a lower bound, never flaky)
    assert peer.requests[1][0] - peer.requests[0][0] >= 0.95
    s = sink.stats
    assert s.retries == 1 and s.lines_sent == 5 and s.lines_rejected == 0
    assert "HTTP 429" in caplog.text and "after 1s" in caplog.text


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried(status: int) -> None:
    peer = V2Peer(script=[(status, {}, '{"code":"internal error","message":"oops"}')] * 2)
    await peer.start()
    sink = _sink(peer.url, flush_interval=0.0, backoff_initial=0.01, backoff_max=0.02)
    await sink.start()
    sink.write_lines(_lines(0, 2), 2)
    assert await sink.flush(10.0)
    await sink.close()
    await peer.stop()
    assert len(peer.requests) == 3 and sink.stats.retries == 2 and sink.stats.lines_sent == 2


async def test_400_is_logged_with_the_message_counted_and_the_rest_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    msg = "unable to parse 'm,s=a v=1i 1': invalid field format"
    peer = V2Peer(
        script=[
            (
                400,
                {"Content-Type": "application/json"},
                '{"code":"invalid","message":"' + msg.replace("'", "\\u0027") + '"}',
            )
        ]
    )
    await peer.start()
    sink = _sink(peer.url, flush_interval=0.0, batch_bytes=20)
    await sink.start()
    sink.write_lines(_lines(0, 1), 1)
    assert await sink.flush(5.0)
    sink.write_lines(_lines(1, 2), 2)
    assert await sink.flush(5.0)
    await sink.close()
    await peer.stop()
    s = sink.stats
    assert s.lines_rejected == 1 and s.lines_sent == 2 and s.retries == 0
    _check_invariant(sink)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("HTTP 400" in m and "invalid field format" in m for m in errors), errors
    assert TOKEN not in caplog.text


async def test_slow_server_overflow_keeps_the_batch_in_flight() -> None:
    peer = V2Peer(hold=asyncio.Event())
    await peer.start()
    sink = _sink(peer.url, flush_interval=0.0, batch_bytes=100, max_buffer_bytes=300)
    await sink.start()
    sink.write_lines(_lines(0, 5), 5)
    while not peer.requests:
        await asyncio.sleep(0.01)
    inflight = sink.inflight_lines
    assert inflight == 5
    for i in range(5, 200, 5):  # the producer keeps writing while the server is slow
        sink.write_lines(_lines(i, 5), 5)
        _check_invariant(sink)
    assert sink.stats.lines_dropped > 0 and sink.inflight_lines == 5
    assert peer.hold is not None
    peer.hold.set()
    assert await sink.flush(10.0)
    await sink.close()
    await peer.stop()
    s = sink.stats
    _check_invariant(sink)
    got = [int(ln.split(b" ")[-1]) for r in peer.requests for ln in r[3].splitlines()]
    assert got[:5] == list(range(5))  # the batch in flight survived the overflow
    assert len(got) == len(set(got)) == s.lines_sent
    assert s.lines_sent + s.lines_dropped == 200


async def test_redirect_is_not_followed(caplog: pytest.LogCaptureFixture) -> None:
    peer = V2Peer(script=[(307, {"Location": "/elsewhere?token=zzz"}, "")])
    await peer.start()
    sink = _sink(peer.url, flush_interval=0.0)
    await sink.start()
    sink.write_lines(_lines(0, 2), 2)
    assert await sink.flush(5.0)
    await sink.close()
    await peer.stop()
    assert peer.paths == ["/api/v2/write"]
    assert sink.stats.lines_rejected == 2 and sink.stats.lines_sent == 0
    assert "not followed" in caplog.text and "zzz" not in caplog.text


async def test_url_path_prefix_is_kept() -> None:
    peer = V2Peer()
    await peer.start()
    sink = _sink(peer.url + "/influx/", flush_interval=0.0)
    await sink.start()
    sink.write_lines(_lines(0, 1), 1)
    assert await sink.flush(5.0)
    await sink.close()
    await peer.stop()
    assert urllib.parse.urlsplit(peer.url).path == ""
    assert peer.paths == ["/influx/api/v2/write"]
