# _run.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# One frame: classify (parse into a Pkt), choose the ingress, run the work loop.

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

    A frame cut by a capture's snaplen (f.wire > n) is parsed on the headers
    captured, its lengths taken from the wire (OVN reads only headers): a
    header the capture cut is PP_SNAPLEN, as is an ICMP error's quoted
    header (conntrack reads it).
    """
    cdef Headers h
    cdef int st
    cdef int32_t qn, qw, need
    cdef const unsigned char* q
    if n < ETH_HLEN:
        return PP_SNAPLEN if f.wire >= ETH_HLEN else PP_RUNT
    p.eth_dst = rd48(raw)
    p.eth_src = rd48(raw + 6)
    f.l3 = ETH_HLEN
    f.l4 = -1
    st = parse_headers_wire(raw, n, f.wire, &h)
    if st == PARSE_SNAPLEN_CUT:
        return PP_SNAPLEN
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
            q = raw + h.l4_ofs + ICMP4_HLEN
            qw = h.end_ofs - h.l4_ofs - ICMP4_HLEN          # the quote on the wire
            qn = (h.end_ofs if h.end_ofs < n else n) - h.l4_ofs - ICMP4_HLEN
            parse_inner(q, qn, p)
            if not p.has_inner and qn < qw:
                need = (q[0] & 0x0f) * 4 + 8 if qn > 0 else IP4_MIN_HLEN + 8
                if qn < need <= qw:
                    return PP_SNAPLEN
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


cdef void run_frame(Core* c, const TraceMode* tracing, const unsigned char* raw, int32_t n, int32_t wire, int64_t inport,
                    int32_t index) noexcept nogil:
    """oracle PythonEngine._one for one frame (`n` of its `wire` bytes captured)."""
    cdef FrameCtx f
    cdef Pkt p
    cdef int problem
    cdef int32_t port
    f.raw = raw
    f.n = n
    f.wire = wire if wire > n else n
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
        emit_drop(c, tracing, &f, R_PARSE_UNSUPPORTED if problem == PP_IPV6
                  else R_PARSE_SNAPLEN if problem == PP_SNAPLEN else R_PARSE_MALFORMED,
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
        emit_drop(c, tracing, &f, R_NO_INGRESS, 0, 0, 0, 0)
        return
    p.inport = port
    p.outport = -1
    p.op = OP_LS_IN
    c.stack_len = 0
    c.visits = 0
    run_loop(c, tracing, &f, &p)
    if c.n_ready and not c.error:
        # an ARP reply resolved next hops packets were held for: they leave now
        release_held(c, tracing, index)


cdef void run_loop(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p) noexcept nogil:
    """The work loop: run `p` (its `op` says where) and every copy it makes, depth first.

    `p` is the caller's and is used up: each copy popped from the stack
    overwrites it (no copy of the packet is made per frame).
    """
    cdef uint8_t op
    while not c.error:
        op = p.op
        if op == OP_LS_IN or op == OP_LS_OUT or op == OP_LR_IN or op == OP_REENTER:
            c.visits += 1
            if c.visits > MAX_VISITS:
                budget_spent(c, tracing, f, p)
                break
        if op == OP_LS_IN:
            ls_ingress(c, tracing, f, p)
        elif op == OP_LS_OUT:
            ls_egress(c, tracing, f, p)
        elif op == OP_LR_IN:
            lr_ingress(c, tracing, f, p)
        elif op == OP_FLOOD_NEXT:
            flood_next(c, f, p)
        elif op == OP_FLOOD_START:
            flood_start(c, tracing, f, p)
        elif op == OP_REENTER:
            lr_reenter(c, tracing, f, p)
        elif c.stack_len:
            c.stack_len -= 1
            p[0] = c.stack[c.stack_len]
        else:
            break


cdef void budget_spent(Core* c, const TraceMode* tracing, const FrameCtx* f, const Pkt* p) noexcept nogil:
    """The frame's MAX_VISITS are spent: drop this copy and every pending one, as one loop-limit drop.

    What the frame already delivered stays delivered; the drop names the
    datapath the next visit would have entered.
    """
    cdef int rule
    cdef int32_t dp
    if p.op == OP_LS_IN:
        rule = R_LS_IN_FRAME_BUDGET
        dp = c.ports[p.inport].sw
    elif p.op == OP_LS_OUT:
        rule = R_LS_OUT_FRAME_BUDGET
        dp = c.ports[p.outport].sw
    else:
        rule = R_LR_IN_FRAME_BUDGET
        dp = c.n_switches + c.rports[p.inport].router
    emit_drop(c, tracing, f, rule, dp, p.depth, MAX_VISITS, <uint64_t>(1 + c.stack_len))
    c.stack_len = 0
