# _conntrack.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# Connection tracking with NAT: the table, and the ct_snat/ct_dnat actions.

# ---------------------------------------------------------------------------
# Conntrack (oracle.pipeline.Conntrack: a dict per zone, two keys per connection)
# ---------------------------------------------------------------------------

# The timeout classes with OVS's userspace defaults (lib/conntrack-tp.c,
# ct_dpif_netdev_tp_def, OVS 3.1) under the timeout-policy names `ovs-vsctl
# add-zone-tp` takes, in CT_TM_* order.  (OVS maps them crosswise: its
# OTHER_MULTIPLE state, more packets one way, takes udp_single, and
# OTHER_BIDIR, replies seen, udp_multiple.)
CT_TIMEOUT_DEFAULTS = (
    ("tcp_syn_sent", 30),           # CT_TM_TCP_FIRST_PACKET
    ("tcp_syn_recv", 30),           # CT_TM_TCP_OPENING
    ("tcp_established", 86400),     # CT_TM_TCP_ESTABLISHED
    ("tcp_fin_wait", 900),          # CT_TM_TCP_CLOSING
    ("tcp_time_wait", 45),          # CT_TM_TCP_FIN_WAIT
    ("tcp_close", 30),              # CT_TM_TCP_CLOSED
    ("udp_first", 60),              # CT_TM_OTHER_FIRST
    ("udp_single", 60),             # CT_TM_OTHER_MULTIPLE
    ("udp_multiple", 30),           # CT_TM_OTHER_BIDIR
    ("icmp_first", 60),             # CT_TM_ICMP_FIRST
    ("icmp_reply", 30),             # CT_TM_ICMP_REPLY
)

cdef enum:
    # Expired connections removed per frame (besides one per new connection
    # and those a lookup meets): the sweeper's share of a frame's work.
    CT_SWEEP_BUDGET = 64
    # TCP peer states, OVS's CT_DPIF_TCPS_* numbers (the ones the model reaches)
    TCPS_CLOSED = 0
    TCPS_SYN_SENT = 2
    TCPS_ESTABLISHED = 4
    TCPS_CLOSING = 7
    TCPS_FIN_WAIT_2 = 9
    TCPS_TIME_WAIT = 10
    # What a packet did to the connection it belongs to (OVS's ct_update_res)
    CTU_VALID = 0            # ct.est
    CTU_VALID_NEW = 1        # still ct.new (no reply seen yet)
    CTU_NEW = 2              # a SYN on a closed connection: it goes, the SYN opens a new one
    TH_FIN = 0x01
    TH_SYN = 0x02
    TH_RST = 0x04
    TH_ACK = 0x10


cdef int ct_alloc(Conntrack* ct, uint64_t min_entries) noexcept nogil:
    cdef uint64_t cap = 64, i
    cdef int bits = 6
    while cap < 2 * min_entries:
        cap <<= 1
        bits += 1
    if bits > 32:
        return -1           # a tag's top bits name the home slot
    cdef CtSlot* slots = <CtSlot*>malloc(cap * sizeof(CtSlot))
    if slots == NULL:
        return -1
    for i in range(cap):
        slots[i].conn = -1
    free(ct.slots)
    ct.slots = slots
    ct.mask = cap - 1
    ct.count = 0
    ct.tag_shift = 32 - bits
    return 0


cdef inline uint32_t ct_tag(uint64_t k1, uint64_t k2) noexcept nogil:
    cdef uint64_t h = (k1 ^ (k2 * 0xC2B2AE3D27D4EB4FULL)) * 0x9E3779B97F4A7C15ULL
    return <uint32_t>((h ^ (h >> 29)) >> 32)


