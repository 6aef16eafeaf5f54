# cython: language_level=3, boundscheck=False, wraparound=False
"""ovnsim's fast path, in C: the packet pipeline (``FastEngine``), raw-frame
header parsing and checksum updates.

:c:func:`parse_headers` turns a raw Ethernet frame into a flat ``Headers``
struct (see ``_fastpath.pxd`` for the layout), and the ``rewrite_*`` helpers
apply TTL and NAT rewrites in place while keeping every checksum valid by
RFC 1624 incremental update.  :class:`FastEngine` runs OVN's logical switch
and router stages, as the frozen oracle (``tests/oracle/pipeline.py``) defines them, over C tables built
from ``ovnsim.northd.tables.build_tables()``, in a nogil loop, behind the batch
contract of ``ovnsim.datapath.engine``.

The C functions never raise and never touch Python objects: they return
status codes (the httptools/uvloop pattern).  The ``def`` functions below are
the Python edge: they take any contiguous byte buffer through the buffer
protocol (zero-copy), call the C code, and turn codes into values or
exceptions.
"""

import ipaddress

from libc.string cimport memset

# Wire constants.  (An anonymous enum, not DEF: Cython 3 deprecates DEF.)
cdef enum:
    ETH_HLEN = 14
    VLAN_HLEN = 4
    ARP_ETH_IP4_LEN = 28
    IP4_MIN_HLEN = 20
    TCP_MIN_HLEN = 20
    UDP_HLEN = 8
    ICMP4_HLEN = 8
    ETH_TYPE_IP4 = 0x0800
    ETH_TYPE_ARP = 0x0806
    ETH_TYPE_IP6 = 0x86dd
    ETH_TYPE_VLAN = 0x8100
    ETH_TYPE_QINQ = 0x88a8
    IPPROTO_ICMP = 1
    IPPROTO_TCP = 6
    IPPROTO_UDP = 17
    IP4_MF = 0x2000
    IP4_OFFSET_MASK = 0x1fff
    # Offsets are int32 in the struct; a longer buffer is parsed as if cut here.
    MAX_FRAME = 0x7fffffff


# ---------------------------------------------------------------------------
# Status names: the Python face of ParseStatus
# ---------------------------------------------------------------------------

_STATUS_BY_CODE = {
    PARSE_OK: "OK",
    PARSE_TRUNCATED_ETH: "TRUNCATED_ETH",
    PARSE_STACKED_VLAN: "STACKED_VLAN",
    PARSE_TRUNCATED_ARP: "TRUNCATED_ARP",
    PARSE_BAD_ARP_FORMAT: "BAD_ARP_FORMAT",
    PARSE_TRUNCATED_IP: "TRUNCATED_IP",
    PARSE_BAD_IP_VERSION: "BAD_IP_VERSION",
    PARSE_BAD_IHL: "BAD_IHL",
    PARSE_BAD_IP_TOTAL_LENGTH: "BAD_IP_TOTAL_LENGTH",
    PARSE_IPV6_UNSUPPORTED: "IPV6_UNSUPPORTED",
    PARSE_FRAGMENT: "FRAGMENT",
    PARSE_TRUNCATED_L4: "TRUNCATED_L4",
    PARSE_BAD_TCP_OFFSET: "BAD_TCP_OFFSET",
}
# Indexed by code.  Building it this way fails at import if a code has no
# name, so the C enum and the Python names cannot drift apart.
STATUS_NAMES = tuple(_STATUS_BY_CODE[code] for code in range(PARSE_STATUS_COUNT))
del _STATUS_BY_CODE

#: sizeof(Headers), for code that lays out arrays of parsed frames.
HEADERS_SIZE = sizeof(Headers)


def status_name(int code):
    """Return the name of parse status ``code`` (``0`` is ``"OK"``).

    Raises ``ValueError`` for a number that is not a status code.
    """
    if code < 0 or code >= PARSE_STATUS_COUNT:
        raise ValueError(f"not a parse status code: {code}")
    return STATUS_NAMES[code]


# ---------------------------------------------------------------------------
# Big-endian loads and stores.  Byte-wise, so any alignment is fine: frame
# offsets are rarely 4-aligned (the IPv4 header sits at byte 14 or 18).
# ---------------------------------------------------------------------------

cdef inline uint16_t rd16(const unsigned char* p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])


cdef inline uint32_t rd32(const unsigned char* p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
            | (<uint32_t>p[2] << 8) | <uint32_t>p[3])


cdef inline uint64_t rd48(const unsigned char* p) noexcept nogil:
    return (<uint64_t>rd16(p) << 32) | rd32(p + 2)


cdef inline void wr16(unsigned char* p, uint16_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 8)
    p[1] = <unsigned char>(v & 0xff)


cdef inline void wr32(unsigned char* p, uint32_t v) noexcept nogil:
    wr16(p, <uint16_t>(v >> 16))
    wr16(p + 2, <uint16_t>(v & 0xffff))


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------

cdef inline int _done(Headers* out, int status) noexcept nogil:
    out.status = <uint8_t>status
    return status


cdef int parse_headers(const unsigned char* frame, Py_ssize_t length,
                       Headers* out) noexcept nogil:
    """Parse one raw Ethernet frame into ``out``; return its ParseStatus.

    Walks Ethernet, at most one 802.1Q/802.1ad tag, then ARP or IPv4 and,
    for IPv4, the ICMP/TCP/UDP header.  A field group is written only when
    its header is complete (and its layer bit set), so a truncated or
    malformed frame leaves the later groups zeroed.  Other ethertypes and IP
    protocols parse OK with the headers that were recognised.
    """
    cdef const unsigned char* p
    cdef Py_ssize_t ofs, avail, hlen, tcp_hlen
    cdef uint16_t eth_type, total_len
    cdef uint8_t vihl, proto

    memset(out, 0, sizeof(Headers))
    out.l3_ofs = -1
    out.l4_ofs = -1
    out.payload_ofs = -1
    if length < 0:
        length = 0
    elif length > MAX_FRAME:
        length = MAX_FRAME
    out.end_ofs = <int32_t>length

    # -- Ethernet ----------------------------------------------------------
    if length < ETH_HLEN:
        out.l2_ofs = -1 if length == 0 else 0
        return _done(out, PARSE_TRUNCATED_ETH)
    out.l2_ofs = 0
    eth_type = rd16(frame + 12)
    ofs = ETH_HLEN
    if eth_type == ETH_TYPE_VLAN or eth_type == ETH_TYPE_QINQ:
        if length < ETH_HLEN + VLAN_HLEN:
            return _done(out, PARSE_TRUNCATED_ETH)
        out.vlan_present = 1
        out.vlan_tpid = eth_type
        out.vlan_tci = rd16(frame + 14)
        out.layers |= LAYER_VLAN
        eth_type = rd16(frame + 16)
        ofs += VLAN_HLEN
    out.eth_dst = rd48(frame)
    out.eth_src = rd48(frame + 6)
    out.eth_type = eth_type
    out.layers |= LAYER_ETH
    out.l3_ofs = <int32_t>ofs
    out.payload_ofs = <int32_t>ofs
    if eth_type == ETH_TYPE_VLAN or eth_type == ETH_TYPE_QINQ:
        return _done(out, PARSE_STACKED_VLAN)

    p = frame + ofs
    avail = length - ofs

    # -- ARP ---------------------------------------------------------------
    if eth_type == ETH_TYPE_ARP:
        if avail < ARP_ETH_IP4_LEN:
            return _done(out, PARSE_TRUNCATED_ARP)
        if rd16(p) != 1 or rd16(p + 2) != ETH_TYPE_IP4 or p[4] != 6 or p[5] != 4:
            return _done(out, PARSE_BAD_ARP_FORMAT)
        out.arp_op = rd16(p + 6)
        out.arp_sha = rd48(p + 8)
        out.arp_spa = rd32(p + 14)
        out.arp_tha = rd48(p + 18)
        out.arp_tpa = rd32(p + 24)
        out.layers |= LAYER_ARP
        out.payload_ofs = <int32_t>(ofs + ARP_ETH_IP4_LEN)
        return _done(out, PARSE_OK)

    if eth_type == ETH_TYPE_IP6:
        return _done(out, PARSE_IPV6_UNSUPPORTED)
    if eth_type != ETH_TYPE_IP4:
        # L2 only.  An 802.3 frame's length field (< 0x0600) is kept as its
        # eth_type; OVS would report 0x05ff there.
        return _done(out, PARSE_OK)

    # -- IPv4 --------------------------------------------------------------
    if avail < IP4_MIN_HLEN:
        return _done(out, PARSE_TRUNCATED_IP)
    vihl = p[0]
    if (vihl >> 4) != 4:
        return _done(out, PARSE_BAD_IP_VERSION)
    if (vihl & 0x0f) < 5:
        return _done(out, PARSE_BAD_IHL)
    hlen = (vihl & 0x0f) * 4
    if avail < hlen:
        return _done(out, PARSE_TRUNCATED_IP)
    total_len = rd16(p + 2)
    if total_len < hlen:
        return _done(out, PARSE_BAD_IP_TOTAL_LENGTH)
    if total_len > avail:
        return _done(out, PARSE_TRUNCATED_IP)
    out.ip_ihl = vihl & 0x0f
    out.ip_tos = p[1]
    out.ip_total_len = total_len
    out.ip_id = rd16(p + 4)
    out.ip_frag_off = rd16(p + 6)
    out.ip_ttl = p[8]
    out.ip_proto = proto = p[9]
    out.ip_csum = rd16(p + 10)
    out.ip4_src = rd32(p + 12)
    out.ip4_dst = rd32(p + 16)
    out.layers |= LAYER_IP4
    # From here on the packet ends at the IPv4 total length: what follows in
    # the frame is Ethernet padding (frames shorter than 60 bytes are padded).
    out.end_ofs = <int32_t>(ofs + total_len)
    ofs += hlen
    out.l4_ofs = <int32_t>ofs
    out.payload_ofs = <int32_t>ofs
    if out.ip_frag_off & IP4_OFFSET_MASK:
        # A later fragment carries no L4 header.
        out.ip_frag = IP_FRAG_ANY | IP_FRAG_LATER
        return _done(out, PARSE_FRAGMENT)
    if out.ip_frag_off & IP4_MF:
        out.ip_frag = IP_FRAG_ANY

    # -- L4 ----------------------------------------------------------------
    p = frame + ofs
    avail = total_len - hlen
    if proto == IPPROTO_TCP:
        if avail < TCP_MIN_HLEN:
            return _done(out, PARSE_TRUNCATED_L4)
        tcp_hlen = (p[12] >> 4) * 4
        if tcp_hlen < TCP_MIN_HLEN:
            return _done(out, PARSE_BAD_TCP_OFFSET)
        if avail < tcp_hlen:
            return _done(out, PARSE_TRUNCATED_L4)
        out.tp_src = rd16(p)
        out.tp_dst = rd16(p + 2)
        out.tcp_flags = rd16(p + 12) & 0x0fff
        out.l4_csum = rd16(p + 16)
        out.layers |= LAYER_TCP
        out.payload_ofs = <int32_t>(ofs + tcp_hlen)
    elif proto == IPPROTO_UDP:
        if avail < UDP_HLEN:
            return _done(out, PARSE_TRUNCATED_L4)
        out.tp_src = rd16(p)
        out.tp_dst = rd16(p + 2)
        out.l4_csum = rd16(p + 6)
        out.layers |= LAYER_UDP
        out.payload_ofs = <int32_t>(ofs + UDP_HLEN)
    elif proto == IPPROTO_ICMP:
        if avail < ICMP4_HLEN:
            return _done(out, PARSE_TRUNCATED_L4)
        out.icmp_type = p[0]
        out.icmp_code = p[1]
        out.l4_csum = rd16(p + 2)
        out.icmp_id = rd16(p + 4)
        out.icmp_seq = rd16(p + 6)
        out.layers |= LAYER_ICMP4
        out.payload_ofs = <int32_t>(ofs + ICMP4_HLEN)
    return _done(out, PARSE_FRAGMENT if out.ip_frag else PARSE_OK)


# ---------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------

cdef uint32_t csum_partial(const unsigned char* data, Py_ssize_t length,
                           uint32_t acc) noexcept nogil:
    # Sums into 64 bits and folds at the end: a 64-bit accumulator cannot
    # overflow for any buffer Python can hold.
    cdef uint64_t s = acc, high
    cdef Py_ssize_t i = 0
    while i + 1 < length:
        s += (<uint32_t>data[i] << 8) | data[i + 1]
        i += 2
    if i < length:
        s += <uint32_t>data[i] << 8
    high = s >> 32
    while high:
        s = (s & 0xffffffffU) + high
        high = s >> 32
    return <uint32_t>s


cdef uint16_t csum_fold(uint32_t acc) noexcept nogil:
    acc = (acc & 0xffff) + (acc >> 16)
    acc = (acc & 0xffff) + (acc >> 16)
    return <uint16_t>(~acc & 0xffff)


cdef uint16_t ipv4_header_checksum(const unsigned char* ip, Py_ssize_t hlen) noexcept nogil:
    cdef uint32_t acc = csum_partial(ip, 10, 0)
    if hlen > 12:
        acc = csum_partial(ip + 12, hlen - 12, acc)
    return csum_fold(acc)


cdef uint16_t l4_checksum(const unsigned char* frame, const Headers* h) noexcept nogil:
    cdef const unsigned char* l4 = frame + h.l4_ofs
    cdef Py_ssize_t l4_len = h.end_ofs - h.l4_ofs
    cdef Py_ssize_t csum_at
    cdef uint32_t acc = 0
    cdef uint16_t csum
    if h.layers & LAYER_ICMP4:
        csum_at = 2
    else:
        csum_at = 16 if h.layers & LAYER_TCP else 6
        # Pseudo-header: source, destination, zero + protocol, L4 length.
        acc = ((h.ip4_src >> 16) + (h.ip4_src & 0xffff)
               + (h.ip4_dst >> 16) + (h.ip4_dst & 0xffff)
               + h.ip_proto + <uint32_t>l4_len)
    acc = csum_partial(l4, csum_at, acc)
    acc = csum_partial(l4 + csum_at + 2, l4_len - csum_at - 2, acc)
    csum = csum_fold(acc)
    if csum == 0 and h.layers & LAYER_UDP:
        csum = 0xffff        # RFC 768: 0 on the wire means "no checksum"
    return csum


cdef uint16_t csum_update16(uint16_t csum, uint16_t old, uint16_t new) noexcept nogil:
    # Eqn. 3 rather than eqn. 2 (HC' = HC - ~m - m'): it never produces the
    # -0 (0x0000) that eqn. 2 can, and it agrees bit for bit with a full
    # recomputation whenever the old checksum was right.
    cdef uint32_t acc = (<uint32_t>(~csum) & 0xffff) + (<uint32_t>(~old) & 0xffff) + new
    return csum_fold(acc)


cdef uint16_t csum_update32(uint16_t csum, uint32_t old, uint32_t new) noexcept nogil:
    cdef uint32_t acc = ((<uint32_t>(~csum) & 0xffff)
                         + (~(old >> 16) & 0xffff) + (~old & 0xffff)
                         + (new >> 16) + (new & 0xffff))
    return csum_fold(acc)


# ---------------------------------------------------------------------------
# In-place rewrites (the pipeline's ip.ttl, ip4.src/dst and tcp/udp port sets)
# ---------------------------------------------------------------------------

cdef inline bint _has_l4_csum(const Headers* h) noexcept nogil:
    # TCP/UDP checksum present in this frame: header parsed (so not a later
    # fragment) and, for UDP, not the "no checksum" 0.
    if h.layers & LAYER_TCP:
        return True
    return (h.layers & LAYER_UDP) != 0 and h.l4_csum != 0


cdef inline void _set_l4_csum(unsigned char* frame, Headers* h, uint16_t csum) noexcept nogil:
    cdef Py_ssize_t at = h.l4_ofs + (16 if h.layers & LAYER_TCP else 6)
    if csum == 0 and h.layers & LAYER_UDP:
        csum = 0xffff
    h.l4_csum = csum
    wr16(frame + at, csum)


