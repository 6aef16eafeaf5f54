"""OVN's native DHCPv4 responder, compiled: what ``ls_in_dhcp_options`` hands ovn-controller.

For each enabled, non-router switch port with ``dhcpv4_options`` northd
(``build_dhcpv4_options_flows``, ``build_dhcpv4_action``, OVN 23.03) writes
two ``ls_in_dhcp_options`` flows per address entry, with the first IPv4
address of the entry inside the row's ``cidr`` as the *offer IP*, and the
action ``reg0[3] = put_dhcp_opts(offerip = ..., <options>)``: the row's
options without ``server_mac``, plus ``netmask`` (the cidr's mask) and the
port's ``options:hostname``, sorted by name.  ovn-controller's flow carries
them encoded as ``lib/actions.c`` ``encode_PUT_DHCPV4_OPTS`` does
(``bootfile_name``, ``bootfile_name_alt`` and ``next_server`` first, then
the others in the action's order), and pinctrl copies those bytes into the
reply.  :func:`dhcpv4_responders` does all of that once, in Python, so the
engine's per-packet loop only copies bytes (``ovnsim/datapath/_dhcp.pxi``).

A row without ``server_id``, ``server_mac`` or ``lease_time``, or whose
cidr does not hold the port's address, gets no flows (northd logs a
warning and OVN does not answer); so does a row with an option
ovn-controller cannot encode (an unknown name or a value of the wrong type:
ovn-controller rejects the flow); :func:`dhcpv4_responders` says why in
``problems``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

__all__ = ["DHCPV4_OPTIONS", "DhcpResponder", "DhcpOptionError", "encode_option", "encode_options", "dhcpv4_responders",
           "INFORM_SKIPPED_CODES"]

#: OVN 23.03's DHCPv4 options (lib/ovn-l7.h): name -> (code, type).
DHCPV4_OPTIONS: Dict[str, Tuple[int, str]] = {
    "offerip": (0, "ipv4"),
    "netmask": (1, "ipv4"),
    "router": (3, "ipv4"),
    "dns_server": (6, "ipv4"),
    "log_server": (7, "ipv4"),
    "lpr_server": (9, "ipv4"),
    "hostname": (12, "str"),
    "domain_name": (15, "str"),
    "swap_server": (16, "ipv4"),
    "policy_filter": (21, "ipv4"),
    "router_solicitation": (32, "ipv4"),
    "nis_server": (41, "ipv4"),
    "ntp_server": (42, "ipv4"),
    "server_id": (54, "ipv4"),
    "tftp_server": (66, "host_id"),
    "classless_static_route": (121, "static_routes"),
    "ms_classless_static_route": (249, "static_routes"),
    "ip_forward_enable": (19, "bool"),
    "router_discovery": (31, "bool"),
    "ethernet_encap": (36, "bool"),
    "default_ttl": (23, "uint8"),
    "tcp_ttl": (37, "uint8"),
    "mtu": (26, "uint16"),
    "lease_time": (51, "uint32"),
    "T1": (58, "uint32"),
    "T2": (59, "uint32"),
    "bootfile_name": (67, "str"),
    "wpad": (252, "str"),
    "path_prefix": (210, "str"),
    "tftp_server_address": (150, "ipv4"),
    "domain_search_list": (119, "domains"),
    "broadcast_address": (28, "ipv4"),
    "netbios_name_server": (44, "ipv4"),
    "netbios_node_type": (46, "uint8"),
    "bootfile_name_alt": (254, "str"),
    "arp_cache_timeout": (35, "uint32"),
    "tcp_keepalive_interval": (38, "uint32"),
    "next_server": (253, "ipv4"),
}

#: Options pinctrl leaves out of the ACK to a DHCPINFORM (RFC 2131 3.4): netmask, lease time, T1, T2.
INFORM_SKIPPED_CODES = frozenset((1, 51, 58, 59))

#: Encoded first, in this order, by encode_PUT_DHCPV4_OPTS.
_FIRST = ("bootfile_name", "bootfile_name_alt", "next_server")


class DhcpOptionError(ValueError):
    """An option ovn-controller could not encode (it would reject the flow)."""


@dataclass(frozen=True)
class DhcpResponder:
    """One port address entry's ``ls_in_dhcp_options``/``ls_in_dhcp_response`` flows, compiled."""

    port: str
    mac: int  #: the entry's MAC (``eth.src == ...`` in both flows)
    offer_ip: int
    server_id: int
    server_mac: int
    #: the option bytes pinctrl copies into an OFFER/ACK (code, length, value each)
    options: bytes
    #: the same without the options an ACK to a DHCPINFORM leaves out
    inform_options: bytes
    #: option 253's address (``siaddr`` of an OFFER/ACK), or None: the request's siaddr
    next_server: Optional[int]
    #: the action's option list as northd prints it (``name = value, ...``), for traces
    text: str
    #: the same as ovn-trace prints it (a set's values separated by ", ")
    trace_text: str = ""


