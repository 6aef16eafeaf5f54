"""Microflows that cover every behaviour of the pipeline, for every class of source and destination.

Given a compiled topology, :func:`generate` yields ``(label, microflow)``
pairs in ovn-trace's syntax: traffic on one switch, across routers, to and
from the external network, to floating IPs and SNAT addresses, to router
addresses, ARP, broadcast, DHCP, TTL 1, port-security violations, no route,
unknown next hops.  The labels say what each flow is meant to exercise, so a
failing comparison reads as a sentence.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple

from ovnsim.northd.tables import RouterTables, SwitchPort, Tables, int_to_ip, int_to_mac

BCAST = "ff:ff:ff:ff:ff:ff"
OUTSIDE = "198.51.100.7"  #: an Internet address (TEST-NET-2); traffic to it stays in the trace
UPSTREAM_MAC = "52:54:00:00:00:99"  #: the sender MAC used on provider networks when none is known


def _flow(inport: str, **fields: object) -> str:
    parts = [f'inport == "{inport}"']
    for name, value in fields.items():
        key = name.replace("__", ".")
        if value is True:
            parts.append(key)
        else:
            parts.append(f"{key} == {value}")
    return " && ".join(parts)


def _ip4(inport: str, src_mac: str, dst_mac: str, src: str, dst: str, l4: str = "icmp", ttl: int = 64) -> str:
    l4_fields: Dict[str, object] = {}
    if l4 == "icmp":
        l4_fields = {"icmp4": True, "icmp4__type": 8, "icmp4__code": 0}
    elif l4 == "tcp":
        l4_fields = {"tcp": True, "tcp__src": 33000, "tcp__dst": 22}
    elif l4 == "udp":
        l4_fields = {"udp": True, "udp__src": 33000, "udp__dst": 53}
    elif l4 == "gre":
        l4_fields = {"ip4": True, "ip__proto": 47}
    return _flow(inport, eth__src=src_mac, eth__dst=dst_mac, ip4__src=src, ip4__dst=dst, ip__ttl=ttl, **l4_fields)


def _dhcp(inport: str, src_mac: str, src: str) -> str:
    return _flow(inport, eth__src=src_mac, eth__dst=BCAST, ip4__src=src, ip4__dst="255.255.255.255", ip__ttl=64,
                 udp=True, udp__src=68, udp__dst=67)


def _arp(inport: str, src_mac: str, spa: str, tpa: str) -> str:
    return _flow(inport, eth__src=src_mac, eth__dst=BCAST, arp__op=1, arp__sha=src_mac, arp__spa=spa,
                 arp__tha="00:00:00:00:00:00", arp__tpa=tpa)


class _Topo:
    """Lookups over the tables that the generator needs."""

    def __init__(self, tables: Tables):
        self.t = tables
        self.vms: List[Tuple[SwitchPort, int, int]] = []  # (port, mac, ip)
        for sw in tables.switches.values():
            for port in sw.ports.values():
                if port.type == "" and port.addresses:
                    mac, ips = port.addresses[0]
                    if ips:
                        self.vms.append((port, mac, ips[0]))
        self.localnets = [p for sw in tables.switches.values() for p in sw.ports.values() if p.is_localnet]

    def first_hop(self, port: SwitchPort) -> Optional[Tuple[RouterTables, int, int]]:
        """The router behind ``port``'s switch: (router, its MAC there, its IP there)."""
        sw = self.t.switches[port.switch]
        for lsp in sw.ports.values():
            if lsp.is_router and lsp.peer:
                lr = self.t.routers[self.t.router_of_port[lsp.peer]]
                rp = lr.ports[lsp.peer]
                if rp.networks and not rp.gateway:
                    return lr, rp.mac, rp.networks[0][0]
        return None

    def gateway_ports(self, localnet: SwitchPort):
        """Router ports on the localnet's switch: (router, port)."""
        sw = self.t.switches[localnet.switch]
        for lsp in sw.ports.values():
            if lsp.is_router and lsp.peer:
                lr = self.t.routers[self.t.router_of_port[lsp.peer]]
                yield lr, lr.ports[lsp.peer]


