"""Tenant topology -> OVN northbound logical objects, as Neutron's ML2/OVN driver writes them.

Naming follows Neutron (``ovn_client.py``) so ``ovnsim show`` lines up with
``ovn-nbctl show`` of a real cloud, ids standing in for Neutron's UUIDs:

* network ``N``                -> Logical_Switch ``neutron-N``
* external network ``N``       -> the same, plus localnet port ``provnet-N``
* port ``P``                   -> Logical_Switch_Port ``P``
* router ``R`` interface ``I`` -> Logical_Router_Port ``lrp-I`` and router-type LSP ``I``
* router ``R``                 -> Logical_Router ``neutron-R``
* gateway of ``R``             -> Logical_Router_Port ``lrp-R-gw`` and LSP ``R-gw``
* security group ``G``         -> Port_Group ``pg_G`` (``-`` as ``_``), one ACL per rule
  (``ovnsim.neutron.acl``), and ``neutron_pg_drop`` with its two drop ACLs
  holding every filtered port

The two gateway models (see ``docs/topology-format.md``):

``distributed-gateway-port``
    Neutron's own layout: ``lrp-R-gw`` sits on ``neutron-R`` itself, bound to
    a gateway chassis; SNAT per internal subnet and the floating IPs live on
    ``neutron-R`` and apply only to traffic leaving through that port.
``gateway-router``
    The OVN reference layout: ``neutron-R`` keeps east-west routing and a
    default route over the join switch ``join-R`` to the gateway router
    ``gr-R`` (``options:chassis``), which holds the default route out, the
    routes back to the tenant subnets and every NAT rule.
"""

from __future__ import annotations

import ipaddress
from typing import Dict, List, Tuple

from ovnsim.errors import TopologyError
from ovnsim.nb.model import (
    LSP_TYPE_LOCALNET,
    LSP_TYPE_LOCALPORT,
    LSP_TYPE_ROUTER,
    LSP_TYPE_VM,
    NAT_DNAT_AND_SNAT,
    NAT_SNAT,
    DHCPOptions,
    GatewayChassis,
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    LogicalSwitchPort,
    LogicalTopology,
    ACL,
    ACL_FROM_LPORT,
    ACL_TO_LPORT,
    NATRule,
    PortGroup,
    StaticMACBinding,
    StaticRoute,
)
from ovnsim.neutron import acl
from ovnsim.neutron.model import (
    DISTRIBUTED_GATEWAY_PORT,
    INGRESS,
    FloatingIP,
    Network,
    Port,
    Router,
    SecurityGroup,
    Subnet,
    Topology,
)

#: The join network between a router and its gateway router: the distributed
#: router takes the first host address, the gateway router the second.
JOIN_CIDR = ipaddress.ip_network("100.64.0.0/29")
JOIN_DR_IP = JOIN_CIDR.network_address + 1
JOIN_GR_IP = JOIN_CIDR.network_address + 2

#: Neutron's device_owner for VM ports, kept in external_ids as Neutron does.
DEVICE_OWNER_COMPUTE = "compute:nova"
#: Neutron's device_owner for metadata ports (``const.DEVICE_OWNER_DISTRIBUTED``).
DEVICE_OWNER_DISTRIBUTED = "network:distributed"

#: Neutron's ``[ovn] dhcp_default_lease_time`` default (12 hours).
DHCP_LEASE_TIME = 12 * 60 * 60
#: Where cloud-init finds the metadata service (``const.METADATA_V4_CIDR``).
METADATA_V4_CIDR = "169.254.169.254/32"


def switch_name(network_id: str) -> str:
    return f"neutron-{network_id}"


def router_name(router_id: str) -> str:
    return f"neutron-{router_id}"


def localnet_port_name(network_id: str) -> str:
    return f"provnet-{network_id}"


def router_port_name(port_id: str) -> str:
    return f"lrp-{port_id}"


def gateway_port_id(router_id: str) -> str:
    return f"{router_id}-gw"


def gateway_router_name(router_id: str) -> str:
    return f"gr-{router_id}"


def join_switch_name(router_id: str) -> str:
    return f"join-{router_id}"


def compile_logical(topo: Topology) -> LogicalTopology:
    """Compile a checked tenant topology into OVN northbound objects."""
    return _LogicalCompiler(topo).run()


