"""Generate the sample captures in pcaps/ (deterministic: the committed files are exactly its output).

    python pcaps/make_pcaps.py            # rewrite every capture
    python pcaps/make_pcaps.py --check    # exit 1 if a committed capture differs from what it would write

Each capture is traffic for one example topology, with frames whose sources
let ``ovnsim replay --auto`` place them (VM MACs for tenant traffic; the
upstream router's MAC and Internet addresses for inbound traffic):

* ``reference-mixed.pcap`` (the README's example) and ``reference-mixed.pcapng``
  (the same frames as pcapng, two interfaces, a comment on every frame):
  ARP, ICMP, TCP and UDP east-west; outbound through SNAT *with the replies*
  (addressed to the SNAT IP 172.24.4.10, so a replay must bring them back
  un-SNATed to the VM); inbound to the floating IP with replies; ARP from
  upstream for the router's addresses; port-security violations; TTL
  expiry; TCP/UDP to the router; IP options, fragments, a bad checksum, a
  jumbo frame, LLDP; malformed frames (runt, truncated IP header, bad IHL,
  IPv6, VLAN-tagged, garbage).
* ``reference-cut.pcap``: ``reference-mixed.pcap`` cut short inside its last
  record, as when tcpdump is killed.
* ``reference-snaplen.pcap``: captured with snaplen 64: the larger frames are
  truncated (caplen < origlen).
* ``dhcp-metadata-mixed.pcap``: a VM's boot on ``dhcp-metadata``: DHCP
  (DISCOVER, REQUEST, a unicast renewal, a NAK, a RELEASE; DHCP off on db1),
  ARP for the metadata port and the router, cloud-init's request to
  169.254.169.254, DNS to the server DHCP gave.
* ``dgp-mixed.pcap``, ``two-projects-mixed.pcap``, ``multi-router-mixed.pcap``:
  the other example topologies (centralised and distributed floating IPs,
  overlapping tenant address plans, static routes and ARP for an unknown
  upstream MAC, a router without a default route).

Router MACs are read from the compiled topologies, so a change in how
ovnsim derives them shows up here as a diff.
"""

from __future__ import annotations

import argparse
import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Optional

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import EDecimal, PcapNgWriter, PcapWriter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from ovnsim.neutron.compiler import compile_topology  # noqa: E402
from ovnsim.neutron.loader import load_topology  # noqa: E402

#: Capture time of the first frame of every capture; frames are 1 ms apart.
EPOCH = 1_700_000_000
BROADCAST = "ff:ff:ff:ff:ff:ff"
UPSTREAM_MAC = "52:54:00:c0:ff:ee"  # public-v4's gateway_mac (reference, dgp, two-projects)
INTERNET = "198.51.100.7"
DNS = "198.51.100.53"


def router_macs(topology: str) -> Dict[str, str]:
    """Router port MACs by logical router port name (``lrp-router1-web-v4`` -> MAC)."""
    logical = compile_topology(load_topology(str(ROOT / "topologies" / f"{topology}.yaml")))
    return {name: lrp.mac for name, (_router, lrp) in logical.router_ports().items()}


def port_addresses(topology: str) -> Dict[str, tuple]:
    """VM ports' (MAC, IPv4) by logical port name."""
    logical = compile_topology(load_topology(str(ROOT / "topologies" / f"{topology}.yaml")))
    out = {}
    for ls in logical.switches:
        for port in ls.ports:
            if not port.type and port.addresses:
                words = port.addresses[0].split()
                out[port.name] = (words[0], words[1])
    return out


class Frames:
    """Frames with a timestamp each (1 ms apart) and a note, in capture order."""

    def __init__(self) -> None:
        self.items: List[Packet] = []

    def add(self, frame, note: str, iface: str = "tenant", wirelen: Optional[int] = None) -> None:
        pkt = frame if isinstance(frame, Packet) else Raw(load=bytes(frame))
        n = len(self.items)
        pkt.time = EDecimal(EPOCH) + EDecimal(Decimal(n) / 1000)
        pkt.comments = [note.encode()]
        pkt.sniffed_on = iface
        if wirelen is not None:
            pkt.wirelen = wirelen
        self.items.append(pkt)


