"""ovnsim's trace against ovn-trace's: the same stages, at the same priorities, in the same order;
and ``--format minimal`` beside ``ovn-trace --minimal`` (see :func:`test_minimal_trace_is_ovn_traces`).

For every generated microflow of every example topology, each pipeline visit
(a datapath's ingress or egress pipeline, as ovn-trace's ``--detailed``
output heads it) must list the same (stage, priority) steps in the same
order as ovnsim's trace of that visit; the first visit must be the same and
the visits must be the same multiset.  Only the order of sibling visits is
free: ovn-trace walks a multicast group's ports in the order of the SB
``Multicast_Group`` row (a set of UUIDs, so arbitrary), ovnsim in port
order.  Steps ovn-trace shows include the pass-through stages (flows that
only set registers), which ovnsim traces for this reason
(``ovnsim.northd.rules.PASS_THROUGH``).

:data:`KNOWN_DIFFERENCES` lists the flows whose sequence ovnsim does not
match yet, each with the reason; the test fails if a listed flow stops
differing (the list cannot go stale) as well as on any unlisted difference.
"""

from __future__ import annotations

import collections
import ipaddress
import re
from typing import Dict, List, Tuple

import pytest

from conformance.flowgen import generate
from conformance.test_conformance import (ACL_TOPOLOGIES, TOPOLOGIES, _param, ct_options, load_into_ovn,
                                          trace_model_simulator)
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.northd.tables import build_tables
from ovnsim.sim import Result, Simulator
from ovnsim.testing.ovntrace import run_trace

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

_HEAD = re.compile(r'^\s*(ingress|egress)\(dp="([^"]+)"')
_STEP = re.compile(r"^\s*\d+\. (\w+) \(.*, priority (\d+), uuid [0-9a-f]+$")

Visit = Tuple[str, str, Tuple[Tuple[str, int], ...]]  # (datapath, pipeline, steps)

#: (topology stem, flow label) -> why ovnsim's stage/priority sequence differs from ovn-trace's.
KNOWN_DIFFERENCES: Dict[Tuple[str, str], str] = {}


def ovn_visits(text: str, names: Dict[str, str]) -> List[Visit]:
    """The pipeline visits of ovn-trace's detailed trace, with datapath names."""
    visits: List[list] = []
    for line in text.split("# Summary trace.")[0].splitlines():
        head = _HEAD.match(line)
        if head:
            visits.append([names.get(head.group(2), head.group(2)), head.group(1), []])
            continue
        step = _STEP.match(line)
        if step and visits:
            visits[-1][2].append((step.group(1), int(step.group(2))))
    return [(dp, pipe, tuple(steps)) for dp, pipe, steps in visits if steps]


def ovnsim_visits(result: Result) -> List[Visit]:
    """The pipeline visits of ovnsim's trace (steps OVN has a flow for: those with a priority)."""
    visits: List[list] = []
    where, table = None, -1
    for event in result.trace:
        if event.priority is None:
            continue
        here = (event.datapath, event.pipeline, event.depth)
        # Tables only grow within one visit: a lower one starts the next copy's visit.
        if here != where or event.table <= table:
            visits.append([event.datapath, event.pipeline, []])
            where = here
        table = event.table
        visits[-1][2].append((event.stage, event.priority))
    return [(dp, pipe, tuple(steps)) for dp, pipe, steps in visits if steps]


def same_sequence(theirs: List[Visit], ours: List[Visit]) -> bool:
    return theirs[:1] == ours[:1] and collections.Counter(theirs) == collections.Counter(ours)


@pytest.mark.parametrize("path", [_param(p) for p in TOPOLOGIES], ids=lambda p: p.stem)
def test_stage_and_priority_sequence_is_ovn_traces(ovn, path):
    # ovn-trace takes each conntrack pass's state from ovnsim's (ct_options): it has no conntrack,
    # and its default (est) would skip e.g. a gateway router's lr_out_post_undnat commit (ct.new)
    logical = compile_topology(load_topology(str(path)))
    load_into_ovn(ovn, logical)
    names = ovn.datapath_names()
    sim = trace_model_simulator(logical)
    flows = list(generate(build_tables(logical)))
    unexpected, fixed = [], []
    for label, flow in flows:
        sim.reset()
        result = sim.trace(flow)
        options = ct_options(result)
        theirs = ovn_visits(run_trace(ovn, flow, options=options), names)
        ours = ovnsim_visits(result)
        same = same_sequence(theirs, ours)
        known = KNOWN_DIFFERENCES.get((path.stem, label))
        if not same and known is None:
            unexpected.append(f"{label}\n    flow: {flow}\n    ovn-trace: {theirs}\n    ovnsim:    {ours}")
        elif same and known is not None:
            fixed.append(f"{label} (listed as: {known})")
    assert not unexpected, f"{len(unexpected)} of {len(flows)} flows differ:\n" + "\n".join(unexpected[:8])
    assert not fixed, "listed differences that are gone (remove them from KNOWN_DIFFERENCES):\n" + "\n".join(fixed)


