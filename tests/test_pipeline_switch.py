"""The logical switch pipeline (OVN-NOTES section 1): port security, ARP responder, L2 lookup, flooding.

One small topology, built in code::

    public 172.24.4.0/24: provnet-public (localnet), ext1 (a VM port added to the
                          provider network in the northbound model), r1's gateway port
    web 10.0.0.0/24:      vm1, vm2 (allowed address pairs), open1 (no port security), r1
    db  10.0.1.0/24:      db1, db2 (no port takes unknown addresses), r1
    lab 10.0.2.0/24:      lab1, down1 (admin_state_up false); no router

r1 has a distributed gateway port (172.24.4.10, no SNAT) and a floating IP
172.24.4.100 for vm1.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption_Router_Alert, fragment
from scapy.layers.l2 import ARP, Dot1Q, Ether

from ovnsim.neutron.builder import TopologyBuilder
from ovnsim.neutron.compiler import compile_topology
from ovnsim.nb.model import LogicalSwitchPort
from ovnsim.sim import Simulator
from ovnsim.northd.stages import Drop

from pipeline_helpers import (
    BCAST,
    UPSTREAM_IP,
    UPSTREAM_MAC,
    arp_request,
    assert_dropped,
    drops_of,
    lrp_mac,
    only_output,
    outputs_by_port,
    udp_frame,
    wire,
    with_switch_port,
)

VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
VM2_MAC, VM2_IP = "fa:16:3e:00:00:12", "10.0.0.12"
VM2_VIP = "10.0.0.100"  # allowed address pair with vm2's own MAC
VRRP_MAC, VRRP_IP = "00:00:5e:00:01:33", "10.0.0.101"  # allowed address pair with its own MAC
OPEN1_MAC, OPEN1_IP = "fa:16:3e:00:00:13", "10.0.0.13"
DB1_MAC, DB1_IP = "fa:16:3e:00:01:21", "10.0.1.21"
DB2_MAC, DB2_IP = "fa:16:3e:00:01:22", "10.0.1.22"
LAB1_MAC, LAB1_IP = "fa:16:3e:00:02:11", "10.0.2.11"
DOWN1_MAC, DOWN1_IP = "fa:16:3e:00:02:12", "10.0.2.12"
EXT1_MAC, EXT1_IP = "fa:16:3e:00:04:05", "172.24.4.5"
GW_IP = "172.24.4.10"
FIP = "172.24.4.100"
STRANGER_MAC = "02:00:00:00:00:77"  # nobody's


@pytest.fixture(scope="module")
def logical():
    b = TopologyBuilder("switch-tests")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip=UPSTREAM_IP, gateway_mac=UPSTREAM_MAC,
                       physical_network="physnet1")
    p = b.project("demo")
    p.network("web", cidr="10.0.0.0/24")
    p.network("db", cidr="10.0.1.0/24")
    p.network("lab", cidr="10.0.2.0/24")
    p.port("vm1", "web", ip=VM1_IP, mac_address=VM1_MAC)
    p.port("vm2", "web", ip=VM2_IP, mac_address=VM2_MAC,
           allowed_address_pairs=[{"ip_address": VM2_VIP}, {"ip_address": VRRP_IP, "mac_address": VRRP_MAC}])
    p.port("open1", "web", ip=OPEN1_IP, mac_address=OPEN1_MAC, port_security=False)
    p.port("db1", "db", ip=DB1_IP, mac_address=DB1_MAC)
    p.port("db2", "db", ip=DB2_IP, mac_address=DB2_MAC)
    p.port("lab1", "lab", ip=LAB1_IP, mac_address=LAB1_MAC)
    p.port("down1", "lab", ip=DOWN1_IP, mac_address=DOWN1_MAC, admin_state_up=False)
    p.router("r1", interfaces=["web-v4", "db-v4"], gateway_model="distributed-gateway-port",
             external_gateway={"network": "public", "ip_address": GW_IP, "enable_snat": False},
             routes=[("192.168.30.0/24", DB2_IP)])
    p.floating_ip("fip-vm1", FIP, port="vm1")
    ext1 = LogicalSwitchPort("ext1", addresses=(f"{EXT1_MAC} {EXT1_IP}",), port_security=(f"{EXT1_MAC} {EXT1_IP}",))
    return with_switch_port(compile_topology(b.build()), "neutron-public", ext1)


@pytest.fixture
def sim(logical):
    return Simulator(logical)


@pytest.fixture
def web_mac(sim):
    return lrp_mac(sim, "lrp-r1-web-v4")


@pytest.fixture
def gw_mac(sim):
    return lrp_mac(sim, "lrp-r1-gw")


# -- ingress port security --------------------------------------------------------


def test_wrong_source_mac_is_dropped_by_port_security(sim):
    frame = udp_frame("fa:16:3e:00:00:99", VM2_MAC, VM1_IP, VM2_IP)
    drop = assert_dropped(sim.inject("vm1", frame), Drop.PORT_SECURITY, "ls_in_apply_port_sec")
    assert drop.datapath == "neutron-web"


def test_wrong_ipv4_source_is_dropped_by_port_security(sim):
    frame = udp_frame(VM1_MAC, VM2_MAC, "10.0.0.99", VM2_IP)
    assert_dropped(sim.inject("vm1", frame), Drop.PORT_SECURITY, "ls_in_apply_port_sec", "neutron-web")


def test_arp_with_wrong_sender_mac_is_dropped_by_port_security(sim):
    frame = arp_request("fa:16:3e:00:00:99", VM1_IP, VM2_IP, eth_src=VM1_MAC)
    assert_dropped(sim.inject("vm1", frame), Drop.PORT_SECURITY, "ls_in_apply_port_sec", "neutron-web")


def test_arp_with_wrong_sender_ip_is_dropped_by_port_security(sim):
    frame = arp_request(VM1_MAC, "10.0.0.99", VM2_IP)
    assert_dropped(sim.inject("vm1", frame), Drop.PORT_SECURITY, "ls_in_apply_port_sec", "neutron-web")


def test_allowed_address_pair_ip_is_accepted(sim):
    frame = udp_frame(VM2_MAC, VM1_MAC, VM2_VIP, VM1_IP)
    out = only_output(sim.inject("vm2", frame))
    assert out.port == "vm1" and out.kind == "packet"
    assert out.frame == bytes(frame)


def test_allowed_address_pair_with_its_own_mac_is_accepted(sim):
    frame = udp_frame(VRRP_MAC, VM1_MAC, VRRP_IP, VM1_IP)
    out = only_output(sim.inject("vm2", frame))
    assert out.port == "vm1" and out.frame == bytes(frame)


def test_allowed_address_pair_mac_does_not_carry_the_ports_fixed_ip(sim):
    # The pair's MAC has its own port_security entry: only 10.0.0.101 with it.
    frame = udp_frame(VRRP_MAC, VM1_MAC, VM2_IP, VM1_IP)
    assert_dropped(sim.inject("vm2", frame), Drop.PORT_SECURITY, "ls_in_apply_port_sec")


def test_port_without_port_security_accepts_any_source(sim):
    frame = udp_frame("02:00:00:00:00:99", VM1_MAC, "192.0.2.7", VM1_IP)
    out = only_output(sim.inject("open1", frame))
    assert out.port == "vm1" and out.frame == bytes(frame)


def test_dhcp_discover_from_unconfigured_address_passes_port_security(sim):
    frame = Ether(src=VM1_MAC, dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255", id=0) \
        / UDP(sport=68, dport=67) / (b"\x01" * 240)
    result = sim.inject("vm1", frame)
    assert set(outputs_by_port(result)) == {"vm2", "open1"}
    assert all(o.frame == bytes(frame) for o in result.outputs)
    # The router's copy: 0.0.0.0/8 source is a martian.
    assert drops_of(result) == [("neutron-r1", "lr_in_ip_input", Drop.MARTIAN)]



# An ARP that is not Ethernet/IPv4 (htype 6, ptype 0x86dd, hlen 8, plen 16):
# OVS extracts none of its fields, so OVN sees arp.op/sha/spa/tha/tpa as 0.
NON_ETHERNET_ARP = [dict(hwtype=6), dict(ptype=0x86DD), dict(hwlen=8), dict(plen=16)]


def _odd_arp(sender_mac: str, spa: str, tpa: str, **fields) -> Ether:
    return Ether(src=sender_mac, dst=BCAST) / ARP(op=1, hwsrc=sender_mac, psrc=spa, hwdst="00:00:00:00:00:00",
                                                  pdst=tpa, **fields)


@pytest.mark.parametrize("fields", NON_ETHERNET_ARP, ids=lambda f: next(iter(f)))
def test_non_ethernet_arp_from_a_port_secured_port_is_dropped(sim, fields):
    # port security checks arp.sha == the port's MAC, and arp.sha reads 0
    frame = _odd_arp(VM1_MAC, VM1_IP, VM2_IP, **fields)
    assert_dropped(sim.inject("vm1", frame), Drop.PORT_SECURITY, "ls_in_apply_port_sec", "neutron-web")


@pytest.mark.parametrize("fields", NON_ETHERNET_ARP, ids=lambda f: next(iter(f)))
def test_non_ethernet_arp_is_switched_by_its_macs_and_never_answered(sim, fields):
    # A request "for" vm2's IP and for the router's: neither the responder nor
    # the router answers (arp.op reads 0); the frame is flooded as any
    # broadcast and leaves unchanged; the router drops its copy.
    for tpa in (VM2_IP, "10.0.0.1"):
        frame = bytes(_odd_arp(OPEN1_MAC, OPEN1_IP, tpa, **fields))
        result = sim.inject("open1", frame)
        outs = outputs_by_port(result)
        assert set(outs) == {"vm1", "vm2"}
        assert all(o.kind == "packet" and o.frame == frame for o in outs.values())
        assert drops_of(result) == [("neutron-r1", "lr_in_ip_input", Drop.ARP_NOT_ANSWERED)]
        unicast = bytes(Ether(src=OPEN1_MAC, dst=VM2_MAC) / Ether(frame)[ARP])
        out = only_output(sim.inject("open1", unicast))
        assert (out.port, out.kind, out.frame) == ("vm2", "packet", unicast)

LLDP_MAC = "01:80:c2:00:00:0e"


def _lldp(src_mac: str) -> bytes:
    return bytes(Ether(src=src_mac, dst=LLDP_MAC, type=0x88CC) / (b"\x02\x07\x04" + b"\0" * 43))


def test_lldp_from_a_port_whose_port_security_lists_addresses_is_dropped(sim):
    # ovn-controller's in_port_sec flows: such a port may send ARP and IP only
    # (the port's priority-80 default drop); real OVN: test_realdp_known.py
    assert_dropped(sim.inject("vm1", _lldp(VM1_MAC)), Drop.PORT_SECURITY, "ls_in_apply_port_sec", "neutron-web")


def test_lldp_from_a_port_without_port_security_or_with_a_mac_only_is_flooded(logical):
    mac_only = "fa:16:3e:00:00:14"
    sim = Simulator(with_switch_port(logical, "neutron-web", LogicalSwitchPort(
        "mac1", addresses=(f"{mac_only} 10.0.0.14",), port_security=(mac_only,))))
    for port, mac in (("open1", OPEN1_MAC), ("mac1", mac_only)):
        result = sim.inject(port, _lldp(mac))
        outs = outputs_by_port(result)
        assert set(outs) == {"vm1", "vm2", "open1", "mac1"} - {port}, port
        assert all(o.frame == _lldp(mac) for o in outs.values())


# -- ARP responder (ls_in_arp_rsp) -------------------------------------------------


def test_arp_for_vm_ip_is_answered_by_the_switch(sim):
    out = only_output(sim.inject("vm1", arp_request(VM1_MAC, VM1_IP, VM2_IP)))
    assert (out.port, out.kind) == ("vm1", "arp_reply")
    assert out.packet.fields() == {
        "eth.src": VM2_MAC, "eth.dst": VM1_MAC, "arp.op": 2,
        "arp.sha": VM2_MAC, "arp.spa": VM2_IP, "arp.tha": VM1_MAC, "arp.tpa": VM1_IP}
    pkt = wire(out)
    assert (pkt[Ether].src, pkt[Ether].dst, pkt[Ether].type) == (VM2_MAC, VM1_MAC, 0x0806)
    assert (pkt[ARP].op, pkt[ARP].hwsrc, pkt[ARP].psrc, pkt[ARP].hwdst, pkt[ARP].pdst) == (
        2, VM2_MAC, VM2_IP, VM1_MAC, VM1_IP)


def test_arp_for_router_ip_is_answered_by_the_switch(sim, web_mac):
    out = only_output(sim.inject("vm1", arp_request(VM1_MAC, VM1_IP, "10.0.0.1")))
    assert (out.port, out.kind) == ("vm1", "arp_reply")
    assert out.packet.fields() == {
        "eth.src": web_mac, "eth.dst": VM1_MAC, "arp.op": 2,
        "arp.sha": web_mac, "arp.spa": "10.0.0.1", "arp.tha": VM1_MAC, "arp.tpa": VM1_IP}
    assert wire(out)[ARP].hwsrc == web_mac


def test_arp_from_the_owner_of_the_ip_is_not_answered_but_flooded(sim):
    # A duplicate address probe: vm1 asks for its own IP.
    frame = arp_request(VM1_MAC, VM1_IP, VM1_IP)
    result = sim.inject("vm1", frame)
    outs = outputs_by_port(result)
    assert set(outs) == {"vm2", "open1"}
    assert all(o.kind == "packet" and o.frame == bytes(frame) for o in outs.values())
    # The router's copy asks for an address it does not own.
    assert drops_of(result) == [("neutron-r1", "lr_in_ip_input", Drop.ARP_NOT_ANSWERED)]


def test_arp_for_an_ip_no_port_has_is_flooded(sim):
    frame = arp_request(VM1_MAC, VM1_IP, "10.0.0.77")
    result = sim.inject("vm1", frame)
    assert set(outputs_by_port(result)) == {"vm2", "open1"}
    assert all(o.kind == "packet" and o.frame == bytes(frame) for o in result.outputs)


def test_allowed_address_pair_ip_gets_no_responder_entry(sim):
    # Pairs are in port_security only, not in addresses: OVN floods the request.
    result = sim.inject("vm1", arp_request(VM1_MAC, VM1_IP, VM2_VIP))
    assert set(outputs_by_port(result)) == {"vm2", "open1"}
    assert all(o.kind == "packet" for o in result.outputs)


def test_port_with_unknown_addresses_gets_no_responder_entry(sim):
    # OVN-NOTES 9: open1 (port security off, "unknown") is not answered for.
    frame = arp_request(VM1_MAC, VM1_IP, OPEN1_IP)
    result = sim.inject("vm1", frame)
    outs = outputs_by_port(result)
    assert set(outs) == {"vm2", "open1"}
    assert outs["open1"].kind == "packet" and outs["open1"].frame == bytes(frame)
    assert not any(o.kind == "arp_reply" for o in result.outputs)


def test_arp_from_localnet_is_not_answered_by_the_switch_but_flooded(sim):
    # OVN-NOTES 0.7: ls_in_arp_rsp prio 100 inport == localnet -> next.
    frame = arp_request(UPSTREAM_MAC, UPSTREAM_IP, EXT1_IP)
    result = sim.inject("provnet-public", frame)
    out = only_output_on(result, "ext1")
    assert out.kind == "packet" and out.frame == bytes(frame)
    # The router's copy: not one of its addresses.
    assert drops_of(result) == [("neutron-r1", "lr_in_ip_input", Drop.ARP_NOT_ANSWERED)]


def test_arp_from_localnet_for_router_ip_is_answered_by_the_router_and_flooded(sim, gw_mac):
    # ls_in_l2_lkup prio 80: clone to the router port + _MC_flood_l2.
    frame = arp_request(UPSTREAM_MAC, UPSTREAM_IP, GW_IP)
    result = sim.inject("provnet-public", frame)
    outs = outputs_by_port(result)
    assert set(outs) == {"provnet-public", "ext1"} and not result.drops
    reply = outs["provnet-public"]
    assert reply.kind == "arp_reply"
    assert reply.packet.fields() == {
        "eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "arp.op": 2,
        "arp.sha": gw_mac, "arp.spa": GW_IP, "arp.tha": UPSTREAM_MAC, "arp.tpa": UPSTREAM_IP}
    wire(reply)
    assert outs["ext1"].kind == "packet" and outs["ext1"].frame == bytes(frame)


def test_arp_for_nat_ip_is_answered_by_the_router_and_flooded_to_non_router_ports(sim, gw_mac):
    # NAT addresses are not in the switch's responder: the request from a VM
    # is cloned to the router (which answers) and flooded to _MC_flood_l2.
    frame = arp_request(EXT1_MAC, EXT1_IP, FIP)
    result = sim.inject("ext1", frame)
    outs = outputs_by_port(result)
    assert set(outs) == {"ext1", "provnet-public"} and not result.drops
    reply = outs["ext1"]
    assert reply.kind == "arp_reply"
    assert reply.packet.fields() == {
        "eth.src": gw_mac, "eth.dst": EXT1_MAC, "arp.op": 2,
        "arp.sha": gw_mac, "arp.spa": FIP, "arp.tha": EXT1_MAC, "arp.tpa": EXT1_IP}
    wire(reply)
    assert outs["provnet-public"].kind == "packet" and outs["provnet-public"].frame == bytes(frame)


# -- L2 lookup and flooding ---------------------------------------------------------


def test_known_unicast_goes_to_the_port_unchanged(sim):
    frame = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP)
    out = only_output(sim.inject("vm1", frame))
    assert (out.port, out.kind) == ("vm2", "packet")
    assert out.frame == bytes(frame)
    assert out.packet.fields() == {"eth.src": VM1_MAC, "eth.dst": VM2_MAC, "ip4.src": VM1_IP, "ip4.dst": VM2_IP,
                                   "ip.ttl": 64, "udp.src": 40000, "udp.dst": 53}


def test_unicast_back_to_its_own_port_is_dropped(sim):
    # outport == inport without flags.loopback: OVS does not send a frame back out its in-port.
    frame = udp_frame(VM1_MAC, VM1_MAC, VM1_IP, VM1_IP)
    assert_dropped(sim.inject("vm1", frame), Drop.SAME_PORT, "ls_in_l2_lkup", "neutron-web")


def test_frame_to_an_allowed_address_pair_mac_goes_to_its_port(sim):
    frame = udp_frame(VM1_MAC, VRRP_MAC, VM1_IP, VRRP_IP)
    out = only_output(sim.inject("vm1", frame))
    assert out.port == "vm2" and out.frame == bytes(frame)


def test_broadcast_is_flooded_but_never_back_to_the_inport(sim):
    frame = udp_frame(VM1_MAC, BCAST, VM1_IP, "255.255.255.255", dport=9999)
    result = sim.inject("vm1", frame)
    outs = outputs_by_port(result)
    assert set(outs) == {"vm2", "open1"}
    assert all(o.frame == bytes(frame) for o in outs.values())
    # The router port gets a copy too (_MC_flood), which the router drops.
    assert drops_of(result) == [("neutron-r1", "lr_in_ip_input", Drop.BROADCAST)]


def test_ip_multicast_is_flooded_and_the_router_drops_its_copy(sim):
    frame = udp_frame(VM1_MAC, "01:00:5e:00:00:fb", VM1_IP, "224.0.0.251", sport=5353, dport=5353)
    result = sim.inject("vm1", frame)
    assert set(outputs_by_port(result)) == {"vm2", "open1"}
    assert all(o.frame == bytes(frame) for o in result.outputs)
    assert drops_of(result) == [("neutron-r1", "lr_in_ip_input", Drop.MULTICAST)]


def test_unknown_unicast_goes_to_ports_with_unknown_addresses(sim):
    frame = udp_frame(VM1_MAC, STRANGER_MAC, VM1_IP, "10.0.0.77")
    out = only_output(sim.inject("vm1", frame))
    assert (out.port, out.kind) == ("open1", "packet")
    assert out.frame == bytes(frame)


def test_unknown_unicast_goes_to_the_localnet_port(sim):
    frame = udp_frame(EXT1_MAC, STRANGER_MAC, EXT1_IP, "172.24.4.77")
    out = only_output(sim.inject("ext1", frame))
    assert out.port == "provnet-public" and out.frame == bytes(frame)


def test_unknown_unicast_without_unknown_ports_is_dropped(sim):
    frame = udp_frame(DB1_MAC, STRANGER_MAC, DB1_IP, "10.0.1.77")
    assert_dropped(sim.inject("db1", frame), Drop.UNKNOWN_DESTINATION, "ls_in_l2_unknown", "neutron-db")


# -- the frame itself: a switch changes nothing ---------------------------------------
# OVN-NOTES 3 "known unicast": output("vm12"), no change.


def test_switching_keeps_ip_identification_and_dont_fragment(sim):
    frame = Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, id=777, flags="DF") \
        / UDP(sport=1000, dport=2000) / b"data"
    out = only_output(sim.inject("vm1", frame))
    assert out.frame == bytes(frame)


def test_switching_keeps_a_later_fragment_unchanged(sim):
    frame = Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, id=0, frag=6, proto=17) \
        / b"fragment data, no UDP header here"
    out = only_output(sim.inject("vm1", frame))
    assert out.frame == bytes(frame)


def test_switching_keeps_a_first_fragment_unchanged(sim):
    whole = IP(src=VM1_IP, dst=VM2_IP, id=0) / UDP(sport=1000, dport=2000) / (b"x" * 100)
    first = fragment(whole, fragsize=48)[0]
    frame = Ether(src=VM1_MAC, dst=VM2_MAC) / first
    out = only_output(sim.inject("vm1", frame))
    assert out.frame == bytes(frame)


def test_switching_keeps_a_zero_udp_checksum(sim):
    frame = Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, id=0) \
        / UDP(sport=1000, dport=2000, chksum=0) / b"data"
    out = only_output(sim.inject("vm1", frame))
    assert out.frame == bytes(frame)


def test_switching_keeps_an_unknown_ethertype_payload(sim):
    # (from open1: a port whose port security lists addresses sends ARP and IP only)
    frame = Ether(src=OPEN1_MAC, dst=VM2_MAC, type=0x88B5) / (b"\x01\x02local experimental ethertype" * 2)
    out = only_output(sim.inject("open1", frame))
    assert out.frame == bytes(frame)


def test_switching_keeps_ip_options_and_tos(sim):
    frame = Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, id=0, tos=0xB8,
                                                options=IPOption_Router_Alert()) \
        / UDP(sport=1000, dport=2000) / b"data"
    out = only_output(sim.inject("vm1", frame))
    assert out.frame == bytes(frame)



def test_switching_leaves_a_checksum_of_ffff_as_it_is(sim):
    # Nothing a checksum covers changes, so no checksum is touched: an
    # incremental update over unchanged words would turn 0xffff into 0x0000.
    frame = bytearray(bytes(Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, id=0)
                            / ICMP(type=8, id=1, seq=1) / b"ping"))
    frame[24:26] = b"\xff\xff"  # IPv4 header checksum
    frame[36:38] = b"\xff\xff"  # ICMP checksum
    out = only_output(sim.inject("vm1", bytes(frame)))
    assert out.frame == bytes(frame)

# -- egress port security -------------------------------------------------------------


def test_routed_frame_to_vm_whose_ip_it_is_not_is_dropped_by_egress_port_security(sim, web_mac):
    # The static route 192.168.30.0/24 via db2 (port-secured) cannot work.
    frame = udp_frame(VM1_MAC, web_mac, VM1_IP, "192.168.30.5")
    assert_dropped(sim.inject("vm1", frame), Drop.EGRESS_PORT_SECURITY, "ls_out_apply_port_sec", "neutron-db")


def test_unicast_to_vm_mac_with_a_foreign_ip_is_dropped_by_egress_port_security(sim):
    frame = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, "10.0.0.99")
    assert_dropped(sim.inject("vm1", frame), Drop.EGRESS_PORT_SECURITY, "ls_out_apply_port_sec", "neutron-web")


def test_egress_port_security_checks_the_entry_of_the_destination_mac(sim):
    # vm2's own IP is not allowed with the pair's MAC.
    frame = udp_frame(VM1_MAC, VRRP_MAC, VM1_IP, VM2_IP)
    assert_dropped(sim.inject("vm1", frame), Drop.EGRESS_PORT_SECURITY, "ls_out_apply_port_sec", "neutron-web")


def test_multicast_skips_egress_port_security(sim):
    # eth.mcast -> ls_out_check_port_sec prio 100 next: the foreign unicast
    # ip4.dst inside a broadcast frame does not matter.
    frame = udp_frame(VM1_MAC, BCAST, VM1_IP, "10.0.0.99", dport=9999)
    result = sim.inject("vm1", frame)
    outs = outputs_by_port(result)
    assert set(outs) == {"vm2", "open1"}
    assert outs["vm2"].frame == bytes(frame)


# -- frames a switch never takes ------------------------------------------------------


@pytest.mark.parametrize("tpids", [(0x8100,), (0x88A8,), (0x88A8, 0x8100), (0x8100, 0x8100)],
                         ids=["802.1Q", "802.1ad", "802.1ad+802.1Q", "802.1Q+802.1Q"])
def test_vlan_tagged_frame_is_dropped(sim, tpids):
    # OVS's vlan.present is set by an 802.1Q or an 802.1ad outer tag, stacked or not.
    tags = Ether(src=VM1_MAC, dst=VM2_MAC, type=tpids[0])
    for i, _ in enumerate(tpids):
        tags = tags / Dot1Q(vlan=10 + i, type=tpids[i + 1] if i + 1 < len(tpids) else 0x0800)
    frame = tags / IP(src=VM1_IP, dst=VM2_IP) / UDP(sport=1, dport=2)
    assert_dropped(sim.inject("vm1", frame), Drop.VLAN_TAGGED, "ls_in_check_port_sec", "neutron-web")


def test_vlan_tagged_frame_from_a_port_without_port_security_is_dropped(sim):
    frame = Ether(src=OPEN1_MAC, dst=BCAST, type=0x88A8) / Dot1Q(vlan=10) / b"anything"
    assert_dropped(sim.inject("open1", frame), Drop.VLAN_TAGGED, "ls_in_check_port_sec", "neutron-web")


def test_multicast_source_mac_is_dropped(sim):
    # From the port without port security, so port security is not the reason.
    frame = udp_frame("01:00:5e:00:00:01", VM1_MAC, OPEN1_IP, VM1_IP)
    assert_dropped(sim.inject("open1", frame), Drop.MULTICAST_SOURCE, "ls_in_check_port_sec", "neutron-web")


def test_frame_from_a_disabled_port_is_dropped(sim):
    frame = udp_frame(DOWN1_MAC, LAB1_MAC, DOWN1_IP, LAB1_IP)
    assert_dropped(sim.inject("down1", frame), Drop.PORT_DISABLED, "ls_in_check_port_sec", "neutron-lab")


def test_frame_to_a_disabled_port_is_dropped(sim):
    frame = udp_frame(LAB1_MAC, DOWN1_MAC, LAB1_IP, DOWN1_IP)
    assert_dropped(sim.inject("lab1", frame), Drop.PORT_DISABLED, "ls_out_check_port_sec", "neutron-lab")


def test_broadcast_reaches_every_enabled_port_and_drops_the_disabled_ones_copy(sim):
    frame = udp_frame(LAB1_MAC, BCAST, LAB1_IP, "255.255.255.255", dport=9999)
    result = sim.inject("lab1", frame)
    assert not result.outputs
    assert drops_of(result) == [("neutron-lab", "ls_out_check_port_sec", Drop.PORT_DISABLED)]


# --------------------------------------------------------------------------------------


def only_output_on(result, port):
    """The output on ``port``, which must be the only output of ``result``."""
    outs = outputs_by_port(result)
    assert set(outs) == {port}, outs
    return outs[port]