def _tcp(src_mac, dst_mac, src, dst, sport, dport, flags="S", ttl=64, seq=1000, ack=0):
    return Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=ttl, id=7) / TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240)


def _udp(src_mac, dst_mac, src, dst, sport, dport, payload=b"ovnsim", ttl=64):
    return (Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=ttl, id=9) / UDP(sport=sport, dport=dport)
            / payload)


def _ping(src_mac, dst_mac, src, dst, ident, seq=1, reply=False, ttl=64):
    return Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=ttl, id=11) / ICMP(
        type=0 if reply else 8, id=ident, seq=seq) / b"ping-payload-0123456789"


def _arp(src_mac, src_ip, target_ip, dst_mac=BROADCAST, op=1, hwdst="00:00:00:00:00:00"):
    return Ether(src=src_mac, dst=dst_mac) / ARP(op=op, hwsrc=src_mac, psrc=src_ip, hwdst=hwdst, pdst=target_ip)


def reference() -> Frames:
    """Everything, on the reference topology (vm1, vm2 on web; db1 on db; SNAT 172.24.4.10; FIP .100 -> vm2)."""
    mac = router_macs("reference")
    vms = port_addresses("reference")
    vm1_mac, vm1 = vms["vm1"]
    vm2_mac, vm2 = vms["vm2"]
    db1_mac, db1 = vms["db1"]
    gw_web, gw_db, gw_ext = mac["lrp-router1-web-v4"], mac["lrp-router1-db-v4"], mac["lrp-router1-gw"]
    snat, fip = "172.24.4.10", "172.24.4.100"
    f = Frames()
    # ARP and ICMP on the tenant side
    f.add(_arp(vm1_mac, vm1, "10.0.0.1"), "vm1 ARPs for its gateway: the router port's ARP responder answers")
    f.add(_arp(vm1_mac, vm1, vm2), "vm1 ARPs for vm2: the switch's ARP responder answers")
    f.add(_ping(vm1_mac, gw_web, vm1, "10.0.0.1", 0x0101), "vm1 pings its gateway: echo reply from the router")
    f.add(_ping(vm1_mac, vm2_mac, vm1, vm2, 0x0102), "vm1 pings vm2 (east-west, one switch)")
    f.add(_ping(vm2_mac, vm1_mac, vm2, vm1, 0x0102, reply=True), "vm2's echo reply to vm1")
    # routed east-west
    f.add(_tcp(vm1_mac, gw_web, vm1, db1, 40001, 5432), "vm1 -> db1 TCP SYN, routed by router1 (TTL 63)")
    f.add(_tcp(db1_mac, gw_db, db1, vm1, 5432, 40001, "SA", seq=5000, ack=1001), "db1's SYN-ACK back to vm1")
    f.add(_udp(vm2_mac, gw_web, vm2, db1, 5353, 53), "vm2 -> db1 UDP, routed")
    # outbound through SNAT, with the replies to the SNAT address
    f.add(_tcp(vm1_mac, gw_web, vm1, INTERNET, 40000, 443), "vm1 -> Internet TCP SYN: SNAT to 172.24.4.10")
    f.add(_tcp(UPSTREAM_MAC, gw_ext, INTERNET, snat, 443, 40000, "SA", seq=9000, ack=1001),
          "the server's SYN-ACK to the SNAT address: un-SNATed back to vm1", iface="upstream")
    f.add(_tcp(vm1_mac, gw_web, vm1, INTERNET, 40000, 443, "A", seq=1001, ack=9001), "vm1's ACK: same SNAT")
    f.add(_udp(db1_mac, gw_db, db1, DNS, 33333, 53, b"dns-query"), "db1 -> DNS server: SNAT")
    f.add(_udp(UPSTREAM_MAC, gw_ext, DNS, snat, 53, 33333, b"dns-answer"), "the DNS answer: un-SNATed to db1",
          iface="upstream")
    f.add(_ping(vm1_mac, gw_web, vm1, INTERNET, 0x1234), "vm1 pings the Internet: SNAT (ICMP id)")
    f.add(_ping(UPSTREAM_MAC, gw_ext, INTERNET, snat, 0x1234, reply=True), "the echo reply: un-SNATed to vm1",
          iface="upstream")
    # inbound to the floating IP, with replies
    f.add(_tcp(UPSTREAM_MAC, gw_ext, INTERNET, fip, 51000, 80), "Internet -> FIP 172.24.4.100:80: DNAT to vm2",
          iface="upstream")
    f.add(_tcp(vm2_mac, gw_web, vm2, INTERNET, 80, 51000, "SA", seq=7000, ack=1001),
          "vm2's SYN-ACK: source rewritten to the FIP")
    f.add(_ping(UPSTREAM_MAC, gw_ext, INTERNET, fip, 0x0200), "Internet pings the FIP: to vm2", iface="upstream")
    f.add(_ping(vm2_mac, gw_web, vm2, INTERNET, 0x0200, reply=True), "vm2's echo reply: from the FIP")
    # ARP from upstream for the router's external addresses
    f.add(_arp(UPSTREAM_MAC, "172.24.4.1", snat), "the upstream router ARPs for the SNAT address", iface="upstream")
    f.add(_arp(UPSTREAM_MAC, "172.24.4.1", fip), "the upstream router ARPs for the FIP", iface="upstream")
    # port security
    f.add(_tcp(vm1_mac, gw_web, "10.0.0.99", INTERNET, 40002, 443), "vm1 spoofs its source IP: port security")
    f.add(_tcp("fa:16:3e:99:99:99", gw_web, vm1, INTERNET, 40003, 443),
          "a spoofed source MAC with vm1's IP: port security on vm1")
    f.add(_arp(vm1_mac, "10.0.0.12", "10.0.0.1"), "vm1 sends ARP claiming vm2's address: port security")
    # TTL expiry and traffic to the router itself
    f.add(_tcp(vm1_mac, gw_web, vm1, INTERNET, 40004, 443, ttl=1), "TTL 1 to the Internet: ICMP time exceeded")
    f.add(_udp(vm1_mac, gw_web, vm1, db1, 40005, 53, ttl=1), "TTL 1 to db1 (routed): ICMP time exceeded")
    f.add(_tcp(vm1_mac, gw_web, vm1, "10.0.0.1", 40006, 22), "TCP to the router's address: TCP reset")
    f.add(_udp(vm1_mac, gw_web, vm1, "10.0.0.1", 40007, 161), "UDP to the router's address: port unreachable")
    # IP features the data path carries as they are
    f.add(Ether(src=vm1_mac, dst=gw_web) / IP(src=vm1, dst=db1, id=21, options=[IPOption_RR(routers=["0.0.0.0"])])
          / UDP(sport=40008, dport=53) / b"with-ip-options", "IPv4 with options (record route), routed")
    f.add(Ether(src=vm1_mac, dst=gw_web) / IP(src=vm1, dst=db1, id=22, flags="MF", frag=0)
          / UDP(sport=40009, dport=53) / (b"F" * 64), "first fragment, routed")
    f.add(Ether(src=vm1_mac, dst=gw_web) / IP(src=vm1, dst=db1, id=22, frag=9, proto=17) / (b"G" * 32),
          "later fragment (no L4 header), routed")
    bad = Ether(src=vm1_mac, dst=vm2_mac) / IP(src=vm1, dst=vm2, id=23, chksum=0xDEAD) / UDP(sport=40010, dport=9)
    f.add(bad / b"bad-ip-checksum", "a wrong IPv4 checksum: carried as is (OVN does not check it)")
    f.add(_udp(vm1_mac, vm2_mac, vm1, vm2, 40011, 9, b"J" * 8958), "a 9000-byte jumbo frame, vm1 -> vm2")
    f.add(Ether(src=vm1_mac, dst="01:80:c2:00:00:0e", type=0x88CC) / (b"\x02\x07\x04" + b"\x00" * 43),
          "LLDP (a non-IP ethertype) from vm1")
    # malformed and unsupported frames
    f.add(bytes.fromhex("fa163e000011fa163e00"), "a 10-byte runt")
    f.add(Ether(src=vm1_mac, dst=gw_web, type=0x0800) / (b"\x45\x00\x00\x1c" + b"\x00" * 6),
          "a truncated IPv4 header (10 bytes)")
    ihl = bytes(Ether(src=vm1_mac, dst=gw_web) / IP(src=vm1, dst=db1, id=24) / UDP(sport=40012, dport=53))
    f.add(ihl[:14] + b"\x43" + ihl[15:], "IPv4 with IHL 3 (12 bytes): bad header length")
    f.add(Ether(src=vm1_mac, dst=gw_web) / IPv6(src="fd00::11", dst="fd00::1") / ICMPv6EchoRequest(),
          "IPv6 from vm1: not modelled")
    f.add(Ether(src=vm1_mac, dst=vm2_mac) / Dot1Q(vlan=10) / IP(src=vm1, dst=vm2, id=25) / UDP(sport=40013, dport=9),
          "an 802.1Q-tagged frame on a VM port")
    f.add(bytes(range(64)), "64 bytes of garbage")
    f.add(Ether(src="01:00:5e:00:00:01", dst=vm2_mac) / IP(src=vm1, dst=vm2, id=26) / UDP(sport=40014, dport=9),
          "a multicast source MAC with vm1's address")
    return f


