"""What real OVN does in each kind of known difference (known_differences.KINDS), asserted on
its data path alone: the reference the strict xfails are measured against, pinned so that a
change of OVN version (or of the harness) that alters it is noticed."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from conformance import conversations as cv
from conformance.known_differences import KINDS, KNOWN
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.testing.realdp import RealDatapath

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def real():
    RealDatapath.skip_unless_available()
    harnesses = {}

    def get(name):
        if name not in harnesses:
            topo = load_topology(os.path.join(ROOT, "topologies", f"{name}.yaml"))
            logical = compile_topology(topo)
            dp = RealDatapath().start()
            harnesses[name] = (topo, logical, dp)
            dp.load(logical)
        topo, logical, dp = harnesses[name]
        dp.reset()
        hosts = cv.make_hosts(topo, logical)
        convs = {c.name: c for c in cv.conversations(topo, logical, hosts)}
        return lambda conv: cv.run(convs[conv], hosts, lambda p, f: dp.inject(p, f).outputs)

    try:
        yield get
    finally:
        for _, _, dp in harnesses.values():
            dp.stop()


def test_every_known_conversation_has_a_kind():
    assert set(KNOWN.values()) == set(KINDS)


def test_router_tcp_reset_is_rst_ack_with_ack_seq_plus_one(real):
    steps = real("reference")("vm1-tcp-gateway")
    syn = Ether(steps[-1].frame)
    (rst,) = [Ether(f) for f in steps[-1].outputs["vm1"]]
    assert str(rst[TCP].flags) == "RA"
    assert rst[TCP].ack == syn[TCP].seq + 1 and rst[TCP].seq == 0
    assert rst[IP].ttl == 62  # built with 64, routed back through the router (63), one more hop


def test_lldp_from_a_port_with_port_security_is_dropped(real):
    (step,) = real("reference")("vm1-lldp")
    assert step.outputs == {}


def test_the_reply_of_a_connection_from_outside_to_a_fixed_address_is_not_snated(real):
    steps = real("reference")("provnet-public-tcp-fixed-vm1")
    synack = [Ether(f) for s in steps for f in s.outputs.get("provnet-public", [])
              if TCP in Ether(f) and str(Ether(f)[TCP].flags) == "SA"]
    assert synack and synack[0][IP].src == "10.0.0.11"


@pytest.mark.parametrize("topology, vm, leaves_as", [
    # a gateway router commits the request in its DNAT zone (lr_out_post_undnat: ct.new => ct_commit),
    # so the reply is ct.rpl there and its (!ct.trk || !ct.rpl) SNAT flows skip it
    ("reference", "vm1", "10.0.0.11"),
    # a distributed gateway port's SNAT flows have no such condition: the UDP reply opens
    # a SNAT connection (a SYN-ACK could not) and leaves as the router's address
    ("dhcp-metadata", "web1", "172.24.4.60"),
])
def test_the_reply_of_a_udp_exchange_from_outside_to_a_fixed_address(real, topology, vm, leaves_as):
    steps = real(topology)(f"provnet-public-udp-fixed-{vm}")
    replies = [Ether(f) for s in steps for f in s.outputs.get("provnet-public", [])
               if UDP in Ether(f) and Ether(f)[UDP].sport == 53]
    assert replies and replies[0][IP].src == leaves_as


def test_a_packet_waiting_for_arp_is_sent_after_the_reply(real):
    steps = real("multi-router")("web1-icmp-outside")
    kinds = [(s.port, Ether(s.frame).lastlayer().name) for s in steps]
    # web1's ARP, web1's echo request (router ARPs upstream), the upstream ARP reply
    # releases the held request, the echo reply comes back to web1
    released = steps[2].outputs["provnet-upstream"]
    assert ICMP in Ether(released[0]) and Ether(released[0])[IP].src == "203.0.113.100", kinds
    assert ICMP in Ether(steps[-1].outputs["web1"][0])


def test_hairpin_reply_through_the_snat_address_comes_back_on_a_dgp_router(real):
    steps = real("dgp")("web2-icmp-fip-web1")
    reply = Ether(steps[-1].outputs["web2"][0])
    assert reply[ICMP].type == 0 and reply[IP].src == "172.24.4.150" and reply[IP].dst == "10.1.0.12"
