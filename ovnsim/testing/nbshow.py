'''Parse ``ovn-nbctl show`` (and ``lr-route-list`` / ``lr-nat-list``) output.

:func:`parse_nbctl_show` turns the text real ``ovn-nbctl show`` prints into a
plain, UUID-free structure, so that what real OVN holds can be compared with
what ovnsim compiled: ``ovnsim show`` prints the same format from ovnsim's
logical model (with the UUID replaced by something deterministic) and both
texts go through this one parser.

The ``ovn-nbctl show`` format (OVN 23.03, ``print_ls`` / ``print_lr`` in
``utilities/ovn-nbctl.c``; observed with ovn-nbctl 23.03.1)
==========================================================================

Switches first, then routers.  Indentation is exactly 0 / 4 / 8 spaces;
attribute lines appear only when they have a value, in this order::

    switch <uuid> (<name>)[ (aka <external_ids:neutron:network_name>)]
        port <name>[ (aka <external_ids:neutron:port_name>)]
            type: <type>                    if type is not "" (router, localnet, ...)
            parent: <parent_name>           if set (container ports)
            tag: <n>                        if tag is set (localnet VLAN, child ports)
            addresses: ["<a1>", "<a2>"]     unless there are none or exactly ["router"] (sorted)
            router-port: <lrp name>         if options:router-port is set
    router <uuid> (<name>)[ (aka <external_ids:neutron:router_name>)]
        port <name>
            mac: "<mac>"
            networks: ["<ip/plen>", ...]    sorted
            gateway chassis: [<c1> <c2>]    chassis names, space separated (see below)
        nat <uuid>
            external ip: "<ip>"
            external port(s): "<range>"     if external_port_range is set
            logical ip: "<ip or cidr>"
            type: "<snat|dnat|dnat_and_snat>"

``ovnsim show`` adds ``dhcp-options <uuid> (<cidr>)`` and ``port-group <uuid>
(<name>)`` blocks (DHCP_Options and Port_Group rows, which ``ovn-nbctl show``
does not print) and ``#`` comment lines; the parser skips them.

Each ``addresses`` entry is one element of the LSP's addresses column
(``"MAC IP IP..."``, ``"unknown"``, ``"router"``, ``"dynamic"``), quoted, comma
separated; strings are printed raw (no escaping).  ``addresses`` and
``networks`` are OVSDB string sets, so they come sorted by byte value, not
in the order given to ovn-nbctl (``["02:00:...", "fa:16:3e:... 10.0.0.9",
"unknown"]``, ``["10.0.0.1/24", "192.168.0.1/24", "fd00::1/64"]``); the
parser sorts them too, so a printer that keeps model order still compares
equal.  A switch or router without
ports prints only its header line.

Not printed at all: port_security, LSP/LRP options other than router-port
(network_name, nat-addresses, ...), ``enabled``, router options (so a
gateway router's ``options:chassis`` is invisible), gateway chassis
priorities, **static routes**, and for NAT rules external_mac, logical_port
and ``options:stateless``.  Hence the NAT tuples below carry ``None`` for
external mac and logical port when parsed from ``show``; use
:func:`parse_lr_nat_list` (truncates long IPv6 addresses) or
``RealOVN.nat_list()`` (lossless) for those, and :func:`parse_lr_route_list`
over ``ovn-nbctl lr-route-list ROUTER`` for routes.

Order: switches and routers come in the database's hash order, and ports,
NAT rules and gateway chassis in UUID order -- none of it is meaningful, so
the parser returns mappings keyed by name, a sorted NAT list and the gateway
chassis names sorted.  (23.03 does *not* order gateway chassis by priority,
observed: priorities hv1=20, hv2=10 printed ``[hv2 hv1]``; later ovn-nbctl
versions sort them by priority, highest first, which is what ``ovnsim
show`` may print -- the parser's sorting makes both compare equal.)

Example (``ovn-nbctl show`` on a small topology; real output, UUIDs shortened)::

    switch 082dd8ca-8ded-... (net1)
        port pu13
            addresses: ["fa:16:3e:00:01:13 10.1.0.13", "unknown"]
        port vm11
            addresses: ["fa:16:3e:00:01:11 10.1.0.11"]
        port net1-lr1
            type: router
            router-port: lrp1-net1
    switch f18616e0-f3f5-... (public)
        port ln-public
            type: localnet
            addresses: ["unknown"]
        port public-lr1
            type: router
            router-port: lrp1-gw
    router 461dc4a0-bdc7-... (lr1)
        port lrp1-net1
            mac: "fa:16:3e:aa:01:01"
            networks: ["10.1.0.1/24", "fd00:1::1/64"]
        port lrp1-gw
            mac: "fa:16:3e:aa:00:01"
            networks: ["172.24.4.10/24"]
            gateway chassis: [hv1 hv2]
        nat 6907f304-a8a7-...
            external ip: "172.24.4.101"
            logical ip: "10.1.0.11"
            type: "dnat_and_snat"
        nat b518afe2-d52e-...
            external ip: "172.24.4.10"
            logical ip: "10.1.0.0/24"
            type: "snat"

parses to::

    {"switches": {
        "net1": {"aka": None, "ports": {
            "pu13": {"aka": None, "type": "", "parent": None, "tag": None,
                     "addresses": ["fa:16:3e:00:01:13 10.1.0.13", "unknown"],
                     "router-port": None},
            "vm11": {..., "addresses": ["fa:16:3e:00:01:11 10.1.0.11"], ...},
            "net1-lr1": {..., "type": "router", "addresses": [],
                         "router-port": "lrp1-net1"}}},
        "public": {...}},
     "routers": {
        "lr1": {"aka": None,
                "ports": {"lrp1-net1": {"mac": "fa:16:3e:aa:01:01",
                                        "networks": ["10.1.0.1/24", "fd00:1::1/64"],
                                        "gateway chassis": []},
                          "lrp1-gw": {..., "gateway chassis": ["hv1", "hv2"]}},
                "nat": [("dnat_and_snat", "172.24.4.101", "10.1.0.11", None, None),
                        ("snat", "172.24.4.10", "10.1.0.0/24", None, None)],
                "nat port ranges": []}}}

Every port dict has all its keys (absent values are ``None``, ``""`` for
type, ``[]`` for lists).  Note that a router-type LSP whose addresses are
exactly ``["router"]`` parses as ``"addresses": []`` (show omits it).

``ovn-nbctl lr-route-list ROUTER`` format (23.03)
=================================================

::

    IPv4 Routes
    Route Table <main>:
                 192.168.99.5                 10.1.0.13 dst-ip lrp1-net1
              192.168.10.0/24                 10.1.0.13 dst-ip
                10.8.0.0/24                 10.1.0.51 dst-ip ecmp
                    0.0.0.0/0                172.24.4.1 dst-ip

    Route Table rtb1:
                  10.7.0.0/24                 10.1.0.53 dst-ip

    IPv6 Routes
    Route Table <main>:
                  fd00:9::/64                fd00:1::99 dst-ip lrp-c1 ecmp-symmetric-reply

Prefix and next hop right-aligned in 25 columns, then the policy (``dst-ip``
or ``src-ip``), the output port if set, and the flags ``ecmp``
(several routes share prefix and policy), ``ecmp-symmetric-reply``, ``bfd``
and ``(learned)``.  Routes are sorted by prefix length (longest first), then
address.  Prefixes are normalised: host bits cleared and a full-length
prefix (``/32``, ``/128``) printed as a bare address (:func:`normalize_prefix`
does the same).  The next hop may be ``discard``.  A router without routes
prints nothing.
'''

