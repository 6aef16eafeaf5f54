"""ovnsim's one data model: tenant networks in, OVN logical objects out.

Two layers, both frozen dataclasses:

* the **tenant model** (:class:`Topology` and what it holds) speaks Neutron:
  projects, networks, subnets, ports, routers, external gateways, floating
  IPs.  The loader (``ovnsim.loader``) and the builder (``ovnsim.builder``)
  produce it and check it; everything in it is already resolved and valid.
* the **logical model** (:class:`LogicalTopology`) speaks OVN northbound:
  Logical_Switch, Logical_Switch_Port, Logical_Router, Logical_Router_Port,
  Logical_Router_Static_Route and NAT rows, with the column names and value
  formats ``ovn-nbctl`` uses.  The compiler (``ovnsim.compiler``) turns the
  first into the second; the exporters and the pipeline read only the second.

Object references inside the tenant model are by ``id`` (unique per kind in a
topology), never by Python object identity, so a model prints and compares
plainly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The gateway models a router can be compiled to (``Router.gateway_model``).
GATEWAY_ROUTER = "gateway-router"
DISTRIBUTED_GATEWAY_PORT = "distributed-gateway-port"
GATEWAY_MODELS = (GATEWAY_ROUTER, DISTRIBUTED_GATEWAY_PORT)

#: NAT types as OVN's NAT table names them.
NAT_SNAT = "snat"
NAT_DNAT = "dnat"
NAT_DNAT_AND_SNAT = "dnat_and_snat"
NAT_TYPES = (NAT_SNAT, NAT_DNAT, NAT_DNAT_AND_SNAT)

#: Logical switch port types ovnsim emits ("" is a VM port).
LSP_TYPE_VM = ""
LSP_TYPE_ROUTER = "router"
LSP_TYPE_LOCALNET = "localnet"

#: The chassis every gateway is bound to unless the topology names another.
DEFAULT_CHASSIS = "hv1"


# --------------------------------------------------------------------------
# Tenant model (Neutron terms)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Subnet:
    """A Neutron subnet: a CIDR on one network, with its gateway address."""

    id: str
    name: str
    network: str  #: id of the network the subnet belongs to
    cidr: IPNetwork
    gateway_ip: Optional[IPAddress]
    #: MAC of the upstream gateway at ``gateway_ip`` (external networks only;
    #: None when not known, in which case OVN resolves it by ARP).
    gateway_mac: Optional[str] = None

    @property
    def ip_version(self) -> int:
        return self.cidr.version


@dataclass(frozen=True)
class Network:
    """A Neutron network (one OVN logical switch)."""

    id: str
    name: str
    project: Optional[str]  #: owning project, None for external networks
    subnets: Tuple[Subnet, ...]
    external: bool = False
    #: provider attributes (external networks): physical network name,
    #: ``flat`` or ``vlan``, and the VLAN id for ``vlan``.
    physical_network: Optional[str] = None
    network_type: Optional[str] = None
    segmentation_id: Optional[int] = None
    mtu: Optional[int] = None


@dataclass(frozen=True)
class FixedIP:
    """One address of a port on one of its network's subnets."""

    subnet: str  #: subnet id
    ip_address: IPAddress


@dataclass(frozen=True)
class AddressPair:
    """A Neutron allowed-address-pair: extra source IP (or CIDR) and MAC a port may use."""

    ip_address: str  #: an address or a CIDR, as Neutron accepts it
    mac_address: Optional[str] = None  #: None means the port's own MAC


@dataclass(frozen=True)
class Port:
    """A Neutron port with device_owner compute (a VM's NIC)."""

    id: str
    name: str
    project: str
    network: str  #: network id
    mac_address: str
    fixed_ips: Tuple[FixedIP, ...]
    port_security: bool = True
    allowed_address_pairs: Tuple[AddressPair, ...] = ()
    admin_state_up: bool = True


@dataclass(frozen=True)
class Route:
    """A router's extra route (``openstack router set --route``)."""

    destination: IPNetwork
    nexthop: IPAddress


@dataclass(frozen=True)
class ExternalGateway:
    """A router's external gateway: its address on an external network."""

    network: str  #: external network id
    ip_address: IPAddress
    subnet: str  #: subnet id of ``ip_address``
    enable_snat: bool = True
    #: MAC of the router's gateway port (derived when not given).
    mac_address: str = ""


@dataclass(frozen=True)
class RouterInterface:
    """A router's leg on a tenant subnet (``openstack router add subnet``)."""

    id: str  #: the Neutron port id of the interface
    subnet: str  #: subnet id
    ip_address: IPAddress  #: normally the subnet's gateway_ip
    mac_address: str


@dataclass(frozen=True)
class Router:
    """A Neutron router."""

    id: str
    name: str
    project: str
    interfaces: Tuple[RouterInterface, ...]
    routes: Tuple[Route, ...] = ()
    external_gateway: Optional[ExternalGateway] = None
    gateway_model: str = GATEWAY_ROUTER
    #: the chassis the gateway (router or port) is bound to
    chassis: str = DEFAULT_CHASSIS
    admin_state_up: bool = True


@dataclass(frozen=True)
class FloatingIP:
    """A floating IP: an external address bound to one fixed IP of a port."""

    id: str
    name: str
    project: str
    floating_ip_address: IPAddress
    network: str  #: external network id
    port: str  #: port id
    fixed_ip_address: IPAddress
    router: str  #: router id that carries the NAT rule (resolved by the loader)
    #: distributed (DVR): handled on the VM's chassis with the port's MAC as
    #: external_mac; centralised: on the gateway chassis.
    distributed: bool = False
    #: stateless NAT (``options:stateless=true``), as current Neutron sets it.
    stateless: bool = False


