"""The frozen oracle's packet: header fields a frame carries through the pipeline, and their wire form.

Test-only (tests/oracle): the package parses and builds frames in C.

:class:`Packet` holds the fields OVN's logical flows read and write (MACs and
IPv4 addresses as ints) plus the logical registers the stages set.  It is
parsed from raw frame bytes at the edge and written back to bytes at the
other edge; the stages in between never touch bytes.
"""

from __future__ import annotations

import struct
from typing import Dict, Optional, Tuple

from ovnsim.northd.stages import Drop
from ovnsim.northd.tables import int_to_ip, int_to_mac

ETH_IP4 = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8
#: TPIDs that OVS takes for a VLAN tag (vlan.present): 802.1Q and 802.1ad.
VLAN_TPIDS = (ETH_VLAN, ETH_QINQ)
ETH_IP6 = 0x86DD
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
TCP_RST = 0x04
TCP_ACK = 0x10
IP4_DF = 0x4000
#: ICMP query messages, whose bytes 4-5 are an identifier that conntrack
#: uses as the "port" of the connection (echo, timestamp, information,
#: address mask; requests and replies).
ICMP_QUERY_TYPES = frozenset((0, 8, 13, 14, 15, 16, 17, 18))
#: ICMP errors, which quote the datagram they are about: destination
#: unreachable, source quench, redirect, time exceeded, parameter problem.
#: Linux conntrack files them under the connection of that datagram (RELATED).
ICMP_ERROR_TYPES = frozenset((3, 4, 5, 11, 12))
#: How much of the offending datagram an ICMP error quotes at most: what fits
#: in 576 bytes after the Ethernet, IPv4 and ICMP headers (ovn-controller's
#: pinctrl_handle_icmp, after RFC 1812 4.3.2.3).
ICMP_QUOTE_MAX = 576 - (14 + 20 + 8)

#: Kinds of output (``kind`` in a verdict).
KIND_PACKET = "packet"  #: the frame itself, possibly rewritten
KIND_ARP_REPLY = "arp_reply"  #: an in-place ARP reply from a responder
KIND_ECHO_REPLY = "echo_reply"  #: a router's in-place ICMP echo reply
KIND_ARP = "arp"  #: an ARP request a router sent instead of the frame
KIND_ICMP4 = "icmp4"  #: an ICMP error a router generated
KIND_TCP_RESET = "tcp_reset"  #: a TCP RST a router generated


