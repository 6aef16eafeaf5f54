"""The logical (OVN northbound) model: what ovn-northd reads.

Logical_Switch, Logical_Switch_Port, Logical_Router, Logical_Router_Port,
Logical_Router_Static_Route, NAT, Static_MAC_Binding, DHCP_Options,
Port_Group and ACL rows as frozen
dataclasses, with the column names and value formats ``ovn-nbctl`` uses.
The Neutron compiler (``ovnsim.neutron.compiler``) produces it; the
exporters beside this module, the northd tables and the data path read only
it, never the tenant model.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

#: NAT types as OVN's NAT table names them.
NAT_SNAT = "snat"
NAT_DNAT = "dnat"
NAT_DNAT_AND_SNAT = "dnat_and_snat"
NAT_TYPES = (NAT_SNAT, NAT_DNAT, NAT_DNAT_AND_SNAT)

#: Logical switch port types ovnsim emits ("" is a VM port).
LSP_TYPE_VM = ""
LSP_TYPE_ROUTER = "router"
LSP_TYPE_LOCALNET = "localnet"
LSP_TYPE_LOCALPORT = "localport"



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
    #: the ``DHCPOptions.key`` of the DHCP_Options row the port's ``dhcpv4_options`` references
    dhcpv4_options: Optional[str] = None


@dataclass(frozen=True)
class DHCPOptions:
    """A DHCP_Options row (``ovn-nbctl dhcp-options-create``).

    ``options`` holds the values as OVN reads them (``dns_server`` and
    ``classless_static_route`` in braces).  ``key`` names the row inside
    ovnsim (Neutron's subnet id) so switch ports can refer to it; OVN knows
    the row only by UUID.
    """

    key: str
    cidr: str
    options: Mapping[str, str] = field(default_factory=dict)
    external_ids: Mapping[str, str] = field(default_factory=dict)


#: ACL directions and the actions ovnsim emits (OVN's ACL table).
ACL_FROM_LPORT = "from-lport"
ACL_TO_LPORT = "to-lport"
ACL_DIRECTIONS = (ACL_FROM_LPORT, ACL_TO_LPORT)
ACL_ACTIONS = ("allow-related", "allow-stateless", "allow", "drop", "reject", "pass")


@dataclass(frozen=True)
class ACL:
    """An ACL row (``ovn-nbctl --type=port-group acl-add``).

    ``from-lport`` ACLs see what a port sends (``inport``), ``to-lport`` ACLs
    what it receives (``outport``).  Neutron writes its security group rules
    as ACLs of the group's port group; ``external_ids`` names the rule.
    """

    direction: str  #: one of ACL_DIRECTIONS
    priority: int
    match: str
    action: str  #: one of ACL_ACTIONS
    external_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PortGroup:
    """A Port_Group row: switch ports (possibly on several switches) and the ACLs that apply to them.

    ovn-northd derives two Southbound address sets from every port group,
    ``<name>_ip4`` and ``<name>_ip6``, holding the IP addresses in its ports'
    ``addresses`` column (not ``port_security``): see
    :meth:`LogicalTopology.port_group_address_sets`.  Match expressions use
    them as ``$<name>_ip4``; the NB database has no row for them.
    """

    name: str
    ports: Tuple[str, ...]  #: Logical_Switch_Port names
    acls: Tuple[ACL, ...] = ()
    external_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddressSet:
    """An address set by name, with its addresses (``ovn-sbctl list Address_Set``)."""

    name: str
    addresses: Tuple[str, ...]


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
    dhcp_options: Tuple[DHCPOptions, ...] = ()
    port_groups: Tuple[PortGroup, ...] = ()
    #: projects (by name) whose ports no ACL filters because they declare no
    #: security groups, for ``ovnsim show`` to say so
    unfiltered_projects: Tuple[str, ...] = ()

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

    def port_group(self, name: str) -> PortGroup:
        for pg in self.port_groups:
            if pg.name == name:
                return pg
        raise KeyError(name)

    def port_group_address_sets(self) -> Tuple[AddressSet, ...]:
        """The address sets ovn-northd derives from the port groups (``sync_address_sets``).

        For port group ``G``: ``G_ip4`` and ``G_ip6``, the IPv4 / IPv6
        addresses listed in the ``addresses`` column of its ports (entries
        ``"MAC IP..."``; ``unknown``, ``router`` and ``dynamic`` contribute
        none), in port order.
        """
        ports = {name: port for name, (_ls, port) in self.switch_ports().items()}
        sets = []
        for pg in self.port_groups:
            v4: list = []
            v6: list = []
            for name in pg.ports:
                for entry in ports[name].addresses:
                    for word in entry.split()[1:]:
                        try:
                            addr = ipaddress.ip_interface(word).ip
                        except ValueError:
                            continue
                        (v4 if addr.version == 4 else v6).append(str(addr))
            sets.append(AddressSet(f"{pg.name}_ip4", tuple(v4)))
            sets.append(AddressSet(f"{pg.name}_ip6", tuple(v6)))
        return tuple(sets)

    def switch_ports(self) -> Mapping[str, Tuple[LogicalSwitch, LogicalSwitchPort]]:
        """Every switch port by name, with its switch."""
        return {p.name: (ls, p) for ls in self.switches for p in ls.ports}

    def router_ports(self) -> Mapping[str, Tuple[LogicalRouter, LogicalRouterPort]]:
        """Every router port by name, with its router."""
        return {p.name: (lr, p) for lr in self.routers for p in lr.ports}
