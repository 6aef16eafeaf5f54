"""``ovnsim trace --from vm1 --to db1 --tcp 22``: a microflow built from Neutron objects, as ml2ovn-trace does.

Neutron's ``ml2ovn-trace`` (``neutron/cmd/ovn/ml2ovn_trace.py``) fills in
``inport``, ``eth.src``, ``ip4.src`` from the source server, ``eth.dst``,
``ip4.dst`` from the destination (or ``--via``), adds ``ip.ttl == 64`` and
appends the user's extra microflow text (``-m "tcp.dst==22"``); ports it
leaves to ovn-trace's default (0).  :func:`build_microflow` does the same from
a topology, and works out ``eth.dst`` the way the sending VM would:

* the destination IP is on one of the source port's subnets (the same L2):
  the MAC of whoever holds that IP there (a port, a router interface or
  gateway port, a floating IP: its ``external_mac`` when distributed, else
  its router's gateway MAC; the upstream router: the subnet's ``gateway_mac``);
* otherwise: the MAC of the source subnet's gateway (the router interface,
  or the upstream router on a provider network).

Destinations (``--to``): a port (Neutron name or LSP name), a router (its
address on the source's L2, else its first address), an IPv4 address (a fixed
IP, a floating IP, a router address or anything else, routed through the
gateway), ``outside`` (:data:`OUTSIDE`) or ``outside:IP``.  Protocol:
``--tcp N``, ``--udp N`` (``.dst`` = N, ``.src`` = ``--sport`` or 0), ``--icmp``
(echo request), or none (bare IPv4, as ml2ovn-trace).
"""

from __future__ import annotations

import difflib
import ipaddress
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from ovnsim.errors import MicroflowError
from ovnsim.nb.model import LSP_TYPE_VM, LogicalTopology
from ovnsim.neutron.model import Network, Port, Subnet, Topology

__all__ = ["OUTSIDE", "TRACE_TTL", "FlowSpec", "build_microflow", "names_hint", "PortNames", "DatapathNames"]

#: The address ``--to outside`` means (TEST-NET-2, RFC 5737: never a real host).
OUTSIDE = "198.51.100.7"

#: The TTL ml2ovn-trace puts in every microflow.
TRACE_TTL = 64

#: How many valid names a one-line error lists before "... and N more".
_HINT_LIMIT = 12


@dataclass(frozen=True)
class FlowSpec:
    """What the user asked for: ``--from``, ``--to``, protocol and extras."""

    source: str
    destination: str
    tcp: Optional[int] = None
    udp: Optional[int] = None
    icmp: bool = False
    sport: int = 0
    eth_dst: Optional[str] = None  #: ``--eth-dst`` (ml2ovn-trace's ``--via`` MAC), overrides the derived one
    extra: str = ""  #: ``-m``: more microflow text, appended with ``&&``


def names_hint(names: Iterable[str], wanted: str, candidates: Optional[Iterable[str]] = None) -> str:
    """``; did you mean 'x'? (valid: a, b, c ... and N more)`` for a one-line error.

    ``candidates``: what a close match is looked for among (default: ``names``).
    """
    names = list(dict.fromkeys(names))
    close = difflib.get_close_matches(wanted, list(candidates) if candidates is not None else names, n=1)
    shown = ", ".join(names[:_HINT_LIMIT])
    more = f" ... and {len(names) - _HINT_LIMIT} more" if len(names) > _HINT_LIMIT else ""
    return (f"; did you mean {close[0]!r}?" if close else "") + f" (valid: {shown}{more})"


class PortNames:
    """Switch ports by LSP name and by Neutron port name, and what a name that is not one of them is."""

    def __init__(self, logical: LogicalTopology):
        self.logical = logical
        self.by_name: Dict[str, str] = {}
        for ls in logical.switches:
            for lsp in ls.ports:
                self.by_name[lsp.name] = lsp.name
        for ls in logical.switches:
            for lsp in ls.ports:
                alias = lsp.external_ids.get("neutron:port_name")
                if alias:
                    self.by_name.setdefault(alias, lsp.name)
        self.router_ports = set(logical.router_ports())
        self.vm_ports = {lsp.name for ls in logical.switches for lsp in ls.ports if lsp.type == LSP_TYPE_VM}

    def lsp(self, name: str, what: str = "port", vm_only: bool = False) -> str:
        """The LSP a user's port name means; a one-line error listing the valid ones otherwise."""
        if name in self.by_name and (not vm_only or self.by_name[name] in self.vm_ports):
            return self.by_name[name]
        if name in self.router_ports:
            raise MicroflowError(
                f"{what} {name!r} is a router port: ovnsim injects frames only on logical switch ports "
                "(the engine has no router-port ingress); use the router's switch-side port "
                f"{self._switch_side(name)!r} or a VM port")
        valid = [n for n, lsp in self.by_name.items() if not vm_only or lsp in self.vm_ports]
        raise MicroflowError(f"unknown {what} {name!r}" + names_hint(valid, name))

    def _switch_side(self, lrp: str) -> str:
        for ls in self.logical.switches:
            for lsp in ls.ports:
                if lsp.options.get("router-port") == lrp:
                    return lsp.name
        return "?"