from __future__ import annotations

import ipaddress
import re
from typing import Dict, List, Optional, Tuple

from ovnsim.errors import OvnsimError

__all__ = [
    "NbShowParseError",
    "parse_nbctl_show",
    "parse_lr_route_list",
    "parse_lr_nat_list",
    "normalize_prefix",
    "NatTuple",
]

#: (type, external ip, logical ip, external mac, logical port)
NatTuple = Tuple[str, str, str, Optional[str], Optional[str]]


class NbShowParseError(OvnsimError, ValueError):
    """The text is not in the ``ovn-nbctl show`` / ``lr-route-list`` format.

    ``lineno`` is 1-based, ``line`` the offending line.
    """

    def __init__(self, problem: str, lineno: int = 0, line: str = ""):
        self.problem = problem
        self.lineno = lineno
        self.line = line
        where = f"line {lineno}: " if lineno else ""
        shown = f": {line!r}" if line else ""
        super().__init__(f"{where}{problem}{shown}")


_HEADER_AKA = re.compile(r"^(switch|router) (\S+) \((.*)\) \(aka (.*)\)$")
_HEADER = re.compile(r"^(switch|router) (\S+) \((.*)\)$")
_PORT_AKA = re.compile(r"^port (.*) \(aka (.*)\)$")
_QUOTED = re.compile(r'"([^"]*)"')


def _nat_sort_key(t) -> Tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in t)


def _quoted(value: str, lineno: int, line: str) -> str:
    m = re.fullmatch(r'"([^"]*)"', value)
    if not m:
        raise NbShowParseError("expected a quoted string", lineno, line)
    return m.group(1)


