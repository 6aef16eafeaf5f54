"""An opt-in pytest plugin: the ``ovn_lab`` fixture.

Enable it with ``-p ovnsim.lab.pytest_plugin`` (or ``pytest_plugins =
["ovnsim.lab.pytest_plugin"]`` in a root ``conftest.py``)::

    def test_web_reaches_outside(ovn_lab):
        lab = ovn_lab("topologies/reference.yaml")
        assert lab.exec("vm1", "ping", "-c1", "198.51.100.7").returncode == 0

``ovn_lab(topology, name=None)`` brings a lab up (a file or an NB model)
and takes it down when the test ends, whatever the outcome.  The first lab
of a test without ``ovn_topology`` answers its ovnsim assertions
(``assert_reachable("vm1", "db1", proto="tcp/22")``: a real probe in the lab).  Its labs live
in a state directory of the test's own, inside the test run's directory
under ``/run/ovnsim/runs`` (:mod:`ovnsim.lab.runs`): they never mix with the
machine's other labs, and if the run is killed ``ovnsim lab cleanup``
still finds them.  Without root, network namespaces or nftables the
test is skipped with the reason (`LabUnavailableError`'s one line).
"""

from __future__ import annotations

import pytest

from ovnsim.lab.build import check_environment
from ovnsim.lab.lab import Lab
from ovnsim.lab.plan import LabError, LabUnavailableError
from ovnsim.lab.runs import run_lab_dir


def _answer_assertions(lab: Lab) -> None:
    """Let ``lab`` answer the ovnsim assertions of a test with no ``ovn_topology`` (its topology file known)."""
    from ovnsim.reach.endpoints import ReachError
    from ovnsim.reach.lab import LabReachability
    from ovnsim.testing.plugin import _Current

    if _Current.reach is None:
        try:
            _Current.reach = LabReachability(lab)
        except ReachError:  # built from an NB model: assertions need net= and a topology
            pass


@pytest.fixture
def ovn_lab():
    """A factory of labs torn down at the end of the test."""
    try:
        check_environment()
    except LabUnavailableError as err:
        pytest.skip(str(err))
    labs = []

    def make(topology, name=None) -> Lab:
        lab = Lab.up(topology, name=name)
        labs.append(lab)
        _answer_assertions(lab)
        return lab

    with run_lab_dir("ovn_lab"):
        yield make
        errors = []
        for lab in reversed(labs):
            try:
                lab.down()
            except LabError as err:
                errors.append(str(err))
    if errors:
        pytest.fail("; ".join(errors))
