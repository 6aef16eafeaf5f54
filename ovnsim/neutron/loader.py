"""Topology files (and builder documents) -> a checked, resolved :class:`~ovnsim.neutron.model.Topology`.

Every topology, whether read from a file by :func:`load_topology` or built in
code by :mod:`ovnsim.neutron.builder`, goes through :func:`load_document`, so both
share one set of checks:

1. a top-level ``security_groups`` key is refused (groups belong to a project);
2. the document is validated against ``topology.schema.json`` (shapes, types,
   unknown keys), and the most relevant schema error is rephrased for a person;
3. names are resolved to ids, references looked up, addresses parsed, defaults
   filled in (gateway IPs, fixed IPs, gateway addresses, MACs, the router
   of each floating IP) and consistency checked.

Every error is a :class:`~ovnsim.errors.TopologyError` whose ``str()`` is one
line, ``<file>: <path>: <problem>``, e.g.::

    topo.yaml: projects.demo.routers.router1.interfaces[1]: subnet 'db-v5' does not exist in project 'demo'

Address allocation is deterministic: on each network the explicit addresses
(upstream gateways, router interfaces, explicit router gateway addresses, explicit
fixed IPs, floating IPs) are placed first, then the missing ones are allocated
in file order, each the lowest free host address of its subnet.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import ipaddress
import itertools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import jsonschema
import yaml
from jsonschema.exceptions import best_match

from ovnsim.errors import NotSupportedError, TopologyError
from ovnsim.neutron import acl
from ovnsim.neutron.model import (
    DISTRIBUTED_GATEWAY_PORT,
    GATEWAY_ROUTER,
    AddressPair,
    ExternalGateway,
    FixedIP,
    FloatingIP,
    MetadataPort,
    Network,
    Port,
    Project,
    DEFAULT_SECURITY_GROUP,
    EGRESS,
    ETHERTYPES,
    INGRESS,
    IPV4,
    Route,
    Router,
    RouterInterface,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    Topology,
)

__all__ = [
    "load_topology",
    "load_document",
    "derive_mac",
    "topology_schema",
    "SCHEMA_PATH",
    "MAC_PREFIX",
    "MAC_KINDS",
]

#: Where the JSON Schema of the file format lives (shipped inside the package).
SCHEMA_PATH = Path(__file__).with_name("topology.schema.json")

#: The OUI Neutron uses for the MACs it generates (``base_mac = fa:16:3e:00:00:00``).
MAC_PREFIX = "fa:16:3e"

#: The object kinds the loader derives MACs for (the ``kind`` of :func:`derive_mac`).
MAC_KINDS = ("port", "router-interface", "router-gateway", "metadata-port", "dhcp-server")

#: The metadata port of network ``N`` is named ``ovnmeta-N``, after the
#: device_id Neutron gives it and the namespace ovn-metadata-agent serves it from.
METADATA_PORT_PREFIX = "ovnmeta-"

_IPv4 = ipaddress.IPv4Address
_IPv4Net = ipaddress.IPv4Network
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}$")
#: What a security group id may contain: it becomes part of OVN port group
#: and address set names, which are identifiers ([A-Za-z_.][A-Za-z0-9_.]*
#: once ``pg_`` is put in front and ``-`` replaced by ``_``).
_SG_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read a topology file (YAML; JSON is YAML too) into a checked :class:`Topology`.

    Errors name the file as given in ``path``.  A YAML syntax error names the
    line and column (``topo.yaml: line 12, column 3: invalid YAML: ...``);
    anything else names the path inside the document.  Raises
    :class:`TopologyError` (or its subclass :class:`NotSupportedError`).
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", "", source) from None
    except OSError as exc:
        raise TopologyError(f"cannot read the file: {exc.strerror or exc}", "", source) from None
    _check_flow_depth(text, source)
    try:
        doc = yaml.load(text, Loader=_StrictLoader)
    except RecursionError:
        raise TopologyError("invalid YAML: nested too deeply (more levels of [ ] or { } than Python's "
                            "recursion limit)", "", source) from None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, source, text) from None
    except yaml.YAMLError as exc:
        raise TopologyError(f"invalid YAML: {_one_line(str(exc))}", "", source) from None
    if doc is None:
        raise TopologyError("the file is empty; expected a topology mapping", "", source)
    if isinstance(doc, _OversizedInt):
        raise TopologyError(f"an integer literal of {len(doc.text):,} characters; expected a topology mapping",
                            "", source)
    _check_document(doc, source)
    return load_document(doc, source)


def load_document(doc: Dict[str, Any], source: str = "<builder>") -> Topology:
    """Check and resolve an already-parsed topology document.

    ``doc`` is what parsing a topology file gives (plain dicts, lists,
    strings, numbers and booleans); it is not modified.  ``source`` names it
    in error messages and becomes ``Topology.source``; the topology's name
    defaults to the stem of ``source`` when the document has none.
    """
    if not isinstance(doc, dict):
        raise TopologyError(f"expected a mapping at the top level, got {_describe(doc)}", "", source)
    _check_reserved(doc, source)
    _check_schema(doc, source)
    return _Resolver(doc, source).resolve()


def derive_mac(kind: str, ident: str, taken: Iterable[str] = ()) -> str:
    """The MAC the loader gives an object of ``kind`` and id ``ident`` that has none.

    ``fa:16:3e`` followed by the first three bytes of sha256(``"<kind>:<ident>"``).
    If that MAC is in ``taken`` (lowercase, colon-separated MACs already on
    the same network), the next candidates are the hashes of
    ``"<kind>:<ident>:1"``, ``"<kind>:<ident>:2"``, ... so the result only
    depends on the id and on what is taken, never on chance.  ``kind`` is
    one of :data:`MAC_KINDS` for the MACs the loader derives.
    """
    if not isinstance(taken, (set, frozenset, dict)):
        taken = set(taken)
    for attempt in itertools.count():
        seed = f"{kind}:{ident}" if attempt == 0 else f"{kind}:{ident}:{attempt}"
        digest = hashlib.sha256(seed.encode("utf-8")).digest()
        mac = MAC_PREFIX + "".join(f":{b:02x}" for b in digest[:3])
        if mac not in taken:
            return mac
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count() is endless


@functools.lru_cache(maxsize=None)
def topology_schema() -> Dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the topology file format, parsed."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe YAML loader that refuses duplicate keys.

    PyYAML silently keeps the last of two equal keys, which would make a
    second port or network with the same name vanish without a word.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: Dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<' merges may legitimately be overridden
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # unhashable key: the base class reports it
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first defined on line {first.start_mark.line + 1})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


#: The longest integer literal the loader converts.  No field needs more than a few dozen digits, and
#: Python refuses decimal conversions beyond 4,300 digits with a ValueError (CVE-2020-10735).
MAX_INT_LITERAL = 1000


class _OversizedInt:
    """An integer literal too long to convert: kept as text so the error can name its place."""

    __slots__ = ("text", "line")

    def __init__(self, text: str, line: int):
        self.text = text
        self.line = line


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    if len(text) > MAX_INT_LITERAL:
        return _OversizedInt(text, node.start_mark.line + 1)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


#: The deepest nesting of flow collections ([ ], { }) handed to the YAML parser: libyaml's parser
#: recurses per level in C and crashes the process (SIGSEGV) somewhere past 20,000 levels.
MAX_FLOW_DEPTH = 1000
# Brackets, and what hides them: quoted scalars (a quote that starts a scalar) and comments.
_FLOW_TOKENS = re.compile(r"""[\[\]{}]|(?<![^\s\[{,:])'(?:[^']|'')*'|(?<![^\s\[{,:])"(?:[^"\\]|\\.)*"|(?<!\S)#[^\n]*""")