def _quoted_list(value: str, lineno: int, line: str) -> List[str]:
    if not (value.startswith("[") and value.endswith("]")):
        raise NbShowParseError("expected a [\"...\", ...] list", lineno, line)
    return _QUOTED.findall(value[1:-1])


def _new_switch_port(aka: Optional[str]) -> Dict[str, object]:
    return {"aka": aka, "type": "", "parent": None, "tag": None,
            "addresses": [], "router-port": None}


def _new_router_port() -> Dict[str, object]:
    return {"mac": None, "networks": [], "gateway chassis": []}


def parse_nbctl_show(text: str) -> Dict[str, Dict[str, dict]]:
    """Parse ``ovn-nbctl show`` output into ``{"switches": ..., "routers": ...}``.

    See the module docstring for the format and the result's shape.  UUIDs
    (any token without spaces in their place) are dropped.  Raises
    :class:`NbShowParseError` on a line that does not fit the format and on
    duplicate switch, router or port names.
    """
    switches: Dict[str, dict] = {}
    routers: Dict[str, dict] = {}
    kind: Optional[str] = None   # "switch" | "router"
    current: Optional[dict] = None   # current switch/router dict
    item: Optional[dict] = None  # current port dict
    nat: Optional[dict] = None   # current NAT being collected
    nat_start = (0, "")
    skipping = False  # inside a block this parser does not compare

    def finish_nat() -> None:
        nonlocal nat
        if nat is None:
            return
        assert current is not None
        for key in ("external ip", "logical ip", "type"):
            if key not in nat:
                raise NbShowParseError(f"nat entry without '{key}'", *nat_start)
        current["nat"].append((nat["type"], nat["external ip"], nat["logical ip"], None, None))
        if "external port(s)" in nat:
            current["nat port ranges"].append(
                (nat["type"], nat["external ip"], nat["logical ip"], nat["external port(s)"]))
        nat = None

    def finish_object() -> None:
        finish_nat()
        if current is not None and kind == "router":
            current["nat"].sort(key=_nat_sort_key)
            current["nat port ranges"].sort()

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0 and body.startswith("#"):
            continue  # ovnsim show's remarks (a project without security groups)
        if indent == 0 and body.startswith(("dhcp-options ", "port-group ")):
            # ovnsim show's DHCP_Options and Port_Group rows (ovn-nbctl show has none): not compared here
            finish_object()
            current, item, skipping = None, None, True
            continue
        if skipping and indent > 0:
            continue
        if indent == 0:
            skipping = False
            finish_object()
            m = _HEADER_AKA.match(body) or _HEADER.match(body)
            if not m:
                raise NbShowParseError("expected 'switch <uuid> (<name>)' or "
                                       "'router <uuid> (<name>)'", lineno, raw)
            kind, name = m.group(1), m.group(3)
            aka = m.group(4) if m.re is _HEADER_AKA else None
            table = switches if kind == "switch" else routers
            if name in table:
                raise NbShowParseError(f"duplicate {kind} name {name!r}", lineno, raw)
            current = {"aka": aka, "ports": {}}
            if kind == "router":
                current["nat"] = []
                current["nat port ranges"] = []
            table[name] = current
            item = None
        elif indent == 4:
            if current is None:
                raise NbShowParseError("port or nat outside a switch/router", lineno, raw)
            finish_nat()
            item = None
            if body.startswith("port "):
                if kind == "switch":
                    m = _PORT_AKA.match(body)
                    pname, aka = (m.group(1), m.group(2)) if m else (body[5:], None)
                    new = _new_switch_port(aka)
                else:
                    pname, new = body[5:], _new_router_port()
                if pname in current["ports"]:
                    raise NbShowParseError(f"duplicate port name {pname!r}", lineno, raw)
                current["ports"][pname] = item = new
            elif kind == "router" and (body == "nat" or body.startswith("nat ")):
                nat = {}
                nat_start = (lineno, raw)
            else:
                raise NbShowParseError(f"unexpected line in a {kind}", lineno, raw)
        elif indent == 8:
            key, sep, value = body.partition(": ")
            if not sep:
                raise NbShowParseError("expected '<key>: <value>'", lineno, raw)
            if nat is not None:
                if key not in ("external ip", "external port(s)", "logical ip", "type"):
                    raise NbShowParseError(f"unknown nat attribute {key!r}", lineno, raw)
                nat[key] = _quoted(value, lineno, raw)
            elif item is None:
                raise NbShowParseError("attribute outside a port or nat", lineno, raw)
            elif kind == "switch":
                if key in ("type", "parent", "router-port"):
                    item[key] = value
                elif key == "tag":
                    try:
                        item["tag"] = int(value)
                    except ValueError:
                        raise NbShowParseError("tag is not a number", lineno, raw) from None
                elif key == "addresses":
                    item["addresses"] = sorted(_quoted_list(value, lineno, raw))
                else:
                    raise NbShowParseError(f"unknown switch port attribute {key!r}", lineno, raw)
            else:
                if key == "mac":
                    item["mac"] = _quoted(value, lineno, raw)
                elif key == "networks":
                    item["networks"] = sorted(_quoted_list(value, lineno, raw))
                elif key == "gateway chassis":
                    if not (value.startswith("[") and value.endswith("]")):
                        raise NbShowParseError("expected [chassis ...]", lineno, raw)
                    item["gateway chassis"] = sorted(value[1:-1].split())
                else:
                    raise NbShowParseError(f"unknown router port attribute {key!r}", lineno, raw)
        else:
            raise NbShowParseError(f"unexpected indentation ({indent} spaces)", lineno, raw)
    finish_object()
    return {"switches": switches, "routers": routers}