class Packet:
    """A frame's header fields and logical metadata while it crosses the pipeline."""

    __slots__ = (
        "eth_src", "eth_dst", "eth_type", "vlan",
        "arp_op", "arp_sha", "arp_spa", "arp_tha", "arp_tpa", "arp_opaque",
        "ip_src", "ip_dst", "ttl", "proto", "tos", "later_frag",
        "icmp_type", "icmp_code", "icmp_id", "sport", "dport", "tcp_flags", "tcp_seq", "tcp_ack", "tcp_dlen",
        "payload", "ip_options", "inner", "raw", "l3", "l4",
        "kind", "inport", "outport", "loopback", "hairpin", "use_snat_zone", "dnat_local",
        "reg0", "reg1", "xreg0", "ct_rpl", "ct_trk", "ct_zones",
    )

    def __init__(self) -> None:
        self.eth_src = self.eth_dst = 0
        self.eth_type = 0
        self.vlan = False
        self.arp_op = self.arp_sha = self.arp_spa = self.arp_tha = self.arp_tpa = 0
        #: an ARP frame that is not Ethernet/IPv4: OVS extracts none of its
        #: fields, so every arp.* reads 0, and none is written back
        self.arp_opaque = False
        self.ip_src = self.ip_dst = 0
        self.ttl = self.proto = self.tos = 0
        self.later_frag = False
        self.icmp_type = self.icmp_code = self.icmp_id = 0
        self.sport = self.dport = self.tcp_flags = 0
        #: a TCP segment's sequence and acknowledgement numbers, and its payload
        #: length as pinctrl counts it (IPv4 payload - data offset * 4; may be
        #: negative for a bad data offset)
        self.tcp_seq = self.tcp_ack = self.tcp_dlen = 0
        self.payload = b""  #: bytes after the L4 header (or after IPv4 for other protocols)
        self.ip_options = b""
        #: an ICMP error's quoted datagram as a conntrack tuple (see
        #: :func:`parse_inner`), None for any other packet; conntrack may
        #: change it (a RELATED error is un-NATed) and the frame is rewritten
        #: to match (:func:`build_frame`)
        self.inner: Optional[Tuple[int, int, int, int, int]] = None
        #: the frame as received (None for a frame the pipeline generated);
        #: outputs are this frame with the changed fields written in place
        self.raw: Optional[bytes] = None
        self.l3 = self.l4 = -1  #: offsets of the L3 and L4 headers in ``raw``
        self.kind = KIND_PACKET
        self.inport = self.outport = ""
        self.loopback = self.hairpin = self.use_snat_zone = self.dnat_local = False
        self.reg0 = self.reg1 = self.xreg0 = 0
        self.ct_rpl = self.ct_trk = False
        self.ct_zones: Tuple = ()

    def copy(self) -> "Packet":
        clone = Packet.__new__(Packet)
        for name in Packet.__slots__:
            setattr(clone, name, getattr(self, name))
        return clone

    @property
    def is_arp(self) -> bool:
        return self.eth_type == ETH_ARP

    @property
    def is_ip4(self) -> bool:
        return self.eth_type == ETH_IP4

    @property
    def eth_mcast(self) -> bool:
        return bool(self.eth_dst >> 40 & 1)

    @property
    def eth_bcast(self) -> bool:
        return self.eth_dst == 0xFFFFFFFFFFFF

    def fields(self) -> Dict[str, object]:
        """The header fields that apply to this packet, with OVN's names and printed values."""
        out: Dict[str, object] = {"eth.src": int_to_mac(self.eth_src), "eth.dst": int_to_mac(self.eth_dst)}
        if self.is_arp:
            out.update({"arp.op": self.arp_op, "arp.sha": int_to_mac(self.arp_sha),
                        "arp.spa": int_to_ip(self.arp_spa), "arp.tha": int_to_mac(self.arp_tha),
                        "arp.tpa": int_to_ip(self.arp_tpa)})
        elif self.is_ip4:
            out.update({"ip4.src": int_to_ip(self.ip_src), "ip4.dst": int_to_ip(self.ip_dst), "ip.ttl": self.ttl})
            if self.proto == PROTO_ICMP:
                out.update({"icmp4.type": self.icmp_type, "icmp4.code": self.icmp_code})
            elif self.proto == PROTO_TCP:
                out.update({"tcp.src": self.sport, "tcp.dst": self.dport})
            elif self.proto == PROTO_UDP:
                out.update({"udp.src": self.sport, "udp.dst": self.dport})
        return out

    def conn_tuple(self) -> Tuple[int, int, int, int, int]:
        """The connection-tracking 5-tuple (ICMP echo: the id stands for both ports)."""
        if self.proto == PROTO_ICMP:
            return (self.proto, self.ip_src, self.icmp_id, self.ip_dst, self.icmp_id)
        return (self.proto, self.ip_src, self.sport, self.ip_dst, self.dport)


# --------------------------------------------------------------------------
# bytes <-> Packet
# --------------------------------------------------------------------------


class ParseError(Exception):
    """A frame ovnsim cannot take (carries the drop disposition)."""

    def __init__(self, reason: Drop, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _mac(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset:offset + 6], "big")


