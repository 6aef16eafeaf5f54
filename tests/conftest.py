"""Shared fixtures: one real OVN (NB + SB ovsdb-server, ovn-northd) per test session.

* ``real_ovn`` (session): a started :class:`ovnsim.testing.realovn.RealOVN`.
  Skipped, with the reason, only when the OVN programs are not installed;
  with ``OVNSIM_REQUIRE_REAL_OVN=1`` in the environment (set it in CI, which
  installs ovn-central) their absence is a failure instead of a skip.
* ``ovn`` (function): the same instance, emptied (``reset()``) before the
  test, so each test starts from empty NB/SB databases.

Tests that use them carry ``@pytest.mark.ovn`` (declared in pyproject.toml).
"""

from __future__ import annotations

import os
import signal

import pytest

from ovnsim.lab.runs import run_lab_dir
from ovnsim.testing.realovn import RealOVN


@pytest.fixture(scope="session")
def real_ovn():
    """One RealOVN for the whole session; stopped (by pid) at the end."""
    RealOVN.skip_unless_available()
    ovn = RealOVN()
    ovn.start()
    try:
        yield ovn
    finally:
        ovn.stop()


@pytest.fixture
def ovn(real_ovn):
    """The session's RealOVN with empty databases (reset before the test)."""
    real_ovn.reset()
    return real_ovn


@pytest.fixture
def run_labs(tmp_path, monkeypatch):
    """``$OVNSIM_LAB_DIR`` for the test: a ledger directory of its own, never a temporary one.

    It lives in this run's directory under ``/run/ovnsim/runs``
    (:mod:`ovnsim.lab.runs`), which outlives a killed run, so ``ovnsim lab
    cleanup`` still finds what the test's labs made; after the test it is
    torn down by its ledgers and removed.  Without root no namespace can be
    made, so a temporary directory is safe there (and ``/run`` not writable).
    """
    if os.geteuid() != 0:
        monkeypatch.setenv("OVNSIM_LAB_DIR", str(tmp_path / "labs"))
        yield tmp_path / "labs"
        return
    with run_lab_dir("test") as path:
        yield path


def pytest_configure(config):
    """A test run stopped with SIGTERM (CI's timeout, ``kill PID``) ends like Ctrl-C.

    Without this, SIGTERM ends the interpreter at once: no fixture teardown,
    no ``atexit``.  The harnesses' daemons would still go (they die with
    their parent by PR_SET_PDEATHSIG, and a keeper process stops the
    detached ovn-trace daemon, as after a SIGKILL: tests/test_harness.py),
    but as a KeyboardInterrupt pytest stops cleanly, reports what ran, and
    the finalizers stop every daemon by PID themselves.
    """
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _interrupt)