class _LogicalCompiler:
    """One pass over the tenant model; switch ports are gathered per network first."""

    def __init__(self, topo: Topology):
        self.topo = topo
        # network id -> the LSPs routers add to it (interfaces, gateways)
        self.router_lsps: Dict[str, List[LogicalSwitchPort]] = {n: [] for n in topo.networks}
        self.routers: List[LogicalRouter] = []
        self.extra_switches: List[LogicalSwitch] = []
        self.mac_bindings: List[StaticMACBinding] = []

    def run(self) -> LogicalTopology:
        for router in self.topo.routers.values():
            self._router(router)
        dhcp = tuple(d for net in self.topo.networks.values() for d in _dhcp_options(net))
        self.dhcp_keys = {d.key for d in dhcp}
        switches = [self._switch(net) for net in self.topo.networks.values()]
        return LogicalTopology(
            switches=tuple(switches + self.extra_switches),
            routers=tuple(self.routers),
            static_mac_bindings=tuple(self.mac_bindings),
            source=self.topo.source,
            dhcp_options=dhcp,
            port_groups=_port_groups(self.topo),
            unfiltered_projects=tuple(p.name for p in self.topo.projects.values() if not p.security_groups_enabled),
        )

    # -- switches ---------------------------------------------------------

    def _switch(self, net: Network) -> LogicalSwitch:
        ports: List[LogicalSwitchPort] = []
        if net.external:
            ports.append(
                LogicalSwitchPort(
                    name=localnet_port_name(net.id),
                    type=LSP_TYPE_LOCALNET,
                    addresses=("unknown",),
                    options={"network_name": net.physical_network or ""},
                    tag=net.segmentation_id if net.network_type == "vlan" else None,
                )
            )
        ports.extend(self._vm_port(p) for p in self.topo.ports.values() if p.network == net.id)
        if net.metadata_port is not None:
            ports.append(self._metadata_port(net))
        ports.extend(self.router_lsps[net.id])
        external_ids = {"neutron:network_name": net.name}
        if net.mtu:
            external_ids["neutron:mtu"] = str(net.mtu)
        return LogicalSwitch(name=switch_name(net.id), ports=tuple(ports), external_ids=external_ids)

    def _vm_port(self, port: Port) -> LogicalSwitchPort:
        """A VM port as Neutron writes it (``_get_port_options`` / ``_get_allowed_addresses_from_port``)."""
        ips = [str(f.ip_address) for f in port.fixed_ips]
        primary = " ".join([port.mac_address] + ips)
        addresses = [primary]
        port_security: Tuple[str, ...] = ()
        if port.port_security:
            # Pairs with the port's own MAC widen the primary entry; pairs with
            # another MAC become entries of their own, and their MACs are added
            # to addresses so the switch delivers frames sent to them.
            same_mac = [p.ip_address for p in port.allowed_address_pairs if p.mac_address in (None, port.mac_address)]
            other: Dict[str, List[str]] = {}
            for pair in port.allowed_address_pairs:
                if pair.mac_address not in (None, port.mac_address):
                    other.setdefault(pair.mac_address, []).append(pair.ip_address)
            port_security = (" ".join([port.mac_address] + ips + same_mac),) + tuple(
                " ".join([mac] + pair_ips) for mac, pair_ips in other.items()
            )
            addresses.extend(other)
        else:
            addresses.append("unknown")
        external_ids = {
            "neutron:port_name": port.name,
            "neutron:device_owner": DEVICE_OWNER_COMPUTE,
            "neutron:cidrs": " ".join(
                f"{f.ip_address}/{self.topo.subnet(f.subnet).cidr.prefixlen}" for f in port.fixed_ips
            ),
        }
        if self.topo.projects[port.project].security_groups_enabled:
            external_ids[acl.SG_IDS_EXT_ID_KEY] = " ".join(port.security_groups)
        return LogicalSwitchPort(
            name=port.id,
            type=LSP_TYPE_VM,
            addresses=tuple(addresses),
            port_security=port_security,
            external_ids=external_ids,
            enabled=port.admin_state_up,
            # Neutron (_get_subnet_dhcp_options_for_port): the row of the first
            # DHCP-enabled subnet among the port's IPv4 fixed IPs
            dhcpv4_options=next((f.subnet for f in port.fixed_ips if f.subnet in self.dhcp_keys), None),
        )

    def _metadata_port(self, net: Network) -> LogicalSwitchPort:
        """The metadata port as Neutron writes it: type localport, "MAC IP...", no port security, no DHCP."""
        md = net.metadata_port
        assert md is not None
        return LogicalSwitchPort(
            name=md.id,
            type=LSP_TYPE_LOCALPORT,
            addresses=(" ".join([md.mac_address] + [str(f.ip_address) for f in md.fixed_ips]),),
            external_ids={
                "neutron:device_owner": DEVICE_OWNER_DISTRIBUTED,
                "neutron:device_id": md.id,
                "neutron:cidrs": " ".join(
                    f"{f.ip_address}/{self.topo.subnet(f.subnet).cidr.prefixlen}" for f in md.fixed_ips),
            },
        )

    def _attach(self, network_id: str, lsp_name: str, lrp_name: str, *, gateway: bool = False) -> None:
        """Add the router-type switch port that peers a router port with a switch."""
        options = {"router-port": lrp_name}
        if gateway:
            # Neutron sets this on gateway ports so the gateway chassis answers
            # (and announces) the router's NAT addresses on the provider network.
            options["nat-addresses"] = "router"
        self.router_lsps[network_id].append(
            LogicalSwitchPort(name=lsp_name, type=LSP_TYPE_ROUTER, addresses=("router",), options=options)
        )

    # -- routers ----------------------------------------------------------

    def _router(self, router: Router) -> None:
        ports: List[LogicalRouterPort] = []
        for iface in router.interfaces:
            subnet = self.topo.subnet(iface.subnet)
            lrp = router_port_name(iface.id)
            ports.append(
                LogicalRouterPort(
                    name=lrp,
                    mac=iface.mac_address,
                    networks=(f"{iface.ip_address}/{subnet.cidr.prefixlen}",),
                )
            )
            self._attach(subnet.network, iface.id, lrp)
        extra_routes = tuple(StaticRoute(str(r.destination), str(r.nexthop)) for r in router.routes)
        fips = [f for f in self.topo.floating_ips.values() if f.router == router.id]
        external_ids = {"neutron:router_name": router.name}
        gw = router.external_gateway
        if gw is None:
            self.routers.append(
                LogicalRouter(router_name(router.id), tuple(ports), extra_routes, external_ids=external_ids,
                              enabled=router.admin_state_up)
            )
            return

        gw_subnet = self.topo.subnet(gw.subnet)
        gw_lrp = LogicalRouterPort(
            name=router_port_name(gateway_port_id(router.id)),
            mac=gw.mac_address,
            networks=(f"{gw.ip_address}/{gw_subnet.cidr.prefixlen}",),
            gateway_chassis=(GatewayChassis(router.chassis, 1),)
            if router.gateway_model == DISTRIBUTED_GATEWAY_PORT else (),
        )
        self._attach(gw.network, gateway_port_id(router.id), gw_lrp.name, gateway=True)
        default_route: Tuple[StaticRoute, ...] = ()
        if gw_subnet.gateway_ip is not None:
            default_route = (
                StaticRoute("0.0.0.0/0", str(gw_subnet.gateway_ip)),
            )
            if gw_subnet.gateway_mac:
                self.mac_bindings.append(StaticMACBinding(gw_lrp.name, str(gw_subnet.gateway_ip), gw_subnet.gateway_mac))
        nat = self._nat_rules(router, fips)

        if router.gateway_model == DISTRIBUTED_GATEWAY_PORT:
            self.routers.append(
                LogicalRouter(
                    router_name(router.id),
                    tuple(ports) + (gw_lrp,),
                    extra_routes + default_route,
                    nat,
                    options={"always_learn_from_arp_request": "false", "dynamic_neigh_routers": "true"},
                    external_ids=external_ids,
                    enabled=router.admin_state_up,
                )
            )
            return

        # gateway-router model: DR --join--> GR --> external network
        self._check_join_overlap(router)
        join_ls = join_switch_name(router.id)
        dr_join = LogicalRouterPort(router_port_name(f"{router.id}-join"), _join_mac(router.id, "dr"),
                                    (f"{JOIN_DR_IP}/{JOIN_CIDR.prefixlen}",))
        gr_join = LogicalRouterPort(router_port_name(f"gr-{router.id}-join"), _join_mac(router.id, "gr"),
                                    (f"{JOIN_GR_IP}/{JOIN_CIDR.prefixlen}",))
        self.extra_switches.append(
            LogicalSwitch(
                join_ls,
                (
                    LogicalSwitchPort(f"{router.id}-join", LSP_TYPE_ROUTER, ("router",),
                                      options={"router-port": dr_join.name}),
                    LogicalSwitchPort(f"gr-{router.id}-join", LSP_TYPE_ROUTER, ("router",),
                                      options={"router-port": gr_join.name}),
                ),
                external_ids={"neutron:router_name": router.name},
            )
        )
        self.routers.append(
            LogicalRouter(
                router_name(router.id),
                tuple(ports) + (dr_join,),
                extra_routes + (StaticRoute("0.0.0.0/0", str(JOIN_GR_IP)),),
                external_ids=external_ids,
                enabled=router.admin_state_up,
            )
        )
        # The gateway router must route replies (and un-NATed inbound traffic)
        # back to everything behind the distributed router.
        back = [str(self.topo.subnet(i.subnet).cidr) for i in router.interfaces]
        back += [str(r.destination) for r in router.routes if str(r.destination) not in back]
        self.routers.append(
            LogicalRouter(
                gateway_router_name(router.id),
                (gr_join, gw_lrp),
                tuple(StaticRoute(prefix, str(JOIN_DR_IP)) for prefix in back) + default_route,
                nat,
                options={"chassis": router.chassis},
                external_ids=external_ids,
                enabled=router.admin_state_up,
            )
        )

    def _nat_rules(self, router: Router, fips: List[FloatingIP]) -> Tuple[NATRule, ...]:
        gw = router.external_gateway
        assert gw is not None
        rules: List[NATRule] = []
        if gw.enable_snat:
            for iface in router.interfaces:
                subnet = self.topo.subnet(iface.subnet)
                if subnet.ip_version == 4:
                    rules.append(NATRule(NAT_SNAT, str(gw.ip_address), str(subnet.cidr)))
        for fip in fips:
            # (the loader refuses a distributed FIP on a gateway-router router)
            external_mac = _fip_mac(self.topo, fip) if fip.distributed else None
            rules.append(
                NATRule(
                    NAT_DNAT_AND_SNAT,
                    str(fip.floating_ip_address),
                    str(fip.fixed_ip_address),
                    # Neutron also records logical_port on centralised FIPs;
                    # OVN reads it only together with external_mac, and
                    # ovn-nbctl lr-nat-add takes the two together.
                    logical_port=fip.port if fip.distributed else None,
                    external_mac=external_mac,
                    stateless=fip.stateless,
                )
            )
        return tuple(rules)

    def _check_join_overlap(self, router: Router) -> None:
        for i, iface in enumerate(router.interfaces):
            if self.topo.subnet(iface.subnet).cidr.overlaps(JOIN_CIDR):
                raise TopologyError(
                    f"subnet overlaps {JOIN_CIDR}, the join network of the gateway-router model;"
                    " use another CIDR or gateway_model distributed-gateway-port",
                    f"projects.{router.project}.routers.{router.name}.interfaces[{i}]",
                    self.topo.source,
                )


