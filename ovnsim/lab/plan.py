"""What a lab is made of: the Linux objects that realise an NB model.

:func:`plan_lab` turns a :class:`~ovnsim.nb.model.LogicalTopology` into a
:class:`LabPlan` — plain data (namespaces, bridges, veth links, addresses,
routes, neighbour and FDB entries, sysctls, nftables rulesets) that
:mod:`ovnsim.lab.build` creates with netlink.  Planning touches no kernel
object, so it is tested without root, and the plan is what the ledger
records before anything is created.

The mapping (one namespace per VM port, per logical router and per
external network's upstream; every bridge in one ``sw`` namespace) and its
differences from OVN are described in ``docs/lab.md``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from ovnsim.errors import OvnsimError
from ovnsim.lab.acl import SYSCTL_BRIDGE_CONNTRACK, AclPlan, acl_ruleset
from ovnsim.nb.model import (LSP_TYPE_LOCALNET, LSP_TYPE_LOCALPORT, LSP_TYPE_ROUTER, LSP_TYPE_VM, NAT_DNAT,
                             NAT_DNAT_AND_SNAT, NAT_SNAT, LogicalRouter, LogicalTopology)
from ovnsim.northd.tables import int_to_ip, int_to_mac, parse_addresses

#: Every namespace of a lab is named ``ovnsim-<lab>-<role>-<object>``.
NETNS_PREFIX = "ovnsim-"
#: Every interface name starts with this and the lab's 4-hex token: ``os1a2b...``.
IFNAME_PREFIX = "os"
#: Linux's limit on an interface name (IFNAMSIZ - 1).
IFNAME_MAX = 15
#: The outside host every upstream namespace owns (RFC 5737 documentation
#: address, the same ``outside`` as ``ovnsim trace --to outside``).
OUTSIDE_ADDRESS = "198.51.100.7"
#: MTU of a network whose NB model names none.
DEFAULT_MTU = 1500
#: Lab names: what a namespace name and a state file name can safely hold.
LAB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")

ROLE_VM = "vm"
ROLE_ROUTER = "lr"
ROLE_UPSTREAM = "up"
ROLE_SWITCHES = "sw"

#: Sysctls of every lab namespace.  IPv6 is off so no link-local address,
#: DAD, router or multicast-listener solicitation ever appears in a capture
#: (the NB models ovnsim builds are IPv4); reverse-path filtering is off
#: because new namespaces inherit the host's value and OVN has none.
SYSCTL_COMMON = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
}
#: Sysctls of a router namespace: the closest Linux gets to an OVN router
#: (docs/lab.md).  OVN builds a router's own reply or ICMP error with TTL 255
#: and then routes it, decrementing it, so it leaves with 254: Linux sends
#: its own packets with ``ip_default_ttl`` and does not decrement them, so
#: 254 it is.  OVN's errors come from the address of the port the packet came
#: in on and are not rate limited; OVN never sends ICMP redirects (a hairpin
#: on a transit switch is normal) and a router port answers ARP only for its
#: own addresses.
SYSCTL_ROUTER = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.ip_default_ttl": "254",
    "net.ipv4.icmp_errors_use_inbound_ifaddr": "1",
    "net.ipv4.icmp_ratelimit": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.arp_ignore": "1",
    "net.ipv4.conf.default.arp_ignore": "1",
}


#: TCP and UDP addressed to a gateway router's (or DGP router's) own addresses: dropped, as OVN does.
ROUTER_ADDRESS_DROP = """table inet ovnsim_router {
  chain router_input {
    type filter hook input priority 0;
    meta l4proto { tcp, udp } drop
  }
}
"""


class LabError(OvnsimError):
    """A lab cannot be planned, built, found or torn down."""


class LabUnavailableError(LabError):
    """This machine cannot run labs (not root, no netns, bridge or nftables support)."""


@dataclass
class Link:
    """One veth pair: ``bridge_ifname`` on ``bridge`` in the switches namespace,
    ``ifname`` in namespace ``netns`` with ``mac``, ``addresses`` and ``mtu``.

    ``port`` is the logical switch port the link realises; ``flood`` is False
    for ports OVN's L2 lookup never floods unknown unicast to (their address
    is known); ``fdb`` the MACs the bridge forwards to this port statically
    (OVN learns nothing for them: it knows them from the NB addresses).
    """

    port: str
    bridge: str
    bridge_ifname: str
    netns: str
    ifname: str
    mac: str
    addresses: List[str]
    mtu: int
    flood: bool = False
    fdb: List[str] = field(default_factory=list)


@dataclass
class FipPort:
    """A distributed floating IP's own MAC: a macvlan on the router's gateway port in the router namespace.

    OVN answers ARP for a distributed floating IP with its ``external_mac``
    and sends the VM's external traffic with it (NAT on the VM's chassis).
    The macvlan ``ifname`` on ``lower`` (the gateway port's veth) carries
    ``mac`` and owns ``address``; what the VM at ``logical_ip`` sends is
    routed by routing table ``table`` (a rule ``from logical_ip``), whose
    external routes leave through the macvlan.
    """

    lower: str
    ifname: str
    mac: str
    address: str  #: the floating IP, ``/32``
    logical_ip: str
    table: int
    #: (destination, next hop or "", device): the table's routes
    routes: List[Tuple[str, str, str]] = field(default_factory=list)
    #: (ip, mac): permanent neighbour entries on the macvlan (the upstream gateway's)
    neighbours: List[Tuple[str, str]] = field(default_factory=list)


@dataclass
class Namespace:
    """One network namespace and what lives in it besides its veth ends."""

    key: str  #: ``vm:<port>``, ``lr:<router>``, ``up:<switch>``, ``sw``
    name: str
    role: str
    sysctls: Dict[str, str]
    #: (destination prefix, [next hops]) — several next hops make an ECMP route
    routes: List[Tuple[str, List[str]]] = field(default_factory=list)
    #: (ifname, ip, mac): permanent neighbour entries
    neighbours: List[Tuple[str, str, str]] = field(default_factory=list)
    #: addresses on the loopback interface (the upstream's outside address)
    loopback: List[str] = field(default_factory=list)
    #: an nftables ruleset loaded with ``nft -f`` in the namespace, or ""
    nft: str = ""
    #: the logical objects it realises, for ``status`` (port, router or switch names)
    objects: List[str] = field(default_factory=list)
    #: distributed floating IPs answered with their own MAC (router namespaces)
    fip_ports: List[FipPort] = field(default_factory=list)


@dataclass
class Bridge:
    """A Linux bridge for one logical switch, in the switches namespace."""

    switch: str
    ifname: str
    mtu: int


@dataclass
class LabPlan:
    """Everything ``up`` creates, in creation order, and the names of it all."""

    name: str
    token: str
    source: str
    namespaces: List[Namespace]
    bridges: List[Bridge]
    links: List[Link]
    #: logical switch port -> the namespace that is its endpoint (VM, upstream)
    ports: Dict[str, str]
    #: what the lab does not reproduce of this topology (one line each)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data for the ledger (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LabPlan":
        """The plan :meth:`to_dict` wrote."""
        return cls(
            name=data["name"], token=data["token"], source=data.get("source", ""),
            namespaces=[Namespace(**{**n, "routes": [tuple(r) for r in n["routes"]],
                                     "neighbours": [tuple(x) for x in n["neighbours"]],
                                     "fip_ports": [FipPort(**{**f, "routes": [tuple(r) for r in f["routes"]],
                                                              "neighbours": [tuple(x) for x in f["neighbours"]]})
                                                   for f in n.get("fip_ports", ())]})
                        for n in data["namespaces"]],
            bridges=[Bridge(**b) for b in data["bridges"]],
            links=[Link(**link) for link in data["links"]],
            ports=dict(data["ports"]), notes=list(data.get("notes", ())))

    def namespace(self, key: str) -> Namespace:
        """The namespace with ``key`` (``vm:<port>``, ``lr:<router>``, ``up:<switch>``, ``sw``)."""
        for ns in self.namespaces:
            if ns.key == key:
                return ns
        raise KeyError(key)

    def link_of_port(self, port: str) -> Link:
        """The veth link realising logical switch port ``port``."""
        for link in self.links:
            if link.port == port:
                return link
        raise KeyError(port)


def lab_token(name: str, salt: int = 0) -> str:
    """The short ``os`` + 4 hex token that starts every interface name of lab ``name``."""
    digest = hashlib.sha1(f"{name}/{salt}".encode()).hexdigest()
    return IFNAME_PREFIX + digest[:4]


def check_lab_name(name: str) -> str:
    """``name`` if it is a valid lab name, else a :class:`LabError`."""
    if not LAB_NAME_RE.match(name or ""):
        raise LabError(f"lab name {name!r}: use 1-32 letters, digits, '.', '_' or '-', starting with a letter "
                       "or digit")
    return name


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _derived_mac(text: str) -> str:
    digest = hashlib.sha1(text.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def _addresses(entry: str) -> Tuple[Optional[str], List[str]]:
    """One LSP ``addresses`` entry as (MAC, [IPv4 addresses]) text, read by the
    one parser of such entries; keywords (router, unknown, dynamic) -> (None, [])."""
    mac, ips = parse_addresses(entry)
    if mac is None:
        return None, []
    return int_to_mac(mac), [int_to_ip(ip) for ip in ips]


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_interface(text), ipaddress.IPv4Interface)
    except ValueError:
        return False


class _Planner:
    def __init__(self, logical: LogicalTopology, name: str, token: str):
        self.logical = logical
        self.name = name
        self.token = token
        self.namespaces: List[Namespace] = []
        self.bridges: List[Bridge] = []
        self.links: List[Link] = []
        self.ports: Dict[str, str] = {}
        self.notes: List[str] = []
        self.used_ns_names: set = set()
        self.n_links = 0
        self.n_fips = 0
        self.dhcp = {d.key: d for d in logical.dhcp_options}
        self.router_ports = logical.router_ports()
        # router port name -> the switch and switch port it is plugged into
        self.lrp_switch: Dict[str, Tuple[str, str]] = {}
        for ls in logical.switches:
            for lsp in ls.ports:
                if lsp.type == LSP_TYPE_ROUTER and lsp.options.get("router-port"):
                    self.lrp_switch[lsp.options["router-port"]] = (ls.name, lsp.name)

    # -- names ------------------------------------------------------------
    def ns_name(self, role: str, obj: str) -> str:
        base = f"{NETNS_PREFIX}{self.name}-{role}" + (f"-{_safe(obj)}" if obj else "")
        name, i = base, 1
        while name in self.used_ns_names:
            i += 1
            name = f"{base}.{i}"
        self.used_ns_names.add(name)
        return name

    def ifname(self, kind: str, index: int) -> str:
        name = f"{self.token}{kind}{index}"
        assert len(name) <= IFNAME_MAX, name
        return name

    def add_ns(self, key: str, role: str, obj: str, sysctls: Dict[str, str]) -> Namespace:
        ns = Namespace(key=key, name=self.ns_name(role, obj), role=role, sysctls={**SYSCTL_COMMON, **sysctls},
                       objects=[obj] if obj else [])
        self.namespaces.append(ns)
        return ns

    def add_link(self, port: str, bridge: Bridge, ns: Namespace, mac: str, addresses: List[str],
                 flood: bool = False) -> Link:
        self.n_links += 1
        link = Link(port=port, bridge=bridge.ifname, bridge_ifname=self.ifname("s", self.n_links), netns=ns.name,
                    ifname=self.ifname("p", self.n_links), mac=mac, addresses=addresses, mtu=bridge.mtu,
                    flood=flood, fdb=[mac])
        self.links.append(link)
        return link

    # -- facts read off the NB model ---------------------------------------
    def switch_mtu(self, ls) -> int:
        if ls.external_ids.get("neutron:mtu", "").isdigit():
            return int(ls.external_ids["neutron:mtu"])
        for lsp in ls.ports:
            row = self.dhcp.get(lsp.dhcpv4_options or "")
            if row is not None and row.options.get("mtu", "").isdigit():
                return int(row.options["mtu"])
        return DEFAULT_MTU

    def router_networks_on(self, ls) -> List[Tuple[str, ipaddress.IPv4Interface]]:
        """(router port, network) for every router port plugged into switch ``ls``."""
        out = []
        for lsp in ls.ports:
            lrp_name = lsp.options.get("router-port") if lsp.type == LSP_TYPE_ROUTER else None
            if lrp_name in self.router_ports:
                for iface in self.router_ports[lrp_name][1].interfaces:
                    if isinstance(iface, ipaddress.IPv4Interface):
                        out.append((lrp_name, iface))
        return out

    def prefix_of(self, ls, lsp, ip: str) -> int:
        for cidr in lsp.external_ids.get("neutron:cidrs", "").split():
            iface = ipaddress.ip_interface(cidr)
            if str(iface.ip) == ip:
                return iface.network.prefixlen
        addr = ipaddress.ip_address(ip)
        for _lrp, net in self.router_networks_on(ls):
            if addr in net.network:
                return net.network.prefixlen
        for row in self.dhcp.values():
            if addr in ipaddress.ip_network(row.cidr):
                return ipaddress.ip_network(row.cidr).prefixlen
        return 32

    # -- the plan -----------------------------------------------------------
    def plan(self) -> LabPlan:
        logical = self.logical
        sw = self.add_ns(ROLE_SWITCHES, ROLE_SWITCHES, "", {})
        sw.objects = [ls.name for ls in logical.switches]
        all_owned = self.owned_addresses()
        ps_rules: List[str] = []
        vm_by_switch: Dict[str, List[Tuple[str, List[str], str]]] = {}
        upstream_of: Dict[str, Namespace] = {}

        for i, ls in enumerate(logical.switches, start=1):
            bridge = Bridge(switch=ls.name, ifname=self.ifname("b", i), mtu=self.switch_mtu(ls))
            self.bridges.append(bridge)
            for lsp in ls.ports:
                if lsp.type == LSP_TYPE_VM:
                    self.plan_vm(ls, lsp, bridge, ps_rules, vm_by_switch)
                elif lsp.type == LSP_TYPE_LOCALNET:
                    upstream_of[ls.name] = self.plan_upstream(ls, lsp, bridge, all_owned)
                elif lsp.type == LSP_TYPE_LOCALPORT:
                    self.notes.append(f"{lsp.name}: localport (metadata) ports have no namespace in a lab")
                elif lsp.type != LSP_TYPE_ROUTER:
                    self.notes.append(f"{lsp.name}: switch port type {lsp.type!r} is not realised")

        for lr in logical.routers:
            self.plan_router(lr, vm_by_switch)

        # Gateway addresses of VMs: static neighbours for their router ports
        # and upstream gateways (OVN's ARP responder answers for them).
        if ps_rules:
            sw.nft = _port_security_ruleset(ps_rules)
        # Security groups: the port groups' ACLs on the VM ports' bridge ports.
        acls = AclPlan(logical, {link.port: link.bridge_ifname for link in self.links if link.port in self.ports
                                 and self.ports[link.port] == link.netns
                                 and any(ns.name == link.netns and ns.role == ROLE_VM for ns in self.namespaces)})
        self.notes.extend(acls.notes)
        if acls:
            sw.nft += acl_ruleset(acls)
            sw.sysctls.update(SYSCTL_BRIDGE_CONNTRACK)
        return LabPlan(name=self.name, token=self.token, source=logical.source, namespaces=self.namespaces,
                       bridges=self.bridges, links=self.links, ports=self.ports, notes=self.notes)

    def owned_addresses(self) -> set:
        owned = set()
        for _lr, lrp in self.router_ports.values():
            owned.update(str(i.ip) for i in lrp.interfaces)
        for ls in self.logical.switches:
            for lsp in ls.ports:
                for entry in lsp.addresses:
                    owned.update(_addresses(entry)[1])
        for lr in self.logical.routers:
            owned.update(n.external_ip for n in lr.nat)
        return owned

    def plan_vm(self, ls, lsp, bridge: Bridge, ps_rules: List[str], vm_by_switch) -> None:
        mac, ips = None, []
        for entry in lsp.addresses:
            mac, ips = _addresses(entry)
            if mac:
                break
        if mac is None:
            mac = _derived_mac(f"{self.name}/{lsp.name}")
            self.notes.append(f"{lsp.name}: no MAC in its addresses; the lab gives it {mac}")
        ns = self.add_ns(f"vm:{lsp.name}", ROLE_VM, lsp.name, {})
        addresses = [f"{ip}/{self.prefix_of(ls, lsp, ip)}" for ip in ips]
        unknown = "unknown" in lsp.addresses
        link = self.add_link(lsp.name, bridge, ns, mac, addresses, flood=unknown)
        self.ports[lsp.name] = ns.name
        vm_by_switch.setdefault(ls.name, []).append((lsp.name, ips, mac))
        gateway = self.gateway_of(ls, lsp, ips)
        if gateway:
            ns.routes.append(("0.0.0.0/0", [gateway]))
            mac_gw = self.mac_of_gateway(ls, gateway)
            if mac_gw:
                ns.neighbours.append((link.ifname, gateway, mac_gw))
        if lsp.port_security:
            ps_rules.append(_port_security_chain(link.bridge_ifname, lsp.port_security))

    def gateway_of(self, ls, lsp, ips: List[str]) -> Optional[str]:
        row = self.dhcp.get(lsp.dhcpv4_options or "")
        if row is not None:
            return row.options.get("router")
        for ip in ips:
            addr = ipaddress.ip_address(ip)
            for _lrp, net in self.router_networks_on(ls):
                if addr in net.network:
                    return str(net.ip)
        return None

    def mac_of_gateway(self, ls, gateway: str) -> Optional[str]:
        for lrp_name, net in self.router_networks_on(ls):
            if str(net.ip) == gateway:
                return self.router_ports[lrp_name][1].mac.lower()
        for binding in self.logical.static_mac_bindings:
            if binding.ip == gateway:
                return binding.mac.lower()
        return None

    def plan_upstream(self, ls, lsp, bridge: Bridge, owned: set) -> Namespace:
        """The upstream router of an external network: its gateway address(es) and the outside host."""
        ns = self.add_ns(f"up:{ls.name}", ROLE_UPSTREAM, ls.name, {})
        ns.objects = [ls.name, lsp.name]
        subnets = {net.network for _lrp, net in self.router_networks_on(ls)}
        for other in ls.ports:
            for cidr in other.external_ids.get("neutron:cidrs", "").split():
                subnets.add(ipaddress.ip_interface(cidr).network)
        gateways: Dict[str, int] = {}
        for row in self.dhcp.values():
            net = ipaddress.ip_network(row.cidr)
            if net in subnets and row.options.get("router"):
                gateways[row.options["router"]] = net.prefixlen
        for lrp_name, net in self.router_networks_on(ls):
            for route in self.router_ports[lrp_name][0].static_routes:
                hop = route.nexthop
                if hop and _is_ipv4(hop) and ipaddress.ip_address(hop) in net.network and hop not in owned:
                    gateways.setdefault(hop, net.network.prefixlen)
        mac = None
        for binding in self.logical.static_mac_bindings:
            if binding.ip in gateways:
                mac = binding.mac.lower()
                break
        mac = mac or _derived_mac(f"{self.name}/upstream/{ls.name}")
        addresses = [f"{ip}/{plen}" for ip, plen in gateways.items()]
        if not addresses:
            self.notes.append(f"{ls.name}: no upstream gateway address known; the upstream has only "
                              f"{OUTSIDE_ADDRESS}")
        # The localnet port floods: OVN sends unknown unicast out of it.
        self.add_link(lsp.name, bridge, ns, mac, addresses, flood=True)
        ns.loopback.append(f"{OUTSIDE_ADDRESS}/32")
        self.ports[lsp.name] = ns.name
        return ns

    def plan_router(self, lr: LogicalRouter, vm_by_switch) -> None:
        ns = self.add_ns(f"lr:{lr.name}", ROLE_ROUTER, lr.name, SYSCTL_ROUTER)
        port_link: Dict[str, Link] = {}
        bridges = {b.switch: b for b in self.bridges}
        for lrp in lr.ports:
            if lrp.name not in self.lrp_switch:
                self.notes.append(f"{lr.name}: router port {lrp.name} is plugged into no switch; not realised")
                continue
            switch, lsp_name = self.lrp_switch[lrp.name]
            addresses = [n for n in lrp.networks if _is_ipv4(n)]
            link = self.add_link(lsp_name, bridges[switch], ns, lrp.mac.lower(), addresses)
            port_link[lrp.name] = link
            # OVN knows every VM address on its switches (no ARP needed).
            for _port, ips, mac in vm_by_switch.get(switch, ()):
                ns.neighbours.extend((link.ifname, ip, mac) for ip in ips)
            # and every other router port on the switch (join and transit switches).
            ls = self.logical.switch(switch)
            for other_lrp, net in self.router_networks_on(ls):
                if other_lrp != lrp.name:
                    ns.neighbours.append((link.ifname, str(net.ip), self.router_ports[other_lrp][1].mac.lower()))
        for binding in self.logical.static_mac_bindings:
            if binding.logical_port in port_link:
                ns.neighbours.append((port_link[binding.logical_port].ifname, binding.ip, binding.mac.lower()))
        by_prefix: Dict[str, List[str]] = {}
        for route in lr.static_routes:
            if route.policy != "dst-ip":
                self.notes.append(f"{lr.name}: {route.policy} route {route.ip_prefix} is not realised")
                continue
            if not _is_ipv4(route.ip_prefix):
                continue
            prefix = str(ipaddress.ip_network(route.ip_prefix, strict=False))
            by_prefix.setdefault(prefix, []).append(route.nexthop)
        ns.routes.extend((prefix, hops) for prefix, hops in by_prefix.items())
        if lr.nat:
            self.plan_nat(lr, ns, port_link)
        if lr.is_gateway_router or lr.gateway_ports:
            # OVN's lr_in_ip_input answers TCP and UDP to its own addresses
            # (reset, port unreachable) only on routers with neither; on a
            # gateway router or one with a DGP they are dropped.
            ns.nft += ROUTER_ADDRESS_DROP

    def plan_nat(self, lr: LogicalRouter, ns: Namespace, port_link: Dict[str, Link]) -> None:
        dgp = lr.gateway_ports
        gw_link = port_link.get(dgp[0].name) if dgp else None
        for nat in lr.nat:
            ext = ipaddress.ip_address(nat.external_ip)
            link = gw_link
            if link is None:
                link = next((port_link[p.name] for p in lr.ports if p.name in port_link
                             and any(ext in i.network for i in p.interfaces)), None)
            if link is None:
                self.notes.append(f"{lr.name}: NAT {nat.external_ip}: no router port on its network; not realised")
                continue
            if nat.external_mac and nat.logical_port and nat.type == NAT_DNAT_AND_SNAT and dgp \
                    and link is gw_link:
                # A distributed floating IP: answered, and its VM's traffic
                # sent, with its own external_mac.
                ns.fip_ports.append(self.fip_port(lr, ns, nat, link, port_link))
                continue
            # OVN answers ARP for every NAT external address on the gateway port.
            own = {a.split("/")[0] for a in link.addresses}
            if nat.external_ip not in own:
                link.addresses.append(f"{nat.external_ip}/32")
        exits = [gw_link.ifname] + [f.ifname for f in ns.fip_ports] if (dgp and gw_link) else None
        ns.nft = _nat_ruleset(lr, exits)

    def fip_port(self, lr: LogicalRouter, ns: Namespace, nat, gw_link: Link, port_link: Dict[str, Link]) -> FipPort:
        """The macvlan of a distributed floating IP, and the routing table its VM's traffic takes."""
        self.n_fips += 1
        ifname = self.ifname("f", self.n_fips)
        mac = nat.external_mac.lower()
        gw_link.fdb.append(mac)  # the bridge delivers frames for it to the gateway port
        external = [ipaddress.ip_interface(a).network for a in gw_link.addresses
                    if ipaddress.ip_interface(a).network.prefixlen < 32]  # not the NAT addresses
        routes: List[Tuple[str, str, str]] = []
        for link in port_link.values():  # the router's other networks, as in the main table
            if link is not gw_link:
                routes.extend((str(ipaddress.ip_interface(a).network), "", link.ifname) for a in link.addresses)
        routes.extend((str(net), "", ifname) for net in external)
        for route in lr.static_routes:
            if route.policy != "dst-ip" or not _is_ipv4(route.ip_prefix) or not route.nexthop:
                continue
            hop = ipaddress.ip_address(route.nexthop)
            dev = ifname if any(hop in net for net in external) else ""
            routes.append((str(ipaddress.ip_network(route.ip_prefix, strict=False)), route.nexthop, dev))
        neighbours = [(ip, mac_) for dev, ip, mac_ in ns.neighbours if dev == gw_link.ifname]
        return FipPort(lower=gw_link.ifname, ifname=ifname, mac=mac, address=f"{nat.external_ip}/32",
                       logical_ip=nat.logical_ip, table=100 + self.n_fips, routes=routes, neighbours=neighbours)


def _port_security_chain(ifname: str, entries) -> str:
    """Bridge-family chains admitting only what OVN's port security admits from and to ``ifname``.

    In (``ls_in_port_sec_l2``/``_ip``): the source MAC, and for IPv4 and ARP
    the source addresses, of one of the port-security entries.  Out
    (``ls_out_port_sec_l2``/``_ip``): a destination MAC of an entry (or
    broadcast/multicast) and, for IPv4, an address of that entry or a
    broadcast/multicast address.
    """
    lines_in, lines_out = [], []
    for entry in entries:
        words = entry.split()
        mac = words[0].lower()
        ips = [w for w in words[1:] if _is_ipv4(w)]
        if not ips:
            lines_in.append(f"ether saddr {mac} return")
            lines_out.append(f"ether daddr {mac} return")
            continue
        ipset = "{ " + ", ".join(ips) + " }"
        lines_in.append(f"ether saddr {mac} ether type ip ip saddr {ipset} return")
        # DHCP discover before the VM has an address (OVN admits it too).
        lines_in.append(f"ether saddr {mac} ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 "
                        "udp dport 67 return")
        lines_in.append(f"ether saddr {mac} ether type arp arp saddr ether {mac} arp saddr ip {ipset} return")
        out_set = "{ " + ", ".join(ips + ["255.255.255.255", "224.0.0.0/4"]) + " }"
        lines_out.append(f"ether daddr {mac} ether type ip ip daddr {out_set} return")
        lines_out.append(f"ether daddr {mac} ether type != ip return")
    lines_out.append("ether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 ether type != ip return")
    lines_out.append("ether daddr & 01:00:00:00:00:00 == 01:00:00:00:00:00 ip daddr { 255.255.255.255, 224.0.0.0/4 } "
                     "return")
    body_in = "\n    ".join(lines_in + ["drop"])
    body_out = "\n    ".join(lines_out + ["drop"])
    return (f"  chain ps_in_{ifname} {{\n    {body_in}\n  }}\n"
            f"  chain ps_out_{ifname} {{\n    {body_out}\n  }}")


def _port_security_ruleset(chains: List[str]) -> str:
    jumps = []
    for chain in chains:
        ifname = chain.split("ps_in_", 1)[1].split(" ", 1)[0]
        jumps.append(f'    iifname "{ifname}" jump ps_in_{ifname}')
        jumps.append(f'    oifname "{ifname}" jump ps_out_{ifname}')
    return ("table bridge ovnsim_ps {\n  chain ps_forward {\n    type filter hook forward priority 0; "
            "policy accept;\n" + "\n".join(jumps) + "\n  }\n" + "\n".join(chains) + "\n}\n")


#: The packet mark of a hairpin through a DGP router's floating IP (router namespaces only).
HAIRPIN_MARK = 0x100


def _nat_ruleset(lr: LogicalRouter, exits: Optional[List[str]]) -> str:
    """nftables rules for a router's NAT rows.

    Stateful rows are conntrack NAT (``dnat to`` / ``snat to``); stateless
    floating IPs rewrite both ways without conntrack, as OVN's stateless NAT.
    On a distributed gateway port SNAT applies only to what leaves through
    it or a distributed floating IP's macvlan (``exits``, matched by
    ``oifname``), and to a hairpin to one of its floating IPs; a gateway
    router SNATs whatever matches, as OVN's ``lr_out_snat`` on a gateway
    router has no outport match.
    """
    oif = ("oifname { " + ", ".join(f'"{name}"' for name in exits) + " } ") if exits else ""
    pre, post, sl_pre, sl_post = [], [], [], []
    # A hairpin on a DGP router (a VM to a floating IP of the same router):
    # OVN routes it out of the gateway port, where lr_out_snat translates its
    # source as for anything leaving, and loops it back.  It is marked before
    # any rewrite and SNATed as if it left; stateless rows leave it tracked
    # so the stateful SNAT of its subnet can apply.
    hairpin = exits and any(n.type in (NAT_DNAT, NAT_DNAT_AND_SNAT) for n in lr.nat)
    keep = f"meta mark != {HAIRPIN_MARK:#x} " if hairpin else ""
    if hairpin:
        ext = sorted({n.external_ip for n in lr.nat if n.type in (NAT_DNAT, NAT_DNAT_AND_SNAT)})
        sl_pre.append(f"iifname != {{ {', '.join(chr(34) + e + chr(34) for e in exits)} }} "
                      f"ip daddr {{ {', '.join(ext)} }} meta mark set {HAIRPIN_MARK:#x}")
    # More specific logical IPs first, as OVN orders SNAT by prefix length.
    rows = sorted(lr.nat, key=lambda n: -ipaddress.ip_network(n.logical_ip, strict=False).prefixlen)
    for nat in rows:
        if nat.type in (NAT_DNAT, NAT_DNAT_AND_SNAT):
            if nat.stateless:
                sl_pre.append(f"{keep}ip daddr {nat.external_ip} ip daddr set {nat.logical_ip} notrack")
                if hairpin:
                    sl_pre.append(f"meta mark {HAIRPIN_MARK:#x} ip daddr {nat.external_ip} ip daddr set {nat.logical_ip}")
            else:
                pre.append(f"ip daddr {nat.external_ip} dnat to {nat.logical_ip}")
        if nat.type in (NAT_SNAT, NAT_DNAT_AND_SNAT):
            if nat.stateless:
                sl_pre.append(f"{keep}ip saddr {nat.logical_ip} notrack")
                sl_post.append(f"{oif}ip saddr {nat.logical_ip} ip saddr set {nat.external_ip}")
                if hairpin:
                    sl_post.append(f"meta mark {HAIRPIN_MARK:#x} ip saddr {nat.logical_ip} ip saddr set {nat.external_ip}")
            else:
                post.append(f"{oif}ip saddr {nat.logical_ip} snat to {nat.external_ip}")
                if hairpin:
                    post.append(f"meta mark {HAIRPIN_MARK:#x} ip saddr {nat.logical_ip} snat to {nat.external_ip}")

    def chain(name: str, hook: str, rules: List[str]) -> str:
        return f"  chain {name} {{\n    type {hook};\n" + "".join(f"    {r}\n" for r in rules) + "  }\n"

    return ("table ip ovnsim_nat {\n"
            + chain("sl_pre", "filter hook prerouting priority raw", sl_pre)
            + chain("nat_pre", "nat hook prerouting priority dstnat", pre)
            + chain("nat_post", "nat hook postrouting priority srcnat", post)
            + chain("sl_post", "filter hook postrouting priority srcnat - 10", sl_post)
            + "}\n")


def plan_lab(logical: LogicalTopology, name: str, token: Optional[str] = None) -> LabPlan:
    """The plan of lab ``name`` for ``logical`` (nothing is created)."""
    check_lab_name(name)
    return _Planner(logical, name, token or lab_token(name)).plan()