cdef int rewrite_ip_ttl(unsigned char* frame, Headers* h, uint8_t ttl) noexcept nogil:
    cdef unsigned char* ip
    if not (h.layers & LAYER_IP4):
        return -1
    ip = frame + h.l3_ofs
    # TTL shares its 16-bit checksum word with the protocol byte.
    h.ip_csum = csum_update16(h.ip_csum, (<uint16_t>h.ip_ttl << 8) | h.ip_proto,
                              (<uint16_t>ttl << 8) | h.ip_proto)
    h.ip_ttl = ttl
    ip[8] = ttl
    wr16(ip + 10, h.ip_csum)
    return 0


cdef int rewrite_ip4_addr(unsigned char* frame, Headers* h, int which,
                          uint32_t addr) noexcept nogil:
    cdef unsigned char* ip
    cdef uint32_t old
    if not (h.layers & LAYER_IP4):
        return -1
    ip = frame + h.l3_ofs
    old = h.ip4_dst if which else h.ip4_src
    h.ip_csum = csum_update32(h.ip_csum, old, addr)
    wr16(ip + 10, h.ip_csum)
    wr32(ip + (16 if which else 12), addr)
    if which:
        h.ip4_dst = addr
    else:
        h.ip4_src = addr
    if _has_l4_csum(h):
        # The addresses are in the TCP/UDP pseudo-header.
        _set_l4_csum(frame, h, csum_update32(h.l4_csum, old, addr))
    return 0


cdef int rewrite_l4_port(unsigned char* frame, Headers* h, int which,
                         uint16_t port) noexcept nogil:
    cdef uint16_t old
    if not (h.layers & (LAYER_TCP | LAYER_UDP)):
        return -1
    old = h.tp_dst if which else h.tp_src
    wr16(frame + h.l4_ofs + (2 if which else 0), port)
    if which:
        h.tp_dst = port
    else:
        h.tp_src = port
    if _has_l4_csum(h):
        _set_l4_csum(frame, h, csum_update16(h.l4_csum, old, port))
    return 0


# ---------------------------------------------------------------------------
# Python edge
# ---------------------------------------------------------------------------

