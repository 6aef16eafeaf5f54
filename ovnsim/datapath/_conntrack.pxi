# _conntrack.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# Connection tracking with NAT: the table, and the ct_snat/ct_dnat actions.

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
    if ct.limit > 0 and ct.n_conns >= ct.limit:
        return CT_FULL      # the caller drops the copy (conntrack-full)
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