def _values(text: str) -> List[str]:
    """A DHCP_Options value as OVN's lexer reads it: ``{a, b}`` or one value (quotes kept)."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        return [v for v in re.split(r"[\s,]+", text[1:-1].strip()) if v]
    return [text]


def _trace_value(text: str) -> str:
    """A value as ovn-trace prints it: a set's values separated by ", "."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        return "{" + ", ".join(_values(text)) + "}"
    return text


def _string(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not re.fullmatch(r"[A-Za-z_.][A-Za-z_.0-9]*", text):
        raise DhcpOptionError(f"not a string: {text}")
    return text  # a bare identifier is a string to OVN's lexer


def _ipv4(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise DhcpOptionError(f"not an IPv4 address: {text}") from None


def _int(text: str, bits: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise DhcpOptionError(f"not an integer: {text}") from None
    if not 0 <= value < (1 << bits):
        raise DhcpOptionError(f"{value} does not fit in {bits} bits")
    return value


def _domains(names: str) -> bytes:
    """RFC 1035 4.1.4 names with compression, as encode_put_dhcpv4_option ("domains") builds them."""
    out = bytearray()
    offsets: Dict[str, int] = {}
    for domain in (d for d in names.split(",") if d):
        if len(domain) > 255:
            raise DhcpOptionError("domain name longer than 255 characters")
        labels = [label for label in domain.split(".") if label]
        for i in range(len(labels)):
            # OVN keys the suffixes it has written by their text less its last character
            # (ovs_strlcpy(suffix, domain, strlen(domain))): so does this, for the same bytes.
            suffix = ".".join(labels[i:])[:-1]
            if suffix in offsets:
                out += (0xC000 | offsets[suffix]).to_bytes(2, "big")
                break
            offsets[suffix] = len(out)
            out += bytes([len(labels[i])]) + labels[i].encode()
        else:
            out.append(0)
    return bytes(out)


def encode_option(name: str, value: str) -> bytes:
    """One option as encode_put_dhcpv4_option writes it: code, length, value."""
    if name not in DHCPV4_OPTIONS:
        raise DhcpOptionError(f"unknown DHCPv4 option {name!r}")
    code, kind = DHCPV4_OPTIONS[name]
    values = _values(value)
    if kind in ("bool", "uint8"):
        body = bytes([_int(values[0], 8)])
    elif kind == "uint16":
        body = _int(values[0], 16).to_bytes(2, "big")
    elif kind == "uint32":
        body = _int(values[0], 32).to_bytes(4, "big")
    elif kind == "ipv4":
        body = b"".join(_ipv4(v) for v in values)
    elif kind == "static_routes":
        body = b""
        pairs = len(values) - len(values) % 2
        for i in range(0, pairs, 2):
            try:
                dest = ipaddress.IPv4Network(values[i], strict=False)
            except ValueError:
                raise DhcpOptionError(f"not an IPv4 prefix: {values[i]}") from None
            plen = dest.prefixlen
            body += bytes([plen]) + dest.network_address.packed[:(plen + 7) // 8] + _ipv4(values[i + 1])
    elif kind == "host_id":
        try:
            body = ipaddress.IPv4Address(values[0].strip('"')).packed
        except ValueError:
            body = _string(values[0]).encode()
    elif kind == "domains":
        body = _domains(_string(value))
    else:  # str
        body = _string(value).encode()
    if len(body) > 255:
        raise DhcpOptionError(f"option {name!r} is {len(body)} bytes long, a DHCP option holds 255")
    return bytes([code, len(body)]) + body


def encode_options(options: Mapping[str, str]) -> Tuple[bytes, bytes, Optional[int]]:
    """put_dhcp_opts' options (in the action's order, ``offerip`` excluded) as ovn-controller encodes them.

    Returns the bytes of an OFFER/ACK, those of an ACK to a DHCPINFORM, and
    ``next_server``'s address (None when not set).
    """
    names = [n for n in _FIRST if n in options] + [n for n in options if n not in _FIRST]
    encoded = [encode_option(n, options[n]) for n in names]
    inform = b"".join(e for e in encoded if e[0] not in INFORM_SKIPPED_CODES)
    nxt = int.from_bytes(encode_option("next_server", options["next_server"])[2:6], "big") \
        if "next_server" in options and len(_values(options["next_server"])) == 1 else None
    return b"".join(encoded), inform, nxt


def dhcpv4_responders(logical, problems: Optional[List[str]] = None) -> List[DhcpResponder]:
    """The DHCPv4 responders northd builds for ``logical`` (a LogicalTopology), per port address entry.

    Rows with an option ovn-controller cannot encode give no responder; the
    reason goes to ``problems`` when a list is given.
    """
    from ovnsim.nb.model import LSP_TYPE_ROUTER
    from ovnsim.northd.tables import ip_to_int, mac_to_int, parse_addresses

    rows = {row.key: row for row in logical.dhcp_options}
    out: List[DhcpResponder] = []
    for ls in logical.switches:
        for lsp in ls.ports:
            row = rows.get(lsp.dhcpv4_options) if lsp.dhcpv4_options else None
            if row is None or not lsp.enabled or lsp.type == LSP_TYPE_ROUTER:
                continue
            opts = dict(row.options)
            if not all(k in opts for k in ("server_id", "server_mac", "lease_time")):
                continue  # northd: "Required DHCPv4 options not defined"
            try:
                cidr = ipaddress.IPv4Network(row.cidr, strict=False)
            except ValueError:
                continue
            server_mac = opts.pop("server_mac")
            opts["netmask"] = str(cidr.netmask)
            if "hostname" in lsp.options:
                opts["hostname"] = lsp.options["hostname"]
            ordered = dict(sorted(opts.items()))
            try:
                options, inform, nxt = encode_options(ordered)
                server_id = ip_to_int(opts["server_id"])
                server_mac_int = mac_to_int(server_mac)
            except (DhcpOptionError, ValueError) as exc:
                if problems is not None:
                    problems.append(f"DHCP_Options {row.key}: port {lsp.name}: {exc}")
                continue
            text = ", ".join(f"{k} = {v}" for k, v in ordered.items())
            trace_text = ", ".join(f"{k} = {_trace_value(v)}" for k, v in ordered.items())
            for entry in lsp.addresses:
                mac, ips = parse_addresses(entry)
                offer = next((ip for ip in ips if ipaddress.IPv4Address(ip) in cidr), None)
                if mac is None or offer is None:
                    continue
                out.append(DhcpResponder(lsp.name, mac, offer, server_id, server_mac_int, options, inform, nxt,
                                         text, trace_text))
    return out