def parse_frame(frame: bytes) -> Packet:
    """Parse an Ethernet frame; raises :class:`ParseError` for what OVN could not carry."""
    pkt = Packet()
    pkt.raw = bytes(frame)
    n = len(frame)
    if n < 14:
        raise ParseError(Drop.MALFORMED, f"runt frame: {n} bytes, an Ethernet header needs 14")
    pkt.eth_dst = _mac(frame, 0)
    pkt.eth_src = _mac(frame, 6)
    eth_type = int.from_bytes(frame[12:14], "big")
    offset = 14
    if eth_type in VLAN_TPIDS:
        # An 802.1Q or 802.1ad outer tag: OVS sets vlan.present for both and
        # the switch drops the frame.  Behind a second (stacked) tag nothing
        # more is parsed: the inner TPID is kept as eth.type.
        if n < 18:
            raise ParseError(Drop.MALFORMED, "truncated VLAN tag")
        pkt.vlan = True
        eth_type = int.from_bytes(frame[16:18], "big")
        offset = 18
    pkt.eth_type = eth_type
    pkt.l3 = offset
    if eth_type == ETH_ARP:
        if n < offset + 28:
            raise ParseError(Drop.MALFORMED, "truncated ARP header")
        if frame[offset:offset + 6] != b"\x00\x01\x08\x00\x06\x04":
            # Not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4): OVS's
            # flow extraction leaves every ARP field 0.  Nothing answers or
            # learns from it, port security (sha == MAC) drops it on a
            # port-secured port, and otherwise it is switched by its MACs.
            pkt.arp_opaque = True
            return pkt
        pkt.arp_op = int.from_bytes(frame[offset + 6:offset + 8], "big")
        pkt.arp_sha = _mac(frame, offset + 8)
        pkt.arp_spa = int.from_bytes(frame[offset + 14:offset + 18], "big")
        pkt.arp_tha = _mac(frame, offset + 18)
        pkt.arp_tpa = int.from_bytes(frame[offset + 24:offset + 28], "big")
    elif eth_type == ETH_IP4:
        if n < offset + 20:
            raise ParseError(Drop.MALFORMED, "truncated IPv4 header")
        vihl = frame[offset]
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or n < offset + ihl:
            raise ParseError(Drop.MALFORMED, "bad IPv4 version or header length")
        total = int.from_bytes(frame[offset + 2:offset + 4], "big")
        if total < ihl or offset + total > n:
            raise ParseError(Drop.MALFORMED, "IPv4 total length exceeds the frame")
        pkt.tos = frame[offset + 1]
        frag = int.from_bytes(frame[offset + 6:offset + 8], "big")
        pkt.later_frag = (frag & 0x1FFF) != 0
        pkt.ttl = frame[offset + 8]
        pkt.proto = frame[offset + 9]
        pkt.ip_src = int.from_bytes(frame[offset + 12:offset + 16], "big")
        pkt.ip_dst = int.from_bytes(frame[offset + 16:offset + 20], "big")
        pkt.ip_options = bytes(frame[offset + 20:offset + ihl])
        l4 = offset + ihl
        end = offset + total
        pkt.l4 = l4
        if pkt.later_frag:
            pkt.payload = bytes(frame[l4:end])
        elif pkt.proto == PROTO_ICMP:
            if end - l4 < 8:
                raise ParseError(Drop.MALFORMED, "truncated ICMP header")
            pkt.icmp_type, pkt.icmp_code = frame[l4], frame[l4 + 1]
            pkt.icmp_id = int.from_bytes(frame[l4 + 4:l4 + 6], "big")
            pkt.payload = bytes(frame[l4 + 4:end])  # rest of header (id, seq) + data
            if pkt.icmp_type in ICMP_ERROR_TYPES:
                pkt.inner = parse_inner(frame[l4 + 8:end])
        elif pkt.proto == PROTO_TCP:
            if end - l4 < 20:
                raise ParseError(Drop.MALFORMED, "truncated TCP header")
            pkt.sport = int.from_bytes(frame[l4:l4 + 2], "big")
            pkt.dport = int.from_bytes(frame[l4 + 2:l4 + 4], "big")
            pkt.tcp_flags = frame[l4 + 13]
            pkt.tcp_seq = int.from_bytes(frame[l4 + 4:l4 + 8], "big")
            pkt.tcp_ack = int.from_bytes(frame[l4 + 8:l4 + 12], "big")
            pkt.tcp_dlen = (end - l4) - (frame[l4 + 12] >> 4) * 4
            pkt.payload = bytes(frame[l4 + 4:end])  # seq .. options + data, rewritten as is
        elif pkt.proto == PROTO_UDP:
            if end - l4 < 8:
                raise ParseError(Drop.MALFORMED, "truncated UDP header")
            pkt.sport = int.from_bytes(frame[l4:l4 + 2], "big")
            pkt.dport = int.from_bytes(frame[l4 + 2:l4 + 4], "big")
            pkt.payload = bytes(frame[l4 + 8:end])
        else:
            pkt.payload = bytes(frame[l4:end])
    elif eth_type == ETH_IP6:
        raise ParseError(Drop.UNSUPPORTED, "IPv6 is not modelled yet")
    else:
        pkt.payload = bytes(frame[offset:])
    return pkt


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _csum_update(csum: int, old: bytes, new: bytes) -> Optional[int]:
    """RFC 1624 eqn. 3, ``~(~HC + sum(~m + m'))``, over the 16-bit words of ``old`` that ``new`` changes.

    None when no word changed: the checksum is then left as it is.  (A word
    that stays the same adds ``0xffff`` to the sum, which would turn a
    checksum of ``0xffff`` into ``0x0000``; OVS writes a field only when its
    value changes, so such a checksum leaves untouched.)
    """
    acc = 0
    changed = False
    for i in range(0, len(old), 2):
        o, n = int.from_bytes(old[i:i + 2], "big"), int.from_bytes(new[i:i + 2], "big")
        if o != n:
            acc += (~o & 0xFFFF) + n
            changed = True
    if not changed:
        return None
    acc += ~csum & 0xFFFF
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return ~acc & 0xFFFF


