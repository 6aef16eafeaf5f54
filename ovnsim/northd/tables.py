"""Logical topology -> the tables the pipeline executes, one structure per lookup kind.

This is ovn-northd's job in ovnsim: from the northbound objects derive, per
datapath and per stage, what ``ovn-sbctl lflow-list`` would show — but as
typed lookup structures (exact-match dicts, an LPM list ordered by OVN's
route priorities) instead of match strings.  MACs and IPv4 addresses are
ints, so the pipeline compares integers and the fast path can copy the
tables into C arrays unchanged.

Each entry keeps the OVN priority it would have, so ties break as in OVN and
traces can print it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from ovnsim.nb.model import (
    LSP_TYPE_LOCALNET,
    LSP_TYPE_ROUTER,
    NAT_DNAT,
    NAT_DNAT_AND_SNAT,
    NAT_SNAT,
    LogicalTopology,
)
from ovnsim.northd.dhcp import DhcpResponder, dhcpv4_responders

BROADCAST_MAC = 0xFFFFFFFFFFFF


def mac_to_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def int_to_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def ip_to_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


@dataclass(frozen=True)
class Prefix:
    """An IPv4 prefix as (network, mask) ints; ``contains`` is one AND and one compare."""

    network: int
    plen: int

    @property
    def mask(self) -> int:
        return (0xFFFFFFFF << (32 - self.plen)) & 0xFFFFFFFF if self.plen else 0

    def contains(self, ip: int) -> bool:
        return (ip & self.mask) == self.network

    @property
    def broadcast(self) -> int:
        return self.network | (~self.mask & 0xFFFFFFFF)

    def __str__(self) -> str:
        return f"{int_to_ip(self.network)}/{self.plen}"

    @classmethod
    def parse(cls, text: str) -> "Prefix":
        net = ipaddress.IPv4Network(text, strict=False)
        return cls(int(net.network_address), net.prefixlen)


@dataclass
class PortSecurityEntry:
    """One ``port_security`` string: a MAC and the IPv4 prefixes allowed with it (empty: any)."""

    mac: int
    prefixes: Tuple[Prefix, ...]


@dataclass
class SwitchPort:
    """A logical switch port as the switch pipeline sees it."""

    name: str
    switch: str
    type: str
    enabled: bool
    #: (MAC, IPs) for every entry of ``addresses`` that has a MAC; "router"
    #: ports take their peer router port's MAC and IPs.
    addresses: List[Tuple[int, Tuple[int, ...]]]
    unknown: bool  #: ``unknown`` in addresses (or localnet)
    port_security: List[PortSecurityEntry]
    peer: Optional[str] = None  #: router port name for type router

    @property
    def is_router(self) -> bool:
        return self.type == LSP_TYPE_ROUTER

    @property
    def is_localnet(self) -> bool:
        return self.type == LSP_TYPE_LOCALNET


@dataclass
class SwitchTables:
    """Everything the ``ls_in_*``/``ls_out_*`` stages of one logical switch read."""

    name: str
    ports: Dict[str, SwitchPort]
    #: ls_in_arp_rsp prio 50: IP -> (MAC, owner port)
    arp_responder: Dict[int, Tuple[int, str]]
    #: ls_in_l2_lkup prio 80: IP owned by a router -> router-type port (clone + flood_l2)
    router_arp: Dict[int, str]
    #: ls_in_l2_lkup prio 75: router MACs whose ARP requests flood to non-router ports
    router_arp_sources: Set[int]
    #: ls_in_l2_lkup prio 50: MAC -> port
    mac_table: Dict[int, str]
    flood: List[str]  #: _MC_flood
    flood_l2: List[str]  #: _MC_flood_l2 (no router ports)
    unknown: List[str]  #: _MC_unknown


@dataclass
class RouterPort:
    """A logical router port as the router pipeline sees it."""

    name: str
    router: str
    mac: int
    networks: List[Tuple[int, Prefix]]  #: (port IP, its prefix)
    gateway: bool  #: a distributed gateway port
    enabled: bool
    peer: Optional[str] = None  #: the router-type switch port that names this port

    def network_for(self, ip: int) -> Optional[Tuple[int, Prefix]]:
        for port_ip, prefix in self.networks:
            if prefix.contains(ip):
                return port_ip, prefix
        return None


@dataclass
class Route:
    """An ``lr_in_ip_routing`` entry; ``nexthop`` None means connected (reg0 = ip4.dst)."""

    prefix: Prefix
    priority: int
    outport: str
    nexthop: Optional[int]
    src_ip: int  #: reg1: the out port's address on the next hop's subnet
    src_mac: int
    static: bool


@dataclass
class NatEntry:
    """A NAT row compiled for one router."""

    type: str
    external_ip: int
    logical: Prefix
    logical_port: Optional[str]
    external_mac: Optional[int]
    stateless: bool

    @property
    def distributed(self) -> bool:
        return self.external_mac is not None and self.logical_port is not None


@dataclass
class RouterTables:
    """Everything the ``lr_in_*``/``lr_out_*`` stages of one logical router read."""

    name: str
    gateway_router: bool  #: options:chassis set
    gateway_port: Optional[str]  #: the distributed gateway port, if any
    enabled: bool
    ports: Dict[str, RouterPort]
    routes: List[Route]  #: ordered by priority, highest first
    #: lr_in_arp_resolve prio 100: (outport, next hop IP) -> MAC
    arp_static: Dict[Tuple[str, int], int]
    #: lr_in_ip_input prio 60: port IPs dropped when addressed (SNAT IPs excluded)
    drop_ips: Set[int]
    #: lr_in_arp_resolve prio 2: own IPs that are also SNAT IPs (drop when routed to)
    snat_own_ips: Set[int]
    nat: List[NatEntry]
    #: lr_out_snat: entries ordered by OVN priority, highest first
    snat: List[Tuple[int, NatEntry]]
    #: lr_in_dnat: external IP -> dnat_and_snat/dnat entry
    dnat: Dict[int, NatEntry]
    #: lr_in_unsnat: external IPs of snat / dnat_and_snat entries
    unsnat_ips: Dict[int, NatEntry]
    nat_ips: Set[int]  #: every external IP
    #: every address of every port of the router
    own_ips: Set[int] = field(default_factory=set)
    #: lr_in_ip_input prio 100: source address -> (port address, subnet
    #: broadcast) of the port it belongs to; such a source is a martian
    martian_sources: Dict[int, Tuple[int, int]] = field(default_factory=dict)
    #: learned and static neighbours (MAC_Binding): (port, IP) -> MAC
    mac_bindings: Dict[Tuple[str, int], int] = field(default_factory=dict)
    #: the Static_MAC_Binding rows, which ``reset_neighbours`` keeps
    static_mac_bindings: Dict[Tuple[str, int], int] = field(default_factory=dict)

    #: derived in __post_init__ so the pipeline looks NAT rows up, never scans them
    nat_by_ip: Dict[int, NatEntry] = field(init=False)  #: external IP -> first NAT row with it
    distributed_macs: Set[int] = field(init=False)  #: external_macs of distributed FIPs
    distributed_by_logical_ip: Dict[int, NatEntry] = field(init=False)  #: lr_in_gw_redirect prio 100
    dnat_by_logical_ip: Dict[int, NatEntry] = field(init=False)  #: lr_out_undnat on a DGP

    def __post_init__(self) -> None:
        self.nat_by_ip = {}
        self.distributed_by_logical_ip = {}
        for n in self.nat:
            self.nat_by_ip.setdefault(n.external_ip, n)
            if n.distributed and n.logical.plen == 32:
                self.distributed_by_logical_ip.setdefault(n.logical.network, n)
        self.distributed_macs = {n.external_mac for n in self.nat if n.distributed}
        self.dnat_by_logical_ip = {}
        for n in self.dnat.values():
            self.dnat_by_logical_ip.setdefault(n.logical.network, n)

    def reset_neighbours(self) -> None:
        """Forget learned MAC bindings; the static ones stay."""
        self.mac_bindings.clear()
        self.mac_bindings.update(self.static_mac_bindings)
    #: options:always_learn_from_arp_request (default true; Neutron sets
    #: false): whether any ARP request from the port's subnet creates a MAC
    #: binding, or only one for the router's own address on that port
    always_learn_from_arp_request: bool = True

    @property
    def answers_l4(self) -> bool:
        """Plain distributed routers answer UDP/TCP to their IPs; gateways drop them silently."""
        return not self.gateway_router and self.gateway_port is None


@dataclass
class Tables:
    """The compiled pipeline tables of a whole logical topology."""

    switches: Dict[str, SwitchTables]
    routers: Dict[str, RouterTables]
    switch_of_port: Dict[str, str]  #: LSP name -> switch name
    router_of_port: Dict[str, str]  #: LRP name -> router name
    #: ls_in_dhcp_options/ls_in_dhcp_response: one native DHCPv4 responder per port address entry
    dhcpv4: List[DhcpResponder] = field(default_factory=list)

    def reset_neighbours(self) -> None:
        """Forget every router's learned MAC bindings (static ones stay)."""
        for router in self.routers.values():
            router.reset_neighbours()