def normalize_prefix(prefix: str) -> str:
    """A prefix as ``lr-route-list`` prints it: host bits cleared, full-length
    prefixes as bare addresses (``10.0.0.5/32`` -> ``10.0.0.5``)."""
    net = ipaddress.ip_network(prefix, strict=False)
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


_ROUTE_FLAGS = {
    "ecmp": "ecmp",
    "ecmp-symmetric-reply": "ecmp_symmetric_reply",
    "bfd": "bfd",
    "(learned)": "learned",
}


def parse_lr_route_list(text: str) -> List[Dict[str, object]]:
    """Parse ``ovn-nbctl lr-route-list ROUTER`` output, in printed order.

    Each route is ``{"route_table": "" (for <main>) or the table name,
    "ip_prefix", "nexthop", "policy", "output_port" (or None), "ecmp",
    "ecmp_symmetric_reply", "bfd", "learned" (bools)}``.
    """
    routes: List[Dict[str, object]] = []
    table: Optional[str] = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line in ("IPv4 Routes", "IPv6 Routes"):
            if line:
                table = None
            continue
        m = re.fullmatch(r"Route Table (.*):", line)
        if m:
            table = "" if m.group(1) == "<main>" else m.group(1)
            continue
        if table is None:
            raise NbShowParseError("route outside a 'Route Table ...:' section", lineno, raw)
        words = line.split()
        if len(words) < 3 or words[2] not in ("dst-ip", "src-ip"):
            raise NbShowParseError("expected '<prefix> <nexthop> <policy> ...'", lineno, raw)
        route: Dict[str, object] = {
            "route_table": table, "ip_prefix": words[0], "nexthop": words[1],
            "policy": words[2], "output_port": None,
            "ecmp": False, "ecmp_symmetric_reply": False, "bfd": False, "learned": False,
        }
        for w in words[3:]:
            if w in _ROUTE_FLAGS:
                route[_ROUTE_FLAGS[w]] = True
            elif route["output_port"] is None:
                route["output_port"] = w
            else:
                raise NbShowParseError(f"unexpected word {w!r} in a route", lineno, raw)
        routes.append(route)
    return routes


_NAT_COLUMNS = ("TYPE", "GATEWAY_PORT", "EXTERNAL_IP", "EXTERNAL_PORT",
                "LOGICAL_IP", "EXTERNAL_MAC", "LOGICAL_PORT")


def parse_lr_nat_list(text: str) -> List[NatTuple]:
    """Parse ``ovn-nbctl lr-nat-list ROUTER`` into sorted NAT tuples
    ``(type, external ip, logical ip, external mac, logical port)``.

    Columns are cut at the header's positions (empty cells are blanks).
    Beware: ovn-nbctl 23.03 truncates the cells (external ip to 15
    characters, logical ip to 16), so long IPv6 addresses come out cut; use
    ``RealOVN.nat_list()`` when that matters.  A router without NAT prints
    nothing (-> ``[]``).
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = []
    for col in _NAT_COLUMNS:
        pos = header.find(col)
        if col == "GATEWAY_PORT" and pos < 0:
            continue  # older ovn-nbctl without the column
        if pos < 0:
            raise NbShowParseError(f"lr-nat-list header without {col}", 1, header)
        starts.append((col, pos))
    out: List[NatTuple] = []
    for line in lines[1:]:
        cells = {}
        for i, (col, pos) in enumerate(starts):
            end = starts[i + 1][1] if i + 1 < len(starts) else None
            cells[col] = line[pos:end].strip()
        out.append((cells["TYPE"], cells["EXTERNAL_IP"], cells["LOGICAL_IP"],
                    cells["EXTERNAL_MAC"] or None, cells["LOGICAL_PORT"] or None))
    return sorted(out, key=_nat_sort_key)
