# _held.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# Packets held while their next hop's ARP resolves, as ovn-controller's pinctrl
# buffers them (controller/pinctrl.c, OVN 23.03: pinctrl_handle_buffered_packets,
# buffered_push_packet, run_buffered_binding, buffered_send_packets).
#
# The `arp` action of lr_in_arp_request sends the packet to pinctrl, which
# keeps a copy keyed by (datapath, outport, next hop) and sends the ARP
# request.  When a MAC binding for that next hop appears, pinctrl writes the
# MAC into eth.dst and sends the copy back to the output table with its
# registers restored: it runs the router's egress pipeline from there.  A
# queue is a ring of BUFFER_QUEUE_DEPTH = 4 slots, one always free, so it
# keeps the 3 newest packets (a 4th pushes the oldest out); pinctrl holds at
# most 1,000 next hops (a packet for a new one beyond that is not held; its
# ARP request still leaves).  pinctrl also forgets a next hop 10 s after its
# last packet (BUFFER_MAP_TIMEOUT): the engine has no clock, so here a packet
# waits until its binding comes or reset().

cdef enum:
    HELD_PER_HOP = 3         # BUFFER_QUEUE_DEPTH - 1
    HELD_HOPS = 1000         # pinctrl's limit on buffered_packets_map


cdef void _held_remove(Core* c, int64_t k) noexcept nogil:
    # Entry k out of the array (its buffer is the caller's), the order kept.
    cdef uint64_t key = c.held[k].key
    cdef int64_t j
    if c.held[k].ready:
        c.n_ready -= 1
    memmove(&c.held[k], &c.held[k + 1], (c.n_held - k - 1) * sizeof(Held))
    c.n_held -= 1
    for j in range(c.n_held):
        if c.held[j].key == key:
            return
    c.n_hops -= 1


cdef void hold(Core* c, const FrameCtx* f, const Pkt* p, int32_t out) noexcept nogil:
    """Keep a copy of `p` (at lr_in_arp_request, eth.dst still 0) until its next hop resolves."""
    cdef uint64_t key = (<uint64_t>out << 32) | p.reg0
    cdef int64_t k, oldest = -1, same = 0
    cdef int32_t n = 0 if p.generated else f.n
    cdef Held* h
    cdef unsigned char* data
    for k in range(c.n_held):
        if c.held[k].key == key:
            if same == 0:
                oldest = k
            same += 1
    if same == 0 and c.n_hops >= HELD_HOPS:
        c.held_dropped += 1
        return
    data = <unsigned char*>malloc(n + p.quote_len if n + p.quote_len > 0 else 1)
    if data == NULL:
        c.error = 1
        return
    if same >= HELD_PER_HOP:
        free(c.held[oldest].data)
        _held_remove(c, oldest)
        c.held_dropped += 1
    if c.n_held == c.cap_held:
        if _grow(<void**>&c.held, 2 * c.cap_held + 16, sizeof(Held)) < 0:
            free(data)
            c.error = 1
            return
        c.cap_held = 2 * c.cap_held + 16
    if n:
        memcpy(data, f.raw, n)
    if p.quote_len:
        memcpy(data + n, c.quotes + p.quote_ofs, p.quote_len)
    h = &c.held[c.n_held]
    h.p = p[0]
    h.key = key
    h.data = data
    h.n = n
    h.wire = f.wire if f.wire > n and not p.generated else n
    h.l3 = f.l3
    h.l4 = f.l4
    h.ready = 0
    c.n_held += 1
    if same == 0:
        c.n_hops += 1


cdef void held_resolved(Core* c, uint64_t key, uint64_t mac) noexcept nogil:
    """A MAC binding for `key` (LRP << 32 | ip) was put: its held packets leave after this frame."""
    cdef int64_t k
    for k in range(c.n_held):
        if c.held[k].key == key and not c.held[k].ready:
            c.held[k].ready = 1
            c.held[k].p.eth_dst = mac
            c.n_ready += 1


cdef void release_held(Core* c, const TraceMode* tracing, int32_t index) noexcept nogil:
    """Send the held packets whose next hop resolved, oldest first, as outputs of frame `index`.

    Each is a packet-out of its own (buffered_send_packets): the router's
    egress pipeline from lr_out_chk_dnat_local on, with its own budget of
    datapath visits.
    """
    cdef FrameCtx f
    cdef Pkt p
    cdef Held h
    cdef int64_t k, cap
    while c.n_ready and not c.error:
        k = 0
        while not c.held[k].ready:
            k += 1
        h = c.held[k]
        _held_remove(c, k)
        p = h.p
        f.raw = h.data
        f.n = h.n
        f.wire = h.wire
        f.l3 = h.l3
        f.l4 = h.l4
        f.index = index
        if p.quote_len:
            if c.quotes_len + p.quote_len > c.quotes_cap:
                cap = 2 * c.quotes_cap + MAX_QUOTE
                if _grow(<void**>&c.quotes, cap, 1) < 0:
                    free(h.data)
                    c.error = 1
                    return
                c.quotes_cap = cap
            memcpy(c.quotes + c.quotes_len, h.data + h.n, p.quote_len)
            p.quote_ofs = <int32_t>c.quotes_len
            c.quotes_len += p.quote_len
        trace(c, tracing, &f, R_LR_IN_ARP_RELEASE, c.n_switches + c.rports[p.outport].router, p.depth, p.reg0, p.eth_dst)
        c.stack_len = 0
        c.visits = 0
        lr_egress(c, tracing, &f, &p)
        run_loop(c, tracing, &f, &p)
        free(h.data)


cdef void held_clear(Core* c) noexcept nogil:
    cdef int64_t k
    for k in range(c.n_held):
        free(c.held[k].data)
    c.n_held = 0
    c.n_ready = 0
    c.n_hops = 0
