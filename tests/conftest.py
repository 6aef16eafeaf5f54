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

import signal

import pytest

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
