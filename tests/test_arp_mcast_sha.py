"""A router learns an ARP's multicast sender MAC (``arp.sha``), as real OVN 23.03 does (issue 11).

Verified on real OVN's data path (``tests/conformance/test_realdp_arp_mcast_sha.py``):
neither the logical flows (``lr_in_admission`` drops only a multicast
``eth.src``) nor ovn-controller's ``put_arp`` handling refuses a multicast
``arp.sha``; the binding is written and the next routed frame leaves with
the multicast MAC as ``eth.dst``.  These checks hold ovnsim to that without
OVN.
"""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether

from ovnsim.northd.stages import Drop
from ovnsim.sim import Simulator

from pipeline_helpers import lrp_mac, udp_frame

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GW_IP = "172.24.4.10"  #: reference.yaml's gateway router address on the public network
NEIGHBOUR = "172.24.4.50"
ETH_SRC = "52:54:00:00:00:50"


@pytest.fixture
def sim():
    return Simulator.from_file(os.path.join(ROOT, "topologies", "reference.yaml"))


def _arp(sim, op: int, eth_src: str, sha: str):
    gw = lrp_mac(sim, "lrp-router1-gw")
    if op == 1:
        return Ether(src=eth_src, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=sha, psrc=NEIGHBOUR, hwdst="00:00:00:00:00:00", pdst=GW_IP)
    return Ether(src=eth_src, dst=gw) / ARP(op=2, hwsrc=sha, psrc=NEIGHBOUR, hwdst=gw, pdst=GW_IP)


def _to_neighbour(sim):
    return sim.inject("vm1", udp_frame("fa:16:3e:00:00:11", lrp_mac(sim, "lrp-router1-web-v4"),
                                       "10.0.0.11", NEIGHBOUR))


@pytest.mark.parametrize("op", [1, 2], ids=["request", "reply"])
@pytest.mark.parametrize("sha", ["01:00:5e:00:00:01", "33:33:00:00:00:01", "01:00:00:00:00:01"])
def test_a_multicast_sender_mac_is_learned_and_used_as_eth_dst(sim, op, sha):
    result = sim.inject("provnet-public", _arp(sim, op, ETH_SRC, sha))
    if op == 1:
        # answered to the unicast eth.src; the multicast sha is the target hardware address
        (answer,) = [Ether(o.frame) for o in result.outputs]
        assert answer.dst == ETH_SRC and answer[ARP].op == 2 and answer[ARP].hwdst == sha
    else:
        assert result.outputs == []
    result = _to_neighbour(sim)
    (out,) = result.outputs
    pkt = Ether(out.frame)
    assert out.port == "provnet-public" and pkt.dst == sha and ARP not in pkt
    assert pkt[IP].src == GW_IP and pkt[IP].dst == NEIGHBOUR
    assert not result.drops


def test_a_multicast_eth_src_is_dropped_and_not_learned(sim):
    result = sim.inject("provnet-public", _arp(sim, 1, "01:00:5e:00:00:01", "01:00:5e:00:00:01"))
    assert result.outputs == []
    assert [(d.stage, d.reason) for d in result.drops] == [("ls_in_check_port_sec", Drop.MULTICAST_SOURCE)]
    # nothing learned: the router asks for the neighbour
    (out,) = _to_neighbour(sim).outputs
    ask = Ether(out.frame)
    assert out.port == "provnet-public" and ask[ARP].op == 1 and ask[ARP].pdst == NEIGHBOUR
