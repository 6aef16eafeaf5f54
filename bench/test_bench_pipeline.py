"""Benchmarks: the per-frame cost of the Python API, ``Simulator.inject``, on the reference topology.

    python -m pytest bench/test_bench_pipeline.py -q -p no:cacheprovider
    python -m pytest bench/test_bench_pipeline.py -q -p no:cacheprovider --benchmark-disable   # smoke test

Four frames through ``topologies/reference.yaml``:

* ``vm_to_vm``: vm1 -> vm2 on the web switch (one datapath);
* ``routed_snat_warm``: vm1 -> the upstream router, three hops (neutron-router1,
  join switch, gateway router gr-router1 with SNAT to 172.24.4.10, out on the
  localnet port), the same flow every time, so conntrack already holds it;
* ``routed_snat_new_connection``: the same route with a new source port each
  frame, so every frame commits a new SNAT connection;
* ``arp_responder``: vm1's ARP request for its gateway, answered by the
  switch's ARP responder;
* ``routed_snat_warm_traced``: ``routed_snat_warm`` with ``trace=True`` (what
  ``ovnsim trace`` and ``replay --trace`` run: the C engine's trace records,
  rendered into ``result.trace``'s steps).

The machine is shared and noisy, so nothing here asserts on time. Every run
also measures a baseline -- scapy dissecting the routed frame (``Ether(frame)``)
-- and ``bench/conftest.py`` prints each benchmark's median as a ratio to it:
below 1 means ovnsim forwards a frame through the logical network faster than
scapy parses it. The target is "microseconds, not milliseconds" per frame.

Each benchmark checks the result of its call (output port and a rewritten
field), so under ``--benchmark-disable`` the file is a smoke test of the
pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from ovnsim.sim import Result, Simulator

REFERENCE = Path(__file__).resolve().parent.parent / "topologies" / "reference.yaml"
GROUP = "reference-per-frame"

# From topologies/reference.yaml.
VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
VM2_MAC, VM2_IP = "fa:16:3e:00:00:12", "10.0.0.12"
WEB_GATEWAY_IP = "10.0.0.1"
UPSTREAM_IP, UPSTREAM_MAC = "172.24.4.1", "52:54:00:c0:ff:ee"  # public-v4 gateway_ip, gateway_mac
SNAT_IP = "172.24.4.10"  # router1's external_gateway ip_address
LOCALNET = "provnet-public"
TTL = 64

#: Distinct source ports the new-connection benchmark cycles through; after the
#: last one the simulator is reset, so each port is a new connection again.
NEW_CONNECTIONS = 2048
FIRST_SPORT = 20000


def _router_mac(sim: Simulator, lrp: str) -> str:
    return sim.logical.router_ports()[lrp][1].mac


def _routed_frame(sim: Simulator, sport: int) -> bytes:
    return bytes(Ether(src=VM1_MAC, dst=_router_mac(sim, "lrp-router1-web-v4"))
                 / IP(src=VM1_IP, dst=UPSTREAM_IP, ttl=TTL) / TCP(sport=sport, dport=80))


@pytest.fixture
def sim() -> Simulator:
    """A fresh simulator (empty conntrack) per benchmark."""
    return Simulator.from_file(str(REFERENCE))


@pytest.fixture(scope="module")
def frames() -> dict:
    """The frames, built once with scapy (so ovnsim's own builder is not what is tested)."""
    sim = Simulator.from_file(str(REFERENCE))
    return {
        "vm_to_vm": bytes(Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, ttl=TTL)
                          / TCP(sport=40000, dport=22)),
        "routed": _routed_frame(sim, 40000),
        "new_connections": [_routed_frame(sim, FIRST_SPORT + i) for i in range(NEW_CONNECTIONS)],
        "arp_request": bytes(Ether(src=VM1_MAC, dst="ff:ff:ff:ff:ff:ff")
                             / ARP(op=1, hwsrc=VM1_MAC, psrc=VM1_IP, hwdst="00:00:00:00:00:00",
                                   pdst=WEB_GATEWAY_IP)),
    }


# --------------------------------------------------------------------------
# result checks (so the benchmarks double as smoke tests)
# --------------------------------------------------------------------------


