# _dhcp.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# OVN's native DHCPv4 responder: ls_in_dhcp_options, whose put_dhcp_opts
# ovn-controller answers (controller/pinctrl.c pinctrl_handle_put_dhcp_opts,
# OVN 23.03), and ls_in_dhcp_response.  The options were encoded once, in
# Python (ovnsim.northd.dhcp); here the reply is built from the request's
# bytes and those, with work bounded by the request's length.

cdef enum:
    BOOTP_HLEN = 236             # struct dhcp_header: op .. file
    BOOTP_FLAGS = 10             # offsets in it
    BOOTP_CIADDR = 12
    BOOTP_YIADDR = 16
    BOOTP_SIADDR = 20
    DHCP_REPLY_EXTRA = 16        # cookie, option 53 (3 bytes), 4 zero bytes, end, 4 zero bytes
    DHCP_BROADCAST_FLAG = 0x8000
    GEN_FIELDS = 1               # Pkt.generated: built from the Pkt's fields (build_gen)
    GEN_STORED = 2               # Pkt.generated: stored whole in Core.quotes (a DHCP reply)

cdef uint32_t DHCP_MAGIC = 0x63825363U


cdef bint dhcp_stage(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t sw, int32_t d) noexcept nogil:
    """ls_in_dhcp_options and ls_in_dhcp_response for an IPv4 UDP 68 -> 67 packet; True when it was answered.

    No responder for (inport, eth.src), or addresses neither flow matches:
    the priority-0 ``next;`` (not traced, as ovn-trace does not show it).
    When put_dhcp_opts sends no reply (reg0[3] = 0) the request goes on
    through the pipeline unchanged.
    """
    cdef uint64_t v
    cdef const DhcpResp* r
    cdef int rule, result
    if not map_get(&c.dhcp_map, (<uint64_t>p.inport << 48) | p.eth_src, &v):
        return False
    r = &c.dhcp[v]
    if p.ip_src == 0 and p.ip_dst == 0xffffffffU:
        rule = R_LS_IN_DHCP_OPTIONS
    elif p.ip_src == r.offer_ip and (p.ip_dst == r.server_id or p.ip_dst == 0xffffffffU):
        rule = R_LS_IN_DHCP_OPTIONS_RENEW
    else:
        return False
    result = dhcp_reply(c, f, p, r)
    trace(c, tracing, f, rule, sw, d, v, <uint64_t>result)
    if result > DR_INFORM_ACK:
        return False
    trace(c, tracing, f, R_LS_IN_DHCP_RESPONSE, sw, d, v, 0)
    p.eth_dst = p.eth_src
    p.eth_src = r.server_mac
    p.ip_src = r.server_id
    p.sport = 67
    p.dport = 68
    p.outport = p.inport
    p.loopback = 1
    p.kind = KIND_DHCP_REPLY
    p.op = OP_LS_OUT
    return True