def generate(tables: Tables) -> Iterator[Tuple[str, str]]:
    """Yield (label, microflow) for the topology compiled into ``tables``."""
    topo = _Topo(tables)
    seen = set()

    def emit(label: str, flow: str):
        if flow not in seen:
            seen.add(flow)
            return [(label, flow)]
        return []

    for src, smac_i, sip_i in topo.vms:
        smac, sip = int_to_mac(smac_i), int_to_ip(sip_i)
        sw = tables.switches[src.switch]
        # -- L2 on the same switch
        for dst, dmac_i, dip_i in topo.vms:
            if dst.name == src.name:
                continue
            dmac, dip = int_to_mac(dmac_i), int_to_ip(dip_i)
            if dst.switch == src.switch:
                yield from emit(f"{src.name}->{dst.name} same switch tcp", _ip4(src.name, smac, dmac, sip, dip, "tcp"))
                yield from emit(f"{src.name} ARP for {dst.name}", _arp(src.name, smac, sip, dip))
        yield from emit(f"{src.name} broadcast ARP for an unknown IP",
                        _arp(src.name, smac, sip, int_to_ip(sip_i ^ 0x7F)))
        yield from emit(f"{src.name} unicast to an unknown MAC",
                        _ip4(src.name, smac, "02:00:00:00:be:ef", sip, int_to_ip(sip_i ^ 0x7E)))
        yield from emit(f"{src.name} IP multicast",
                        _ip4(src.name, smac, "01:00:5e:00:00:fb", sip, "224.0.0.251", "udp"))
        # -- port security
        yield from emit(f"{src.name} spoofed ip4.src", _ip4(src.name, smac, BCAST, int_to_ip(sip_i ^ 0x55), sip))
        yield from emit(f"{src.name} spoofed eth.src",
                        _ip4(src.name, "02:00:00:00:0b:ad", BCAST, sip, int_to_ip(sip_i ^ 1)))
        yield from emit(f"{src.name} ARP with spoofed spa", _arp(src.name, smac, int_to_ip(sip_i ^ 0x55), sip))
        yield from emit(f"{src.name} VLAN-tagged frame",
                        _flow(src.name, eth__src=smac, eth__dst=BCAST, vlan__tci=0x1064, ip4__src=sip,
                              ip4__dst=sip, ip__ttl=64, icmp4=True))
        # -- native DHCP (ls_in_dhcp_options/response; the microflow's frame carries the BOOTP request)
        yield from emit(f"{src.name} DHCPDISCOVER", _dhcp(src.name, smac, "0.0.0.0"))
        yield from emit(f"{src.name} DHCPREQUEST broadcast renewal", _dhcp(src.name, smac, sip))
        for label, flow in _provider_port_flows(topo, src, smac, sip):
            yield from emit(label, flow)
        hop = topo.first_hop(src)
        if hop is None:
            continue
        lr, rmac_i, rip_i = hop
        rmac, rip = int_to_mac(rmac_i), int_to_ip(rip_i)
        # -- the router's own address
        yield from emit(f"{src.name} ARP for its router", _arp(src.name, smac, sip, rip))
        yield from emit(f"{src.name} ping its router", _ip4(src.name, smac, rmac, sip, rip, "icmp"))
        yield from emit(f"{src.name} UDP to its router", _ip4(src.name, smac, rmac, sip, rip, "udp"))
        yield from emit(f"{src.name} TCP to its router", _ip4(src.name, smac, rmac, sip, rip, "tcp"))
        yield from emit(f"{src.name} GRE to its router", _ip4(src.name, smac, rmac, sip, rip, "gre"))
        yield from emit(f"{src.name} TTL 1 ping to its router", _ip4(src.name, smac, rmac, sip, rip, "icmp", ttl=1))
        yield from emit(f"{src.name} ARP reply to its router",
                        _flow(src.name, eth__src=smac, eth__dst=rmac, arp__op=2, arp__sha=smac, arp__spa=sip,
                              arp__tha=rmac, arp__tpa=rip))
        yield from emit(f"{src.name} gratuitous ARP", _arp(src.name, smac, sip, sip))
        yield from emit(f"{src.name} TTL 1 through its router", _ip4(src.name, smac, rmac, sip, OUTSIDE, "udp", ttl=1))
        yield from emit(f"{src.name} frame to the router with a wrong MAC",
                        _ip4(src.name, smac, "02:00:00:00:00:01", sip, OUTSIDE))
        for other_ip, _ in (n for p in lr.ports.values() for n in p.networks):
            if other_ip != rip_i:
                yield from emit(f"{src.name} ping router address {int_to_ip(other_ip)}",
                                _ip4(src.name, smac, rmac, sip, int_to_ip(other_ip)))
        # -- routed: every VM elsewhere, an unknown host, the outside
        for dst, dmac_i, dip_i in topo.vms:
            if dst.switch != src.switch:
                yield from emit(f"{src.name}->{dst.name} routed icmp",
                                _ip4(src.name, smac, rmac, sip, int_to_ip(dip_i)))
                yield from emit(f"{src.name}->{dst.name} routed tcp",
                                _ip4(src.name, smac, rmac, sip, int_to_ip(dip_i), "tcp"))
                yield from emit(f"{src.name}->{dst.name} routed udp",
                                _ip4(src.name, smac, rmac, sip, int_to_ip(dip_i), "udp"))
                yield from emit(f"{src.name}->{dst.name} routed TTL 2",
                                _ip4(src.name, smac, rmac, sip, int_to_ip(dip_i), "udp", ttl=2))
                yield from emit(f"{src.name}->{dst.name} routed TTL 1",
                                _ip4(src.name, smac, rmac, sip, int_to_ip(dip_i), "icmp", ttl=1))
                yield from emit(f"{src.name}->{dst.name}'s subnet unknown host",
                                _ip4(src.name, smac, rmac, sip, int_to_ip(dip_i ^ 0x70), "udp"))
        yield from emit(f"{src.name} to the Internet tcp", _ip4(src.name, smac, rmac, sip, OUTSIDE, "tcp"))
        yield from emit(f"{src.name} to the Internet udp", _ip4(src.name, smac, rmac, sip, OUTSIDE, "udp"))
        yield from emit(f"{src.name} to the Internet icmp", _ip4(src.name, smac, rmac, sip, OUTSIDE, "icmp"))
        # -- NAT addresses seen from inside (hairpin, SNAT address)
        for router in tables.routers.values():
            for nat in router.nat:
                ext = int_to_ip(nat.external_ip)
                yield from emit(f"{src.name} to NAT address {ext} ({nat.type}) tcp",
                                _ip4(src.name, smac, rmac, sip, ext, "tcp"))
                yield from emit(f"{src.name} ARP for NAT address {ext}", _arp(src.name, smac, sip, ext))
        # -- routes whose next hop is not a port's address (static routes)
        for route in lr.routes:
            if route.static and route.prefix.plen > 0:
                dst = int_to_ip(route.prefix.network | 5)
                yield from emit(f"{src.name} via static route {route.prefix}",
                                _ip4(src.name, smac, rmac, sip, dst, "udp"))
        del sw

    for ln in topo.localnets:
        for lr, rp in topo.gateway_ports(ln):
            gmac = int_to_mac(rp.mac)
            gip = int_to_ip(rp.networks[0][0]) if rp.networks else None
            upstream = _upstream(rp)
            if gip:
                yield from emit(f"outside ARP for gateway {gip}", _arp(ln.name, UPSTREAM_MAC, upstream, gip))
                yield from emit(f"outside ping gateway {gip}", _ip4(ln.name, UPSTREAM_MAC, gmac, OUTSIDE, gip))
                yield from emit(f"outside UDP to gateway {gip}", _ip4(ln.name, UPSTREAM_MAC, gmac, OUTSIDE, gip, "udp"))
                yield from emit(f"outside TTL 1 to gateway {gip}",
                                _ip4(ln.name, UPSTREAM_MAC, gmac, OUTSIDE, gip, "udp", ttl=1))
            yield from emit(f"outside martian source to {lr.name}",
                            _ip4(ln.name, UPSTREAM_MAC, gmac, "127.0.0.1", gip or OUTSIDE))
            yield from emit(f"outside frame to {lr.name} with a wrong MAC",
                            _ip4(ln.name, UPSTREAM_MAC, "02:00:00:00:00:02", OUTSIDE, gip or OUTSIDE))
            for nat in lr.nat:
                ext = int_to_ip(nat.external_ip)
                dmac = int_to_mac(nat.external_mac) if nat.distributed else gmac
                yield from emit(f"outside ARP for NAT address {ext}", _arp(ln.name, UPSTREAM_MAC, upstream, ext))
                yield from emit(f"outside to NAT address {ext} ({nat.type}) tcp",
                                _ip4(ln.name, UPSTREAM_MAC, dmac, OUTSIDE, ext, "tcp"))
                yield from emit(f"outside to NAT address {ext} ({nat.type}) icmp",
                                _ip4(ln.name, UPSTREAM_MAC, dmac, OUTSIDE, ext, "icmp"))
            # The post-un-SNAT frame of a reply (what conntrack turns a
            # reply to a SNAT address into): ovn-trace cannot un-SNAT, but it
            # can trace this frame, which is what real OVN routes next.
            for dst, _dmac, dip_i in topo.vms:
                yield from emit(f"outside straight to {dst.name}'s address",
                                _ip4(ln.name, UPSTREAM_MAC, gmac, OUTSIDE, int_to_ip(dip_i), "tcp"))
        yield from emit("outside broadcast ARP for an unknown IP",
                        _arp(ln.name, UPSTREAM_MAC, "203.0.113.1", "203.0.113.2"))