class DatapathNames:
    """Datapaths by OVN name (``neutron-web``) and by Neutron network/router name (``web``, ``router1``)."""

    def __init__(self, logical: LogicalTopology):
        self.friendly: Dict[str, str] = {}  # OVN name -> "neutron-web (web)"
        self.by_name: Dict[str, str] = {}
        datapaths = [(ls.name, ls.external_ids.get("neutron:network_name")) for ls in logical.switches]
        datapaths += [(lr.name, lr.external_ids.get("neutron:router_name")) for lr in logical.routers]
        for ovn_name, neutron_name in datapaths:
            self.by_name[ovn_name] = ovn_name
            self.friendly[ovn_name] = f"{ovn_name} ({neutron_name})" if neutron_name else ovn_name
        # a Neutron name means its own datapath (neutron-<id>), not the join
        # switch or gateway router the gateway-router model adds for it
        for ovn_name, neutron_name in datapaths:
            if neutron_name and ovn_name.startswith("neutron-"):
                self.by_name.setdefault(neutron_name, ovn_name)

    def resolve(self, name: str) -> str:
        """The OVN datapath name ``name`` means; a one-line error listing the valid ones otherwise."""
        if name in self.by_name:
            return self.by_name[name]
        raise MicroflowError(f"unknown datapath {name!r}" + names_hint(self.friendly.values(), name, self.by_name))

    def show(self, ovn_name: str) -> str:
        """``neutron-web (web)``: the OVN name with the Neutron name users know."""
        return self.friendly.get(ovn_name, ovn_name)


# --------------------------------------------------------------------------
# Who holds which address, per network
# --------------------------------------------------------------------------


class _Addresses:
    """For every network: IPv4 address -> (MAC, what holds it); plus each port's network and subnets."""

    def __init__(self, topo: Topology, logical: LogicalTopology):
        self.topo = topo
        self.on_net: Dict[str, Dict[ipaddress.IPv4Address, Tuple[Optional[str], str]]] = {
            n: {} for n in topo.networks}
        subnets = topo.subnets
        for net in topo.networks.values():
            for sub in net.subnets:
                if net.external and sub.gateway_ip is not None:
                    self.on_net[net.id][sub.gateway_ip] = (sub.gateway_mac, "the upstream router")
        for port in topo.ports.values():
            for fixed in port.fixed_ips:
                self.on_net[port.network][fixed.ip_address] = (port.mac_address, f"port {port.name}")
        for router in topo.routers.values():
            for iface in router.interfaces:
                net = subnets[iface.subnet].network
                self.on_net[net][iface.ip_address] = (iface.mac_address, f"router {router.name}")
            gw = router.external_gateway
            if gw is not None:
                self.on_net[gw.network][gw.ip_address] = (gw.mac_address, f"router {router.name}")
        external_macs = {n.external_ip: n.external_mac for lr in logical.routers for n in lr.nat if n.external_mac}
        for fip in topo.floating_ips.values():
            gw = topo.routers[fip.router].external_gateway
            mac = external_macs.get(str(fip.floating_ip_address)) or (gw.mac_address if gw else None)
            self.on_net[fip.network][fip.floating_ip_address] = (mac, f"floating IP {fip.name}")

    def owner(self, net_id: str, ip: ipaddress.IPv4Address) -> Optional[Tuple[Optional[str], str]]:
        return self.on_net[net_id].get(ip)