cdef str _mac(uint64_t v):
    return "%02x:%02x:%02x:%02x:%02x:%02x" % (
        (v >> 40) & 0xff, (v >> 32) & 0xff, (v >> 24) & 0xff,
        (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)


cdef str _ip4(uint32_t v):
    return "%d.%d.%d.%d" % ((v >> 24) & 0xff, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)


cdef object _ofs(int32_t v):
    return None if v < 0 else v


def parse_headers_dict(const unsigned char[::1] frame not None):
    """Parse a raw Ethernet frame and return its header fields as a dict.

    ``frame`` is any C-contiguous byte buffer (``bytes``, ``bytearray``,
    ``memoryview``, ...); it is read in place, not copied.  Keys use OVN's
    field names where OVN has one (``eth.src``, ``vlan.tci``, ``arp.spa``,
    ``ip4.src``, ``ip.ttl``, ``ip.proto``, ``icmp4.type``, ``tcp.flags``,
    ``udp.dst``, ...) and the same style otherwise (``ip4.id``,
    ``icmp4.seq``, ``tcp.csum``).  MACs are ``"aa:bb:cc:dd:ee:ff"``, IPv4
    addresses dotted quads, everything else ints or bools.

    A key appears only when its header was parsed; ``status`` (a name from
    :data:`STATUS_NAMES`) and the byte offsets ``ofs.l2``, ``ofs.l3``,
    ``ofs.l4``, ``ofs.payload`` and ``ofs.end`` (``None`` when absent) are
    always there.  This never raises on frame contents: malformed frames
    are described by ``status``.
    """
    cdef Headers h
    # &frame[0] of an empty view would point past its end: pass NULL (the
    # parser reads nothing when the length is 0).
    parse_headers(&frame[0] if frame.shape[0] else NULL, frame.shape[0], &h)
    d = {
        "status": STATUS_NAMES[h.status],
        "ofs.l2": _ofs(h.l2_ofs),
        "ofs.l3": _ofs(h.l3_ofs),
        "ofs.l4": _ofs(h.l4_ofs),
        "ofs.payload": _ofs(h.payload_ofs),
        "ofs.end": _ofs(h.end_ofs),
    }
    if h.layers & LAYER_ETH:
        d["eth.dst"] = _mac(h.eth_dst)
        d["eth.src"] = _mac(h.eth_src)
        d["eth.type"] = h.eth_type
        d["vlan.present"] = bool(h.vlan_present)
    if h.layers & LAYER_VLAN:
        d["vlan.tpid"] = h.vlan_tpid
        d["vlan.tci"] = h.vlan_tci
        d["vlan.pcp"] = h.vlan_tci >> 13
        d["vlan.vid"] = h.vlan_tci & 0x0fff
    if h.layers & LAYER_ARP:
        d["arp.op"] = h.arp_op
        d["arp.sha"] = _mac(h.arp_sha)
        d["arp.spa"] = _ip4(h.arp_spa)
        d["arp.tha"] = _mac(h.arp_tha)
        d["arp.tpa"] = _ip4(h.arp_tpa)
    if h.layers & LAYER_IP4:
        d["ip4.src"] = _ip4(h.ip4_src)
        d["ip4.dst"] = _ip4(h.ip4_dst)
        d["ip.proto"] = h.ip_proto
        d["ip.ttl"] = h.ip_ttl
        d["ip.dscp"] = h.ip_tos >> 2
        d["ip.ecn"] = h.ip_tos & 0x03
        d["ip.is_frag"] = bool(h.ip_frag & IP_FRAG_ANY)
        d["ip.later_frag"] = bool(h.ip_frag & IP_FRAG_LATER)
        d["ip4.ihl"] = h.ip_ihl
        d["ip4.tos"] = h.ip_tos
        d["ip4.len"] = h.ip_total_len
        d["ip4.id"] = h.ip_id
        d["ip4.flags"] = h.ip_frag_off >> 13
        d["ip4.frag_offset"] = h.ip_frag_off & IP4_OFFSET_MASK
        d["ip4.csum"] = h.ip_csum
    if h.layers & LAYER_ICMP4:
        d["icmp4.type"] = h.icmp_type
        d["icmp4.code"] = h.icmp_code
        d["icmp4.id"] = h.icmp_id
        d["icmp4.seq"] = h.icmp_seq
        d["icmp4.csum"] = h.l4_csum
    if h.layers & LAYER_TCP:
        d["tcp.src"] = h.tp_src
        d["tcp.dst"] = h.tp_dst
        d["tcp.flags"] = h.tcp_flags
        d["tcp.csum"] = h.l4_csum
    if h.layers & LAYER_UDP:
        d["udp.src"] = h.tp_src
        d["udp.dst"] = h.tp_dst
        d["udp.csum"] = h.l4_csum
    return d


def checksums_ok(const unsigned char[::1] frame not None):
    """Return whether an IPv4 frame's checksums are right.

    Checks the IPv4 header checksum and, when the frame holds a whole
    datagram (not a fragment) with a parsed ICMP, TCP or UDP header, that
    header's checksum too (a UDP checksum of 0, "none", is accepted).
    Raises ``ValueError`` if the frame has no complete IPv4 header.
    """
    cdef Headers h
    cdef const unsigned char* p = &frame[0] if frame.shape[0] else NULL
    parse_headers(p, frame.shape[0], &h)
    if not (h.layers & LAYER_IP4):
        raise ValueError(f"no IPv4 header to check (status {STATUS_NAMES[h.status]})")
    if ipv4_header_checksum(p + h.l3_ofs, h.ip_ihl * 4) != h.ip_csum:
        return False
    if h.ip_frag or not (h.layers & (LAYER_ICMP4 | LAYER_TCP | LAYER_UDP)):
        return True
    if h.layers & LAYER_UDP and h.l4_csum == 0:
        return True
    return l4_checksum(p, &h) == h.l4_csum


def ipv4_checksum(const unsigned char[::1] header not None):
    """Return the checksum an IPv4 header should carry.

    ``header`` is the IPv4 header alone (IHL * 4 bytes, at least 12); its
    own checksum field is ignored.
    """
    if header.shape[0] < 12:
        raise ValueError("an IPv4 header is at least 12 bytes up to its checksum")
    return ipv4_header_checksum(&header[0], header.shape[0])


def checksum_update16(csum, old, new):
    """RFC 1624: ``csum`` after a 16-bit word it covers changes ``old`` -> ``new``."""
    _check_u16(csum)
    _check_u16(old)
    _check_u16(new)
    return csum_update16(<uint16_t>csum, <uint16_t>old, <uint16_t>new)


def checksum_update32(csum, old, new):
    """RFC 1624: ``csum`` after a 32-bit field it covers changes ``old`` -> ``new``."""
    _check_u16(csum)
    if not (0 <= old <= 0xffffffff and 0 <= new <= 0xffffffff):
        raise ValueError("old and new must be 32-bit unsigned values")
    return csum_update32(<uint16_t>csum, <uint32_t>old, <uint32_t>new)


cdef _check_u16(v):
    if not 0 <= v <= 0xffff:
        raise ValueError(f"not a 16-bit value: {v}")


def rewrite(unsigned char[::1] frame not None, *, ttl=None, ip4_src=None,
            ip4_dst=None, l4_src=None, l4_dst=None):
    """Rewrite IPv4/TCP/UDP fields of ``frame`` in place, fixing checksums.

    ``frame`` must be writable (``bytearray``, a writable ``memoryview``).
    ``ttl`` sets ``ip.ttl``; ``ip4_src``/``ip4_dst`` take a dotted quad, an
    int or an ``IPv4Address``; ``l4_src``/``l4_dst`` set the TCP or UDP
    ports.  The IPv4 header checksum and the TCP/UDP checksum are updated
    incrementally (RFC 1624), as the pipeline does for NAT and TTL
    decrement; a UDP checksum of 0 stays 0.  Raises ``ValueError`` (frame
    untouched) if a value is out of range or the frame lacks the header.
    """
    cdef Headers h
    cdef unsigned char* p = &frame[0] if frame.shape[0] else NULL
    cdef uint32_t src = 0, dst = 0
    parse_headers(p, frame.shape[0], &h)
    if not (h.layers & LAYER_IP4):
        raise ValueError(f"no IPv4 header to rewrite (status {STATUS_NAMES[h.status]})")
    if (l4_src is not None or l4_dst is not None) and not (h.layers & (LAYER_TCP | LAYER_UDP)):
        raise ValueError("no TCP or UDP header to rewrite ports in")
    if ttl is not None and not 0 <= ttl <= 0xff:
        raise ValueError(f"not a TTL: {ttl}")
    if l4_src is not None:
        _check_u16(l4_src)
    if l4_dst is not None:
        _check_u16(l4_dst)
    if ip4_src is not None:
        src = int(ipaddress.IPv4Address(ip4_src))
    if ip4_dst is not None:
        dst = int(ipaddress.IPv4Address(ip4_dst))
    # Everything is checked: from here on no step can fail.
    if ttl is not None:
        rewrite_ip_ttl(p, &h, <uint8_t>ttl)
    if ip4_src is not None:
        rewrite_ip4_addr(p, &h, 0, src)
    if ip4_dst is not None:
        rewrite_ip4_addr(p, &h, 1, dst)
    if l4_src is not None:
        rewrite_l4_port(p, &h, 0, <uint16_t>l4_src)
    if l4_dst is not None:
        rewrite_l4_port(p, &h, 1, <uint16_t>l4_dst)


# ===========================================================================
# The packet pipeline: FastEngine
#
# The same stages as oracle.pipeline (read it beside this: every function
# below names the Python method it mirrors), over the C tables declared in
# _fastpath.pxd.  The per-frame loop runs nogil and never raises: a drop is
# a record in the result arrays, an allocation failure sets core.error and
# stops the batch (MemoryError after the loop).
# ===========================================================================

from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_READ
from cpython.ref cimport Py_REFCNT

from array import array as _array

from ovnsim.errors import EngineError

cdef enum:
    MAX_HOPS = 64            # oracle.pipeline.MAX_HOPS
    AUTO_INGRESS = -1
    # Work-item operations (Pkt.op)
    OP_DONE = 0
    OP_LS_IN
    OP_LS_OUT
    OP_LR_IN
    OP_REENTER
    OP_FLOOD_START
    OP_FLOOD_NEXT
    # Multicast groups of a switch
    G_FLOOD = 0
    G_FLOOD_L2 = 1
    G_UNKNOWN = 2
    # Conntrack zone kinds of a router (zone = router * 3 + kind)
    Z_SNAT = 0
    Z_DNAT = 1
    Z_COMMON = 2
    # IpInfo.flags
    IPF_OWN = 0x01           # a port IP of the router
    IPF_DROP = 0x02          # drop_ips
    IPF_SNAT_OWN = 0x04      # snat_own_ips
    IPF_NAT = 0x08           # nat_ips
    IPF_MARTIAN_SRC = 0x10   # a port IP or its subnet broadcast
    # Generated frames: an ICMP error quotes at most what fits in 576 bytes
    # (oracle.packet.ICMP_QUOTE_MAX)
    MAX_QUOTE = 576 - (14 + 20 + 8)
    MAX_GENERATED = 14 + 20 + 8 + MAX_QUOTE
    IP4_DF = 0x4000

# Rule, stage and drop codes: generated from ovnsim.northd.rules.
include "_rules.pxi"

cdef uint64_t MAP_EMPTY = 0xffffffffffffffffULL
cdef uint64_t MAC_MASK = 0xffffffffffffULL
cdef uint64_t BCAST_MAC = 0xffffffffffffULL


# ---------------------------------------------------------------------------
# U64Map
# ---------------------------------------------------------------------------

cdef int map_alloc(U64Map* m, uint64_t min_entries) noexcept nogil:
    cdef uint64_t cap = 16, i
    cdef int bits = 4
    while cap < 2 * min_entries:
        cap <<= 1
        bits += 1
    cdef MapSlot* slots = <MapSlot*>malloc(cap * sizeof(MapSlot))
    if slots == NULL:
        return -1
    for i in range(cap):
        slots[i].key = MAP_EMPTY
    free(m.slots)
    m.slots = slots
    m.mask = cap - 1
    m.count = 0
    m.shift = 64 - bits
    return 0


cdef inline uint64_t _hash64(uint64_t key, int shift) noexcept nogil:
    return (key * 0x9E3779B97F4A7C15ULL) >> shift


cdef inline MapSlot* map_slot(const U64Map* m, uint64_t key) noexcept nogil:
    # The slot holding `key`, or the free slot where it would go.
    cdef uint64_t i = _hash64(key, m.shift)
    cdef MapSlot* s
    while True:
        s = &m.slots[i]
        if s.key == key or s.key == MAP_EMPTY:
            return s
        i = (i + 1) & m.mask


cdef inline bint map_get(const U64Map* m, uint64_t key, uint64_t* val) noexcept nogil:
    cdef MapSlot* s = map_slot(m, key)
    if s.key == MAP_EMPTY:
        return False
    val[0] = s.val
    return True


cdef int map_put(U64Map* m, uint64_t key, uint64_t val) noexcept nogil:
    # Insert or replace (a dict's d[key] = val); -1 if growing failed.
    cdef MapSlot* s
    cdef MapSlot* old
    cdef uint64_t old_cap, i
    if 2 * (m.count + 1) > m.mask + 1:
        old = m.slots
        old_cap = m.mask + 1
        m.slots = NULL
        if map_alloc(m, m.count + 1) < 0:
            m.slots = old
            return -1
        for i in range(old_cap):
            if old[i].key != MAP_EMPTY:
                s = map_slot(m, old[i].key)
                s[0] = old[i]
                m.count += 1
        free(old)
    s = map_slot(m, key)
    if s.key == MAP_EMPTY:
        s.key = key
        m.count += 1
    s.val = val
    return 0


cdef void map_clear(U64Map* m) noexcept nogil:
    cdef uint64_t i
    if m.slots != NULL:
        for i in range(m.mask + 1):
            m.slots[i].key = MAP_EMPTY
    m.count = 0


# ---------------------------------------------------------------------------
# Conntrack (oracle.pipeline.Conntrack: a dict per zone, two keys per connection)
# ---------------------------------------------------------------------------

cdef int ct_alloc(Conntrack* ct, uint64_t min_entries) noexcept nogil:
    cdef uint64_t cap = 64, i
    cdef int bits = 6
    while cap < 2 * min_entries:
        cap <<= 1
        bits += 1
    cdef CtSlot* slots = <CtSlot*>malloc(cap * sizeof(CtSlot))
    if slots == NULL:
        return -1
    for i in range(cap):
        slots[i].conn = -1
    free(ct.slots)
    ct.slots = slots
    ct.mask = cap - 1
    ct.count = 0
    ct.shift = 64 - bits
    return 0


cdef inline CtSlot* ct_slot(const Conntrack* ct, uint64_t k1, uint64_t k2) noexcept nogil:
    cdef uint64_t h = (k1 ^ (k2 * 0xC2B2AE3D27D4EB4FULL)) * 0x9E3779B97F4A7C15ULL
    cdef uint64_t i = (h ^ (h >> 29)) >> ct.shift
    cdef CtSlot* s
    while True:
        s = &ct.slots[i]
        if s.conn < 0 or (s.k1 == k1 and s.k2 == k2):
            return s
        i = (i + 1) & ct.mask


cdef int ct_reserve(Conntrack* ct) noexcept nogil:
    # Room for one more connection: two keys, one CtConn.
    cdef CtSlot* old
    cdef CtSlot* s
    cdef CtConn* conns
    cdef uint64_t old_cap, i
    if 2 * (ct.count + 2) > ct.mask + 1:
        old = ct.slots
        old_cap = ct.mask + 1
        ct.slots = NULL
        if ct_alloc(ct, ct.count + 2) < 0:
            ct.slots = old
            return -1
        for i in range(old_cap):
            if old[i].conn >= 0:
                s = ct_slot(ct, old[i].k1, old[i].k2)
                s[0] = old[i]
                ct.count += 1
        free(old)
    if ct.n_conns == ct.cap_conns:
        conns = <CtConn*>realloc(ct.conns, (2 * ct.cap_conns + 64) * sizeof(CtConn))
        if conns == NULL:
            return -1
        ct.conns = conns
        ct.cap_conns = 2 * ct.cap_conns + 64
    return 0


cdef void ct_clear(Conntrack* ct) noexcept nogil:
    cdef uint64_t i
    if ct.slots != NULL:
        for i in range(ct.mask + 1):
            ct.slots[i].conn = -1
    ct.count = 0
    ct.n_conns = 0


cdef inline uint64_t ct_k2(uint32_t zone, uint8_t proto, uint16_t sport, uint16_t dport) noexcept nogil:
    return (<uint64_t>zone << 40) | (<uint64_t>proto << 32) | (<uint64_t>sport << 16) | dport


# ---------------------------------------------------------------------------
# Result arrays and work stack (grown by doubling, never per frame)
# ---------------------------------------------------------------------------

cdef int _grow(void** p, int64_t n, size_t size) noexcept nogil:
    cdef void* q = realloc(p[0], n * size)
    if q == NULL:
        return -1
    p[0] = q
    return 0


cdef int grow_outputs(Core* c) noexcept nogil:
    cdef int64_t n = 2 * c.cap_out + 256
    if (_grow(<void**>&c.out_frame, n, 4) or _grow(<void**>&c.out_port, n, 4)
            or _grow(<void**>&c.out_kind, n, 1) or _grow(<void**>&c.out_start, n, 8)
            or _grow(<void**>&c.out_len, n, 4)):
        return -1
    c.cap_out = n
    return 0


cdef int grow_drops(Core* c) noexcept nogil:
    cdef int64_t n = 2 * c.cap_drop + 256
    if (_grow(<void**>&c.drop_frame, n, 4) or _grow(<void**>&c.drop_reason, n, 1)
            or _grow(<void**>&c.drop_stage, n, 2) or _grow(<void**>&c.drop_dp, n, 4)):
        return -1
    c.cap_drop = n
    return 0


cdef void trace_record(Core* c, const FrameCtx* f, int rule, int32_t dp, int32_t depth,
                       uint64_t a, uint64_t b) noexcept nogil:
    # Called only when c.tracing: the check stays inline at the call site.
    cdef int64_t i = c.n_trace, n
    cdef TraceRec* r
    if i == c.cap_trace:
        n = 2 * c.cap_trace + 4096
        if _grow(<void**>&c.trace, n, sizeof(TraceRec)) < 0:
            c.error = 1
            return
        c.cap_trace = n
    r = &c.trace[i]
    r.frame = f.index
    r.rule = <int16_t>rule
    r.depth = <int16_t>depth
    r.dp = dp
    r.a = <uint32_t>a
    r.b = b
    c.n_trace = i + 1


cdef inline void trace(Core* c, const FrameCtx* f, int rule, int32_t dp, int32_t depth,
                       uint64_t a, uint64_t b) noexcept nogil:
    if c.tracing:
        trace_record(c, f, rule, dp, depth, a, b)


cdef void emit_drop(Core* c, const FrameCtx* f, int rule, int32_t dp, int32_t depth,
                    uint64_t a, uint64_t b) noexcept nogil:
    """A drop by `rule` (its disposition and stage come from the catalogue), traced as every step is."""
    cdef int64_t i = c.n_drop
    if i == c.cap_drop:
        if grow_drops(c) < 0:
            c.error = 1
            return
    c.drop_frame[i] = f.index
    c.drop_reason[i] = RULE_DROP[rule]
    c.drop_stage[i] = RULE_STAGE[rule]
    c.drop_dp[i] = dp
    c.n_drop = i + 1
    if c.tracing:
        trace_record(c, f, rule, dp, depth, a, b)


cdef inline int push(Core* c, const Pkt* p) noexcept nogil:
    if c.stack_len == c.stack_cap:
        if _grow(<void**>&c.stack, 2 * c.stack_cap + 16, sizeof(Pkt)) < 0:
            c.error = 1
            return -1
        c.stack_cap = 2 * c.stack_cap + 16
    c.stack[c.stack_len] = p[0]
    c.stack_len += 1
    return 0


# ---------------------------------------------------------------------------
# Frame bytes (oracle.packet.build_frame / build_generated / embedded_header)
# ---------------------------------------------------------------------------

cdef inline void wr48(unsigned char* p, uint64_t v) noexcept nogil:
    wr16(p, <uint16_t>(v >> 32))
    wr32(p + 2, <uint32_t>(v & 0xffffffffU))


cdef inline uint16_t _csum_words(uint16_t csum, uint64_t acc) noexcept nogil:
    # build_frame's _csum_update: ~(~csum + sum(~old + new)) over the words
    # that changed, their ~old + new already summed into `acc` (_acc16).
    # Called only when at least one word changed: an unchanged word would
    # add 0xffff, which turns a checksum of 0xffff into 0.
    acc += (~csum) & 0xffff
    while acc >> 16:
        acc = (acc & 0xffff) + (acc >> 16)
    return <uint16_t>(~acc & 0xffff)


cdef inline bint _acc16(uint64_t* acc, const unsigned char* old, const unsigned char* new) noexcept nogil:
    # Add the word's ~old + new to acc if it changed; whether it did.
    cdef uint16_t o = rd16(old), n = rd16(new)
    if o == n:
        return False
    acc[0] += <uint64_t>((~o) & 0xffff) + n
    return True


cdef inline bint icmp_error(uint8_t icmp_type) noexcept nogil:
    # oracle.packet.ICMP_ERROR_TYPES: unreachable, source quench, redirect,
    # time exceeded, parameter problem
    return (icmp_type == 3 or icmp_type == 4 or icmp_type == 5 or icmp_type == 11
            or icmp_type == 12)


cdef void parse_inner(const unsigned char* q, int32_t n, Pkt* p) noexcept nogil:
    """packet.parse_inner: the tuple of the datagram an ICMP error quotes at q[0:n], into p.in_*."""
    cdef int32_t ihl
    cdef uint8_t proto
    p.has_inner = 0
    if n < 20 or (q[0] >> 4) != 4:
        return
    ihl = (q[0] & 0x0f) * 4
    if ihl < 20 or n < ihl + 8 or (rd16(q + 6) & IP4_OFFSET_MASK):
        return
    proto = q[9]
    if proto == IPPROTO_TCP or proto == IPPROTO_UDP:
        p.in_sport = rd16(q + ihl)
        p.in_dport = rd16(q + ihl + 2)
    elif proto == IPPROTO_ICMP:
        if not icmp_query(q[ihl]):
            return
        p.in_sport = p.in_dport = rd16(q + ihl + 4)
    else:
        p.in_sport = p.in_dport = 0
    p.in_proto = proto
    p.in_src = rd32(q + 12)
    p.in_dst = rd32(q + 16)
    p.has_inner = 1


cdef void rewrite_inner(unsigned char* q, int32_t n, const Pkt* p) noexcept nogil:
    """packet.rewrite_inner: p.in_*'s addresses and ports into the quoted datagram q[0:n].

    Only what changed, each inner checksum updated over the words that
    changed (TCP only when its 20-byte header is there, UDP 0 stays 0).  q
    passed parse_inner().  The caller updates the outer ICMP checksum.
    """
    cdef int32_t ihl = (q[0] & 0x0f) * 4
    cdef uint8_t proto = q[9]
    cdef unsigned char old[12]      # inner addresses (8 bytes), then ports or identifier
    cdef unsigned char* l4 = q + ihl
    cdef uint64_t acc = 0
    cdef bint changed
    cdef int32_t at
    cdef uint16_t csum
    memcpy(old, q + 12, 8)
    wr32(q + 12, p.in_src)
    wr32(q + 16, p.in_dst)
    changed = _acc16(&acc, old, q + 12)
    changed |= _acc16(&acc, old + 2, q + 14)
    changed |= _acc16(&acc, old + 4, q + 16)
    changed |= _acc16(&acc, old + 6, q + 18)
    if changed:
        wr16(q + 10, _csum_words(rd16(q + 10), acc))
    if proto == IPPROTO_TCP or proto == IPPROTO_UDP:
        memcpy(old + 8, l4, 4)
        wr16(l4, p.in_sport)
        wr16(l4 + 2, p.in_dport)
        if proto == IPPROTO_TCP and n - ihl < 20:
            return
        at = 16 if proto == IPPROTO_TCP else 6
        csum = rd16(l4 + at)
        if proto == IPPROTO_UDP and csum == 0:
            return
        changed |= _acc16(&acc, old + 8, l4)
        changed |= _acc16(&acc, old + 10, l4 + 2)
        if changed:
            csum = _csum_words(csum, acc)
            if proto == IPPROTO_UDP and csum == 0:
                csum = 0xffff
            wr16(l4 + at, csum)
    elif proto == IPPROTO_ICMP:
        memcpy(old + 8, l4 + 4, 2)
        wr16(l4 + 4, p.in_sport)
        acc = 0
        if _acc16(&acc, old + 8, l4 + 4):
            wr16(l4 + 2, _csum_words(rd16(l4 + 2), acc))


cdef int32_t build_raw(const FrameCtx* f, const Pkt* p, unsigned char* o) noexcept nogil:
    """build_frame() of a received frame: the changed fields written back in place.

    A checksum is updated only when a word it covers changed, so a frame
    nothing changed leaves byte for byte as it came.
    """
    cdef int32_t n = f.n
    cdef unsigned char* q
    cdef unsigned char* ip
    cdef const unsigned char* oip
    cdef unsigned char* l4
    cdef const unsigned char* ol4
    cdef uint64_t acc
    cdef uint16_t csum
    cdef int32_t at, stop, end
    cdef bint changed
    memcpy(o, f.raw, n)
    wr48(o, p.eth_dst)
    wr48(o + 6, p.eth_src)
    if p.eth_type == ETH_TYPE_ARP:
        if p.arp_opaque:
            return n        # not Ethernet/IPv4: never rewritten beyond the Ethernet header
        q = o + f.l3 + 6
        wr16(q, p.arp_op)
        wr48(q + 2, p.arp_sha)
        wr32(q + 8, p.arp_spa)
        wr48(q + 12, p.arp_tha)
        wr32(q + 18, p.arp_tpa)
        return n
    if p.eth_type != ETH_TYPE_IP4:
        return n
    ip = o + f.l3
    oip = f.raw + f.l3
    ip[8] = p.ttl
    wr32(ip + 12, p.ip_src)
    wr32(ip + 16, p.ip_dst)
    # Of the header words only TTL/protocol (4) and the addresses (6-9) are written.
    acc = 0
    changed = _acc16(&acc, oip + 8, ip + 8)
    changed |= _acc16(&acc, oip + 12, ip + 12)
    changed |= _acc16(&acc, oip + 14, ip + 14)
    changed |= _acc16(&acc, oip + 16, ip + 16)
    changed |= _acc16(&acc, oip + 18, ip + 18)
    if changed:
        wr16(ip + 10, _csum_words(rd16(oip + 10), acc))
    if p.later_frag:
        return n
    l4 = o + f.l4
    ol4 = f.raw + f.l4
    if p.proto == IPPROTO_ICMP:
        # type and code, the identifier (bytes 4-5) NAT may have changed, and
        # the quoted datagram of a RELATED error that was un-NATed
        l4[0] = p.icmp_type
        l4[1] = p.icmp_code
        wr16(l4 + 4, p.icmp_id)
        acc = 0
        changed = _acc16(&acc, ol4, l4)
        changed |= _acc16(&acc, ol4 + 4, l4 + 4)
        if p.has_inner:
            end = f.l3 + rd16(oip + 2)
            rewrite_inner(l4 + 8, end - f.l4 - 8, p)
            # The words rewrite_inner can touch: the inner IPv4 header's first
            # 20 bytes and 20 bytes after it (all of it inside the message; a
            # last odd byte counts as a word padded with zero, as in csum).
            at = 8
            stop = 8 + ((l4[8] & 0x0f) * 4) + 20
            if stop > end - f.l4:
                stop = end - f.l4
            while at + 1 < stop:
                changed |= _acc16(&acc, ol4 + at, l4 + at)
                at += 2
            if at < stop and l4[at] != ol4[at]:
                acc += <uint64_t>((~(<uint16_t>ol4[at] << 8)) & 0xffff) + (<uint16_t>l4[at] << 8)
                changed = True
        if changed:
            wr16(l4 + 2, _csum_words(rd16(ol4 + 2), acc))
    elif p.proto == IPPROTO_TCP or p.proto == IPPROTO_UDP:
        at = 16 if p.proto == IPPROTO_TCP else 6
        csum = rd16(ol4 + at)
        wr16(l4, p.sport)
        wr16(l4 + 2, p.dport)
        if not (p.proto == IPPROTO_UDP and csum == 0):
            acc = 0
            changed = _acc16(&acc, oip + 12, ip + 12)
            changed |= _acc16(&acc, oip + 14, ip + 14)
            changed |= _acc16(&acc, oip + 16, ip + 16)
            changed |= _acc16(&acc, oip + 18, ip + 18)
            changed |= _acc16(&acc, ol4, l4)
            changed |= _acc16(&acc, ol4 + 2, l4 + 2)
            if changed:
                csum = _csum_words(csum, acc)
                if p.proto == IPPROTO_UDP and csum == 0:
                    csum = 0xffff
                wr16(l4 + at, csum)
    return n


cdef int32_t build_gen(const Core* c, const Pkt* p, unsigned char* o) noexcept nogil:
    """build_generated(): ARP request (42 bytes), ICMP error or TCP reset as pinctrl builds them."""
    cdef unsigned char* ip = o + 14
    cdef unsigned char* l4 = o + 34
    cdef int32_t l4len, i
    cdef uint32_t acc
    wr48(o, p.eth_dst)
    wr48(o + 6, p.eth_src)
    if p.eth_type == ETH_TYPE_ARP:
        wr16(o + 12, ETH_TYPE_ARP)
        wr16(o + 14, 1)
        wr16(o + 16, ETH_TYPE_IP4)
        o[18] = 6
        o[19] = 4
        wr16(o + 20, p.arp_op)
        wr48(o + 22, p.arp_sha)
        wr32(o + 28, p.arp_spa)
        wr48(o + 32, p.arp_tha)
        wr32(o + 38, p.arp_tpa)
        return 42
    wr16(o + 12, ETH_TYPE_IP4)
    if p.proto == IPPROTO_ICMP:
        # pinctrl_handle_icmp
        l4len = 8 + p.quote_len
        l4[0] = p.icmp_type
        l4[1] = p.icmp_code
        for i in range(2, 8):
            l4[i] = 0
        memcpy(l4 + 8, c.quotes + p.quote_ofs, p.quote_len)
        if p.has_inner:
            rewrite_inner(l4 + 8, p.quote_len, p)
        wr16(l4 + 2, csum_fold(csum_partial(l4, l4len, 0)))
    else:
        # pinctrl_handle_tcp_reset: 20-byte header, RST only, window 0
        l4len = 20
        wr16(l4, p.sport)
        wr16(l4 + 2, p.dport)
        wr32(l4 + 4, p.tcp_seq)
        wr32(l4 + 8, p.tcp_ack)
        for i in range(12, 20):
            l4[i] = 0
        l4[12] = 5 << 4
        l4[13] = 0x04        # RST
        acc = ((p.ip_src >> 16) + (p.ip_src & 0xffff) + (p.ip_dst >> 16) + (p.ip_dst & 0xffff)
               + IPPROTO_TCP + 20)
        wr16(l4 + 16, csum_fold(csum_partial(l4, 20, acc)))
    # Both: TOS of the packet they answer, ID 0, DF.
    ip[0] = 0x45
    ip[1] = p.tos
    wr16(ip + 2, <uint16_t>(20 + l4len))
    wr16(ip + 4, 0)
    wr16(ip + 6, IP4_DF)
    ip[8] = p.ttl
    ip[9] = p.proto
    wr16(ip + 10, 0)
    wr32(ip + 12, p.ip_src)
    wr32(ip + 16, p.ip_dst)
    wr16(ip + 10, csum_fold(csum_partial(ip, 20, 0)))
    return 34 + l4len


cdef void quote_datagram(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    """embedded_header(): the datagram as it is now, into the quote arena (p.quote_ofs, p.quote_len).

    Its IPv4 header onwards, bounded by its IPv4 total length (never the
    Ethernet padding) and by MAX_QUOTE.
    """
    cdef int32_t n, l3, qlen
    cdef int64_t cap
    if p.generated:
        n = build_gen(c, p, c.scratch)
        l3 = 14
    else:
        n = build_raw(f, p, c.scratch)
        l3 = f.l3
    qlen = rd16(c.scratch + l3 + 2)
    if qlen > MAX_QUOTE:
        qlen = MAX_QUOTE
    if qlen > n - l3:
        qlen = n - l3
    if c.quotes_len + qlen > c.quotes_cap:
        cap = 2 * c.quotes_cap + MAX_QUOTE
        if _grow(<void**>&c.quotes, cap, 1) < 0:
            c.error = 1
            p.quote_len = 0
            return
        c.quotes_cap = cap
    memcpy(c.quotes + c.quotes_len, c.scratch + l3, qlen)
    p.quote_ofs = <int32_t>c.quotes_len
    p.quote_len = <uint16_t>qlen
    c.quotes_len += qlen


cdef inline void emit_output(Core* c, const FrameCtx* f, const Pkt* p, int32_t port) noexcept nogil:
    cdef int64_t i = c.n_out
    cdef int64_t need = c.data_len + (MAX_GENERATED if p.generated else f.n)
    cdef int64_t cap
    cdef int32_t n
    if i == c.cap_out:
        if grow_outputs(c) < 0:
            c.error = 1
            return
    if need > c.data_cap:
        cap = 2 * c.data_cap
        if cap < need:
            cap = need + 4096
        if _grow(<void**>&c.out_data, cap, 1) < 0:
            c.error = 1
            return
        c.data_cap = cap
    if p.generated:
        n = build_gen(c, p, c.out_data + c.data_len)
    else:
        n = build_raw(f, p, c.out_data + c.data_len)
    c.out_frame[i] = f.index
    c.out_port[i] = port
    c.out_kind[i] = <int8_t>p.kind
    c.out_start[i] = c.data_len
    c.out_len[i] = n
    c.data_len += n
    c.n_out = i + 1


# ---------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------

cdef inline IpInfo* ip_info(const Core* c, int32_t r, uint32_t ip) noexcept nogil:
    cdef uint64_t v
    if map_get(&c.ip_map, (<uint64_t>r << 32) | ip, &v):
        return &c.ipinfo[v]
    return NULL


cdef inline uint8_t ip_flags(const Core* c, int32_t r, uint32_t ip) noexcept nogil:
    cdef IpInfo* info = ip_info(c, r, ip)
    return info.flags if info != NULL else 0


cdef inline bint in_prefixes(const Core* c, int32_t start, int32_t count, uint32_t ip) noexcept nogil:
    cdef int32_t k
    for k in range(start, start + count):
        if (ip & c.pfx[k].mask) == c.pfx[k].network:
            return True
    return False


cdef bint in_port_sec_ok(const Core* c, const SwPort* port, const Pkt* p) noexcept nogil:
    """pipeline._in_port_sec_ok."""
    cdef int32_t k
    cdef const PortSec* e
    for k in range(port.psec_start, port.psec_start + port.psec_count):
        e = &c.psec[k]
        if e.mac != p.eth_src:
            continue
        if p.eth_type == ETH_TYPE_ARP:
            if p.arp_sha != e.mac:
                return False
            return e.pfx_count == 0 or in_prefixes(c, e.pfx_start, e.pfx_count, p.arp_spa)
        if p.eth_type == ETH_TYPE_IP4:
            if e.pfx_count == 0:
                return True
            if in_prefixes(c, e.pfx_start, e.pfx_count, p.ip_src):
                return True
            return (p.ip_src == 0 and p.ip_dst == 0xffffffffU and p.proto == IPPROTO_UDP
                    and p.sport == 68 and p.dport == 67)
        return True
    return False


cdef bint out_port_sec_ok(const Core* c, const SwPort* port, const Pkt* p) noexcept nogil:
    """pipeline._out_port_sec_ok."""
    cdef int32_t k, j
    cdef const PortSec* e
    cdef uint32_t dst
    for k in range(port.psec_start, port.psec_start + port.psec_count):
        e = &c.psec[k]
        if e.mac != p.eth_dst:
            continue
        if p.eth_type != ETH_TYPE_IP4 or e.pfx_count == 0:
            return True
        dst = p.ip_dst
        if dst == 0xffffffffU or (dst >> 28) == 0xe:
            return True
        for j in range(e.pfx_start, e.pfx_start + e.pfx_count):
            if (dst & c.pfx[j].mask) == c.pfx[j].network or (c.pfx[j].plen < 32 and dst == c.pfx[j].bcast):
                return True
        return False
    return False


cdef int32_t auto_ingress(const Core* c, uint64_t eth_src, bint has_ip, uint32_t ip_src) noexcept nogil:
    """IngressTable.choose."""
    cdef uint64_t v
    cdef int32_t k
    if map_get(&c.auto_mac, eth_src, &v):
        return <int32_t>v
    if has_ip:
        if map_get(&c.auto_ip, ip_src, &v):
            return <int32_t>v
        for k in range(c.n_auto_nets):
            if c.auto_nets[k].has_prefix and (ip_src & c.auto_nets[k].mask) == c.auto_nets[k].network:
                return c.auto_nets[k].port
    return c.auto_nets[0].port if c.n_auto_nets else -1


# ---------------------------------------------------------------------------
# Conntrack NAT (Pipeline._ct_nat)
# ---------------------------------------------------------------------------

cdef inline void set_tuple(Pkt* p, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) noexcept nogil:
    p.ip_src = src
    p.ip_dst = dst
    if p.proto != IPPROTO_ICMP:
        p.sport = sport
        p.dport = dport
    else:
        p.icmp_id = sport   # an ICMP "connection" has its identifier for both ports


cdef inline bint icmp_query(uint8_t icmp_type) noexcept nogil:
    # oracle.packet.ICMP_QUERY_TYPES: echo, timestamp, information, address mask
    return icmp_type == 0 or icmp_type == 8 or (13 <= icmp_type <= 18)


cdef uint16_t ct_unique_sport(const Conntrack* ct, uint32_t zone, uint8_t proto, bint query,
                              uint32_t ts, uint16_t tsp, uint32_t td, uint16_t tdp) noexcept nogil:
    """Conntrack.unique_source: a source port (ICMP: identifier) whose reply key is free in the zone.

    Called when (ts, tsp) -> (td, tdp)'s reply key is taken; returns tsp
    itself when the protocol has no port to change or every port is taken.
    """
    cdef uint32_t low, high, port, k
    if proto == IPPROTO_ICMP:
        if not query:
            return tsp
        low = 1
        high = 0xffff
    elif proto == IPPROTO_TCP or proto == IPPROTO_UDP:
        if tsp >= 1024:
            low = 1024
            high = 0xffff
        else:
            low = 1
            high = 1023
    else:
        return tsp
    port = tsp
    for k in range(high - low + 1):
        port = port + 1 if low <= port < high else low
        if ct_slot(ct, (<uint64_t>td << 32) | ts,
                   ct_k2(zone, proto, port if proto == IPPROTO_ICMP else tdp, <uint16_t>port)).conn < 0:
            return <uint16_t>port
    return tsp


cdef uint64_t ct_nat(Core* c, Pkt* p, int32_t r, int kind, bint has_snat, uint32_t snat,
                     bint has_dnat, uint32_t dnat) noexcept nogil:
    """Pipeline._ct_nat; returns what it did, for the trace (a rules.py "ct" value).

    The value: the outcome (CT_*) in bits 0-7; for a new connection the
    source port it got (16 bits from bit 8), whether that port changed (bit
    24), whether the address is the destination (bit 25) and the address
    (bits 32-63).
    """
    cdef Conntrack* ct = &c.ct
    cdef uint32_t zone = <uint32_t>(r * 3 + kind)
    cdef uint16_t sp, dp, tsp, tdp
    cdef uint32_t s = p.ip_src, d = p.ip_dst, ts, td
    cdef CtSlot* slot
    cdef CtConn* conn
    cdef int32_t ci
    p.ct_trk = 1
    if p.ct_zones & (1 << kind):
        return CT_ALREADY
    if not has_snat and not has_dnat and p.has_inner:
        # _Run._ct_related: an ICMP error RELATED to the connection whose
        # reply tuple is the quoted datagram's reversed, un-NATed as a reply.
        slot = ct_slot(ct, (<uint64_t>p.in_dst << 32) | p.in_src, ct_k2(zone, p.in_proto, p.in_dport, p.in_sport))
        if slot.conn < 0 or not slot.reply:
            p.ct_rpl = 0
            return CT_RELATED_NONE
        conn = &ct.conns[slot.conn]
        if conn.tsrc != conn.osrc:
            p.ip_dst = conn.osrc
        if conn.tdst != conn.odst:
            p.ip_src = conn.odst
        p.in_src = conn.osrc
        p.in_sport = conn.osport
        p.in_dst = conn.odst
        p.in_dport = conn.odport
        p.ct_rpl = 1
        p.ct_zones |= 1 << kind
        return CT_RELATED
    if p.proto == IPPROTO_ICMP:
        sp = dp = p.icmp_id
    else:
        sp = p.sport
        dp = p.dport
    if has_snat or has_dnat:
        if ct_reserve(ct) < 0:
            c.error = 1
            return 0
    slot = ct_slot(ct, (<uint64_t>s << 32) | d, ct_k2(zone, p.proto, sp, dp))
    if slot.conn >= 0:
        conn = &ct.conns[slot.conn]
        p.ct_rpl = slot.reply
        p.ct_zones |= 1 << kind
        if slot.reply:
            set_tuple(p, conn.odst, conn.odport, conn.osrc, conn.osport)
            return CT_REPLY
        set_tuple(p, conn.tsrc, conn.tsport, conn.tdst, conn.tdport)
        return CT_ESTABLISHED
    p.ct_rpl = 0
    if not has_snat and not has_dnat:
        return CT_NO_ENTRY
    ts = snat if has_snat else s
    td = dnat if has_dnat else d
    tsp = sp
    tdp = dp
    if has_snat and not p.later_frag \
            and ct_slot(ct, (<uint64_t>td << 32) | ts, ct_k2(zone, p.proto, tdp, tsp)).conn >= 0:
        # Another connection has this reply tuple: another source port.
        tsp = ct_unique_sport(ct, zone, p.proto, icmp_query(p.icmp_type), ts, tsp, td, tdp)
        if p.proto == IPPROTO_ICMP:
            tdp = tsp
    ci = <int32_t>ct.n_conns
    conn = &ct.conns[ci]
    ct.n_conns += 1
    conn.osrc = s
    conn.odst = d
    conn.osport = sp
    conn.odport = dp
    conn.tsrc = ts
    conn.tdst = td
    conn.tsport = tsp
    conn.tdport = tdp
    # table[original] = (conn, False); table[reverse(translated)] = (conn, True)
    slot.k1 = (<uint64_t>s << 32) | d
    slot.k2 = ct_k2(zone, p.proto, sp, dp)
    slot.conn = ci
    slot.reply = 0
    ct.count += 1
    slot = ct_slot(ct, (<uint64_t>td << 32) | ts, ct_k2(zone, p.proto, tdp, tsp))
    if slot.conn < 0:
        slot.k1 = (<uint64_t>td << 32) | ts
        slot.k2 = ct_k2(zone, p.proto, tdp, tsp)
        ct.count += 1
    slot.conn = ci
    slot.reply = 1
    p.ct_zones |= 1 << kind
    set_tuple(p, ts, tsp, td, tdp)
    return (CT_NEW | (<uint64_t>tsp << 8) | (<uint64_t>(tsp != sp) << 24)
            | (<uint64_t>(not has_snat) << 25) | (<uint64_t>(snat if has_snat else dnat) << 32))


# ---------------------------------------------------------------------------
# Logical switch (_Run.ls_ingress, _flood, ls_egress)
# ---------------------------------------------------------------------------

cdef void ls_ingress(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    cdef const SwPort* inp = &c.ports[p.inport]
    cdef int32_t sw = inp.sw
    cdef int32_t d = p.depth
    cdef uint64_t v, mac
    cdef uint32_t tpa
    cdef bint arp_req
    p.op = OP_DONE
    if d >= MAX_HOPS:
        emit_drop(c, f, R_LS_IN_LOOP_LIMIT, sw, d, 0, 0)
        return
    p.loopback = 0
    p.outport = -1
    if (p.eth_src >> 40) & 1:
        emit_drop(c, f, R_LS_IN_MCAST_SRC, sw, d, 0, 0)
        return
    if p.vlan:
        emit_drop(c, f, R_LS_IN_VLAN, sw, d, 0, 0)
        return
    if not inp.enabled:
        emit_drop(c, f, R_LS_IN_PORT_DISABLED, sw, d, p.inport, 0)
        return
    if inp.psec_count and not in_port_sec_ok(c, inp, p):
        trace(c, f, R_LS_IN_PORT_SEC_CHECKED, sw, d, 0, 0)
        emit_drop(c, f, R_LS_IN_PORT_SEC_DROP, sw, d, p.inport, 0)
        return
    trace(c, f, R_LS_IN_PORT_SEC, sw, d, 0, 0)
    if c.tracing:
        # Pass-through stages OVN's trace shows: FDB learning, pre-LB.
        if inp.fdb:
            trace_record(c, f, R_LS_IN_LOOKUP_FDB, sw, d, p.inport, 0)
            trace_record(c, f, R_LS_IN_PUT_FDB, sw, d, p.inport, 0)
        if (p.eth_dst >> 40) & 1:
            trace_record(c, f, R_LS_IN_PRE_LB_MCAST, sw, d, 0, 0)
        elif inp.pre_lb and p.eth_type == ETH_TYPE_IP4:
            trace_record(c, f, R_LS_IN_PRE_LB_ROUTER, sw, d, p.inport, 0)
        if inp.is_localnet:
            trace_record(c, f, R_LS_IN_ARP_RSP_LOCALNET, sw, d, p.inport, 0)
    arp_req = p.eth_type == ETH_TYPE_ARP and p.arp_op == 1
    if arp_req:
        # ls_in_arp_rsp
        if c.tracing and not inp.is_localnet and map_get(&c.arp_rsp, (<uint64_t>sw << 32) | p.arp_tpa, &v) \
                and <int32_t>(v >> 48) == p.inport:
            trace_record(c, f, R_LS_IN_ARP_RSP_OWNER, sw, d, p.arp_tpa, p.inport)
        if not inp.is_localnet and map_get(&c.arp_rsp, (<uint64_t>sw << 32) | p.arp_tpa, &v) \
                and <int32_t>(v >> 48) != p.inport:
            mac = v & MAC_MASK
            tpa = p.arp_tpa
            p.eth_dst = p.eth_src
            p.eth_src = mac
            p.arp_op = 2
            p.arp_tha = p.arp_sha
            p.arp_sha = mac
            p.arp_tpa = p.arp_spa
            p.arp_spa = tpa
            p.kind = KIND_ARP_REPLY
            p.outport = p.inport
            p.loopback = 1
            p.op = OP_LS_OUT
            trace(c, f, R_LS_IN_ARP_RSP, sw, d, tpa, mac)
            return
        # ls_in_l2_lkup prio 80: clone to the router port, flood to the others
        if map_get(&c.router_arp, (<uint64_t>sw << 32) | p.arp_tpa, &v):
            trace(c, f, R_LS_IN_L2_ARP_ROUTER, sw, d, p.arp_tpa, v)
            p.group = G_FLOOD_L2
            p.op = OP_FLOOD_START
            if <int32_t>v != p.inport:
                if push(c, p) < 0:
                    p.op = OP_DONE
                    return
                p.outport = <int32_t>v
                p.op = OP_LS_OUT
            return
        # prio 75: a router's own ARP requests are not sent to other routers
        if map_get(&c.router_src, (<uint64_t>sw << 48) | p.eth_src, &v):
            trace(c, f, R_LS_IN_L2_ROUTER_SRC, sw, d, 0, p.eth_src)
            p.group = G_FLOOD_L2
            p.op = OP_FLOOD_START
            return
    if (p.eth_dst >> 40) & 1:
        trace(c, f, R_LS_IN_L2_MCAST, sw, d, 0, 0)
        p.group = G_FLOOD
        p.op = OP_FLOOD_START
        return
    if map_get(&c.mac_table, (<uint64_t>sw << 48) | p.eth_dst, &v):
        trace(c, f, R_LS_IN_L2_UNICAST, sw, d, v, p.eth_dst)
        if <int32_t>v == p.inport and not p.loopback:
            emit_drop(c, f, R_LS_IN_L2_SAME_PORT, sw, d, 0, p.eth_dst)
            return
        p.outport = <int32_t>v
        p.op = OP_LS_OUT
        return
    trace(c, f, R_LS_IN_L2_GET_FDB, sw, d, 0, 0)
    if c.switches[sw].group_count[G_UNKNOWN] == 0:
        emit_drop(c, f, R_LS_IN_UNKNOWN_DROP, sw, d, 0, p.eth_dst)
        return
    trace(c, f, R_LS_IN_UNKNOWN, sw, d, 0, 0)
    p.group = G_UNKNOWN
    p.op = OP_FLOOD_START


cdef void flood_start(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    # A multicast group never sends a copy back to the inport.
    cdef int32_t sw = c.ports[p.inport].sw
    cdef int32_t start = c.switches[sw].group_start[p.group]
    cdef int32_t count = c.switches[sw].group_count[p.group]
    cdef int32_t k
    for k in range(count):
        if c.members[start + k] != p.inport:
            p.gidx = 0
            p.op = OP_FLOOD_NEXT
            return
    emit_drop(c, f, R_LS_IN_UNKNOWN_NO_OTHER_PORT if p.group == G_UNKNOWN else R_LS_IN_L2_NO_OTHER_PORT,
              sw, p.depth, p.inport, 0)
    p.op = OP_DONE


cdef void flood_next(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    cdef int32_t sw = c.ports[p.inport].sw
    cdef int32_t start = c.switches[sw].group_start[p.group]
    cdef int32_t count = c.switches[sw].group_count[p.group]
    cdef int32_t k = p.gidx, target
    while c.members[start + k] == p.inport:
        k += 1
    target = c.members[start + k]
    k += 1
    if k < count and c.members[start + k] == p.inport:
        k += 1
    if k < count:
        # The rest of the group is a copy of the frame as it is now, run
        # after everything this copy leads to (depth first, as the recursion).
        p.gidx = k
        if push(c, p) < 0:
            p.op = OP_DONE
            return
    p.outport = target
    p.op = OP_LS_OUT


cdef void ls_egress(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    cdef int32_t out = p.outport
    cdef const SwPort* port = &c.ports[out]
    p.op = OP_DONE
    if c.tracing:
        if (p.eth_dst >> 40) & 1:
            trace_record(c, f, R_LS_OUT_PRE_LB_MCAST, port.sw, p.depth, 0, 0)
        elif port.pre_lb and p.eth_type == ETH_TYPE_IP4:
            trace_record(c, f, R_LS_OUT_PRE_LB_ROUTER, port.sw, p.depth, out, 0)
    if not port.enabled:
        emit_drop(c, f, R_LS_OUT_PORT_DISABLED, port.sw, p.depth, out, 0)
        return
    trace(c, f, R_LS_OUT_CHECK_PORT_SEC_MCAST if (p.eth_dst >> 40) & 1 else R_LS_OUT_CHECK_PORT_SEC,
          port.sw, p.depth, 0, 0)
    # ls_out_check_port_sec: multicast skips it (prio 100 eth.mcast).
    if port.psec_count and not ((p.eth_dst >> 40) & 1) and not out_port_sec_ok(c, port, p):
        emit_drop(c, f, R_LS_OUT_PORT_SEC_DROP, port.sw, p.depth, out, 0)
        return
    trace(c, f, R_LS_OUT_PORT_SEC, port.sw, p.depth, 0, 0)
    if port.peer_lrp >= 0:
        p.inport = port.peer_lrp
        p.depth += 1
        p.op = OP_LR_IN
        return
    emit_output(c, f, p, out)
    trace(c, f, R_LS_OUT_OUTPUT, port.sw, p.depth, out, 0)


# ---------------------------------------------------------------------------
# Logical router (_Run.lr_ingress .. lr_egress)
# ---------------------------------------------------------------------------

cdef void lr_ingress(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    cdef const RtrPort* rp = &c.rports[p.inport]
    cdef int32_t r = rp.router
    cdef const Router* R = &c.routers[r]
    cdef int32_t dp = c.n_switches + r
    cdef int32_t d = p.depth
    cdef bint admitted
    cdef int32_t k
    p.op = OP_DONE
    if d >= MAX_HOPS:
        emit_drop(c, f, R_LR_IN_LOOP_LIMIT, dp, d, 0, 0)
        return
    p.loopback = 0
    p.outport = -1
    p.ct_trk = 0
    p.ct_rpl = 0
    if p.vlan or (p.eth_src >> 40) & 1:
        emit_drop(c, f, R_LR_IN_ADMISSION_VLAN_MCAST, dp, d, 0, 0)
        return
    if not R.enabled or not rp.enabled:
        emit_drop(c, f, R_LR_IN_PORT_DISABLED, dp, d, 0, 0)
        return
    admitted = ((p.eth_dst >> 40) & 1) or p.eth_dst == rp.mac
    if not admitted and rp.gateway:
        for k in range(R.nat_start, R.nat_start + R.nat_count):
            if c.nats[k].distributed and c.nats[k].external_mac == p.eth_dst:
                admitted = True
                break
    if not admitted:
        emit_drop(c, f, R_LR_IN_ADMISSION_DROP, dp, d, p.inport, p.eth_dst)
        return
    p.xreg0 = rp.mac
    trace(c, f, R_LR_IN_ADMISSION, dp, d, p.inport, p.eth_dst)
    if p.eth_type == ETH_TYPE_ARP:
        lr_arp(c, f, p, r, rp)
        return
    if c.tracing:
        trace_record(c, f, R_LR_IN_LOOKUP_NEIGHBOR, dp, d, 0, 0)
        trace_record(c, f, learn_skip(c, r), dp, d, 0, 0)
    if p.eth_type != ETH_TYPE_IP4:
        emit_drop(c, f, R_LR_IN_NOT_IP4, dp, d, 0, 0)
        return
    lr_ip(c, f, p, r, rp)


cdef inline int32_t network_for(const Core* c, const RtrPort* rp, uint32_t ip) noexcept nogil:
    cdef int32_t k
    for k in range(rp.net_start, rp.net_start + rp.net_count):
        if (ip & c.rnets[k].mask) == c.rnets[k].network:
            return k
    return -1


cdef inline int learn_skip(const Core* c, int32_t r) noexcept nogil:
    # lr_in_learn_neighbor's "nothing to learn" flow, as the router's option words it.
    return R_LR_IN_LEARN_SKIP_ALWAYS if c.routers[r].always_learn else R_LR_IN_LEARN_SKIP


cdef void lr_arp_trace(Core* c, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp, bint learn) noexcept nogil:
    """lr_in_lookup_neighbor and lr_in_learn_neighbor for an ARP frame, as OVN's flows show them.

    `learn`: lr_arp's decision to put the binding; OVN's put_arp runs only
    when the binding is not there already with this MAC (reg9[2]).
    """
    cdef int32_t dp = c.n_switches + r
    cdef uint64_t key = (<uint64_t>p.inport << 32) | p.arp_spa, v
    cdef bint exact = map_get(&c.bindings, key, &v) and v == p.arp_sha
    cdef int32_t k, net
    if c.routers[r].always_learn:
        # options:always_learn_from_arp_request=true: one lookup flow per port subnet, no reg9[3].
        if p.arp_op == 2:
            trace_record(c, f, R_LR_IN_LOOKUP_ARP_REPLY_ALWAYS, dp, p.depth, 0, 0)
        elif p.arp_op == 1 and network_for(c, rp, p.arp_spa) >= 0:
            trace_record(c, f, R_LR_IN_LOOKUP_ARP_REQUEST_ALWAYS, dp, p.depth, network_for(c, rp, p.arp_spa),
                         p.inport)
        else:
            trace_record(c, f, R_LR_IN_LOOKUP_NEIGHBOR, dp, p.depth, 0, 0)
    elif p.arp_op == 2:
        trace_record(c, f, R_LR_IN_LOOKUP_ARP_REPLY, dp, p.depth, 0, 0)
    elif p.arp_op == 1 and network_for(c, rp, p.arp_spa) >= 0:
        net = -1
        for k in range(rp.net_start, rp.net_start + rp.net_count):
            if c.rnets[k].ip == p.arp_tpa and (p.arp_spa & c.rnets[k].mask) == c.rnets[k].network:
                net = k
                break
        if net >= 0:
            trace_record(c, f, R_LR_IN_LOOKUP_ARP_FOR_PORT, dp, p.depth, net, p.inport)
        else:
            trace_record(c, f, R_LR_IN_LOOKUP_ARP_REQUEST, dp, p.depth, network_for(c, rp, p.arp_spa), p.inport)
    else:
        trace_record(c, f, R_LR_IN_LOOKUP_NEIGHBOR, dp, p.depth, 0, 0)
    trace_record(c, f, R_LR_IN_LEARN_ARP if learn and not exact else learn_skip(c, r), dp, p.depth, 0, 0)


cdef void lr_arp(Core* c, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
    """_lr_arp: answer for own and NAT IPs, learn, drop the rest."""
    cdef IpInfo* info
    cdef const NatRule* nat
    cdef uint64_t reply_mac = 0
    cdef bint found = False
    cdef uint32_t tpa
    cdef int32_t k
    cdef uint64_t key = (<uint64_t>p.inport << 32) | p.arp_spa, v
    cdef bint learn = False
    cdef int rule = 0
    if p.arp_op == 2:
        learn = True
    elif p.arp_op == 1 and network_for(c, rp, p.arp_spa) >= 0:
        # always_learn_from_arp_request=false: a request creates a binding
        # only for the port's own address (from that address's subnet), else
        # it only refreshes an existing one.
        learn = c.routers[r].always_learn or map_get(&c.bindings, key, &v)
        if not learn:
            for k in range(rp.net_start, rp.net_start + rp.net_count):
                if c.rnets[k].ip == p.arp_tpa and (p.arp_spa & c.rnets[k].mask) == c.rnets[k].network:
                    learn = True
                    break
    if c.tracing:
        lr_arp_trace(c, f, p, r, rp, learn)
    if learn:
        # lr_in_learn_neighbor: put_arp
        if map_put(&c.bindings, key, p.arp_sha) < 0:
            c.error = 1
            return
    if p.arp_op == 1:
        tpa = p.arp_tpa
        info = ip_info(c, r, tpa)
        if info != NULL and info.first_nat >= 0:
            nat = &c.nats[info.first_nat]
            reply_mac = nat.external_mac if (nat.distributed and rp.gateway) else p.xreg0
            rule = R_LR_IN_ARP_NAT_GW if rp.gateway else R_LR_IN_ARP_NAT
            found = True
        else:
            for k in range(rp.net_start, rp.net_start + rp.net_count):
                if c.rnets[k].ip == tpa and (p.arp_spa & c.rnets[k].mask) == c.rnets[k].network:
                    reply_mac = p.xreg0
                    rule = R_LR_IN_ARP_OWN
                    found = True
                    break
        if found:
            trace(c, f, rule, c.n_switches + r, p.depth, tpa, p.inport)
            p.eth_dst = p.eth_src
            p.eth_src = reply_mac
            p.arp_op = 2
            p.arp_tha = p.arp_sha
            p.arp_sha = reply_mac
            p.arp_tpa = p.arp_spa
            p.arp_spa = tpa
            p.kind = KIND_ARP_REPLY
            p.outport = p.inport
            p.loopback = 1
            lr_egress(c, f, p)
            return
    emit_drop(c, f, R_LR_IN_ARP_DROP, c.n_switches + r, p.depth, 0, 0)


cdef inline bint _martian_net(uint32_t a) noexcept nogil:
    # 127.0.0.0/8 or 0.0.0.0/8
    return (a & 0xff000000U) == 0x7f000000U or (a & 0xff000000U) == 0


cdef void lr_ip(Core* c, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
    """_lr_ip: lr_in_ip_input for IPv4."""
    cdef const Router* R = &c.routers[r]
    cdef int32_t dp = c.n_switches + r
    cdef uint32_t src = p.ip_src, dst = p.ip_dst
    cdef bint own_src_ok = False
    cdef IpInfo* dinfo
    cdef uint8_t dflags
    cdef int32_t k
    if rp.gateway:
        for k in range(rp.net_start, rp.net_start + rp.net_count):
            if c.rnets[k].ip == src:
                own_src_ok = True
                break
    if own_src_ok:
        trace(c, f, R_LR_IN_IP_INPUT_OWN_SRC, dp, p.depth, src, p.inport)
    if not own_src_ok and not p.hairpin and ip_flags(c, r, src) & IPF_MARTIAN_SRC:
        emit_drop(c, f, R_LR_IN_MARTIAN_OWN, dp, p.depth, src, 0)
        return
    if (src >> 28) == 0xe or src == 0xffffffffU or _martian_net(src) or _martian_net(dst):
        emit_drop(c, f, R_LR_IN_MARTIAN, dp, p.depth, 0, 0)
        return
    dinfo = ip_info(c, r, dst)
    dflags = dinfo.flags if dinfo != NULL else 0
    if dflags & IPF_OWN and p.proto == IPPROTO_ICMP and p.icmp_type == 8 and p.icmp_code == 0:
        # prio 90: echo reply in place, routed back
        p.ip_src = dst
        p.ip_dst = src
        p.ttl = 255
        p.icmp_type = 0
        p.kind = KIND_ECHO_REPLY
        p.loopback = 1
        trace(c, f, R_LR_IN_ECHO, dp, p.depth, dst, 0)
        lr_after_input(c, f, p, r, rp, ip_info(c, r, p.ip_dst))
        return
    if (dst >> 28) == 0xe:
        emit_drop(c, f, R_LR_IN_MCAST_DROP, dp, p.depth, 0, 0)
        return
    if dflags & IPF_OWN and R.answers_l4 and not p.later_frag:
        lr_l4_reject(c, f, p, r, rp)
        return
    if dflags & IPF_DROP:
        emit_drop(c, f, R_LR_IN_ROUTER_ADDRESS, dp, p.depth, dst, 0)
        return
    if p.eth_dst == BCAST_MAC:
        emit_drop(c, f, R_LR_IN_BCAST, dp, p.depth, 0, 0)
        return
    if p.ttl <= 1:
        if p.later_frag:
            emit_drop(c, f, R_LR_IN_TTL_DROP, dp, p.depth, 0, 0)
            return
        lr_time_exceeded(c, f, p, r, rp)
        return
    lr_after_input(c, f, p, r, rp, dinfo)


cdef inline void _swap_eth(Pkt* p) noexcept nogil:
    cdef uint64_t t = p.eth_src
    p.eth_src = p.eth_dst
    p.eth_dst = t


cdef void lr_l4_reject(Core* c, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
    """_lr_l4_reject: UDP -> port unreachable, TCP -> reset, other -> protocol unreachable."""
    cdef uint32_t t
    if p.proto != IPPROTO_TCP:
        quote_datagram(c, f, p)
        if c.error:
            return
    p.generated = 1
    _swap_eth(p)
    t = p.ip_src
    p.ip_src = p.ip_dst
    p.ip_dst = t
    p.ttl = 255
    if p.proto == IPPROTO_TCP:
        # pinctrl_handle_tcp_reset: RST only; after a segment with ACK,
        # seq = its ack; else seq 0, ack = its seq + its payload length; the
        # ports swapped.
        if p.tcp_flags & 0x10:
            p.tcp_seq = p.tcp_ack
            p.tcp_ack = 0
        else:
            p.tcp_ack = p.tcp_seq + <uint32_t>p.tcp_dlen
            p.tcp_seq = 0
        t = p.sport
        p.sport = p.dport
        p.dport = <uint16_t>t
        p.tcp_flags = 0x04
        p.tcp_dlen = 0
        p.kind = KIND_TCP_RESET
        trace(c, f, R_LR_IN_TCP_RESET, c.n_switches + r, p.depth, p.ip_src, 0)
    else:
        p.icmp_code = 3 if p.proto == IPPROTO_UDP else 2
        p.proto = IPPROTO_ICMP
        p.icmp_type = 3
        p.icmp_id = 0       # bytes 4-7 of an ICMP error are zero
        parse_inner(c.quotes + p.quote_ofs, p.quote_len, p)
        p.kind = KIND_ICMP4
        trace(c, f, R_LR_IN_PORT_UNREACH if p.icmp_code == 3 else R_LR_IN_PROTO_UNREACH,
              c.n_switches + r, p.depth, p.ip_src, 0)
    lr_after_input(c, f, p, r, rp, ip_info(c, r, p.ip_dst))


cdef void lr_time_exceeded(Core* c, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
    """_lr_time_exceeded: ICMP 11/0 back out of the in-port."""
    cdef uint32_t t
    if rp.net_count == 0:
        emit_drop(c, f, R_LR_IN_TTL_DROP, c.n_switches + r, p.depth, 0, 0)
        return
    quote_datagram(c, f, p)
    if c.error:
        return
    p.generated = 1
    _swap_eth(p)
    if rp.gateway:
        t = p.ip_src
        p.ip_src = p.ip_dst
        p.ip_dst = t
    else:
        p.ip_dst = p.ip_src
        p.ip_src = c.rnets[rp.net_start].ip
    p.proto = IPPROTO_ICMP
    p.icmp_type = 11
    p.icmp_code = 0
    p.icmp_id = 0
    parse_inner(c.quotes + p.quote_ofs, p.quote_len, p)
    p.ttl = 254
    p.kind = KIND_ICMP4
    p.outport = p.inport
    p.loopback = 1
    trace(c, f, R_LR_IN_TTL_EXCEEDED, c.n_switches + r, p.depth, p.inport, 0)
    lr_egress(c, f, p)


cdef void lr_after_input(Core* c, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp,
                         IpInfo* info) noexcept nogil:
    """_lr_after_input: lr_in_unsnat .. lr_in_arp_request (`info`: ip_info() of ip4.dst)."""
    cdef const Router* R = &c.routers[r]
    cdef int32_t dp = c.n_switches + r
    cdef int32_t d = p.depth
    cdef int32_t gw = R.gw_port
    cdef bint from_gw = p.inport == gw
    cdef const NatRule* nat
    cdef const Route* route = NULL
    cdef int32_t k, out
    cdef uint32_t dst0
    cdef uint64_t v, done
    # lr_in_unsnat
    if info != NULL and info.unsnat >= 0:
        dst0 = p.ip_dst
        if R.gateway_router:
            done = ct_nat(c, p, r, Z_SNAT, False, 0, False, 0)
            trace(c, f, R_LR_IN_UNSNAT_GR, dp, d, dst0, done)
        elif from_gw:
            if c.nats[info.unsnat].stateless:
                trace(c, f, R_LR_IN_UNSNAT_STATELESS, dp, d, dst0, 0)
            elif not p.loopback:
                done = ct_nat(c, p, r, Z_COMMON, False, 0, False, 0)
                trace(c, f, R_LR_IN_UNSNAT_DGP, dp, d, dst0, done)
            elif p.use_snat_zone:
                done = ct_nat(c, p, r, Z_SNAT, False, 0, False, 0)
                trace(c, f, R_LR_IN_UNSNAT_SNAT_ZONE, dp, d, dst0, done)
        if p.ip_dst != dst0:
            info = ip_info(c, r, p.ip_dst)
    # lr_in_dnat
    if info != NULL and info.dnat >= 0 and (R.gateway_router or from_gw):
        nat = &c.nats[info.dnat]
        if nat.stateless:
            p.ip_dst = nat.logical_net
            trace(c, f, R_LR_IN_DNAT_STATELESS, dp, d, info.dnat, 0)
        elif R.gateway_router:
            p.loopback = 1
            k = info.dnat
            done = ct_nat(c, p, r, Z_DNAT, False, 0, True, nat.logical_net)
            trace(c, f, R_LR_IN_DNAT_GR, dp, d, k, done)
        else:
            k = info.dnat
            done = ct_nat(c, p, r, Z_COMMON, False, 0, True, nat.logical_net)
            trace(c, f, R_LR_IN_DNAT_DGP, dp, d, k, done)
        info = ip_info(c, r, p.ip_dst)
    if c.error:
        return
    trace(c, f, R_LR_IN_ROUTING_PRE, dp, d, 0, 0)
    # lr_in_ip_routing (first match in priority order = LPM)
    for k in range(R.route_start, R.route_start + R.route_count):
        if (p.ip_dst & c.routes[k].mask) == c.routes[k].network:
            route = &c.routes[k]
            break
    if route == NULL:
        emit_drop(c, f, R_LR_IN_NO_ROUTE, dp, d, p.ip_dst, 0)
        return
    p.ttl = <uint8_t>(p.ttl - 1)
    p.reg0 = route.nexthop if route.has_nexthop else p.ip_dst
    p.reg1 = route.src_ip
    p.eth_src = route.src_mac
    out = route.outport
    p.outport = out
    p.loopback = 1
    trace(c, f, R_LR_IN_ROUTE, dp, d, k, p.reg0)
    if c.tracing:
        trace_record(c, f, R_LR_IN_ROUTING_ECMP, dp, d, 0, 0)
        trace_record(c, f, R_LR_IN_POLICY, dp, d, 0, 0)
        trace_record(c, f, R_LR_IN_POLICY_ECMP, dp, d, 0, 0)
    # lr_in_arp_resolve
    if (p.ip_dst >> 28) != 0xe:
        if out == gw and from_gw and info != NULL and info.flags & IPF_NAT:
            emit_drop(c, f, R_LR_IN_NAT_ADDRESS, dp, d, p.ip_dst, 0)
            return
        if map_get(&c.arp_static, (<uint64_t>out << 32) | p.reg0, &v):
            p.eth_dst = v
            trace(c, f, R_LR_IN_ARP_STATIC, dp, d, p.reg0, (<uint64_t>out << 48) | v)
        elif info != NULL and info.flags & IPF_SNAT_OWN:
            emit_drop(c, f, R_LR_IN_ARP_RESOLVE_ROUTER, dp, d, p.ip_dst, 0)
            return
        else:
            if map_get(&c.bindings, (<uint64_t>out << 32) | p.reg0, &v):
                p.eth_dst = v
            else:
                p.eth_dst = 0
            trace(c, f, R_LR_IN_GET_ARP, dp, d, 0, p.eth_dst)
    # lr_in_gw_redirect: a distributed FIP leaves with its own MAC.
    if out == gw and R.has_distributed and map_get(&c.gw_redirect, (<uint64_t>r << 32) | p.ip_src, &v):
        p.eth_src = c.nats[v].external_mac
        p.reg1 = c.nats[v].external_ip
        trace(c, f, R_LR_IN_GW_REDIRECT, dp, d, v, 0)
    elif out == gw:
        trace(c, f, R_LR_IN_GW_REDIRECT_CR, dp, d, 0, 0)
    # lr_in_arp_request: the frame becomes an ARP request for the next hop.
    if p.eth_dst == 0:
        trace(c, f, R_LR_IN_ARP_REQUEST, dp, d, p.reg1, p.reg0)
        _make_arp_request(p, out)
    else:
        trace(c, f, R_LR_IN_ARP_REQUEST_NONE, dp, d, 0, 0)
    lr_egress(c, f, p)


cdef void _make_arp_request(Pkt* p, int32_t out) noexcept nogil:
    # A fresh Packet(): every field zero but those the arp action sets.
    cdef uint64_t mac = p.eth_src
    cdef uint32_t spa = p.reg1, tpa = p.reg0
    cdef int32_t inport = p.inport, depth = p.depth
    memset(p, 0, sizeof(Pkt))
    p.eth_type = ETH_TYPE_ARP
    p.eth_src = mac
    p.eth_dst = BCAST_MAC
    p.arp_op = 1
    p.arp_sha = mac
    p.arp_spa = spa
    p.arp_tha = 0
    p.arp_tpa = tpa
    p.kind = KIND_ARP
    p.inport = inport
    p.outport = out
    p.loopback = 1
    p.generated = 1
    p.depth = depth


cdef void lr_egress(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    """lr_egress: lr_out_undnat, lr_out_snat, lr_out_egr_loop, lr_out_delivery."""
    cdef int32_t out = p.outport
    cdef const RtrPort* op = &c.rports[out]
    cdef int32_t r = op.router
    cdef const Router* R = &c.routers[r]
    cdef int32_t gw = R.gw_port
    cdef int32_t dp = c.n_switches + r
    cdef IpInfo* info
    cdef const NatRule* fip
    cdef uint64_t v, t, done
    p.op = OP_DONE
    if p.eth_type == ETH_TYPE_IP4:
        # lr_out_chk_dnat_local
        if gw >= 0:
            info = ip_info(c, r, p.ip_dst)
            p.dnat_local = info != NULL and info.dnat >= 0
        else:
            p.dnat_local = 0
        if p.dnat_local:
            trace(c, f, R_LR_OUT_CHK_DNAT_LOCAL_NAT, dp, p.depth, p.ip_dst, 0)
        else:
            trace(c, f, R_LR_OUT_CHK_DNAT_LOCAL, dp, p.depth, 0, 0)
        # lr_out_undnat
        if R.gateway_router:
            p.loopback = 1
            done = ct_nat(c, p, r, Z_DNAT, False, 0, False, 0)
            trace(c, f, R_LR_OUT_UNDNAT_GR, dp, p.depth, p.ip_src, done)
        elif out == gw and map_get(&c.undnat_fip, (<uint64_t>r << 32) | p.ip_src, &v):
            fip = &c.nats[v]
            if not fip.stateless:
                if fip.distributed:
                    p.eth_src = fip.external_mac
                done = ct_nat(c, p, r, Z_COMMON, False, 0, False, 0)
                trace(c, f, R_LR_OUT_UNDNAT_DGP, dp, p.depth, p.ip_src, done)
            else:
                trace(c, f, R_LR_OUT_UNDNAT_STATELESS, dp, p.depth, p.ip_src, 0)
        # lr_out_snat
        if R.gateway_router or out == gw:
            lr_snat(c, f, p, r, R)
        if c.error:
            return
        # lr_out_egr_loop: a DGP sends traffic for its own NAT addresses back into its ingress.
        if out == gw and ip_flags(c, r, p.ip_dst) & IPF_NAT:
            trace(c, f, R_LR_OUT_EGR_LOOP, dp, p.depth, p.ip_dst, 0)
            p.ct_zones = 0
            p.inport = out
            p.outport = -1
            _swap_eth(p)
            p.use_snat_zone = p.dnat_local
            p.hairpin = 1
            p.op = OP_REENTER
            return
    else:
        trace(c, f, R_LR_OUT_CHK_DNAT_LOCAL, dp, p.depth, 0, 0)
    # lr_out_delivery
    trace(c, f, R_LR_OUT_DELIVERY, dp, p.depth, out, 0)
    if op.peer_lsp < 0:
        emit_drop(c, f, R_LR_OUT_NOT_ATTACHED, dp, p.depth, out, 0)
        return
    p.inport = op.peer_lsp
    p.hairpin = 0
    p.use_snat_zone = 0
    p.ct_zones = 0
    p.depth += 1
    p.op = OP_LS_IN


cdef void lr_reenter(Core* c, const FrameCtx* f, Pkt* p) noexcept nogil:
    """_reenter: the hairpinned copy runs the router's ingress again."""
    cdef const RtrPort* rp = &c.rports[p.inport]
    p.op = OP_DONE
    if p.depth + 1 >= MAX_HOPS:
        emit_drop(c, f, R_LR_OUT_LOOP_LIMIT, c.n_switches + rp.router, p.depth, 0, 0)
        return
    p.xreg0 = rp.mac
    p.loopback = 1
    p.depth += 1
    trace(c, f, R_LR_IN_REENTER, c.n_switches + rp.router, p.depth, p.inport, 0)
    if c.tracing:
        trace_record(c, f, R_LR_IN_LOOKUP_NEIGHBOR, c.n_switches + rp.router, p.depth, 0, 0)
        trace_record(c, f, learn_skip(c, rp.router), c.n_switches + rp.router, p.depth, 0, 0)
    lr_ip(c, f, p, rp.router, rp)


cdef void lr_snat(Core* c, const FrameCtx* f, Pkt* p, int32_t r, const Router* R) noexcept nogil:
    """_lr_snat: the first lr_out_snat entry whose logical_ip holds ip4.src."""
    cdef int32_t k
    cdef const NatRule* n
    cdef int32_t dp = c.n_switches + r
    cdef uint64_t done
    for k in range(R.snat_start, R.snat_start + R.snat_count):
        n = &c.nats[c.snat_order[k]]
        if (p.ip_src & n.logical_mask) != n.logical_net:
            continue
        if n.stateless:
            p.ip_src = n.external_ip
            trace(c, f, R_LR_OUT_SNAT_STATELESS, dp, p.depth, k, 0)
            return
        if R.gateway_router:
            if p.ct_trk and p.ct_rpl:
                return          # (!ct.trk || !ct.rpl): replies are not SNATed again
            done = ct_nat(c, p, r, Z_SNAT, True, n.external_ip, False, 0)
            trace(c, f, R_LR_OUT_SNAT_GR_GW if R.gw_port >= 0 else R_LR_OUT_SNAT_GR, dp, p.depth, k, done)
        else:
            if n.distributed:
                p.eth_src = n.external_mac
            if p.dnat_local:
                done = ct_nat(c, p, r, Z_SNAT, True, n.external_ip, False, 0)
                trace(c, f, R_LR_OUT_SNAT_DNAT_LOCAL, dp, p.depth, k, done)
            else:
                done = ct_nat(c, p, r, Z_COMMON, True, n.external_ip, False, 0)
                trace(c, f, R_LR_OUT_SNAT_CZONE, dp, p.depth, k, done)
        return


# ---------------------------------------------------------------------------
# One frame: parse (parse_frame's decisions), choose the ingress, run the work loop
# ---------------------------------------------------------------------------

cdef int classify(const unsigned char* raw, int32_t n, Pkt* p, FrameCtx* f) noexcept nogil:
    """Parse a frame into `p`: -1, or why it cannot enter (a PP_* problem code).

    parse_headers() is stricter or different in a few places, mapped here:
    a stacked tag parses (and is dropped as VLAN-tagged by the switch, as
    an 802.1Q or 802.1ad outer tag is); an ARP that is not Ethernet/IPv4
    parses as an opaque ARP (every field 0, nothing written back); a TCP
    data offset is not checked (20 bytes of TCP header are enough);
    fragments parse.
    """
    cdef Headers h
    cdef int st
    cdef const unsigned char* q
    if n < ETH_HLEN:
        return PP_RUNT
    p.eth_dst = rd48(raw)
    p.eth_src = rd48(raw + 6)
    f.l3 = ETH_HLEN
    f.l4 = -1
    st = parse_headers(raw, n, &h)
    if st == PARSE_TRUNCATED_ETH:
        return PP_TRUNCATED_VLAN
    if st == PARSE_TRUNCATED_ARP:
        return PP_TRUNCATED_ARP
    if st == PARSE_IPV6_UNSUPPORTED:
        return PP_IPV6
    if st == PARSE_TRUNCATED_IP:
        if n - h.l3_ofs < IP4_MIN_HLEN:
            return PP_TRUNCATED_IP4
        if n - h.l3_ofs < (raw[h.l3_ofs] & 0x0f) * 4:
            return PP_BAD_IP4_HEADER
        return PP_BAD_IP4_LENGTH
    if st == PARSE_BAD_IP_VERSION or st == PARSE_BAD_IHL:
        return PP_BAD_IP4_HEADER
    if st == PARSE_BAD_IP_TOTAL_LENGTH:
        return PP_BAD_IP4_LENGTH
    p.vlan = h.vlan_present
    p.eth_type = h.eth_type
    f.l3 = h.l3_ofs
    if st == PARSE_BAD_ARP_FORMAT:
        # Not Ethernet/IPv4: OVS extracts no ARP field, every arp.* reads 0
        # (already, from the memset) and none is written back.
        p.arp_opaque = 1
        return -1
    if h.layers & LAYER_ARP:
        p.arp_op = h.arp_op
        p.arp_sha = h.arp_sha
        p.arp_spa = h.arp_spa
        p.arp_tha = h.arp_tha
        p.arp_tpa = h.arp_tpa
        return -1
    if not (h.layers & LAYER_IP4):
        return -1           # OK or STACKED_VLAN: an L2 frame
    p.ip_src = h.ip4_src
    p.ip_dst = h.ip4_dst
    p.ttl = h.ip_ttl
    p.tos = h.ip_tos
    p.proto = h.ip_proto
    p.later_frag = (h.ip_frag & IP_FRAG_LATER) != 0
    f.l4 = h.l4_ofs
    if st == PARSE_TRUNCATED_L4 or st == PARSE_BAD_TCP_OFFSET:
        if h.ip_proto != IPPROTO_TCP or h.end_ofs - h.l4_ofs < TCP_MIN_HLEN:
            if h.ip_proto == IPPROTO_TCP:
                return PP_TRUNCATED_TCP
            return PP_TRUNCATED_UDP if h.ip_proto == IPPROTO_UDP else PP_TRUNCATED_ICMP
        _tcp_fields(raw, &h, p)
        return -1
    if h.layers & LAYER_ICMP4:
        p.icmp_type = h.icmp_type
        p.icmp_code = h.icmp_code
        p.icmp_id = h.icmp_id
        if icmp_error(h.icmp_type):
            parse_inner(raw + h.l4_ofs + ICMP4_HLEN, h.end_ofs - h.l4_ofs - ICMP4_HLEN, p)
    elif h.layers & LAYER_TCP:
        _tcp_fields(raw, &h, p)
    elif h.layers & LAYER_UDP:
        p.sport = h.tp_src
        p.dport = h.tp_dst
    return -1


cdef inline void _tcp_fields(const unsigned char* raw, const Headers* h, Pkt* p) noexcept nogil:
    # What the pipeline reads of a TCP header (20 bytes are there).
    cdef const unsigned char* q = raw + h.l4_ofs
    p.sport = rd16(q)
    p.dport = rd16(q + 2)
    p.tcp_seq = rd32(q + 4)
    p.tcp_ack = rd32(q + 8)
    p.tcp_flags = q[13]
    p.tcp_dlen = (h.end_ofs - h.l4_ofs) - (q[12] >> 4) * 4


cdef void run_frame(Core* c, const unsigned char* raw, int32_t n, int64_t inport,
                    int32_t index) noexcept nogil:
    """oracle PythonEngine._one for one frame."""
    cdef FrameCtx f
    cdef Pkt p
    cdef int problem
    cdef int32_t port
    cdef uint8_t op
    f.raw = raw
    f.n = n
    f.index = index
    c.quotes_len = 0
    memset(&p, 0, sizeof(Pkt))
    problem = classify(raw, n, &p, &f)
    if problem >= 0:
        if inport >= 0:
            port = <int32_t>inport
        else:
            port = auto_ingress(c, rd48(raw + 6) if n >= 12 else 0, False, 0)
        c.ingress[index] = port
        emit_drop(c, &f, R_PARSE_UNSUPPORTED if problem == PP_IPV6 else R_PARSE_MALFORMED,
                  c.ports[port].sw if port >= 0 else 0, 0, problem, <uint64_t>n)
        return
    if inport == AUTO_INGRESS:
        if p.eth_type == ETH_TYPE_ARP:
            port = auto_ingress(c, p.eth_src, True, p.arp_spa)
        elif p.eth_type == ETH_TYPE_IP4:
            port = auto_ingress(c, p.eth_src, True, p.ip_src)
        else:
            port = auto_ingress(c, p.eth_src, False, 0)
    else:
        port = <int32_t>inport
    c.ingress[index] = port
    if port < 0:
        emit_drop(c, &f, R_NO_INGRESS, 0, 0, 0, 0)
        return
    p.inport = port
    p.outport = -1
    p.op = OP_LS_IN
    c.stack_len = 0
    while not c.error:
        op = p.op
        if op == OP_LS_IN:
            ls_ingress(c, &f, &p)
        elif op == OP_LS_OUT:
            ls_egress(c, &f, &p)
        elif op == OP_LR_IN:
            lr_ingress(c, &f, &p)
        elif op == OP_FLOOD_NEXT:
            flood_next(c, &f, &p)
        elif op == OP_FLOOD_START:
            flood_start(c, &f, &p)
        elif op == OP_REENTER:
            lr_reenter(c, &f, &p)
        elif c.stack_len:
            c.stack_len -= 1
            p = c.stack[c.stack_len]
        else:
            break


# ---------------------------------------------------------------------------
# Python edge
# ---------------------------------------------------------------------------

cdef int _check_contract() except -1:
    # The result arrays are copied into array.array objects byte for byte.
    for code, size in (("i", 4), ("b", 1), ("h", 2), ("q", 8), ("Q", 8)):
        if _array(code).itemsize != size:
            raise ImportError(f"ovnsim.datapath._fastpath: array('{code}') is not {size} bytes")
    return 0


cdef void* _c_array(Py_ssize_t n, size_t size) except NULL:
    cdef void* p = calloc(n if n > 0 else 1, size)
    if p == NULL:
        raise MemoryError()
    return p


cdef object _int64_view(obj, Py_ssize_t n, str what):
    """``obj`` as a C-contiguous int64 buffer of at least n items (copied only when it must be)."""
    cdef const int64_t[::1] view
    try:
        view = obj
    except Exception:
        try:
            mv = memoryview(obj)
        except TypeError:
            view = _array("q", obj)
        else:
            view = _array("q", mv.tolist() if mv.ndim == 1 else list(obj))
    if view.shape[0] < n:
        raise EngineError(f"{what} has {view.shape[0]} items, offsets has {n}")
    return view


def frame_fields(const unsigned char[::1] frame not None):
    """The header fields of a frame as OVN names them, or None when it cannot enter the pipeline.

    ``eth.src``/``eth.dst``; for ARP ``arp.op``, ``arp.sha``, ``arp.spa``,
    ``arp.tha``, ``arp.tpa`` (all zero for an ARP that is not
    Ethernet/IPv4); for IPv4 ``ip4.src``, ``ip4.dst``, ``ip.ttl`` and the
    ICMP type and code or the TCP/UDP ports (zero in a later fragment).
    The frame is parsed as the engine parses the frames it runs.
    """
    cdef Pkt p
    cdef FrameCtx f
    memset(&p, 0, sizeof(Pkt))
    if classify(&frame[0] if frame.shape[0] else NULL, <int32_t>frame.shape[0], &p, &f) >= 0:
        return None
    d = {"eth.src": _mac(p.eth_src), "eth.dst": _mac(p.eth_dst)}
    if p.eth_type == ETH_TYPE_ARP:
        d["arp.op"] = p.arp_op
        d["arp.sha"] = _mac(p.arp_sha)
        d["arp.spa"] = _ip4(p.arp_spa)
        d["arp.tha"] = _mac(p.arp_tha)
        d["arp.tpa"] = _ip4(p.arp_tpa)
    elif p.eth_type == ETH_TYPE_IP4:
        d["ip4.src"] = _ip4(p.ip_src)
        d["ip4.dst"] = _ip4(p.ip_dst)
        d["ip.ttl"] = p.ttl
        if p.proto == IPPROTO_ICMP:
            d["icmp4.type"] = p.icmp_type
            d["icmp4.code"] = p.icmp_code
        elif p.proto == IPPROTO_TCP:
            d["tcp.src"] = p.sport
            d["tcp.dst"] = p.dport
        elif p.proto == IPPROTO_UDP:
            d["udp.src"] = p.sport
            d["udp.dst"] = p.dport
    return d


cdef class FastEngine:
    """The Cython engine: the reference pipeline's behaviour over C tables, nogil.

    ``FastEngine(logical)`` compiles ``ovnsim.northd.tables.build_tables(logical)``
    into arrays of C structs and hash tables; :meth:`process_batch` fills a
    :class:`ovnsim.datapath.engine.BatchResult` exactly as
    the oracle engine (``tests/oracle/engine.py``) does (same outputs, bytes, drops,
    ingress ports and conntrack state).  Conntrack and learned MAC bindings
    persist across batches until :meth:`reset`.
    """

    name = "fast"

    def __cinit__(self, *args, **kwargs):
        memset(&self.core, 0, sizeof(Core))
        self.busy = False

    def __dealloc__(self):
        cdef Core* c = &self.core
        free(c.ports); free(c.switches); free(c.members); free(c.psec); free(c.pfx)
        free(c.rports); free(c.rnets); free(c.routers); free(c.routes); free(c.nats)
        free(c.snat_order); free(c.ipinfo); free(c.auto_nets)
        free(c.static_keys); free(c.static_vals)
        free(c.mac_table.slots); free(c.arp_rsp.slots); free(c.router_arp.slots)
        free(c.router_src.slots); free(c.ip_map.slots); free(c.arp_static.slots)
        free(c.bindings.slots); free(c.gw_redirect.slots); free(c.undnat_fip.slots)
        free(c.auto_mac.slots); free(c.auto_ip.slots)
        free(c.ct.slots); free(c.ct.conns)
        free(c.stack); free(c.scratch); free(c.quotes); free(c.ingress)
        free(c.out_frame); free(c.out_port); free(c.out_kind); free(c.out_start); free(c.out_len)
        free(c.out_data)
        free(c.drop_frame); free(c.drop_reason); free(c.drop_stage); free(c.drop_dp)
        free(c.trace)

    def __init__(self, logical, tables=None):
        from ovnsim.datapath.engine import IngressTable
        from ovnsim.northd.tables import build_tables, ip_to_int, mac_to_int

        tables = tables if tables is not None else build_tables(logical)
        self.logical = logical
        self.tables = tables
        self.port_names = list(tables.switch_of_port)
        self.port_index = {name: i for i, name in enumerate(self.port_names)}
        self.datapath_names = list(tables.switches) + list(tables.routers)
        self.datapath_index = {name: i for i, name in enumerate(self.datapath_names)}
        self.ingress = IngressTable(logical, self.port_index)
        self._build(tables, ip_to_int, mac_to_int)

    cdef _build(self, tables, ip_to_int, mac_to_int):
        cdef Core* c = &self.core
        cdef Router* R
        cdef Py_ssize_t i, k
        cdef dict port_index = self.port_index
        switches = list(tables.switches.values())
        routers = list(tables.routers.values())
        nsw, nr, nports = len(switches), len(routers), len(self.port_names)
        # Keys pack a switch into 16 bits and owner ports into 16 bits of a value.
        if nsw >= 0xffff or nports >= 0xffff or nr >= 0x7fffffff:
            raise EngineError("topology too large for the fast engine (65534 switches/ports at most)")
        c.n_ports, c.n_switches, c.n_routers = nports, nsw, nr

        lrp_index = {}
        for lr in routers:
            for name in lr.ports:
                lrp_index[name] = len(lrp_index)
        c.n_rports = len(lrp_index)
        self.router_port_names = list(lrp_index)

        # -- switches and their ports
        c.ports = <SwPort*>_c_array(nports, sizeof(SwPort))
        c.switches = <Switch*>_c_array(nsw, sizeof(Switch))
        members, psec, pfx = [], [], []
        mac_table, arp_rsp, router_arp, router_src = {}, {}, {}, {}
        for s, ls in enumerate(switches):
            for name, sp in ls.ports.items():
                i = port_index[name]
                c.ports[i].sw = s
                c.ports[i].enabled = bool(sp.enabled)
                c.ports[i].is_localnet = bool(sp.is_localnet)
                c.ports[i].fdb = bool(sp.unknown and sp.type == "")
                c.ports[i].pre_lb = bool(sp.is_router or sp.is_localnet)
                c.ports[i].peer_lrp = -1
                if sp.is_router and sp.peer:
                    if sp.peer not in lrp_index:
                        raise EngineError(f"switch port {name!r} names router port {sp.peer!r}, which no router has")
                    c.ports[i].peer_lrp = lrp_index[sp.peer]
                c.ports[i].psec_start = len(psec)
                c.ports[i].psec_count = len(sp.port_security)
                for entry in sp.port_security:
                    psec.append((entry.mac, len(pfx), len(entry.prefixes)))
                    pfx.extend(entry.prefixes)
            for g, group in enumerate((ls.flood, ls.flood_l2, ls.unknown)):
                c.switches[s].group_start[g] = len(members)
                c.switches[s].group_count[g] = len(group)
                members.extend(port_index[name] for name in group)
            for mac, name in ls.mac_table.items():
                mac_table[(s << 48) | mac] = port_index[name]
            for ip, (mac, owner) in ls.arp_responder.items():
                arp_rsp[(s << 32) | ip] = (port_index[owner] << 48) | mac
            for ip, name in ls.router_arp.items():
                router_arp[(s << 32) | ip] = port_index[name]
            for mac in ls.router_arp_sources:
                router_src[(s << 48) | mac] = 1
        c.members = <int32_t*>_c_array(len(members), sizeof(int32_t))
        for k, v in enumerate(members):
            c.members[k] = v
        c.psec = <PortSec*>_c_array(len(psec), sizeof(PortSec))
        for k, (mac, start, count) in enumerate(psec):
            c.psec[k].mac, c.psec[k].pfx_start, c.psec[k].pfx_count = mac, start, count
        c.pfx = <Prefix4*>_c_array(len(pfx), sizeof(Prefix4))
        for k, prefix in enumerate(pfx):
            c.pfx[k].network, c.pfx[k].mask = prefix.network, prefix.mask
            c.pfx[k].bcast, c.pfx[k].plen = prefix.broadcast, prefix.plen
        self._map(&c.mac_table, mac_table)
        self._map(&c.arp_rsp, arp_rsp)
        self._map(&c.router_arp, router_arp)
        self._map(&c.router_src, router_src)

        # -- routers
        c.routers = <Router*>_c_array(nr, sizeof(Router))
        c.rports = <RtrPort*>_c_array(len(lrp_index), sizeof(RtrPort))
        rnets, routes, nats, snat_order, ipinfo = [], [], [], [], []
        ip_map, arp_static, bindings, gw_redirect, undnat_fip = {}, {}, {}, {}, {}
        for r, lr in enumerate(routers):
            R = &c.routers[r]
            R.gw_port = lrp_index[lr.gateway_port] if lr.gateway_port is not None else -1
            R.gateway_router = bool(lr.gateway_router)
            R.enabled = bool(lr.enabled)
            R.answers_l4 = bool(lr.answers_l4)
            R.has_distributed = any(n.distributed for n in lr.nat)
            R.always_learn = bool(lr.always_learn_from_arp_request)
            R.port_start = lrp_index[next(iter(lr.ports))] if lr.ports else 0
            R.port_count = len(lr.ports)
            for name, rp in lr.ports.items():
                i = lrp_index[name]
                c.rports[i].mac = rp.mac
                c.rports[i].router = r
                c.rports[i].peer_lsp = port_index[rp.peer] if rp.peer is not None else -1
                c.rports[i].gateway = bool(rp.gateway)
                c.rports[i].enabled = bool(rp.enabled)
                c.rports[i].net_start = len(rnets)
                c.rports[i].net_count = len(rp.networks)
                rnets.extend(rp.networks)
            R.route_start, R.route_count = len(routes), len(lr.routes)
            routes.extend(lr.routes)
            nat_of = {}
            R.nat_start, R.nat_count = len(nats), len(lr.nat)
            for n in lr.nat:
                nat_of[id(n)] = len(nats)
                nats.append(n)
            R.snat_start, R.snat_count = len(snat_order), len(lr.snat)
            snat_order.extend(nat_of[id(n)] for _prio, n in lr.snat)

            info = {}   # ip -> [first_nat, dnat, unsnat, flags]
            for rp in lr.ports.values():
                for ip, prefix in rp.networks:
                    info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_OWN | IPF_MARTIAN_SRC
                    info.setdefault(prefix.broadcast, [-1, -1, -1, 0])[3] |= IPF_MARTIAN_SRC
            for ip in lr.drop_ips:
                info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_DROP
            for ip in lr.snat_own_ips:
                info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_SNAT_OWN
            for ip in lr.nat_ips:
                info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_NAT
            for n in lr.nat:
                entry = info.setdefault(n.external_ip, [-1, -1, -1, 0])
                if entry[0] < 0:
                    entry[0] = nat_of[id(n)]
            for ip, n in lr.dnat.items():
                info.setdefault(ip, [-1, -1, -1, 0])[1] = nat_of[id(n)]
            for ip, n in lr.unsnat_ips.items():
                info.setdefault(ip, [-1, -1, -1, 0])[2] = nat_of[id(n)]
            for ip, entry in info.items():
                ip_map[(r << 32) | ip] = len(ipinfo)
                ipinfo.append(entry)
            for (name, ip), mac in lr.arp_static.items():
                arp_static[(lrp_index[name] << 32) | ip] = mac
            for (name, ip), mac in lr.mac_bindings.items():
                bindings[(lrp_index[name] << 32) | ip] = mac
            for n in lr.nat:
                if n.distributed and n.logical.plen == 32:
                    gw_redirect.setdefault((r << 32) | n.logical.network, nat_of[id(n)])
            for n in lr.dnat.values():
                undnat_fip.setdefault((r << 32) | n.logical.network, nat_of[id(n)])

        # The rows trace records point at (by index), for the renderer.
        self.nat_rows = nats
        self.route_rows = routes
        self.snat_rows = [(prio, n) for lr in routers for prio, n in lr.snat]
        c.rnets = <RtrNet*>_c_array(len(rnets), sizeof(RtrNet))
        for k, (ip, prefix) in enumerate(rnets):
            c.rnets[k].ip, c.rnets[k].network = ip, prefix.network
            c.rnets[k].mask, c.rnets[k].bcast = prefix.mask, prefix.broadcast
        c.routes = <Route*>_c_array(len(routes), sizeof(Route))
        for k, route in enumerate(routes):
            c.routes[k].network, c.routes[k].mask = route.prefix.network, route.prefix.mask
            c.routes[k].has_nexthop = route.nexthop is not None
            c.routes[k].nexthop = route.nexthop if route.nexthop is not None else 0
            c.routes[k].src_ip, c.routes[k].src_mac = route.src_ip, route.src_mac
            c.routes[k].outport = lrp_index[route.outport]
        c.nats = <NatRule*>_c_array(len(nats), sizeof(NatRule))
        for k, n in enumerate(nats):
            c.nats[k].external_ip = n.external_ip
            c.nats[k].external_mac = n.external_mac if n.external_mac is not None else 0
            c.nats[k].logical_net, c.nats[k].logical_mask = n.logical.network, n.logical.mask
            c.nats[k].plen = n.logical.plen
            c.nats[k].stateless, c.nats[k].distributed = bool(n.stateless), bool(n.distributed)
        c.snat_order = <int32_t*>_c_array(len(snat_order), sizeof(int32_t))
        for k, v in enumerate(snat_order):
            c.snat_order[k] = v
        c.ipinfo = <IpInfo*>_c_array(len(ipinfo), sizeof(IpInfo))
        for k, (first_nat, dnat, unsnat, flags) in enumerate(ipinfo):
            c.ipinfo[k].first_nat, c.ipinfo[k].dnat = first_nat, dnat
            c.ipinfo[k].unsnat, c.ipinfo[k].flags = unsnat, flags
        self._map(&c.ip_map, ip_map)
        self._map(&c.arp_static, arp_static)
        self._map(&c.bindings, bindings)
        self._map(&c.gw_redirect, gw_redirect)
        self._map(&c.undnat_fip, undnat_fip)

        # Static MAC bindings as oracle PythonEngine.reset() restores them.
        statics = []
        for binding in self.logical.static_mac_bindings:
            statics.append(((lrp_index[binding.logical_port] << 32) | ip_to_int(binding.ip),
                            mac_to_int(binding.mac)))
        c.n_static = len(statics)
        c.static_keys = <uint64_t*>_c_array(len(statics), sizeof(uint64_t))
        c.static_vals = <uint64_t*>_c_array(len(statics), sizeof(uint64_t))
        for k, (key, mac) in enumerate(statics):
            c.static_keys[k], c.static_vals[k] = key, mac

        # --auto ingress: IngressTable's own dicts and list, copied.
        table = self.ingress
        self._map(&c.auto_mac, table.by_mac)
        self._map(&c.auto_ip, table.by_ip)
        c.n_auto_nets = len(table.localnets)
        c.auto_nets = <AutoNet*>_c_array(len(table.localnets), sizeof(AutoNet))
        for k, (prefix, port) in enumerate(table.localnets):
            c.auto_nets[k].port = port
            c.auto_nets[k].has_prefix = prefix is not None
            if prefix is not None:
                c.auto_nets[k].network, c.auto_nets[k].mask = prefix.network, prefix.mask

        if ct_alloc(&c.ct, 0) < 0:
            raise MemoryError()
        c.scratch_cap = 4096
        c.scratch = <unsigned char*>_c_array(c.scratch_cap, 1)

    cdef _map(self, U64Map* m, dict items):
        if map_alloc(m, len(items)) < 0:
            raise MemoryError()
        for key, val in items.items():
            if map_put(m, key, val) < 0:
                raise MemoryError()

    def choose_ingress(self, const unsigned char[::1] frame not None):
        """The port index ``--auto`` gives ``frame`` (-1: none), as :meth:`process_batch` chooses it."""
        cdef Pkt p
        cdef FrameCtx f
        cdef int32_t n = <int32_t>frame.shape[0]
        cdef const unsigned char* raw = &frame[0] if n else NULL
        memset(&p, 0, sizeof(Pkt))
        if classify(raw, n, &p, &f) >= 0:
            return auto_ingress(&self.core, rd48(raw + 6) if n >= 12 else 0, False, 0)
        if p.eth_type == ETH_TYPE_ARP:
            return auto_ingress(&self.core, p.eth_src, True, p.arp_spa)
        if p.eth_type == ETH_TYPE_IP4:
            return auto_ingress(&self.core, p.eth_src, True, p.ip_src)
        return auto_ingress(&self.core, p.eth_src, False, 0)

    @property
    def conntrack_size(self):
        """Connections in the tracker (as ``len(oracle PythonEngine.conntrack)``)."""
        return self.core.ct.count // 2

    def reset(self):
        """Forget connections and learned MAC bindings (static bindings stay)."""
        cdef Core* c = &self.core
        cdef int32_t k
        if self.busy:
            raise RuntimeError("FastEngine.reset() while a batch is running")
        ct_clear(&c.ct)
        map_clear(&c.bindings)
        for k in range(c.n_static):
            if map_put(&c.bindings, c.static_keys[k], c.static_vals[k]) < 0:
                raise MemoryError()

    def process_batch(self, data, offsets, lengths, inports, result=None, *, trace=False):
        """Run ``len(offsets)`` frames (``data[offsets[i]:offsets[i] + lengths[i]]``) through the pipeline.

        With ``trace=True`` the result also gets the trace records (one per
        step, ``BatchResult.trace_*``; :mod:`ovnsim.datapath.trace` renders
        them); without, the loop only tests a flag.

        ``data`` is any byte buffer (read in place); ``offsets``, ``lengths``
        and ``inports`` are sequences of ints or int buffers (``array('q')``
        is taken without a copy).  ``inports[i]`` is an index into
        :attr:`port_names`, or ``-1`` (``AUTO_INGRESS``) to choose the port
        as ``--auto`` does.  Appends to ``result`` (a new
        :class:`~ovnsim.datapath.engine.BatchResult` if None) and returns it.
        """
        from ovnsim.datapath.engine import BatchResult

        cdef Core* c = &self.core
        cdef const unsigned char[::1] buf
        cdef const int64_t[::1] offs
        cdef const int64_t[::1] lens
        cdef const int64_t[::1] ins
        cdef Py_ssize_t n, i, size
        cdef int64_t start, stop, maxlen = MAX_GENERATED
        cdef int64_t* starts
        cdef int32_t* sizes
        cdef const unsigned char* base
        cdef int64_t data_base
        cdef int64_t port

        if result is None:
            result = BatchResult()
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1 or not mv.c_contiguous:
            mv = mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes())
        elif mv.format not in ("B", "b", "c"):
            mv = mv.cast("B")
        if mv.format != "B":
            mv = mv.cast("B")
        buf = mv
        n = len(offsets)
        offs = _int64_view(offsets, n, "offsets")
        lens = _int64_view(lengths, n, "lengths")
        ins = _int64_view(inports, n, "inports")
        size = buf.shape[0]
        base = &buf[0] if size else <const unsigned char*>b""
        for i in range(n):
            port = ins[i]
            if port >= c.n_ports:
                raise IndexError(f"inports[{i}] = {port}: the engine has {c.n_ports} ports")
        if self.busy:
            raise RuntimeError("FastEngine.process_batch() is already running on this engine")
        self.busy = True
        starts = NULL
        sizes = NULL
        try:
            # Frame slices with Python's slice semantics, as oracle PythonEngine takes them.
            starts = <int64_t*>_c_array(n, sizeof(int64_t))
            sizes = <int32_t*>_c_array(n, sizeof(int32_t))
            for i in range(n):
                start = offs[i]
                stop = start + lens[i]
                if start < 0:
                    start = start + size if start + size > 0 else 0
                elif start > size:
                    start = size
                if stop < 0:
                    stop = stop + size if stop + size > 0 else 0
                elif stop > size:
                    stop = size
                if stop < start:
                    stop = start
                if stop - start > 0x7fffffff - 4096:
                    raise EngineError(f"frame {i} is too long")
                starts[i] = start
                sizes[i] = <int32_t>(stop - start)
                if sizes[i] > maxlen:
                    maxlen = sizes[i]
            if maxlen > c.scratch_cap:
                free(c.scratch)
                c.scratch = NULL
                c.scratch = <unsigned char*>_c_array(maxlen, 1)
                c.scratch_cap = maxlen
            free(c.ingress)
            c.ingress = NULL
            c.ingress = <int32_t*>_c_array(n, sizeof(int32_t))
            c.n_out = 0
            c.data_len = 0
            c.n_drop = 0
            c.n_trace = 0
            c.tracing = 1 if trace else 0
            if trace and c.trace == NULL and self._last_trace is not None:
                # The last batch's records, if nobody holds them any more: their
                # pages are warm, so a traced batch after another costs no page faults.
                last = <_TraceBuf>self._last_trace
                if Py_REFCNT(last) == 2:     # self._last_trace and `last`
                    c.trace, c.cap_trace = last.data, last.cap
                    last.data, last.n, last.cap = NULL, 0, 0
                last = None
                self._last_trace = None
            c.error = 0
            with nogil:
                for i in range(n):
                    run_frame(c, base + starts[i], sizes[i], ins[i], <int32_t>i)
                    if c.error:
                        break
            if c.error:
                raise MemoryError("FastEngine: out of memory while processing a batch")

            # Append in bulk.
            data_base = len(result.out_data)
            for i in range(c.n_out):
                c.out_start[i] += data_base
            result.ingress.frombytes(_view(c.ingress, n * 4))
            result.out_frame.frombytes(_view(c.out_frame, c.n_out * 4))
            result.out_port.frombytes(_view(c.out_port, c.n_out * 4))
            result.out_kind.frombytes(_view(c.out_kind, c.n_out))
            result.out_start.frombytes(_view(c.out_start, c.n_out * 8))
            result.out_len.frombytes(_view(c.out_len, c.n_out * 4))
            result.out_data += _view(c.out_data, c.data_len)
            result.drop_frame.frombytes(_view(c.drop_frame, c.n_drop * 4))
            result.drop_reason.frombytes(_view(c.drop_reason, c.n_drop))
            result.drop_stage.frombytes(_view(c.drop_stage, c.n_drop * 2))
            result.drop_datapath.frombytes(_view(c.drop_dp, c.n_drop * 4))
            if c.n_trace:
                # The records change hands without a copy (the buffer object owns them now).
                tb = _TraceBuf()
                tb.data, tb.n, tb.cap = c.trace, c.n_trace, c.cap_trace
                c.trace, c.n_trace, c.cap_trace = NULL, 0, 0
                self._last_trace = tb
                if len(result.trace):
                    result.trace = memoryview(bytes(result.trace) + bytes(memoryview(tb)))
                else:
                    result.trace = memoryview(tb)
            result.frames += n
        finally:
            self.busy = False
            free(starts)
            free(sizes)
        return result


cdef class _TraceBuf:
    """Trace records handed from the engine to a BatchResult (read through the buffer protocol)."""

    cdef TraceRec* data
    cdef int64_t n
    cdef int64_t cap
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        self.shape[0] = <Py_ssize_t>(self.n * sizeof(TraceRec))
        self.strides[0] = 1
        buffer.buf = <char*>self.data
        buffer.obj = self
        buffer.len = self.shape[0]
        buffer.readonly = 1
        buffer.itemsize = 1
        buffer.format = "B"
        buffer.ndim = 1
        buffer.shape = self.shape
        buffer.strides = self.strides
        buffer.suboffsets = NULL
        buffer.internal = NULL

    def __releasebuffer__(self, Py_buffer* buffer):
        pass

    def __dealloc__(self):
        free(self.data)


cdef object _view(void* p, Py_ssize_t nbytes):
    if nbytes == 0 or p == NULL:
        return b""
    return PyMemoryView_FromMemory(<char*>p, nbytes, PyBUF_READ)


_check_contract()