def dgp() -> Frames:
    """The distributed-gateway-port router: SNAT 172.24.4.50, centralised FIP .150 (web1), distributed .151 (app1)."""
    mac = router_macs("dgp")
    vms = port_addresses("dgp")
    web1_mac, web1 = vms["web1"]
    web2_mac, web2 = vms["web2"]
    app1_mac, app1 = vms["app1"]
    fw1_mac, fw1 = vms["fw1"]
    gw_web, gw_app, gw_ext = mac["lrp-router1-web-v4"], mac["lrp-router1-app-v4"], mac["lrp-router1-gw"]
    f = Frames()
    f.add(_arp(web2_mac, web2, "10.1.0.1"), "web2 ARPs for its gateway")
    f.add(_tcp(web2_mac, gw_web, web2, INTERNET, 41000, 443), "web2 -> Internet: SNAT to 172.24.4.50")
    f.add(_tcp(UPSTREAM_MAC, gw_ext, INTERNET, "172.24.4.50", 443, 41000, "SA", seq=1, ack=1001),
          "the reply to the SNAT address: back to web2", iface="upstream")
    f.add(_tcp(web1_mac, gw_web, web1, INTERNET, 41001, 443), "web1 -> Internet: its centralised FIP 172.24.4.150")
    f.add(_tcp(UPSTREAM_MAC, gw_ext, INTERNET, "172.24.4.150", 443, 41001, "SA", seq=1, ack=1001),
          "the reply to web1's FIP", iface="upstream")
    f.add(_ping(app1_mac, gw_app, app1, INTERNET, 0x0300), "app1 pings the Internet: distributed FIP 172.24.4.151")
    f.add(_ping(UPSTREAM_MAC, gw_ext, INTERNET, "172.24.4.151", 0x0300, reply=True), "the echo reply to app1's FIP",
          iface="upstream")
    f.add(_tcp(UPSTREAM_MAC, gw_ext, INTERNET, "172.24.4.150", 52000, 22), "Internet -> web1's FIP :22",
          iface="upstream")
    f.add(_arp(UPSTREAM_MAC, "172.24.4.1", "172.24.4.151"), "upstream ARPs for the distributed FIP", iface="upstream")
    f.add(_udp(web2_mac, gw_web, "10.1.0.100", app1, 41002, 53), "web2 sends from its allowed VIP 10.1.0.100")
    f.add(_udp("00:00:5e:00:01:33", gw_web, "10.1.0.101", app1, 41003, 53),
          "web2's VRRP MAC and address (an allowed address pair)")
    f.add(_udp(web2_mac, gw_web, "10.1.0.102", app1, 41004, 53), "web2 with an address it does not own")
    f.add(_udp(fw1_mac, gw_app, "192.0.2.9", web1, 41005, 53), "fw1 (no port security) with a foreign source")
    f.add(_tcp(web1_mac, gw_web, web1, app1, 41006, 8080, ttl=1), "TTL 1, web1 -> app1: time exceeded")
    return f


