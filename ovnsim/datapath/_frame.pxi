# _frame.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# Result arrays, trace records, and the bytes of output frames (received frames rewritten, generated ones built).

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
            or _grow(<void**>&c.out_len, n, 4) or _grow(<void**>&c.out_wire, n, 4)):
        return -1
    c.cap_out = n
    return 0


cdef int grow_drops(Core* c) noexcept nogil:
    cdef int64_t n = 2 * c.cap_drop + 256
    if (_grow(<void**>&c.drop_frame, n, 4) or _grow(<void**>&c.drop_reason, n, 1)
            or _grow(<void**>&c.drop_stage, n, 2) or _grow(<void**>&c.drop_dp, n, 4)
            or _grow(<void**>&c.drop_rule, n, 2) or _grow(<void**>&c.drop_a, n, 4)
            or _grow(<void**>&c.drop_b, n, 8)):
        return -1
    c.cap_drop = n
    return 0


# The per-frame pipeline is compiled twice: once recording the trace, once with
# every trace step compiled out, so that tracing costs nothing when it is off
# (a run-time flag read at each of a frame's ~50 steps cost 2.5 %).  Each
# pipeline function takes a `tracing` argument of the fused type TraceMode: it
# carries no data, only which build the call is in; `TraceMode is Traced` is a
# compile-time constant in each build, and calls stay in their caller's build.
# process_batch picks the build for the batch.
cdef struct Traced:
    char unused
cdef struct Untraced:
    char unused
ctypedef fused TraceMode:
    Traced
    Untraced


cdef int trace_grow(Core* c) noexcept nogil:
    cdef int64_t n = 2 * c.cap_trace + 4096
    if _grow(<void**>&c.trace, n, sizeof(TraceRec)) < 0:
        c.error = 1
        return -1
    c.cap_trace = n
    return 0


cdef inline void trace_record(Core* c, const FrameCtx* f, int rule, int32_t dp, int32_t depth,
                              uint64_t a, uint64_t b) noexcept nogil:
    # Only the traced build calls it.
    cdef int64_t i = c.n_trace
    cdef TraceRec* r
    if i == c.cap_trace and trace_grow(c) < 0:
        return
    r = &c.trace[i]
    r.frame = f.index
    r.rule = <int16_t>rule
    r.depth = <int16_t>depth
    r.dp = dp
    r.a = <uint32_t>a
    r.b = b
    c.n_trace = i + 1


cdef inline void trace(Core* c, const TraceMode* tracing, const FrameCtx* f, int rule, int32_t dp, int32_t depth,
                       uint64_t a, uint64_t b) noexcept nogil:
    if TraceMode is Traced:
        trace_record(c, f, rule, dp, depth, a, b)


cdef void emit_drop(Core* c, const TraceMode* tracing, const FrameCtx* f, int rule, int32_t dp, int32_t depth,
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
    c.drop_rule[i] = <int16_t>rule
    c.drop_a[i] = <uint32_t>a
    c.drop_b[i] = b
    c.n_drop = i + 1
    if TraceMode is Traced:
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
            if end > n:
                # Cut by a capture's snaplen: only the bytes captured are
                # rewritten; the ICMP checksum is updated incrementally from
                # the words that changed, so it holds for the whole message.
                end = n
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
        # pinctrl_handle_tcp_reset: 20-byte header, RST+ACK, window 0
        l4len = 20
        wr16(l4, p.sport)
        wr16(l4 + 2, p.dport)
        wr32(l4 + 4, p.tcp_seq)
        wr32(l4 + 8, p.tcp_ack)
        for i in range(12, 20):
            l4[i] = 0
        l4[12] = 5 << 4
        l4[13] = p.tcp_flags
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
    if p.generated == GEN_STORED:
        n = build_stored(f, p, c, c.scratch)
        l3 = f.l3
    elif p.generated:
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
    cdef int64_t need = c.data_len + (p.quote_len if p.generated == GEN_STORED
                                      else MAX_GENERATED if p.generated else f.n)
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
    if p.generated == GEN_STORED:
        n = build_stored(f, p, c, c.out_data + c.data_len)
    elif p.generated:
        n = build_gen(c, p, c.out_data + c.data_len)
    else:
        n = build_raw(f, p, c.out_data + c.data_len)
    c.out_frame[i] = f.index
    c.out_port[i] = port
    c.out_kind[i] = <int8_t>p.kind
    c.out_start[i] = c.data_len
    c.out_len[i] = n
    # A frame rewritten in place keeps what a capture's snaplen cut off it;
    # a generated one is whole.
    c.out_wire[i] = n + (f.wire - f.n) if not p.generated and f.wire > f.n else n
    c.data_len += n
    c.n_out = i + 1