def parse_addresses(entry: str) -> Tuple[Optional[int], Tuple[int, ...]]:
    """One LSP ``addresses`` entry (``"MAC IP..."``) as (MAC, IPv4 addresses) integers.

    ``unknown``, ``router`` and ``dynamic`` entries own no address: (None, ()).
    """
    words = entry.split()
    if not words or words[0] in ("unknown", "router", "dynamic"):
        return None, ()
    ips = tuple(ip_to_int(w) for w in words[1:] if ":" not in w and "/" not in w)
    return mac_to_int(words[0]), ips


def build_tables(logical: LogicalTopology) -> Tables:
    """Derive the pipeline tables from a logical topology (ovn-northd's job)."""
    router_ports: Dict[str, RouterPort] = {}
    for lr in logical.routers:
        for lrp in lr.ports:
            nets = [(ip_to_int(str(i.ip)), Prefix.parse(str(i.network)))
                    for i in lrp.interfaces if i.version == 4]
            router_ports[lrp.name] = RouterPort(lrp.name, lr.name, mac_to_int(lrp.mac), nets,
                                                lrp.is_gateway_port, lrp.enabled)

    nat_of_router = {lr.name: _nat_entries(lr) for lr in logical.routers}
    switches: Dict[str, SwitchTables] = {}
    switch_of_port: Dict[str, str] = {}
    for ls in logical.switches:
        ports: Dict[str, SwitchPort] = {}
        for lsp in ls.ports:
            switch_of_port[lsp.name] = ls.name
            peer = lsp.options.get("router-port") if lsp.type == LSP_TYPE_ROUTER else None
            addresses: List[Tuple[int, Tuple[int, ...]]] = []
            if peer and peer in router_ports:
                rp = router_ports[peer]
                rp.peer = lsp.name
                addresses.append((rp.mac, tuple(ip for ip, _ in rp.networks)))
            for entry in lsp.addresses:
                mac, ips = parse_addresses(entry)
                if mac is not None:
                    addresses.append((mac, ips))
            security = []
            for entry in lsp.port_security:
                words = entry.split()
                security.append(PortSecurityEntry(mac_to_int(words[0]), tuple(
                    Prefix.parse(w) for w in words[1:] if ":" not in w)))
            ports[lsp.name] = SwitchPort(
                lsp.name, ls.name, lsp.type, lsp.enabled, addresses,
                "unknown" in lsp.addresses or lsp.type == LSP_TYPE_LOCALNET, security, peer)
        switches[ls.name] = _switch_tables(ls.name, ports, router_ports, nat_of_router)

    routers: Dict[str, RouterTables] = {}
    for lr in logical.routers:
        routers[lr.name] = _router_tables(lr, nat_of_router[lr.name], router_ports, switches, switch_of_port)
    for binding in logical.static_mac_bindings:
        lr_name = router_ports[binding.logical_port].router
        routers[lr_name].static_mac_bindings[(binding.logical_port, ip_to_int(binding.ip))] = \
            mac_to_int(binding.mac)
    for router in routers.values():
        router.reset_neighbours()
    return Tables(switches, routers, switch_of_port, {p.name: p.router for p in router_ports.values()},
                  dhcpv4_responders(logical))