def _port_groups(topo: Topology) -> Tuple[PortGroup, ...]:
    """The Port_Group rows Neutron writes (``ovn_client.create_security_group`` / ``create_port``).

    None unless a project declares security groups.  Then ``neutron_pg_drop``
    first (its two priority-1001 drop ACLs; every port with port security of
    such a project is in it, so IP traffic a group does not allow is dropped),
    then one port group per security group with its members and one ACL per
    rule.  A port with port security disabled is in no port group: no ACL
    sees it.
    """
    if not any(p.security_groups_enabled for p in topo.projects.values()):
        return ()
    filtered = [p for p in topo.ports.values() if p.port_security and topo.projects[p.project].security_groups_enabled]
    drop = PortGroup(
        name=acl.DROP_PORT_GROUP,
        ports=tuple(p.id for p in filtered),
        acls=tuple(ACL(direction, acl.PRIORITY_DROP, match, acl.ACTION_DROP)
                   for direction, match in acl.drop_matches().items()),
    )
    return (drop,) + tuple(_security_group_port_group(topo, sg) for sg in topo.security_groups.values())


def _security_group_port_group(topo: Topology, sg: SecurityGroup) -> PortGroup:
    """One security group as its port group (acl.py ``add_acls_for_sg_port_group``)."""
    name = acl.port_group_name(sg.id)
    action = acl.ACTION_ALLOW_RELATED if sg.stateful else acl.ACTION_ALLOW_STATELESS
    return PortGroup(
        name=name,
        ports=tuple(p.id for p in topo.ports.values() if sg.id in p.security_groups),
        acls=tuple(
            ACL(ACL_TO_LPORT if rule.direction == INGRESS else ACL_FROM_LPORT, acl.PRIORITY_ALLOW,
                acl.rule_match(rule, name), action, {acl.SG_RULE_EXT_ID_KEY: rule.id})
            for rule in sg.rules
        ),
        external_ids={acl.SG_EXT_ID_KEY: sg.id},
    )


