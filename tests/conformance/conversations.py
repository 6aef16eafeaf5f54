"""Closed-loop conversations: tiny host stacks that talk through a data path.

A conversation starts with one host sending one packet (an echo request, a
TCP SYN, a UDP datagram, an LLDP frame...) and continues as far as the hosts
take it: a host ARPs for its next hop and sends once answered, answers ARP
requests for its addresses, echo requests, SYNs (SYN-ACK), SYN-ACKs (ACK)
and UDP "ping" datagrams ("pong"), and runs a DHCP client (DISCOVER, then
REQUEST for what is offered); a UDP datagram to port 33434 gets ICMP
port unreachable (a RELATED packet that must find its way back through
NAT).  Every frame a host sends is injected on its port and whatever leaves
every port is delivered to the host there, so
each data path builds its next frame from *its own* previous outputs: run
the same conversation on real OVN and on ovnsim and compare step by step.

Hosts: one per VM port, and one "upstream router" per provider network (the
external subnet's gateway address and MAC), which also answers for any
address beyond the provider subnet (the internet, 198.51.100.7) when a
frame is sent to its MAC.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

OUTSIDE = "198.51.100.7"
UPSTREAM_MAC = "52:54:00:00:00:01"
BROADCAST = "ff:ff:ff:ff:ff:ff"
LLDP_MAC = "01:80:c2:00:00:0e"
TRACEROUTE_PORT = 33434

#: a data path as the driver sees it: inject(port, frame) -> {port: [frames]}
Inject = Callable[[str, bytes], Dict[str, List[bytes]]]


@dataclass
class Host:
    """One end point's tiny IPv4 stack (ARP cache, pending packets, responders)."""

    port: str
    mac: str
    ip: str
    network: ipaddress.IPv4Network
    gateway: Optional[str]
    vlan: Optional[int] = None
    upstream: bool = False  #: answers for every address beyond its subnet
    arp: Dict[str, str] = field(default_factory=dict)
    pending: List[Tuple[str, object]] = field(default_factory=list)

    def owns(self, ip: str) -> bool:
        if ip == self.ip:
            return True
        return self.upstream and ipaddress.ip_address(ip) not in self.network

    def frame(self, dst_mac: str, payload) -> bytes:
        eth = Ether(src=self.mac, dst=dst_mac)
        if self.vlan is not None:
            eth = eth / Dot1Q(vlan=self.vlan)
        return bytes(eth / payload)

    def send_ip(self, pkt, *, dst_mac: Optional[str] = None) -> List[bytes]:
        """Route ``pkt`` (an IP packet): to its destination on-link, else the gateway; ARP first."""
        if dst_mac is not None:
            return [self.frame(dst_mac, pkt)]
        dst = pkt[IP].dst
        hop = dst if ipaddress.ip_address(dst) in self.network or self.gateway is None else self.gateway
        if hop in self.arp:
            return [self.frame(self.arp[hop], pkt)]
        self.pending.append((hop, pkt))
        return [self.frame(BROADCAST, ARP(op=1, hwsrc=self.mac, psrc=self.ip, pdst=hop))]

    def receive(self, raw: bytes) -> List[bytes]:
        """Frames this host sends in answer to ``raw`` arriving on its port."""
        eth = Ether(raw)
        if eth.dst not in (self.mac, BROADCAST):
            return []
        if ARP in eth:
            a = eth[ARP]
            if a.op == 1 and self.owns(a.pdst) and a.pdst != a.psrc:
                return [self.frame(a.hwsrc, ARP(op=2, hwsrc=self.mac, psrc=a.pdst,
                                                hwdst=a.hwsrc, pdst=a.psrc))]
            if a.op == 2 and a.hwdst == self.mac:
                self.arp[a.psrc] = a.hwsrc
                ready = [p for hop, p in self.pending if hop == a.psrc]
                self.pending = [(h, p) for h, p in self.pending if h != a.psrc]
                return [self.frame(a.hwsrc, p) for p in ready]
            return []
        if BOOTP in eth and eth[BOOTP].op == 2 and eth[BOOTP].xid == DHCP_XID and eth[UDP].dport == 68:
            return self.dhcp_client(eth)
        if IP not in eth or not self.owns(eth[IP].dst):
            return []
        ip = eth[IP]
        back = IP(src=ip.dst, dst=ip.src, ttl=64, id=ip.id)
        if ICMP in ip and ip[ICMP].type == 8:
            icmp = ip[ICMP]
            reply = back / ICMP(type=0, id=icmp.id, seq=icmp.seq) / bytes(icmp.payload)
            return [self.frame(eth.src, reply)]
        if TCP in ip:
            t = ip[TCP]
            if t.flags == "S":
                return [self.frame(eth.src, back / TCP(sport=t.dport, dport=t.sport, flags="SA",
                                                       seq=5000, ack=t.seq + 1))]
            if t.flags == "SA":
                return [self.frame(eth.src, back / TCP(sport=t.dport, dport=t.sport, flags="A",
                                                       seq=t.ack, ack=t.seq + 1))]
            return []
        if UDP in ip and ip[UDP].dport == TRACEROUTE_PORT:
            # nothing listens: ICMP port unreachable quoting the datagram (a RELATED packet)
            quote = bytes(ip)[:ip.ihl * 4 + 8]
            return [self.frame(eth.src, back / ICMP(type=3, code=3) / Raw(quote))]
        if UDP in ip and bytes(ip[UDP].payload) == b"ping":
            u = ip[UDP]
            return [self.frame(eth.src, back / UDP(sport=u.dport, dport=u.sport) / Raw(b"pong"))]
        return []


    def dhcp_discover(self) -> bytes:
        """A DHCPDISCOVER as dhclient sends it (broadcast, chaddr = the port's MAC)."""
        return self.frame(BROADCAST, IP(src="0.0.0.0", dst="255.255.255.255", ttl=64, id=0)
                          / UDP(sport=68, dport=67) / _bootp(self.mac, [("message-type", "discover")]))

    def dhcp_client(self, eth) -> List[bytes]:
        """An OFFER is answered with a broadcast REQUEST for the offered address; an ACK or NAK ends it."""
        opts = {o[0]: o[1] for o in eth[DHCP].options if isinstance(o, tuple) and len(o) > 1}
        if opts.get("message-type") != 2:
            return []
        request = [("message-type", "request"), ("requested_addr", eth[BOOTP].yiaddr)]
        if "server_id" in opts:
            request.append(("server_id", opts["server_id"]))
        return [self.frame(BROADCAST, IP(src="0.0.0.0", dst="255.255.255.255", ttl=64, id=0)
                           / UDP(sport=68, dport=67) / _bootp(self.mac, request))]