def _check_flow_depth(text: str, source: str) -> None:
    """Refuse flow collections nested deeper than :data:`MAX_FLOW_DEPTH` before libyaml sees them."""
    depth = 0
    for match in _FLOW_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                raise TopologyError(f"invalid YAML: [ ] or {{ }} nested more than {MAX_FLOW_DEPTH} levels deep",
                                    f"line {line}", source)
        elif token in ("]", "}"):
            depth = max(0, depth - 1)


def _construct_timestamp(loader, node):
    # The format has no dates; a value that looks like one stays text (the schema then says what is
    # expected there), instead of a datetime -- or a ValueError for 2001-13-45.
    return loader.construct_scalar(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)

#: The most values a document may hold once its YAML aliases are expanded (the checks walk the
#: expanded document, so a "billion laughs" of nested aliases must be refused before they run).
MAX_DOCUMENT_VALUES = 1_000_000
#: The deepest nesting taken (the schema checker recurses per level).
MAX_DOCUMENT_DEPTH = 64


def _check_document(doc: Any, source: str) -> None:
    """Refuse what YAML can express but a topology cannot be: huge integers, cycles, alias bombs.

    One walk over the document as the later checks will see it (aliases
    expanded), without recursion: an integer literal too long to convert
    (:class:`_OversizedInt`, named by its place), a recursive alias
    (``a: &x [*x]``), more than :data:`MAX_DOCUMENT_VALUES` values, and
    nesting deeper than :data:`MAX_DOCUMENT_DEPTH`.
    """
    stack: List[Any] = [(doc, (), False)]
    on_path: set = set()
    visits = 0
    while stack:
        node, path, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        visits += 1
        if visits > MAX_DOCUMENT_VALUES:
            raise TopologyError(f"the document holds more than {MAX_DOCUMENT_VALUES:,} values once its YAML "
                                f"aliases are expanded", "", source)
        if isinstance(node, _OversizedInt):
            raise _oversized(node, path, source)
        if not isinstance(node, (dict, list)):
            continue
        if len(path) >= MAX_DOCUMENT_DEPTH:
            raise TopologyError(f"nested more than {MAX_DOCUMENT_DEPTH} levels deep (a topology needs fewer than "
                                f"ten)", _path(*path[:8]) + "...", source)
        if id(node) in on_path:
            raise TopologyError("a YAML alias refers to a node that contains it (a recursive structure)",
                                _path(*path), source)
        on_path.add(id(node))
        stack.append((node, path, True))
        for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(key, _OversizedInt):
                raise _oversized(key, path, source)
            stack.append((value, path + (key,), False))


def _oversized(found: _OversizedInt, path: tuple, source: str) -> TopologyError:
    return TopologyError(f"line {found.line}: an integer literal of {len(found.text):,} characters is too long "
                         f"(at most {MAX_INT_LITERAL:,})", _path(*path), source)


def _yaml_error(exc: yaml.MarkedYAMLError, source: str, text: str) -> TopologyError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    if exc.problem and exc.context:
        context = exc.context
        if exc.context_mark is not None and mark is not None and exc.context_mark.line != mark.line:
            context += f" on line {exc.context_mark.line + 1}"
        problem = f"{problem} ({context})"
    if mark is not None:
        # libyaml does not name the offending character; a tab is the usual one
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        if line[mark.column : mark.column + 1] == "\t":
            problem += "; indent YAML with spaces, not tabs"
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return TopologyError(f"invalid YAML: {_one_line(problem)}", where, source)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------
# Reserved keys and schema
# --------------------------------------------------------------------------


def _check_reserved(doc: Dict[str, Any], source: str) -> None:
    # Checked before the schema so that the misplaced key gets a plain answer.
    if "security_groups" in doc:
        raise TopologyError(
            "security groups belong to a project: put them under projects.<name>.security_groups",
            "security_groups", source)


@functools.lru_cache(maxsize=None)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(topology_schema())


def _check_schema(doc: Dict[str, Any], source: str) -> None:
    error = best_match(_validator().iter_errors(doc))
    if error is None:
        return
    raise TopologyError(_schema_problem(error), _path(*error.absolute_path), source)


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


