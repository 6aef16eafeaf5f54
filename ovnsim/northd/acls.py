"""The ACLs of a logical topology as the data path evaluates them: compiled matches, per port, per pipeline.

ovn-northd turns every Port_Group ACL into logical flows on the switches of
the group's ports (``ls_in_acl`` for ``from-lport``, ``ls_out_acl`` for
``to-lport``, priority = ACL priority + 1000; ``allow-stateless`` ones also in
``ls_*_pre_acl``).  :func:`compile_acls` does the same work once, at
lowering: each ACL's match becomes an :class:`AclMatch` (the conjunction of
terms Neutron's driver writes, ``ovnsim.neutron.acl``), and each switch port
gets the ACLs that apply to it, per pipeline, in the order the engine
evaluates them (highest priority first; among equal priorities, ACL row
order: with Neutron's rules, several matching 1002 ACLs have the same
effect, except an ``allow-stateless`` and an ``allow-related`` one matching
the same packet, where OVS may pick either and ovnsim picks the first).

What a match may hold is what Neutron writes: ``inport == @pg`` /
``outport == @pg`` (or a port name), ``ip``, ``ip4``, ``ip6``,
``ip4.src``/``ip4.dst`` ``==`` a prefix or an address set ``$pg_<id>_ip4``,
``tcp``/``udp``/``sctp`` with ``.dst ==``, ``>=``, ``<=``, ``icmp4`` with
``.type ==``/``.code ==``, ``ip.proto == N``, and the IPv6 twins (which never
match: ovnsim models IPv4).  Anything else is an :class:`~ovnsim.errors.EngineError`
naming the ACL.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ovnsim.errors import EngineError
from ovnsim.nb.model import ACL, ACL_FROM_LPORT, LogicalTopology

__all__ = ["ACTION_CODES", "AclMatch", "AclRow", "AclTables", "compile_acls", "compile_match"]

#: ACL action -> the engine's code (``AclRule.action``); "allow" behaves as allow-related on a
#: switch with stateful ACLs, "reject" is dropped (ovnsim sends no RST/unreachable for it).
ACTION_CODES = {"allow-related": 1, "allow": 1, "allow-stateless": 2, "drop": 3, "reject": 3}
_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132}
_TERM = re.compile(r"^([a-z0-9_.]+)\s*(==|>=|<=)\s*(.+)$")


@dataclass
class AclMatch:
    """One ACL match, compiled: what the engine's ``AclRule`` holds."""

    ip6: bool = False
    src: Optional[ipaddress.IPv4Network] = None
    dst: Optional[ipaddress.IPv4Network] = None
    src_set: Optional[str] = None
    dst_set: Optional[str] = None
    proto: Optional[int] = None
    dport_lo: int = 0
    dport_hi: int = 0xFFFF
    has_ports: bool = False
    icmp_type: int = -1
    icmp_code: int = -1
    port_group: Optional[str] = None  #: the @group the match's inport/outport names
    port: Optional[str] = None  #: or the port it names


@dataclass(frozen=True)
class AclRow:
    """An ACL with the port group it belongs to (what a trace step and a drop name)."""

    port_group: str
    acl: ACL
    match: AclMatch = field(compare=False)

    @property
    def priority(self) -> int:
        """The priority of its logical flows (``ls_*_acl``, ``ls_*_pre_acl``)."""
        return self.acl.priority + 1000


@dataclass
class AclTables:
    """Every ACL of the topology and, per switch port, the ones that apply to it.

    ``per_port[name] = (ingress rows, egress rows)`` (indices into ``rows``,
    in evaluation order); ``active_ports`` are the ports of switches with
    ACLs; ``address_sets`` the sets the matches name, with their IPv4 addresses.
    """

    rows: List[AclRow]
    per_port: Dict[str, Tuple[List[int], List[int]]]
    active_ports: List[str]
    address_sets: Dict[str, Tuple[int, ...]]


def _error(pg: str, acl: ACL, problem: str) -> EngineError:
    return EngineError(f"port group {pg!r}: ACL {acl.direction} {acl.priority} {acl.match!r}: {problem}")