def _destination_ip(topo: Topology, names: PortNames, src_net: Network, dest: str) -> ipaddress.IPv4Address:
    if dest == "outside":
        return ipaddress.ip_address(OUTSIDE)
    text = dest[len("outside:"):] if dest.startswith("outside:") else dest
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        if dest.startswith("outside:"):
            raise MicroflowError(f"--to {dest!r}: {text!r} is not an IPv4 address") from None
    else:
        if ip.version != 4:
            raise MicroflowError(f"--to {dest!r}: IPv6 is not supported yet")
        return ip
    if dest in names.by_name:
        port = topo.ports.get(names.by_name[dest])
        if port is None or not port.fixed_ips:
            raise MicroflowError(f"--to {dest!r}: that port has no IPv4 address")
        return port.fixed_ips[0].ip_address
    routers = {r.name: r for r in topo.routers.values()} | {r.id: r for r in topo.routers.values()}
    router = routers.get(dest)
    if router is not None:
        subnets = topo.subnets
        for iface in router.interfaces:
            if subnets[iface.subnet].network == src_net.id:
                return iface.ip_address
        gw = router.external_gateway
        if gw is not None and gw.network == src_net.id:
            return gw.ip_address
        if router.interfaces:
            return router.interfaces[0].ip_address
        if gw is not None:
            return gw.ip_address
        raise MicroflowError(f"--to {dest!r}: router {router.name!r} has no address")
    valid = list(names.by_name) + list(routers) + ["outside", "outside:IP", "an IPv4 address"]
    raise MicroflowError(f"--to: unknown port, router or address {dest!r}" + names_hint(valid, dest))


def _subnet_of(topo: Topology, port: Port, ip: ipaddress.IPv4Address) -> Optional[Subnet]:
    for fixed in port.fixed_ips:
        sub = topo.subnet(fixed.subnet)
        if ip in sub.cidr:
            return sub
    return None


def build_microflow(topo: Topology, logical: LogicalTopology, spec: FlowSpec) -> str:
    """The ovn-trace microflow ``spec`` describes, in ml2ovn-trace's field order."""
    names = PortNames(logical)
    lsp = names.lsp(spec.source, "--from port (a VM port)", vm_only=True)
    port = topo.ports[lsp]
    if not port.fixed_ips:
        raise MicroflowError(f"--from {spec.source!r}: the port has no IPv4 address")
    src_ip = port.fixed_ips[0].ip_address
    src_net = topo.networks[port.network]
    dst_ip = _destination_ip(topo, names, src_net, spec.destination)
    eth_dst = spec.eth_dst or _next_hop_mac(topo, logical, port, src_ip, dst_ip, spec.destination)

    protocols = [p for p in (spec.tcp is not None, spec.udp is not None, spec.icmp) if p]
    if len(protocols) > 1:
        raise MicroflowError("give at most one of --tcp, --udp, --icmp")
    parts = [f'inport == "{lsp}"', f"eth.src == {port.mac_address}", f"ip4.src == {src_ip}",
             f"eth.dst == {eth_dst}", f"ip4.dst == {dst_ip}", f"ip.ttl == {TRACE_TTL}"]
    for proto, value in (("tcp", spec.tcp), ("udp", spec.udp)):
        if value is not None:
            for what, number in (("port", value), ("--sport", spec.sport)):
                if not 0 <= number <= 65535:
                    raise MicroflowError(f"--{proto} {what} {number} is not a port number (0-65535)")
            parts += [proto, f"{proto}.src == {spec.sport}", f"{proto}.dst == {value}"]
    if spec.icmp:
        parts += ["icmp4", "icmp4.type == 8", "icmp4.code == 0"]
    if spec.extra.strip():
        parts.append(spec.extra.strip())
    return " && ".join(parts)


def _next_hop_mac(topo: Topology, logical: LogicalTopology, port: Port, src_ip: ipaddress.IPv4Address,
                  dst_ip: ipaddress.IPv4Address, dest: str) -> str:
    addresses = _Addresses(topo, logical)
    if _subnet_of(topo, port, dst_ip) is not None:
        held = addresses.owner(port.network, dst_ip)
        if held is None:
            raise MicroflowError(f"--to {dest!r}: nothing holds {dst_ip} on {port.name}'s network; "
                                 "give the MAC with --eth-dst")
        mac, holder = held
        if mac is None:
            raise MicroflowError(f"--to {dest!r}: the MAC of {holder} ({dst_ip}) is not in the topology "
                                 "(set the subnet's gateway_mac, or give --eth-dst)")
        return mac
    sub = _subnet_of(topo, port, src_ip)
    assert sub is not None  # src_ip is one of the port's own fixed IPs
    if sub.gateway_ip is None:
        raise MicroflowError(f"--to {dest!r}: {dst_ip} is off {port.name}'s subnet {sub.name!r}, which has "
                             "no gateway; give --eth-dst")
    held = addresses.owner(port.network, sub.gateway_ip)
    if held is None or held[0] is None:
        holder = held[1] if held else "nothing"
        raise MicroflowError(f"--to {dest!r}: the MAC of the gateway {sub.gateway_ip} of subnet {sub.name!r} "
                             f"({holder}) is not in the topology (set its gateway_mac, or give --eth-dst)")
    return held[0]
