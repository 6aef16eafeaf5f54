"""Microflows: the packet description ovn-trace takes, parsed into exact header values.

A microflow is a conjunction of exact constraints in OVN's expression syntax::

    inport == "vm1" && eth.src == fa:16:3e:00:00:11 && eth.dst == fa:16:3e:00:00:12
      && ip4.src == 10.0.0.11 && ip4.dst == 10.0.0.12 && ip.ttl == 64 && tcp && tcp.dst == 22

:func:`parse_microflow` turns it into a :class:`Microflow`: the ingress port and
the value of every header field of the frame, with the defaults ovn-trace uses
for what is not given (0, ``00:00:00:00:00:00``, ``0.0.0.0``: what the ``#
<openflow flow>`` line of an ovn-trace run shows).  :meth:`Microflow.to_frame`
builds the Ethernet frame, so the emulator takes a microflow and a captured
frame through the same door.

What ovnsim accepts beyond ovn-trace (ovn-trace 23.03 rejects these):

* ``tcp``, ``udp``, ``ip``, ``ip.ttl``, ``tcp.flags``... with no IPv4-only
  constraint (``ip4``, ``ip4.src``, ``icmp4.*``...): ovn-trace calls them
  ambiguous (IPv4 or IPv6); ovnsim has no IPv6 yet and takes IPv4.
* port names in single quotes or unquoted (``inport == vm1``).

What it rejects that ovn-trace accepts: masked or prefix values other than a
full mask (ovn-trace silently uses the masked value), subfields such as
``eth.src[40]``, ``arp.op`` above 255 (ovn-trace silently keeps only 8 bits).
Note that ovn-trace 23.03 ignores ``ip.dscp`` in a microflow (its flow line
shows ``nw_tos=0``); ovnsim keeps the value given.

Field values are canonical: MACs lowercase ``aa:bb:cc:dd:ee:ff``, IPv4 dotted
quads, everything else ``int``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ovnsim.errors import MicroflowError

__all__ = [
    "Microflow",
    "parse_microflow",
    "FIELDS",
    "ETH_TYPE_IP",
    "ETH_TYPE_ARP",
    "IPPROTO_ICMP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
]

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_VLAN = 0x8100
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

#: VLAN-present bit of OVS's vlan_tci (``vlan.tci & 0x1000`` = tagged).
VLAN_CFI = 0x1000

Value = Union[int, str]

# name -> (kind, width in bits, implied eth.type, implied ip.proto)
# kind: "mac", "ip4" or "int".  The implications are the OVN prerequisites
# (arp.* needs eth.type 0x806, tcp.* needs ip4 && ip.proto 6, ...).
_SPECS: Dict[str, Tuple[str, int, Optional[int], Optional[int]]] = {
    "eth.src": ("mac", 48, None, None),
    "eth.dst": ("mac", 48, None, None),
    "eth.type": ("int", 16, None, None),
    "vlan.tci": ("int", 16, None, None),
    "arp.op": ("int", 8, ETH_TYPE_ARP, None),
    "arp.sha": ("mac", 48, ETH_TYPE_ARP, None),
    "arp.spa": ("ip4", 32, ETH_TYPE_ARP, None),
    "arp.tha": ("mac", 48, ETH_TYPE_ARP, None),
    "arp.tpa": ("ip4", 32, ETH_TYPE_ARP, None),
    "ip4.src": ("ip4", 32, ETH_TYPE_IP, None),
    "ip4.dst": ("ip4", 32, ETH_TYPE_IP, None),
    "ip.ttl": ("int", 8, ETH_TYPE_IP, None),
    "ip.proto": ("int", 8, ETH_TYPE_IP, None),
    "ip.dscp": ("int", 6, ETH_TYPE_IP, None),
    "icmp4.type": ("int", 8, ETH_TYPE_IP, IPPROTO_ICMP),
    "icmp4.code": ("int", 8, ETH_TYPE_IP, IPPROTO_ICMP),
    "tcp.src": ("int", 16, ETH_TYPE_IP, IPPROTO_TCP),
    "tcp.dst": ("int", 16, ETH_TYPE_IP, IPPROTO_TCP),
    "tcp.flags": ("int", 12, ETH_TYPE_IP, IPPROTO_TCP),
    "udp.src": ("int", 16, ETH_TYPE_IP, IPPROTO_UDP),
    "udp.dst": ("int", 16, ETH_TYPE_IP, IPPROTO_UDP),
}

#: The fields a :class:`Microflow` can hold, in canonical order.
FIELDS: Tuple[str, ...] = tuple(_SPECS)

# Predicates (fields tested without a value) -> (eth.type, ip.proto).
_PREDICATES: Dict[str, Tuple[int, Optional[int]]] = {
    "ip4": (ETH_TYPE_IP, None),
    "ip": (ETH_TYPE_IP, None),
    "arp": (ETH_TYPE_ARP, None),
    "icmp4": (ETH_TYPE_IP, IPPROTO_ICMP),
    "icmp": (ETH_TYPE_IP, IPPROTO_ICMP),
    "tcp": (ETH_TYPE_IP, IPPROTO_TCP),
    "udp": (ETH_TYPE_IP, IPPROTO_UDP),
}

# Which fields a frame carries, by layer (defaults apply only to these).
_ETH_FIELDS = ("eth.src", "eth.dst", "eth.type", "vlan.tci")
_ARP_FIELDS = ("arp.op", "arp.sha", "arp.spa", "arp.tha", "arp.tpa")
_IP4_FIELDS = ("ip4.src", "ip4.dst", "ip.ttl", "ip.proto", "ip.dscp")
_L4_FIELDS = {
    IPPROTO_ICMP: ("icmp4.type", "icmp4.code"),
    IPPROTO_TCP: ("tcp.src", "tcp.dst", "tcp.flags"),
    IPPROTO_UDP: ("udp.src", "udp.dst"),
}
_DEFAULTS = {"mac": "00:00:00:00:00:00", "ip4": "0.0.0.0", "int": 0}

#: The deepest parenthesis nesting a microflow may have (a real one needs none; the parser recurses per level).
MAX_NESTING = 32
#: The longest number literal taken (a 128-bit value in decimal has 39 digits; Python refuses
#: decimal conversions of over 4,300 digits with a ValueError).
MAX_NUMBER_DIGITS = 64

_IPV6_RE = re.compile(r"^(ip6|ipv6|nd|nd_ns|nd_na|nd_rs|nd_ra|icmp6|mld)(\.|$)")

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<dq>"(?:[^"\\]|\\.)*")
      | (?P<sq>'[^']*')
      | (?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|\{|\}|,|/)
      | (?P<word>[A-Za-z0-9_.:\[\]\-]+)
    )""",
    re.VERBOSE,
)
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")
_IP4_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(\[[0-9.]+\])?$")


