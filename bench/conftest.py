"""Benchmark helpers: make the package importable and report ratios to a baseline.

Absolute timings on a shared machine mean little, so after pytest-benchmark's
own table this prints, per benchmark group, each benchmark's median as a
multiple of the group's baseline (the benchmark whose name contains
``baseline``), measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The package, and tests/ for the frozen oracle (tests/oracle) some baselines run.
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", False):
        return
    results = [b for b in getattr(session, "benchmarks", ()) if b]
    if not results:
        return
    groups: dict = {}
    for bench in results:
        groups.setdefault(bench.group, []).append(bench)
    tr = terminalreporter
    tr.write_sep("-", "benchmark ratios (median / baseline median, same run)")
    for group, benches in groups.items():
        baseline = next((b for b in benches if "baseline" in b.name), None)
        if baseline is None:
            continue
        base = baseline.stats.median
        tr.write_line(f"group {group!r}: baseline {baseline.name} median {base * 1e3:.2f} ms")
        for bench in benches:
            median = bench.stats.median
            tr.write_line(
                f"  {bench.name:<40} median {median * 1e3:9.2f} ms"
                f"  min {bench.stats.min * 1e3:9.2f} ms  ratio {median / base:6.2f}x"
            )
