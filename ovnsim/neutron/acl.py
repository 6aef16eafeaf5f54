"""Security group rules -> OVN ACL match strings, as Neutron's ML2/OVN driver builds them.

One definition, used by the compiler (the ACL rows) and by the loader (a rule
whose ACL would repeat another's is refused, as Neutron refuses a duplicate
rule).  It follows ``neutron/common/ovn/acl.py`` (``acl_direction``,
``acl_ethertype``, ``acl_remote_ip_prefix``, ``acl_remote_group_id``,
``acl_protocol_and_ports``) and ``neutron/common/ovn/utils.py``
(``ovn_port_group_name``, ``ovn_pg_addrset_name``) string for string::

    ingress tcp 22 from 10.0.0.0/24 -> outport == @pg_web && ip4 && ip4.src == 10.0.0.0/24 && tcp && tcp.dst == 22
    egress to group db              -> inport == @pg_web && ip4 && ip4.dst == $pg_db_ip4
    ingress icmp type 8 code 0      -> outport == @pg_web && ip4 && icmp4 && icmp4.type == 8 && icmp4.code == 0
    ingress protocol 47 (gre)       -> outport == @pg_web && ip4 && ip.proto == 47
"""

from __future__ import annotations

from typing import Dict, Optional

from ovnsim.nb.acls import SG_EXT_ID_KEY
from ovnsim.neutron.model import INGRESS, IPV4, IPV6, SecurityGroupRule

__all__ = [
    "PRIORITY_ALLOW",
    "PRIORITY_DROP",
    "ACTION_ALLOW_RELATED",
    "ACTION_ALLOW_STATELESS",
    "ACTION_DROP",
    "DROP_PORT_GROUP",
    "SG_EXT_ID_KEY",
    "SG_RULE_EXT_ID_KEY",
    "PROTOCOL_NUMBERS",
    "port_group_name",
    "pg_addrset_name",
    "protocol_number",
    "rule_match",
    "drop_matches",
]

#: ``ovn_const.ACL_PRIORITY_ALLOW`` / ``ACL_PRIORITY_DROP``.
PRIORITY_ALLOW = 1002
PRIORITY_DROP = 1001
#: ``ovn_const.ACL_ACTION_*``.
ACTION_ALLOW_RELATED = "allow-related"
ACTION_ALLOW_STATELESS = "allow-stateless"
ACTION_DROP = "drop"
#: ``ovn_const.OVN_DROP_PORT_GROUP_NAME``: every port with port security is in it.
DROP_PORT_GROUP = "neutron_pg_drop"
#: external_ids keys Neutron writes on a group's Port_Group (SG_EXT_ID_KEY, defined
#: beside the logical model's reader of it) and on each rule's ACL.
SG_RULE_EXT_ID_KEY = "neutron:security_group_rule_id"
#: external_ids key listing a port's groups on its Logical_Switch_Port.
SG_IDS_EXT_ID_KEY = "neutron:security_group_ids"

#: The protocol names Neutron accepts (neutron-lib ``IP_PROTOCOL_MAP``), with their IANA numbers.
PROTOCOL_NUMBERS: Dict[str, int] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58, "ipv6-nonxt": 59,
    "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6,
    "udp": 17, "udplite": 136, "vrrp": 112,
}
#: Protocols with ports (acl.py ``TRANSPORT_PROTOCOLS``), by number.
TRANSPORT_PROTOCOLS = {"6": "tcp", "17": "udp", "132": "sctp"}
#: ICMP for IPv4 and IPv6 (acl.py ``ICMP_PROTOCOLS``), by number.
ICMP_PROTOCOLS = ("1", "58")


def port_group_name(sg_id: str) -> str:
    """The Port_Group of a security group: ``pg_<id>``, ``-`` replaced by ``_`` (utils.ovn_port_group_name)."""
    return f"pg-{sg_id}".replace("-", "_")


def pg_addrset_name(sg_id: str, ip_version: str) -> str:
    """The address set northd derives from a group's port group: ``pg_<id>_ip4`` / ``_ip6`` (utils.ovn_pg_addrset_name)."""
    return f"pg-{sg_id}-{ip_version}".replace("-", "_")


def protocol_number(protocol: Optional[str]) -> Optional[str]:
    """A rule's protocol as acl.py's ``_get_protocol_number``: None, or the number as a string.

    Raises ValueError for a name Neutron does not know or a number outside 0-255.
    """
    if protocol is None:
        return None
    try:
        number = int(protocol)
    except ValueError:
        if protocol not in PROTOCOL_NUMBERS:
            raise ValueError(protocol) from None
        return str(PROTOCOL_NUMBERS[protocol])
    if not 0 <= number <= 255:
        raise ValueError(protocol)
    return str(number)


def _protocol_and_ports(rule: SecurityGroupRule, icmp: str) -> str:
    number = protocol_number(rule.protocol)
    if number is None:
        return ""
    lo, hi = rule.port_range_min, rule.port_range_max
    if number in TRANSPORT_PROTOCOLS:
        name = TRANSPORT_PROTOCOLS[number]
        match = f" && {name}"
        if lo is not None and lo == hi:
            return match + f" && {name}.dst == {lo}"
        if lo is not None:
            match += f" && {name}.dst >= {lo}"
        if hi is not None:
            match += f" && {name}.dst <= {hi}"
        return match
    if number in ICMP_PROTOCOLS:
        match = f" && {icmp}"
        if lo is not None:
            match += f" && {icmp}.type == {lo}"
        if hi is not None:
            match += f" && {icmp}.code == {hi}"
        return match
    return f" && ip.proto == {number}"


def rule_match(rule: SecurityGroupRule, port_group: str) -> str:
    """The ACL match of ``rule`` in port group ``port_group`` (acl.py ``_add_sg_rule_acl_for_port_group``).

    An ingress rule filters what the group's ports receive (``to-lport``,
    ``outport``, remote = source); an egress rule what they send
    (``from-lport``, ``inport``, remote = destination).
    """
    ingress = rule.direction == INGRESS
    match = f"{'outport' if ingress else 'inport'} == @{port_group}"
    ip, icmp = ("ip4", "icmp4") if rule.ethertype == IPV4 else ("ip6", "icmp6") if rule.ethertype == IPV6 else ("", "")
    if ip:
        match += f" && {ip}"
    side = "src" if ingress else "dst"
    if rule.remote_ip_prefix is not None:
        match += f" && {ip}.{side} == {rule.remote_ip_prefix}"
    if rule.remote_group is not None:
        match += f" && {ip}.{side} == ${pg_addrset_name(rule.remote_group, ip)}"
    return match + _protocol_and_ports(rule, icmp)


def drop_matches() -> Dict[str, str]:
    """direction -> match of the two ``neutron_pg_drop`` ACLs (utils.create_neutron_pg_drop)."""
    return {"to-lport": f"outport == @{DROP_PORT_GROUP} && ip", "from-lport": f"inport == @{DROP_PORT_GROUP} && ip"}
