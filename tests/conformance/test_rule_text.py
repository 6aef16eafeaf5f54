"""The rule catalogue's text against real OVN's logical flows (``ovn-sbctl lflow-list``).

Every step ovnsim traces for a rule OVN has a flow for (a rule of
:data:`ovnsim.northd.rules.RULES` with a priority) shows a match and
actions: the rule's templates, filled in.  For every generated microflow of
every example topology (each on fresh state, then all in sequence on one
state, so replies and established connections are traced too), each such
step must be one of the logical flows
``lflow-list`` prints for that datapath, stage and priority: the same match
and the same actions, after :func:`normalise` (whitespace; comments, which
ovnsim uses to say what a ct_* action did; ``is_chassis_resident(...)``
conditions, true everywhere on ovnsim's one chassis).

:data:`EXCEPTIONS` lists, with the reason, every rule whose text is not
lflow-list's (the text ovn-trace shows, an abbreviation, a condition ovnsim
does not model); :data:`NOT_EXERCISED` the rules no example topology's
flows reach.  The test fails on an unlisted difference, and on a listed
rule that has come to agree (or is exercised now), so neither list can go
stale.
"""

from __future__ import annotations

import collections
import re
from typing import Dict, List, Tuple

import pytest

from conformance.flowgen import generate
from conformance.test_conformance import TOPOLOGIES, load_into_ovn, trace_model_simulator
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.northd.rules import RULES
from ovnsim.northd.tables import build_tables
from ovnsim.sim import Simulator

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

_DATAPATH = re.compile(r'^Datapath: "([^"]+)"(?: aka "[^"]*")? \([0-9a-f-]+\)\s+Pipeline: (\w+)$')
_FLOW = re.compile(r"^\s+table=\d+ ?\((\w+)\s*\), priority=(\d+)\s*, match=\((.*?)\), action=\((.*)\)$")
_COMMENT = re.compile(r"\s*/\*.*?\*/")
_RESIDENT = re.compile(r' && is_chassis_resident\("[^"]*"\)')
_SPACE = re.compile(r"\s+")
_AROUND_EQ = re.compile(r"\s*(?<![<>!=])=(?![=>])\s*")
_LOGIC = re.compile(r"\s*(\|\||&&)\s*")

_SHORT = "ovnsim shows ovn-trace's short form of the actions, not the flow's text, which sets every field: "
_DGP = ("one rule serves gateway routers and distributed gateway ports; on a distributed gateway port "
        "OVN's flow has more conditions: ")

#: rule name -> why its text is not lflow-list's.
EXCEPTIONS: Dict[str, str] = {
    "LS_IN_ARP_RSP": _SHORT + "'ARP reply from MAC' for eth.dst = eth.src; eth.src = MAC; arp.op = 2; ...",
    "LR_IN_ARP_NAT": _SHORT + "'ARP reply' for eth.dst = eth.src; eth.src = xreg0[0..47]; arp.op = 2; ...",
    "LR_IN_ARP_NAT_GW": _SHORT + "'ARP reply'; and OVN's match has inport == the gateway port",
    "LR_IN_TTL_EXCEEDED": (_SHORT + "'...' for ip4.dst = ip4.src; ip4.src = <the port's address>; "
                           "outport = <the port>; flags.loopback = 1; and OVN's match ends && !ip.later_frag"),
    "LR_OUT_EGR_LOOP": _SHORT + "the clone's register and flag resets (flags = 0; reg0 = 0; ... reg9[0] = 1) left out",
    "LR_IN_ROUTE": ("ovnsim shows the values the route set (reg0 = the next hop, not reg0 = ip4.dst) and leaves "
                    "out reg8[0..15] = 0 and flags.loopback = 1; OVN's default route also matches reg7 == 0"),
    "LR_IN_ARP_REQUEST": "ovnsim shows the addresses (arp.spa = 10.0.0.1; arp.tpa = ...), OVN's flow the registers "
                         "(arp.spa = reg1; arp.tpa = reg0)",
    "LS_IN_L2_ROUTER_SRC": ("OVN's flow matches the set of every router MAC on the switch and also RARP and "
                            "neighbour solicitations (eth.src == {M1, M2} && (arp.op == 1 || rarp.op == 3 || "
                            "nd_ns)); ovnsim shows the one MAC and ARP"),
    "LR_IN_ADMISSION": ("for a multicast or broadcast eth.dst OVN's flow is eth.mcast && inport == P; ovnsim "
                        "shows the frame's eth.dst in the unicast flow's form"),
    "LR_IN_REENTER": ("a hairpinned copy re-entering the router: OVN takes the port's ordinary admission flow "
                      "(eth.dst == MAC && inport == P), ovnsim shows inport == P alone"),
    "LR_IN_UNSNAT_STATELESS": _DGP + "ip && ... && inport == <gateway port> && flags.loopback == 0",
    "LR_IN_DNAT_STATELESS": _DGP + "... && inport == <gateway port>",
    "LR_OUT_SNAT_STATELESS": (_DGP + "&& outport == <gateway port>; and ovnsim shows a host's logical "
                              "address as A/32 where OVN prints A"),
    "LR_OUT_SNAT_GR": ("OVN's flow also matches (!ct.trk || !ct.rpl) (ovn-trace takes it as true); and ovnsim "
                       "shows a host's logical address as A/32 where OVN prints A"),
    "LR_OUT_UNDNAT_STATELESS": ("a distributed floating IP: OVN's flow also sets eth.src = <external_mac> there "
                                "(ovnsim sets it once, in lr_in_gw_redirect: test_trace_sequence's "
                                "_DISTRIBUTED_FIP)"),
    **{f"{pipe}_ACL_DROP": ("a drop ACL's flow has no action but the comment /* drop */ (lflow-list prints "
                            "action=(/* drop */)); ovnsim shows drop;") for pipe in ("LS_IN", "LS_OUT")},
    "LS_OUT_PRE_LB_ROUTER": ("on a switch with stateful ACLs (security groups) OVN's flow is next; without the "
                             "ct_clear; ovnsim shows the stateless switch's ct_clear; next; everywhere"),
}

