"""ttfast-worker with ``--influx`` (InfluxDB v2 sink) into a real VictoriaMetrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import numpy as np
import pytest
from tests.servers import VictoriaMetricsServer, victoria_metrics

from ttfast.worker import Worker, WorkerConfig
from ttfast.worker.config import parse_args

SYMS = ["SPY", "QQQ"]
TOKEN = "w-tok-S3CRET"


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetricsServer]:
    with victoria_metrics() as srv:
        yield srv


async def test_sim_worker_writes_every_bar_to_influx_v2(
    vm: VictoriaMetricsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("TTFAST_TEST_INFLUX_TOKEN", TOKEN)
    cfg = WorkerConfig(
        symbols=SYMS,
        period="5m",
        source="sim",
        influx_url=vm.url,
        influx_org="org",
        influx_bucket="bucket",
        influx_token_env="TTFAST_TEST_INFLUX_TOKEN",
        # VictoriaMetrics keeps the largest of two values at one timestamp, InfluxDB the last
        # written: forming-bar overwrites are an InfluxDB semantic, so closed bars only here
        telegraf_final_only=True,
        history_days=1.0,
        sim_speed=1200.0,
        quiet=True,
    )
    worker = Worker(cfg)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(3.0)
    line = worker.status_line()
    worker.stop()
    assert await asyncio.wait_for(task, 30) == 0
    assert worker.influx is not None
    s = worker.influx.stats
    assert s.lines_sent > 0 and s.lines_dropped == s.lines_rejected == 0
    assert s.lines_enqueued == s.lines_sent
    assert "influx sent " in line and " rejected 0" in line
    assert worker.stats.finals > 0
    for sym in SYMS:
        series = worker.store[f"{sym}{{=5m}}"]
        times, closes = np.asarray(series.time)[:-1], np.asarray(series.close)[:-1]
        pts = vm.points(f'{{__name__="candle_close",symbol="{sym}",period="5m"}}')
        got = {t: v for (_, _, t), v in pts.items()}
        assert sorted(got) == [int(t) for t in times]  # every closed bar, not the forming one
        assert [got[int(t)] for t in times] == pytest.approx([float(c) for c in closes])
    assert TOKEN not in caplog.text and TOKEN not in line and TOKEN not in repr(worker.influx)


def test_influx_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_args(
        ["--influx", "http://127.0.0.1:8086", "--influx-org", "o", "--influx-bucket", "b"]
    )
    assert (cfg.influx_url, cfg.influx_org, cfg.influx_bucket) == (
        "http://127.0.0.1:8086",
        "o",
        "b",
    )
    assert cfg.influx_token_env == "INFLUX_TOKEN" and not cfg.influx_gzip
    cfg = parse_args(
        [
            *("--influx", "http://h:1", "--influx-org", "o", "--influx-bucket", "b"),
            *("--influx-token-env", "MY_TOKEN", "--influx-gzip"),
        ]
    )
    assert cfg.influx_token_env == "MY_TOKEN" and cfg.influx_gzip
    with pytest.raises(SystemExit):
        parse_args(["--influx", "http://127.0.0.1:8086", "--influx-org", "o"])


def test_token_on_the_command_line_is_refused_without_echo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "AbCdEf0123456789secret=="
    for argv in (["--influx-token", secret], ["--influx-token=" + secret]):
        with pytest.raises(SystemExit):
            parse_args(argv)
        err = capsys.readouterr().err
        assert "not taken on the command line" in err and secret not in err
    with pytest.raises(SystemExit):
        parse_args(["--influx-token-env", secret])  # a token given as the variable's name
    err = capsys.readouterr().err
    assert "must name an environment variable" in err and secret not in err


def test_missing_token_is_a_warning_not_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("INFLUX_TOKEN", raising=False)
    w = Worker(WorkerConfig(influx_url="http://127.0.0.1:9", influx_org="o", influx_bucket="b"))
    assert w.influx is not None
    assert "$INFLUX_TOKEN is not set" in caplog.text