#: the transaction id of every conversation's DHCP exchange
DHCP_XID = 0x0D4C0001


def _bootp(mac: str, options: list):
    return BOOTP(op=1, chaddr=bytes.fromhex(mac.replace(":", "")) + bytes(10), xid=DHCP_XID) / DHCP(
        options=options + [("param_req_list", [1, 3, 6, 15, 26, 51, 54, 121]), "end"])


@dataclass
class Step:
    """One injected frame and what left every port (frames sorted per port)."""

    port: str
    frame: bytes
    outputs: Dict[str, List[bytes]]

    def key(self):
        return (self.port, self.frame, tuple(sorted((p, tuple(sorted(f))) for p, f in self.outputs.items())))


@dataclass
class Conversation:
    """A named first packet: ``start(hosts)`` -> (port, frames to send)."""

    name: str
    start: Callable[[Dict[str, Host]], Tuple[str, List[bytes]]]


def run(conversation: Conversation, hosts: Dict[str, Host], inject: Inject,
        max_steps: int = 16) -> List[Step]:
    """Play ``conversation`` through ``inject`` with these (fresh) hosts."""
    port, frames = conversation.start(hosts)
    queue = [(port, f) for f in frames]
    steps: List[Step] = []
    while queue and len(steps) < max_steps:
        port, frame = queue.pop(0)
        outputs = inject(port, frame)
        steps.append(Step(port, frame, {p: sorted(fs) for p, fs in outputs.items() if fs}))
        for out_port, fs in sorted(outputs.items()):
            host = hosts.get(out_port)
            if host is None:
                continue
            for f in fs:
                queue += [(out_port, answer) for answer in host.receive(f)]
    return steps


# ---------------------------------------------------------------- the hosts


def make_hosts(topology, logical) -> Dict[str, Host]:
    """One host per VM port (LSP name = port id) and per provider network (its localnet port)."""
    hosts: Dict[str, Host] = {}
    subnets = topology.subnets
    for port in topology.ports.values():
        if not port.fixed_ips:
            continue
        fip = port.fixed_ips[0]
        sn = subnets[fip.subnet]
        hosts[port.id] = Host(port.id, port.mac_address, str(fip.ip_address),
                              ipaddress.ip_network(str(sn.cidr)),
                              str(sn.gateway_ip) if sn.gateway_ip else None)
    localnet = {}
    for ls in logical.switches:
        for p in ls.ports:
            if p.type == "localnet":
                localnet[ls.name] = (p.name, p.tag)
    for net in topology.networks.values():
        if not net.external:
            continue
        name, _ = localnet.get(f"neutron-{net.id}", (None, None))
        if name is None or not net.subnets:
            continue
        sn = net.subnets[0]
        # the way back into tenant networks: the first router gateway on this network
        gws = sorted(str(r.external_gateway.ip_address) for r in topology.routers.values()
                     if r.external_gateway is not None and r.external_gateway.network == net.id)
        hosts[name] = Host(name, sn.gateway_mac or UPSTREAM_MAC, str(sn.gateway_ip),
                           ipaddress.ip_network(str(sn.cidr)), gws[0] if gws else None,
                           vlan=None,  # the harness tags and untags on the wire
                           upstream=True)
    return hosts


