"""The reachability matrix's forward verdicts against real OVN's ovn-trace.

For a deterministic sample of the matrix's cells in every example topology,
the request the matrix sent (the same frame the per-question API builds) is
traced by ovn-trace; the matrix must say the request was delivered exactly
when ovn-trace outputs it on the destination's port, and the address the
destination saw must be ovn-trace's ``ip4.src`` there.  The replies are
checked against the reference pipeline (the per-question API, which runs
on the Simulator) by tests/test_reach_matrix.py on every cell.

ovn-trace has no conntrack and no MAC learning: a cell whose request needed
a router to ARP for a neighbour first (the retransmission the question
sends) is left out of the sample, and said so.
"""

from __future__ import annotations

import pytest

from conformance.test_conformance import ACL_TOPOLOGIES, TOPOLOGIES, ct_options, load_into_ovn
from ovnsim.datapath._fastpath import frame_fields
from ovnsim.reach.matrix import SELF, compute_matrix
from ovnsim.testing.ovntrace import trace_verdict

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

#: Cells traced per topology (spread over protocols, sources and destinations).
SAMPLE = 40


def _microflow(port: str, frame: bytes) -> str:
    f = frame_fields(frame)
    parts = [f'inport == "{port}"'] + [f"{k} == {f[k]}" for k in ("eth.src", "eth.dst", "ip4.src", "ip4.dst", "ip.ttl")]
    if "icmp4.type" in f:
        parts += ["icmp4", "icmp4.type == 8", "icmp4.code == 0"]
    else:
        name = "tcp" if "tcp.src" in f else "udp"
        parts += [name, f"{name}.src == {f[name + '.src']}", f"{name}.dst == {f[name + '.dst']}"]
        if name == "tcp":
            parts.append("tcp.flags == 0x002")
    return " && ".join(parts)


def _sample(m):
    cells = [(p, s, d) for p in range(len(m.protos)) for s in range(len(m.sources)) for d in range(len(m.dests))
             if m.status[p, s, d] != SELF]
    step = max(1, len(cells) // SAMPLE)
    return cells[::step][:SAMPLE]


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_matrix_forward_verdicts_agree_with_ovn_trace(ovn, path):
    m = compute_matrix(str(path))
    load_into_ovn(ovn, m.reach.logical)
    mismatches, traced, skipped = [], 0, 0
    for p, s, d in _sample(m):
        cell = m.cell(p, s, d)
        answer = m.explain(p, s, d)
        if not answer.forward_frame:
            continue  # no next hop: nothing was sent
        m.reach.sim.reset()  # as ovn-trace: nothing learned yet
        first = m.reach.sim.inject(answer.src.port, answer.forward_frame, trace=True)
        m.reach.sim.reset()
        # with ACLs, ovn-trace takes each conntrack pass's state from ovnsim's (a new connection)
        options = ct_options(first) if path.stem in ACL_TOPOLOGIES else []
        if any(o.kind == "arp" for o in first.outputs) or any(x.reason.label == "arp-not-answered"
                                                               for x in first.drops):
            skipped += 1
            continue
        want = answer.delivered_port or (answer.dst.target if answer.dst.kind == "fip" else answer.dst.port)
        theirs = trace_verdict(ovn, _microflow(answer.src.port, answer.forward_frame), options=options)
        hits = [o for o in theirs["outputs"] if o["port"] == want and o["kind"] == "packet"]
        delivered = cell.direction != "forward"
        traced += 1
        if bool(hits) != delivered or (hits and cell.seen_as and hits[0]["ip4.src"] != cell.seen_as):
            mismatches.append(f"{cell.src} -> {cell.dst} {cell.proto}: matrix {cell.describe()}; "
                              f"ovn-trace outputs {theirs['outputs']}")
    assert traced >= SAMPLE // 2, f"only {traced} cells traced ({skipped} needed ARP first)"
    assert not mismatches, f"{len(mismatches)} of {traced} cells differ:\n" + "\n".join(mismatches[:10])
