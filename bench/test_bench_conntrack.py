"""Benchmarks: conntrack ageing keeps the memory of a 10 M-flow replay bounded.

    python -m pytest bench/test_bench_conntrack.py -q -p no:cacheprovider
    python -m pytest bench/test_bench_conntrack.py -q -p no:cacheprovider --benchmark-disable   # smoke test
    python bench/test_bench_conntrack.py --flows 10000000   # one-off, not a test: peak RSS of `ovnsim replay`

The traffic: vm1 opens a new UDP flow through the reference topology's SNAT
(gateway router gr-router1, 172.24.4.10) every millisecond of capture time,
one datagram each, never answered: each commits a connection that expires
after OVS's ``udp_first`` (60 s) -- two conntrack entries, as in OVS: the
gateway router commits every new connection in its DNAT zone (no NAT) before
SNATing it in its SNAT zone.  So, however long the capture, 60,000 flows
(120,000 entries) are live at once (the 60 s window) and the table stops
growing once the window is full.  Frames are generated in batches with numpy as they
are needed (nothing is written to disk).

Group ``conntrack-ageing`` (in process, ``FastEngine.process_batch`` with
the timestamps):

* ``baseline_one_flow``: the same number of frames of one flow (one
  connection, warm): what a frame costs when no connection is new;
* ``new_flow_per_frame``: a new connection per frame, connections expiring
  behind them (commit, expiry list, backward-shift deletion).

``FLOWS`` is 10,000,000; under ``--benchmark-disable`` (CI's smoke run) it
is 200,000, enough to fill the window and check the bound.  Each benchmark
checks its result: every frame left SNATed, the counters add up, the peak
is exactly the window's 60,000 flows' 120,000 entries, and the table's memory
(``conntrack_stats()["bytes"]``) at the end is what it was half way (it
does not grow with the capture).  Nothing asserts on time.

The one-off mode streams a generated capture into ``ovnsim replay -`` (the
CLI in a child process, reading standard input) and reports the child's
peak resident memory for two capture lengths, which come out the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REFERENCE = ROOT / "topologies" / "reference.yaml"
FLOWS = 10_000_000
SMOKE_FLOWS = 200_000
BATCH = 65_536
FRAME_LEN = 60
#: a new flow every millisecond of capture time; udp_first (60 s) keeps WINDOW of them live
SPACING_NS = 1_000_000
WINDOW = 60_000
VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
OUTSIDE = "198.51.100.7"
T0_NS = 1_700_000_000 * 10**9
SPORT_AT, DPORT_AT = 34, 36  # the UDP ports in the frame


def template() -> bytes:
    """vm1 -> outside, UDP without a checksum (0: the ports can change freely), 60 bytes."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    logical = compile_topology(load_topology(str(REFERENCE)))
    gateway = logical.router_ports()["lrp-router1-web-v4"][1].mac
    frame = bytearray(bytes(Ether(src=VM1_MAC, dst=gateway) / IP(src=VM1_IP, dst=OUTSIDE, ttl=64)
                            / UDP(sport=1024, dport=1)))
    frame[40:42] = b"\0\0"
    return bytes(frame) + b"\0" * (FRAME_LEN - len(frame))