cdef inline bint ct_slot_is(const Conntrack* ct, const CtSlot* s, uint64_t k1, uint64_t k2) noexcept nogil:
    """Whether occupied slot `s` holds key (k1, k2): its connection's tuple in the slot's direction."""
    cdef const CtConn* conn = &ct.conns[s.conn]
    if s.reply:
        return (k1 == ((<uint64_t>conn.tdst << 32) | conn.tsrc)
                and k2 == ct_k2(conn.zone, conn.proto, conn.tdport, conn.tsport))
    return (k1 == ((<uint64_t>conn.osrc << 32) | conn.odst)
            and k2 == ct_k2(conn.zone, conn.proto, conn.osport, conn.odport))


cdef inline CtSlot* ct_slot(const Conntrack* ct, uint64_t k1, uint64_t k2) noexcept nogil:
    """The slot holding key (k1, k2), or the free slot where it would go.

    A slot is filled with ct_fill, once its connection's tuples are set.
    """
    cdef uint32_t tag = ct_tag(k1, k2)
    cdef uint64_t i = tag >> ct.tag_shift
    cdef CtSlot* s
    while True:
        s = &ct.slots[i]
        if s.conn < 0 or (s.tag == tag and ct_slot_is(ct, s, k1, k2)):
            return s
        i = (i + 1) & ct.mask


cdef inline void ct_fill(Conntrack* ct, CtSlot* s, uint64_t k1, uint64_t k2, int32_t ci, uint8_t reply) noexcept nogil:
    """Key (k1, k2) -> connection ci in direction `reply`, in the slot ct_slot gave for it."""
    if s.conn < 0:
        s.tag = ct_tag(k1, k2)
        ct.count += 1
    s.conn = ci
    s.reply = reply


cdef inline int ct_reserve(Conntrack* ct) noexcept nogil:
    # Room for one more connection: two keys, one CtConn (the check inline, the growth not).
    if 2 * (ct.count + 2) > ct.mask + 1 or (ct.free_conn < 0 and ct.n_conns == ct.cap_conns):
        return ct_grow(ct)
    return 0


cdef int ct_grow(Conntrack* ct) noexcept nogil:
    cdef CtSlot* old
    cdef CtConn* conns
    cdef uint64_t old_cap, i, j
    if 2 * (ct.count + 2) > ct.mask + 1:
        old = ct.slots
        old_cap = ct.mask + 1
        ct.slots = NULL
        if ct_alloc(ct, ct.count + 2) < 0:
            ct.slots = old
            return -1
        for i in range(old_cap):
            if old[i].conn >= 0:
                # keys are distinct: the first free slot from its home
                j = old[i].tag >> ct.tag_shift
                while ct.slots[j].conn >= 0:
                    j = (j + 1) & ct.mask
                ct.slots[j] = old[i]
                ct.count += 1
        free(old)
    if ct.free_conn < 0 and ct.n_conns == ct.cap_conns:
        conns = <CtConn*>realloc(ct.conns, (2 * ct.cap_conns + 64) * sizeof(CtConn))
        if conns == NULL:
            return -1
        ct.conns = conns
        ct.cap_conns = 2 * ct.cap_conns + 64
    return 0


cdef void ct_clear(Conntrack* ct) noexcept nogil:
    """Forget every connection, the counters and the clock (the timeouts and the limit stay)."""
    cdef uint64_t i
    cdef int tm
    if ct.slots != NULL:
        for i in range(ct.mask + 1):
            ct.slots[i].conn = -1
    ct.count = 0
    ct.n_conns = 0
    for tm in range(CT_N_TM):
        ct.head[tm] = -1
        ct.tail[tm] = -1
    ct.free_conn = -1
    ct.n_live = 0
    ct.created = 0
    ct.expired = 0
    ct.refused = 0
    ct.peak = 0
    ct.now = 0
    ct.sweep_from = 0


cdef inline uint64_t ct_k2(uint32_t zone, uint8_t proto, uint16_t sport, uint16_t dport) noexcept nogil:
    return (<uint64_t>zone << 40) | (<uint64_t>proto << 32) | (<uint64_t>sport << 16) | dport


