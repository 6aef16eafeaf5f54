"""Connection tracking across frames: replies are un-NATed, unknown replies dropped, reset() forgets.

OVN-NOTES 0.2: ovn-trace cannot un-NAT, so these expectations follow real
OVN's conntrack (un-SNAT in lr_in_unsnat, un-DNAT in lr_out_undnat): the
reply to a SNATed connection reaches the VM as if sent to its own address.

Topologies: ``topologies/reference.yaml`` (gateway router: SNAT 10.0.{0,1}.0/24
-> 172.24.4.10, stateful FIP 172.24.4.100 -> vm2) and ``topologies/dgp.yaml``
(distributed gateway port: SNAT -> 172.24.4.50).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from ovnsim.neutron.loader import load_topology
from ovnsim.sim import Simulator
from ovnsim.northd.stages import Drop

from pipeline_helpers import (
    TOPOLOGIES,
    UPSTREAM_MAC,
    assert_dropped,
    lrp_mac,
    only_output,
    ping_frame,
    tcp_frame,
    udp_frame,
    wire,
)

SERVER = "8.8.8.8"


@dataclass(frozen=True)
class Model:
    """One gateway model as these tests use it: a VM behind SNAT and what routing does to it."""

    file: str
    vm: str
    vm_mac: str
    vm_ip: str
    router_port: str  #: the VM's router port (its default gateway)
    gateway_port: str
    snat_ip: str
    ttl: int  #: TTL of a frame sent with 64 once it crossed the routers
    #: where a reply to the SNAT address that matches no connection is dropped
    miss_drop: tuple
    #: conntrack entries a connection out through the SNAT takes: a gateway router also commits
    #: it, untranslated, in its DNAT zone (lr_out_post_undnat), as real OVN does
    entries: int = 1


GATEWAY_ROUTER = Model("reference.yaml", "vm1", "fa:16:3e:00:00:11", "10.0.0.11", "lrp-router1-web-v4",
                       "lrp-router1-gw", "172.24.4.10", 62,
                       ("gr-router1", "lr_in_arp_resolve", Drop.ROUTER_ADDRESS), entries=2)
DGP = Model("dgp.yaml", "web2", "fa:16:3e:01:00:12", "10.1.0.12", "lrp-router1-web-v4",
            "lrp-router1-gw", "172.24.4.50", 63,
            ("neutron-router1", "lr_in_arp_resolve", Drop.NAT_ADDRESS))


@pytest.fixture(scope="module", params=[GATEWAY_ROUTER, DGP], ids=["gateway-router", "dgp"])
def model_topology(request):
    return request.param, load_topology(str(TOPOLOGIES / request.param.file))


@pytest.fixture
def model(model_topology):
    """(the gateway model, a fresh simulator of its topology)."""
    m, topology = model_topology
    return m, Simulator(topology)


def _outbound(sim, m, make, **kw):
    return make(m.vm_mac, lrp_mac(sim, m.router_port), m.vm_ip, SERVER, **kw)


def _inbound(sim, m, make, dst=None, **kw):
    return make(UPSTREAM_MAC, lrp_mac(sim, m.gateway_port), SERVER, dst or m.snat_ip, **kw)


def _expect_at_vm(sim, m, result):
    out = only_output(result)
    assert (out.port, out.kind) == (m.vm, "packet")
    got = out.packet.fields()
    assert {k: got[k] for k in ("eth.src", "eth.dst", "ip4.src", "ip4.dst", "ip.ttl")} == {
        "eth.src": lrp_mac(sim, m.router_port), "eth.dst": m.vm_mac, "ip4.src": SERVER, "ip4.dst": m.vm_ip,
        "ip.ttl": m.ttl}
    return out


# -- replies to SNATed connections ------------------------------------------------------------------------


def test_reply_to_snated_tcp_connection_is_unsnated_to_the_vm(model):
    m, sim = model
    out = only_output(sim.inject(m.vm, _outbound(sim, m, tcp_frame, sport=40000, dport=443)))
    assert out.packet.fields()["ip4.src"] == m.snat_ip and out.packet.fields()["tcp.src"] == 40000
    reply = _expect_at_vm(sim, m, sim.inject("provnet-public", _inbound(sim, m, tcp_frame, sport=443, dport=40000,
                                                                        flags="SA")))
    assert (reply.packet.fields()["tcp.src"], reply.packet.fields()["tcp.dst"]) == (443, 40000)
    pkt = wire(reply)
    assert (pkt[IP].dst, pkt[TCP].dport, str(pkt[TCP].flags)) == (m.vm_ip, 40000, "SA")


def test_reply_to_snated_udp_connection_is_unsnated_to_the_vm(model):
    m, sim = model
    only_output(sim.inject(m.vm, _outbound(sim, m, udp_frame, sport=33000, dport=53)))
    reply = _expect_at_vm(sim, m, sim.inject("provnet-public", _inbound(sim, m, udp_frame, sport=53, dport=33000)))
    assert (reply.packet.fields()["udp.src"], reply.packet.fields()["udp.dst"]) == (53, 33000)
    assert wire(reply)[UDP].dport == 33000


def test_echo_reply_to_snated_ping_is_unsnated_to_the_vm(model):
    m, sim = model
    out = only_output(sim.inject(m.vm, _outbound(sim, m, ping_frame, ident=0x0BAD, seq=3)))
    assert out.packet.fields()["ip4.src"] == m.snat_ip and wire(out)[ICMP].id == 0x0BAD
    reply = _expect_at_vm(sim, m, sim.inject("provnet-public", _inbound(sim, m, ping_frame, ident=0x0BAD, seq=3,
                                                                        type=0)))
    assert (reply.packet.fields()["icmp4.type"], reply.packet.fields()["icmp4.code"]) == (0, 0)
    pkt = wire(reply)
    assert (pkt[ICMP].type, pkt[ICMP].id, pkt[ICMP].seq) == (0, 0x0BAD, 3)


def test_connection_state_persists_over_many_frames(model):
    m, sim = model
    for _ in range(3):
        out = only_output(sim.inject(m.vm, _outbound(sim, m, tcp_frame, sport=40000, dport=443, flags="A")))
        assert (out.packet.fields()["ip4.src"], out.packet.fields()["tcp.src"]) == (m.snat_ip, 40000)
        _expect_at_vm(sim, m, sim.inject("provnet-public", _inbound(sim, m, tcp_frame, sport=443, dport=40000,
                                                                     flags="A")))
    assert len(sim.conntrack) >= 1


# -- replies that match no connection ----------------------------------------------------------------------


def test_reply_without_connection_is_dropped(model):
    m, sim = model
    result = sim.inject("provnet-public", _inbound(sim, m, tcp_frame, sport=443, dport=40000, flags="SA"))
    datapath, stage, reason = m.miss_drop
    assert_dropped(result, reason, stage, datapath)


def test_reply_to_another_port_matches_no_connection(model):
    m, sim = model
    only_output(sim.inject(m.vm, _outbound(sim, m, tcp_frame, sport=40000, dport=443)))
    result = sim.inject("provnet-public", _inbound(sim, m, tcp_frame, sport=443, dport=40001, flags="SA"))
    datapath, stage, reason = m.miss_drop
    assert_dropped(result, reason, stage, datapath)


def test_reply_of_another_protocol_matches_no_connection(model):
    m, sim = model
    only_output(sim.inject(m.vm, _outbound(sim, m, tcp_frame, sport=40000, dport=443)))
    result = sim.inject("provnet-public", _inbound(sim, m, udp_frame, sport=443, dport=40000))
    datapath, stage, reason = m.miss_drop
    assert_dropped(result, reason, stage, datapath)


def test_reset_forgets_connections(model):
    m, sim = model
    only_output(sim.inject(m.vm, _outbound(sim, m, udp_frame, sport=33000, dport=53)))
    assert len(sim.conntrack) == m.entries
    sim.reset()
    assert len(sim.conntrack) == 0
    result = sim.inject("provnet-public", _inbound(sim, m, udp_frame, sport=53, dport=33000))
    datapath, stage, reason = m.miss_drop
    assert_dropped(result, reason, stage, datapath)


def test_simulators_do_not_share_connections(model_topology):
    m, topology = model_topology
    first, second = Simulator(topology), Simulator(topology)
    only_output(first.inject(m.vm, _outbound(first, m, udp_frame, sport=33000, dport=53)))
    result = second.inject("provnet-public", _inbound(second, m, udp_frame, sport=53, dport=33000))
    datapath, stage, reason = m.miss_drop
    assert_dropped(result, reason, stage, datapath)


# -- several connections -------------------------------------------------------------------------------------

REF_DB1 = ("db1", "fa:16:3e:00:01:21", "10.0.1.21", "lrp-router1-db-v4")


@pytest.fixture
def ref():
    return Simulator(load_topology(str(TOPOLOGIES / "reference.yaml")))


def _send_from(sim, vm, mac, ip, lrp, sport):
    out = only_output(sim.inject(vm, tcp_frame(mac, lrp_mac(sim, lrp), ip, SERVER, sport=sport, dport=443)))
    fields = out.packet.fields()
    return fields["ip4.src"], fields["tcp.src"]


def _reply_to(sim, ip, port):
    gw_mac = lrp_mac(sim, "lrp-router1-gw")
    result = sim.inject("provnet-public", tcp_frame(UPSTREAM_MAC, gw_mac, SERVER, ip, sport=443, dport=port,
                                                    flags="SA"))
    return only_output(result)


def test_two_vms_with_different_source_ports_get_their_own_replies(ref):
    m = GATEWAY_ROUTER
    t1 = _send_from(ref, m.vm, m.vm_mac, m.vm_ip, m.router_port, 40000)
    t2 = _send_from(ref, *REF_DB1, 40001)
    assert t1 == (m.snat_ip, 40000) and t2 == (m.snat_ip, 40001)
    back2 = _reply_to(ref, *t2)
    back1 = _reply_to(ref, *t1)
    assert (back1.port, back1.packet.fields()["ip4.dst"], back1.packet.fields()["tcp.dst"]) == (m.vm, m.vm_ip, 40000)
    assert (back2.port, back2.packet.fields()["ip4.dst"], back2.packet.fields()["tcp.dst"]) == ("db1", REF_DB1[2],
                                                                                                 40001)


def test_two_vms_with_the_same_source_port_get_separate_connections(ref):
    # vm1:40000 and db1:40000 to the same server would both be 172.24.4.10:40000;
    # Linux NAT (nf_nat get_unique_tuple, which OVN's ct_snat uses) gives the
    # second connection another source port, and its replies go back to it.
    m = GATEWAY_ROUTER
    t1 = _send_from(ref, m.vm, m.vm_mac, m.vm_ip, m.router_port, 40000)
    t2 = _send_from(ref, *REF_DB1, 40000)
    assert (t1, t2) == ((m.snat_ip, 40000), (m.snat_ip, 40001))
    assert len(ref.conntrack) == 2 * m.entries  # (each in gr-router1's DNAT zone too)
    back1 = _reply_to(ref, *t1)
    back2 = _reply_to(ref, *t2)
    assert (back1.port, back1.packet.fields()["ip4.dst"], back1.packet.fields()["tcp.dst"]) == (m.vm, m.vm_ip, 40000)
    assert (back2.port, back2.packet.fields()["ip4.dst"], back2.packet.fields()["tcp.dst"]) == ("db1", REF_DB1[2],
                                                                                                 40000)
    wire(back2)


@pytest.mark.parametrize("sport, expected", [(40000, 40001), (65535, 1024), (80, 81), (1023, 1), (0, 1)])
def test_snat_port_search_wraps_within_its_range(ref, sport, expected):
    # 1024-65535 for unprivileged ports; a port below 1024 stays below (1-1023).
    m = GATEWAY_ROUTER
    _send_from(ref, m.vm, m.vm_mac, m.vm_ip, m.router_port, sport)
    assert _send_from(ref, *REF_DB1, sport) == (m.snat_ip, expected)


def test_snat_port_search_skips_ports_already_taken(ref):
    m = GATEWAY_ROUTER
    _send_from(ref, m.vm, m.vm_mac, m.vm_ip, m.router_port, 40001)  # takes 40001 as it is
    _send_from(ref, m.vm, m.vm_mac, m.vm_ip, m.router_port, 40000)
    assert _send_from(ref, *REF_DB1, 40000) == (m.snat_ip, 40002)


def test_two_pings_with_the_same_id_get_separate_connections(ref):
    m = GATEWAY_ROUTER
    web_mac, gw_mac = lrp_mac(ref, m.router_port), lrp_mac(ref, "lrp-router1-gw")
    db_mac = lrp_mac(ref, REF_DB1[3])
    out1 = only_output(ref.inject("vm1", ping_frame(m.vm_mac, web_mac, m.vm_ip, SERVER, ident=7)))
    out2 = only_output(ref.inject("db1", ping_frame(REF_DB1[1], db_mac, REF_DB1[2], SERVER, ident=7)))
    assert (wire(out1)[ICMP].id, wire(out2)[ICMP].id) == (7, 8)  # the identifier, checksum updated
    back2 = only_output(ref.inject("provnet-public", ping_frame(UPSTREAM_MAC, gw_mac, SERVER, m.snat_ip, ident=8,
                                                                type=0)))
    back1 = only_output(ref.inject("provnet-public", ping_frame(UPSTREAM_MAC, gw_mac, SERVER, m.snat_ip, ident=7,
                                                                type=0)))
    assert (back1.port, back1.packet.fields()["ip4.dst"], wire(back1)[ICMP].id) == ("vm1", m.vm_ip, 7)
    assert (back2.port, back2.packet.fields()["ip4.dst"], wire(back2)[ICMP].id) == ("db1", REF_DB1[2], 7)


def test_two_pings_with_different_ids_are_separate_connections(ref):
    m = GATEWAY_ROUTER
    web_mac, gw_mac = lrp_mac(ref, m.router_port), lrp_mac(ref, "lrp-router1-gw")
    db_mac = lrp_mac(ref, REF_DB1[3])
    only_output(ref.inject("vm1", ping_frame(m.vm_mac, web_mac, m.vm_ip, SERVER, ident=1)))
    only_output(ref.inject("db1", ping_frame(REF_DB1[1], db_mac, REF_DB1[2], SERVER, ident=2)))
    back2 = only_output(ref.inject("provnet-public", ping_frame(UPSTREAM_MAC, gw_mac, SERVER, m.snat_ip, ident=2,
                                                                type=0)))
    back1 = only_output(ref.inject("provnet-public", ping_frame(UPSTREAM_MAC, gw_mac, SERVER, m.snat_ip, ident=1,
                                                                type=0)))
    assert (back1.port, back1.packet.fields()["ip4.dst"]) == ("vm1", m.vm_ip)
    assert (back2.port, back2.packet.fields()["ip4.dst"]) == ("db1", REF_DB1[2])


# -- replies to DNATed (floating IP) connections ---------------------------------------------------------------

REF_VM2 = ("vm2", "fa:16:3e:00:00:12", "10.0.0.12")
REF_FIP = "172.24.4.100"


def test_reply_to_dnated_connection_comes_from_the_floating_ip(ref):
    vm, vm_mac, vm_ip = REF_VM2
    web_mac, gw_mac = lrp_mac(ref, "lrp-router1-web-v4"), lrp_mac(ref, "lrp-router1-gw")
    inbound = only_output(ref.inject("provnet-public", tcp_frame(UPSTREAM_MAC, gw_mac, SERVER, REF_FIP,
                                                                 sport=50000, dport=22)))
    assert (inbound.port, inbound.packet.fields()["ip4.dst"]) == (vm, vm_ip)
    assert len(ref.conntrack) >= 1
    reply = only_output(ref.inject(vm, tcp_frame(vm_mac, web_mac, vm_ip, SERVER, sport=22, dport=50000, flags="SA")))
    assert reply.port == "provnet-public"
    assert reply.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": REF_FIP,
                                     "ip4.dst": SERVER, "ip.ttl": 62, "tcp.src": 22, "tcp.dst": 50000}
    wire(reply)


def test_reply_to_hairpinned_connection_is_undnated_to_the_floating_ip(ref):
    vm, vm_mac, vm_ip = REF_VM2
    web_mac = lrp_mac(ref, "lrp-router1-web-v4")
    request = only_output(ref.inject("vm1", tcp_frame("fa:16:3e:00:00:11", web_mac, "10.0.0.11", REF_FIP,
                                                      sport=40000, dport=80)))
    assert request.port == vm
    seen_src = request.packet.fields()["ip4.src"]
    reply = only_output(ref.inject(vm, tcp_frame(vm_mac, web_mac, vm_ip, seen_src, sport=80, dport=40000,
                                                 flags="SA")))
    assert reply.port == "vm1"
    got = reply.packet.fields()
    assert (got["ip4.src"], got["ip4.dst"], got["tcp.src"], got["tcp.dst"]) == (REF_FIP, "10.0.0.11", 80, 40000)


# -- ICMP errors about NATed connections ------------------------------------------------------------------


def _checksum_ok(header: bytes) -> bool:
    from oracle.packet import checksum

    return checksum(header) == 0


def _error_about(sim, m, probe: bytes, type=11, code=0, src="9.9.9.9"):
    """An ICMP error from ``src`` (a router on the way, or the server) to the SNAT address, quoting ``probe``."""
    return Ether(src=UPSTREAM_MAC, dst=lrp_mac(sim, m.gateway_port)) \
        / IP(src=src, dst=m.snat_ip) / ICMP(type=type, code=code) / probe


def test_icmp_error_about_a_snated_connection_reaches_the_vm(model):
    # Linux conntrack, which OVN's ct_snat uses, classifies an ICMP error
    # RELATED to the connection quoted in its payload and un-NATs both the
    # outer destination and the quoted header: a traceroute through SNAT works.
    m, sim = model
    sent = _outbound(sim, m, udp_frame, sport=33434, dport=33434)
    out = only_output(sim.inject(m.vm, sent))
    probe = bytes(Ether(out.frame)[IP])[:28]  # the probe as the internet saw it: IP header + UDP header
    back = only_output(sim.inject("provnet-public", _error_about(sim, m, probe)))
    assert back.port == m.vm
    got = back.packet.fields()
    assert (got["ip4.src"], got["ip4.dst"], got["icmp4.type"]) == ("9.9.9.9", m.vm_ip, 11)
    inner = wire(back)[ICMP].payload
    assert (inner.src, inner.dst, inner.sport) == (m.vm_ip, SERVER, 33434)
    # The quoted header is the VM's own again (but for the TTL the routers
    # took): its IPv4 checksum is right, the UDP header is as the VM sent it.
    quoted = bytes(wire(back)[ICMP])[8:]
    assert _checksum_ok(quoted[:20]) and quoted[8] == m.ttl
    assert quoted[20:28] == bytes(sent[UDP])[:8]


@pytest.mark.parametrize("quote", [28, 40, None], ids=["ip+8", "ip+20", "all"])
def test_port_unreachable_about_a_snated_tcp_connection_restores_the_quoted_segment(model, quote):
    m, sim = model
    sent = _outbound(sim, m, tcp_frame, sport=40000, dport=443)
    out = only_output(sim.inject(m.vm, sent))
    probe = bytes(Ether(out.frame)[IP])[:quote]
    back = only_output(sim.inject("provnet-public", _error_about(sim, m, probe, type=3, code=3, src=SERVER)))
    assert (back.port, back.packet.fields()["ip4.dst"]) == (m.vm, m.vm_ip)
    quoted = bytes(wire(back)[ICMP])[8:]
    assert quoted[12:20] == bytes(sent[IP])[12:20] and _checksum_ok(quoted[:20])
    # the TCP checksum is updated only when the whole TCP header is quoted
    original = bytes(sent[TCP])[:len(quoted) - 20]
    if len(quoted) >= 40:
        assert quoted[20:] == original
    else:
        assert quoted[20:24] == original[:4] and quoted[24:28] == original[4:8]


def test_icmp_error_about_a_snated_ping_restores_the_identifier(ref):
    # The second ping with identifier 7 went out as 8 (SNAT port search);
    # the error quoting it goes back to db1 with 7 again.
    m = GATEWAY_ROUTER
    web_mac, db_mac = lrp_mac(ref, m.router_port), lrp_mac(ref, REF_DB1[3])
    only_output(ref.inject("vm1", ping_frame(m.vm_mac, web_mac, m.vm_ip, SERVER, ident=7)))
    out = only_output(ref.inject("db1", ping_frame(REF_DB1[1], db_mac, REF_DB1[2], SERVER, ident=7)))
    probe = bytes(Ether(out.frame)[IP])
    assert wire(out)[ICMP].id == 8
    back = only_output(ref.inject("provnet-public", _error_about(ref, m, probe, type=3, code=1)))
    assert (back.port, back.packet.fields()["ip4.dst"]) == ("db1", REF_DB1[2])
    quoted = bytes(wire(back)[ICMP])[8:]
    assert (quoted[12:16], int.from_bytes(quoted[24:26], "big")) == (bytes(map(int, REF_DB1[2].split("."))), 7)
    assert _checksum_ok(quoted[:20]) and _checksum_ok(quoted[20:])  # the echo request, whole: checksum updated


def test_icmp_error_about_no_connection_is_dropped_as_a_reply_would_be(model):
    m, sim = model
    out = only_output(sim.inject(m.vm, _outbound(sim, m, udp_frame, sport=33434, dport=33434)))
    probe = bytearray(bytes(Ether(out.frame)[IP])[:28])
    probe[20:22] = (33435).to_bytes(2, "big")  # a probe nobody sent
    result = sim.inject("provnet-public", _error_about(sim, m, bytes(probe)))
    datapath, stage, reason = m.miss_drop
    assert_dropped(result, reason, stage, datapath)


def test_icmp_error_from_a_vm_about_a_dnated_connection_comes_from_the_floating_ip(ref):
    # Gateway router, stateful FIP 172.24.4.100 -> vm2: the VM's port
    # unreachable about an inbound datagram is un-DNATed in lr_out_undnat
    # (RELATED, reply direction): outer source and quoted destination are
    # the floating IP again, and lr_out_snat leaves it (ct.rpl).
    fip, vm2_mac, vm2_ip = "172.24.4.100", "fa:16:3e:00:00:12", "10.0.0.12"
    gw_mac, web_mac = lrp_mac(ref, "lrp-router1-gw"), lrp_mac(ref, "lrp-router1-web-v4")
    inbound = only_output(ref.inject("provnet-public", udp_frame(UPSTREAM_MAC, gw_mac, SERVER, fip, sport=5000,
                                                                 dport=9)))
    assert (inbound.port, inbound.packet.fields()["ip4.dst"]) == ("vm2", vm2_ip)
    error = Ether(src=vm2_mac, dst=web_mac) / IP(src=vm2_ip, dst=SERVER) / ICMP(type=3, code=3) \
        / bytes(Ether(inbound.frame)[IP])
    out = only_output(ref.inject("vm2", error))
    assert out.port == "provnet-public"
    got = out.packet.fields()
    assert (got["ip4.src"], got["ip4.dst"], got["icmp4.type"]) == (fip, SERVER, 3)
    inner = wire(out)[ICMP].payload
    assert (inner.src, inner.dst, inner.dport) == (SERVER, fip, 9)
    assert _checksum_ok(bytes(inner)[:20])
