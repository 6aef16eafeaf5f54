"""``sim.conntrack``: the connections as ``ovs-appctl dpctl/dump-conntrack -s`` lists them.

On ``topologies/reference.yaml`` (gr-router1 SNATs the tenant subnets to
172.24.4.10 and maps the floating IP 172.24.4.100 to vm2),
``topologies/dgp.yaml`` (a router's common zone) and
``topologies/security-groups.yaml`` (ACL zones).  Each entry's tuples are
held to the headers of the frames that went in and came out (parsed with
scapy): ``orig`` is what the packet carried when the zone committed it,
``reply`` what the replies carry, after the zone's NAT.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from ovnsim.neutron.loader import load_topology
from ovnsim.sim import ConntrackEntry, Simulator

import acl_cases
from pipeline_helpers import (TOPOLOGIES, UPSTREAM_MAC, lrp_mac, only_output, ping_frame, tcp_frame, udp_frame,
                              wire)

VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
VM2_MAC, VM2_IP = "fa:16:3e:00:00:12", "10.0.0.12"
SNAT_IP, FIP = "172.24.4.10", "172.24.4.100"
INTERNET, OUTSIDE = "8.8.8.8", "198.51.100.7"
T0 = 1_700_000_000.0  # a capture's epoch: any will do


@pytest.fixture(scope="module")
def reference():
    return load_topology(str(TOPOLOGIES / "reference.yaml"))


@pytest.fixture
def sim(reference):
    return Simulator(reference)


def by_zone(sim: Simulator) -> dict:
    """The dump keyed by (datapath, zone kind), one entry per zone; len(sim.conntrack) must count them."""
    entries = list(sim.conntrack)
    assert all(isinstance(e, ConntrackEntry) for e in entries)
    assert len(sim.conntrack) == len(entries)
    keyed = {(e.datapath, e.zone_kind): e for e in entries}
    assert len(keyed) == len(entries), f"more than one connection in a zone: {entries}"
    return keyed


def sent(frame, l4) -> tuple:
    """(src, dst, sport, dport) of a scapy frame's IPv4 and TCP/UDP headers."""
    return frame[IP].src, frame[IP].dst, frame[l4].sport, frame[l4].dport


def reversed_(t: tuple) -> tuple:
    src, dst, sport, dport = t
    return dst, src, dport, sport


def test_a_snated_connection_is_listed_in_both_zones_of_the_gateway_router(sim):
    """vm1 -> 8.8.8.8 udp: gr-router1's DNAT zone commits it plain, its SNAT zone translates it."""
    request = udp_frame(VM1_MAC, lrp_mac(sim, "lrp-router1-web-v4"), VM1_IP, INTERNET, sport=40000, dport=53)
    out = wire(only_output(sim.inject("vm1", request, time=T0)))
    assert out[IP].src == SNAT_IP
    zones = by_zone(sim)
    assert set(zones) == {("gr-router1", "dnat"), ("gr-router1", "snat")}
    snat, dnat = zones["gr-router1", "snat"], zones["gr-router1", "dnat"]
    assert snat.orig == dnat.orig == sent(request, UDP)
    assert snat.reply == reversed_(sent(out, UDP)) == (INTERNET, SNAT_IP, 53, 40000)
    assert snat.nat and not dnat.nat and dnat.reply == reversed_(dnat.orig)
    for e in zones.values():
        assert (e.proto, e.port, e.state, e.timeout_policy, e.timeout, e.mark) == ("udp", None, None, "udp_first",
                                                                                   60.0, 0)
    assert str(snat) == ("udp,orig=(src=10.0.0.11,dst=8.8.8.8,sport=40000,dport=53),"
                         f"reply=(src=8.8.8.8,dst=172.24.4.10,sport=53,dport=40000),zone={snat.zone},timeout=60")
    assert str(sim.conntrack).splitlines() == [str(e) for e in sim.conntrack]

    # The reply carries the SNAT zone's reply tuple in; vm1 gets the original's reversed.
    answer = udp_frame(UPSTREAM_MAC, lrp_mac(sim, "lrp-router1-gw"), INTERNET, SNAT_IP, sport=53, dport=40000)
    assert sent(answer, UDP) == snat.reply
    back = wire(only_output(sim.inject("provnet-public", answer, time=T0 + 10)))
    assert sent(back, UDP) == reversed_(snat.orig)
    zones = by_zone(sim)
    assert (zones["gr-router1", "snat"].orig, zones["gr-router1", "snat"].reply) == (snat.orig, snat.reply)
    # replies seen: OVS's OTHER_BIDIR state, the udp_multiple timeout, counted from the reply's time
    assert [(e.timeout_policy, e.timeout) for e in zones.values()] == [("udp_multiple", 30.0)] * 2