# ---------------------------------------------------------------------------
# Ageing: connections expire by the frames' timestamps, as in OVS's userspace
# conntrack.  A lookup never sees an expired connection (conn_key_lookup skips
# them); expired ones are removed when a lookup meets one, one before each
# new connection, and up to CT_SWEEP_BUDGET per frame, so the work per frame
# stays bounded and the table never holds more than the most connections
# ever live at once.
# ---------------------------------------------------------------------------

cdef inline void ct_expire_in(Conntrack* ct, int32_t ci, uint8_t tm) noexcept nogil:
    """conn_update_expiration: expires the class's timeout from now; to the tail of that class's list.

    Every connection in a list got the same timeout at a time no later than
    the one behind it, so each list is in expiry order: its head expires first.
    """
    cdef CtConn* conn = &ct.conns[ci]
    if conn.tm != CT_TM_FREE:
        if conn.prev >= 0:
            ct.conns[conn.prev].next = conn.next
        else:
            ct.head[conn.tm] = conn.next
        if conn.next >= 0:
            ct.conns[conn.next].prev = conn.prev
        else:
            ct.tail[conn.tm] = conn.prev
    conn.tm = tm
    conn.expiry = ct.now + ct.timeout[tm]
    if conn.expiry < ct.sweep_from:
        ct.sweep_from = conn.expiry
    conn.next = -1
    conn.prev = ct.tail[tm]
    if conn.prev >= 0:
        ct.conns[conn.prev].next = ci
    else:
        ct.head[tm] = ci
    ct.tail[tm] = ci


cdef void ct_slot_delete(Conntrack* ct, uint64_t i) noexcept nogil:
    """Empty slot i by backward shift: later keys of its probe run move up, so no lookup stops short."""
    cdef CtSlot* s = ct.slots
    cdef uint64_t mask = ct.mask, j = i, k
    while True:
        j = (j + 1) & mask
        if s[j].conn < 0:
            break
        k = s[j].tag >> ct.tag_shift
        # The key at j may fill i when its home is not in the cyclic range (i, j].
        if ((j - k) & mask) >= ((j - i) & mask):
            s[i] = s[j]
            i = j
    s[i].conn = -1
    ct.count -= 1


cdef void ct_remove(Conntrack* ct, int32_t ci) noexcept nogil:
    """Remove connection ci: its keys (those still naming it), its list entry; its slot to the free list."""
    cdef CtConn* conn = &ct.conns[ci]
    cdef CtSlot* s = ct_slot(ct, (<uint64_t>conn.osrc << 32) | conn.odst,
                             ct_k2(conn.zone, conn.proto, conn.osport, conn.odport))
    if s.conn == ci:
        ct_slot_delete(ct, <uint64_t>(s - ct.slots))
    s = ct_slot(ct, (<uint64_t>conn.tdst << 32) | conn.tsrc, ct_k2(conn.zone, conn.proto, conn.tdport, conn.tsport))
    if s.conn == ci:
        ct_slot_delete(ct, <uint64_t>(s - ct.slots))
    if conn.prev >= 0:
        ct.conns[conn.prev].next = conn.next
    else:
        ct.head[conn.tm] = conn.next
    if conn.next >= 0:
        ct.conns[conn.next].prev = conn.prev
    else:
        ct.tail[conn.tm] = conn.prev
    conn.tm = CT_TM_FREE
    conn.next = ct.free_conn
    ct.free_conn = ci
    ct.n_live -= 1


cdef int64_t ct_sweep(Conntrack* ct, int64_t budget) noexcept nogil:
    """Remove up to `budget` expired connections (all of them for a negative budget); how many.

    Most calls find nothing to remove (it runs for every NAT stage a frame
    passes): until the clock reaches `sweep_from`, the earliest expiry of the
    lists' heads when they were last all looked at, nothing has expired.
    """
    cdef int64_t n = 0, earliest = INT64_MAX
    cdef int tm
    cdef int32_t ci
    if ct.now < ct.sweep_from:
        return 0
    for tm in range(CT_N_TM):
        while True:
            ci = ct.head[tm]
            if ci < 0:
                break
            if ct.now < ct.conns[ci].expiry:
                if ct.conns[ci].expiry < earliest:
                    earliest = ct.conns[ci].expiry
                break
            if n == budget:
                return n    # more may have expired: sweep_from stays, the next call looks again
            ct_remove(ct, ci)
            ct.expired += 1
            n += 1
    ct.sweep_from = earliest
    return n


