"""bench/bench_scaleout.py runs (its --quick size): every configuration processed the same
entries, every entry was acknowledged, nothing was lost or rejected. Speed is not asserted."""

from __future__ import annotations

import pytest
from bench import bench_scaleout as b

pytestmark = pytest.mark.timeout(120)


def test_bench_scaleout_quick() -> None:
    res = b.run(
        20, 120, 2, 4, ["single", "cluster1", "cluster2"], paced_bars=2, rate=2000, lease_ms=4000
    )
    assert set(res.entries) == {"warm", "live", "paced 2k/s"}
    assert res.entries["warm"] == 20  # one snapshot entry per symbol
    assert res.entries["live"] == res.entries["paced 2k/s"] == 20 * 2 * 4
    configs = {r.config for r in res.rows}
    assert configs == {"single", "cluster K=1", "cluster K=2"}
    for cfg in configs:
        rows = {r.phase: r for r in res.rows if r.config == cfg}
        assert {ph: r.entries for ph, r in rows.items()} == res.entries, cfg
        for r in rows.values():
            assert r.wall_s > 0 and r.worker_cpu_s >= 0 and r.net_bytes > 0, (cfg, r)
    total = sum(res.entries.values())
    for name, t in res.compute.items():
        assert t.acked == total, name  # every entry acknowledged exactly once
        assert t.lost == t.rejected == t.write_failures == 0, name
    assert res.memory["snapshot_bytes"] > 0 and res.memory["history_bars"] >= 100
    assert "cluster K=2" in b.format_result(res)
