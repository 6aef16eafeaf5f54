"""Benchmarks: the reachability matrix of topologies/large.yaml against the per-question API.

    python -m pytest bench/test_bench_reach.py -q -p no:cacheprovider
    python -m pytest bench/test_bench_reach.py -q -p no:cacheprovider --benchmark-disable   # smoke test

The matrix answers every VM port x (every VM port + every floating IP +
outside) x (icmp, tcp/22, udp/53), request and reply: 3.15 M questions,
~3.8 M frames through the batch engine.  The baseline answers a sample of
the same cells one at a time through :meth:`Reachability.ask` (the Python
pipeline, traced); ``bench/conftest.py`` prints medians as ratios to it,
and this file prints the per-question ratio (matrix seconds per cell /
API seconds per cell).  Target: the whole matrix under 10 s on one core.

Each benchmark checks its result (the sample's answers equal the matrix's
cells), so under ``--benchmark-disable`` the file is a smoke test.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ovnsim.reach.matrix import SELF, compute_matrix
from ovnsim.reach.question import Reachability

LARGE = Path(__file__).resolve().parent.parent / "topologies" / "large.yaml"
SAMPLE = 200
PROTOCOLS = ("icmp", "tcp/22", "udp/53")

_state = {}


@pytest.fixture(scope="module")
def reach():
    return Reachability(str(LARGE))


def _sample(m):
    rng = random.Random(8)
    cells = []
    while len(cells) < SAMPLE:
        p, s, d = rng.randrange(len(m.protos)), rng.randrange(len(m.sources)), rng.randrange(len(m.dests))
        if m.status[p, s, d] != SELF:
            cells.append((p, s, d))
    return cells


@pytest.mark.benchmark(group="reach-large")
def test_matrix_large(benchmark, reach):
    m = benchmark.pedantic(compute_matrix, args=(reach, PROTOCOLS), rounds=2, iterations=1)
    assert m.status.shape == (3, 1000, 1051) and len(m) == 3 * 1000 * 1050
    assert (m.status == 0).sum() > 600_000  # every project reaches itself and the floating IPs
    _state["matrix"] = m
    stats = getattr(benchmark, "stats", None)
    _state["matrix_seconds"] = stats.stats.median if stats is not None else None


@pytest.mark.benchmark(group="reach-large")
def test_baseline_questions_sample(benchmark, reach):
    m = _state.get("matrix") or compute_matrix(reach, PROTOCOLS)
    cells = _sample(m)

    def ask_all():
        return [m.explain(p, s, d) for p, s, d in cells]

    answers = benchmark.pedantic(ask_all, rounds=2, iterations=1)
    for (p, s, d), answer in zip(cells, answers):
        cell = m.cell(p, s, d)
        assert (answer.reachable, answer.disposition, answer.stage) == (cell.reachable, cell.disposition,
                                                                        cell.stage), cell
    stats = getattr(benchmark, "stats", None)
    if stats is not None and _state.get("matrix_seconds"):
        per_cell_matrix = _state["matrix_seconds"] / len(m)
        per_cell_api = stats.stats.median / len(cells)
        print(f"\nreach: matrix {_state['matrix_seconds']:.2f} s for {len(m)} cells "
              f"({per_cell_matrix * 1e6:.2f} us/cell); API {per_cell_api * 1e6:.0f} us/cell; "
              f"API / matrix = {per_cell_api / per_cell_matrix:.0f}x")