cdef inline void ct_tick(Conntrack* ct, int64_t t) noexcept nogil:
    """A frame captured at t (ns): the clock moves on to it (never back), and a share of the sweep."""
    if t > ct.now:
        ct.now = t
    if ct.n_live:
        ct_sweep(ct, CT_SWEEP_BUDGET)


cdef CtSlot* ct_find(Conntrack* ct, uint64_t k1, uint64_t k2) noexcept nogil:
    """ct_slot() for a lookup: an expired connection is not found (and is removed)."""
    cdef CtSlot* s = ct_slot(ct, k1, k2)
    if s.conn >= 0 and ct.now >= ct.conns[s.conn].expiry:
        ct_remove(ct, s.conn)
        ct.expired += 1
        s = ct_slot(ct, k1, k2)
    return s


cdef inline bint ct_live(const Conntrack* ct, uint64_t k1, uint64_t k2) noexcept nogil:
    """Whether a connection that has not expired holds the key (the table is not changed)."""
    cdef const CtSlot* s = ct_slot(ct, k1, k2)
    return s.conn >= 0 and ct.now < ct.conns[s.conn].expiry


cdef int ct_update(Conntrack* ct, int32_t ci, bint reply, const Pkt* p) noexcept nogil:
    """conn_update: a packet of connection ci (`reply`: in its reply direction); a CTU_* code.

    OVS's state machines (lib/conntrack-tcp.c, conntrack-other.c,
    conntrack-icmp.c) for the state that chooses the timeout.  TCP: each
    peer's state from the SYN, ACK, FIN and RST flags, as tcp_conn_update
    runs it with sequence checking off (`dpctl/ct-disable-tcp-seq-chk`): no
    window tracking, so no packet is ct.inv, and its out-of-window branch
    (which keeps the old expiry) is never taken.  A SYN on a connection
    both ends closed replaces it, with or without a clock, as in OVS.
    """
    cdef CtConn* conn = &ct.conns[ci]
    cdef uint8_t src, dst, fl
    if conn.proto == IPPROTO_TCP:
        src = conn.st1 if reply else conn.st0
        dst = conn.st0 if reply else conn.st1
        fl = p.tcp_flags
        if (fl & (TH_SYN | TH_ACK)) == TH_SYN:
            if dst >= TCPS_FIN_WAIT_2 and src >= TCPS_FIN_WAIT_2:
                return CTU_NEW
            if src <= TCPS_SYN_SENT:
                src = TCPS_SYN_SENT
                if reply:
                    conn.st1 = src
                else:
                    conn.st0 = src
                ct_expire_in(ct, ci, CT_TM_TCP_FIRST_PACKET)
                return CTU_VALID_NEW
        if src < TCPS_SYN_SENT:
            src = TCPS_SYN_SENT          # the first packet from this end
        if fl & TH_FIN and src < TCPS_CLOSING:
            src = TCPS_CLOSING
        if fl & TH_ACK:
            if dst == TCPS_SYN_SENT:
                dst = TCPS_ESTABLISHED
            elif dst == TCPS_CLOSING:
                dst = TCPS_FIN_WAIT_2
        if fl & TH_RST:
            src = dst = TCPS_TIME_WAIT
        if reply:
            conn.st1, conn.st0 = src, dst
        else:
            conn.st0, conn.st1 = src, dst
        if src >= TCPS_FIN_WAIT_2 and dst >= TCPS_FIN_WAIT_2:
            ct_expire_in(ct, ci, CT_TM_TCP_CLOSED)
        elif src >= TCPS_CLOSING and dst >= TCPS_CLOSING:
            ct_expire_in(ct, ci, CT_TM_TCP_FIN_WAIT)
        elif src < TCPS_ESTABLISHED or dst < TCPS_ESTABLISHED:
            ct_expire_in(ct, ci, CT_TM_TCP_OPENING)
        elif src >= TCPS_CLOSING or dst >= TCPS_CLOSING:
            ct_expire_in(ct, ci, CT_TM_TCP_CLOSING)
        else:
            ct_expire_in(ct, ci, CT_TM_TCP_ESTABLISHED)
        return CTU_VALID
    if conn.proto == IPPROTO_ICMP:
        # ICMPS_FIRST (0) until a reply, then ICMPS_REPLY (1)
        if reply and conn.st0 == 0:
            conn.st0 = 1
        ct_expire_in(ct, ci, CT_TM_ICMP_FIRST + conn.st0)
        return CTU_VALID_NEW if conn.st0 == 0 and not reply else CTU_VALID
    # OTHERS_FIRST (0), OTHERS_MULTIPLE (1: more packets one way), OTHERS_BIDIR (2)
    if reply and conn.st0 != 2:
        conn.st0 = 2
    elif conn.st0 == 0:
        conn.st0 = 1
    ct_expire_in(ct, ci, CT_TM_OTHER_FIRST + conn.st0)
    return CTU_VALID if conn.st0 == 2 else CTU_VALID_NEW