def _nat_entries(lr) -> List[NatEntry]:
    """A logical router's NAT rows as table entries (addresses as ints)."""
    return [NatEntry(n.type, ip_to_int(n.external_ip), Prefix.parse(n.logical_ip), n.logical_port,
                     mac_to_int(n.external_mac) if n.external_mac else None, n.stateless)
            for n in lr.nat]


def _switch_tables(name: str, ports: Dict[str, SwitchPort], router_ports: Dict[str, RouterPort],
                   nat_of_router: Dict[str, List[NatEntry]]) -> SwitchTables:
    arp_responder: Dict[int, Tuple[int, str]] = {}
    router_arp: Dict[int, str] = {}
    router_arp_sources: Set[int] = set()
    mac_table: Dict[int, str] = {}
    router_lsps = [p for p in ports.values() if p.is_router and p.peer in router_ports]
    for port in ports.values():
        # Ports that take unknown addresses get no ARP responder entry: the
        # VM may have moved its IP, so OVN lets the request through.
        for mac, ips in port.addresses:
            mac_table.setdefault(mac, port.name)
            if not port.unknown:
                for ip in ips:
                    arp_responder.setdefault(ip, (mac, port.name))
    for port in router_lsps:
        rp = router_ports[port.peer]
        for ip, _ in rp.networks:
            router_arp.setdefault(ip, port.name)
        sources = {rp.mac}
        has_dgp = any(r.gateway for r in router_ports.values() if r.router == rp.router)
        for nat in nat_of_router[rp.router]:
            # A NAT address is announced on the ports whose subnet holds it;
            # the other ports of a router with a distributed gateway port get
            # the floating IPs (dnat_and_snat) too, as OVN's prio-80 flows say.
            if rp.network_for(nat.external_ip) is None:
                if has_dgp and not rp.gateway and nat.type == NAT_DNAT_AND_SNAT:
                    router_arp.setdefault(nat.external_ip, port.name)
                continue
            if rp.gateway or not has_dgp:
                router_arp.setdefault(nat.external_ip, port.name)
            if nat.distributed and rp.gateway:
                mac_table.setdefault(nat.external_mac, port.name)
                sources.add(nat.external_mac)
        # OVN has the prio-75 flow for every router port; with one router port
        # flooding to _MC_flood_l2 reaches the same ports as _MC_flood would.
        router_arp_sources |= sources
    flood = list(ports)
    return SwitchTables(
        name, ports, arp_responder, router_arp, router_arp_sources, mac_table, flood,
        [p for p in flood if not ports[p].is_router], [p for p in flood if ports[p].unknown])