def _dhcp_options(net: Network) -> List[DHCPOptions]:
    """The DHCP_Options rows Neutron writes for a network's subnets (``_get_ovn_dhcpv4_opts``).

    One row per DHCP-enabled IPv4 subnet.  Without a gateway and without a
    metadata port address Neutron has no ``server_id`` and writes the row
    with no options (OVN then offers nothing).  ``dns_server`` comes from the
    subnet's ``dns_nameservers`` only: the fallbacks Neutron has (``[ovn]
    dns_servers``, the controller's resolv.conf) are deployment settings.
    """
    rows = []
    metadata_ip = {}
    if net.metadata_port is not None:
        metadata_ip = {f.subnet: str(f.ip_address) for f in net.metadata_port.fixed_ips}
    for sub in net.subnets:
        if not sub.enable_dhcp or sub.ip_version != 4:
            continue
        rows.append(DHCPOptions(key=sub.id, cidr=str(sub.cidr), options=_dhcpv4_options(net, sub, metadata_ip.get(sub.id)),
                                external_ids={"subnet_id": sub.id, "neutron:network_id": net.id}))
    return rows


def _dhcpv4_options(net: Network, sub: Subnet, metadata_ip) -> Dict[str, str]:
    server_id = sub.gateway_ip or metadata_ip
    if not server_id:
        return {}
    options = {"server_id": str(server_id), "lease_time": str(DHCP_LEASE_TIME), "mtu": str(net.effective_mtu)}
    if sub.gateway_ip:
        options["router"] = str(sub.gateway_ip)
    options["server_mac"] = sub.dhcp_server_mac
    if sub.dns_nameservers:
        options["dns_server"] = "{" + ", ".join(str(ip) for ip in sub.dns_nameservers) + "}"
    routes = []
    if metadata_ip:
        routes.append(f"{METADATA_V4_CIDR},{metadata_ip}")
    routes += [f"{r.destination},{r.nexthop}" for r in sub.host_routes]
    if routes:
        # RFC 3442: a client that gets option 121 ignores option 3, so the
        # default route goes into it too
        if sub.gateway_ip:
            routes.append(f"0.0.0.0/0,{sub.gateway_ip}")
        options["classless_static_route"] = "{" + ", ".join(routes) + "}"
    return options


def _join_mac(router_id: str, side: str) -> str:
    from ovnsim.neutron.loader import derive_mac

    return derive_mac(f"router-join-{side}", router_id)


def _fip_mac(topo: Topology, fip: FloatingIP) -> str:
    """The MAC of a distributed floating IP's own Neutron port (its ``external_mac``)."""
    from ovnsim.neutron.loader import derive_mac

    taken = {p.mac_address for p in topo.ports.values() if p.network == fip.network}
    taken |= {r.external_gateway.mac_address for r in topo.routers.values()
              if r.external_gateway and r.external_gateway.network == fip.network}
    return derive_mac("floating-ip", fip.id, taken)


def compile_topology(topology: Topology) -> LogicalTopology:
    """Compile a checked tenant topology into OVN northbound logical objects.

    Raises :class:`ovnsim.errors.TopologyError` for the one inconsistency
    only the compiler can see: a subnet overlapping the join network of the
    gateway-router model.
    """
    return compile_logical(topology)