cdef int32_t ct_commit(Conntrack* ct, uint32_t zone, uint8_t proto) noexcept nogil:
    """A new connection's slot (ct_reserve made room): its state as OVS's new_conn sets it."""
    cdef int32_t ci = ct.free_conn
    cdef CtConn* conn
    if ci >= 0:
        ct.free_conn = ct.conns[ci].next
    else:
        ci = <int32_t>ct.n_conns
        ct.n_conns += 1
    conn = &ct.conns[ci]
    conn.zone = zone
    conn.proto = proto
    conn.acl_hit = -2        # (ACL zones: ACL_NOT_CACHED until acl_commit says)
    conn.blocked = 0
    conn.tm = CT_TM_FREE
    conn.st1 = TCPS_CLOSED
    if proto == IPPROTO_TCP:
        conn.st0 = TCPS_SYN_SENT
        ct_expire_in(ct, ci, CT_TM_TCP_FIRST_PACKET)
    else:
        conn.st0 = 0
        ct_expire_in(ct, ci, CT_TM_ICMP_FIRST if proto == IPPROTO_ICMP else CT_TM_OTHER_FIRST)
    ct.n_live += 1
    ct.created += 1
    if ct.n_live > ct.peak:
        ct.peak = ct.n_live
    return ci


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
        if not ct_live(ct, (<uint64_t>td << 32) | ts,
                       ct_k2(zone, proto, port if proto == IPPROTO_ICMP else tdp, <uint16_t>port)):
            return <uint16_t>port
    return tsp


cdef inline bint ct_at_limit(Conntrack* ct) noexcept nogil:
    """Whether one more connection would exceed the limit (expired ones swept out first)."""
    return ct.limit > 0 and ct.n_live >= ct.limit and (ct_sweep(ct, 1) == 0 or ct.n_live >= ct.limit)


