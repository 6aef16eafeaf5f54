"""Benchmarks: ``ovnsim replay`` end to end, capture file in, per-port pcaps out.

    python -m pytest bench/test_bench_replay.py -q -p no:cacheprovider
    python -m pytest bench/test_bench_replay.py -q -p no:cacheprovider --benchmark-disable   # smoke test
    python bench/test_bench_replay.py --rss-gb 1      # one-off, not a test: peak RSS replaying a 1 GB capture

The capture is generated in a temp dir when the module starts: 1,000,000
frames of 60 bytes, one TCP flow from vm1 to the upstream router through the
reference topology's three hops (neutron-router1, the join switch, gateway
router gr-router1 with SNAT to 172.24.4.10), so every frame leaves on the
localnet port SNATed.  Group ``replay-1M``:

* ``baseline_file_copy``: ``shutil.copyfile`` of the capture (the floor: the
  bytes in and out, no work);
* ``scapy_rawpcapreader``: reading the capture with scapy's ``RawPcapReader``
  (what a Python tool pays just to see the frames);
* ``ovnsim_reader``: ovnsim's streaming reader alone (``open_capture``);
* ``replay_fast``: the whole replay with the fast engine (skipped when it is
  not built).

Group ``replay-python-20k`` runs the reference (Python) engine on the first
20,000 frames, with its own file-copy baseline.  ``bench/conftest.py`` prints
each median as a ratio to its group's baseline; each replay also prints its
frames/s.  Nothing asserts on time; every benchmark checks its result (the
summary adds up, every frame left on provnet-public).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REFERENCE = ROOT / "topologies" / "reference.yaml"
FRAMES = 1_000_000
PYTHON_FRAMES = 20_000
FRAME_LEN = 60
VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
UPSTREAM_IP = "172.24.4.1"
T0 = 1_700_000_000


def snat_frame() -> bytes:
    """vm1 -> the upstream router, TCP, addressed to vm1's gateway; padded to 60 bytes."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    logical = compile_topology(load_topology(str(REFERENCE)))
    gateway = logical.router_ports()["lrp-router1-web-v4"][1].mac
    frame = bytes(Ether(src=VM1_MAC, dst=gateway) / IP(src=VM1_IP, dst=UPSTREAM_IP, ttl=64)
                  / TCP(sport=40000, dport=80, flags="A"))
    return frame + b"\0" * (FRAME_LEN - len(frame))


