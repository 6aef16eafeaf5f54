"""ovnsim's trace against ovn-trace's: the same stages, at the same priorities, in the same order.

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
import re
from typing import Dict, List, Tuple

import pytest

from conformance.flowgen import generate
from conformance.test_conformance import TOPOLOGIES, load_into_ovn
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.northd.tables import build_tables
from ovnsim.sim import Result, Simulator
from ovnsim.testing.ovntrace import run_trace

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

_HEAD = re.compile(r'^\s*(ingress|egress)\(dp="([^"]+)"')
_STEP = re.compile(r"^\s*\d+\. (\w+) \(.*, priority (\d+), uuid [0-9a-f]+$")

Visit = Tuple[str, str, Tuple[Tuple[str, int], ...]]  # (datapath, pipeline, steps)

_HAIRPIN = ("hairpin through a distributed gateway port to one of its own NAT addresses: OVN's "
            "lr_out_chk_dnat_local sets reg9[4] for every NAT address (ovnsim: DNAT addresses only), so the "
            "looped-back copy takes lr_in_unsnat's SNAT-zone flow for an SNAT address and skips it for a "
            "floating IP, where ovnsim does the opposite; the verdicts agree (test_conformance.py)")

#: (topology stem, flow label) -> why ovnsim's stage/priority sequence differs from ovn-trace's.
KNOWN_DIFFERENCES: Dict[Tuple[str, str], str] = {
    **{("dgp", f"{vm} to NAT address {ip} tcp"): _HAIRPIN
       for vm in ("web1", "web2", "app1", "fw1")
       for ip in ("172.24.4.50 (snat)", "172.24.4.150 (dnat_and_snat)", "172.24.4.151 (dnat_and_snat)")},
    **{("dhcp-metadata", f"{vm} to NAT address 172.24.4.60 (snat) tcp"): _HAIRPIN
       for vm in ("web1", "web2", "db1")},
    **{("provider-ports", f"{vm} to NAT address {ip} tcp"): _HAIRPIN
       for vm in ("app1", "app2") for ip in ("172.24.4.50 (snat)", "172.24.4.151 (dnat_and_snat)")},
}


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


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_stage_and_priority_sequence_is_ovn_traces(ovn, path):
    logical = compile_topology(load_topology(str(path)))
    load_into_ovn(ovn, logical)
    names = ovn.datapath_names()
    sim = Simulator(logical)
    flows = list(generate(build_tables(logical)))
    unexpected, fixed = [], []
    for label, flow in flows:
        sim.reset()
        theirs = ovn_visits(run_trace(ovn, flow), names)
        ours = ovnsim_visits(sim.trace(flow))
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