cdef void ct_insert(Conntrack* ct, uint32_t zone, uint8_t proto, uint32_t s, uint16_t sp, uint32_t d,
                    uint16_t dp, uint32_t ts, uint16_t tsp, uint32_t td, uint16_t tdp) noexcept nogil:
    """Commit a connection: original s:sp -> d:dp, translated ts:tsp -> td:tdp (a slot reserved)."""
    cdef CtConn* conn
    cdef uint64_t k1, k2
    cdef int32_t ci
    ci = ct_commit(ct, zone, proto)
    conn = &ct.conns[ci]
    conn.osrc = s
    conn.odst = d
    conn.osport = sp
    conn.odport = dp
    conn.tsrc = ts
    conn.tdst = td
    conn.tsport = tsp
    conn.tdport = tdp
    # table[original] = (conn, False); table[reverse(translated)] = (conn, True)
    # (the slot found again: removing an expired connection may have moved keys)
    k1 = (<uint64_t>s << 32) | d
    k2 = ct_k2(zone, proto, sp, dp)
    ct_fill(ct, ct_slot(ct, k1, k2), k1, k2, ci, 0)
    k1 = (<uint64_t>td << 32) | ts
    k2 = ct_k2(zone, proto, tdp, tsp)
    ct_fill(ct, ct_find(ct, k1, k2), k1, k2, ci, 1)


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
        # (bit kind + 4: this packet committed the connection in that zone, which
        # has seen no reply yet: ct.new, as OVS reports it for a second ct() pass)
        return CT_ALREADY_NEW if p.ct_zones & (1 << (kind + 4)) else CT_ALREADY
    if p.has_inner:
        # An ICMP error: OVS's conntrack looks up the datagram it quotes,
        # reversed, and the error is RELATED to that connection, NATed as the
        # connection is (the NAT the action asks for is for new connections only).
        slot = ct_find(ct, (<uint64_t>p.in_dst << 32) | p.in_src, ct_k2(zone, p.in_proto, p.in_dport, p.in_sport))
        if slot.conn >= 0:
            conn = &ct.conns[slot.conn]
            p.ct_rpl = slot.reply
            p.ct_zones |= 1 << kind
            if slot.reply:
                # It quotes a packet of the original direction: un-NAT (reverse_nat_packet).
                if conn.tsrc != conn.osrc:
                    p.ip_dst = conn.osrc
                if conn.tdst != conn.odst:
                    p.ip_src = conn.odst
                p.in_src = conn.osrc
                p.in_sport = conn.osport
                p.in_dst = conn.odst
                p.in_dport = conn.odport
                return CT_RELATED
            # It quotes a reply, so it goes the original way: NAT (nat_packet,
            # related): outside -> a floating IP is DNATed to the VM, a VM's error
            # about a reply it got leaves SNATed (real OVN: test_realdp_known.py::
            # test_an_icmp_error_the_original_way_is_nated_as_its_connection).
            if conn.tsrc != conn.osrc:
                p.ip_src = conn.tsrc
            if conn.tdst != conn.odst:
                p.ip_dst = conn.tdst
            p.in_src = conn.tdst
            p.in_sport = conn.tdport
            p.in_dst = conn.tsrc
            p.in_dport = conn.tsport
            return CT_RELATED_ORIG
        if not has_snat and not has_dnat:
            p.ct_rpl = 0
            return CT_RELATED_NONE
        # (with NAT asked: no connection, and an ICMP error opens none: CT_INVALID below)
    if p.proto == IPPROTO_ICMP:
        sp = dp = p.icmp_id
    else:
        sp = p.sport
        dp = p.dport
    if has_snat or has_dnat:
        # One expired connection goes before any that may be committed, so the
        # table holds no more than the most connections live at once.
        ct_sweep(ct, 1)
        if ct_reserve(ct) < 0:
            c.error = 1
            return 0
    slot = ct_find(ct, (<uint64_t>s << 32) | d, ct_k2(zone, p.proto, sp, dp))
    if slot.conn >= 0 and ct_update(ct, slot.conn, slot.reply, p) == CTU_NEW:
        # A SYN on a closed connection: OVS expires it and the SYN opens a new one.
        ct_remove(ct, slot.conn)
        ct.expired += 1
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
    if not ct_valid_new(p):
        # OVS's conntrack (tcp_valid_new, icmp4_valid_new; the kernel's likewise)
        # does not let a SYN+ACK, an echo reply, an ICMP error... open a
        # connection: ct(commit, nat) leaves it untracked (ct.inv) and un-NATed,
        # and the pipeline goes on (the reply of a connection opened from outside
        # to a fixed address leaves with that address)
        ct.refused += 1
        return CT_INVALID
    ts = snat if has_snat else s
    td = dnat if has_dnat else d
    tsp = sp
    tdp = dp
    if has_snat and not p.later_frag \
            and ct_live(ct, (<uint64_t>td << 32) | ts, ct_k2(zone, p.proto, tdp, tsp)):
        # Another connection has this reply tuple: another source port.
        tsp = ct_unique_sport(ct, zone, p.proto, icmp_query(p.icmp_type), ts, tsp, td, tdp)
        if p.proto == IPPROTO_ICMP:
            tdp = tsp
    if ct_at_limit(ct):
        return CT_FULL      # the caller drops the copy (conntrack-full); expired ones do not count
    ct_insert(ct, zone, p.proto, s, sp, d, dp, ts, tsp, td, tdp)
    p.ct_zones |= (1 << kind) | (1 << (kind + 4))
    set_tuple(p, ts, tsp, td, tdp)
    return (CT_NEW | (<uint64_t>tsp << 8) | (<uint64_t>(tsp != sp) << 24)
            | (<uint64_t>(not has_snat) << 25) | (<uint64_t>(snat if has_snat else dnat) << 32))


