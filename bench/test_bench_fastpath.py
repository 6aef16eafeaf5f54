"""Benchmarks: frames per second of the Cython engine (``FastEngine``) on one core.

    python -m pytest bench/test_bench_fastpath.py -q -p no:cacheprovider
    python -m pytest bench/test_bench_fastpath.py -q -p no:cacheprovider --benchmark-disable   # smoke test

The route is the reference topology's three hops: vm1 -> neutron-router1 ->
join switch -> gateway router gr-router1 (SNAT to 172.24.4.10) -> the
localnet port, 60-byte TCP frames, all frames of a round in one buffer and
one ``process_batch`` call (the result arrays appended in bulk included):

* ``warm``: 100,000 frames of one connection, conntrack already holding it
  (two conntrack lookups a frame: the dnat zone misses, the snat zone hits);
* ``warm`` traced: 20,000 frames of it with ``trace=True`` (every step recorded);
* ``new_connections``: 64,000 frames, each from another source port, so each
  one commits a new SNAT connection; the engine is reset before every round
  (not timed) so the table does not grow from round to round.

Baselines, measured in the same run on the same frames, fewer of them (their
time is scaled per frame): the Python reference engine (``PythonEngine``,
2,000 frames a round) and scapy dissecting the frame (``Ether(frame)``, 2,000
a round).  After the benchmark table the file prints ns/frame, frames/s and
the speed-up over each baseline.  Nothing asserts on time (the machine is
shared); every benchmark checks its result, output bytes included, so under
``--benchmark-disable`` this is a smoke test of the fast path.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from oracle.engine import PythonEngine
from ovnsim.datapath._fastpath import FastEngine, rewrite
from ovnsim.neutron.compiler import compile_topology
from ovnsim.datapath.engine import BatchResult
from ovnsim.neutron.loader import load_topology
from ovnsim.northd.tables import build_tables, int_to_mac

REFERENCE = Path(__file__).resolve().parent.parent / "topologies" / "reference.yaml"

VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
UPSTREAM_IP, UPSTREAM_MAC = "172.24.4.1", "52:54:00:c0:ff:ee"
SNAT_IP = "172.24.4.10"
LOCALNET = "provnet-public"
FRAME_LEN = 60

WARM_FRAMES = 100_000
NEW_FRAMES = 64_000
#: The traced warm route: fewer frames (each records ~30 steps of 24 bytes).
TRACED_FRAMES = 20_000
FIRST_SPORT = 1024
BASELINE_FRAMES = 2_000


@pytest.fixture(scope="module")
def logical():
    return compile_topology(load_topology(str(REFERENCE)))


@pytest.fixture(scope="module")
def routed(logical) -> bytes:
    """vm1 -> the upstream router, TCP 40000 -> 80, padded to the 60-byte Ethernet minimum."""
    tables = build_tables(logical)
    router_mac = int_to_mac(tables.routers["neutron-router1"].ports["lrp-router1-web-v4"].mac)
    frame = bytes(Ether(src=VM1_MAC, dst=router_mac) / IP(src=VM1_IP, dst=UPSTREAM_IP, ttl=64)
                  / TCP(sport=40000, dport=80))
    return frame + bytes(FRAME_LEN - len(frame))


def batch(frames: bytes, count: int, port: int) -> Tuple[bytes, array, array, array]:
    """``count`` frames of FRAME_LEN bytes back to back in one buffer, all entering on ``port``."""
    return (frames[:count * FRAME_LEN], array("q", range(0, count * FRAME_LEN, FRAME_LEN)),
            array("q", [FRAME_LEN]) * count, array("q", [port]) * count)


@pytest.fixture(scope="module")
def new_connection_frames(routed) -> bytes:
    """NEW_FRAMES copies of the routed frame, source port FIRST_SPORT + i (TCP checksum kept right)."""
    buf = bytearray(routed * NEW_FRAMES)
    view = memoryview(buf)
    for i in range(NEW_FRAMES):
        rewrite(view[i * FRAME_LEN:(i + 1) * FRAME_LEN], l4_src=FIRST_SPORT + i)
    view.release()
    return bytes(buf)


def reference_output(logical, frame: bytes) -> bytes:
    """What the Python engine sends out for ``frame`` from vm1 on a fresh engine."""
    py = PythonEngine(logical)
    result = py.process_batch(frame, [0], [len(frame)], [py.port_index["vm1"]])
    assert result.n_outputs == 1 and py.port_names[result.out_port[0]] == LOCALNET
    return result.output_bytes(0)


def check_routed(engine, result: BatchResult, count: int, expected: Dict[int, bytes]) -> None:
    """Every frame left on the localnet port, none dropped; sampled outputs byte-exact."""
    assert result.frames == count and result.n_outputs == count and result.n_drops == 0
    assert set(result.out_port) == {engine.port_index[LOCALNET]}
    for i, frame in expected.items():
        assert result.out_frame[i] == i and result.output_bytes(i) == frame
    out = Ether(result.output_bytes(count - 1))
    assert (out[IP].src, out[IP].dst, out[IP].ttl, out.dst) == (SNAT_IP, UPSTREAM_IP, 62, UPSTREAM_MAC)


# -- the report: per-frame rates, scaled, against the baselines of the same run

_RATES: List[Tuple[str, str, int, object]] = []  # (scenario, engine, frames per round, benchmark)


def _record(scenario: str, engine: str, frames: int, benchmark) -> None:
    benchmark.extra_info["frames_per_round"] = frames
    _RATES.append((scenario, engine, frames, benchmark))


def _median(benchmark):
    stats = getattr(benchmark, "stats", None)
    return None if stats is None or getattr(benchmark, "disabled", False) else stats.stats.median


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    rows = [(s, e, n, _median(b)) for s, e, n, b in _RATES]
    rows = [r for r in rows if r[3]]
    if not rows:
        return
    lines = []
    for scenario in dict.fromkeys(r[0] for r in rows):
        per_frame = {e: m / n for s, e, n, m in rows if s == scenario}
        for engine, t in per_frame.items():
            line = f"{scenario:<16} {engine:<12} {t * 1e9:10.0f} ns/frame {1 / t / 1e6:9.3f} M frames/s"
            if engine == "fast":
                line += "".join(f"   {per_frame[b] / t:6.0f}x {b}" for b in per_frame if b != "fast")
            lines.append(line)
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        tr.write_line("")
        tr.write_sep("-", "fast path: per-frame time, frames/s, speed-up (same run, baselines scaled per frame)")
        for line in lines:
            tr.write_line(line)


# -- (a) warm conntrack ------------------------------------------------------


@pytest.mark.benchmark(group="fastpath-warm")
def test_fast_warm(benchmark, logical, routed):
    engine = FastEngine(logical)
    vm1 = engine.port_index["vm1"]
    data, offsets, lengths, inports = batch(routed * WARM_FRAMES, WARM_FRAMES, vm1)
    engine.process_batch(routed, [0], [FRAME_LEN], [vm1])  # the connection is now in conntrack
    assert engine.conntrack_stats["live"] == 2  # gr-router1's DNAT zone (plain) and SNAT zone entries
    result = benchmark.pedantic(engine.process_batch, args=(data, offsets, lengths, inports),
                                rounds=15, warmup_rounds=1)
    _record("warm", "fast", WARM_FRAMES, benchmark)
    expected = reference_output(logical, routed)
    check_routed(engine, result, WARM_FRAMES, {0: expected, WARM_FRAMES - 1: expected})
    assert engine.conntrack_stats["live"] == 2


@pytest.mark.benchmark(group="fastpath-warm")
def test_fast_warm_traced(benchmark, logical, routed):
    """The warm route with tracing on: every step recorded (rule, datapath, depth, two values)."""
    from ovnsim.datapath.trace import TraceRenderer

    engine = FastEngine(logical)
    vm1 = engine.port_index["vm1"]
    data, offsets, lengths, inports = batch(routed * TRACED_FRAMES, TRACED_FRAMES, vm1)
    engine.process_batch(routed, [0], [FRAME_LEN], [vm1])
    result = benchmark.pedantic(lambda: engine.process_batch(data, offsets, lengths, inports, trace=True),
                                rounds=10, warmup_rounds=1)
    _record("warm", "fast-traced", TRACED_FRAMES, benchmark)
    expected = reference_output(logical, routed)
    check_routed(engine, result, TRACED_FRAMES, {0: expected, TRACED_FRAMES - 1: expected})
    per_frame = result.n_trace // TRACED_FRAMES
    assert result.n_trace == per_frame * TRACED_FRAMES and per_frame > 10
    assert [rec[0] for rec in result.trace_records(0, per_frame)] == [0] * per_frame
    last = TraceRenderer(engine).steps(result, result.n_trace - 1)[-1]
    assert (last.rule.name, last.action) == ("LS_OUT_OUTPUT", 'output to "provnet-public"')


@pytest.mark.benchmark(group="fastpath-warm")
def test_python_engine_warm(benchmark, logical, routed):
    engine = PythonEngine(logical)
    vm1 = engine.port_index["vm1"]
    data, offsets, lengths, inports = batch(routed * BASELINE_FRAMES, BASELINE_FRAMES, vm1)
    engine.process_batch(routed, [0], [FRAME_LEN], [vm1])
    result = benchmark.pedantic(engine.process_batch, args=(data, offsets, lengths, inports), rounds=5)
    _record("warm", "python", BASELINE_FRAMES, benchmark)
    check_routed(engine, result, BASELINE_FRAMES, {0: reference_output(logical, routed)})


@pytest.mark.benchmark(group="fastpath-warm")
def test_scapy_parse(benchmark, routed):
    frames = [routed] * BASELINE_FRAMES

    def parse_all():
        return [Ether(f) for f in frames]

    parsed = benchmark.pedantic(parse_all, rounds=5)
    _record("warm", "scapy-parse", BASELINE_FRAMES, benchmark)
    _record("new-connection", "scapy-parse", BASELINE_FRAMES, benchmark)
    assert len(parsed) == BASELINE_FRAMES and parsed[-1][TCP].sport == 40000


# -- (b) a new connection every frame ---------------------------------------------


@pytest.mark.benchmark(group="fastpath-new-connection")
def test_fast_new_connections(benchmark, logical, new_connection_frames):
    engine = FastEngine(logical)
    vm1 = engine.port_index["vm1"]
    args = batch(new_connection_frames, NEW_FRAMES, vm1)

    def fresh():
        engine.reset()
        return args, {}

    result = benchmark.pedantic(engine.process_batch, setup=fresh, rounds=15, warmup_rounds=1)
    _record("new-connection", "fast", NEW_FRAMES, benchmark)
    assert engine.conntrack_stats["live"] == 2 * NEW_FRAMES  # each in gr-router1's DNAT zone and SNAT zone
    last = new_connection_frames[(NEW_FRAMES - 1) * FRAME_LEN:]
    check_routed(engine, result, NEW_FRAMES, {
        0: reference_output(logical, new_connection_frames[:FRAME_LEN]),
        NEW_FRAMES - 1: reference_output(logical, last),
    })


@pytest.mark.benchmark(group="fastpath-new-connection")
def test_python_engine_new_connections(benchmark, logical, new_connection_frames):
    engine = PythonEngine(logical)
    vm1 = engine.port_index["vm1"]
    args = batch(new_connection_frames, BASELINE_FRAMES, vm1)

    def fresh():
        engine.reset()
        return args, {}

    result = benchmark.pedantic(engine.process_batch, setup=fresh, rounds=5)
    _record("new-connection", "python", BASELINE_FRAMES, benchmark)
    assert len(engine.conntrack) == BASELINE_FRAMES
    check_routed(engine, result, BASELINE_FRAMES,
                 {0: reference_output(logical, new_connection_frames[:FRAME_LEN])})
