"""ovnsim against real OVN: for every example topology, every generated microflow
must get the same verdict from ``ovnsim trace`` as from ``ovn-trace``.

Same output ports, same kinds, the same value for every header field, same
dropped/not dropped (``tests/conformance/flowgen.py`` says which flows).  The
limits of ovn-trace are handled explicitly, as OVN-NOTES.md describes:

* static MAC bindings (the upstream router's MAC) are invisible to ovn-trace,
  so the harness writes the equivalent SB ``MAC_Binding`` rows;
* ovn-trace stops gateway-router traces at ``ct_snat;``; the harness applies
  ``gateway_router_trace_fix()`` (l3gateway bindings retyped as patch), after
  which ovn-trace shows what real OVN does for a *new* connection;
* ovn-trace has no conntrack, so every flow is traced on a fresh simulator
  (``reset()``); replies to NATed connections are covered by ovnsim's own
  conntrack tests and, here, by the post-un-SNAT frames the generator emits;
* ovn-trace shows a ``tcp_reset`` with the offending segment's ports, because
  it applies only the nested actions (``eth.dst <-> eth.src; ip4.dst <->
  ip4.src``) to the flow; ovn-controller (``pinctrl_handle_tcp_reset``)
  builds the RST with the ports swapped first and TTL 63 (ovn-trace: 255),
  and ovnsim does what real OVN sends.  :func:`as_pinctrl_sends` swaps
  ovn-trace's ports and lowers its TTL by 192 for that kind only, and
  ``test_tcp_reset_normalisation_is_needed`` keeps the difference honest (it
  fails if either side stops behaving this way).

There is no other allowance: the test fails on any difference.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Dict, List

import pytest

from conformance.flowgen import generate
from ovnsim.neutron.compiler import compile_topology
from ovnsim.nb.nbctl import nbctl_commands
from ovnsim.neutron.loader import load_topology
from ovnsim.sim import Simulator
from ovnsim.northd.tables import build_tables
from ovnsim.testing.ovntrace import make_verdict, trace_verdict

TOPOLOGY_DIR = pathlib.Path(__file__).resolve().parents[2] / "topologies"
#: The generated 1,000-port topology is left out: its flows add nothing the
#: others do not cover, and tracing it one-shot costs ~0.5 s a flow.
TOPOLOGIES = sorted(p for p in TOPOLOGY_DIR.glob("*.yaml") if p.stem != "large")
#: Topologies with ACLs: ovn-trace takes every conntrack pass as ``--ct`` says
#: (without, as established: even a router's ICMP error or echo reply would
#: meet the rules there), so each flow is traced with the ct_state ovnsim's
#: own conntrack gave each pass (:func:`ct_options`): like is compared with like.
ACL_TOPOLOGIES = {"security-groups"}

_CT_STATE = re.compile(r"ct_next; /\* ct_state=([a-z|]+) \*/")
#: what a router's ct_snat/ct_dnat did (the catalogue's CT_OUTCOMES text) -> the ct_state ovn-trace takes
_ROUTER_CT = (("un-NAT (reply)", "est,rpl"), ("related ICMP error", "rel"), ("NAT (established)", "est"),
              ("committed by this packet (ct.new)", "new"), ("already tracked", "est"),
              ("new connection", "new"), ("no conntrack entry", "new"),
              ("ICMP error, no related", "inv"), ("not a first packet", "inv"))


def ct_options(result) -> List[str]:
    """``--ct`` options for ovn-trace, one per conntrack action of ovnsim's trace of a flow, in order.

    An ACL stage's ``ct_next`` gives the flags ovnsim's conntrack loaded; a
    router's ``ct_snat``/``ct_dnat`` (and their ``_in_czone`` forms) the
    state its outcome stands for.
    """
    options = []
    for event in result.trace:
        found = _CT_STATE.search(event.action)
        if found:
            flags = [f for f in found.group(1).split("|") if f != "trk"]
            options.append("--ct=" + ",".join(flags))
        elif re.search(r"\bct_(snat|dnat)", event.action):
            state = next((s for text, s in _ROUTER_CT if text in event.action), "est")
            options.append(f"--ct={state}")
    return options


def _param(path):
    return path

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]


def load_into_ovn(ovn, logical) -> None:
    ovn.run_nbctl_script(nbctl_commands(logical))
    ovn.sync()
    for binding in logical.static_mac_bindings:
        router = next(lr.name for lr in logical.routers if any(p.name == binding.logical_port for p in lr.ports))
        datapath = ovn.sbctl("--bare", "--columns=_uuid", "find", "Datapath_Binding",
                             f"external_ids:name={router}").strip()
        ovn.sbctl("create", "MAC_Binding", f"logical_port={binding.logical_port}", f"ip={binding.ip}",
                  f'mac="{binding.mac}"', f"datapath={datapath}")
    ovn.gateway_router_trace_fix()


def trace_model_simulator(logical) -> Simulator:
    """A Simulator that answers as ovn-trace models OVN: a packet waiting for its next hop's ARP is not held.

    ovn-trace shows the ARP request and stops; ovn-controller's pinctrl keeps
    the packet and sends it once the reply comes, which, on a provider
    network another router of the same topology answers for, happens within
    the same injected frame (tests/test_held_packets.py, and the real data
    path's conversations check that behaviour).
    """
    sim = Simulator(logical)
    sim.engine.hold_packets = False
    return sim


def as_pinctrl_sends(verdict: Dict[str, object]) -> Dict[str, object]:
    """ovn-trace's verdict with tcp_reset outputs' ports swapped, as ovn-controller's pinctrl sends them."""
    outputs = []
    for out in verdict["outputs"]:
        out = dict(out)
        if out["kind"] == "tcp_reset":
            out["tcp.src"], out["tcp.dst"] = out["tcp.dst"], out["tcp.src"]
            out["ip.ttl"] -= 192  # ovn-trace starts the packet at TTL 255, pinctrl composes it with 63
        outputs.append(out)
    return make_verdict(outputs)


def _ours(sim: Simulator, flow: str) -> Dict[str, object]:
    # ovn-trace has no pinctrl: the packet an ARP request is made for is not held
    sim.engine.hold_packets = False
    sim.reset()
    return make_verdict(sim.verdict(sim.trace(flow))["outputs"])


def _options(sim: Simulator, path, flow: str) -> List[str]:
    if path.stem not in ACL_TOPOLOGIES:
        return []
    sim.reset()
    return ct_options(sim.trace(flow))


@pytest.mark.parametrize("path", [_param(p) for p in TOPOLOGIES], ids=lambda p: p.stem)
def test_ovnsim_agrees_with_ovn_trace(ovn, path):
    logical = compile_topology(load_topology(str(path)))
    load_into_ovn(ovn, logical)
    sim = trace_model_simulator(logical)
    flows = list(generate(build_tables(logical)))
    assert len(flows) >= 80, "the generator should cover each topology with many flows"

    mismatches: List[str] = []
    for label, flow in flows:
        ours = _ours(sim, flow)
        theirs = as_pinctrl_sends(trace_verdict(ovn, flow, options=_options(sim, path, flow)))
        if ours == theirs:
            continue
        mismatches.append(f"{label}\n    flow:     {flow}\n    ovnsim:   {json.dumps(ours['outputs'])}"
                          f"\n    ovn-trace: {json.dumps(theirs['outputs'])}")
    assert not mismatches, f"{len(mismatches)} of {len(flows)} flows differ:\n" + "\n".join(mismatches[:15])


def test_tcp_reset_normalisation_is_needed(ovn):
    """The one normalisation above is real: ovn-trace keeps the ports, ovnsim (like pinctrl) swaps them."""
    path = TOPOLOGY_DIR / "reference.yaml"
    logical = compile_topology(load_topology(str(path)))
    load_into_ovn(ovn, logical)
    sim = trace_model_simulator(logical)
    flow = next(f for label, f in generate(build_tables(logical)) if label == "vm1 TCP to its router")
    theirs = trace_verdict(ovn, flow)["outputs"]
    ours = _ours(sim, flow)["outputs"]
    assert [o["kind"] for o in theirs] == [o["kind"] for o in ours] == ["tcp_reset"]
    assert (theirs[0]["tcp.src"], theirs[0]["tcp.dst"]) == (33000, 22)  # as the segment had them
    assert (ours[0]["tcp.src"], ours[0]["tcp.dst"]) == (22, 33000)  # back to the sender's port
    assert (theirs[0]["ip.ttl"], ours[0]["ip.ttl"]) == (254, 62)  # from 255 / pinctrl's 63, routed once


#: ``ovnsim trace --from/--to`` microflows (built as ml2ovn-trace builds them):
#: topology -> (from, to, protocol keyword arguments of FlowSpec).
BUILT_FLOWS = {
    "provider-ports": [
        ("bastion", "outside", {"tcp": 443}),
        ("bastion", "pub-db", {"tcp": 5432}),
        ("bastion", "172.24.4.151", {"tcp": 22}),  # app1's floating IP, on bastion's L2
        ("bastion", "router1", {"icmp": True}),
        ("app1", "bastion", {"tcp": 22}),  # via the gateway, FIP as source
        ("app2", "bastion", {"udp": 53}),  # via the gateway, SNAT
        ("app2", "outside:8.8.8.8", {"icmp": True}),
    ],
    "reference": [
        ("vm1", "db1", {"tcp": 22}),
        ("vm1", "vm2", {"udp": 53}),
        ("vm1", "outside", {"icmp": True}),
        ("vm1", "172.24.4.100", {"tcp": 80}),
    ],
}


@pytest.mark.parametrize("name", sorted(BUILT_FLOWS))
def test_built_microflows_agree_with_ovn_trace(ovn, name):
    """What ``ovnsim trace --from X --to Y --tcp N`` builds, ovn-trace takes and agrees on."""
    from ovnsim.trace_args import FlowSpec, build_microflow

    topo = load_topology(str(TOPOLOGY_DIR / f"{name}.yaml"))
    logical = compile_topology(topo)
    load_into_ovn(ovn, logical)
    sim = trace_model_simulator(logical)
    for source, dest, proto in BUILT_FLOWS[name]:
        flow = build_microflow(topo, logical, FlowSpec(source, dest, **proto))
        ours = _ours(sim, flow)
        assert ours["outputs"], f"{source} -> {dest}: nothing left ovnsim"
        assert ours == as_pinctrl_sends(trace_verdict(ovn, flow)), f"{source} -> {dest}: {flow}"