def test_a_floating_ip_connection_from_outside_is_dnated_in_the_dnat_zone(sim):
    syn = tcp_frame(UPSTREAM_MAC, lrp_mac(sim, "lrp-router1-gw"), OUTSIDE, FIP, sport=50000, dport=22, flags="S")
    out = wire(only_output(sim.inject("provnet-public", syn)))
    assert out[IP].dst == VM2_IP
    zones = by_zone(sim)
    assert list(zones) == [("gr-router1", "dnat")]
    dnat = zones["gr-router1", "dnat"]
    assert dnat.orig == sent(syn, TCP)
    assert dnat.reply == reversed_(sent(out, TCP)) == (VM2_IP, OUTSIDE, 22, 50000)
    assert dnat.nat and (dnat.state, dnat.timeout_policy) == ("SYN_SENT", "tcp_syn_sent")
    assert str(dnat) == ("tcp,orig=(src=198.51.100.7,dst=172.24.4.100,sport=50000,dport=22),"
                         f"reply=(src=10.0.0.12,dst=198.51.100.7,sport=22,dport=50000),zone={dnat.zone},"
                         "timeout=30,protoinfo=(state=SYN_SENT)")

    syn_ack = tcp_frame(VM2_MAC, lrp_mac(sim, "lrp-router1-web-v4"), VM2_IP, OUTSIDE, sport=22, dport=50000,
                        flags="SA")
    assert sent(syn_ack, TCP) == dnat.reply
    back = wire(only_output(sim.inject("vm2", syn_ack)))
    assert sent(back, TCP) == reversed_(dnat.orig)  # un-DNATed: from the floating IP
    zones = by_zone(sim)
    assert list(zones) == [("gr-router1", "dnat")]  # a reply: nothing committed anywhere
    # each end has sent a SYN, one ACKed: dpctl says ESTABLISHED, OVS still times it as opening
    assert (zones["gr-router1", "dnat"].state, zones["gr-router1", "dnat"].timeout_policy) == ("ESTABLISHED",
                                                                                                 "tcp_syn_recv")


def test_an_icmp_query_is_listed_by_its_identifier(sim):
    ping = ping_frame(VM1_MAC, lrp_mac(sim, "lrp-router1-web-v4"), VM1_IP, INTERNET, ident=0x0BAD)
    out = wire(only_output(sim.inject("vm1", ping)))
    snat = by_zone(sim)["gr-router1", "snat"]
    assert snat.orig == (VM1_IP, INTERNET, 0x0BAD, 0x0BAD)
    assert snat.reply == (out[IP].dst, out[IP].src, out[ICMP].id, out[ICMP].id) == (INTERNET, SNAT_IP, 0x0BAD,
                                                                                   0x0BAD)
    assert str(snat) == ("icmp,orig=(src=10.0.0.11,dst=8.8.8.8,id=2989),reply=(src=8.8.8.8,dst=172.24.4.10,id=2989),"
                         f"zone={snat.zone},timeout=60")


