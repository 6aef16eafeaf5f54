# _parse.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# Frame parsing (parse_headers), byte access, checksums (the one RFC 1071 / RFC 1624 routine of the package) and in-place rewrites.

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
    PARSE_SNAPLEN_CUT: "SNAPLEN_CUT",
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
    return parse_headers_wire(frame, length, length, out)


cdef inline int _short(Py_ssize_t need, Py_ssize_t have, Py_ssize_t wire_have, int status) noexcept nogil:
    # Which status a header of `need` bytes gets when `have` bytes of it are
    # captured and `wire_have` were on the wire: 0 (it is all there), the
    # frame's own truncation `status`, or PARSE_SNAPLEN_CUT (only the capture cut it).
    if have >= need:
        return 0
    return status if wire_have < need else PARSE_SNAPLEN_CUT


cdef int parse_headers_wire(const unsigned char* frame, Py_ssize_t length, Py_ssize_t wire,
                            Headers* out) noexcept nogil:
    """parse_headers() of a frame of which `length` of its `wire` bytes were captured.

    Every length field is checked against the frame on the wire; a header
    must be among the captured bytes, else PARSE_SNAPLEN_CUT (a header the
    frame lacks even on the wire keeps its own status).  A TCP header's
    options may lie beyond the captured bytes (nothing reads them).
    """
    cdef const unsigned char* p
    cdef Py_ssize_t ofs, avail, wavail, hlen, tcp_hlen, cavail
    cdef uint16_t eth_type, total_len
    cdef uint8_t vihl, proto
    cdef int st

    memset(out, 0, sizeof(Headers))
    out.l3_ofs = -1
    out.l4_ofs = -1
    out.payload_ofs = -1
    if length < 0:
        length = 0
    elif length > MAX_FRAME:
        length = MAX_FRAME
    if wire < length:
        wire = length
    elif wire > MAX_FRAME:
        wire = MAX_FRAME
    out.end_ofs = <int32_t>length

    # -- Ethernet ----------------------------------------------------------
    if length < ETH_HLEN:
        out.l2_ofs = -1 if length == 0 else 0
        return _done(out, _short(ETH_HLEN, length, wire, PARSE_TRUNCATED_ETH))
    out.l2_ofs = 0
    eth_type = rd16(frame + 12)
    ofs = ETH_HLEN
    if eth_type == ETH_TYPE_VLAN or eth_type == ETH_TYPE_QINQ:
        if length < ETH_HLEN + VLAN_HLEN:
            return _done(out, _short(ETH_HLEN + VLAN_HLEN, length, wire, PARSE_TRUNCATED_ETH))
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
    wavail = wire - ofs

    # -- ARP ---------------------------------------------------------------
    if eth_type == ETH_TYPE_ARP:
        if avail < ARP_ETH_IP4_LEN:
            return _done(out, _short(ARP_ETH_IP4_LEN, avail, wavail, PARSE_TRUNCATED_ARP))
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
        return _done(out, _short(IP4_MIN_HLEN, avail, wavail, PARSE_TRUNCATED_IP))
    vihl = p[0]
    if (vihl >> 4) != 4:
        return _done(out, PARSE_BAD_IP_VERSION)
    if (vihl & 0x0f) < 5:
        return _done(out, PARSE_BAD_IHL)
    hlen = (vihl & 0x0f) * 4
    if avail < hlen:
        return _done(out, _short(hlen, avail, wavail, PARSE_TRUNCATED_IP))
    total_len = rd16(p + 2)
    if total_len < hlen:
        return _done(out, PARSE_BAD_IP_TOTAL_LENGTH)
    if total_len > wavail:
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
    cavail = length - ofs          # of it captured (less than avail only in a cut frame)
    if cavail > avail:
        cavail = avail
    if proto == IPPROTO_TCP:
        st = _short(TCP_MIN_HLEN, cavail, avail, PARSE_TRUNCATED_L4)
        if st:
            return _done(out, st)
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
        st = _short(UDP_HLEN, cavail, avail, PARSE_TRUNCATED_L4)
        if st:
            return _done(out, st)
        out.tp_src = rd16(p)
        out.tp_dst = rd16(p + 2)
        out.l4_csum = rd16(p + 6)
        out.layers |= LAYER_UDP
        out.payload_ofs = <int32_t>(ofs + UDP_HLEN)
    elif proto == IPPROTO_ICMP:
        st = _short(ICMP4_HLEN, cavail, avail, PARSE_TRUNCATED_L4)
        if st:
            return _done(out, st)
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