def _martian_sources(ports: Dict[str, RouterPort]) -> Dict[int, Tuple[int, int]]:
    # Each port's addresses and subnet broadcasts; the first port to claim one
    # names it in the trace, as the rule order of lr_in_ip_input does.
    sources: Dict[int, Tuple[int, int]] = {}
    for rp in ports.values():
        for ip, prefix in rp.networks:
            sources.setdefault(ip, (ip, prefix.broadcast))
            sources.setdefault(prefix.broadcast, (ip, prefix.broadcast))
    return sources


def _route_priority(plen: int, connected: bool) -> int:
    # lr_in_ip_routing: connected routes beat static routes of the same length.
    return plen * 3 + (2 if connected else 1)


def _router_tables(lr, nat: List[NatEntry], router_ports: Dict[str, RouterPort], switches: Dict[str, SwitchTables],
                   switch_of_port: Dict[str, str]) -> RouterTables:
    ports = {p.name: router_ports[p.name] for p in lr.ports}
    gateway_port = next((p.name for p in lr.ports if p.is_gateway_port), None)
    routes: List[Route] = []
    for rp in ports.values():
        for ip, prefix in rp.networks:
            routes.append(Route(prefix, _route_priority(prefix.plen, True), rp.name, None, ip, rp.mac, False))
    for sr in lr.static_routes:
        prefix = Prefix.parse(sr.ip_prefix)
        nexthop = ip_to_int(sr.nexthop)
        out = next(((rp, net) for rp in ports.values() if (net := rp.network_for(nexthop))), None)
        if out is None:
            continue  # northd ignores a route whose next hop no port reaches
        rp, (src_ip, _) = out
        routes.append(Route(prefix, _route_priority(prefix.plen, False), rp.name, nexthop, src_ip, rp.mac, True))
    routes.sort(key=lambda r: -r.priority)

    snat_ips = {n.external_ip for n in nat if n.type in (NAT_SNAT, NAT_DNAT_AND_SNAT)}
    own_ips = {ip for rp in ports.values() for ip, _ in rp.networks}
    snat: List[Tuple[int, NatEntry]] = []
    for n in nat:
        if n.type in (NAT_SNAT, NAT_DNAT_AND_SNAT):
            # lr_out_snat priority: logical_ip prefix length + 1 (+128 on a
            # distributed gateway port), so a floating IP beats its subnet.
            snat.append((n.logical.plen + 1 + (128 if gateway_port else 0), n))
    snat.sort(key=lambda e: -e[0])

    arp_static: Dict[Tuple[str, int], int] = {}
    dynamic_neigh = lr.options.get("dynamic_neigh_routers") == "true"
    for rp in ports.values():
        ls_name = switch_of_port.get(rp.peer) if rp.peer else None
        if ls_name is None:
            continue
        for lsp in switches[ls_name].ports.values():
            if lsp.name == rp.peer:
                continue
            if lsp.is_router and dynamic_neigh:
                continue
            for mac, ips in lsp.addresses:
                for ip in ips:
                    arp_static.setdefault((rp.name, ip), mac)
        # Only a distributed gateway port resolves the router's own NAT
        # addresses (to itself, or to a distributed FIP's external_mac):
        # that is how hairpin traffic to a floating IP reaches lr_out_egr_loop.
        if rp.gateway:
            for n in nat:
                if rp.network_for(n.external_ip) is None:
                    continue
                mac = n.external_mac if n.distributed else rp.mac
                arp_static.setdefault((rp.name, n.external_ip), mac)

    return RouterTables(
        name=lr.name,
        gateway_router=lr.is_gateway_router,
        gateway_port=gateway_port,
        enabled=lr.enabled,
        ports=ports,
        routes=routes,
        arp_static=arp_static,
        own_ips=own_ips,
        martian_sources=_martian_sources(ports),
        drop_ips=own_ips - snat_ips,
        snat_own_ips=own_ips & snat_ips,
        nat=nat,
        snat=snat,
        dnat={n.external_ip: n for n in nat if n.type in (NAT_DNAT, NAT_DNAT_AND_SNAT)},
        unsnat_ips={n.external_ip: n for n in nat if n.type in (NAT_SNAT, NAT_DNAT_AND_SNAT)},
        nat_ips={n.external_ip for n in nat},
        # smap_get_bool(..., true): false only when the option says "false"
        always_learn_from_arp_request=lr.options.get("always_learn_from_arp_request", "true").lower() != "false",
    )
