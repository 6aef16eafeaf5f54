"""ovnsim's verdicts on ``topologies/security-groups.yaml`` against real ovn-trace's (recorded, OVN 23.03.1).

``tests/data/acl/`` holds ovn-trace's verdicts for the microflows of
``tests/acl_cases.py`` with ``--ct=new`` (a new connection), ``--ct=est`` (a
later packet of it) and ``--ct=est,rpl`` (its reply); ``python
tests/acl_cases.py`` records them again.  ovnsim replays them the way a
conntrack sees them: a new connection on a fresh network; a later packet as
the same microflow sent twice; a reply after the packet it answers.

The flows that security groups let through agree today (ovnsim does not
filter yet).  Those they drop are strict xfails, one per kind: they pass, and
so fail as XPASS, once the engine implements the ACL stages
(``docs/acl-engine-notes.md``); then the marks come off.
"""

from __future__ import annotations

import pytest

from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.sim import Simulator
from ovnsim.testing.ovntrace import make_verdict

import acl_cases
from acl_cases import CASES, CASES_BY_NAME

RECORDED = acl_cases.recorded()
ACL_PENDING = "the data path does not evaluate ACLs yet (issue 10, pipeline half; docs/acl-engine-notes.md)"


@pytest.fixture(scope="module")
def topology():
    return load_topology(str(acl_cases.TOPO))


@pytest.fixture(scope="module")
def sim(topology):
    return Simulator(compile_topology(topology))


def _ours(sim, case_name: str, profile: str) -> dict:
    """ovnsim's verdict for a case under a profile, with conntrack prepared as the profile says."""
    case = CASES_BY_NAME[case_name]
    flow = RECORDED[case_name][profile]["microflow"]
    sim.reset()
    if profile == "est":
        sim.trace(flow)  # the connection's first packet
    elif profile == "rpl":
        sim.trace(RECORDED[case.reply_to]["new"]["microflow"])  # the packet it answers
    elif profile != "new":
        raise AssertionError(f"profile {profile} cannot be replayed through the Simulator API")
    result = sim.verdict(sim.trace(flow))
    return {"verdict": make_verdict(result["outputs"]),
            "drops": [[d["datapath"], d["stage"]] for d in result["drops"]]}


def _selected(profile: str, dropped: bool, replies: bool = False):
    return [name for name, profiles in RECORDED.items()
            if profile in profiles and profiles[profile]["verdict"]["dropped"] == dropped
            and bool(CASES_BY_NAME[name].reply_to) == replies]


def _disagreements(sim, names, profile):
    bad = []
    for name in names:
        ours = _ours(sim, name, profile)
        theirs = RECORDED[name][profile]
        if ours["verdict"] != theirs["verdict"] or (theirs["drops"] and ours["drops"] != theirs["drops"]):
            bad.append(f"{name} ({profile}): ovnsim {ours}, ovn-trace {theirs['verdict']} {theirs['drops']}")
    return bad


# -- the recording itself ---------------------------------------------------------------


def test_recording_covers_every_case_and_profile(topology):
    """verdicts.json is the recording of today's cases: same names, profiles, microflows, --ct options."""
    logical = compile_topology(topology)
    assert set(RECORDED) == {c.name for c in CASES}
    for case in CASES:
        assert set(RECORDED[case.name]) == set(case.profiles), case.name
        for profile, rec in RECORDED[case.name].items():
            assert rec["microflow"] == acl_cases.microflow(case, topology, logical), case.name
            assert rec["ct"] == list(acl_cases.ct_options(profile))
            assert (acl_cases.DATA / f"{case.name}.{profile}.txt").is_file()
    assert logical.router_ports()["lrp-router1-gw"][1].mac == acl_cases.GW_MAC


def test_recording_shows_what_the_groups_say():
    """Spot checks of the recording against the rules in the topology's comments."""
    def dropped(name, profile="new"):
        return RECORDED[name][profile]["verdict"]["dropped"]

    assert not dropped("bastion1_to_web2_ssh") and dropped("app1_to_web2_ssh")  # remote group bastion
    assert not dropped("app1_to_web1_ssh")  # web1 is in default too
    assert dropped("web2_to_web1_http_reply") and not dropped("web2_to_web1_http_reply", "rpl")
    assert not dropped("web1_to_fw1_tcp_9999")  # port security off: unfiltered
    assert not dropped("web1_arp_for_web2")  # ARP is not filtered
    assert dropped("web1_to_web2_http", "inv") and not dropped("web1_to_web2_http", "rel")
    lflows = (acl_cases.DATA / "lflows-acl.txt").read_text()
    assert "reg0[10] == 1 && (outport == @neutron_pg_drop && ip)" in lflows
    assert RECORDED["db1_to_web1_http"]["new"]["drops"] == [["neutron-db", "ls_in_acl"]]


# -- what agrees today ------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["new", "est"])
def test_allowed_connections_agree_with_ovn_trace(sim, profile):
    """Connections the groups allow (and ARP) are delivered as ovn-trace delivers them."""
    names = _selected(profile, dropped=False)
    assert names
    assert _disagreements(sim, names, profile) == []


def test_replies_of_allowed_connections_agree_with_ovn_trace(sim):
    names = _selected("rpl", dropped=False, replies=True)
    assert len(names) == len([c for c in CASES if c.reply_to])
    assert _disagreements(sim, names, "rpl") == []


# -- what the ACL stages must do (strict xfail until they exist) ---------------------------


@pytest.mark.xfail(strict=True, reason=ACL_PENDING)
def test_new_connections_no_rule_allows_are_dropped_in_the_acl_stage(sim):
    names = _selected("new", dropped=True)
    assert names
    assert _disagreements(sim, names, "new") == []


@pytest.mark.xfail(strict=True, reason=ACL_PENDING)
def test_later_packets_of_a_connection_no_rule_allows_stay_dropped(sim):
    names = _selected("est", dropped=True)
    assert names
    assert _disagreements(sim, names, "est") == []


@pytest.mark.xfail(strict=True, reason=ACL_PENDING)
def test_a_reply_without_its_connection_is_a_new_connection_and_dropped(sim):
    names = _selected("new", dropped=True, replies=True)
    assert len(names) == len([c for c in CASES if c.reply_to])
    assert _disagreements(sim, names, "new") == []
