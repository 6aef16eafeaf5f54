"""The logical router pipeline (OVN-NOTES sections 0.7 and 2): admission, ip_input, routing, ARP resolution.

Three small topologies, built in code:

``plain``: a distributed router without gateway (answers UDP/TCP to its IPs)::

    web 10.0.0.0/24: vm1, vm2, open1 (no port security)  --+-- r1
    db  10.0.1.0/24: db1, db2, hop1 (no port security)   --+   routes: 192.168.0.0/16 via 10.0.1.99 (nobody)
                                                                192.168.10.0/24 via hop1
                                                                192.168.30.0/24 via db2 (port-secured)
                                                                10.0.1.0/24 via open1 (= connected length)
                                                                10.0.1.40/32 via open1

``dgp``: r1 with a distributed gateway port 172.24.4.10 on ``public``, SNAT off.

``gwr``: the gateway-router model (r1 -> join -> gr-r1 -> public), SNAT off,
a floating IP 172.24.4.100 for vm1.

``two_routers``: projects a and b, each a network, a VM and a Neutron-style
router (distributed gateway port, SNAT) on one provider network; b has a
floating IP.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from ovnsim.neutron.builder import TopologyBuilder
from ovnsim.neutron.compiler import compile_topology
from ovnsim.sim import Simulator
from ovnsim.northd.stages import Drop

from pipeline_helpers import (
    BCAST,
    UPSTREAM_IP,
    UPSTREAM_MAC,
    ZERO_MAC,
    arp_reply,
    arp_request,
    assert_dropped,
    drops_of,
    empty_flood,
    ip_frame,
    lrp_mac,
    only_arp_answer,
    only_output,
    outputs_by_port,
    ping_frame,
    replace_switch_port,
    tcp_frame,
    udp_frame,
    wire,
)

VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
VM2_MAC, VM2_IP = "fa:16:3e:00:00:12", "10.0.0.12"
OPEN1_MAC, OPEN1_IP = "fa:16:3e:00:00:13", "10.0.0.13"
DB1_MAC, DB1_IP = "fa:16:3e:00:01:21", "10.0.1.21"
DB2_MAC, DB2_IP = "fa:16:3e:00:01:22", "10.0.1.22"
HOP1_MAC, HOP1_IP = "fa:16:3e:00:01:23", "10.0.1.23"
WEB_GW, DB_GW = "10.0.0.1", "10.0.1.1"
EXTRA_MAC = "02:00:00:00:aa:01"  # an extra address of r1's switch port on web
GW_IP, FIP = "172.24.4.10", "172.24.4.100"


def _base(name: str):
    b = TopologyBuilder(name)
    p = b.project("demo")
    p.network("web", cidr="10.0.0.0/24")
    p.network("db", cidr="10.0.1.0/24")
    p.port("vm1", "web", ip=VM1_IP, mac_address=VM1_MAC)
    p.port("vm2", "web", ip=VM2_IP, mac_address=VM2_MAC)
    p.port("open1", "web", ip=OPEN1_IP, mac_address=OPEN1_MAC, port_security=False)
    p.port("db1", "db", ip=DB1_IP, mac_address=DB1_MAC)
    p.port("db2", "db", ip=DB2_IP, mac_address=DB2_MAC)
    p.port("hop1", "db", ip=HOP1_IP, mac_address=HOP1_MAC, port_security=False)
    return b, p


@pytest.fixture(scope="module")
def plain_logical():
    b, p = _base("router-plain")
    p.router("r1", interfaces=["web-v4", "db-v4"], routes=[
        ("192.168.0.0/16", "10.0.1.99"),
        ("192.168.10.0/24", HOP1_IP),
        ("192.168.30.0/24", DB2_IP),
        ("10.0.1.0/24", OPEN1_IP),
        ("10.0.1.40/32", OPEN1_IP),
    ])
    logical = compile_topology(b.build())
    # A router-type switch port may list MACs besides "router": the switch
    # then sends frames for them to the router, whose admission refuses them.
    return replace_switch_port(logical, "r1-web-v4", addresses=("router", EXTRA_MAC))


@pytest.fixture
def plain(plain_logical):
    return Simulator(plain_logical)


@pytest.fixture(scope="module")
def dgp_topology():
    b, p = _base("router-dgp")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip=UPSTREAM_IP, gateway_mac=UPSTREAM_MAC,
                       physical_network="physnet1")
    p.router("r1", interfaces=["web-v4", "db-v4"], gateway_model="distributed-gateway-port",
             external_gateway={"network": "public", "ip_address": GW_IP, "enable_snat": False})
    return b.build()


@pytest.fixture
def dgp(dgp_topology):
    return Simulator(dgp_topology)


@pytest.fixture(scope="module")
def gwr_topology():
    b, p = _base("router-gwr")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip=UPSTREAM_IP, gateway_mac=UPSTREAM_MAC,
                       physical_network="physnet1")
    p.router("r1", interfaces=["web-v4", "db-v4"], gateway_model="gateway-router",
             external_gateway={"network": "public", "ip_address": GW_IP, "enable_snat": False})
    p.floating_ip("fip-vm1", FIP, port="vm1")
    return b.build()


@pytest.fixture
def gwr(gwr_topology):
    return Simulator(gwr_topology)


def macs(sim):
    """(web port MAC, db port MAC) of r1."""
    return lrp_mac(sim, "lrp-r1-web-v4"), lrp_mac(sim, "lrp-r1-db-v4")


# -- lr_in_admission -------------------------------------------------------------------


def test_frame_to_a_mac_that_is_not_the_router_ports_is_refused_by_admission(plain):
    frame = udp_frame(VM1_MAC, EXTRA_MAC, VM1_IP, DB1_IP)
    assert_dropped(plain.inject("vm1", frame), Drop.ADMISSION, "lr_in_admission", "neutron-r1")


# -- lr_in_ip_input: ARP -------------------------------------------------------------------


def test_router_answers_arp_for_its_port_ip_from_the_ports_subnet(gwr):
    gw_mac = lrp_mac(gwr, "lrp-r1-gw")
    out = only_arp_answer(gwr.inject("provnet-public", arp_request(UPSTREAM_MAC, UPSTREAM_IP, GW_IP)), "neutron-public")
    assert (out.port, out.kind) == ("provnet-public", "arp_reply")
    assert out.packet.fields() == {
        "eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "arp.op": 2,
        "arp.sha": gw_mac, "arp.spa": GW_IP, "arp.tha": UPSTREAM_MAC, "arp.tpa": UPSTREAM_IP}
    pkt = wire(out)
    assert (pkt[ARP].op, pkt[ARP].hwsrc, pkt[ARP].psrc) == (2, gw_mac, GW_IP)


def test_router_does_not_answer_arp_for_its_port_ip_from_another_subnet(gwr):
    # lr_in_ip_input prio 90 needs arp.spa in the port's subnet.
    result = gwr.inject("provnet-public", arp_request(UPSTREAM_MAC, "192.0.2.1", GW_IP))
    assert not result.outputs
    assert drops_of(result) == sorted([("gr-r1", "lr_in_ip_input", Drop.ARP_NOT_ANSWERED),
                                       empty_flood("neutron-public")])


def test_router_answers_arp_for_a_nat_ip_from_any_sender(gwr):
    gw_mac = lrp_mac(gwr, "lrp-r1-gw")
    out = only_arp_answer(gwr.inject("provnet-public", arp_request(UPSTREAM_MAC, "192.0.2.1", FIP)), "neutron-public")
    assert (out.port, out.kind) == ("provnet-public", "arp_reply")
    assert out.packet.fields() == {
        "eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "arp.op": 2,
        "arp.sha": gw_mac, "arp.spa": FIP, "arp.tha": UPSTREAM_MAC, "arp.tpa": "192.0.2.1"}
    wire(out)


def test_router_learns_next_hop_mac_from_an_arp_reply(plain):
    web_mac, db_mac = macs(plain)
    # hop1 (no port security) answers for 10.0.1.77; the router consumes the reply.
    result = plain.inject("hop1", arp_reply(HOP1_MAC, "10.0.1.77", db_mac, DB_GW))
    assert_dropped(result, Drop.ARP_NOT_ANSWERED, "lr_in_ip_input", "neutron-r1")
    out = only_output(plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "10.0.1.77")))
    assert (out.port, out.kind) == ("hop1", "packet")
    assert out.packet.fields()["eth.dst"] == HOP1_MAC


def test_router_learns_from_an_arp_request_for_its_own_ip(dgp):
    web_mac, gw_mac = lrp_mac(dgp, "lrp-r1-web-v4"), lrp_mac(dgp, "lrp-r1-gw")
    result = dgp.inject("provnet-public", arp_request("52:54:00:00:00:77", "172.24.4.77", GW_IP))
    assert only_arp_answer(result, "neutron-public").packet.fields()["eth.src"] == gw_mac
    out = only_output(dgp.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "172.24.4.77")))
    assert (out.port, out.kind) == ("provnet-public", "packet")
    assert out.packet.fields()["eth.dst"] == "52:54:00:00:00:77"


def test_neutron_router_does_not_learn_from_arp_requests_for_other_hosts(dgp):
    # Neutron sets options:always_learn_from_arp_request=false; then (ovn-nb(5))
    # a request for an address that is not the router's creates no binding.
    assert dgp.logical.router("neutron-r1").options.get("always_learn_from_arp_request") == "false"
    web_mac = lrp_mac(dgp, "lrp-r1-web-v4")
    dgp.inject("provnet-public", arp_request("52:54:00:00:00:77", "172.24.4.77", "172.24.4.99"))
    out = only_output(dgp.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "172.24.4.77")))
    assert (out.port, out.kind) == ("provnet-public", "arp")


def test_neutron_router_refreshes_an_existing_binding_from_any_arp_request(dgp):
    # ... but it does update a binding that exists (lookup_arp_ip(inport, arp.spa)).
    web_mac, gw_mac = lrp_mac(dgp, "lrp-r1-web-v4"), lrp_mac(dgp, "lrp-r1-gw")
    dgp.inject("provnet-public", arp_reply("52:54:00:00:00:77", "172.24.4.77", gw_mac, GW_IP))
    dgp.inject("provnet-public", arp_request("52:54:00:00:00:78", "172.24.4.77", "172.24.4.99"))
    out = only_output(dgp.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "172.24.4.77")))
    assert (out.port, out.kind) == ("provnet-public", "packet")
    assert out.packet.fields()["eth.dst"] == "52:54:00:00:00:78"


def test_router_without_the_option_learns_from_any_arp_request_on_its_subnet(plain):
    # always_learn_from_arp_request defaults to true: a request for another
    # host (flooded, the router gets a copy) is enough.
    assert "always_learn_from_arp_request" not in plain.logical.router("neutron-r1").options
    web_mac, _ = macs(plain)
    result = plain.inject("hop1", arp_request(HOP1_MAC, "10.0.1.77", "10.0.1.99"))
    assert ("neutron-r1", "lr_in_ip_input", Drop.ARP_NOT_ANSWERED) in drops_of(result)
    out = only_output(plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "10.0.1.77")))
    assert (out.port, out.kind) == ("hop1", "packet")
    assert out.packet.fields()["eth.dst"] == HOP1_MAC


# -- lr_in_ip_input: ICMP echo -----------------------------------------------------------------


def test_router_answers_ping_to_its_port_ip(plain):
    web_mac, _ = macs(plain)
    frame = ping_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW, ident=0x4242, seq=7)
    out = only_output(plain.inject("vm1", frame))
    assert (out.port, out.kind) == ("vm1", "echo_reply")
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": WEB_GW, "ip4.dst": VM1_IP,
                                   "ip.ttl": 254, "icmp4.type": 0, "icmp4.code": 0}
    pkt = wire(out)
    assert (pkt[ICMP].type, pkt[ICMP].id, pkt[ICMP].seq) == (0, 0x4242, 7)
    assert bytes(pkt[ICMP].payload) == bytes(frame[ICMP].payload)


def test_router_answers_ping_to_the_ip_of_another_of_its_ports(plain):
    web_mac, _ = macs(plain)
    out = only_output(plain.inject("vm1", ping_frame(VM1_MAC, web_mac, VM1_IP, DB_GW)))
    assert (out.port, out.kind) == ("vm1", "echo_reply")
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": DB_GW, "ip4.dst": VM1_IP,
                                   "ip.ttl": 254, "icmp4.type": 0, "icmp4.code": 0}
    wire(out)


def test_router_with_gateway_port_answers_ping_to_its_gateway_ip(dgp):
    web_mac, _ = macs(dgp)
    out = only_output(dgp.inject("vm1", ping_frame(VM1_MAC, web_mac, VM1_IP, GW_IP)))
    assert (out.port, out.kind) == ("vm1", "echo_reply")
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": GW_IP, "ip4.dst": VM1_IP,
                                   "ip.ttl": 254, "icmp4.type": 0, "icmp4.code": 0}
    wire(out)


# -- lr_in_ip_input: TTL -------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [1, 0])
def test_ttl_expiry_sends_time_exceeded_from_the_inport_ip(plain, ttl):
    web_mac, _ = macs(plain)
    frame = udp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, ttl=ttl)
    out = only_output(plain.inject("vm1", frame))
    assert (out.port, out.kind) == ("vm1", "icmp4")
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": WEB_GW, "ip4.dst": VM1_IP,
                                   "ip.ttl": 254, "icmp4.type": 11, "icmp4.code": 0}
    pkt = wire(out)
    assert pkt[IP].proto == 1 and (pkt[ICMP].type, pkt[ICMP].code) == (11, 0)
    # unused word, then the original IP header and (at least) the first 8 bytes after it
    assert bytes(pkt[ICMP])[4:8] == b"\0\0\0\0"
    assert quoted(pkt)[:28] == bytes(frame[IP])[:28]


def test_ttl_expiry_on_a_distributed_gateway_port_comes_from_the_original_destination(dgp):
    # lr_in_ip_input prio 31 on a DGP: ip4.dst <-> ip4.src.
    gw_mac = lrp_mac(dgp, "lrp-r1-gw")
    frame = tcp_frame(UPSTREAM_MAC, gw_mac, "8.8.8.8", VM1_IP, sport=443, dport=40000, ttl=1)
    out = only_output(dgp.inject("provnet-public", frame))
    assert (out.port, out.kind) == ("provnet-public", "icmp4")
    assert out.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": VM1_IP,
                                   "ip4.dst": "8.8.8.8", "ip.ttl": 254, "icmp4.type": 11, "icmp4.code": 0}
    pkt = wire(out)
    assert quoted(pkt)[:28] == bytes(frame[IP])[:28]


def test_ping_to_the_router_with_ttl_1_is_answered(plain):
    # prio 90 (echo reply) comes before prio 31 (TTL expiry).
    web_mac, _ = macs(plain)
    out = only_output(plain.inject("vm1", ping_frame(VM1_MAC, web_mac, VM1_IP, DB_GW, ttl=1)))
    assert (out.port, out.kind) == ("vm1", "echo_reply")
    assert fields_of(out, "ip4.src", "ip.ttl", "icmp4.type") == (DB_GW, 254, 0)


def test_udp_to_the_router_with_ttl_1_gets_port_unreachable(plain):
    # prio 80 comes before prio 31.
    web_mac, _ = macs(plain)
    out = only_output(plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW, ttl=1)))
    assert out.kind == "icmp4" and fields_of(out, "icmp4.type", "icmp4.code") == (3, 3)


def test_time_exceeded_quotes_as_much_of_the_datagram_as_fits(plain):
    # ovn-controller's pinctrl_handle_icmp quotes the datagram up to 576 bytes
    # of ICMP error (RFC 1812 4.3.2.3).  From the pinctrl source, not
    # OVN-NOTES (which lists the ICMP error payload as not verified).
    web_mac, _ = macs(plain)
    frame = ip_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, UDP(sport=1, dport=2) / (b"z" * 100), ttl=1)
    pkt = wire(only_output(plain.inject("vm1", frame)))
    assert quoted(pkt) == bytes(frame[IP])


def test_time_exceeded_quotes_at_most_576_bytes_of_icmp_error(plain):
    web_mac, _ = macs(plain)
    frame = ip_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, UDP(sport=1, dport=2) / (b"z" * 1200), ttl=1)
    out = only_output(plain.inject("vm1", frame))
    pkt = wire(out)
    assert len(out.frame) == 576 and pkt[IP].len == 576 - 14
    assert quoted(pkt) == bytes(frame[IP])[:576 - (14 + 20 + 8)]


def test_icmp_error_quotes_the_datagram_without_ethernet_padding(plain):
    # A 42-byte frame comes padded to 60 bytes; the IPv4 total length says
    # where the datagram ends.
    web_mac, _ = macs(plain)
    frame = bytes(udp_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW))
    assert len(frame) < 60
    pkt = wire(only_output(plain.inject("vm1", frame + b"\xee" * (60 - len(frame)))))
    assert quoted(pkt) == frame[14:]


def test_icmp_error_header_is_built_as_pinctrl_builds_it(plain):
    # pinctrl_handle_icmp: TOS of the offending packet, ID 0, DF, TTL 255
    # (then the nested actions: ip.ttl = 254 for time exceeded; the port
    # unreachable is routed back, ttl 254 on arrival), protocol 1.
    web_mac, _ = macs(plain)
    expired = ip_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, UDP(sport=1, dport=2), ttl=1)
    expired[IP].tos = 0xB8
    to_router = udp_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW)
    to_router[IP].tos = 0x02
    for frame, tos, icmp in ((expired, 0xB8, (11, 0)), (to_router, 0x02, (3, 3))):
        pkt = wire(only_output(plain.inject("vm1", frame)))
        assert (pkt[IP].tos, pkt[IP].id, int(pkt[IP].flags), pkt[IP].frag, pkt[IP].ttl, pkt[IP].proto) == (
            tos, 0, 2, 0, 254, 1)
        assert (pkt[ICMP].type, pkt[ICMP].code) == icmp and bytes(pkt[ICMP])[4:8] == bytes(4)
        assert quoted(pkt) == bytes(frame[IP])


# -- lr_in_ip_input: L4 to the router's own addresses ---------------------------------------------


def test_udp_to_plain_router_ip_gets_port_unreachable(plain):
    web_mac, _ = macs(plain)
    frame = udp_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW, sport=5555, dport=53)
    out = only_output(plain.inject("vm1", frame))
    assert (out.port, out.kind) == ("vm1", "icmp4")
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": WEB_GW, "ip4.dst": VM1_IP,
                                   "ip.ttl": 254, "icmp4.type": 3, "icmp4.code": 3}
    pkt = wire(out)
    assert quoted(pkt)[:28] == bytes(frame[IP])[:28]


def test_tcp_to_plain_router_ip_gets_a_reset(plain):
    web_mac, _ = macs(plain)
    out = only_output(plain.inject("vm1", tcp_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW, sport=40001, dport=22)))
    assert (out.port, out.kind) == ("vm1", "tcp_reset")
    got = out.packet.fields()
    assert {k: got[k] for k in ("eth.src", "eth.dst", "ip4.src", "ip4.dst", "ip.ttl")} == {
        "eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": WEB_GW, "ip4.dst": VM1_IP, "ip.ttl": 62}
    pkt = wire(out)
    assert pkt[TCP].flags.R and pkt[TCP].flags.A


def test_tcp_reset_goes_back_to_the_senders_port(plain):
    # ovn-controller's pinctrl_handle_tcp_reset writes tcp_src = the
    # segment's tp_dst and tcp_dst = its tp_src, so the RST reaches the
    # sender's socket (ovn-trace does not show this: it only applies the
    # nested actions; OVN-NOTES 3 marks it unsure).
    web_mac, _ = macs(plain)
    out = only_output(plain.inject("vm1", tcp_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW, sport=40001, dport=22)))
    pkt = wire(out)
    assert (pkt[TCP].sport, pkt[TCP].dport) == (22, 40001)
    assert fields_of(out, "tcp.src", "tcp.dst") == (22, 40001)


@pytest.mark.parametrize("flags, payload, seq_ack", [
    # OVN 23.03's pinctrl_handle_tcp_reset: seq 0, ack = the segment's seq + 1,
    # whatever its flags and payload (real OVN's bytes: tests/conformance/test_realdp_known.py)
    ("S", b"", (0, 1001)),
    ("P", b"x" * 11, (0, 1001)),
    ("A", b"", (0, 1001)),
    ("PA", b"x" * 11, (0, 1001)),
])
def test_tcp_reset_sequence_numbers_are_pinctrls(plain, flags, payload, seq_ack):
    web_mac, _ = macs(plain)
    frame = ip_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW, TCP(sport=40001, dport=22, flags=flags, seq=1000, ack=777))
    frame[TCP].remove_payload()
    frame = frame / payload if payload else frame
    pkt = wire(only_output(plain.inject("vm1", frame)))
    assert (pkt[TCP].seq, pkt[TCP].ack) == seq_ack
    # RST+ACK, window 0, urgent pointer 0, no options; TOS 0, composed with TTL 63 and routed
    assert (str(pkt[TCP].flags), pkt[TCP].window, pkt[TCP].urgptr, pkt[TCP].dataofs) == ("RA", 0, 0, 5)
    assert (pkt[IP].id, str(pkt[IP].flags), pkt[IP].len, pkt[IP].tos, pkt[IP].ttl) == (0, "DF", 40, 0, 62)


def test_tcp_reset_has_a_valid_tcp_header(plain):
    web_mac, _ = macs(plain)
    out = only_output(plain.inject("vm1", tcp_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW)))
    pkt = wire(out)
    assert pkt[TCP].dataofs == 5 and pkt[IP].len == 40


def test_other_protocol_to_plain_router_ip_gets_protocol_unreachable(plain):
    web_mac, _ = macs(plain)
    frame = ip_frame(VM1_MAC, web_mac, VM1_IP, WEB_GW, proto=47)  # GRE
    out = only_output(plain.inject("vm1", frame))
    assert (out.port, out.kind) == ("vm1", "icmp4")
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": WEB_GW, "ip4.dst": VM1_IP,
                                   "ip.ttl": 254, "icmp4.type": 3, "icmp4.code": 2}
    pkt = wire(out)
    assert quoted(pkt)[:28] == bytes(frame[IP])[:28]


@pytest.mark.parametrize("make", [udp_frame, tcp_frame], ids=["udp", "tcp"])
def test_router_with_distributed_gateway_port_silently_drops_l4_to_its_ip(dgp, make):
    web_mac, _ = macs(dgp)
    result = dgp.inject("vm1", make(VM1_MAC, web_mac, VM1_IP, WEB_GW))
    assert_dropped(result, Drop.ROUTER_ADDRESS, "lr_in_ip_input", "neutron-r1")


@pytest.mark.parametrize("make", [udp_frame, tcp_frame], ids=["udp", "tcp"])
def test_gateway_router_silently_drops_l4_to_its_ip(gwr, make):
    web_mac, _ = macs(gwr)
    # 100.64.0.2 is gr-r1's address on the join switch.
    result = gwr.inject("vm1", make(VM1_MAC, web_mac, VM1_IP, "100.64.0.2"))
    assert_dropped(result, Drop.ROUTER_ADDRESS, "lr_in_ip_input", "gr-r1")


def test_gateway_router_silently_drops_udp_to_its_gateway_ip(gwr):
    web_mac, _ = macs(gwr)
    result = gwr.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, GW_IP))
    assert_dropped(result, Drop.ROUTER_ADDRESS, "lr_in_ip_input", "gr-r1")


def test_distributed_router_of_the_gateway_router_model_answers_udp(gwr):
    # neutron-r1 itself is a plain distributed router in that model.
    web_mac, _ = macs(gwr)
    out = only_output(gwr.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, DB_GW)))
    assert out.kind == "icmp4" and fields_of(out, "ip4.src", "icmp4.type", "icmp4.code") == (DB_GW, 3, 3)


# -- lr_in_ip_routing / lr_in_arp_resolve / lr_in_arp_request ---------------------------------------


def test_routing_decrements_ttl_and_rewrites_macs(plain):
    web_mac, db_mac = macs(plain)
    frame = udp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, sport=1234, dport=5678)
    out = only_output(plain.inject("vm1", frame))
    assert (out.port, out.kind) == ("db1", "packet")
    assert out.packet.fields() == {"eth.src": db_mac, "eth.dst": DB1_MAC, "ip4.src": VM1_IP, "ip4.dst": DB1_IP,
                                   "ip.ttl": 63, "udp.src": 1234, "udp.dst": 5678}
    pkt = wire(out)
    assert pkt[IP].ttl == 63 and bytes(pkt[UDP].payload) == b"payload!"


def test_routing_tcp_keeps_the_tcp_header(plain):
    web_mac, db_mac = macs(plain)
    frame = tcp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, sport=40000, dport=443, flags="PA")
    out = only_output(plain.inject("vm1", frame))
    pkt = wire(out)
    assert out.port == "db1" and pkt[IP].ttl == 63
    assert bytes(pkt[TCP])[4:16] == bytes(frame[TCP])[4:16]  # seq, ack, offset, flags, window
    assert bytes(pkt[TCP].payload) == b"payload!"


def test_static_route_next_hop_mac_comes_from_the_ports_addresses(plain):
    web_mac, db_mac = macs(plain)
    out = only_output(plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "192.168.10.5")))
    assert (out.port, out.kind) == ("hop1", "packet")
    assert out.packet.fields() == {"eth.src": db_mac, "eth.dst": HOP1_MAC, "ip4.src": VM1_IP,
                                   "ip4.dst": "192.168.10.5", "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}
    wire(out)


def _expect_arp_requests(result, sender_mac, spa, tpa, ports):
    outs = outputs_by_port(result)
    assert set(outs) == set(ports) and not result.drops
    for out in outs.values():
        assert out.kind == "arp"
        assert out.packet.fields() == {"eth.src": sender_mac, "eth.dst": BCAST, "arp.op": 1, "arp.sha": sender_mac,
                                       "arp.spa": spa, "arp.tha": ZERO_MAC, "arp.tpa": tpa}
        pkt = wire(out)
        assert (pkt[Ether].dst, pkt[ARP].op, pkt[ARP].pdst) == (BCAST, 1, tpa)


def test_longest_prefix_wins_and_unknown_next_hop_gets_an_arp_request(plain):
    # 192.168.20.5 matches only 192.168.0.0/16 via 10.0.1.99, which no port has.
    web_mac, db_mac = macs(plain)
    result = plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "192.168.20.5"))
    _expect_arp_requests(result, db_mac, DB_GW, "10.0.1.99", ["db1", "db2", "hop1"])


def test_unknown_host_in_a_connected_subnet_gets_an_arp_request(plain):
    web_mac, db_mac = macs(plain)
    result = plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "10.0.1.77"))
    _expect_arp_requests(result, db_mac, DB_GW, "10.0.1.77", ["db1", "db2", "hop1"])


def test_connected_route_beats_static_route_of_the_same_length(plain):
    # 10.0.1.0/24 is both connected (db) and a static route via open1.
    web_mac, db_mac = macs(plain)
    out = only_output(plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, DB2_IP)))
    assert out.port == "db2" and out.packet.fields()["eth.src"] == db_mac


def test_longer_static_route_beats_connected_route(plain):
    web_mac, _ = macs(plain)
    out = only_output(plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "10.0.1.40")))
    assert out.port == "open1"
    assert fields_of(out, "eth.src", "eth.dst", "ip4.dst", "ip.ttl") == (web_mac, OPEN1_MAC, "10.0.1.40", 63)


def test_no_route_is_a_silent_drop(plain):
    web_mac, _ = macs(plain)
    result = plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "8.8.8.8"))
    assert_dropped(result, Drop.NO_ROUTE, "lr_in_ip_routing", "neutron-r1")


def test_route_via_a_port_secured_vm_is_dropped_by_its_egress_port_security(plain):
    web_mac, _ = macs(plain)
    result = plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "192.168.30.5"))
    assert_dropped(result, Drop.EGRESS_PORT_SECURITY, "ls_out_apply_port_sec", "neutron-db")


def test_routing_keeps_ip_identification_and_flags(plain):
    web_mac, _ = macs(plain)
    frame = Ether(src=VM1_MAC, dst=web_mac) / IP(src=VM1_IP, dst=DB1_IP, id=4321, flags="DF") / UDP() / b"x"
    pkt = wire(only_output(plain.inject("vm1", frame)))
    assert (pkt[IP].id, int(pkt[IP].flags)) == (4321, 2)


# -- two Neutron routers on one provider network --------------------------------------------------------
# Neutron sets options:dynamic_neigh_routers=true: a router does not know the
# other router's addresses statically and resolves them by ARP (OVN-NOTES 0.7,
# "router -> router on public").

RA_GW, RB_GW, RB_FIP = "172.24.4.10", "172.24.4.20", "172.24.4.120"
VMA_MAC, VMA_IP = "fa:16:3e:0a:00:11", "10.10.0.11"
VMB_MAC, VMB_IP = "fa:16:3e:0b:00:11", "10.20.0.11"


@pytest.fixture(scope="module")
def two_routers_topology():
    b = TopologyBuilder("two-routers")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip=UPSTREAM_IP, gateway_mac=UPSTREAM_MAC,
                       physical_network="physnet1")
    for project, net, cidr, vm, mac, ip, gw_ip in (("a", "neta", "10.10.0.0/24", "vma", VMA_MAC, VMA_IP, RA_GW),
                                                    ("b", "netb", "10.20.0.0/24", "vmb", VMB_MAC, VMB_IP, RB_GW)):
        p = b.project(project)
        p.network(net, cidr=cidr)
        p.port(vm, net, ip=ip, mac_address=mac)
        p.router(f"r{project}", interfaces=[f"{net}-v4"], gateway_model="distributed-gateway-port",
                 external_gateway={"network": "public", "ip_address": gw_ip})
    b.project("b").floating_ip("fip-vmb", RB_FIP, port="vmb")
    return b.build()


@pytest.fixture
def two_routers(two_routers_topology):
    return Simulator(two_routers_topology)


def test_router_resolves_another_routers_floating_ip_by_arp(two_routers):
    sim = two_routers
    a_mac, a_gw_mac = lrp_mac(sim, "lrp-ra-neta-v4"), lrp_mac(sim, "lrp-ra-gw")
    result = sim.inject("vma", udp_frame(VMA_MAC, a_mac, VMA_IP, RB_FIP))
    # The request is cloned to rb (which answers ra: the reply is consumed) and
    # flooded to the localnet port.
    outs = outputs_by_port(result)
    assert set(outs) == {"provnet-public", "vmb"}
    out = outs["provnet-public"]
    assert out.kind == "arp"
    assert out.packet.fields() == {"eth.src": a_gw_mac, "eth.dst": BCAST, "arp.op": 1, "arp.sha": a_gw_mac,
                                   "arp.spa": RA_GW, "arp.tha": ZERO_MAC, "arp.tpa": RB_FIP}
    assert drops_of(result) == [("neutron-ra", "lr_in_ip_input", Drop.ARP_NOT_ANSWERED)]
    # ra held the datagram (pinctrl's buffered packets); rb's reply resolved the
    # next hop and it went on, DNATed to vmb (real OVN: two-projects/
    # alpha-vm1-*-fip-beta-vm1 in tests/conformance/test_realdp_conversations.py)
    held = outs["vmb"]
    assert (held.kind, held.fields()["ip4.src"], held.fields()["ip4.dst"]) == ("packet", RA_GW, VMB_IP)


def test_after_arp_traffic_reaches_the_other_routers_floating_ip(two_routers):
    sim = two_routers
    a_mac, b_mac = lrp_mac(sim, "lrp-ra-neta-v4"), lrp_mac(sim, "lrp-rb-netb-v4")
    sim.inject("vma", udp_frame(VMA_MAC, a_mac, VMA_IP, RB_FIP))  # resolves rb's MAC
    out = only_output(sim.inject("vma", udp_frame(VMA_MAC, a_mac, VMA_IP, RB_FIP, sport=1111, dport=2222)))
    assert out.port == "vmb"
    assert out.packet.fields() == {"eth.src": b_mac, "eth.dst": VMB_MAC, "ip4.src": RA_GW, "ip4.dst": VMB_IP,
                                   "ip.ttl": 62, "udp.src": 1111, "udp.dst": 2222}
    wire(out)


def test_router_arp_request_for_an_unknown_host_is_not_sent_to_other_routers(two_routers):
    # ls_in_l2_lkup prio 75: a router's ARP request goes to _MC_flood_l2 only.
    sim = two_routers
    a_mac, a_gw_mac = lrp_mac(sim, "lrp-ra-neta-v4"), lrp_mac(sim, "lrp-ra-gw")
    result = sim.inject("vma", udp_frame(VMA_MAC, a_mac, VMA_IP, "172.24.4.77"))
    out = only_output(result)
    assert (out.port, out.kind) == ("provnet-public", "arp")
    assert fields_of(out, "eth.src", "arp.spa", "arp.tpa") == (a_gw_mac, RA_GW, "172.24.4.77")


# -- martians and multicast ------------------------------------------------------------------------------


@pytest.mark.parametrize("src,dst", [
    ("127.0.0.1", DB1_IP),          # loopback source
    ("0.1.2.3", DB1_IP),            # 0.0.0.0/8 source
    ("224.0.0.5", DB1_IP),          # multicast source
    ("255.255.255.255", DB1_IP),    # broadcast source
    (WEB_GW, DB1_IP),               # the router's own IP on the inport
    (DB_GW, DB1_IP),                # the router's own IP on another port
    ("10.0.0.255", DB1_IP),         # a connected subnet's broadcast
    (OPEN1_IP, "127.0.0.1"),        # loopback destination
    (OPEN1_IP, "0.0.0.5"),          # 0.0.0.0/8 destination
])
def test_martian_is_dropped(plain, src, dst):
    # From open1 (no port security) so that any source gets to the router.
    web_mac, _ = macs(plain)
    result = plain.inject("open1", udp_frame(OPEN1_MAC, web_mac, src, dst))
    assert_dropped(result, Drop.MARTIAN, "lr_in_ip_input", "neutron-r1")


def test_ip_multicast_to_the_router_mac_is_not_routed(plain):
    web_mac, _ = macs(plain)
    result = plain.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "239.1.1.1"))
    assert_dropped(result, Drop.MULTICAST, "lr_in_ip_input", "neutron-r1")


def test_ip_multicast_is_flooded_on_the_switch_and_dropped_by_the_router(plain):
    frame = udp_frame(VM1_MAC, "01:00:5e:00:00:05", VM1_IP, "224.0.0.5")
    result = plain.inject("vm1", frame)
    assert set(outputs_by_port(result)) == {"vm2", "open1"}
    assert drops_of(result) == [("neutron-r1", "lr_in_ip_input", Drop.MULTICAST)]


# ------------------------------------------------------------------------------------------------------------


def fields_of(output, *names):
    got = output.packet.fields()
    return tuple(got[n] for n in names)


def only_output_on(result, port):
    """The output on ``port``, which must be the only output of ``result``."""
    outs = outputs_by_port(result)
    assert set(outs) == {port}, outs
    return outs[port]


def quoted(pkt):
    """What an ICMP error carries of the offending datagram (after type, code, checksum, unused)."""
    return bytes(pkt[ICMP])[8:]
