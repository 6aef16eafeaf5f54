"""Test runs' ledger directories (ovnsim.lab.runs): a killed run's labs are found and removed by their ledgers.

The liveness check and the reaping logic run without root (ledgers naming
namespaces that never existed, under a private runs directory); the killed
run is real (root): a subprocess brings a small lab up, is SIGKILLed, and
``ovnsim lab cleanup`` removes exactly the namespaces its ledger names.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ovnsim.cli import main
from ovnsim.lab import Lab, runs
from ovnsim.lab.ledger import (STATE_BUILDING, Ledger, boot_id, builder_alive, netns_identity, process_alive,
                               process_start_time)
from ovnsim.lab.plan import plan_lab
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology

REPO = Path(__file__).resolve().parent.parent
PID = os.getpid()

SMALL = """
projects:
  p:
    networks:
      n: {subnets: {n-v4: {cidr: 10.9.0.0/24, gateway_ip: 10.9.0.1}}}
    ports:
      a1: {network: n, fixed_ips: [10.9.0.11], port_security: false}
      a2: {network: n, fixed_ips: [10.9.0.12], port_security: false}
"""


def _why_no_labs():
    if os.geteuid() != 0:
        return "labs need root"
    if shutil.which("nft") is None or shutil.which("ip") is None:
        return "nft or ip (nftables, iproute2) not installed"
    return None


needs_labs = pytest.mark.skipif(_why_no_labs() is not None, reason=str(_why_no_labs()))


@pytest.fixture
def child():
    """A live child process (sleep), killed and waited for after the test."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# -- liveness ------------------------------------------------------------------
def test_start_time_names_one_running_process(child):
    assert isinstance(process_start_time(PID), int)
    assert process_start_time(child.pid) >= process_start_time(PID)
    assert process_start_time(_dead_pid()) is None
    assert process_start_time(2 ** 22 + 7) is None  # above any pid_max