cdef int dhcp_reply(Core* c, const FrameCtx* f, Pkt* p, const DhcpResp* r) noexcept nogil:
    """pinctrl_handle_put_dhcp_opts: a DR_* code; for a reply, the frame into Core.quotes (p.quote_*).

    The request is the packet as it is at this stage (what the packet-in
    carries).  The reply keeps its Ethernet and IPv4 headers (IPv4 options
    too), its UDP header and BOOTP header, with op 2, yiaddr (the offer; 0
    for a NAK or an INFORM) and siaddr (next_server, else the request's; 0
    for a NAK); then the magic cookie, option 53, the compiled options (none
    for a NAK), 4 zero bytes, end, 4 zero bytes.  IPv4: destination the offer
    (255.255.255.255 when the BOOTP broadcast flag is set), total length,
    checksum over 20 bytes; UDP: length, checksum 0.
    """
    cdef unsigned char* q = c.scratch
    cdef unsigned char* o
    cdef int32_t n, l3 = f.l3, l4 = f.l4, b, at, end, mtype_at = -1, opts_start, opts_len, l4size, total
    cdef int64_t cap
    cdef uint32_t request_ip, dst
    cdef uint8_t code, length, mtype, reply
    cdef int result
    if p.generated or l4 < 0:
        return DR_NOT_BOOTP
    if f.wire > f.n:
        return DR_SNAPLEN       # what pinctrl reads was not captured: no answer made up
    n = build_raw(f, p, q)
    end = l3 + rd16(q + l3 + 2)
    if end > n:
        end = n
    b = l4 + 8
    if end - b < BOOTP_HLEN or q[b] != 1:
        return DR_NOT_BOOTP
    at = b + BOOTP_HLEN
    if at + 4 > end or rd32(q + at) != DHCP_MAGIC:
        return DR_NOT_BOOTP
    at += 4
    request_ip = rd32(q + b + BOOTP_CIADDR)
    # Each step moves on by at least one byte: bounded by the request's length.
    while at < end:
        code = q[at]
        if code == 255:
            break
        if code == 0:
            at += 1
            continue
        if at + 2 > end:
            break
        length = q[at + 1]
        if at + 2 + length > end:
            break
        if code == 53 and length == 1:
            mtype_at = at + 2
        elif code == 50 and length == 4:
            request_ip = rd32(q + at + 2)
        at += 2 + length
    if mtype_at < 0:
        return DR_NO_TYPE
    mtype = q[mtype_at]
    opts_start, opts_len = r.opt_start, r.opt_len
    if mtype == 1:                      # DISCOVER
        reply, result = 2, DR_OFFER
    elif mtype == 3:                    # REQUEST
        if request_ip == r.offer_ip:
            reply, result = 5, DR_ACK
        else:
            reply, result = 6, DR_NAK
            opts_len = 0
    elif mtype == 8:                    # INFORM: no address, no lease
        reply, result = 5, DR_INFORM_ACK
        opts_start, opts_len = r.inform_start, r.inform_len
    elif mtype == 7:
        return DR_RELEASE
    elif mtype == 4:
        return DR_DECLINE
    else:
        return DR_BAD_TYPE

    l4size = 8 + BOOTP_HLEN + DHCP_REPLY_EXTRA + opts_len
    total = l4 + l4size
    if c.quotes_len + total > c.quotes_cap:
        cap = 2 * c.quotes_cap + total
        if _grow(<void**>&c.quotes, cap, 1) < 0:
            c.error = 1
            return DR_NOT_BOOTP
        c.quotes_cap = cap
    o = c.quotes + c.quotes_len
    memcpy(o, q, b + BOOTP_HLEN)
    o[b] = 2                            # BOOTREPLY
    if mtype != 8:
        wr32(o + b + BOOTP_YIADDR, 0 if reply == 6 else r.offer_ip)
        if reply == 6:
            wr32(o + b + BOOTP_SIADDR, 0)
        elif r.has_next_server:
            wr32(o + b + BOOTP_SIADDR, r.next_server)
    else:
        wr32(o + b + BOOTP_YIADDR, 0)
    at = b + BOOTP_HLEN
    wr32(o + at, DHCP_MAGIC)
    o[at + 4] = 53
    o[at + 5] = 1
    o[at + 6] = reply
    at += 7
    memcpy(o + at, c.dhcp_bytes + opts_start, opts_len)
    at += opts_len
    memset(o + at, 0, 9)
    o[at + 4] = 255
    wr16(o + l4 + 4, <uint16_t>l4size)
    wr16(o + l4 + 6, 0)
    dst = 0xffffffffU if rd16(o + b + BOOTP_FLAGS) & DHCP_BROADCAST_FLAG else r.offer_ip
    wr32(o + l3 + 16, dst)
    wr16(o + l3 + 2, <uint16_t>(l4 - l3 + l4size))
    wr16(o + l3 + 10, 0)
    wr16(o + l3 + 10, csum_fold(csum_partial(o + l3, 20, 0)))
    p.ip_dst = dst
    p.generated = GEN_STORED
    p.quote_ofs = <int32_t>c.quotes_len
    p.quote_len = <uint16_t>total
    c.quotes_len += total
    return result


cdef int32_t dhcp_reply_to(const Core* c, const Pkt* p, int32_t port) noexcept nogil:
    """The responder whose reply `p` is (from its server MAC and address to `port`'s entry), or -1.

    ls_out_acl's priority-34000 flow lets it through the port's to-lport ACLs.
    """
    cdef uint64_t v
    cdef const DhcpResp* r
    if not map_get(&c.dhcp_map, (<uint64_t>port << 48) | p.eth_dst, &v):
        return -1
    r = &c.dhcp[v]
    if p.eth_src != r.server_mac or p.ip_src != r.server_id:
        return -1
    return <int32_t>v


cdef int32_t build_stored(const FrameCtx* f, const Pkt* p, const Core* c, unsigned char* o) noexcept nogil:
    """A stored reply (GEN_STORED) with the header fields the pipeline set since, as build_raw writes them."""
    cdef FrameCtx g
    g.raw = c.quotes + p.quote_ofs
    g.n = p.quote_len
    g.wire = p.quote_len
    g.l3 = f.l3
    g.l4 = f.l4
    g.index = f.index
    return build_raw(&g, p, o)
