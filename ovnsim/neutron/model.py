"""The tenant model: Neutron's networks, subnets, ports, routers, gateways, floating IPs.

Frozen dataclasses in Neutron's terms.  The loader (``ovnsim.neutron.loader``)
and the builder (``ovnsim.neutron.builder``) produce it and check it;
everything in it is already resolved and valid.  The compiler
(``ovnsim.neutron.compiler``) turns it into the logical model
(``ovnsim.nb.model``).

Object references inside the tenant model are by ``id`` (unique per kind in a
topology), never by Python object identity, so a model prints and compares
plainly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple, Union

# typing.Union, not ``X | Y``: these are module-level values, evaluated on
# every supported Python (3.9 included).
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: The gateway models a router can be compiled to (``Router.gateway_model``).
GATEWAY_ROUTER = "gateway-router"
DISTRIBUTED_GATEWAY_PORT = "distributed-gateway-port"
GATEWAY_MODELS = (GATEWAY_ROUTER, DISTRIBUTED_GATEWAY_PORT)

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
    #: OVN native DHCP for the subnet (a DHCP_Options row), on by default as in Neutron.
    enable_dhcp: bool = True
    dns_nameservers: Tuple[IPAddress, ...] = ()
    host_routes: Tuple["Route", ...] = ()
    #: the MAC DHCP replies come from (Neutron: a random MAC with its base_mac; here derived)
    dhcp_server_mac: str = ""

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
    #: the network's metadata port (``metadata: true`` in the topology), else None
    metadata_port: Optional["MetadataPort"] = None

    @property
    def effective_mtu(self) -> int:
        """The MTU Neutron gives the network when none is set: 1500 on provider (flat/vlan) networks,
        1442 on Geneve tenant networks (1500 - 58 bytes of Geneve overhead)."""
        if self.mtu:
            return self.mtu
        return 1500 if self.external else 1442


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
    #: ids of the port's security groups (empty without port security, or in a
    #: project that declares no ``security_groups``)
    security_groups: Tuple[str, ...] = ()


@dataclass(frozen=True)
class MetadataPort:
    """A network's metadata port: device_owner ``network:distributed``, LSP type ``localport``.

    Neutron creates one per network when OVN metadata is enabled, with an
    address on every DHCP-enabled IPv4 subnet; ovn-metadata-agent serves
    169.254.169.254 behind it (namespace ``ovnmeta-<network id>``), and DHCP
    hands the VMs a route to 169.254.169.254/32 via its address.
    """

    id: str
    mac_address: str
    fixed_ips: Tuple[FixedIP, ...]


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


#: Security group rule directions and ethertypes, as Neutron spells them.
INGRESS = "ingress"
EGRESS = "egress"
DIRECTIONS = (INGRESS, EGRESS)
IPV4 = "IPv4"
IPV6 = "IPv6"
ETHERTYPES = (IPV4, IPV6)

#: The group Neutron creates in every project and gives every port that names none.
DEFAULT_SECURITY_GROUP = "default"


@dataclass(frozen=True)
class SecurityGroupRule:
    """One Neutron security group rule, as the API stores it.

    ``protocol`` is what Neutron passes the OVN driver: ``None`` for any
    protocol, a name (``tcp``, ``udp``, ``sctp``, ``icmp``, ``ipv6-icmp``,
    ``icmpv6``) or a number 0-255 as a string.  ``port_range_min`` and
    ``port_range_max`` are the port range for port protocols, the ICMP type
    and code for ICMP.  At most one of ``remote_ip_prefix`` (normalised, host
    bits cleared, as Neutron's ``normalized_cidr``) and ``remote_group`` (a
    security group id) is set.
    """

    id: str
    direction: str  #: INGRESS or EGRESS
    ethertype: str = IPV4  #: IPV4 or IPV6
    protocol: Optional[str] = None
    port_range_min: Optional[int] = None
    port_range_max: Optional[int] = None
    remote_ip_prefix: Optional[IPNetwork] = None
    remote_group: Optional[str] = None
    description: str = ""


@dataclass(frozen=True)
class SecurityGroup:
    """A Neutron security group: rules that allow traffic to and from its member ports.

    ``stateful=False`` is Neutron's stateless group (OVN ``allow-stateless``
    ACLs: replies are not allowed by conntrack, they need rules of their own).
    """

    id: str
    name: str
    project: str
    rules: Tuple[SecurityGroupRule, ...] = ()
    stateful: bool = True
    description: str = ""


@dataclass(frozen=True)
class Project:
    """A project (tenant): a name, a description, and whether it uses security groups.

    A project whose topology declares ``security_groups`` (even empty) has
    Neutron's ``default`` group and filters its ports; one without the key has
    no security groups and no ACLs at all.
    """

    name: str
    description: str = ""
    security_groups_enabled: bool = False


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
    #: every project's security groups, by id (a project's ``default`` first)
    security_groups: Mapping[str, SecurityGroup] = field(default_factory=dict)

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