def compile_match(pg: str, acl: ACL) -> AclMatch:
    """An ACL's match as an :class:`AclMatch` (EngineError for terms Neutron does not write)."""
    m = AclMatch()
    for term in (t.strip() for t in acl.match.split("&&")):
        if term in ("ip", "ip4"):
            continue
        if term in ("ip6", "icmp6"):
            m.ip6 = True
            continue
        if term in _PROTOS:
            m.proto = _PROTOS[term]
            continue
        if term == "icmp4" or term == "icmp":
            m.proto = 1
            continue
        found = _TERM.match(term)
        if not found:
            raise _error(pg, acl, f"term {term!r} is not one ovnsim evaluates")
        name, op, value = found.groups()
        value = value.strip()
        try:
            if name in ("inport", "outport") and op == "==":
                if value.startswith("@"):
                    m.port_group = value[1:]
                else:
                    m.port = value.strip('"')
            elif name in ("ip4.src", "ip4.dst") and op == "==":
                side = name.split(".")[1]
                if value.startswith("$"):
                    setattr(m, f"{side}_set", value[1:])
                else:
                    setattr(m, side, ipaddress.IPv4Network(value, strict=False))
            elif name in ("ip6.src", "ip6.dst"):
                m.ip6 = True
            elif name.split(".")[0] in _PROTOS and name.endswith(".dst"):
                m.proto = _PROTOS[name.split(".")[0]]
                m.has_ports = True
                number = int(value)
                if op in ("==", ">="):
                    m.dport_lo = number
                if op in ("==", "<="):
                    m.dport_hi = number
            elif name in ("icmp4.type", "icmp4.code") and op == "==":
                m.proto = 1
                setattr(m, "icmp_" + name.split(".")[1], int(value))
            elif name in ("icmp6.type", "icmp6.code"):
                m.ip6 = True
            elif name == "ip.proto" and op == "==":
                m.proto = int(value)
            else:
                raise _error(pg, acl, f"term {term!r} is not one ovnsim evaluates")
        except ValueError as err:
            raise _error(pg, acl, f"term {term!r}: {err}") from None
    return m


def compile_acls(logical: LogicalTopology) -> AclTables:
    """The ACL rows of ``logical`` and the ports they apply to (see :class:`AclTables`)."""
    rows: List[AclRow] = []
    per_port: Dict[str, Tuple[List[int], List[int]]] = {}
    switch_of: Dict[str, str] = {p.name: ls.name for ls in logical.switches for p in ls.ports}
    members = {pg.name: set(pg.ports) for pg in logical.port_groups}
    for pg in logical.port_groups:
        for acl in pg.acls:
            if acl.action not in ACTION_CODES:
                raise _error(pg.name, acl, f"action {acl.action!r} is not one ovnsim evaluates")
            match = compile_match(pg.name, acl)
            index = len(rows)
            rows.append(AclRow(pg.name, acl, match))
            for port in pg.ports:
                if port not in switch_of:
                    raise EngineError(f"port group {pg.name!r} names port {port!r}, which no switch has")
                if match.port_group is not None and port not in members.get(match.port_group, ()):
                    continue
                if match.port is not None and port != match.port:
                    continue
                per_port.setdefault(port, ([], []))[0 if acl.direction == ACL_FROM_LPORT else 1].append(index)
    for lists in per_port.values():
        for lst in lists:
            lst.sort(key=lambda i: -rows[i].priority)  # stable: row order within a priority
    acl_switches = {switch_of[p] for p in per_port}
    active = [p.name for ls in logical.switches if ls.name in acl_switches for p in ls.ports]
    wanted = {m for r in rows for m in (r.match.src_set, r.match.dst_set) if m is not None}
    sets: Dict[str, Tuple[int, ...]] = {}
    for aset in logical.port_group_address_sets():
        if aset.name in wanted:
            sets[aset.name] = tuple(int(ipaddress.IPv4Address(a)) for a in aset.addresses if ":" not in a)
    for name in wanted - set(sets):
        if name.endswith("_ip6"):
            sets[name] = ()
        else:
            raise EngineError(f"an ACL names address set ${name}, which no port group derives")
    return AclTables(rows, per_port, active, sets)