def _describe(value: Any) -> str:
    """What a person calls the type of a parsed YAML value."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    words = ((str, "a string"), (int, "an integer"), (float, "a number"), (dict, "a mapping"), (list, "a list"))
    for kind, word in words:
        if isinstance(value, kind):
            return word
    return f"a {type(value).__name__}"


def _schema_problem(error: jsonschema.ValidationError) -> str:
    """One line, for a person, from a jsonschema error."""
    validator, expected, instance = error.validator, error.validator_value, error.instance
    if "propertyNames" in error.schema_path:
        # the instance is the offending key itself, the path its mapping
        if isinstance(instance, str):
            return "a name must not be empty"
        return f"name {instance!r} is {_describe(instance)}; names must be strings (quote it)"
    if validator == "type":
        kinds = [expected] if isinstance(expected, str) else list(expected)
        problem = f"expected {' or '.join(_TYPE_WORDS.get(k, k) for k in kinds)}, got {_describe(instance)}"
        last = error.absolute_path[-1] if error.absolute_path else None
        if last in ("mac_address", "gateway_mac") and isinstance(instance, int):
            # YAML 1.1 reads an unquoted 10:11:22:33:44:55 as a base-60 integer
            problem += "; quote MAC addresses in YAML"
        return problem
    if validator == "additionalProperties" and expected is False and isinstance(instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = [k for k in instance if k not in known]
        if unknown:
            key = unknown[0]
            hint = difflib.get_close_matches(str(key), known, n=1)
            return f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if validator == "required" and isinstance(instance, dict):
        missing = [k for k in expected if k not in instance]
        if missing:
            return f"missing required key {missing[0]!r}"
    if validator == "enum":
        return f"expected one of {', '.join(repr(v) for v in expected)}, got {instance!r}"
    if validator == "minimum":
        return f"must be at least {expected}, got {instance!r}"
    if validator == "maximum":
        return f"must be at most {expected}, got {instance!r}"
    if validator == "minLength":
        return "must not be empty"
    return _one_line(error.message)


def _path(*parts: Any) -> str:
    """``("projects", "demo", "routers", "r1", "interfaces", 1)`` -> ``projects.demo.routers.r1.interfaces[1]``.

    Integers are list indices; everything else is a mapping key.
    """
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


# --------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------
# The working records below are mutable scratch state of one _Resolver; the
# model's frozen dataclasses are built from them once everything is known.


@dataclass(eq=False)
class _Net:
    name: str
    id: str
    project: Optional[str]
    path: str
    external: bool
    subnets: List["_Sub"] = field(default_factory=list)
    physical_network: Optional[str] = None
    network_type: Optional[str] = None
    segmentation_id: Optional[int] = None
    mtu: Optional[int] = None
    #: address -> who holds it (for the duplicate message)
    ips: Dict[_IPv4, str] = field(default_factory=dict)
    #: MAC -> who holds it
    macs: Dict[str, str] = field(default_factory=dict)
    #: the metadata port's id and addresses (``metadata: true``)
    metadata_id: Optional[str] = None
    metadata_slots: List["_Slot"] = field(default_factory=list)
    metadata_mac: str = ""


@dataclass(eq=False)
class _Sub:
    name: str
    id: str
    net: _Net
    cidr: _IPv4Net
    gateway_ip: Optional[_IPv4]
    gateway_mac: Optional[str]
    path: str
    enable_dhcp: bool = True
    dns_nameservers: tuple = ()
    host_routes: tuple = ()
    dhcp_server_mac: str = ""


@dataclass(eq=False)
class _Slot:
    """One fixed IP of a port; ``ip`` is None until allocated."""

    sub: _Sub
    ip: Optional[_IPv4]
    path: str


@dataclass(eq=False)
class _Port:
    name: str
    id: str
    project: str
    path: str
    net: _Net
    mac: Optional[str]
    slots: List[_Slot]
    port_security: bool
    pairs: List[AddressPair]
    admin_state_up: bool
    #: the ``security_groups`` list as written (None when absent)
    sg_names: Optional[List[str]] = None
    #: resolved security group ids
    sg_ids: tuple = ()


@dataclass(eq=False)
class _Iface:
    id: str
    sub: _Sub
    ip: _IPv4
    path: str
    mac: str = ""


@dataclass(eq=False)
class _Router:
    name: str
    id: str
    project: str
    path: str
    model: str
    chassis: str
    admin_state_up: bool
    ifaces: List[_Iface] = field(default_factory=list)
    routes: List[tuple] = field(default_factory=list)  # (destination, nexthop, path)
    gw_net: Optional[_Net] = None
    gw_sub: Optional[_Sub] = None
    gw_ip: Optional[_IPv4] = None
    gw_path: str = ""
    gw_snat: bool = True
    gw_mac: str = ""


@dataclass(eq=False)
class _Fip:
    name: str
    id: str
    project: str
    path: str
    ip: _IPv4
    net: _Net
    port: _Port
    fixed_ip: _IPv4
    router: _Router
    distributed: bool
    stateless: bool


class _Resolver:
    """Resolves one schema-valid document into a Topology (single use)."""

    def __init__(self, doc: Dict[str, Any], source: str):
        self.doc = doc
        self.source = source
        self.projects: Dict[str, Dict[str, Any]] = doc.get("projects", {})
        self.ext_nets: Dict[str, _Net] = {}
        self.proj_nets: Dict[str, Dict[str, _Net]] = {p: {} for p in self.projects}
        self.ports: List[_Port] = []
        self.ports_by_name: Dict[str, Dict[str, _Port]] = {p: {} for p in self.projects}
        self.routers: List[_Router] = []
        self.fips: List[_Fip] = []
        #: kind -> id -> path of the object that has it
        self.ids: Dict[str, Dict[str, str]] = {
            k: {} for k in ("network", "subnet", "port", "router", "floating IP", "security group",
                             "security group rule")}
        #: project -> group name -> SecurityGroup (projects that declare security_groups only)
        self.sgs: Dict[str, Dict[str, SecurityGroup]] = {}
        #: OVN port group name -> path of the group that has it
        self.pg_names: Dict[str, str] = {}
        #: subnet id -> (router, interface) holding the subnet's gateway_ip
        self.claims: Dict[str, tuple] = {}
        #: explicit floating IP addresses, kept free while ports on external
        #: networks get their addresses allocated (the FIPs are placed later)
        self.reserved: set = set()

    # -- helpers ----------------------------------------------------------

    def error(self, problem: str, path: str) -> TopologyError:
        return TopologyError(problem, path, self.source)

    def claim_id(self, kind: str, ident: str, path: str) -> None:
        other = self.ids[kind].get(ident)
        if other is not None:
            raise self.error(
                f"{kind} id {ident!r} is already used by {other}; set a different `id:` on one of them", path
            )
        self.ids[kind][ident] = path

    def ip(self, text: str, path: str) -> _IPv4:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise self.error(f"{text!r} is not a valid IP address", path) from None
        if addr.version == 6:
            raise NotSupportedError("IPv6 is not supported yet", path, self.source)
        return addr

    def cidr(self, text: str, path: str) -> _IPv4Net:
        if "/" not in text:
            raise self.error(f"{text!r} is not a CIDR: the prefix length is missing (e.g. 10.0.0.0/24)", path)
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise self.error(f"{text!r} is not a valid CIDR (expected e.g. 10.0.0.0/24)", path) from None
        if net.version == 6:
            raise NotSupportedError("IPv6 is not supported yet", path, self.source)
        if ipaddress.ip_interface(text).ip != net.network_address:
            raise self.error(f"{text!r} has host bits set; the network is {net}", path)
        return net

    def mac(self, text: str, path: str) -> str:
        if not _MAC_RE.match(text):
            raise self.error(f"{text!r} is not a valid MAC address (expected e.g. fa:16:3e:00:00:11)", path)
        mac = text.lower().replace("-", ":")
        if int(mac[:2], 16) & 1:
            raise self.error(f"{mac} is a multicast MAC address; a unicast MAC is needed", path)
        if mac == "00:00:00:00:00:00":
            raise self.error("00:00:00:00:00:00 is not a usable MAC address", path)
        return mac

    def check_host(self, addr: _IPv4, sub: _Sub, path: str, what: str) -> None:
        """``addr`` must be a usable address of ``sub`` (not its network or broadcast address)."""
        if addr not in sub.cidr:
            raise self.error(f"{what} {addr} is outside subnet {sub.name!r} ({sub.cidr})", path)
        if sub.cidr.prefixlen < 31:  # /31 and /32 have no network or broadcast address (RFC 3021)
            if addr == sub.cidr.network_address:
                raise self.error(f"{what} {addr} is the network address of subnet {sub.name!r} ({sub.cidr})", path)
            if addr == sub.cidr.broadcast_address:
                raise self.error(f"{what} {addr} is the broadcast address of subnet {sub.name!r} ({sub.cidr})", path)

    def containing(self, addr: _IPv4, net: _Net, path: str, what: str) -> _Sub:
        """The subnet of ``net`` that holds ``addr``."""
        for sub in net.subnets:
            if addr in sub.cidr:
                self.check_host(addr, sub, path, what)
                return sub
        kind = "external network" if net.external else "network"
        cidrs = ", ".join(str(s.cidr) for s in net.subnets) or "it has no subnet"
        raise self.error(f"{what} {addr} is not in any subnet of {kind} {net.name!r} ({cidrs})", path)

    def place(self, net: _Net, addr: _IPv4, holder: str, path: str) -> None:
        other = net.ips.get(addr)
        if other is not None:
            raise self.error(f"address {addr} is already used on network {net.name!r} by {other}", path)
        net.ips[addr] = holder

    def allocate(self, sub: _Sub, holder: str, path: str) -> _IPv4:
        """The lowest free host address of ``sub`` (its gateway_ip and reserved floating IPs are never handed out)."""
        taken = sub.net.ips
        for addr in sub.cidr.hosts():
            if addr != sub.gateway_ip and addr not in taken and addr not in self.reserved:
                taken[addr] = holder
                return addr
        raise self.error(f"no free address left in subnet {sub.name!r} ({sub.cidr})", path)

    def place_mac(self, net: _Net, mac: str, holder: str, path: str) -> None:
        other = net.macs.get(mac)
        if other is not None:
            raise self.error(f"MAC {mac} is already used on network {net.name!r} by {other}", path)
        net.macs[mac] = holder

    def port_network(self, project: str, name: str, path: str) -> _Net:
        """The network a port is on: one of its project's, else an external (provider) network.

        Neutron lets a VM plug straight into a provider network (``openstack
        server create --network public``); the port's LSP then sits on that
        network's switch beside the localnet port.
        """
        net = self.proj_nets[project].get(name)
        if net is None:
            net = self.ext_nets.get(name)
        if net is None:
            raise self.error(f"network {name!r} does not exist in project {project!r} nor among the external networks", path)
        return net

    def external_network(self, project: str, name: str, path: str, user: str) -> _Net:
        # references look in the project first, then among external networks
        if name in self.proj_nets[project]:
            raise self.error(
                f"network {name!r} is a network of project {project!r}, not an external network; "
                f"{user} needs an external network",
                path,
            )
        net = self.ext_nets.get(name)
        if net is None:
            raise self.error(f"external network {name!r} does not exist", path)
        return net

    def project_subnet(self, project: str, name: str, path: str) -> _Sub:
        found = [s for n in self.proj_nets[project].values() for s in n.subnets if s.name == name]
        if len(found) == 1:
            return found[0]
        if found:
            nets = ", ".join(repr(s.net.name) for s in found)
            raise self.error(
                f"subnet name {name!r} is ambiguous in project {project!r} (it is in networks {nets})", path
            )
        for net in self.ext_nets.values():
            if any(s.name == name for s in net.subnets):
                raise self.error(
                    f"subnet {name!r} belongs to external network {net.name!r}; a router interface needs a "
                    f"subnet of project {project!r} (use external_gateway for external networks)",
                    path,
                )
        raise self.error(f"subnet {name!r} does not exist in project {project!r}", path)

    # -- phases -----------------------------------------------------------

    def resolve(self) -> Topology:
        for name, ndoc in self.doc.get("external_networks", {}).items():
            self.ext_nets[name] = self.network(name, ndoc, None, _path("external_networks", name))
        for pname, pdoc in self.projects.items():
            for name, ndoc in pdoc.get("networks", {}).items():
                path = _path("projects", pname, "networks", name)
                self.proj_nets[pname][name] = self.network(name, ndoc, pname, path)
        for pname, pdoc in self.projects.items():
            for name, port_doc in pdoc.get("ports", {}).items():
                self.port(pname, name, port_doc)
        for pname, pdoc in self.projects.items():
            for name, rdoc in pdoc.get("routers", {}).items():
                self.router(pname, name, rdoc)
        self.place_explicit_addresses()
        self.reserve_floating_ips()
        if self.doc.get("metadata", False):
            # Neutron gives the metadata port its addresses when each subnet
            # is created, before any VM port is: it gets the lowest free ones.
            for net in itertools.chain(self.ext_nets.values(), *(n.values() for n in self.proj_nets.values())):
                self.metadata_port(net)
        for port in self.ports:
            for slot in port.slots:
                if slot.ip is None:
                    slot.ip = self.allocate(slot.sub, f"port {slot.path}", slot.path)
        # floating IPs after the ports (a default fixed_ip_address may be an
        # allocated one) and before the router gateways (their explicit
        # addresses must be placed before anything is allocated there)
        for pname, pdoc in self.projects.items():
            for name, fdoc in pdoc.get("floating_ips", {}).items():
                self.floating_ip(pname, name, fdoc)
        for router in self.routers:
            if router.gw_sub is not None and router.gw_ip is None:
                router.gw_ip = self.allocate(router.gw_sub, f"router gateway {router.gw_path}", router.gw_path)
        for router in self.routers:
            self.check_routes(router)
        for pname, pdoc in self.projects.items():
            if "security_groups" in pdoc:
                self.security_groups(pname, pdoc["security_groups"])
        for port in self.ports:
            self.port_security_groups(port)
        self.assign_macs()
        return self.build()

    def network(self, name: str, ndoc: Dict[str, Any], project: Optional[str], path: str) -> _Net:
        net_id = ndoc.get("id", name)
        self.claim_id("network", net_id, path)
        net = _Net(name=name, id=net_id, project=project, path=path, external=project is None, mtu=ndoc.get("mtu"))
        if project is None:
            provider = ndoc["provider"]
            net.physical_network = provider["physical_network"]
            net.network_type = provider.get("network_type", "flat")
            net.segmentation_id = provider.get("segmentation_id")
            if net.network_type == "vlan" and net.segmentation_id is None:
                raise self.error("network_type vlan needs a segmentation_id (the VLAN id)", _path(path, "provider"))
            if net.network_type != "vlan" and net.segmentation_id is not None:
                raise self.error(
                    f"segmentation_id is only valid with network_type vlan, not {net.network_type}",
                    _path(path, "provider", "segmentation_id"),
                )
        for sname, sdoc in ndoc.get("subnets", {}).items():
            net.subnets.append(self.subnet(net, sname, sdoc, _path(path, "subnets", sname)))
        return net

    def subnet(self, net: _Net, name: str, sdoc: Dict[str, Any], path: str) -> _Sub:
        sub_id = sdoc.get("id", name)
        self.claim_id("subnet", sub_id, path)
        cidr = self.cidr(sdoc["cidr"], _path(path, "cidr"))
        for other in net.subnets:
            if cidr.overlaps(other.cidr):
                raise self.error(
                    f"subnet {name!r} ({cidr}) overlaps subnet {other.name!r} ({other.cidr}) of the same network",
                    _path(path, "cidr"),
                )
        sub = _Sub(name=name, id=sub_id, net=net, cidr=cidr, gateway_ip=None, gateway_mac=None, path=path)
        if "gateway_ip" in sdoc:
            if sdoc["gateway_ip"] is not None:  # null: no gateway, as `--gateway none`
                sub.gateway_ip = self.ip(sdoc["gateway_ip"], _path(path, "gateway_ip"))
                self.check_host(sub.gateway_ip, sub, _path(path, "gateway_ip"), "gateway_ip")
        else:
            sub.gateway_ip = cidr.network_address + 1 if cidr.prefixlen < 31 else cidr.network_address
        if "gateway_mac" in sdoc:
            sub.gateway_mac = self.mac(sdoc["gateway_mac"], _path(path, "gateway_mac"))
        sub.enable_dhcp = sdoc.get("enable_dhcp", True)
        sub.dns_nameservers = tuple(self.ip(text, _path(path, "dns_nameservers", i))
                                    for i, text in enumerate(sdoc.get("dns_nameservers", [])))
        sub.host_routes = tuple(
            Route(destination=self.cidr(r["destination"], _path(path, "host_routes", i, "destination")),
                  nexthop=self.ip(r["nexthop"], _path(path, "host_routes", i, "nexthop")))
            for i, r in enumerate(sdoc.get("host_routes", [])))
        return sub

    def port(self, project: str, name: str, pdoc: Dict[str, Any]) -> None:
        path = _path("projects", project, "ports", name)
        port_id = pdoc.get("id", name)
        self.claim_id("port", port_id, path)
        net = self.port_network(project, pdoc["network"], _path(path, "network"))
        slots: List[_Slot] = []
        if "fixed_ips" in pdoc:
            for i, entry in enumerate(pdoc["fixed_ips"]):
                slots.append(self.fixed_ip(net, entry, _path(path, "fixed_ips", i)))
        elif net.subnets:  # as Neutron: a network without subnets gives a port no address
            slots.append(_Slot(net.subnets[0], None, path))
        pairs = []
        for i, pair in enumerate(pdoc.get("allowed_address_pairs", [])):
            ppath = _path(path, "allowed_address_pairs", i)
            text = pair["ip_address"]
            ip_path = _path(ppath, "ip_address")
            ip = str(self.cidr(text, ip_path) if "/" in text else self.ip(text, ip_path))
            mac = self.mac(pair["mac_address"], _path(ppath, "mac_address")) if "mac_address" in pair else None
            pairs.append(AddressPair(ip_address=ip, mac_address=mac))
        mac = self.mac(pdoc["mac_address"], _path(path, "mac_address")) if "mac_address" in pdoc else None
        port = _Port(
            name=name,
            id=port_id,
            project=project,
            path=path,
            net=net,
            mac=mac,
            slots=slots,
            port_security=pdoc.get("port_security", True),
            pairs=pairs,
            admin_state_up=pdoc.get("admin_state_up", True),
            sg_names=pdoc.get("security_groups"),
        )
        self.ports.append(port)
        self.ports_by_name[project][name] = port

    def fixed_ip(self, net: _Net, entry: Any, path: str) -> _Slot:
        if isinstance(entry, str):
            addr = self.ip(entry, path)
            return _Slot(self.containing(addr, net, path, "fixed IP"), addr, path)
        sub = next((s for s in net.subnets if s.name == entry["subnet"]), None)
        if sub is None:
            problem = f"subnet {entry['subnet']!r} is not a subnet of network {net.name!r}"
            raise self.error(problem, _path(path, "subnet"))
        if "ip_address" not in entry:
            return _Slot(sub, None, path)
        ip_path = _path(path, "ip_address")
        addr = self.ip(entry["ip_address"], ip_path)
        self.check_host(addr, sub, ip_path, "fixed IP")
        return _Slot(sub, addr, path)

    def router(self, project: str, name: str, rdoc: Dict[str, Any]) -> None:
        path = _path("projects", project, "routers", name)
        router_id = rdoc.get("id", name)
        self.claim_id("router", router_id, path)
        router = _Router(
            name=name,
            id=router_id,
            project=project,
            path=path,
            model=rdoc.get("gateway_model", GATEWAY_ROUTER),
            chassis=rdoc.get("chassis", "hv1"),
            admin_state_up=rdoc.get("admin_state_up", True),
        )
        for i, entry in enumerate(rdoc.get("interfaces", [])):
            self.interface(router, entry, _path(path, "interfaces", i))
        if "external_gateway" in rdoc:
            self.external_gateway(router, rdoc["external_gateway"], _path(path, "external_gateway"))
        for i, route in enumerate(rdoc.get("routes", [])):
            rpath = _path(path, "routes", i)
            destination = self.cidr(route["destination"], _path(rpath, "destination"))
            nexthop = self.ip(route["nexthop"], _path(rpath, "nexthop"))
            router.routes.append((destination, nexthop, rpath))
        self.routers.append(router)

    def interface(self, router: _Router, entry: Any, path: str) -> None:
        explicit = isinstance(entry, dict)
        if explicit:
            sub = self.project_subnet(router.project, entry["subnet"], _path(path, "subnet"))
        else:
            sub = self.project_subnet(router.project, entry, path)
        if explicit and "ip_address" in entry:
            addr = self.ip(entry["ip_address"], _path(path, "ip_address"))
            self.check_host(addr, sub, _path(path, "ip_address"), "interface address")
        elif sub.gateway_ip is None:
            raise self.error(f"subnet {sub.name!r} has no gateway_ip; give the interface an ip_address", path)
        else:
            addr = sub.gateway_ip
        for j, other in enumerate(router.ifaces):
            if other.sub is sub:
                raise self.error(
                    f"subnet {sub.name!r} is already attached to router {router.name!r} (interfaces[{j}])", path
                )
            if other.sub.cidr.overlaps(sub.cidr):
                raise self.error(
                    f"subnet {sub.name!r} ({sub.cidr}) overlaps subnet {other.sub.name!r} ({other.sub.cidr}) "
                    f"already on router {router.name!r}",
                    path,
                )
        if addr == sub.gateway_ip:
            # The router holding a subnet's gateway_ip is *the* router of the
            # subnet (`router add subnet`); others may join it only with an
            # address of their own (`router add port`).
            claimed = self.claims.get(sub.id)
            if claimed is not None:
                raise self.error(
                    f"subnet {sub.name!r} is already claimed by router {claimed[0].name!r} ({claimed[1].path}), "
                    f"which holds its gateway_ip {addr}; attach it with an ip_address of its own",
                    path,
                )
        iface = _Iface(id=f"{router.id}-{sub.id}", sub=sub, ip=addr, path=path)
        other = self.ids["port"].get(iface.id)
        if other is not None:
            raise self.error(
                f"interface id {iface.id!r} (router id + '-' + subnet id) is already used by {other}; "
                "set a different `id:` on the router, the subnet or the port",
                path,
            )
        self.ids["port"][iface.id] = path
        if addr == sub.gateway_ip:
            self.claims[sub.id] = (router, iface)
        router.ifaces.append(iface)

    def external_gateway(self, router: _Router, gdoc: Dict[str, Any], path: str) -> None:
        net = self.external_network(router.project, gdoc["network"], _path(path, "network"), "an external gateway")
        if "ip_address" in gdoc:
            ip_path = _path(path, "ip_address")
            addr = self.ip(gdoc["ip_address"], ip_path)
            sub = self.containing(addr, net, ip_path, "gateway address")
        elif net.subnets:
            addr, sub = None, net.subnets[0]
        else:
            raise self.error(f"external network {net.name!r} has no subnet to take a gateway address from", path)
        for iface in router.ifaces:
            if iface.sub.cidr.overlaps(sub.cidr):
                raise self.error(
                    f"external subnet {sub.name!r} ({sub.cidr}) overlaps subnet {iface.sub.name!r} "
                    f"({iface.sub.cidr}) on router {router.name!r}",
                    path,
                )
        router.gw_net, router.gw_sub, router.gw_ip, router.gw_path = net, sub, addr, path
        router.gw_snat = gdoc.get("enable_snat", True)

    def place_explicit_addresses(self) -> None:
        for net in self.ext_nets.values():
            for sub in net.subnets:
                if sub.gateway_ip is not None:
                    holder = f"the upstream router ({_path(sub.path, 'gateway_ip')})"
                    self.place(net, sub.gateway_ip, holder, _path(sub.path, "gateway_ip"))
        for router in self.routers:
            for iface in router.ifaces:
                self.place(iface.sub.net, iface.ip, f"router interface {iface.path}", iface.path)
        for router in self.routers:
            if router.gw_ip is not None:
                path = _path(router.gw_path, "ip_address")
                self.place(router.gw_net, router.gw_ip, f"router gateway {router.gw_path}", path)
        for port in self.ports:
            for slot in port.slots:
                if slot.ip is not None:
                    self.place(port.net, slot.ip, f"port {slot.path}", slot.path)

    def metadata_port(self, net: _Net) -> None:
        port_id = METADATA_PORT_PREFIX + net.id
        path = _path(net.path, "metadata port")
        other = self.ids["port"].get(port_id)
        if other is not None:
            raise self.error(f"port id {port_id!r} is taken by the metadata port of network {net.name!r} "
                             "(metadata: true); set a different `id:` on the port", other)
        self.ids["port"][port_id] = path
        net.metadata_id = port_id
        for sub in net.subnets:
            if sub.enable_dhcp:
                ip = self.allocate(sub, f"the metadata port of network {net.name!r}", path)
                net.metadata_slots.append(_Slot(sub, ip, path))

    def reserve_floating_ips(self) -> None:
        for pdoc in self.projects.values():
            for fdoc in pdoc.get("floating_ips", {}).values():
                try:
                    self.reserved.add(ipaddress.ip_address(fdoc["floating_ip_address"]))
                except ValueError:
                    pass  # floating_ip() reports it with its path

    def floating_ip(self, project: str, name: str, fdoc: Dict[str, Any]) -> None:
        path = _path("projects", project, "floating_ips", name)
        fip_id = fdoc.get("id", name)
        self.claim_id("floating IP", fip_id, path)
        port = self.ports_by_name[project].get(fdoc["port"])
        if port is None:
            raise self.error(f"port {fdoc['port']!r} does not exist in project {project!r}", _path(path, "port"))
        if port.net.external:
            # Neutron: no router can reach a fixed IP on an external network
            # (ExternalGatewayForFloatingIPNotFound); the port already has a public address.
            raise self.error(
                f"port {port.name!r} is on external network {port.net.name!r}; floating IPs apply only to "
                "ports on project networks",
                _path(path, "port"),
            )
        if "fixed_ip_address" in fdoc:
            fixed_path = _path(path, "fixed_ip_address")
            fixed = self.ip(fdoc["fixed_ip_address"], fixed_path)
            slot = next((s for s in port.slots if s.ip == fixed), None)
            if slot is None:
                mine = ", ".join(str(s.ip) for s in port.slots) or "none"
                raise self.error(f"{fixed} is not a fixed IP of port {port.name!r} (its addresses: {mine})", fixed_path)
        else:
            fixed_path = _path(path, "port")
            if not port.slots:  # all addresses are IPv4: the first is the first IPv4 one
                raise self.error(f"port {port.name!r} has no IPv4 address for a floating IP", fixed_path)
            slot = port.slots[0]
            fixed = slot.ip
        for other in self.fips:
            if other.port is port and other.fixed_ip == fixed:
                raise self.error(f"{fixed} of port {port.name!r} already has floating IP {other.path}", fixed_path)

        # Neutron's choice (get_router_for_floatingip): among the routers on
        # the fixed IP's subnet with a gateway on the floating IP's network,
        # the one holding the subnet's gateway_ip, else the first.
        sub = slot.sub
        candidates = [r for r in self.routers if any(i.sub is sub for i in r.ifaces)]
        if not candidates:
            raise self.error(
                f"no router has an interface on subnet {sub.name!r} of port {port.name!r}, "
                "so a floating IP cannot reach it",
                path,
            )
        net = None
        if "network" in fdoc:
            net = self.external_network(project, fdoc["network"], _path(path, "network"), "a floating IP")
        usable = [r for r in candidates if r.gw_net is not None and (net is None or r.gw_net is net)]
        if not usable:
            names = ", ".join(repr(r.name) for r in candidates)
            if net is not None:
                raise self.error(
                    f"no router on subnet {sub.name!r} ({names}) has its external gateway on network {net.name!r}",
                    _path(path, "network"),
                )
            raise self.error(
                f"router {names} on subnet {sub.name!r} has no external gateway, so floating IPs cannot reach "
                f"port {port.name!r}"
                if len(candidates) == 1
                else f"none of the routers on subnet {sub.name!r} ({names}) has an external gateway",
                path,
            )
        holder = self.claims.get(sub.id, (None,))[0]
        router = holder if holder in usable else usable[0]
        net = router.gw_net

        ip_path = _path(path, "floating_ip_address")
        addr = self.ip(fdoc["floating_ip_address"], ip_path)
        if not any(addr in s.cidr for s in net.subnets):
            cidrs = ", ".join(str(s.cidr) for s in net.subnets) or "it has no subnet"
            raise self.error(f"floating IP {addr} is outside external network {net.name!r} ({cidrs})", ip_path)
        self.containing(addr, net, ip_path, "floating IP")
        for other in self.fips:
            if other.ip == addr:
                raise self.error(f"floating IP address {addr} is already used by {other.path}", ip_path)
        self.place(net, addr, f"floating IP {path}", ip_path)

        distributed = fdoc.get("distributed", False)
        if distributed and router.model != DISTRIBUTED_GATEWAY_PORT:
            raise self.error(
                f"a distributed floating IP needs a {DISTRIBUTED_GATEWAY_PORT} router; router {router.name!r} "
                f"is a {router.model}",
                _path(path, "distributed"),
            )
        self.fips.append(
            _Fip(
                name=name,
                id=fip_id,
                project=project,
                path=path,
                ip=addr,
                net=net,
                port=port,
                fixed_ip=fixed,
                router=router,
                distributed=distributed,
                # current Neutron makes FIPs stateless on distributed gateway ports
                stateless=fdoc.get("stateless", router.model == DISTRIBUTED_GATEWAY_PORT),
            )
        )

    # -- security groups ---------------------------------------------------

    def security_groups(self, project: str, gdocs: Dict[str, Any]) -> None:
        """A project's groups: ``default`` (declared or not) first, then the others in file order.

        Ids first (rules may name any group of the project as remote group),
        then each group's rules.
        """
        base = _path("projects", project, "security_groups")
        names = [DEFAULT_SECURITY_GROUP] + [n for n in gdocs if n != DEFAULT_SECURITY_GROUP]
        ids: Dict[str, str] = {}
        for name in names:
            path = _path(base, name)
            # every project has a `default` group: its id names the project
            default_id = f"{project}-{name}" if name == DEFAULT_SECURITY_GROUP else name
            sg_id = gdocs.get(name, {}).get("id", default_id)
            id_path = _path(path, "id") if "id" in gdocs.get(name, {}) else path
            if not _SG_ID_RE.match(sg_id):
                raise self.error(f"security group id {sg_id!r} may hold only letters, digits, '_', '.' and '-' "
                                 "(it names OVN port groups and address sets)", id_path)
            self.claim_id("security group", sg_id, path)
            pg = acl.port_group_name(sg_id)
            other = self.pg_names.get(pg)
            if other is not None:
                raise self.error(f"security group id {sg_id!r} gives port group {pg!r}, as {other} does "
                                 "('-' becomes '_'); set a different `id:`", id_path)
            self.pg_names[pg] = path
            ids[name] = sg_id
        self.sgs[project] = {}
        for name in names:
            gdoc = gdocs.get(name, {})
            self.sgs[project][name] = self.security_group(project, name, ids, gdoc, _path(base, name))

    def security_group(self, project: str, name: str, ids: Dict[str, str], gdoc: Dict[str, Any],
                       path: str) -> SecurityGroup:
        sg_id = ids[name]
        rules: List[SecurityGroupRule] = []
        seen: Dict[tuple, str] = {}  # (direction, ACL match) -> which rule has it
        pg = acl.port_group_name(sg_id)

        def add(rule: SecurityGroupRule, what: str, where: str) -> None:
            key = (rule.direction, acl.rule_match(rule, pg))
            if key in seen:
                raise self.error(f"this rule repeats {seen[key]} (Neutron refuses a duplicate rule)", where)
            self.claim_id("security group rule", rule.id, where)
            seen[key] = what
            rules.append(rule)

        if gdoc.get("default_rules", True):
            # what Neutron creates with a group: egress anywhere, and for the
            # default group ingress from its own members, for both ethertypes
            defaults = [(EGRESS, ethertype, None) for ethertype in ETHERTYPES]
            if name == DEFAULT_SECURITY_GROUP:
                defaults += [(INGRESS, ethertype, sg_id) for ethertype in ETHERTYPES]
            for direction, ethertype, remote in defaults:
                rule = SecurityGroupRule(id=f"{sg_id}-rule{len(rules)}", direction=direction, ethertype=ethertype,
                                         remote_group=remote)
                what = f"the default rule '{direction} {ethertype}" + (" from the group itself'" if remote else "'")
                add(rule, what + " (default_rules: false leaves the default rules out)", path)
        for i, rdoc in enumerate(gdoc.get("rules", [])):
            rpath = _path(path, "rules", i)
            add(self.sg_rule(project, ids, rdoc, rpath, rdoc.get("id", f"{sg_id}-rule{len(rules)}")), f"rules[{i}]",
                rpath)
        return SecurityGroup(id=sg_id, name=name, project=project, rules=tuple(rules),
                             stateful=gdoc.get("stateful", True), description=gdoc.get("description", ""))

    def sg_rule(self, project: str, ids: Dict[str, str], rdoc: Dict[str, Any], path: str,
                rule_id: str) -> SecurityGroupRule:
        ethertype = rdoc.get("ethertype", IPV4)
        protocol = rdoc.get("protocol")
        ppath = _path(path, "protocol")
        if isinstance(protocol, str):
            protocol = protocol.lower()  # Neutron's API lowercases protocol names
            if protocol == "any":
                protocol = None
        if protocol is not None:
            if isinstance(protocol, int) or protocol.isdigit():
                protocol = str(int(protocol))
            try:
                number = acl.protocol_number(protocol)
            except ValueError:
                raise self.error(f"unknown protocol {rdoc['protocol']!r}; expected tcp, udp, sctp, icmp, ipv6-icmp, "
                                 "another IP protocol name Neutron knows, a number 0-255, or any", ppath) from None
            if number == "58" and ethertype == IPV4:
                raise self.error(f"protocol {protocol} is ICMPv6 and needs ethertype IPv6", ppath)
        else:
            number = None
        lo, hi = self.port_range(rdoc, path)
        if lo is not None or hi is not None:
            where = _path(path, "port_range") if "port_range" in rdoc else _path(
                path, "port_range_min" if "port_range_min" in rdoc else "port_range_max")
            if number is None:
                raise self.error("a port range needs a protocol (tcp, udp, sctp; icmp for a type and code)", where)
            if number in acl.TRANSPORT_PROTOCOLS:
                if lo is None or hi is None:
                    raise self.error("a port range needs both port_range_min and port_range_max", where)
                if not (1 <= lo <= hi <= 65535):
                    raise self.error(f"invalid port range {lo}-{hi}: ports are 1-65535 and the first is not "
                                     "above the last", where)
            elif number in acl.ICMP_PROTOCOLS:
                if "port_range" in rdoc:
                    raise self.error("port_range is for tcp, udp and sctp; give the ICMP type as port_range_min "
                                     "and the code as port_range_max", where)
                for value, what in ((lo, "type"), (hi, "code")):
                    if value is not None and not 0 <= value <= 255:
                        raise self.error(f"invalid ICMP {what} {value}: expected 0-255", where)
                if lo is None:
                    raise self.error("an ICMP code (port_range_max) needs a type (port_range_min)", where)
            else:
                raise self.error(f"protocol {protocol} has no ports; port ranges are for tcp, udp and sctp, "
                                 "ICMP type and code for icmp", where)
        prefix = None
        if "remote_ip_prefix" in rdoc:
            text = rdoc["remote_ip_prefix"]
            rpath = _path(path, "remote_ip_prefix")
            try:
                prefix = ipaddress.ip_network(text, strict=False)  # Neutron normalises host bits away
            except ValueError:
                raise self.error(f"{text!r} is not a valid IP prefix (expected e.g. 10.0.0.0/24)", rpath) from None
            if f"IPv{prefix.version}" != ethertype:
                raise self.error(f"{text} is an IPv{prefix.version} prefix but the rule's ethertype is {ethertype}",
                                 rpath)
        remote = None
        if "remote_group" in rdoc:
            gpath = _path(path, "remote_group")
            if prefix is not None:
                raise self.error("a rule has a remote_ip_prefix or a remote_group, not both", gpath)
            name = rdoc["remote_group"]
            if name not in ids:
                hint = difflib.get_close_matches(name, list(ids), n=1)
                raise self.error(f"security group {name!r} does not exist in project {project!r}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else ""), gpath)
            remote = ids[name]
        return SecurityGroupRule(id=rule_id, direction=rdoc["direction"], ethertype=ethertype, protocol=protocol,
                                 port_range_min=lo, port_range_max=hi, remote_ip_prefix=prefix, remote_group=remote,
                                 description=rdoc.get("description", ""))

    def port_range(self, rdoc: Dict[str, Any], path: str) -> tuple:
        """(port_range_min, port_range_max) from the rule, ``port_range`` expanded."""
        if "port_range" not in rdoc:
            return rdoc.get("port_range_min"), rdoc.get("port_range_max")
        where = _path(path, "port_range")
        if "port_range_min" in rdoc or "port_range_max" in rdoc:
            raise self.error("give port_range or port_range_min/port_range_max, not both", where)
        value = rdoc["port_range"]
        if isinstance(value, int):
            return value, value
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
        if not m:
            raise self.error(f"{value!r} is not a port range (expected e.g. 22 or \"8000-8080\")", where)
        lo = int(m.group(1))
        return lo, int(m.group(2)) if m.group(2) else lo

    def port_security_groups(self, port: _Port) -> None:
        """The groups of a port: as listed, else the project's ``default`` (Neutron's rules)."""
        path = _path(port.path, "security_groups")
        groups = self.sgs.get(port.project)
        if groups is None:
            if port.sg_names is not None:
                raise self.error(f"project {port.project!r} declares no security_groups; add `security_groups: {{}}` "
                                 "to the project to use them", path)
            return
        if not port.port_security:
            if port.sg_names:
                raise self.error("a port with port_security: false cannot have security groups (Neutron refuses it)",
                                 path)
            return
        if port.sg_names is None:
            # Neutron gives no default group to a port without an address
            port.sg_ids = (groups[DEFAULT_SECURITY_GROUP].id,) if port.slots else ()
            return
        if port.sg_names and not port.slots:
            raise self.error("a port needs an IP address to have security groups (Neutron refuses it)", path)
        ids = []
        for i, name in enumerate(port.sg_names):
            if name not in groups:
                hint = difflib.get_close_matches(name, list(groups), n=1)
                raise self.error(f"security group {name!r} does not exist in project {port.project!r}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else ""), _path(path, i))
            if groups[name].id in ids:
                raise self.error(f"security group {name!r} is listed twice", _path(path, i))
            ids.append(groups[name].id)
        port.sg_ids = tuple(ids)

    def check_routes(self, router: _Router) -> None:
        connected = [i.sub.cidr for i in router.ifaces]
        own = {i.ip for i in router.ifaces}
        if router.gw_sub is not None:
            connected.append(router.gw_sub.cidr)
            own.add(router.gw_ip)
        for _destination, nexthop, path in router.routes:
            nh_path = _path(path, "nexthop")
            if nexthop in own:
                raise self.error(f"nexthop {nexthop} is an address of router {router.name!r} itself", nh_path)
            if not any(nexthop in c for c in connected):
                cidrs = ", ".join(str(c) for c in connected) or "it has none"
                raise self.error(
                    f"nexthop {nexthop} is not on any subnet connected to router {router.name!r} ({cidrs})", nh_path
                )

    def assign_macs(self) -> None:
        # explicit MACs first, then derived ones in file order, so that a
        # derived MAC steps around every explicit one on its network
        for net in self.ext_nets.values():
            for sub in net.subnets:
                if sub.gateway_mac is not None:
                    # several subnets may share one upstream router (and MAC)
                    net.macs.setdefault(sub.gateway_mac, f"the upstream router ({_path(sub.path, 'gateway_mac')})")
        for port in self.ports:
            if port.mac is not None:
                self.place_mac(port.net, port.mac, f"port {port.path}", _path(port.path, "mac_address"))
        for port in self.ports:
            if port.mac is None:
                port.mac = derive_mac("port", port.id, port.net.macs)
                port.net.macs[port.mac] = f"port {port.path}"
        for router in self.routers:
            for iface in router.ifaces:
                iface.mac = derive_mac("router-interface", iface.id, iface.sub.net.macs)
                iface.sub.net.macs[iface.mac] = f"router interface {iface.path}"
        for router in self.routers:
            if router.gw_net is not None:
                router.gw_mac = derive_mac("router-gateway", router.id, router.gw_net.macs)
                router.gw_net.macs[router.gw_mac] = f"router gateway {router.gw_path}"
        for net in itertools.chain(self.ext_nets.values(), *(n.values() for n in self.proj_nets.values())):
            if net.metadata_id is not None:
                net.metadata_mac = derive_mac("metadata-port", net.metadata_id, net.macs)
                net.macs[net.metadata_mac] = f"the metadata port of network {net.name!r}"
            for sub in net.subnets:
                # the source MAC of DHCP replies: on no port, but kept off the network's MACs
                sub.dhcp_server_mac = derive_mac("dhcp-server", sub.id, net.macs)

    def build(self) -> Topology:
        networks: Dict[str, Network] = {}
        for net in itertools.chain(self.ext_nets.values(), *(n.values() for n in self.proj_nets.values())):
            networks[net.id] = Network(
                id=net.id,
                name=net.name,
                project=net.project,
                subnets=tuple(
                    Subnet(
                        id=s.id,
                        name=s.name,
                        network=net.id,
                        cidr=s.cidr,
                        gateway_ip=s.gateway_ip,
                        gateway_mac=s.gateway_mac,
                        enable_dhcp=s.enable_dhcp,
                        dns_nameservers=s.dns_nameservers,
                        host_routes=s.host_routes,
                        dhcp_server_mac=s.dhcp_server_mac,
                    )
                    for s in net.subnets
                ),
                external=net.external,
                physical_network=net.physical_network,
                network_type=net.network_type,
                segmentation_id=net.segmentation_id,
                mtu=net.mtu,
                metadata_port=None
                if net.metadata_id is None
                else MetadataPort(
                    id=net.metadata_id,
                    mac_address=net.metadata_mac,
                    fixed_ips=tuple(FixedIP(subnet=s.sub.id, ip_address=s.ip) for s in net.metadata_slots),
                ),
            )
        ports = {
            p.id: Port(
                id=p.id,
                name=p.name,
                project=p.project,
                network=p.net.id,
                mac_address=p.mac,
                fixed_ips=tuple(FixedIP(subnet=s.sub.id, ip_address=s.ip) for s in p.slots),
                port_security=p.port_security,
                allowed_address_pairs=tuple(p.pairs),
                admin_state_up=p.admin_state_up,
                security_groups=p.sg_ids,
            )
            for p in self.ports
        }
        routers = {
            r.id: Router(
                id=r.id,
                name=r.name,
                project=r.project,
                interfaces=tuple(
                    RouterInterface(id=i.id, subnet=i.sub.id, ip_address=i.ip, mac_address=i.mac) for i in r.ifaces
                ),
                routes=tuple(Route(destination=d, nexthop=n) for d, n, _ in r.routes),
                external_gateway=None
                if r.gw_net is None
                else ExternalGateway(
                    network=r.gw_net.id,
                    ip_address=r.gw_ip,
                    subnet=r.gw_sub.id,
                    enable_snat=r.gw_snat,
                    mac_address=r.gw_mac,
                ),
                gateway_model=r.model,
                chassis=r.chassis,
                admin_state_up=r.admin_state_up,
            )
            for r in self.routers
        }
        floating_ips = {
            f.id: FloatingIP(
                id=f.id,
                name=f.name,
                project=f.project,
                floating_ip_address=f.ip,
                network=f.net.id,
                port=f.port.id,
                fixed_ip_address=f.fixed_ip,
                router=f.router.id,
                distributed=f.distributed,
                stateless=f.stateless,
            )
            for f in self.fips
        }
        projects = {name: Project(name=name, description=p.get("description", ""),
                                  security_groups_enabled="security_groups" in p)
                    for name, p in self.projects.items()}
        name = self.doc.get("name")
        if name is None:
            name = "topology" if self.source.startswith("<") else Path(self.source).stem
        return Topology(
            name=name,
            projects=projects,
            networks=networks,
            ports=ports,
            routers=routers,
            floating_ips=floating_ips,
            source=self.source,
            security_groups={sg.id: sg for groups in self.sgs.values() for sg in groups.values()},
        )