def two_projects() -> Frames:
    """Two tenants with the same 10.0.0.0/24 plan: the MACs tell them apart."""
    mac = router_macs("two-projects")
    vms = port_addresses("two-projects")
    a1_mac, a1 = vms["alpha-vm1"]
    a2_mac, a2 = vms["alpha-vm2"]
    b1_mac, b1 = vms["beta-vm1"]
    b2_mac, b2 = vms["beta-vm2"]
    gw_a, gw_b = mac["lrp-alpha-router-alpha-private-v4"], mac["lrp-beta-router-beta-private-v4"]
    ext_a, ext_b = mac["lrp-alpha-router-gw"], mac["lrp-beta-router-gw"]
    f = Frames()
    f.add(_ping(a1_mac, a2_mac, a1, a2, 0x0401), "alpha-vm1 pings alpha-vm2")
    f.add(_ping(b1_mac, b2_mac, b1, b2, 0x0402), "beta-vm1 pings beta-vm2 (same addresses, other tenant)")
    f.add(_tcp(a2_mac, gw_a, a2, INTERNET, 42000, 443), "alpha-vm2 -> Internet: SNAT 172.24.4.10")
    f.add(_tcp(b2_mac, gw_b, b2, INTERNET, 42000, 443), "beta-vm2, same 5-tuple: SNAT 172.24.4.20")
    f.add(_tcp(UPSTREAM_MAC, ext_a, INTERNET, "172.24.4.10", 443, 42000, "SA", seq=1, ack=1001),
          "reply to alpha's SNAT address", iface="upstream")
    f.add(_tcp(UPSTREAM_MAC, ext_b, INTERNET, "172.24.4.20", 443, 42000, "SA", seq=1, ack=1001),
          "reply to beta's SNAT address", iface="upstream")
    f.add(_ping(UPSTREAM_MAC, ext_a, INTERNET, "172.24.4.101", 0x0403), "Internet pings alpha's FIP",
          iface="upstream")
    f.add(_ping(a1_mac, gw_a, a1, INTERNET, 0x0403, reply=True), "alpha-vm1's echo reply from its FIP")
    f.add(_ping(UPSTREAM_MAC, ext_b, INTERNET, "172.24.4.201", 0x0404), "Internet pings beta's FIP",
          iface="upstream")
    f.add(_ping(b1_mac, gw_b, b1, INTERNET, 0x0404, reply=True), "beta-vm1's echo reply from its FIP")
    f.add(_tcp(a1_mac, gw_b, a1, INTERNET, 42001, 80), "alpha-vm1 addressed to beta's router MAC")
    return f


