"""What both real-OVN harnesses (RealOVN, RealDatapath) promise about their processes.

A harness's daemons are children stopped by pid on every exit path: a
normal stop, and a parent killed with SIGKILL (no finalizer runs): then the
foreground daemons die by PR_SET_PDEATHSIG and the keeper stops the detached
ovn-trace daemon and removes the work directory.  Needs OVN (and OVS for
RealDatapath); skipped with the reason when missing, a failure under
OVNSIM_REQUIRE_REAL_OVN.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ovnsim.testing._harness import pid_alive
from ovnsim.testing.realdp import RealDatapath
from ovnsim.testing.realovn import RealOVN, RealOVNError

pytestmark = pytest.mark.ovn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the child process starts: the harness, and for RealOVN also the
# ovn-trace daemon (the one process that runs detached).
HARNESSES = {
    "RealOVN": ("from ovnsim.testing.realovn import RealOVN as H",
                "h.run_nbctl_script([['ls-add', 's'], ['lsp-add', 's', 'p']]); h.sync(); "
                "h.start_trace_daemon()",
                {"nb", "sb", "northd", "trace"}),
    "RealDatapath": ("from ovnsim.testing.realdp import RealDatapath as H", "",
                     {"nb", "sb", "conf", "northd", "ovs-vswitchd", "ovn-controller"}),
}


def _wait_gone(pids, path, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids) and not os.path.exists(path):
            return
        time.sleep(0.02)


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_a_killed_parent_leaves_no_daemon_and_no_directory(name):
    """SIGKILL the Python process that owns a started harness: by the pids it
    reported, no daemon survives (nor the keeper), and its directory is gone."""
    (RealOVN if name == "RealOVN" else RealDatapath).skip_unless_available()
    imports, more, roles = HARNESSES[name]
    script = textwrap.dedent(f"""
        import json, sys, time
        sys.path.insert(0, {ROOT!r})
        {imports}
        h = H().start()
        {more}
        print(json.dumps({{"dir": h.dir, "pids": h.pids, "keeper": h._children.keeper.pid}}), flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    report = json.loads(line)
    assert set(report["pids"]) == roles
    pids = list(report["pids"].values()) + [report["keeper"]]
    _wait_gone(pids, report["dir"])
    survivors = {role: pid for role, pid in report["pids"].items() if pid_alive(pid)}
    assert not survivors, f"daemons outlived their killed parent: {survivors}"
    assert not pid_alive(report["keeper"])
    assert not os.path.exists(report["dir"])


@pytest.mark.parametrize("cls", [RealOVN, RealDatapath], ids=lambda c: c.__name__)
def test_stop_ends_every_process_and_the_keeper(cls):
    cls.skip_unless_available()
    with cls() as h:
        if cls is RealOVN:
            h.start_trace_daemon()
        pids, keeper, workdir = h.pids, h._children.keeper, h.dir
        assert pids and all(pid_alive(p) for p in pids.values()) and keeper.poll() is None
    assert not any(pid_alive(p) for p in pids.values())
    assert keeper.returncode == 0  # it found nothing left to do, and said so by exiting cleanly
    assert not os.path.exists(workdir)


def test_a_daemon_that_fails_to_start_is_an_error_with_its_log(monkeypatch):
    """A daemon that exits during start-up is reported with its role, status and
    log tail (not a timeout), and nothing is left running or on disk."""
    RealOVN.skip_unless_available()
    h = RealOVN()

    def broken_databases(roles):
        # ovsdb-server on a database file that does not exist exits at once
        h._spawn("nb", [h._bins["ovsdb-server"], h._path("missing.db"),
                        "--remote=punix:" + h._path("nb.sock")])
        h._wait_ready("nb", h._path("nb.sock"))

    monkeypatch.setattr(h, "_start_databases", broken_databases)
    t0 = time.monotonic()
    with pytest.raises(RealOVNError) as info:
        h.start()
    message = str(info.value)
    assert message.startswith("nb exited with status 1 during start-up"), message
    assert "missing.db" in message  # the log's tail says why
    assert time.monotonic() - t0 < h.timeout
    assert not h.running and h.pids == {}
    assert h.dir is not None and not os.path.exists(h.dir)