@dataclass(frozen=True)
class Microflow:
    """One packet as ovn-trace sees it: ingress port plus exact header values.

    ``fields`` maps OVN field names (see :data:`FIELDS`) to canonical values;
    it holds exactly the fields the frame has: always ``eth.src``,
    ``eth.dst``, ``eth.type``, ``vlan.tci``; ARP or IPv4 fields according to
    ``eth.type``; ICMP/TCP/UDP fields according to ``ip.proto``.  Do not
    mutate it.  ``text`` is the microflow as given (not compared).
    """

    inport: str
    fields: Mapping[str, Value] = field(hash=False)
    text: str = field(default="", compare=False)

    def __getitem__(self, name: str) -> Value:
        return self.fields[name]

    def get(self, name: str, default: Optional[Value] = None) -> Optional[Value]:
        """``fields.get(name, default)``."""
        return self.fields.get(name, default)

    @property
    def eth_type(self) -> int:
        """The Ethernet type (0 if the microflow names none)."""
        return int(self.fields["eth.type"])

    @property
    def is_arp(self) -> bool:
        """True for an ARP frame."""
        return self.eth_type == ETH_TYPE_ARP

    @property
    def is_ip4(self) -> bool:
        """True for an IPv4 frame."""
        return self.eth_type == ETH_TYPE_IP

    @property
    def l4(self) -> Optional[str]:
        """``"icmp4"``, ``"tcp"``, ``"udp"`` or None."""
        if not self.is_ip4:
            return None
        return {IPPROTO_ICMP: "icmp4", IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}.get(
            int(self.fields["ip.proto"]))

    def to_expr(self) -> str:
        """The microflow in canonical ovn-trace syntax, every field explicit.

        ovn-trace accepts the result even where it rejects the original
        (``tcp`` without ``ip4``, single-quoted port names).  ``ip.dscp`` is
        left out when 0.
        """
        parts = [f'inport == "{_escape(self.inport)}"']
        for name in FIELDS:
            if name not in self.fields:
                continue
            value = self.fields[name]
            if name == "eth.type":
                parts.append(f"eth.type == 0x{int(value):04x}")
            elif name == "vlan.tci":
                if value:
                    parts.append(f"vlan.tci == 0x{int(value):04x}")
            elif name == "ip.dscp" and not value:
                continue
            else:
                parts.append(f"{name} == {value}")
        return " && ".join(parts)

    def to_frame(self) -> bytes:
        """The Ethernet frame this microflow describes, checksums computed.

        Built with scapy: an 802.1Q tag when ``vlan.tci`` has the present bit
        (0x1000); ARP over Ethernet/IPv4; IPv4 with ``id`` 0, DF clear and the
        DSCP in the TOS byte; TCP with seq/ack 0 and the given flags; ICMP
        id/seq 0; no payload, except that a UDP 68 -> 67 flow carries the
        BOOTP request ovn-trace assumes for put_dhcp_opts ("We assume that
        this packet is DHCPDISCOVER or DHCPREQUEST"): a DHCPDISCOVER from
        ``ip4.src`` 0.0.0.0, else a DHCPREQUEST for ``ip4.src`` (``ciaddr``);
        ``chaddr`` is ``eth.src``, ``xid`` 0, and the broadcast flag is set
        when ``ip4.dst`` is 255.255.255.255, so the reply keeps the
        destination ovn-trace shows.  Other Ethernet types give a bare header.
        """
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.layers.l2 import ARP, Dot1Q, Ether

        f = self.fields
        eth_type = int(f["eth.type"])
        tci = int(f["vlan.tci"])
        if tci & VLAN_CFI:
            pkt = Ether(src=f["eth.src"], dst=f["eth.dst"], type=ETH_TYPE_VLAN) / Dot1Q(
                prio=(tci >> 13) & 7, dei=0, vlan=tci & 0xFFF, type=eth_type)
        else:
            pkt = Ether(src=f["eth.src"], dst=f["eth.dst"], type=eth_type)
        if eth_type == ETH_TYPE_ARP:
            pkt = pkt / ARP(hwtype=1, ptype=ETH_TYPE_IP, hwlen=6, plen=4, op=int(f["arp.op"]),
                            hwsrc=f["arp.sha"], psrc=f["arp.spa"],
                            hwdst=f["arp.tha"], pdst=f["arp.tpa"])
        elif eth_type == ETH_TYPE_IP:
            proto = int(f["ip.proto"])
            pkt = pkt / IP(src=f["ip4.src"], dst=f["ip4.dst"], ttl=int(f["ip.ttl"]), proto=proto,
                           tos=int(f["ip.dscp"]) << 2, id=0, flags=0)
            if proto == IPPROTO_TCP:
                pkt = pkt / TCP(sport=int(f["tcp.src"]), dport=int(f["tcp.dst"]),
                                flags=int(f["tcp.flags"]), seq=0, ack=0)
            elif proto == IPPROTO_UDP:
                pkt = pkt / UDP(sport=int(f["udp.src"]), dport=int(f["udp.dst"]))
                if int(f["udp.src"]) == 68 and int(f["udp.dst"]) == 67:
                    pkt = pkt / _bootp_request(f["eth.src"], f["ip4.src"], f["ip4.dst"])
            elif proto == IPPROTO_ICMP:
                pkt = pkt / ICMP(type=int(f["icmp4.type"]), code=int(f["icmp4.code"]), id=0, seq=0)
        return bytes(pkt)

    @classmethod
    def parse(cls, text: str) -> "Microflow":
        """Same as :func:`parse_microflow`."""
        return parse_microflow(text)