def multi_router() -> Frames:
    """Static routes across a transit network; the upstream MAC is not configured, so the edge router ARPs."""
    mac = router_macs("multi-router")
    vms = port_addresses("multi-router")
    web1_mac, web1 = vms["web1"]
    app1_mac, app1 = vms["app1"]
    db1_mac, db1 = vms["db1"]
    lab1_mac, lab1 = vms["lab1"]
    gw_dmz, gw_app, gw_data = mac["lrp-r-edge-dmz-v4"], mac["lrp-r-app-app-v4"], mac["lrp-r-data-data-v4"]
    gw_lab, ext = mac["lrp-r-lab-lab-v4"], mac["lrp-r-edge-gw"]
    upstream_mac = "52:54:00:12:34:56"
    f = Frames()
    f.add(_tcp(web1_mac, gw_dmz, web1, INTERNET, 43000, 443),
          "web1 -> Internet: the edge router does not know the upstream MAC and ARPs for it")
    f.add(_arp(upstream_mac, "203.0.113.1", "203.0.113.10", dst_mac=ext, op=2, hwdst=ext),
          "the upstream router's ARP reply: learned", iface="upstream")
    f.add(_tcp(web1_mac, gw_dmz, web1, INTERNET, 43000, 443), "web1 retries: out through its FIP 203.0.113.100")
    f.add(_tcp(upstream_mac, ext, INTERNET, "203.0.113.100", 443, 43000, "SA", seq=1, ack=1001),
          "the reply to web1's FIP", iface="upstream")
    f.add(_tcp(app1_mac, gw_app, app1, db1, 43001, 5432), "app1 -> db1: r-app, transit, r-edge, transit, r-data")
    f.add(_tcp(db1_mac, gw_data, db1, app1, 5432, 43001, "SA", seq=1, ack=1001), "db1's reply to app1")
    f.add(_ping(app1_mac, gw_app, app1, web1, 0x0501), "app1 pings web1 across three routers")
    f.add(_ping(lab1_mac, gw_lab, lab1, INTERNET, 0x0502), "lab1 -> Internet: r-lab has no route")
    f.add(_udp(app1_mac, gw_app, app1, "192.168.100.5", 43002, 53), "app1 -> 192.168.100.0/24 via fw1")
    f.add(_ping(web1_mac, gw_dmz, web1, "10.255.0.1", 0x0503), "web1 pings the edge router's transit address")
    return f