#: rule name -> why no generated flow of an example topology reaches it.
NOT_EXERCISED: Dict[str, str] = {
    "LS_IN_MCAST_SRC": "no generated flow has a multicast eth.src",
    "LS_IN_PORT_DISABLED": "no example topology has a disabled port",
    "LS_OUT_PORT_DISABLED": "no example topology has a disabled port",
    "LS_IN_L2_SAME_PORT": "no generated flow is addressed to its own in-port's MAC",
    "LR_IN_ADMISSION_VLAN_MCAST": "routers are reached through switches, which drop such frames first",
    "LR_IN_ADMISSION_DROP": "switches deliver to a router port only frames for its MAC or broadcast",
    "LR_IN_ARP_OWN": "the switch answers ARP for a router port's address (ls_in_arp_rsp) before the router sees it",
    "LR_IN_MARTIAN_OWN": "no generated flow comes from outside with a router's own address as source",
    "LR_IN_TTL_DROP": "only a later fragment with TTL 1 reaches it; no generated flow is a fragment",
    "LR_IN_DNAT_DGP": "the example distributed gateway ports' floating IPs are all stateless (their DNAT is "
                      "LR_IN_DNAT_STATELESS)",
    "LR_OUT_UNDNAT_DGP": "the example distributed gateway ports' floating IPs are all stateless",
    "LR_OUT_SNAT_GR_GW": "no example gateway router also has a port bound to a gateway chassis",
    # ACL stages (security-groups.yaml): conntrack states no generated flow or sequence produces
    **{f"{pipe}_{rule}": ("a connection whose conntrack entry an ACL marked blocked (ct_mark.blocked): no "
                          "generated sequence commits a connection a drop ACL then meets")
       for pipe in ("LS_IN", "LS_OUT")
       for rule in ("ACL_BLOCKED_REPLY", "ACL_DEFAULT_UNBLOCK", "ACL_DROP_BLOCK", "ACL_HINT_BLOCKED_NEW",
                    "ACL_HINT_EST_BLOCKED")},
    "LS_IN_ACL_HINT_NOT_EST": ("a tracked packet neither new nor established (related, invalid) entering from "
                               "a port with ACLs: not generated"),
    "LS_IN_ACL_INVALID": "needs a packet conntrack finds invalid (ct.inv); flowgen makes none",
    "LS_IN_ACL_RELATED": "needs an ICMP error related to a connection through a switch with ACLs; not generated",
    **{rule: ("a reply entering from a port with ACLs: flowgen's flows each go one way, and a ping each way is "
              "two connections (ICMP queries are keyed by type too, as Linux's conntrack keys them)")
       for rule in ("LS_IN_ACL_REPLY", "LS_IN_ACL_AFTER_LB", "LS_IN_ACL_HINT_EST_ALLOWED")},
    **{rule: "the stateless group's one rule admits UDP 5000-5010 to sl1; no generated flow is such a packet"
       for rule in ("LS_OUT_ACL_ALLOW_STATELESS", "LS_OUT_PRE_ACL_STATELESS", "LS_OUT_PRE_LB_STATELESS")},
}