def _provider_port_flows(topo: _Topo, src: SwitchPort, smac: str, sip: str) -> Iterator[Tuple[str, str]]:
    """A VM port on a provider network (beside a localnet port): to the outside, to gateways, to NAT addresses."""
    if not any(ln.switch == src.switch for ln in topo.localnets):
        return
    ln = next(ln for ln in topo.localnets if ln.switch == src.switch)
    yield f"{src.name} (provider port) to the Internet via the upstream", _ip4(
        src.name, smac, UPSTREAM_MAC, sip, OUTSIDE, "tcp")
    yield f"{src.name} (provider port) ARP for the upstream", _arp(src.name, smac, sip, "203.0.113.1")
    for lr, rp in topo.gateway_ports(ln):
        gmac = int_to_mac(rp.mac)
        if rp.networks:
            gip = int_to_ip(rp.networks[0][0])
            yield f"{src.name} (provider port) ARP for gateway {gip}", _arp(src.name, smac, sip, gip)
            yield f"{src.name} (provider port) ping gateway {gip}", _ip4(src.name, smac, gmac, sip, gip)
        for nat in lr.nat:
            ext = int_to_ip(nat.external_ip)
            dmac = int_to_mac(nat.external_mac) if nat.distributed else gmac
            yield f"{src.name} (provider port) ARP for NAT address {ext}", _arp(src.name, smac, sip, ext)
            yield f"{src.name} (provider port) to NAT address {ext} ({nat.type}) tcp", _ip4(
                src.name, smac, dmac, sip, ext, "tcp")
            yield f"{src.name} (provider port) to NAT address {ext} ({nat.type}) udp", _ip4(
                src.name, smac, dmac, sip, ext, "udp")
        for dst, _dmac, dip_i in topo.vms:
            if dst.switch != src.switch:
                yield f"{src.name} (provider port) through {lr.name} to {dst.name}'s fixed IP", _ip4(
                    src.name, smac, gmac, sip, int_to_ip(dip_i), "tcp")


def _upstream(rp) -> str:
    """An address on the gateway port's subnet that belongs to nobody in the topology."""
    if not rp.networks:
        return "203.0.113.1"
    ip, prefix = rp.networks[0]
    candidate = prefix.broadcast - 1
    return int_to_ip(candidate if candidate != ip else candidate - 1)
