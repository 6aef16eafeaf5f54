"""Logical topology -> the text ``ovn-nbctl show`` prints for it, then its DHCP_Options rows and port groups.

The format is ovn-nbctl 23.03's (``print_ls`` / ``print_lr``; see
``ovnsim.testing.nbshow`` for the details), so a user can diff ``ovnsim show``
against ``ovn-nbctl show`` of a real cloud and the tests can parse both with
one parser.  Where real OVN prints a row UUID, ovnsim prints a UUID derived
from the row's name, stable from run to run.

``ovn-nbctl show`` prints neither DHCP_Options nor Port_Group rows; ovnsim
adds them after the routers, the ACLs of a port group one per line as
``ovn-nbctl --type=port-group acl-list`` prints them, then a ``#`` line for
each project that declares no security groups (its ports are not filtered).
"""

from __future__ import annotations

import uuid
from typing import List

from ovnsim.nb.model import ACL, LogicalRouter, LogicalSwitch, LogicalTopology

__all__ = ["show_text"]

_NAMESPACE = uuid.UUID("5e1f0c1e-0a5e-4b1e-9d0e-0c5a0e5f0a11")


def _uuid(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def _aka(external_ids, key: str) -> str:
    value = external_ids.get(key)
    return f" (aka {value})" if value else ""


def _quoted_list(values) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def show_text(logical: LogicalTopology) -> str:
    """The ``ovn-nbctl show`` text of ``logical``: switches, then routers."""
    lines: List[str] = []
    for ls in logical.switches:
        _switch(ls, lines)
    for lr in logical.routers:
        _router(lr, lines)
    _dhcp_options(logical, lines)
    _port_groups(logical, lines)
    for project in logical.unfiltered_projects:
        lines.append(f"# project {project} declares no security groups: no ACLs, its ports are not filtered")
    return "\n".join(lines) + "\n" if lines else ""


def acl_list_line(acl: ACL) -> str:
    """One ACL as ``ovn-nbctl acl-list`` prints it (23.03: ``%10s %5d (%s) %s``)."""
    return f"{acl.direction:>10} {acl.priority:5d} ({acl.match}) {acl.action}"


def acl_list_order(acls):
    """The ACLs in ``acl-list``'s order (``acl_cmp``): from-lport first, then priority high to low, then match."""
    return sorted(acls, key=lambda a: (a.direction != "from-lport", -a.priority, a.match))


def _port_groups(logical: LogicalTopology, lines: List[str]) -> None:
    for pg in logical.port_groups:
        lines.append(f"port-group {_uuid('pg', pg.name)} ({pg.name}){_aka(pg.external_ids, 'neutron:security_group_id')}")
        lines.append(f"    ports: {_quoted_list(pg.ports)}")
        for acl in acl_list_order(pg.acls):
            lines.append(f"    {acl_list_line(acl)}")


def _switch(ls: LogicalSwitch, lines: List[str]) -> None:
    lines.append(f"switch {_uuid('ls', ls.name)} ({ls.name}){_aka(ls.external_ids, 'neutron:network_name')}")
    for port in ls.ports:
        lines.append(f"    port {port.name}{_aka(port.external_ids, 'neutron:port_name')}")
        if port.type:
            lines.append(f"        type: {port.type}")
        if port.tag is not None:
            lines.append(f"        tag: {port.tag}")
        if port.addresses and list(port.addresses) != ["router"]:
            lines.append(f"        addresses: {_quoted_list(port.addresses)}")
        if "router-port" in port.options:
            lines.append(f"        router-port: {port.options['router-port']}")


def _dhcp_options(logical: LogicalTopology, lines: List[str]) -> None:
    """The DHCP_Options rows (not in ``ovn-nbctl show``): as ``dhcp-options-get-options`` lists them, and their ports."""
    users = {}
    for ls in logical.switches:
        for port in ls.ports:
            if port.dhcpv4_options is not None:
                users.setdefault(port.dhcpv4_options, []).append(port.name)
    for row in logical.dhcp_options:
        lines.append(f"dhcp-options {_uuid('dhcp', row.key)} ({row.cidr}){_aka(row.external_ids, 'subnet_id')}")
        for key in sorted(row.options):
            lines.append(f"    {key}={row.options[key]}")
        if row.key in users:
            lines.append(f"    ports: {' '.join(users[row.key])}")


def _router(lr: LogicalRouter, lines: List[str]) -> None:
    lines.append(f"router {_uuid('lr', lr.name)} ({lr.name}){_aka(lr.external_ids, 'neutron:router_name')}")
    for port in lr.ports:
        lines.append(f"    port {port.name}")
        lines.append(f'        mac: "{port.mac}"')
        lines.append(f"        networks: {_quoted_list(port.networks)}")
        if port.gateway_chassis:
            chassis = sorted(port.gateway_chassis, key=lambda gc: -gc.priority)
            lines.append(f"        gateway chassis: [{' '.join(gc.chassis for gc in chassis)}]")
    for nat in lr.nat:
        lines.append(f"    nat {_uuid('nat', f'{lr.name}:{nat.type}:{nat.external_ip}:{nat.logical_ip}')}")
        lines.append(f'        external ip: "{nat.external_ip}"')
        lines.append(f'        logical ip: "{nat.logical_ip}"')
        lines.append(f'        type: "{nat.type}"')
