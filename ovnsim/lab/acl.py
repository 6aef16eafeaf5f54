"""Security groups in a lab: the NB model's port-group ACLs as nftables rules with conntrack.

OVN evaluates a port's ``from-lport`` ACLs on what it sends and its
``to-lport`` ACLs on what it receives, each with conntrack in the port's
own zone: a new connection is checked against the rules (the highest
priority match decides; ``allow-related`` commits it), a reply or related
packet of a connection the zone committed passes, ``allow-stateless``
passes without conntrack, and a switch port in no port group is not
filtered.  ARP is not IP: no ACL sees it.

Linux bridges have no per-port conntrack zones, so the lab keeps one
conntrack entry per connection in the switches namespace and records in its
mark which side committed it, the two zones OVN would have:

* ``MARK_ORIG`` -- the original sender's ``from-lport`` ACLs allowed it
  statefully (its zone holds the connection);
* ``MARK_REPLY`` -- the original receiver's ``to-lport`` ACLs did.

A packet in the reply direction passes the sender's stage when
``MARK_REPLY`` is set and the receiver's when ``MARK_ORIG`` is set (a reply
in that zone); otherwise it is evaluated against the rules as a new
connection in that zone would be.  A packet in the original direction is
evaluated every time (OVN re-evaluates established traffic too: the same
rules give the same verdict).

The kernel's bridge-family conntrack (``nf_conntrack_bridge``) is often not
built; ``br_netfilter`` is everywhere.  So conntrack runs in the ``ip``
family hooks ``br_netfilter`` calls for bridged IPv4 frames
(``bridge-nf-call-iptables=1`` in the switches namespace), which copy the
connection's mark and state into the packet's mark before the bridge
forwards it and store the committed bits back before the entry is
confirmed; the per-port rules are ``bridge`` family chains, which know the
input and output bridge ports.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from ovnsim.nb.model import ACL_FROM_LPORT, LogicalTopology

__all__ = ["acl_ruleset", "translate_match", "AclPlan", "SYSCTL_BRIDGE_CONNTRACK"]

#: The switches namespace's sysctl that sends bridged IPv4 through the ``ip`` hooks (br_netfilter).
SYSCTL_BRIDGE_CONNTRACK = {"net.bridge.bridge-nf-call-iptables": "1"}

MARK_ORIG = 0x1  #: the original sender's from-lport ACLs committed the connection
MARK_REPLY = 0x2  #: the original receiver's to-lport ACLs committed it
MARK_IS_REPLY = 0x10  #: this packet travels in the connection's reply direction
MARK_INVALID = 0x40  #: conntrack found the packet invalid

_PROTO_WORDS = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "icmp4": "icmp", "icmp": "icmp"}
_L4_FIELD = re.compile(r"^(tcp|udp|sctp)\.dst (==|>=|<=|>|<) (\d+)$")
_ICMP_FIELD = re.compile(r"^icmp4?\.(type|code) == (\d+)$")
_ADDR = re.compile(r"^ip4\.(src|dst) == (\S+)$")
_PORT = re.compile(r"^(inport|outport) == @(\S+)$")


class UnsupportedMatch(ValueError):
    """An ACL match the lab cannot express (the ACL is noted, not realised)."""


def translate_match(match: str) -> Optional[Tuple[str, str, str]]:
    """(``inport``/``outport``, port group, nftables expression) of an ACL match, or None for IPv6-only.

    The grammar is what Neutron's driver writes (``ovnsim.neutron.acl``):
    ``inport|outport == @pg``, ``ip``, ``ip4``, ``ip6``, ``ip4.src|dst ==
    CIDR|$set``, ``tcp|udp|sctp``, ``tcp.dst == N`` (and ``>=``, ``<=``),
    ``icmp4``, ``icmp4.type|code == N``, ``ip.proto == N``, joined by ``&&``.
    Anything else raises :class:`UnsupportedMatch`.
    """
    terms = [t.strip() for t in match.split("&&")]
    side = group = None
    out: List[str] = []
    for term in terms:
        m = _PORT.match(term)
        if m:
            side, group = m.group(1), m.group(2)
            continue
        if term in ("ip", "ip4"):
            continue
        if term == "ip6" or term.startswith("ip6.") or term.startswith("icmp6"):
            return None  # labs are IPv4-only: an IPv6 rule never matches
        m = _ADDR.match(term)
        if m:
            value = m.group(2)
            value = "@" + value[1:] if value.startswith("$") else value
            out.append(f"ip {'saddr' if m.group(1) == 'src' else 'daddr'} {value}")
            continue
        if term in _PROTO_WORDS:
            out.append(f"meta l4proto {_PROTO_WORDS[term]}")
            continue
        m = _L4_FIELD.match(term)
        if m:
            op = "" if m.group(2) == "==" else m.group(2) + " "
            out.append(f"{m.group(1)} dport {op}{m.group(3)}")
            continue
        m = _ICMP_FIELD.match(term)
        if m:
            out.append(f"icmp {m.group(1)} {m.group(2)}")
            continue
        m = re.match(r"^ip\.proto == (\d+)$", term)
        if m:
            out.append(f"meta l4proto {m.group(1)}")
            continue
        raise UnsupportedMatch(f"term {term!r}")
    if side is None or group is None:
        raise UnsupportedMatch("no inport/outport == @port_group term")
    return side, group, " ".join(out)


class AclPlan:
    """The per-port rule lists of one topology (bridge ports by interface name)."""

    def __init__(self, logical: LogicalTopology, bridge_ifname: Mapping[str, str]):
        #: (bridge ifname, "from"|"to") -> [(priority, order, expression, action)]
        self.rules: Dict[Tuple[str, str], List[Tuple[int, int, str, str]]] = {}
        self.notes: List[str] = []
        self.sets: Dict[str, Tuple[str, ...]] = {}
        order = 0
        used_sets = set()
        for pg in logical.port_groups:
            for acl in pg.acls:
                try:
                    translated = translate_match(acl.match)
                except UnsupportedMatch as err:
                    self.notes.append(f"ACL {acl.match!r} on {pg.name}: not realised ({err})")
                    continue
                if translated is None:
                    continue
                side, group, expr = translated
                if group != pg.name or (side == "inport") != (acl.direction == ACL_FROM_LPORT):
                    self.notes.append(f"ACL {acl.match!r} on {pg.name}: not realised (matches another group "
                                      "or the other direction)")
                    continue
                if acl.action == "reject":
                    self.notes.append(f"ACL {acl.match!r} on {pg.name}: reject is realised as drop (no reset or "
                                      "ICMP unreachable is sent)")
                used_sets.update(re.findall(r"@(\S+)", expr))
                stage = "from" if side == "inport" else "to"
                for port in pg.ports:
                    ifname = bridge_ifname.get(port)
                    if ifname is None:
                        continue  # no endpoint in the lab (not a VM port)
                    self.rules.setdefault((ifname, stage), []).append((acl.priority, order, expr, acl.action))
                    order += 1
        for aset in logical.port_group_address_sets():
            if aset.name in used_sets:
                self.sets[aset.name] = aset.addresses
        for key in self.rules:
            # OVN: the highest priority wins; equal priorities keep the order written.
            self.rules[key].sort(key=lambda r: (-r[0], r[1]))

    def __bool__(self) -> bool:
        return bool(self.rules)


def _chain(name: str, rules: Iterable[Tuple[int, int, str, str]], commit: Optional[int]) -> str:
    lines = [f"meta mark & {MARK_INVALID:#x} == {MARK_INVALID:#x} drop"]
    for _prio, _order, expr, action in rules:
        expr = (expr + " ") if expr else ""
        if action in ("allow-related", "allow") and commit is not None:
            # OVN's allow (on a switch with stateful ACLs) commits as allow-related does.
            lines.append(f"{expr}meta mark set meta mark | {commit:#x} return")
        elif action in ("allow-related", "allow", "allow-stateless", "pass"):
            lines.append(f"{expr}return")
        else:  # drop, reject
            lines.append(f"{expr}drop")
    if commit is not None:
        # No ACL matched: OVN's default allow (priority 1) commits the connection.
        lines.append(f"meta mark set meta mark | {commit:#x}")
    body = "\n    ".join(lines)
    return f"  chain {name} {{\n    {body}\n  }}\n"


def acl_ruleset(acls: AclPlan) -> str:
    """The nftables ruleset of the switches namespace realising ``acls`` ("" when there is none)."""
    if not acls:
        return ""
    jumps, chains = [], []
    ports = sorted({ifname for ifname, _stage in acls.rules})
    for ifname in ports:
        for stage, key, commit, peer_bit in (("from", "iifname", MARK_ORIG, MARK_REPLY),
                                             ("to", "oifname", MARK_REPLY, MARK_ORIG)):
            rules = acls.rules.get((ifname, stage))
            if rules is None:
                continue
            orig, new = f"{stage}_{ifname}_o", f"{stage}_{ifname}_n"
            chains.append(_chain(orig, rules, commit))
            chains.append(_chain(new, rules, None))
            both = MARK_IS_REPLY | peer_bit
            jumps.append(f'    {key} "{ifname}" meta mark & {MARK_IS_REPLY:#x} == 0 jump {orig}')
            # A reply passes this stage when this port's zone committed the
            # connection (the other side's bit); else it is new in that zone.
            jumps.append(f'    {key} "{ifname}" meta mark & {both:#x} == {MARK_IS_REPLY:#x} jump {new}')
    sets = "".join(
        f"  set {name} {{\n    type ipv4_addr; flags interval;\n"
        + (f"    elements = {{ {', '.join(addrs)} }}\n" if addrs else "") + "  }\n"
        for name, addrs in sorted(acls.sets.items()))
    bridge = ("table bridge ovnsim_acl {\n" + sets
              + "  chain acl_forward {\n    type filter hook forward priority 10; policy accept;\n"
              + "    ether type != ip accept\n" + "\n".join(jumps) + "\n  }\n" + "".join(chains) + "}\n")
    keep = MARK_ORIG | MARK_REPLY
    ct = ("table ip ovnsim_acl_ct {\n"
          "  chain acl_ct_in {\n"
          "    type filter hook prerouting priority -150; policy accept;\n"
          f"    meta mark set ct mark & {keep:#x}\n"
          f"    ct direction reply meta mark set meta mark | {MARK_IS_REPLY:#x}\n"
          f"    ct state invalid meta mark set meta mark | {MARK_INVALID:#x}\n"
          "  }\n"
          "  chain acl_ct_out {\n"
          "    type filter hook postrouting priority 0; policy accept;\n"
          f"    ct state new,established ct mark set meta mark & {keep:#x}\n"
          "  }\n"
          "}\n")
    return bridge + ct