def test_acl_zones_are_named_by_their_switch_port():
    """web1 -> web2:80 on security-groups.yaml: committed in web1's zone (egress) and web2's (ingress)."""
    sim = Simulator(load_topology(str(acl_cases.TOPO)))
    web1, web2 = ("fa:16:3e:04:00:11", "10.4.0.11"), ("fa:16:3e:04:00:12", "10.4.0.12")
    syn = tcp_frame(web1[0], web2[0], web1[1], web2[1], sport=40000, dport=80)
    out = wire(only_output(sim.inject("web1", syn)))
    entries = list(sim.conntrack)
    assert len(sim.conntrack) == len(entries)
    assert sorted((e.datapath, e.zone_kind, e.port) for e in entries) == [("neutron-web", "acl", "web1"),
                                                                          ("neutron-web", "acl", "web2")]
    for e in entries:
        assert e.orig == sent(syn, TCP) == sent(out, TCP) and e.reply == reversed_(e.orig) and not e.nat
        assert e.state == "SYN_SENT"


def test_a_distributed_gateway_port_snats_in_the_common_zone():
    """web2 -> 8.8.8.8 on dgp.yaml: router1 SNATs it with ct_snat_in_czone (OVN: in its DNAT zone)."""
    sim = Simulator.from_file(str(TOPOLOGIES / "dgp.yaml"))
    request = udp_frame("fa:16:3e:01:00:12", lrp_mac(sim, "lrp-router1-web-v4"), "10.1.0.12", INTERNET)
    out = wire(only_output(sim.inject("web2", request)))
    zones = by_zone(sim)
    assert list(zones) == [("neutron-router1", "common")]
    common = zones["neutron-router1", "common"]
    assert common.orig == sent(request, UDP) and common.reply == reversed_(sent(out, UDP)) and common.nat
    assert common.reply.dst == "172.24.4.50"  # the router's gateway address


def test_an_expired_connection_is_not_listed_though_not_yet_swept(sim):
    """The clock passes 70 UDP flows' timeout; the frame that moves it sweeps only part of them."""
    web = lrp_mac(sim, "lrp-router1-web-v4")
    for sport in range(40000, 40070):
        only_output(sim.inject("vm1", udp_frame(VM1_MAC, web, VM1_IP, INTERNET, sport=sport), time=T0))
    assert len(sim.conntrack) == 140  # each in gr-router1's DNAT and SNAT zones
    only_output(sim.inject("vm1", udp_frame(VM1_MAC, web, VM1_IP, INTERNET, sport=50000), time=T0 + 59.5))
    left = {e.orig.sport: e.timeout for e in sim.conntrack if e.zone_kind == "snat"}
    assert left[40000] == pytest.approx(0.5) and left[50000] == 60.0
    assert str(next(e for e in sim.conntrack if e.orig.sport == 40000)).endswith(",timeout=0")

    only_output(sim.inject("vm1", udp_frame(VM1_MAC, web, VM1_IP, INTERNET, sport=50001), time=T0 + 60))
    stats = sim.engine.conntrack_stats
    assert stats["live"] > 4, "the per-frame sweep took every expired connection: nothing left to hide"
    assert sorted(e.orig.sport for e in sim.conntrack) == [50000, 50000, 50001, 50001]
    assert len(sim.conntrack) == 4
    assert sim.engine.conntrack_stats == stats  # listing removed nothing
    sim.engine.conntrack_sweep()
    assert sim.engine.conntrack_stats["live"] == len(sim.conntrack) == 4


def test_reset_empties_the_dump(sim):
    only_output(sim.inject("vm1", udp_frame(VM1_MAC, lrp_mac(sim, "lrp-router1-web-v4"), VM1_IP, INTERNET)))
    assert len(sim.conntrack) == 2
    sim.reset()
    assert len(sim.conntrack) == 0 and list(sim.conntrack) == [] and str(sim.conntrack) == ""