cdef uint64_t ct_commit_plain(Core* c, Pkt* p, int32_t r, int kind) noexcept nogil:
    """``ct_commit { }`` of a packet ct_nat found no entry for and that may open a
    connection (ct.new: the caller checked ct_valid_new): a connection with no NAT,
    unless its reply tuple is another connection's.

    Then, as OVS's conntrack does (and Linux's NAT null binding), the new
    connection gets another source port, so that each connection keeps its
    replies: outside:p -> FIP:q, then outside:p -> fixed:q, leaves with
    source port p + 1 (real OVN: test_realdp_known.py::
    test_a_plain_commit_whose_reply_tuple_is_taken_gets_another_source_port).

    Returns CT_COMMITTED (with the source port, and whether it changed, as
    ct_nat's value has them) or CT_FULL (the caller drops).
    """
    cdef Conntrack* ct = &c.ct
    cdef uint32_t zone = <uint32_t>(r * 3 + kind)
    cdef uint32_t s = p.ip_src, d = p.ip_dst
    cdef uint16_t sp, dp, tsp, tdp
    if p.proto == IPPROTO_ICMP:
        sp = dp = p.icmp_id
    else:
        sp = p.sport
        dp = p.dport
    ct_sweep(ct, 1)
    if ct_reserve(ct) < 0:
        c.error = 1
        return 0
    if ct_at_limit(ct):
        return CT_FULL
    tsp = sp
    tdp = dp
    if not p.later_frag and ct_live(ct, (<uint64_t>d << 32) | s, ct_k2(zone, p.proto, dp, sp)):
        tsp = ct_unique_sport(ct, zone, p.proto, icmp_query(p.icmp_type), s, sp, d, dp)
        if p.proto == IPPROTO_ICMP:
            tdp = tsp
    ct_insert(ct, zone, p.proto, s, sp, d, dp, s, tsp, d, tdp)
    p.ct_zones |= (1 << kind) | (1 << (kind + 4))
    if tsp != sp:
        set_tuple(p, s, tsp, d, tdp)
    return CT_COMMITTED | (<uint64_t>tsp << 8) | (<uint64_t>(tsp != sp) << 24)


cdef inline bint ct_valid_new(const Pkt* p) noexcept nogil:
    """Whether `p` may open a connection (OVS conntrack's *_valid_new)."""
    cdef uint8_t fl = p.tcp_flags
    if p.later_frag:
        return True
    if p.proto == IPPROTO_TCP:
        # A SYN not with RST, FIN or ACK.  (OVS also refuses a segment with
        # neither SYN, ACK nor RST; ovnsim lets it open one, as ovn-trace shows
        # a microflow's flagless "tcp" NATed.)
        return not (fl & 0x02) or (fl & (0x04 | 0x01 | 0x10)) == 0
    if p.proto == IPPROTO_ICMP:
        return p.icmp_type == 8 or p.icmp_type == 15 or p.icmp_type == 13
    return True
