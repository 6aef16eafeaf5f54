"""Who a reachability question names: endpoints resolved from a topology.

An endpoint is something that can send or receive a frame in the question
``reach(src, dst, proto)``:

* a VM port (by Neutron or LSP name, or by one of its fixed IPs);
* a floating IP (its address): a frame to it is delivered to the port it maps to;
* a router address (an interface, its gateway/SNAT address): the router answers itself;
* ``outside``: a host beyond the upstream gateway of an external network
  (:data:`~ovnsim.trace_args.OUTSIDE`), or ``outside:IP`` for a named one --
  beyond the upstream gateway, or on the external subnet itself.

Each endpoint knows where it attaches (the switch port a frame it sends
enters on, or where a frame to it leaves), its address and its MAC, so the
frame can be built the way its network stack would build it.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

from ovnsim.errors import MicroflowError
from ovnsim.nb.model import LogicalTopology
from ovnsim.neutron.model import Network, Topology
from ovnsim.trace_args import OUTSIDE, PortNames, _Addresses, names_hint

__all__ = ["Endpoint", "Directory", "Protocol", "parse_proto", "ReachError"]

#: Endpoint kinds.
PORT, FIP, ROUTER, OUTSIDE_KIND = "port", "fip", "router", "outside"


class ReachError(MicroflowError):
    """A question that cannot be asked of this topology (unknown endpoint, bad protocol)."""


@dataclass(frozen=True)
class Protocol:
    """``icmp``, ``tcp/N`` or ``udp/N``."""

    name: str  #: "icmp", "tcp" or "udp"
    port: int = 0

    def __str__(self) -> str:
        return self.name if self.name == "icmp" else f"{self.name}/{self.port}"


def parse_proto(text: str) -> Protocol:
    """``"tcp/22"`` -> Protocol("tcp", 22); one-line :class:`ReachError` for anything else."""
    text = str(text).strip().lower()
    if text in ("icmp", "icmp4", "ping"):
        return Protocol("icmp")
    name, _, num = text.partition("/")
    if name in ("tcp", "udp") and num.isdigit() and 0 < int(num) <= 65535:
        return Protocol(name, int(num))
    raise ReachError(f"protocol {text!r}: expected icmp, tcp/N or udp/N (N in 1-65535)")


@dataclass(frozen=True)
class Endpoint:
    """One end of a question.

    ``port``: the switch port frames from it enter on and frames to it leave
    on (a VM's LSP; for ``outside``, the external network's localnet port;
    for a router, None: the router answers itself).  ``ip``: the address a
    frame to it is sent to, and its own address as a sender.  ``mac``: its
    own MAC as a sender (``outside``: the upstream gateway's MAC when the host
    is beyond it, a made-up stable MAC for a host on the external subnet).
    """

    kind: str
    label: str  #: how it is printed: the port name, "fip 172.24.4.100", "outside:198.51.100.7"
    ip: ipaddress.IPv4Address
    network: str  #: id of the network it is on (the FIP's / router address's network)
    port: Optional[str] = None
    mac: Optional[str] = None
    #: for a floating IP: the VM port it maps to (where a frame to it is delivered)
    target: Optional[str] = None
    #: for ``outside``: the address whose ARP requests it answers (its own on
    #: the external subnet, else the upstream gateway's)
    arp_ip: Optional[ipaddress.IPv4Address] = None

    @property
    def can_send(self) -> bool:
        """Whether it can be a source (a VM port or an outside host; not a router or floating IP)."""
        return self.kind in (PORT, OUTSIDE_KIND)


def _host_mac(ip: ipaddress.IPv4Address) -> str:
    """A stable, locally administered MAC for an outside host on the external subnet."""
    h = zlib.crc32(ip.packed) & 0xFFFFFFFF
    return "02:0e:" + ":".join(f"{(h >> s) & 0xFF:02x}" for s in (24, 16, 8, 0))


class Directory:
    """Endpoints of one topology by name or address, and the MACs senders resolve."""

    def __init__(self, topo: Topology, logical: LogicalTopology):
        self.topo = topo
        self.logical = logical
        self.names = PortNames(logical)
        self.addresses = _Addresses(topo, logical)
        self.subnets = topo.subnets
        self.external = [n for n in topo.networks.values() if n.external]
        self.localnet: Dict[str, str] = {}  # external network id -> localnet LSP
        for ls in logical.switches:
            for lsp in ls.ports:
                if lsp.type == "localnet":
                    net = ls.name[len("neutron-"):] if ls.name.startswith("neutron-") else ls.name
                    self.localnet[net] = lsp.name
        self.by_ip: Dict[ipaddress.IPv4Address, Endpoint] = {}
        self.ports: Dict[str, Endpoint] = {}
        seen: Dict[str, int] = {}
        for port in topo.ports.values():
            seen[port.name] = seen.get(port.name, 0) + 1
        for port in topo.ports.values():
            if not port.fixed_ips:
                continue
            # a Neutron name shared by ports of two projects is printed as the port's id
            label = port.name if seen[port.name] == 1 else port.id
            ep = Endpoint(PORT, label, port.fixed_ips[0].ip_address, port.network, port.id,
                          port.mac_address)
            self.ports[port.id] = ep
            for fixed in port.fixed_ips:
                self.by_ip.setdefault(fixed.ip_address, ep)
        self.fips: List[Endpoint] = []
        for fip in topo.floating_ips.values():
            ep = Endpoint(FIP, f"fip {fip.floating_ip_address}", fip.floating_ip_address, fip.network,
                          target=fip.port)
            self.fips.append(ep)
            self.by_ip[fip.floating_ip_address] = ep
        for router in topo.routers.values():
            addrs = [(i.ip_address, self.subnets[i.subnet].network) for i in router.interfaces]
            if router.external_gateway is not None:
                addrs.append((router.external_gateway.ip_address, router.external_gateway.network))
            for ip, net in addrs:
                self.by_ip.setdefault(ip, Endpoint(ROUTER, f"router {router.name} {ip}", ip, net))

    # -- resolution -------------------------------------------------------------

    def vm_ports(self) -> List[Endpoint]:
        """Every VM port with an IPv4 address, in topology order."""
        return list(self.ports.values())

    def resolve(self, name: str, role: str = "endpoint", near: Optional[Endpoint] = None) -> Endpoint:
        """The endpoint ``name`` means (``role`` names it in errors: "source", "destination").

        ``near``: the other end, used to choose the external network an
        ``outside`` endpoint is on (the one it can reach that end through).
        """
        name = str(name).strip()
        if name == "outside" or name.startswith("outside:"):
            return self._outside(name, role, near)
        if name in self.names.by_name:
            lsp = self.names.by_name[name]
            if lsp in self.ports:
                return self.ports[lsp]
            raise ReachError(f"{role} {name!r}: not a VM port with an IPv4 address")
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            valid = [p.label for p in self.ports.values()] + ["outside", "outside:IP", "an IPv4 address"]
            raise ReachError(f"{role}: unknown port or address {name!r}" + names_hint(valid, name)) from None
        if ip.version != 4:
            raise ReachError(f"{role} {name!r}: IPv6 is not supported yet")
        ep = self.by_ip.get(ip)
        if ep is not None and ep.kind == PORT and ep.ip != ip:
            return replace(ep, ip=ip)  # one of the port's other fixed IPs
        if ep is None:
            if any(ip in s.cidr for n in self.external for s in n.subnets):
                return self._outside(f"outside:{ip}", role, near)
            raise ReachError(f"{role} {name!r}: no port, floating IP or router holds {ip} "
                             "(an address outside the topology is written outside:IP)")
        return ep

    def external_for(self, other: Optional[Endpoint]) -> Network:
        """The external network an outside host reaches ``other`` through (or is reached by it)."""
        if not self.external:
            raise ReachError("outside: the topology has no external network")
        if other is not None:
            if other.kind in (FIP, ROUTER) and self.topo.networks[other.network].external:
                return self.topo.networks[other.network]
            net = self.topo.networks[other.network]
            if net.external:
                return net
            for router in self.topo.routers.values():
                gw = router.external_gateway
                if gw is not None and any(self.subnets[i.subnet].network == net.id for i in router.interfaces):
                    return self.topo.networks[gw.network]
        return self.external[0]

    def _outside(self, name: str, role: str, near: Optional[Endpoint]) -> Endpoint:
        net = self.external_for(near)
        text = name[len("outside:"):] if name.startswith("outside:") else OUTSIDE
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise ReachError(f"{role} {name!r}: {text!r} is not an IPv4 address") from None
        if ip.version != 4:
            raise ReachError(f"{role} {name!r}: IPv6 is not supported yet")
        localnet = self.localnet.get(net.id)
        if localnet is None:
            raise ReachError(f"{role} {name!r}: external network {net.name!r} has no localnet port")
        on_subnet = next((s for s in net.subnets if ip in s.cidr), None)
        if on_subnet is not None:
            held = self.addresses.owner(net.id, ip)
            if held is not None and held[1] != "the upstream router":
                raise ReachError(f"{role} {name!r}: {ip} is held by {held[1]} in the topology, not by an "
                                 "outside host")
            mac = held[0] if held is not None and held[0] else _host_mac(ip)
            arp_ip = ip
        else:
            gws = [s for s in net.subnets if s.gateway_ip is not None]
            if not gws:
                raise ReachError(f"{role} {name!r}: external network {net.name!r} has no gateway to reach "
                                 f"{ip} through")
            # without a gateway_mac in the topology the upstream router gets a
            # made-up one, and answers the routers' ARP requests with it
            mac = gws[0].gateway_mac or _host_mac(gws[0].gateway_ip)
            arp_ip = gws[0].gateway_ip
        label = "outside" if name == "outside" else f"outside:{ip}"
        return Endpoint(OUTSIDE_KIND, label, ip, net.id, localnet, mac, arp_ip=arp_ip)

    def upstream_arp(self) -> Dict[Tuple[str, ipaddress.IPv4Address], str]:
        """(localnet port, address) -> MAC: the upstream gateways, which answer the routers' ARP requests."""
        out = {}
        for net in self.external:
            if net.id not in self.localnet:
                continue
            for sub in net.subnets:
                if sub.gateway_ip is not None:
                    out[(self.localnet[net.id], sub.gateway_ip)] = sub.gateway_mac or _host_mac(sub.gateway_ip)
        return out

    # -- next hops --------------------------------------------------------------

    def next_hop_mac(self, src: Endpoint, dst_ip: ipaddress.IPv4Address) -> str:
        """The eth.dst ``src``'s stack puts on a frame to ``dst_ip``: the peer on the same L2, else its gateway."""
        net = self.topo.networks[src.network]
        subnet = next((s for s in net.subnets if src.ip in s.cidr), None)
        if subnet is not None and dst_ip in subnet.cidr:
            held = self.addresses.owner(net.id, dst_ip)
            if held is None or not held[0]:
                if src.kind == OUTSIDE_KIND:
                    return _host_mac(dst_ip)
                raise ReachError(f"nothing holds {dst_ip} on {net.name!r} with a known MAC")
            return held[0]
        if src.kind == OUTSIDE_KIND:
            return self._outside_next_hop(src, dst_ip)
        if subnet is None or subnet.gateway_ip is None:
            raise ReachError(f"{src.label}: {dst_ip} is off its subnet, which has no gateway")
        held = self.addresses.owner(net.id, subnet.gateway_ip)
        if held is None or not held[0]:
            raise ReachError(f"{src.label}: the MAC of its gateway {subnet.gateway_ip} is not in the topology")
        return held[0]

    def _outside_next_hop(self, src: Endpoint, dst_ip: ipaddress.IPv4Address) -> str:
        # Beyond the upstream gateway: the upstream router forwards a frame
        # for a tenant address to the router whose gateway serves that subnet
        # (as if it had a route to it); a frame for anything on the external
        # subnet goes to whoever holds the address.
        held = self.addresses.owner(src.network, dst_ip)
        if held is not None and held[0]:
            return held[0]
        for router in self.topo.routers.values():
            gw = router.external_gateway
            if gw is None or gw.network != src.network:
                continue
            if any(dst_ip in self.subnets[i.subnet].cidr for i in router.interfaces):
                return gw.mac_address or self.addresses.owner(src.network, gw.ip_address)[0]
        raise ReachError(f"{src.label}: no router on the external network routes {dst_ip}")


def frame_ends(directory: Directory, src: Endpoint, dst: Endpoint) -> Tuple[str, str, str]:
    """(ingress port, eth.src, eth.dst) of the frame ``src`` sends to ``dst``."""
    return src.port, src.mac, directory.next_hop_mac(src, dst.ip)