def _dhcp(mac, message_type, xid, src="0.0.0.0", dst="255.255.255.255", requested=None, server=None,
          dst_mac=BROADCAST):
    """A DHCP client's request as dhclient sends it (chaddr = its MAC, ciaddr = its bound address, a parameter
    request list)."""
    from scapy.layers.dhcp import BOOTP, DHCP

    options = [("message-type", message_type)]
    if requested:
        options.append(("requested_addr", requested))
    if server:
        options.append(("server_id", server))
    options += [("param_req_list", [1, 3, 6, 15, 26, 28, 51, 54, 121]), "end"]
    return (Ether(src=mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=64, id=0) / UDP(sport=68, dport=67)
            / BOOTP(op=1, chaddr=bytes.fromhex(mac.replace(":", "")) + bytes(10), xid=xid, ciaddr=src)
            / DHCP(options=options))


def dhcp_metadata() -> Frames:
    """A VM's boot as tcpdump on its tap sees it: DHCP, ARP, metadata (169.254.169.254), DNS, the Internet."""
    mac = router_macs("dhcp-metadata")
    vms = port_addresses("dhcp-metadata")
    logical = compile_topology(load_topology(str(ROOT / "topologies" / "dhcp-metadata.yaml")))
    meta_mac, meta_ip = logical.switch_ports()["ovnmeta-web"][1].addresses[0].split()
    web1_mac, web1 = vms["web1"]
    db1_mac, db1 = vms["db1"]
    gw = mac["lrp-router1-web-v4"]
    server_mac = next(r.options["server_mac"] for r in logical.dhcp_options if r.key == "web-v4")
    f = Frames()
    f.add(_dhcp(web1_mac, "discover", 0x5EB1), "web1 DHCPDISCOVER: ovn-controller offers 10.3.0.11")
    f.add(_dhcp(web1_mac, "request", 0x5EB1, requested=web1, server="10.3.0.1"),
          "web1 DHCPREQUEST for the offer: ACK")
    f.add(_arp(web1_mac, web1, web1), "web1's gratuitous ARP for its new address")
    f.add(_arp(web1_mac, web1, meta_ip), "web1 ARPs for the metadata route's next hop (the metadata port)")
    f.add(_tcp(web1_mac, meta_mac, web1, "169.254.169.254", 41000, 80),
          "cloud-init -> 169.254.169.254:80 via the metadata port: never the router, never SNAT")
    f.add(_arp(web1_mac, web1, "10.3.0.1"), "web1 ARPs for its router")
    f.add(_udp(web1_mac, gw, web1, "192.0.2.53", 41001, 53, b"\x12\x34\x01\x00"),
          "web1's DNS query to the DHCP-given server: routed, SNATed to 172.24.4.60")
    f.add(_dhcp(web1_mac, "request", 0x5EB2, src=web1, dst="10.3.0.1", dst_mac=server_mac),
          "web1 renews (unicast to the server, ciaddr set): ACK")
    f.add(_dhcp(web1_mac, "request", 0x5EB3, requested="10.3.0.99"), "web1 asks for another address: NAK")
    f.add(_dhcp(web1_mac, "release", 0x5EB4, src=web1, dst="10.3.0.1", dst_mac=server_mac),
          "web1 DHCPRELEASE to the server: no answer, and server_mac is no port's (unknown-destination drop)")
    f.add(_dhcp(db1_mac, "discover", 0xDB01), "db1 DHCPDISCOVER: DHCP is off on db-v4, no answer")
    return f