def write_capture(path: Path, frames: int) -> Path:
    """A classic (microsecond) pcap of ``frames`` copies of :func:`snat_frame`, 1 us apart."""
    frame = snat_frame()
    block = 65536
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for start in range(0, frames, block):
            out.write(b"".join(struct.pack("<IIII", T0 + i // 1_000_000, i % 1_000_000, FRAME_LEN, FRAME_LEN) + frame
                               for i in range(start, min(frames, start + block))))
    return path


def _fast_built() -> bool:
    try:
        from ovnsim.datapath._fastpath import FastEngine  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return write_capture(tmp_path_factory.mktemp("replay") / "snat-1m.pcap", FRAMES)


@pytest.fixture(scope="module")
def small_capture(tmp_path_factory) -> Path:
    return write_capture(tmp_path_factory.mktemp("replay") / "snat-20k.pcap", PYTHON_FRAMES)


def _oracle_engine(logical):
    """The frozen Python engine (tests/oracle), for the replay-python-20k group."""
    from oracle.engine import PythonEngine

    return PythonEngine(logical)


def _replayer(tmp_path: Path, capture: Path, engine: str):
    """(setup, run) for benchmark.pedantic: a fresh output directory every round."""
    from ovnsim.capture.replay import replay

    rounds = itertools.count()
    state = {}

    def setup():
        if "out" in state:
            shutil.rmtree(state["out"])
        state["out"] = tmp_path / f"out{next(rounds)}"
        return (), {}

    def run():
        state["summary"] = replay(REFERENCE, capture, state["out"], auto=True,
                                  engine=_oracle_engine if engine == "python" else engine)
        return state["summary"]

    return setup, run, state


def _check(summary, frames: int) -> None:
    assert summary.frames_in == frames
    assert (summary.delivered, summary.exited, summary.dropped) == (0, frames, 0)
    assert summary.outputs == {"provnet-public": frames}
    summary.check()


def _report(benchmark, capsys, summary, frames: int) -> None:
    stats = getattr(benchmark, "stats", None)
    median = stats.stats.median if stats is not None else summary.elapsed_s
    rate = frames / median
    benchmark.extra_info["frames_per_s"] = rate
    with capsys.disabled():
        print(f"\n  {summary.engine} engine: {frames:,} frames replayed, median {median:.3f} s, "
              f"{rate / 1e6:.2f} M frames/s (the replay's own clock, last round: "
              f"{summary.frames_per_s / 1e6:.2f} M frames/s)")


# ---------------------------------------------------------------------------
# 1 M frames
# ---------------------------------------------------------------------------


@pytest.mark.benchmark(group="replay-1M")
def test_baseline_file_copy(benchmark, capture, tmp_path):
    target = tmp_path / "copy.pcap"
    benchmark.pedantic(shutil.copyfile, args=(capture, target), rounds=3, iterations=1)
    assert target.stat().st_size == capture.stat().st_size


@pytest.mark.benchmark(group="replay-1M")
def test_scapy_rawpcapreader(benchmark, capture):
    from scapy.utils import RawPcapReader

    def read() -> int:
        with RawPcapReader(str(capture)) as reader:
            return sum(1 for _ in reader)

    assert benchmark.pedantic(read, rounds=1, iterations=1) == FRAMES


@pytest.mark.benchmark(group="replay-1M")
def test_ovnsim_reader(benchmark, capture):
    from ovnsim.capture.pcap import open_capture

    def read() -> int:
        with open_capture(capture) as reader:
            return sum(len(batch) for batch in reader)

    assert benchmark.pedantic(read, rounds=3, iterations=1) == FRAMES


@pytest.mark.skipif(not _fast_built(), reason="the fast engine (ovnsim.datapath._fastpath.FastEngine) is not built")
@pytest.mark.benchmark(group="replay-1M")
def test_replay_fast(benchmark, capture, tmp_path, capsys):
    setup, run, state = _replayer(tmp_path, capture, "fast")
    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    summary = state["summary"]
    assert summary.engine == "fast"
    _check(summary, FRAMES)
    assert (state["out"] / "provnet-public-tx.pcap").stat().st_size == 24 + FRAMES * (16 + FRAME_LEN)
    _report(benchmark, capsys, summary, FRAMES)


# ---------------------------------------------------------------------------
# the reference engine, 20 k frames
# ---------------------------------------------------------------------------


@pytest.mark.benchmark(group="replay-python-20k")
def test_baseline_file_copy_20k(benchmark, small_capture, tmp_path):
    target = tmp_path / "copy.pcap"
    benchmark.pedantic(shutil.copyfile, args=(small_capture, target), rounds=3, iterations=1)
    assert target.stat().st_size == small_capture.stat().st_size


@pytest.mark.benchmark(group="replay-python-20k")
def test_replay_python(benchmark, small_capture, tmp_path, capsys):
    setup, run, state = _replayer(tmp_path, small_capture, "python")
    benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    summary = state["summary"]
    assert summary.engine == "python"
    _check(summary, PYTHON_FRAMES)
    _report(benchmark, capsys, summary, PYTHON_FRAMES)


# ---------------------------------------------------------------------------
# one-off: peak resident memory for a large capture (not collected by pytest)
# ---------------------------------------------------------------------------


def measure_rss(gigabytes: float, engine: str, workdir: Path) -> dict:
    """Generate a ``gigabytes`` GB capture in ``workdir``, replay it with the CLI in a child process,
    and return its peak RSS (``ru_maxrss``), frames and rate.  Everything written is deleted."""
    frames = int(gigabytes * 1e9) // (16 + FRAME_LEN)
    capture = workdir / "large.pcap"
    out = workdir / "out"
    try:
        started = time.perf_counter()
        write_capture(capture, frames)
        generated = time.perf_counter() - started
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run([sys.executable, "-m", "ovnsim.cli", "replay", str(REFERENCE), str(capture),
                               "--out-dir", str(out), "--auto", "--json", "--no-progress", "--engine", engine],
                              capture_output=True, text=True, cwd=str(ROOT))
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode:
            raise SystemExit(f"replay failed ({proc.returncode}): {proc.stderr.strip()}")
        summary = json.loads(proc.stdout)
        _check_dict(summary, frames)
        return {"capture_bytes": capture.stat().st_size, "frames": frames, "engine": summary["engine"],
                "peak_rss_mib": round(max(peak_kib, before) / 1024, 1), "frames_per_s": summary["frames_per_s"],
                "replay_s": summary["elapsed_s"], "generate_s": round(generated, 1)}
    finally:
        capture.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)


def _check_dict(summary: dict, frames: int) -> None:
    assert summary["frames_in"] == frames == summary["exited"], summary
    assert summary["outputs"] == {"provnet-public": frames}, summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Peak RSS of `ovnsim replay` on a large generated capture.")
    parser.add_argument("--rss-gb", type=float, default=1.0, help="capture size in GB (default 1)")
    parser.add_argument("--engine", choices=("fast",), default="fast")
    parser.add_argument("--dir", type=Path, default=None, help="where to generate it (default: a temp dir in /tmp)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = measure_rss(args.rss_gb, args.engine, Path(tmp))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