def normalise(text: str) -> str:
    """What must be normalised before comparing a flow's text with ovnsim's:
    comments (OVN's ``/* ARP reply */``, ovnsim's ``/* new connection, ... */``),
    whitespace (``ip4.src=A`` and ``ip4.src = A`` are one action), and
    ``is_chassis_resident(...)`` conditions (ovnsim has one chassis)."""
    text = _RESIDENT.sub("", _COMMENT.sub("", text))
    text = _LOGIC.sub(r" \1 ", _AROUND_EQ.sub(" = ", text))
    return _SPACE.sub(" ", text).strip()


def parse_lflow_list(text: str) -> Dict[Tuple[str, str, int], List[Tuple[str, str]]]:
    """``ovn-sbctl lflow-list`` output -> {(datapath, stage, priority): [(match, actions)]}, normalised."""
    flows: Dict[Tuple[str, str, int], List[Tuple[str, str]]] = collections.defaultdict(list)
    datapath = None
    for line in text.splitlines():
        head = _DATAPATH.match(line)
        if head:
            datapath = head.group(1)
            continue
        flow = _FLOW.match(line)
        if flow and datapath is not None:
            flows[(datapath, flow.group(1), int(flow.group(2)))].append(
                (normalise(flow.group(3)), normalise(flow.group(4))))
        elif line.strip():
            raise AssertionError(f"lflow-list line not understood: {line!r}")
    return flows


def compare_topology(ovn, path) -> Tuple[Dict[str, collections.Counter], Dict[str, str]]:
    """Per rule: how many traced steps were exact / differed; and one difference per rule."""
    logical = compile_topology(load_topology(str(path)))
    load_into_ovn(ovn, logical)
    lflows = parse_lflow_list(ovn.lflow_list())
    sim = trace_model_simulator(logical)
    counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    examples: Dict[str, str] = {}
    flows = list(generate(build_tables(logical)))
    # each flow on fresh state, then all in sequence on one state (replies,
    # established connections and learned bindings take their own rules)
    for stateful in (False, True):
        sim.reset()
        for label, flow in flows:
            if not stateful:
                sim.reset()
            for event in sim.trace(flow).trace:
                if event.priority is None:
                    continue
                ours = (normalise(event.match), normalise(event.action))
                candidates = lflows.get((event.datapath, event.stage, event.priority), [])
                if ours in candidates:
                    counts[event.rule]["exact"] += 1
                    continue
                counts[event.rule]["differs"] += 1
                if event.rule not in examples:
                    near = [c for c in candidates if c[0] == ours[0]] or candidates[:3]
                    examples[event.rule] = (
                        f"{path.stem}, {'in sequence: ' if stateful else ''}{label}: {event.datapath} "
                        f"{event.stage} priority {event.priority}\n"
                        f"      ovnsim: match=({ours[0]}), action=({ours[1]})\n"
                        + "".join(f"      OVN:    match=({m}), action=({a})\n" for m, a in near)
                        + ("" if candidates else "      OVN:    no flow at that stage and priority\n"))
    return counts, examples


def test_normalise():
    assert normalise('ip4.src=172.24.4.150;  next; /* x */') == "ip4.src = 172.24.4.150; next;"
    assert normalise('ip && ip4.dst == 1.2.3.4 && is_chassis_resident("cr-lrp")') == "ip && ip4.dst == 1.2.3.4"
    assert normalise("reg0 == 1 && ip4.dst <-> ip4.src") == "reg0 == 1 && ip4.dst <-> ip4.src"
    assert normalise("ct_snat; /* no conntrack entry, no change */") == "ct_snat;"
    assert normalise("ip4.src_mcast ||ip4.src == 1.2.3.4&&  x") == "ip4.src_mcast || ip4.src == 1.2.3.4 && x"


def test_catalogue_text_is_lflow_lists(ovn):
    counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    examples: Dict[str, str] = {}
    for path in TOPOLOGIES:
        ovn.reset()
        got, ex = compare_topology(ovn, path)
        for rule, c in got.items():
            counts[rule].update(c)
        for rule, text in ex.items():
            examples.setdefault(rule, text)
    flows_rules = {r.name for r in RULES if r.priority is not None}
    unexpected = sorted(r for r in counts if counts[r]["differs"] and r not in EXCEPTIONS)
    agree = sorted(r for r in EXCEPTIONS if r in counts and not counts[r]["differs"])
    unreached = flows_rules - set(counts)
    assert not unexpected, (f"{len(unexpected)} rules' text is not lflow-list's (fix the catalogue or list "
                            "them in EXCEPTIONS):\n" + "".join(f"  {r}: {examples[r]}" for r in unexpected))
    assert not agree, f"rules listed in EXCEPTIONS agree with lflow-list now (unlist them): {agree}"
    assert unreached == set(NOT_EXERCISED), (
        f"reached by no flow but not listed: {sorted(unreached - set(NOT_EXERCISED))}; "
        f"listed but reached: {sorted(set(NOT_EXERCISED) - unreached)}")