# ------------------------------------------------------------ conversations


def _ip_start(src: str, dst_ip: str, kind: str, *, ttl: int = 64, spoof: Optional[str] = None,
              dst_mac: Optional[str] = None):
    def start(hosts: Dict[str, Host]):
        h = hosts[src]
        pkt = IP(src=spoof or h.ip, dst=dst_ip, ttl=ttl, id=1)
        if kind == "icmp":
            pkt = pkt / ICMP(type=8, id=7, seq=1) / Raw(b"ovnsim-ping")
        elif kind == "tcp":
            pkt = pkt / TCP(sport=40000, dport=80, flags="S", seq=1000)
        elif kind == "traceroute":
            pkt = pkt / UDP(sport=40002, dport=TRACEROUTE_PORT) / Raw(b"probe")
        else:
            pkt = pkt / UDP(sport=40001, dport=53) / Raw(b"ping")
        if spoof is not None and dst_mac is None:
            # a spoofer knows where to send: resolve as the host would, then spoof
            frames = h.send_ip(pkt)
            return src, frames
        return src, h.send_ip(pkt, dst_mac=dst_mac)
    return start


def _lldp_start(src: str):
    def start(hosts: Dict[str, Host]):
        h = hosts[src]
        lldp = bytes.fromhex("0207047a16" "3e000001" "040705" "6574683000" "06020078" "0000")
        return src, [bytes(Ether(src=h.mac, dst=LLDP_MAC, type=0x88cc) / Raw(lldp))]
    return start


def _dhcp_start(src: str):
    def start(hosts: Dict[str, Host]):
        return src, [hosts[src].dhcp_discover()]
    return start


def conversations(topology, logical, hosts: Dict[str, Host]) -> List[Conversation]:
    """The conversations of one topology, built from its ports, routers and floating IPs."""
    convs: List[Conversation] = []
    vms = [h for h in hosts.values() if not h.upstream]
    ups = [h for h in hosts.values() if h.upstream]
    fips = {f.port: str(f.floating_ip_address) for f in topology.floating_ips.values()}

    def add(name, start):
        convs.append(Conversation(name, start))

    for a in vms:
        same = [b for b in vms if b is not a and b.network == a.network]
        other = [b for b in vms if b.network != a.network]
        for kind in ("icmp", "tcp", "udp"):
            if same:
                add(f"{a.port}-{kind}-{same[0].port}", _ip_start(a.port, same[0].ip, kind))
            if other:
                add(f"{a.port}-{kind}-{other[0].port}", _ip_start(a.port, other[0].ip, kind))
            if ups:
                add(f"{a.port}-{kind}-outside", _ip_start(a.port, OUTSIDE, kind))
        if ups:
            add(f"{a.port}-ttl1-outside", _ip_start(a.port, OUTSIDE, "icmp", ttl=1))
            add(f"{a.port}-unreachable-outside", _ip_start(a.port, OUTSIDE, "traceroute"))
        if other:
            add(f"{a.port}-unreachable-{other[0].port}", _ip_start(a.port, other[0].ip, "traceroute"))
        if other:
            add(f"{a.port}-ttl1-{other[0].port}", _ip_start(a.port, other[0].ip, "icmp", ttl=1))
        if a.gateway:
            for kind in ("icmp", "tcp", "udp"):
                add(f"{a.port}-{kind}-gateway", _ip_start(a.port, a.gateway, kind))
        add(f"{a.port}-spoofed", _ip_start(a.port, same[0].ip if same else OUTSIDE, "icmp",
                                           spoof="10.99.99.99"))
        add(f"{a.port}-lldp", _lldp_start(a.port))
        add(f"{a.port}-dhcp", _dhcp_start(a.port))
        for owner, fip in fips.items():
            tag = "own" if owner == a.port else owner
            add(f"{a.port}-icmp-fip-{tag}", _ip_start(a.port, fip, "icmp"))
            add(f"{a.port}-tcp-fip-{tag}", _ip_start(a.port, fip, "tcp"))
    for u in ups:
        for owner, fip in fips.items():
            for kind in ("icmp", "tcp", "udp"):
                add(f"{u.port}-{kind}-fip-{owner}", _ip_start(u.port, fip, kind))
        for a in vms[:2]:
            add(f"{u.port}-tcp-fixed-{a.port}", _ip_start(u.port, a.ip, "tcp"))
        if vms:  # a UDP reply can open the SNAT connection, a SYN-ACK cannot
            add(f"{u.port}-udp-fixed-{vms[0].port}", _ip_start(u.port, vms[0].ip, "udp"))
    return convs