def build_frame(pkt: Packet) -> bytes:
    """The wire bytes of ``pkt``.

    A received frame (``pkt.raw``) is rewritten in place, as OVS's set-field
    actions do: only the changed fields are written and a checksum is
    updated incrementally (RFC 1624 eqn. 3) only when a word it covers
    changed, so everything else -- IP ID, options, payload, Ethernet
    padding, and a checksum that was already wrong -- stays as it came, and
    a frame nothing changed leaves byte for byte as it arrived.  A UDP
    checksum of 0 (none) stays 0; an updated one that comes out 0 is sent as
    0xffff (RFC 768).  A frame the pipeline generated (ARP request, ICMP
    error, TCP reset) is built from its fields (:func:`build_generated`).
    """
    if pkt.raw is None:
        return build_generated(pkt)
    buf = bytearray(pkt.raw)
    buf[0:6] = pkt.eth_dst.to_bytes(6, "big")
    buf[6:12] = pkt.eth_src.to_bytes(6, "big")
    l3 = pkt.l3
    if pkt.is_arp:
        if not pkt.arp_opaque:  # an opaque ARP is never rewritten beyond the Ethernet header
            struct.pack_into("!H6sI6sI", buf, l3 + 6, pkt.arp_op, pkt.arp_sha.to_bytes(6, "big"), pkt.arp_spa,
                             pkt.arp_tha.to_bytes(6, "big"), pkt.arp_tpa)
        return bytes(buf)
    if not pkt.is_ip4:
        return bytes(buf)
    old_ip = bytes(buf[l3:l3 + 20])
    buf[l3 + 8] = pkt.ttl
    struct.pack_into("!II", buf, l3 + 12, pkt.ip_src, pkt.ip_dst)
    new_ip = bytes(buf[l3:l3 + 20])
    # the checksum word itself is not part of the update
    csum = _csum_update(int.from_bytes(old_ip[10:12], "big"), old_ip[:10] + old_ip[12:], new_ip[:10] + new_ip[12:])
    if csum is not None:
        struct.pack_into("!H", buf, l3 + 10, csum)
    l4 = pkt.l4
    if pkt.later_frag or l4 < 0:
        return bytes(buf)
    if pkt.proto == PROTO_ICMP:
        # type and code, the identifier (bytes 4-5) NAT may have changed, and
        # the quoted datagram of a RELATED error that was un-NATed
        end = l3 + int.from_bytes(old_ip[2:4], "big")
        old = bytes(buf[l4:end])
        buf[l4] = pkt.icmp_type
        buf[l4 + 1] = pkt.icmp_code
        struct.pack_into("!H", buf, l4 + 4, pkt.icmp_id)
        if pkt.inner is not None:
            rewrite_inner(buf, l4 + 8, end, pkt.inner)
        new = bytes(buf[l4:end])
        pad = b"\0" * (len(old) % 2)
        csum = _csum_update(int.from_bytes(old[2:4], "big"), old[:2] + old[4:] + pad, new[:2] + new[4:] + pad)
        if csum is not None:
            struct.pack_into("!H", buf, l4 + 2, csum)
    elif pkt.proto in (PROTO_TCP, PROTO_UDP):
        at = l4 + (16 if pkt.proto == PROTO_TCP else 6)
        csum = int.from_bytes(buf[at:at + 2], "big")
        old = old_ip[12:20] + bytes(buf[l4:l4 + 4])
        struct.pack_into("!HH", buf, l4, pkt.sport, pkt.dport)
        new = new_ip[12:20] + bytes(buf[l4:l4 + 4])
        if not (pkt.proto == PROTO_UDP and csum == 0):
            updated = _csum_update(csum, old, new)
            if updated is not None:
                if pkt.proto == PROTO_UDP and updated == 0:
                    updated = 0xFFFF
                struct.pack_into("!H", buf, at, updated)
    return bytes(buf)