def _bootp_request(mac: str, src: str, dst: str) -> bytes:
    """The DHCPDISCOVER (from 0.0.0.0) or DHCPREQUEST (ciaddr ``src``) of a UDP 68 -> 67 microflow."""
    import ipaddress

    discover = src == "0.0.0.0"
    header = bytes([1, 1, 6, 0]) + bytes(4) + bytes(2)
    header += (0x8000 if dst == "255.255.255.255" else 0).to_bytes(2, "big")
    header += (bytes(4) if discover else ipaddress.IPv4Address(src).packed) + bytes(12)
    header += bytes.fromhex(mac.replace(":", "")) + bytes(10) + bytes(64 + 128)
    return header + bytes([0x63, 0x82, 0x53, 0x63, 53, 1, 1 if discover else 3, 255])


def _escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


# --------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # "str" (quoted), "op", "word"
    text: str  # as written
    value: str  # unquoted string for "str", else == text


def _tokens(text: str) -> List[_Tok]:
    out: List[_Tok] = []
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            return out
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise MicroflowError(f"microflow: invalid character {text[pos]!r} at column {pos + 1}")
        pos = m.end()
        if m.group("dq") is not None:
            raw = m.group("dq")
            out.append(_Tok("str", raw, re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif m.group("sq") is not None:
            raw = m.group("sq")
            out.append(_Tok("str", raw, raw[1:-1]))
        elif m.group("op") is not None:
            out.append(_Tok("op", m.group("op"), m.group("op")))
        else:
            out.append(_Tok("word", m.group("word"), m.group("word")))


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


class _Parser:
    """Recursive descent over ``term ('&&' term)*``; terms are ``field``,
    ``field == value``, ``value == field`` or a parenthesised conjunction."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0
        # (field, value, as written) for every constraint, predicates as (name, None, name)
        self.constraints: List[Tuple[str, Optional[_Tok], str]] = []

    def peek(self) -> Optional[_Tok]:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            shown = self.text if len(self.text) <= 120 else self.text[:60] + " ... " + self.text[-40:]
            raise MicroflowError(f"microflow: unexpected end of input in {shown!r}")
        self.i += 1
        return tok

    def parse(self) -> None:
        if not self.toks:
            raise MicroflowError("microflow: empty")
        self.conjunction()
        tok = self.peek()
        if tok is not None:
            self.unexpected(tok)

    def conjunction(self) -> None:
        self.term()
        while True:
            tok = self.peek()
            if tok is None or tok.text == ")":
                return
            if tok.kind == "op" and tok.text == "&&":
                self.i += 1
                self.term()
            else:
                self.unexpected(tok)

    def unexpected(self, tok: _Tok) -> None:
        if tok.kind == "op" and tok.text == "||":
            raise MicroflowError("microflow: '||' cannot appear in a microflow "
                                 "(a microflow describes one packet)")
        if tok.kind == "op" and tok.text in ("!=", "!"):
            raise MicroflowError(f"microflow: {tok.text!r} cannot appear in a microflow "
                                 "(every field needs one exact value)")
        if tok.kind == "op" and tok.text in ("<", "<=", ">", ">="):
            raise MicroflowError(f"microflow: {tok.text!r} cannot appear in a microflow "
                                 "(ranges do not give one exact value)")
        raise MicroflowError(f"microflow: syntax error at {tok.text!r}")

    def term(self) -> None:
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise MicroflowError(f"microflow: parentheses nested more than {MAX_NESTING} deep")
            self.conjunction()
            self.depth -= 1
            close = self.take()
            if close.text != ")":
                self.unexpected(close)
            return
        if tok.kind == "op":
            self.unexpected(tok)
        nxt = self.peek()
        if nxt is not None and nxt.kind == "op" and nxt.text in ("==", "!=", "<", "<=", ">", ">="):
            self.i += 1
            if nxt.text != "==":
                self.unexpected(nxt)
            rhs = self.value_token()
            # ovn-trace also accepts "constant == field"
            if tok.kind == "word" and _is_field_name(tok.text):
                self.constraints.append((tok.text, rhs, f"{tok.text}=={rhs.text}"))
            elif rhs.kind == "word" and _is_field_name(rhs.text):
                self.constraints.append((rhs.text, tok, f"{tok.text}=={rhs.text}"))
            else:
                raise MicroflowError(f"microflow: expected a field name at {tok.text!r}")
            return
        if tok.kind != "word":
            raise MicroflowError(f"microflow: expected a field name at {tok.text!r}")
        self.constraints.append((tok.text, None, tok.text))

    def value_token(self) -> _Tok:
        tok = self.take()
        if tok.kind == "op" and tok.text == "{":
            items = [self.take()]
            while self.peek() is not None and self.peek().text == ",":
                self.i += 1
                items.append(self.take())
            close = self.take()
            if close.text != "}":
                self.unexpected(close)
            if len(items) != 1:
                raise MicroflowError(
                    "microflow: a set of values {" + ", ".join(t.text for t in items)
                    + "} cannot appear in a microflow (every field needs one exact value)")
            tok = items[0]
        if tok.kind == "op":
            self.unexpected(tok)
        nxt = self.peek()
        if nxt is not None and nxt.text == "/":
            self.i += 1
            mask = self.take()
            return _Tok(tok.kind, f"{tok.text}/{mask.text}", f"{tok.value}/{mask.value}")
        return tok


def _is_field_name(word: str) -> bool:
    return bool(_NAME_RE.match(word)) and not word[0].isdigit()


def _parse_int(text: str, name: str, bits: int) -> int:
    t = text.lower()
    if len(t) > MAX_NUMBER_DIGITS:
        raise MicroflowError(f"microflow: {name}=={text[:20]}...: a number of {len(t)} characters "
                             f"does not fit in {bits} bits")
    if len(t) > 1 and t.startswith("0") and t[1].isdigit():
        raise MicroflowError(
            f"microflow: {name}=={text}: decimal constants must not have leading zeros")
    if not re.match(r"^(0x[0-9a-f]+|[0-9]+)$", t):
        raise MicroflowError(f"microflow: {name}=={text}: not a number")
    value = int(t[2:], 16) if t.startswith("0x") else int(t, 10)
    if value >= 1 << bits:
        raise MicroflowError(f"microflow: {name}=={text}: does not fit in {bits} bits")
    return value


def _parse_value(name: str, tok: _Tok) -> Value:
    kind, bits, _, _ = _SPECS[name]
    if tok.kind == "str":
        raise MicroflowError(f"microflow: {name}=={tok.text}: a string is not a valid {name}")
    text = tok.value
    if "/" in text:
        value, mask = text.split("/", 1)
        full = {"mac": ("ff:ff:ff:ff:ff:ff",), "ip4": ("32", "255.255.255.255")}.get(kind, ())
        if mask.lower() not in full:
            raise MicroflowError(f"microflow: {name}=={text}: masked values cannot appear in a "
                                 "microflow (every field needs one exact value)")
        text = value
    if kind == "mac":
        if _MAC_RE.match(text):
            return text.lower()
        if text.lower().startswith("0x"):
            v = _parse_int(text, name, 48)
            return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))
        raise MicroflowError(f"microflow: {name}=={text}: not a MAC address")
    if kind == "ip4":
        if _IP4_RE.match(text):
            try:
                return str(ipaddress.IPv4Address(text))
            except ValueError:
                raise MicroflowError(f"microflow: {name}=={text}: not an IPv4 address") from None
        if text.lower().startswith("0x"):
            return str(ipaddress.IPv4Address(_parse_int(text, name, 32)))
        raise MicroflowError(f"microflow: {name}=={text}: not an IPv4 address")
    return _parse_int(text, name, bits)


def parse_microflow(text: str) -> Microflow:
    """Parse a microflow (ovn-trace syntax, without the datapath argument).

    Raises :class:`~ovnsim.errors.MicroflowError` with a one-line message
    naming the offending token: unknown field, bad value, ``||``/``!=``/
    ranges/sets/masks (a microflow has one exact value per field),
    contradictory constraints (``tcp && udp``, ``arp && ip4.src == ...``, the
    same field twice with different values), a missing ``inport``, and IPv6
    ("IPv6 is not supported yet").
    """
    if not isinstance(text, str):
        raise TypeError(f"microflow must be a str, not {type(text).__name__}")
    p = _Parser(text)
    p.parse()

    inport: Optional[str] = None
    values: Dict[str, Value] = {}
    written: Dict[str, str] = {}
    # (value, as written) lists: every source of an eth.type / ip.proto
    eth_types: List[Tuple[int, str]] = []
    protos: List[Tuple[int, str]] = []

    def put(name: str, value: Value, src: str) -> None:
        if name in values and values[name] != value:
            raise MicroflowError(
                f"microflow: contradictory constraints {written[name]} and {src}")
        values[name] = value
        written.setdefault(name, src)

    for name, tok, src in p.constraints:
        if _IPV6_RE.match(name) or (name == "eth.type" and tok is not None
                                    and tok.kind == "word" and tok.value.lower()
                                    in ("0x86dd", str(ETH_TYPE_IPV6))):
            raise MicroflowError(f"microflow: IPv6 is not supported yet ({src})")
        if name == "inport":
            if tok is None:
                raise MicroflowError("microflow: 'inport' needs a value: inport == \"PORT\"")
            port = tok.value
            if tok.kind == "word" and not re.match(r"^[A-Za-z0-9_.:\-]+$", port):
                raise MicroflowError(f"microflow: bad port name {tok.text!r}")
            if not port:
                raise MicroflowError("microflow: empty inport name")
            if inport is not None and inport != port:
                raise MicroflowError(
                    f"microflow: contradictory constraints inport=={inport!r} and {src}")
            inport = port
            continue
        if name == "eth.bcast" and tok is None:
            put("eth.dst", "ff:ff:ff:ff:ff:ff", src)
            continue
        if tok is None:
            if name in _PREDICATES:
                et, proto = _PREDICATES[name]
                eth_types.append((et, src))
                if proto is not None:
                    protos.append((proto, src))
                continue
            if name in _SPECS:
                raise MicroflowError(f"microflow: field {name!r} needs a value ({name} == ...)")
            raise MicroflowError(f"microflow: unknown or unsupported field {name!r}")
        if "[" in name:
            raise MicroflowError(f"microflow: subfield {name!r} cannot appear in a microflow")
        if name not in _SPECS:
            if name in _PREDICATES or name == "eth.bcast":
                raise MicroflowError(f"microflow: {name!r} is a predicate, not a field with a value")
            raise MicroflowError(f"microflow: unknown or unsupported field {name!r}")
        value = _parse_value(name, tok)
        put(name, value, src)
        _, _, et, proto = _SPECS[name]
        if et is not None:
            eth_types.append((et, src))
        if proto is not None:
            protos.append((proto, src))
        if name == "eth.type":
            eth_types.append((int(value), src))
        if name == "ip.proto":
            protos.append((int(value), src))

    if inport is None:
        raise MicroflowError("microflow: does not specify the ingress port (inport == \"...\")")

    eth_type = _agree(eth_types)
    if eth_type is None:
        eth_type = 0
    if protos:
        eth_types.append((ETH_TYPE_IP, protos[0][1]))
        eth_type = _agree(eth_types)
    proto = _agree(protos)

    present = list(_ETH_FIELDS)
    if eth_type == ETH_TYPE_ARP:
        present += _ARP_FIELDS
    elif eth_type == ETH_TYPE_IP:
        present += _IP4_FIELDS
        present += _L4_FIELDS.get(proto or 0, ())
    for name in values:
        if name not in present:  # cannot happen: prerequisites checked above
            raise MicroflowError(f"microflow: {written[name]} does not apply to this packet")

    fields: Dict[str, Value] = {}
    for name in FIELDS:
        if name not in present:
            continue
        if name == "eth.type":
            fields[name] = eth_type
        elif name == "ip.proto":
            fields[name] = proto or 0
        elif name in values:
            fields[name] = values[name]
        else:
            fields[name] = _DEFAULTS[_SPECS[name][0]]
    return Microflow(inport=inport, fields=fields, text=text)


def _agree(sources: List[Tuple[int, str]]) -> Optional[int]:
    """The one value all sources imply, else a 'contradictory' error naming two."""
    if not sources:
        return None
    first, first_src = sources[0]
    for value, src in sources[1:]:
        if value != first:
            raise MicroflowError(f"microflow: contradictory constraints {first_src} and {src}")
    return first