def test_a_killed_but_unwaited_child_is_not_alive():
    proc = subprocess.Popen(["sleep", "60"])
    try:
        start = process_start_time(proc.pid)
        proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_start_time(proc.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not process_alive(proc.pid, start)  # a zombie: killed, not yet waited for
    finally:
        proc.wait()


def test_process_alive_needs_the_same_pid_start_and_boot(child):
    start = process_start_time(child.pid)
    assert process_alive(child.pid, start, boot_id())
    assert process_alive(child.pid)  # start and boot not recorded: the PID decides
    assert not process_alive(child.pid, start + 1)  # the PID reused by another process
    assert not process_alive(child.pid, start, "not-this-boot")
    assert not process_alive(_dead_pid())
    for bad in (None, 0, -1, True, "1"):
        assert not process_alive(bad)


def test_builder_alive_checks_the_start_time(tmp_path, child):
    data = {"name": "x", "state": STATE_BUILDING, "pid": child.pid, "pid_start": process_start_time(child.pid),
            "namespaces": []}
    assert builder_alive(Ledger(tmp_path / "x.json", dict(data)))
    assert not builder_alive(Ledger(tmp_path / "x.json", dict(data, pid_start=data["pid_start"] - 1)))
    assert not builder_alive(Ledger(tmp_path / "x.json", dict(data, state="up")))


def test_a_run_is_alive_by_its_owner(tmp_path, child):
    start = process_start_time(child.pid)
    live = tmp_path / f"{child.pid}-{start}"
    reused = tmp_path / f"{child.pid}-{start - 1}"
    other_boot = tmp_path / f"{child.pid}-{start}x"
    for run in (live, reused, other_boot):
        run.mkdir()
    assert runs.run_alive(live) and not runs.run_alive(reused)
    assert runs.run_alive(other_boot)  # not a run directory's name: never judged dead
    (live / runs.OWNER_FILE).write_text(json.dumps({"pid": child.pid, "start": start, "boot": "earlier-boot"}))
    assert not runs.run_alive(live)


# -- reaping, by ledger --------------------------------------------------------
def _fake_ledger(directory: Path, name: str) -> Ledger:
    """A ledger in ``directory`` naming namespaces that do not exist (nothing is created)."""
    logical = compile_topology(load_topology(str(REPO / "topologies" / "reference.yaml")))
    with runs.using_lab_dir(directory):
        return Ledger.create(plan_lab(logical, name), "reference.yaml")


def test_reap_dead_runs_tears_down_by_ledger_and_leaves_live_runs(tmp_path, monkeypatch, child):
    monkeypatch.setattr(runs, "RUNS_DIR", str(tmp_path / "runs"))
    me = tmp_path / "runs" / f"{PID}-{process_start_time(PID)}"
    dead = tmp_path / "runs" / f"{PID}-{process_start_time(PID) + 1}"  # this PID, another process: dead
    for run in (me, dead):
        (run / "labs-1").mkdir(parents=True)
        (run / runs.OWNER_FILE).write_text("{}")
    _fake_ledger(me / "labs-1", f"live{PID}")
    gone = _fake_ledger(dead / "labs-1", f"gone{PID}")
    gone.journal_path.write_text("")
    (dead / "labs-2").mkdir()
    building = _fake_ledger(dead / "labs-2", f"bld{PID}")  # its builder (child) still runs
    building.data.update(pid=child.pid, pid_start=process_start_time(child.pid))
    building.save()
    (tmp_path / "runs" / "not-a-run").mkdir()
    assert runs.dead_runs() == [dead]
    assert sorted(runs.orphaned_labs()) == [f"bld{PID}", f"gone{PID}"]

    assert runs.reap_dead_runs() == [(f"gone{PID}", [])]
    assert not (dead / "labs-1").exists()
    assert (dead / "labs-2" / f"bld{PID}.json").exists()  # kept while its builder lives
    assert (me / "labs-1" / f"live{PID}.json").exists()  # a live run's lab: never touched
    child.kill()
    child.wait()
    assert runs.reap_dead_runs() == [(f"bld{PID}", [])]
    assert not dead.exists() and me.exists() and (tmp_path / "runs" / "not-a-run").exists()


def test_a_directory_with_an_unreadable_ledger_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RUNS_DIR", str(tmp_path / "runs"))
    dead = tmp_path / "runs" / f"{PID}-{process_start_time(PID) + 1}"
    (dead / "labs-1").mkdir(parents=True)
    (dead / "labs-1" / "odd.json").write_text("not json")
    assert runs.reap_dead_runs() == []
    assert (dead / "labs-1" / "odd.json").exists()  # nothing is deleted that no ledger explains


def test_run_lab_dir_sets_and_restores_the_state_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(runs, "_this_run", tmp_path / "runs" / f"{PID}-{process_start_time(PID)}")
    runs._this_run.mkdir(parents=True)
    monkeypatch.setenv("OVNSIM_LAB_DIR", "/elsewhere")
    with runs.run_lab_dir("unit") as path:
        assert os.environ["OVNSIM_LAB_DIR"] == str(path) and path.parent == runs._this_run
        _fake_ledger(path, f"u{PID}")
    assert os.environ["OVNSIM_LAB_DIR"] == "/elsewhere"
    assert not path.exists()  # its lab torn down (nothing existed), then removed
    runs._finish(runs._this_run)
    assert not runs._this_run.exists()


# -- a killed run, for real (root) ---------------------------------------------
RUN_SCRIPT = """
import json, sys, time
sys.path.insert(0, {repo!r})
from ovnsim.lab import Lab
from ovnsim.lab.runs import new_lab_dir, run_dir, using_lab_dir
with using_lab_dir(new_lab_dir("victim")):  # as run_lab_dir, without its own teardown on exit
    lab = Lab.up({topo!r}, name={name!r})
print(json.dumps({{"run": str(run_dir()), "namespaces": [ns.name for ns in lab.plan.namespaces]}}), flush=True)
if {wait!r}:
    time.sleep(120)
# else a clean end with the lab never taken down: the run's atexit tears it down
"""


def ip_netns() -> set:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _start_run(tmp_path, name, wait):
    topo = tmp_path / "small.yaml"
    topo.write_text(SMALL)
    script = RUN_SCRIPT.format(repo=str(REPO), topo=str(topo), name=name, wait=wait)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    return proc, (json.loads(line) if line else None)


@pytest.mark.root
@needs_labs
def test_a_killed_runs_namespaces_are_removed_by_its_ledger(tmp_path, run_labs, capsys):
    from ovnsim.lab import netns

    victim = f"kill{PID}"
    keep = Lab.up(str(REPO / "topologies" / "reference.yaml"), name=f"keep{PID}")  # this live run's lab
    outsider = f"ovnsim-{victim}-vm-outsider"  # the victim's prefix, in no ledger
    made = []
    try:
        netns.create_namespaces([outsider], made.append, lambda _n: None)
        proc, info = _start_run(tmp_path, victim, wait=True)
        try:
            assert info is not None, "the run never brought its lab up"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        run, names = Path(info["run"]), info["namespaces"]
        assert set(names) <= ip_netns()  # killed with its lab up: the namespaces stay
        assert run.parent == runs.runs_root() and not runs.run_alive(run)
        assert main(["lab", "status"]) == 0
        err = capsys.readouterr().err
        assert "test runs that are no longer running left" in err and victim in err

        assert main(["lab", "cleanup"]) == 0
        assert f"lab {victim} removed" in capsys.readouterr().out
        now = ip_netns()
        assert not set(names) & now
        assert {n for n in now if n.startswith(f"ovnsim-{victim}-")} == {outsider}  # never by pattern
        assert {ns.name for ns in keep.plan.namespaces} <= now and keep.status()["state"] == "up"
        assert not run.exists()
        assert main(["lab", "cleanup"]) == 0 and "nothing to clean up" in capsys.readouterr().out
    finally:
        keep.down()
        for name in made:
            if netns_identity(name) is not None:
                netns.delete_namespace(name)


@pytest.mark.root
@needs_labs
def test_a_run_that_ends_cleanly_removes_its_labs_and_directory(tmp_path):
    proc, info = _start_run(tmp_path, f"end{PID}", wait=False)
    assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    assert info is not None
    assert not set(info["namespaces"]) & ip_netns()
    assert not Path(info["run"]).exists()