def _write_pcap(path: Path, frames: Frames, snaplen: int = 65535) -> None:
    writer = PcapWriter(str(path), linktype=1, snaplen=snaplen, sync=False)
    for pkt in frames.items:
        writer.write(pkt)
    writer.close()


def _write_pcapng(path: Path, frames: Frames) -> None:
    writer = PcapNgWriter(str(path))
    for pkt in frames.items:
        writer.write(pkt)
    writer.close()


def _write_snaplen(path: Path, frames: Frames, snaplen: int) -> None:
    short = Frames()
    for pkt in frames.items:
        data = bytes(pkt)
        short.add(Raw(load=data[:snaplen]), pkt.comments[0].decode(), wirelen=len(data))
    _write_pcap(path, short, snaplen)


def generate(out: Path) -> List[Path]:
    """Write every capture into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    ref = reference()
    for name, frames in (("reference-mixed", ref), ("dgp-mixed", dgp()), ("two-projects-mixed", two_projects()),
                         ("multi-router-mixed", multi_router()), ("dhcp-metadata-mixed", dhcp_metadata())):
        _write_pcap(out / f"{name}.pcap", frames)
        written.append(out / f"{name}.pcap")
    _write_pcapng(out / "reference-mixed.pcapng", ref)
    written.append(out / "reference-mixed.pcapng")
    # cut short 20 bytes into the last record's data: tcpdump killed mid-write
    whole = (out / "reference-mixed.pcap").read_bytes()
    last = len(bytes(ref.items[-1]))
    (out / "reference-cut.pcap").write_bytes(whole[:len(whole) - last + 20])
    written.append(out / "reference-cut.pcap")
    _write_snaplen(out / "reference-snaplen.pcap", ref, 64)
    written.append(out / "reference-snaplen.pcap")
    return written


def main(argv: Optional[List[str]] = None) -> int:
    # scapy warns about the Raw (non-Ether) malformed frames; they are written as Ethernet on purpose
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: pcaps/)")
    args = parser.parse_args(argv)
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            differ = [p.name for p in generate(Path(tmp))
                      if not (HERE / p.name).exists() or (HERE / p.name).read_bytes() != p.read_bytes()]
        for name in differ:
            print(f"pcaps/{name}: differs from what make_pcaps.py writes")
        return 1 if differ else 0
    for path in generate(args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
