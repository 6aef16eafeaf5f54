"""Logical topology -> the ``ovn-nbctl`` commands that build it in a real northbound DB.

One invocation per object (a switch, a switch port, a router, a router port,
a route, a NAT rule, a static MAC binding, a DHCP_Options row with the
ports that use it, a port group, an ACL), chained with ``--`` where an object
needs more than one command.  An ACL with external_ids (a security group
rule's, naming the rule) is created as a row and added to its port group,
since ``acl-add`` cannot set external_ids; one without them is ``acl-add``.
The port groups come last: ``pg-add`` names switch ports that must exist.  ``nbctl_commands`` gives argv lists (what
the real-OVN test fixture runs, no shell involved); ``nbctl_script`` gives the
shell-quoted lines ``ovnsim export nbctl`` prints.
"""

from __future__ import annotations

import json
import shlex
from typing import Iterator, List, Mapping

from ovnsim.nb.model import (
    ACL,
    DHCPOptions,
    LogicalRouter,
    LogicalSwitch,
    LogicalSwitchPort,
    LogicalTopology,
    PortGroup,
)

__all__ = ["nbctl_commands", "nbctl_script"]


def nbctl_commands(logical: LogicalTopology) -> List[List[str]]:
    """The ovn-nbctl invocations that build ``logical``, as argv lists starting with ``ovn-nbctl``."""
    return [["ovn-nbctl", *argv] for argv in _invocations(logical)]


def nbctl_script(logical: LogicalTopology) -> str:
    """``nbctl_commands`` as a shell script body, one quoted command per line."""
    return "".join(shlex.join(argv) + "\n" for argv in nbctl_commands(logical))


def _column_pairs(column: str, values: Mapping[str, str]) -> List[str]:
    # ovsdb's value syntax: quote keys and values (keys like "neutron:port_name"
    # contain colons); JSON string quoting is the C-style quoting ovsdb reads.
    return [f"{column}:{json.dumps(k)}={json.dumps(v)}" for k, v in values.items()]


def _chain(*commands: List[str]) -> List[str]:
    argv: List[str] = []
    for cmd in commands:
        if cmd:
            argv.extend((["--"] if argv else []) + cmd)
    return argv


def _invocations(logical: LogicalTopology) -> Iterator[List[str]]:
    for ls in logical.switches:
        yield from _switch(ls)
    users = {}
    for ls in logical.switches:
        for port in ls.ports:
            if port.dhcpv4_options is not None:
                users.setdefault(port.dhcpv4_options, []).append(port.name)
    for number, row in enumerate(logical.dhcp_options):
        yield _dhcp_options(row, f"dhcp{number}", users.get(row.key, []))
    for lr in logical.routers:
        yield from _router(lr)
    for binding in logical.static_mac_bindings:
        yield ["static-mac-binding-add", binding.logical_port, binding.ip, binding.mac]
    for number, pg in enumerate(logical.port_groups):
        yield from _port_group(pg, number)


def _port_group(pg: PortGroup, number: int) -> Iterator[List[str]]:
    columns = _column_pairs("external_ids", pg.external_ids)
    yield _chain(["pg-add", pg.name, *pg.ports], ["set", "Port_Group", pg.name, *columns] if columns else [])
    for i, acl in enumerate(pg.acls):
        # a reference unique in the whole script: the real-OVN fixture runs many invocations as one transaction
        yield _acl(pg.name, acl, f"acl{number}_{i}")


def _acl(port_group: str, acl: ACL, ref: str) -> List[str]:
    if not acl.external_ids:
        return ["--type=port-group", "acl-add", port_group, acl.direction, str(acl.priority), acl.match, acl.action]
    return _chain(
        [f"--id=@{ref}", "create", "ACL", f"direction={acl.direction}", f"priority={acl.priority}",
         f"match={json.dumps(acl.match)}", f"action={acl.action}", *_column_pairs("external_ids", acl.external_ids)],
        ["add", "Port_Group", port_group, "acls", f"@{ref}"],
    )


def _switch(ls: LogicalSwitch) -> Iterator[List[str]]:
    columns = _column_pairs("external_ids", ls.external_ids) + _column_pairs("other_config", ls.other_config)
    yield _chain(["ls-add", ls.name], ["set", "Logical_Switch", ls.name, *columns] if columns else [])
    for port in ls.ports:
        yield _switch_port(ls, port)


def _switch_port(ls: LogicalSwitch, port: LogicalSwitchPort) -> List[str]:
    columns = _column_pairs("external_ids", port.external_ids)
    if port.tag is not None:
        columns.append(f"tag={port.tag}")
    return _chain(
        ["lsp-add", ls.name, port.name],
        ["lsp-set-type", port.name, port.type] if port.type else [],
        ["lsp-set-addresses", port.name, *port.addresses] if port.addresses else [],
        ["lsp-set-port-security", port.name, *port.port_security] if port.port_security else [],
        ["lsp-set-options", port.name, *(f"{k}={v}" for k, v in port.options.items())] if port.options else [],
        ["lsp-set-enabled", port.name, "disabled"] if not port.enabled else [],
        ["set", "Logical_Switch_Port", port.name, *columns] if columns else [],
    )


def _dhcp_options(row: DHCPOptions, ref: str, ports: List[str]) -> List[str]:
    # One invocation: the row has no name, only a UUID, so it is created with
    # a transaction-local reference the ports' dhcpv4_options can point at.
    return _chain(
        [f"--id=@{ref}", "create", "DHCP_Options", f"cidr={row.cidr}",
         *_column_pairs("options", row.options), *_column_pairs("external_ids", row.external_ids)],
        *(["set", "Logical_Switch_Port", port, f"dhcpv4_options=@{ref}"] for port in ports),
    )


def _router(lr: LogicalRouter) -> Iterator[List[str]]:
    columns = _column_pairs("options", lr.options) + _column_pairs("external_ids", lr.external_ids)
    if not lr.enabled:
        columns.append("enabled=false")
    yield _chain(["lr-add", lr.name], ["set", "Logical_Router", lr.name, *columns] if columns else [])
    for port in lr.ports:
        port_columns = _column_pairs("options", port.options) + _column_pairs("external_ids", port.external_ids)
        yield _chain(
            ["lrp-add", lr.name, port.name, port.mac, *port.networks],
            *(["lrp-set-gateway-chassis", port.name, gc.chassis, str(gc.priority)] for gc in port.gateway_chassis),
            ["lrp-set-enabled", port.name, "disabled"] if not port.enabled else [],
            ["set", "Logical_Router_Port", port.name, *port_columns] if port_columns else [],
        )
    for route in lr.static_routes:
        policy = [] if route.policy == "dst-ip" else [f"--policy={route.policy}"]
        yield [*policy, "lr-route-add", lr.name, route.ip_prefix, route.nexthop,
               *([route.output_port] if route.output_port else [])]
    for nat in lr.nat:
        extra = [nat.logical_port or "", nat.external_mac or ""] if nat.external_mac else []
        yield [*(["--stateless"] if nat.stateless else []), "lr-nat-add", lr.name, nat.type,
               nat.external_ip, nat.logical_ip, *extra]
