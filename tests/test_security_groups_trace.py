"""ovnsim's verdicts on ``topologies/security-groups.yaml`` against real ovn-trace's (recorded, OVN 23.03.1).

``tests/data/acl/`` holds ovn-trace's verdicts for the microflows of
``tests/acl_cases.py`` with ``--ct=new`` (a new connection), ``--ct=est`` (a
later packet of it) and ``--ct=est,rpl`` (its reply); ``python
tests/acl_cases.py`` records them again.  ovnsim replays them the way a
conntrack sees them: a new connection on a fresh network; a later packet as
the same microflow sent twice; a reply after the packet it answers.

Verdicts agree for every case and profile, and so do the stage/priority
sequences of the traces, with one kind of exception ovnsim's conntrack
makes on purpose: ovn-trace's ``est`` profile forces an established state
on a connection no rule allows, which the data path never commits (its
next packet is new again: hint 7, not 4).
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


# -- verdicts ----------------------------------------------------------------------------


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


# -- what the ACL stages drop -------------------------------------------------------------


def test_new_connections_no_rule_allows_are_dropped_in_the_acl_stage(sim):
    names = _selected("new", dropped=True)
    assert names
    assert _disagreements(sim, names, "new") == []


def test_later_packets_of_a_connection_no_rule_allows_stay_dropped(sim):
    names = _selected("est", dropped=True)
    assert names
    assert _disagreements(sim, names, "est") == []


def test_a_reply_without_its_connection_is_a_new_connection_and_dropped(sim):
    names = _selected("new", dropped=True, replies=True)
    assert len(names) == len([c for c in CASES if c.reply_to])
    assert _disagreements(sim, names, "new") == []


# -- the traces: OVN's stages and priorities, visit by visit --------------------------------


@pytest.mark.parametrize("name,profile", [(n, p) for n, profiles in sorted(RECORDED.items()) for p in profiles
                                          if p in ("new", "est", "rpl")])
def test_trace_visits_are_ovn_traces(sim, name, profile):
    """Each pipeline visit lists the (stage, priority) steps of the recorded ovn-trace, in order.

    Exception (asserted): under ``est``, a connection no rule allows is new
    again in ovnsim (never committed), so its dropping pass shows hint 7 where
    ovn-trace, told ``est``, shows hint 4.
    """
    from conformance.test_trace_sequence import ovn_visits, ovnsim_visits

    case = CASES_BY_NAME[name]
    rec = RECORDED[name][profile]
    sim.reset()
    if profile == "est":
        sim.trace(rec["microflow"])
    elif profile == "rpl":
        sim.trace(RECORDED[case.reply_to]["new"]["microflow"])
    ours = [(pipe, steps) for _dp, pipe, steps in ovnsim_visits(sim.trace(rec["microflow"]))]
    text = (acl_cases.DATA / f"{name}.{profile}.txt").read_text()
    theirs = [(pipe, steps) for _dp, pipe, steps in ovn_visits(text, {})]
    if profile == "est" and rec["verdict"]["dropped"]:
        pipe, steps = theirs[-1]  # the dropping pass
        theirs[-1] = (pipe, tuple((s, 7) if s.endswith("_acl_hint") and p == 4 else (s, p) for s, p in steps))
    assert ours == theirs


# -- "why not": the rule that would have to exist --------------------------------------


def _dropping_port(logical, flow, datapath: str, stage: str) -> str:
    """The port whose ACL stage dropped ``flow``: its inport (ls_in_acl) or the port owning ip4.dst there."""
    if stage == "ls_in_acl":
        return flow.inport
    ls = logical.switch(datapath)
    dst = str(flow["ip4.dst"])
    # through a floating IP the packet reaches the fixed IP
    nat = {n.external_ip: n.logical_ip for lr in logical.routers for n in lr.nat if n.type == "dnat_and_snat"}
    dst = nat.get(dst, dst)
    return next(p.name for p in ls.ports if any(dst in entry.split()[1:] for entry in p.addresses))


def test_missing_rule_text():
    from ovnsim.nb.acls import MissingRule

    rule = MissingRule("web2", "web", "ingress", "10.4.0.30/32", "tcp", 22, 22, remote_groups=("shop-default",))
    assert rule.text() == "ingress tcp/22 from 10.4.0.30/32 (or remote group shop-default) on group web of port web2"
    assert MissingRule("db1", "db", "egress", "198.51.100.7/32", "icmp", 8, 0).text() == (
        "egress icmp type 8 code 0 to 198.51.100.7/32 on group db of port db1")
    assert MissingRule("vm", None, "egress", "10.0.0.1/32").text() == (
        "egress any protocol to 10.0.0.1/32 on a security group of port vm (it is in none)")


@pytest.mark.ovn
@pytest.mark.parametrize("name", sorted(n for n, p in RECORDED.items() if p["new"]["verdict"]["dropped"]))
def test_the_missing_rule_is_what_real_ovn_needs(ovn, name):
    """Add the rule missing_rule() names for each drop, as often as there are drops: ovn-trace then delivers."""
    import yaml

    from ovnsim.datapath.microflow import parse_microflow
    from ovnsim.nb.acls import missing_rule
    from ovnsim.nb.nbctl import nbctl_commands
    from ovnsim.neutron.loader import load_document
    from ovnsim.testing.ovntrace import trace_result

    doc = yaml.safe_load(acl_cases.TOPO.read_text())
    flow = parse_microflow(RECORDED[name]["new"]["microflow"])
    added = []
    for _attempt in range(3):
        topology = load_document(doc, str(acl_cases.TOPO))
        logical = compile_topology(topology)
        ovn.reset()
        ovn.run_nbctl_script(nbctl_commands(logical))
        ovn.sync()
        result = trace_result(ovn, flow, options=acl_cases.ct_options("new"))
        if not result.verdict["dropped"]:
            break
        ((datapath, stage),) = result.drops
        port = _dropping_port(logical, flow, datapath, stage)
        rule = missing_rule(logical, port, stage, flow.fields)
        assert rule.group is not None, rule.text()
        added.append(rule.text())
        group = topology.security_groups[rule.group]
        doc["projects"][group.project]["security_groups"].setdefault(group.name, {}).setdefault(
            "rules", []).append(rule.rule())
    assert not result.verdict["dropped"], added
    assert added, "the recorded drop did not happen"