def check_switched(result: Result) -> None:
    assert result.drops == []
    [out] = result.outputs
    assert (out.port, out.kind) == ("vm2", "packet")
    fields = out.packet.fields()
    # switched, not routed: nothing rewritten
    assert (fields["eth.dst"], fields["ip4.dst"], fields["ip.ttl"]) == (VM2_MAC, VM2_IP, TTL)


def check_routed(sim: Simulator, result: Result, sport: int) -> None:
    assert result.drops == []
    [out] = result.outputs
    assert (out.port, out.kind) == (LOCALNET, "packet")
    fields = out.packet.fields()
    assert fields["ip4.src"] == SNAT_IP  # SNAT on gr-router1
    assert fields["tcp.src"] == sport  # no port clash, so the port is kept
    assert fields["ip.ttl"] == TTL - 2  # two routers
    assert fields["eth.src"] == _router_mac(sim, "lrp-router1-gw")
    assert fields["eth.dst"] == UPSTREAM_MAC


def check_arp_reply(sim: Simulator, result: Result) -> None:
    assert result.drops == []
    [out] = result.outputs
    assert (out.port, out.kind) == ("vm1", "arp_reply")
    fields = out.packet.fields()
    gateway_mac = _router_mac(sim, "lrp-router1-web-v4")
    assert fields["arp.op"] == 2
    assert (fields["arp.sha"], fields["arp.spa"]) == (gateway_mac, WEB_GATEWAY_IP)
    assert (fields["eth.src"], fields["eth.dst"]) == (gateway_mac, VM1_MAC)


# --------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------


@pytest.mark.benchmark(group=GROUP)
def test_baseline_scapy_parse(benchmark, frames):
    """Baseline: scapy dissecting the routed frame; the ratios are computed against this."""
    pkt = benchmark(Ether, frames["routed"])
    assert pkt[IP].dst == UPSTREAM_IP and pkt[TCP].dport == 80


@pytest.mark.benchmark(group=GROUP)
def test_vm_to_vm(benchmark, sim, frames):
    result = benchmark(sim.inject, "vm1", frames["vm_to_vm"])
    check_switched(result)


@pytest.mark.benchmark(group=GROUP)
def test_routed_snat_warm(benchmark, sim, frames):
    frame = frames["routed"]
    check_routed(sim, sim.inject("vm1", frame), 40000)  # commits the connection
    assert len(sim.conntrack) == 2  # gr-router1's DNAT zone (plain) and SNAT zone entries
    result = benchmark(sim.inject, "vm1", frame)
    check_routed(sim, result, 40000)
    assert len(sim.conntrack) == 2, "the repeated frame found its connection, it did not add one"


@pytest.mark.benchmark(group=GROUP)
def test_routed_snat_warm_traced(benchmark, sim, frames):
    frame = frames["routed"]
    sim.inject("vm1", frame)  # commits the connection
    result = benchmark(sim.inject, "vm1", frame, trace=True)
    check_routed(sim, result, 40000)
    stages = [step.stage for step in result.trace]
    # the whole route, in OVN's stage names: both routers' SNAT-side stages and the delivery
    assert stages[0] == "ls_in_check_port_sec" and stages[-1] == "ls_out_apply_port_sec", stages
    assert "lr_out_snat" in stages and stages.count("lr_in_ip_routing") == 2, stages


class _NewConnections:
    """Injects the next frame of a cycle of distinct source ports; resets the simulator on wrap-around."""

    def __init__(self, sim: Simulator, frames: List[bytes]):
        self.sim, self.frames, self.next = sim, frames, 0

    def __call__(self) -> Tuple[int, Result]:
        i = self.next
        if i == len(self.frames):
            self.sim.reset()  # amortised over len(frames) frames
            i = 0
        self.next = i + 1
        return FIRST_SPORT + i, self.sim.inject("vm1", self.frames[i])


@pytest.mark.benchmark(group=GROUP)
def test_routed_snat_new_connection(benchmark, sim, frames):
    inject = _NewConnections(sim, frames["new_connections"])
    sport, result = benchmark(inject)
    check_routed(sim, result, sport)
    # every frame since the last reset committed its own connection (two entries: DNAT zone, SNAT zone)
    assert len(sim.conntrack) == 2 * inject.next


@pytest.mark.benchmark(group=GROUP)
def test_arp_responder(benchmark, sim, frames):
    result = benchmark(sim.inject, "vm1", frames["arp_request"])
    check_arp_reply(sim, result)