@dataclass(frozen=True)
class Project:
    """A project (tenant); only a name and a description."""

    name: str
    description: str = ""


@dataclass(frozen=True)
class Topology:
    """A whole tenant topology, valid and resolved.

    Every mapping is keyed by the object's ``id`` and keeps the order of the
    source file, so compiling the same file twice gives the same output.
    """

    name: str
    projects: Mapping[str, Project]
    networks: Mapping[str, Network]
    ports: Mapping[str, Port]
    routers: Mapping[str, Router]
    floating_ips: Mapping[str, FloatingIP]
    source: str = "<builder>"  #: file the topology was read from

    def subnet(self, subnet_id: str) -> Subnet:
        """The subnet with that id (KeyError if none)."""
        for network in self.networks.values():
            for subnet in network.subnets:
                if subnet.id == subnet_id:
                    return subnet
        raise KeyError(subnet_id)

    @property
    def subnets(self) -> Mapping[str, Subnet]:
        """Every subnet of every network, by id."""
        return {s.id: s for n in self.networks.values() for s in n.subnets}


# --------------------------------------------------------------------------
# Logical model (OVN northbound terms)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LogicalSwitchPort:
    """A Logical_Switch_Port row.

    ``addresses`` and ``port_security`` hold the strings ovn-nbctl takes
    (``"fa:16:3e:00:00:01 10.0.0.5"``, ``"router"``, ``"unknown"``).
    """

    name: str
    type: str = LSP_TYPE_VM
    addresses: Tuple[str, ...] = ()
    port_security: Tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str] = field(default_factory=dict)
    tag: Optional[int] = None
    enabled: bool = True


@dataclass(frozen=True)
class LogicalSwitch:
    """A Logical_Switch row with its ports."""

    name: str
    ports: Tuple[LogicalSwitchPort, ...]
    external_ids: Mapping[str, str] = field(default_factory=dict)
    other_config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewayChassis:
    """A Gateway_Chassis row binding a distributed gateway port to a chassis."""

    chassis: str
    priority: int


@dataclass(frozen=True)
class LogicalRouterPort:
    """A Logical_Router_Port row; ``networks`` are ``"IP/plen"`` strings."""

    name: str
    mac: str
    networks: Tuple[str, ...]
    gateway_chassis: Tuple[GatewayChassis, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    @property
    def interfaces(self) -> Tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]:
        """``networks`` parsed."""
        return tuple(ipaddress.ip_interface(n) for n in self.networks)

    @property
    def is_gateway_port(self) -> bool:
        """True for a distributed gateway port (bound to a gateway chassis)."""
        return bool(self.gateway_chassis)


@dataclass(frozen=True)
class StaticRoute:
    """A Logical_Router_Static_Route row (``ovn-nbctl lr-route-add``)."""

    ip_prefix: str
    nexthop: str
    output_port: Optional[str] = None
    policy: str = "dst-ip"
    external_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NATRule:
    """A NAT row (``ovn-nbctl lr-nat-add``)."""

    type: str  #: one of NAT_TYPES
    external_ip: str
    logical_ip: str  #: an address, or a CIDR for snat
    logical_port: Optional[str] = None
    external_mac: Optional[str] = None
    stateless: bool = False
    external_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StaticMACBinding:
    """A Static_MAC_Binding row (``ovn-nbctl static-mac-binding-add``).

    ovnsim writes one for the upstream gateway of an external network whose
    MAC the topology gives, so OVN need not ARP for it.
    """

    logical_port: str  #: the router port that reaches ``ip``
    ip: str
    mac: str


@dataclass(frozen=True)
class LogicalRouter:
    """A Logical_Router row with its ports, static routes and NAT rules.

    A router with ``options["chassis"]`` is a *gateway router*; a router one
    of whose ports has gateway chassis has a *distributed gateway port*.
    """

    name: str
    ports: Tuple[LogicalRouterPort, ...]
    static_routes: Tuple[StaticRoute, ...] = ()
    nat: Tuple[NATRule, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    @property
    def is_gateway_router(self) -> bool:
        return "chassis" in self.options

    @property
    def gateway_ports(self) -> Tuple[LogicalRouterPort, ...]:
        """The router's distributed gateway ports (Neutron routers have at most one)."""
        return tuple(p for p in self.ports if p.is_gateway_port)


@dataclass(frozen=True)
class LogicalTopology:
    """The compiled OVN northbound content of a topology."""

    switches: Tuple[LogicalSwitch, ...]
    routers: Tuple[LogicalRouter, ...]
    static_mac_bindings: Tuple[StaticMACBinding, ...] = ()
    source: str = "<builder>"

    def switch(self, name: str) -> LogicalSwitch:
        for ls in self.switches:
            if ls.name == name:
                return ls
        raise KeyError(name)

    def router(self, name: str) -> LogicalRouter:
        for lr in self.routers:
            if lr.name == name:
                return lr
        raise KeyError(name)

    def switch_ports(self) -> Mapping[str, Tuple[LogicalSwitch, LogicalSwitchPort]]:
        """Every switch port by name, with its switch."""
        return {p.name: (ls, p) for ls in self.switches for p in ls.ports}

    def router_ports(self) -> Mapping[str, Tuple[LogicalRouter, LogicalRouterPort]]:
        """Every router port by name, with its router."""
        return {p.name: (lr, p) for lr in self.routers for p in lr.ports}