def test_visits_split_both_traces_alike():
    """The two parsers above read the same shape: a datapath header, then numbered steps."""
    text = ('ingress(dp="uuid-1", inport="vm1")\n'
            "---\n"
            ' 0. ls_in_check_port_sec (northd.c:1): 1, priority 50, uuid dde96e78\n'
            "    next;\n"
            '25. ls_in_l2_lkup (northd.c:2): eth.dst == fa:16:3e:00:00:12, priority 50, uuid 6c5e64d0\n'
            '    egress(dp="uuid-1", inport="vm1", outport="vm2")\n'
            ' 9. ls_out_apply_port_sec (northd.c:3): 1, priority 0, uuid a346227f\n'
            "# Summary trace.\n"
            ' 9. ls_out_apply_port_sec (northd.c:3): 1, priority 0, uuid a346227f\n')
    assert ovn_visits(text, {"uuid-1": "ls1"}) == [
        ("ls1", "ingress", (("ls_in_check_port_sec", 50), ("ls_in_l2_lkup", 50))),
        ("ls1", "egress", (("ls_out_apply_port_sec", 0),))]
    a = [("ls1", "ingress", (("s", 1),)), ("ls1", "egress", (("e", 0),)), ("ls1", "egress", (("f", 0),))]
    assert same_sequence(a, [a[0], a[2], a[1]])
    assert not same_sequence(a, [a[1], a[0], a[2]])
    assert not same_sequence(a, a[:2])


# ---------------------------------------------------------------------------
# --format minimal beside ovn-trace --minimal
# ---------------------------------------------------------------------------

_HEX_ADDR = re.compile(r"^(\s*arp\.[st]pa = )0x([0-9a-f]+);$", re.M)

_DISTRIBUTED_FIP = ("a distributed floating IP leaving through the gateway: OVN sets eth.src to its "
                    "external_mac in three flows (lr_in_gw_redirect, lr_out_undnat, lr_out_snat), ovnsim "
                    "shows the first only")

#: (topology stem, flow label) -> why ovnsim's minimal trace differs from ovn-trace's.
KNOWN_MINIMAL_DIFFERENCES: Dict[Tuple[str, str], str] = {
    **{("dgp", f"app1 to the Internet {proto}"): _DISTRIBUTED_FIP for proto in ("tcp", "udp", "icmp")},
    **{("dgp", f"app1 to NAT address {ip} (dnat_and_snat) tcp"): _DISTRIBUTED_FIP
       for ip in ("172.24.4.150", "172.24.4.151")},
}


def ovn_minimal(text: str) -> str:
    """ovn-trace's ``--minimal`` section, with the one display quirk normalised.

    ovn-trace prints an ARP address set from a register (``arp.spa = reg1``)
    as a hex number; ovnsim prints addresses as dotted quads.
    """
    minimal = text.split("# Minimal trace.")[1].strip()
    return _HEX_ADDR.sub(lambda m: f"{m.group(1)}{ipaddress.IPv4Address(int(m.group(2), 16))};", minimal)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_minimal_trace_is_ovn_traces(ovn, path):
    """Every flow with one output: the same actions, in the same order, as ovn-trace --minimal.

    Compared where ovn-trace's output has no ct_* block (ovnsim shows what
    NAT set as a plain field, not ovn-trace's nested conntrack blocks) and
    ovnsim has one output (ovn-trace prints a fan-out as one tree, ovnsim
    each copy on its own).
    """
    from ovnsim.datapath._fastpath import frame_fields
    from ovnsim.datapath.microflow import parse_microflow
    from ovnsim.datapath.trace import format_minimal

    logical = compile_topology(load_topology(str(path)))
    load_into_ovn(ovn, logical)
    sim = trace_model_simulator(logical)
    compared, unexpected, fixed = 0, [], []
    for label, flow in generate(build_tables(logical)):
        sim.reset()
        result = sim.trace(flow)
        theirs = ovn_minimal(run_trace(ovn, flow))
        if len(result.outputs) != 1 or result.drops or "ct_" in theirs:
            continue
        compared += 1
        ours = format_minimal(result, frame_fields(parse_microflow(flow).to_frame()))
        known = KNOWN_MINIMAL_DIFFERENCES.get((path.stem, label))
        if ours != theirs and known is None:
            unexpected.append(f"{label}\n  ovn-trace:\n{theirs}\n  ovnsim:\n{ours}")
        elif ours == theirs and known is not None:
            fixed.append(f"{label} (listed as: {known})")
    assert compared >= 20, "too few flows compared to mean anything"
    assert not unexpected, f"{len(unexpected)} of {compared} flows differ:\n" + "\n".join(unexpected[:5])
    assert not fixed, "listed differences that are gone:\n" + "\n".join(fixed)
