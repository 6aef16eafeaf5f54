"""Stateful conformance: closed-loop conversations on real OVN's data path and on ovnsim.

For every example topology (except the 1,000-port one), every conversation of
``conversations.py`` (ICMP, TCP handshakes and UDP east-west and routed, out
through SNAT and floating IPs and back, in to floating IPs and back,
hairpins to floating IPs, TTL expiry, router addresses, ARP for gateways
and unknown next hops, spoofed sources, LLDP, port-security-disabled ports)
runs on a :class:`~ovnsim.testing.realdp.RealDatapath` and on
:class:`~ovnsim.sim.Simulator`, each side with its own hosts building the
next frame from its own outputs.  Every step -- the frame injected and the
frames that left every port -- must be byte-identical.  Known differences
live in ``known_differences.py`` (strict xfail).

One real data path per topology, shared by the module and ``reset()``
between conversations.
"""

from __future__ import annotations

import os

import pytest
from scapy.layers.l2 import Ether

from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.sim import Simulator
from ovnsim.testing.realdp import RealDatapath
from conformance import conversations as cv
from conformance.known_differences import KINDS, KNOWN

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: every example topology but the generated 1,000-port one
TOPOLOGIES = tuple(sorted(p[:-5] for p in os.listdir(os.path.join(ROOT, "topologies"))
                          if p.endswith(".yaml") and p != "large.yaml"))


def _load(name):
    topo = load_topology(os.path.join(ROOT, "topologies", f"{name}.yaml"))
    return topo, compile_topology(topo)


def _cases():
    cases = []
    for name in TOPOLOGIES:
        topo, logical = _load(name)
        for conv in cv.conversations(topo, logical, cv.make_hosts(topo, logical)):
            key = f"{name}/{conv.name}"
            marks = []
            if key in KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=f"{KNOWN[key]}: {KINDS[KNOWN[key]]}"))
            cases.append(pytest.param(name, conv.name, id=key, marks=marks))
    return cases


_HARNESSES = {}


@pytest.fixture(scope="module")
def sides():
    """Per topology: (topology, logical, RealDatapath, Simulator), created on first use
    (the previous topology's data path is stopped then)."""
    RealDatapath.skip_unless_available()
    try:
        yield _HARNESSES
    finally:
        for _, _, dp, _ in _HARNESSES.values():
            dp.stop()
        _HARNESSES.clear()


def _side(sides, name):
    if name not in sides:
        # tests run topology by topology: one real data path alive at a time
        for other in list(sides):
            sides.pop(other)[2].stop()
        topo, logical = _load(name)
        dp = RealDatapath()
        dp.start()
        sides[name] = (topo, logical, dp, None)
        dp.load(logical)
        sides[name] = (topo, logical, dp, Simulator(logical))
    return sides[name]


def play(topo, logical, dp, sim, conv_name):
    """Both sides' steps for one conversation (each with fresh hosts and state)."""
    results = []
    for side in ("ovn", "ovnsim"):
        hosts = cv.make_hosts(topo, logical)
        conv = {c.name: c for c in cv.conversations(topo, logical, hosts)}[conv_name]
        if side == "ovn":
            dp.reset()
            inject = lambda port, frame: dp.inject(port, frame).outputs  # noqa: E731
        else:
            sim.reset()

            def inject(port, frame):
                out = {}
                for o in sim.inject(port, frame).outputs:
                    out.setdefault(o.port, []).append(o.frame)
                return out
        results.append(cv.run(conv, hosts, inject))
    return results


def describe(ovn_steps, sim_steps) -> str:
    """Both sides' steps, side by side, the first differing one marked."""
    lines = []
    for i in range(max(len(ovn_steps), len(sim_steps))):
        a = ovn_steps[i] if i < len(ovn_steps) else None
        b = sim_steps[i] if i < len(sim_steps) else None
        same = a is not None and b is not None and a.key() == b.key()
        lines.append(f"step {i} {'==' if same else '!='}")
        for label, s in (("ovn   ", a), ("ovnsim", b)):
            if s is None:
                lines.append(f"  {label}: (no step)")
                continue
            lines.append(f"  {label}: in {s.port}: {Ether(s.frame).summary()}")
            for port, frames in sorted(s.outputs.items()):
                for f in frames:
                    lines.append(f"  {label}:   -> {port}: {Ether(f).summary()} {f.hex()}")
    return "\n".join(lines)


#: [steps, identical steps] over the conversations run (printed at the end of the session)
STEP_COUNTS = [0, 0]



@pytest.mark.parametrize("topology,conversation", _cases())
def test_conversation(sides, topology, conversation):
    topo, logical, dp, sim = _side(sides, topology)
    ovn_steps, sim_steps = play(topo, logical, dp, sim, conversation)
    same = sum(1 for a, b in zip(ovn_steps, sim_steps) if a.key() == b.key())
    STEP_COUNTS[0] += max(len(ovn_steps), len(sim_steps))
    STEP_COUNTS[1] += same
    assert [s.key() for s in ovn_steps] == [s.key() for s in sim_steps], describe(ovn_steps, sim_steps)
