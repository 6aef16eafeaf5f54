"""Why an ACL dropped a packet: the security group rule that would have let it through.

For the data path's drop records and the reachability answer ("why not"):
given the port whose ACL stage dropped a packet (the sender's for
``ls_in_acl``, the receiver's for ``ls_out_acl``) and the packet's fields at
that point, :func:`missing_rule` names the rule that would have to exist, in
Neutron's terms, e.g.::

    ingress tcp/22 from 10.4.0.30/32 (or remote group shop-default) on group web of port web2

It reads only the logical model: the port's groups from the port groups it
is in (``external_ids:neutron:security_group_id``, Neutron's group id) and
the remote port's groups for the remote-group alternative.  A port in no
group (``security_groups: []``) needs a group first, which the text says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from ovnsim.nb.model import LogicalTopology

__all__ = ["MissingRule", "missing_rule", "SG_EXT_ID_KEY"]

#: The Port_Group external_ids key holding Neutron's security group id.
SG_EXT_ID_KEY = "neutron:security_group_id"

#: IP protocol numbers with a name in Neutron's rules, and whether the rule takes ports.
_PROTOCOLS = {6: ("tcp", True), 17: ("udp", True), 132: ("sctp", True), 1: ("icmp", False)}
_STAGE_DIRECTION = {"ls_in_acl": "egress", "ls_out_acl": "ingress"}


@dataclass(frozen=True)
class MissingRule:
    """A security group rule that would allow the dropped packet, for the port's first group.

    ``group`` is None when the port is in no security group.  ``remote_groups``
    are the groups of the port that owns the remote address (a remote-group
    rule for one of them would do as well).
    """

    port: str
    group: Optional[str]
    direction: str  #: "ingress" or "egress"
    remote_ip_prefix: str
    protocol: Optional[str] = None  #: "tcp", "udp", "sctp", "icmp", a number as a string, or None (any)
    port_range_min: Optional[int] = None  #: destination port, or ICMP type
    port_range_max: Optional[int] = None  #: destination port, or ICMP code
    ethertype: str = "IPv4"
    remote_groups: Tuple[str, ...] = ()

    def rule(self) -> Dict[str, object]:
        """The rule as a topology file writes it (``security_groups.<group>.rules[]``)."""
        rule: Dict[str, object] = {"direction": self.direction, "ethertype": self.ethertype,
                                   "remote_ip_prefix": self.remote_ip_prefix}
        if self.protocol is not None:
            rule["protocol"] = self.protocol
        if self.port_range_min is not None:
            rule["port_range_min"] = self.port_range_min
        if self.port_range_max is not None:
            rule["port_range_max"] = self.port_range_max
        return rule

    def text(self) -> str:
        """One line: ``ingress tcp/22 from 10.0.0.5/32 on group web of port vm2``."""
        what = self.protocol or "any protocol"
        if self.protocol == "icmp" and self.port_range_min is not None:
            what += f" type {self.port_range_min}"
            if self.port_range_max is not None:
                what += f" code {self.port_range_max}"
        elif self.port_range_min is not None:
            what += f"/{self.port_range_min}"
        side = "from" if self.direction == "ingress" else "to"
        remote = self.remote_ip_prefix
        if self.remote_groups:
            remote += f" (or remote group {' or '.join(self.remote_groups)})"
        where = (f"on group {self.group} of port {self.port}" if self.group is not None
                 else f"on a security group of port {self.port} (it is in none)")
        return f"{self.direction} {what} {side} {remote} {where}"


def port_security_groups(logical: LogicalTopology) -> Dict[str, Tuple[str, ...]]:
    """Switch port name -> the ids of the security groups whose port groups hold it, in port group order."""
    groups: Dict[str, Tuple[str, ...]] = {}
    for pg in logical.port_groups:
        sg = pg.external_ids.get(SG_EXT_ID_KEY)
        if sg is None:
            continue  # neutron_pg_drop
        for port in pg.ports:
            groups[port] = groups.get(port, ()) + (sg,)
    return groups


def _owner(logical: LogicalTopology, ip: str) -> Optional[str]:
    for name, (_ls, port) in logical.switch_ports().items():
        for entry in port.addresses:
            if ip in entry.split()[1:]:
                return name
    return None


def missing_rule(logical: LogicalTopology, port: str, stage: str, fields: Mapping[str, object]) -> MissingRule:
    """The rule that would let a packet through the ACL stage ``stage`` of ``port``.

    ``stage`` is ``ls_in_acl`` (the packet leaves ``port``: an egress rule,
    remote = ``ip4.dst``) or ``ls_out_acl`` (it reaches ``port``: an ingress
    rule, remote = ``ip4.src``).  ``fields`` are the packet's OVN fields at
    the drop (``ip4.src``, ``ip4.dst``, ``ip.proto``, ``tcp.dst``, ``icmp4.type``...).
    The rule is as narrow as the packet: the destination port (ICMP type and
    code), the remote address as a /32.
    """
    direction = _STAGE_DIRECTION[stage]
    remote = str(fields["ip4.src"] if direction == "ingress" else fields["ip4.dst"])
    proto = fields.get("ip.proto")
    protocol: Optional[str] = None
    lo = hi = None
    if proto is not None:
        name, has_ports = _PROTOCOLS.get(int(proto), (str(proto), False))  # type: ignore[call-overload]
        protocol = name
        if has_ports:
            lo = hi = int(fields[f"{name}.dst"])  # type: ignore[call-overload]
        elif name == "icmp":
            lo, hi = int(fields["icmp4.type"]), int(fields["icmp4.code"])  # type: ignore[call-overload]
    groups = port_security_groups(logical)
    owner = _owner(logical, remote)
    return MissingRule(
        port=port,
        group=(groups.get(port) or (None,))[0],
        direction=direction,
        remote_ip_prefix=f"{remote}/32",
        protocol=protocol,
        port_range_min=lo,
        port_range_max=hi,
        remote_groups=groups.get(owner, ()) if owner is not None else (),
    )
