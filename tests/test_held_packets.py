"""Packets held while a router resolves its next hop (ovn-controller's buffered packets).

OVN 23.03's pinctrl keeps the packet whose ``arp`` action made the ARP
request (controller/pinctrl.c: ``pinctrl_handle_buffered_packets``) and,
once a MAC binding for the next hop appears, sends it on through the
router's egress pipeline with ``eth.dst`` filled in; a next hop's queue
keeps the 3 newest packets.  Real OVN's side of this is pinned in
tests/conformance (test_realdp_known.py, and every conversation that goes
out through r-edge of multi-router).
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from ovnsim.capture.replay import replay
from ovnsim.sim import Simulator
from pipeline_helpers import TOPOLOGIES, lrp_mac

WEB1 = ("fa:16:3e:0d:00:10", "10.0.0.10")
UPSTREAM = ("52:54:00:00:00:01", "203.0.113.1")  # multi-router's upstream gateway: no gateway_mac
EDGE_IP = "203.0.113.10"  # r-edge's address on the upstream network
FIP_WEB1 = "203.0.113.100"
OUTSIDE = "198.51.100.7"


@pytest.fixture
def sim() -> Simulator:
    return Simulator.from_file(str(TOPOLOGIES / "multi-router.yaml"))


def to_outside(sim: Simulator, sport: int) -> Ether:
    return (Ether(src=WEB1[0], dst=lrp_mac(sim, "lrp-r-edge-dmz-v4")) / IP(src=WEB1[1], dst=OUTSIDE, id=sport)
            / UDP(sport=sport, dport=53) / b"query")


def arp_reply_from_upstream(edge_mac: str) -> Ether:
    return Ether(src=UPSTREAM[0], dst=edge_mac) / ARP(op=2, hwsrc=UPSTREAM[0], psrc=UPSTREAM[1],
                                                      hwdst=edge_mac, pdst=EDGE_IP)


def test_the_held_packet_leaves_when_the_arp_reply_comes(sim):
    first = sim.inject("web1", to_outside(sim, 40000), trace=True)
    [arp] = first.outputs
    assert (arp.port, arp.kind, arp.fields()["arp.tpa"]) == ("provnet-upstream", "arp", UPSTREAM[1])
    assert any(e.rule == "LR_IN_ARP_HOLD" for e in first.trace)
    assert sim.engine.held == 1
    reply = sim.inject("provnet-upstream", arp_reply_from_upstream(arp.fields()["arp.sha"]), trace=True)
    [out] = reply.outputs
    pkt = Ether(out.frame)
    # rewritten as OVN sends it: the learned MAC, SNAT to web1's floating IP, two routers' TTL
    assert (out.port, out.kind) == ("provnet-upstream", "packet")
    assert (pkt.dst, pkt.src, pkt[IP].src, pkt[IP].dst, pkt[IP].ttl) == (
        UPSTREAM[0], arp.fields()["eth.src"], FIP_WEB1, OUTSIDE, 62)
    assert bytes(pkt[UDP].payload) == b"query"
    assert [e.rule for e in reply.trace].count("LR_IN_ARP_RELEASE") == 1
    assert sim.engine.held == 0 and sim.engine.held_dropped == 0


def test_a_next_hop_keeps_the_three_newest_packets(sim):
    for sport in range(40000, 40005):
        sim.inject("web1", to_outside(sim, sport))
    assert (sim.engine.held, sim.engine.held_dropped) == (3, 2)
    edge_mac = lrp_mac(sim, "lrp-r-edge-gw")
    reply = sim.inject("provnet-upstream", arp_reply_from_upstream(edge_mac))
    assert [Ether(o.frame)[UDP].sport for o in reply.outputs] == [40002, 40003, 40004]
    # resolved now: the next one goes straight out
    [out] = sim.inject("web1", to_outside(sim, 40005)).outputs
    assert (out.kind, Ether(out.frame).dst) == ("packet", UPSTREAM[0])


def test_reset_forgets_held_packets(sim):
    sim.inject("web1", to_outside(sim, 40000))
    sim.reset()
    assert sim.engine.held == 0
    assert sim.inject("provnet-upstream", arp_reply_from_upstream(lrp_mac(sim, "lrp-r-edge-gw"))).outputs == []


def test_without_holding_the_packet_is_dropped_once_its_arp_request_left(sim):
    sim.engine.hold_packets = False
    sim.inject("web1", to_outside(sim, 40000))
    assert sim.engine.held == 0
    assert sim.inject("provnet-upstream", arp_reply_from_upstream(lrp_mac(sim, "lrp-r-edge-gw"))).outputs == []


def test_replay_counts_held_packets_apart_and_the_counts_add_up(tmp_path):
    probe = Simulator.from_file(str(TOPOLOGIES / "multi-router.yaml"))
    frames = [to_outside(probe, 40000 + k) for k in range(4)]
    capture = tmp_path / "held.pcap"
    wrpcap(str(capture), frames)
    summary = replay(TOPOLOGIES / "multi-router.yaml", capture, tmp_path / "out", auto=True)
    summary.check()
    # each frame's ARP request left on the provider network: the frames exited;
    # 3 wait for a reply that never came, 1 was pushed out of the queue
    assert (summary.frames_in, summary.exited, summary.dropped) == (4, 4, 0)
    assert (summary.held, summary.held_dropped) == (3, 1)
    assert summary.as_dict()["held"] == {"waiting": 3, "dropped": 1}
    assert "3 packets still waiting" in summary.format_text()