def build_generated(pkt: Packet) -> bytes:
    """A frame the pipeline generated, as ovn-controller's pinctrl builds it.

    ``arp``: 42 bytes (Ethernet + ARP, no padding).  The others have a
    20-byte IPv4 header -- TOS of the packet they answer, ID 0, DF, the TTL
    the nested actions leave (255 unless they change it) -- and:
    ``icmp4`` (pinctrl_handle_icmp): protocol 1, the ICMP message: type,
    code, checksum, four zero bytes, then ``pkt.payload`` (the offending
    datagram, :func:`embedded_header`); ``tcp_reset``
    (pinctrl_handle_tcp_reset): protocol 6, a 20-byte TCP header with the
    ports, ``pkt.tcp_seq`` and ``pkt.tcp_ack`` as the pipeline set them,
    flags RST, window 0, urgent pointer 0.
    """
    eth = pkt.eth_dst.to_bytes(6, "big") + pkt.eth_src.to_bytes(6, "big")
    if pkt.is_arp:
        return eth + struct.pack(
            "!HHHBBH6sI6sI", ETH_ARP, 1, ETH_IP4, 6, 4, pkt.arp_op, pkt.arp_sha.to_bytes(6, "big"),
            pkt.arp_spa, pkt.arp_tha.to_bytes(6, "big"), pkt.arp_tpa)
    if pkt.proto == PROTO_ICMP:
        quote = bytearray(pkt.payload)
        if pkt.inner is not None:
            rewrite_inner(quote, 0, len(quote), pkt.inner)
        l4 = bytes([pkt.icmp_type, pkt.icmp_code]) + b"\0\0\0\0\0\0" + bytes(quote)
        l4 = l4[:2] + checksum(l4).to_bytes(2, "big") + l4[4:]
    else:  # the TCP reset
        l4 = struct.pack("!HHIIBBHHH", pkt.sport, pkt.dport, pkt.tcp_seq, pkt.tcp_ack, 5 << 4, TCP_RST, 0, 0, 0)
        pseudo = struct.pack("!IIBBH", pkt.ip_src, pkt.ip_dst, 0, PROTO_TCP, len(l4))
        l4 = l4[:16] + checksum(pseudo + l4).to_bytes(2, "big") + l4[18:]
    header = struct.pack("!BBHHHBBHII", 0x45, pkt.tos, 20 + len(l4), 0, IP4_DF, pkt.ttl, pkt.proto, 0,
                         pkt.ip_src, pkt.ip_dst)
    header = header[:10] + checksum(header).to_bytes(2, "big") + header[12:]
    return eth + ETH_IP4.to_bytes(2, "big") + header + l4


def embedded_header(pkt: Packet) -> bytes:
    """What an ICMP error about ``pkt`` quotes: the datagram as it is now.

    Its IPv4 header onwards, as far as its IPv4 total length goes (never
    the Ethernet padding), at most :data:`ICMP_QUOTE_MAX` bytes -- as
    pinctrl_handle_icmp copies it from the packet it gets at that point of
    the pipeline.
    """
    frame = build_frame(pkt)
    l3 = pkt.l3 if pkt.raw is not None else 14
    total = int.from_bytes(frame[l3 + 2:l3 + 4], "big")
    return bytes(frame[l3:l3 + min(total, ICMP_QUOTE_MAX)])


