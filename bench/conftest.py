from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from bench import test_gate

    if test_gate.RESULTS:
        terminalreporter.section("ttfast benchmark gate: same-run ratios (ref time / ttfast time)")
        terminalreporter.write_line(
            __import__("bench.gatelib", fromlist=["x"]).format_ratio_table(test_gate.RESULTS)
        )
    if test_gate.GRIND_RESULTS:
        terminalreporter.section("ttfast benchmark gate: callgrind instructions per unit")
        for name, got, limit in test_gate.GRIND_RESULTS:
            lim = "-" if limit is None else f"{limit:.1f}"
            terminalreporter.write_line(f"{name:<40} {got:>12.1f}   budget {lim}")
    import sys

    lat = sys.modules.get("bench.bench_latency")
    if lat is not None and lat.REPORTS:
        terminalreporter.section("ttfast latency breakdown (HDR histograms, microseconds)")
        for rep in lat.REPORTS:
            terminalreporter.write_line(rep)