def flow_frames(first: int, count: int, frame: bytes, one_flow: bool = False) -> np.ndarray:
    """Frames ``first .. first + count - 1`` as a (count, 60) array: flow i has source port
    1024 + i % 64000 and destination port 1 + (i // 64000) % 65535 (distinct for 4 G flows)."""
    rows = np.frombuffer(frame, dtype=np.uint8).reshape(1, FRAME_LEN).repeat(count, axis=0)
    if not one_flow:
        i = np.arange(first, first + count, dtype=np.int64)
        sport = 1024 + i % 64000
        dport = 1 + (i // 64000) % 65535
        rows[:, SPORT_AT], rows[:, SPORT_AT + 1] = sport >> 8, sport & 0xff
        rows[:, DPORT_AT], rows[:, DPORT_AT + 1] = dport >> 8, dport & 0xff
    return rows


def run_flows(engine, flows: int, one_flow: bool = False, halfway: dict = None) -> int:
    """``flows`` frames through ``engine`` in batches, SPACING_NS apart; frames that left on provnet-public."""
    from ovnsim.datapath.engine import BatchResult

    frame = template()
    offsets = np.arange(BATCH, dtype=np.int64) * FRAME_LEN
    lengths = np.full(BATCH, FRAME_LEN, dtype=np.int64)
    inports = np.full(BATCH, engine.port_index["vm1"], dtype=np.int64)
    localnet = engine.port_index["provnet-public"]
    left = 0
    for first in range(0, flows, BATCH):
        n = min(BATCH, flows - first)
        data = flow_frames(first, n, frame, one_flow)
        times = T0_NS + np.arange(first, first + n, dtype=np.int64) * SPACING_NS
        result = engine.process_batch(data, offsets[:n], lengths[:n], inports[:n], BatchResult(), timestamps=times)
        left += int(np.count_nonzero(np.frombuffer(result.out_port, dtype=np.int32) == localnet))
        if halfway is not None and first < flows // 2 <= first + n:
            halfway.update(engine.conntrack_stats)
    return left


def _flows(request) -> int:
    return SMOKE_FLOWS if request.config.getoption("benchmark_disable", False) else FLOWS


def _engine():
    from ovnsim.datapath.engine import fast_engine
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    return fast_engine(compile_topology(load_topology(str(REFERENCE))))


@pytest.mark.benchmark(group="conntrack-ageing")
def test_baseline_one_flow(benchmark, request):
    flows = _flows(request)
    state = {}

    def setup():
        state["engine"] = _engine()
        return (), {}

    left = benchmark.pedantic(lambda: run_flows(state["engine"], flows, one_flow=True), setup=setup, rounds=1,
                              iterations=1)
    assert left == flows
    assert state["engine"].conntrack_stats["created"] == 2  # its DNAT zone and SNAT zone entries


@pytest.mark.benchmark(group="conntrack-ageing")
def test_new_flow_per_frame(benchmark, request, capsys):
    flows = _flows(request)
    state = {}

    def setup():
        state["engine"], state["halfway"] = _engine(), {}
        return (), {}

    left = benchmark.pedantic(lambda: run_flows(state["engine"], flows, halfway=state["halfway"]), setup=setup,
                              rounds=1, iterations=1)
    engine, halfway = state["engine"], state["halfway"]
    assert left == flows
    stats = engine.conntrack_stats
    # (two entries a flow: gr-router1's DNAT zone, plain, and SNAT zone)
    assert stats["created"] == 2 * flows == stats["expired"] + stats["live"]
    assert stats["peak"] == 2 * WINDOW  # a flow lives exactly udp_first: the 60 s window, never more
    assert stats["bytes"] == halfway["bytes"]  # memory stopped growing once the window was full
    benchmark.extra_info.update({"flows": flows, "peak": stats["peak"], "conntrack_bytes": stats["bytes"]})
    with capsys.disabled():
        print(f"\n  {flows:,} flows, one new connection a frame: peak {stats['peak']:,} live conntrack entries, "
              f"conntrack {stats['bytes'] / 2**20:.1f} MiB at the end and half way; "
              f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


# ---------------------------------------------------------------------------
# one-off: peak resident memory of the CLI replaying a streamed capture
# ---------------------------------------------------------------------------


def stream_capture(out, flows: int) -> None:
    """A classic nanosecond pcap of ``flows`` frames (as run_flows makes them) written to ``out``."""
    import struct

    frame = template()
    out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
    for first in range(0, flows, BATCH):
        n = min(BATCH, flows - first)
        records = np.empty((n, 16 + FRAME_LEN), dtype=np.uint8)
        times = T0_NS + np.arange(first, first + n, dtype=np.int64) * SPACING_NS
        head = np.empty((n, 4), dtype="<u4")
        head[:, 0], head[:, 1] = times // 10**9, times % 10**9
        head[:, 2] = head[:, 3] = FRAME_LEN
        records[:, :16] = head.view(np.uint8).reshape(n, 16)
        records[:, 16:] = flow_frames(first, n, frame)
        out.write(records.tobytes())


def measure_rss(flows: int, workdir: Path) -> dict:
    """Stream ``flows`` flows into ``ovnsim replay -`` in a child process; its peak RSS and conntrack summary."""
    out = workdir / f"out-{flows}"
    try:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "ovnsim.cli", "replay", str(REFERENCE), "-", "--out-dir",
                                 str(out), "--auto", "--json", "--no-progress"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT))
        try:
            stream_capture(proc.stdin, flows)
        finally:
            proc.stdin.close()
        stdout, stderr = proc.stdout.read(), proc.stderr.read()  # (the summary comes after the input's end)
        proc.wait()
        elapsed = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(f"replay failed ({proc.returncode}): {stderr.decode().strip()}")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far
        summary = json.loads(stdout)
        assert summary["frames_in"] == flows == summary["exited"], summary
        return {"flows": flows, "peak_rss_mib": round(peak_kib / 1024, 1), "conntrack": summary["conntrack"],
                "elapsed_s": round(elapsed, 1)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Peak RSS of `ovnsim replay` on a streamed many-flow capture.")
    parser.add_argument("--flows", type=int, default=FLOWS, help=f"flows in the capture (default {FLOWS:,})")
    parser.add_argument("--dir", type=Path, default=None, help="where the replay's outputs go (default: /tmp)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        # the shorter capture first: RUSAGE_CHILDREN's peak is the largest child's so far
        results = [measure_rss(flows, Path(tmp)) for flows in (args.flows // 10, args.flows)]
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