def parse_inner(quote: bytes) -> Optional[Tuple[int, int, int, int, int]]:
    """The conntrack tuple of the datagram an ICMP error quotes, or None.

    ``quote`` starts at the quoted IPv4 header.  As Linux conntrack needs
    it to find the connection (icmp_error_message): a whole IPv4 header and
    8 bytes after it, not a later fragment; TCP/UDP give their ports, an
    ICMP query its identifier (for both ports), other protocols ports 0; an
    ICMP error inside is no tuple.
    """
    if len(quote) < 20 or quote[0] >> 4 != 4:
        return None
    ihl = (quote[0] & 0x0F) * 4
    if ihl < 20 or len(quote) < ihl + 8 or int.from_bytes(quote[6:8], "big") & 0x1FFF:
        return None
    proto = quote[9]
    src, dst = int.from_bytes(quote[12:16], "big"), int.from_bytes(quote[16:20], "big")
    if proto in (PROTO_TCP, PROTO_UDP):
        return (proto, src, int.from_bytes(quote[ihl:ihl + 2], "big"), dst,
                int.from_bytes(quote[ihl + 2:ihl + 4], "big"))
    if proto == PROTO_ICMP:
        if quote[ihl] not in ICMP_QUERY_TYPES:
            return None
        ident = int.from_bytes(quote[ihl + 4:ihl + 6], "big")
        return (proto, src, ident, dst, ident)
    return (proto, src, 0, dst, 0)


def rewrite_inner(buf: bytearray, at: int, end: int, inner: Tuple[int, int, int, int, int]) -> None:
    """Write ``inner``'s addresses and ports into the datagram quoted at ``buf[at:end]``.

    As Linux NAT rewrites the inner packet of a RELATED ICMP error
    (nf_nat_icmp_reply_translation), only what changed, each checksum by
    RFC 1624 over the words that changed: the inner IPv4 header's; a UDP
    checksum (pseudo-header and ports; 0 stays 0, an updated 0 is 0xffff);
    a TCP checksum when the whole 20-byte header is quoted; an ICMP query's
    checksum for its identifier.  The caller updates the outer ICMP checksum.
    """
    _, src, sport, dst, dport = inner
    ihl = (buf[at] & 0x0F) * 4
    proto = buf[at + 9]
    old_ip = bytes(buf[at:at + 20])
    struct.pack_into("!II", buf, at + 12, src, dst)
    new_ip = bytes(buf[at:at + 20])
    csum = _csum_update(int.from_bytes(old_ip[10:12], "big"), old_ip[:10] + old_ip[12:], new_ip[:10] + new_ip[12:])
    if csum is not None:
        struct.pack_into("!H", buf, at + 10, csum)
    l4 = at + ihl
    if proto in (PROTO_TCP, PROTO_UDP):
        old = old_ip[12:20] + bytes(buf[l4:l4 + 4])
        struct.pack_into("!HH", buf, l4, sport, dport)
        new = new_ip[12:20] + bytes(buf[l4:l4 + 4])
        csum_at = l4 + (16 if proto == PROTO_TCP else 6)
        if proto == PROTO_TCP and end - l4 < 20:
            return
        csum = int.from_bytes(buf[csum_at:csum_at + 2], "big")
        if proto == PROTO_UDP and csum == 0:
            return
        updated = _csum_update(csum, old, new)
        if updated is not None:
            struct.pack_into("!H", buf, csum_at, 0xFFFF if proto == PROTO_UDP and updated == 0 else updated)
    elif proto == PROTO_ICMP:
        old = bytes(buf[l4 + 4:l4 + 6])
        struct.pack_into("!H", buf, l4 + 4, sport)
        updated = _csum_update(int.from_bytes(buf[l4 + 2:l4 + 4], "big"), old, bytes(buf[l4 + 4:l4 + 6]))
        if updated is not None:
            struct.pack_into("!H", buf, l4 + 2, updated)
