# _acl.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# The switch ACL stages (security groups): ls_{in,out}_pre_acl .. ls_{in,out}_stateful,
# with per-port conntrack zones (OVN 23.03, northd.c; docs/acl-engine-notes.md).

cdef enum:
    # AclRule.action
    ACL_ALLOW_RELATED = 1
    ACL_ALLOW_STATELESS = 2
    ACL_DROP = 3
    # Pkt.acl_ct: the ct_state a ct_next in an ACL zone loaded (0: !ct.trk)
    ACT_TRK = 0x01
    ACT_NEW = 0x02
    ACT_EST = 0x04
    ACT_RPL = 0x08
    ACT_REL = 0x10
    ACT_INV = 0x20
    ACT_BLOCKED = 0x40       # ct_mark.blocked of the connection
    # ls_*_acl_hint's register bits: reg0[7], reg0[8], reg0[9], reg0[10]
    H_ALLOW_NEW = 1
    H_ALLOW = 2
    H_DROP = 4
    H_BLOCK = 8
    # CtConn.acl_hit: no cached ACL verdict (ICMP: the type is not in the key)
    ACL_NOT_CACHED = -2


cdef inline uint8_t icmp_reply_type(uint8_t t) noexcept nogil:
    # Linux conntrack's ICMP invmap: a query's reply type (the reply direction's tuple)
    if t == 8 or t == 13 or t == 15 or t == 17:
        return t - 8 if t == 8 else t + 1
    if t == 0 or t == 14 or t == 16 or t == 18:
        return 8 if t == 0 else t - 1
    return t


cdef inline bint acl_match(const Core* c, const AclRule* a, const Pkt* p) noexcept nogil:
    # The caller checked the packet is IPv4.
    cdef uint64_t v
    if a.ip6:
        return False
    if (p.ip_src & a.src_mask) != a.src_net or (p.ip_dst & a.dst_mask) != a.dst_net:
        return False
    if a.has_proto:
        if p.proto != a.proto:
            return False
        if a.has_ports and not (a.dport_lo <= p.dport <= a.dport_hi):
            return False
        if a.icmp_type >= 0 and p.icmp_type != a.icmp_type:
            return False
        if a.icmp_code >= 0 and p.icmp_code != a.icmp_code:
            return False
    if a.src_set >= 0 and not map_get(&c.acl_sets, (<uint64_t>a.src_set << 32) | p.ip_src, &v):
        return False
    if a.dst_set >= 0 and not map_get(&c.acl_sets, (<uint64_t>a.dst_set << 32) | p.ip_dst, &v):
        return False
    return True


cdef int32_t acl_first(const Core* c, int32_t start, int32_t count, const Pkt* p, uint32_t hint) noexcept nogil:
    """The first ACL of a port's slice whose flow matches (its ACL match and its hint bit), or -1.

    allow-related flows need reg0[7] or reg0[8], drop flows reg0[9] or
    reg0[10], allow-stateless ones nothing.
    """
    cdef int32_t k, i
    cdef const AclRule* a
    for k in range(start, start + count):
        i = c.acl_list[k]
        a = &c.acls[i]
        if a.action == ACL_ALLOW_RELATED and not (hint & (H_ALLOW_NEW | H_ALLOW)):
            continue
        if a.action == ACL_DROP and not (hint & (H_DROP | H_BLOCK)):
            continue
        if acl_match(c, a, p):
            return i
    return -1


cdef int32_t acl_ct_lookup(Core* c, const Pkt* p, uint32_t zone, uint8_t* state) noexcept nogil:
    """ct_next in a switch port's zone: the ct_state flags, and the connection (-1: none).

    An ICMP error is related to the connection whose tuple (either
    direction) it quotes, and invalid without one (Linux conntrack: no
    connection, +trk+inv in OVS).  Otherwise an entry is est (rpl in its
    reply direction); none is new.
    """
    cdef CtSlot* slot
    cdef uint16_t sp, dp
    cdef uint64_t k1
    if p.proto == IPPROTO_ICMP and p.has_inner:
        k1 = (<uint64_t>p.in_src << 32) | p.in_dst
        if p.in_proto == IPPROTO_ICMP:
            # an ICMP query the error quotes: the engine keeps its identifier, not its type;
            # an echo request or an echo reply is what a VM's ping is
            slot = ct_find(&c.ct, k1, ct_k2(zone, IPPROTO_ICMP, p.in_sport, 8))
            if slot.conn < 0:
                slot = ct_find(&c.ct, k1, ct_k2(zone, IPPROTO_ICMP, p.in_sport, 0))
        else:
            slot = ct_find(&c.ct, k1, ct_k2(zone, p.in_proto, p.in_sport, p.in_dport))
        if slot.conn < 0:
            state[0] = ACT_TRK | ACT_INV
            return -1
        state[0] = ACT_TRK | ACT_REL | (ACT_BLOCKED if c.ct.conns[slot.conn].blocked else 0)
        return slot.conn
    if p.proto == IPPROTO_ICMP:
        # Linux conntrack's ICMP tuple: identifier and type (a ping each way is two connections)
        sp = p.icmp_id
        dp = p.icmp_type
    else:
        sp = p.sport
        dp = p.dport
    slot = ct_find(&c.ct, (<uint64_t>p.ip_src << 32) | p.ip_dst, ct_k2(zone, p.proto, sp, dp))
    if slot.conn >= 0 and ct_update(&c.ct, slot.conn, slot.reply, p) == CTU_NEW:
        # A SYN on a closed connection: OVS expires it and the SYN opens a new one.
        ct_remove(&c.ct, slot.conn)
        c.ct.expired += 1
        state[0] = ACT_TRK | ACT_NEW
        return -1
    if slot.conn < 0:
        if p.proto == IPPROTO_ICMP and (p.icmp_type == 0 or p.icmp_type == 14 or p.icmp_type == 16
                                        or p.icmp_type == 18):
            state[0] = ACT_TRK | ACT_INV   # a query's reply with no query: Linux calls it invalid
        else:
            state[0] = ACT_TRK | ACT_NEW
        return -1
    state[0] = (ACT_TRK | ACT_EST | (ACT_RPL if slot.reply else 0)
                | (ACT_BLOCKED if c.ct.conns[slot.conn].blocked else 0))
    return slot.conn


cdef void acl_commit(Core* c, const Pkt* p, uint32_t zone, int32_t ci, int32_t hit) noexcept nogil:
    """ct_commit { ct_mark.blocked = 0; } in the zone: a new connection, or the existing one unblocked.

    A new connection remembers the ACL its first packet matched (`hit`), so
    that its later packets in the original direction need no rule
    evaluation.  At the table's limit nothing is committed (the next packet
    is new again).
    """
    cdef Conntrack* ct = &c.ct
    cdef CtSlot* slot
    cdef CtConn* conn
    cdef uint16_t sp, dp
    cdef uint64_t k1, k2
    if ci >= 0:
        ct.conns[ci].blocked = 0
        return
    if p.proto == IPPROTO_ICMP:
        sp = p.icmp_id
        dp = p.icmp_type
    else:
        sp = p.sport
        dp = p.dport
    k1 = (<uint64_t>p.ip_src << 32) | p.ip_dst
    k2 = ct_k2(zone, p.proto, sp, dp)
    slot = ct_find(ct, k1, k2)
    if slot.conn >= 0:
        ct.conns[slot.conn].blocked = 0
        return
    # One expired connection goes before one is committed (as in ct_nat), so the
    # table holds no more than the most connections live at once.
    ct_sweep(ct, 1)
    if ct.limit > 0 and ct.n_live >= ct.limit:
        return
    if ct_reserve(ct) < 0:
        c.error = 1
        return
    ci = ct_commit(ct, zone, p.proto)   # its timeout class and expiry, counted as created
    conn = &ct.conns[ci]
    conn.osrc = conn.tsrc = p.ip_src
    conn.odst = conn.tdst = p.ip_dst
    conn.osport = sp
    conn.odport = dp
    # ct_remove finds the reply key as (zone, proto, tdport, tsport): an ICMP
    # query's is (identifier, reply type), as committed below.
    if p.proto == IPPROTO_ICMP:
        conn.tsport = icmp_reply_type(p.icmp_type)
        conn.tdport = sp
    else:
        conn.tsport = sp
        conn.tdport = dp
    conn.acl_hit = ACL_NOT_CACHED if p.proto == IPPROTO_ICMP else hit
    conn.blocked = 0
    ct_fill(ct, ct_slot(ct, k1, k2), k1, k2, ci, 0)
    k1 = (<uint64_t>p.ip_dst << 32) | p.ip_src
    if p.proto == IPPROTO_ICMP:
        k2 = ct_k2(zone, p.proto, sp, icmp_reply_type(p.icmp_type))
    else:
        k2 = ct_k2(zone, p.proto, dp, sp)
    ct_fill(ct, ct_find(ct, k1, k2), k1, k2, ci, 1)


cdef inline uint64_t acl_why(const Pkt* p, int32_t hit, int32_t port) noexcept nogil:
    # A drop record's second value (rules.py ARGS "aclwhy").
    cdef uint64_t l4 = p.icmp_type if p.proto == IPPROTO_ICMP else p.dport
    cdef uint64_t code = p.icmp_code if p.proto == IPPROTO_ICMP else 0
    return ((<uint64_t>hit << 48) | (<uint64_t>(<uint16_t>port) << 32) | (<uint64_t>p.proto << 24)
            | (code << 16) | l4)


cdef int acl_pass(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t port, int egress) noexcept nogil:
    """The ACL stages of `port`'s switch pipeline (0 ingress, 1 egress): 0 to go on, -1 dropped.

    Also traces ls_*_pre_lb's steps (its flows interleave with pre_acl's).
    The first packet of a connection evaluates the port's rules and the
    commit remembers the ACL it matched; a later packet in the original
    direction takes that verdict from its connection (the same rules, the
    same tuple: the same first match); replies and related ICMP errors of an
    allowed connection pass without rules (priority 65532), as in OVN.
    """
    cdef const AclPort* ap = &c.acl_ports[port]
    cdef int32_t sw = c.ports[port].sw, d = p.depth
    # The egress rules are the ingress ones' twins, in the same order in the catalogue.
    cdef int rb = (R_LS_OUT_PRE_ACL_STATELESS - R_LS_IN_PRE_ACL_STATELESS) if egress else 0
    cdef bint ip = p.eth_type == ETH_TYPE_IP4
    cdef bint mcast = (p.eth_dst >> 40) & 1
    cdef int32_t k, hit = -1, ci = -1, start, count
    cdef uint32_t zone = <uint32_t>(c.acl_zone_base + port)
    cdef uint32_t hint
    cdef uint8_t st
    cdef bint stateless = False, commit = False, cached = False
    cdef const AclRule* a
    # -- ls_*_pre_acl, ls_*_pre_lb, ls_*_pre_stateful
    if ip:
        start = ap.sl_start[egress]
        for k in range(start, start + ap.sl_count[egress]):
            if acl_match(c, &c.acls[c.acl_list[k]], p):
                hit = c.acl_list[k]
                stateless = True
                break
    if stateless:
        trace(c, tracing, f, R_LS_IN_PRE_ACL_STATELESS + rb, sw, d, <uint64_t>hit, 0)
    elif mcast:
        trace(c, tracing, f, R_LS_IN_PRE_ACL_MCAST + rb, sw, d, 0, 0)
    elif ip and ap.skip_ct:
        # No ct_next: the packet keeps the ct_state of the last one (ovn-trace's model, also
        # through a router: with no rules on these ports only 65532's verdicts read it, and
        # those the earlier pass already applied).
        trace(c, tracing, f, R_LS_IN_PRE_ACL_ROUTER + rb, sw, d, <uint64_t>port, 0)
    elif ip:
        trace(c, tracing, f, R_LS_IN_PRE_ACL_IP + rb, sw, d, 0, 0)
    if TraceMode is Traced:
        if mcast:
            trace_record(c, f, R_LS_OUT_PRE_LB_MCAST if egress else R_LS_IN_PRE_LB_MCAST, sw, d, 0, 0)
        elif stateless:
            trace_record(c, f, R_LS_IN_PRE_LB_STATELESS + rb, sw, d, 0, 0)
        elif ip and ap.skip_ct:
            trace_record(c, f, R_LS_OUT_PRE_LB_ROUTER if egress else R_LS_IN_PRE_LB_ROUTER, sw, d, <uint64_t>port, 0)
    if ip and not stateless and not mcast and not ap.skip_ct:
        ci = acl_ct_lookup(c, p, zone, &p.acl_ct)
        trace(c, tracing, f, R_LS_IN_PRE_STATEFUL + rb, sw, d, p.acl_ct, 0)
    st = p.acl_ct
    # -- ls_*_acl_hint
    if not (st & ACT_TRK):
        hint = H_ALLOW | H_DROP
        trace(c, tracing, f, R_LS_IN_ACL_HINT_UNTRACKED + rb, sw, d, 0, 0)
    elif st & ACT_NEW:
        hint = H_ALLOW_NEW | H_DROP
        trace(c, tracing, f, R_LS_IN_ACL_HINT_NEW + rb, sw, d, 0, 0)
    elif (st & ACT_EST) and not (st & ACT_RPL):
        if st & ACT_BLOCKED:
            hint = H_ALLOW_NEW | H_DROP
            trace(c, tracing, f, R_LS_IN_ACL_HINT_BLOCKED_NEW + rb, sw, d, 0, 0)
        else:
            hint = H_ALLOW | H_BLOCK
            trace(c, tracing, f, R_LS_IN_ACL_HINT_EST + rb, sw, d, 0, 0)
    elif not (st & ACT_EST):
        hint = H_DROP
        trace(c, tracing, f, R_LS_IN_ACL_HINT_NOT_EST + rb, sw, d, 0, 0)
    elif st & ACT_BLOCKED:
        hint = H_DROP
        trace(c, tracing, f, R_LS_IN_ACL_HINT_EST_BLOCKED + rb, sw, d, 0, 0)
    else:
        hint = H_BLOCK
        trace(c, tracing, f, R_LS_IN_ACL_HINT_EST_ALLOWED + rb, sw, d, 0, 0)
    if not ip:
        return 0            # every flow of ls_*_acl but the priority-0 one needs IP
    # -- ls_*_acl: conntrack's verdicts first (priority 65532)
    if st & ACT_TRK:
        if st & ACT_INV:
            emit_drop(c, tracing, f, R_LS_IN_ACL_INVALID + rb, sw, d, <uint64_t>port, 0)
            return -1
        if (st & ACT_EST) and (st & ACT_RPL) and (st & ACT_BLOCKED):
            emit_drop(c, tracing, f, R_LS_IN_ACL_BLOCKED_REPLY + rb, sw, d, <uint64_t>port, 0)
            return -1
        if ((st & ACT_REL) and not (st & ACT_BLOCKED)) or ((st & ACT_EST) and (st & ACT_RPL)):
            trace(c, tracing, f, (R_LS_IN_ACL_RELATED if st & ACT_REL else R_LS_IN_ACL_REPLY) + rb, sw, d, 0, 0)
            if not egress:
                trace(c, tracing, f, R_LS_IN_ACL_AFTER_LB, sw, d, 0, 0)
            return 0
    # -- priority 34000: a DHCP reply from the port's native responder (_dhcp.pxi)
    if egress and c.n_dhcp and p.proto == IPPROTO_UDP and p.sport == 67 and p.dport == 68:
        k = dhcp_reply_to(c, p, port)
        if k >= 0:
            trace(c, tracing, f, R_LS_OUT_ACL_DHCP_REPLY, sw, d, <uint64_t>k, 0)
            if not ap.skip_ct:
                acl_commit(c, p, zone, ci, -1)
            return 0
    # -- the port's ACLs
    if ci >= 0 and (st & ACT_EST) and not (st & ACT_RPL) and c.ct.conns[ci].acl_hit != ACL_NOT_CACHED:
        hit = c.ct.conns[ci].acl_hit        # a later packet of the connection: its first packet's match
    else:
        hit = acl_first(c, ap.start[egress], ap.count[egress], p, hint)
    if hit >= 0:
        a = &c.acls[hit]
        if a.action == ACL_ALLOW_STATELESS:
            trace(c, tracing, f, R_LS_IN_ACL_ALLOW_STATELESS + rb, sw, d, <uint64_t>hit, 0)
        elif a.action == ACL_ALLOW_RELATED:
            if hint & H_ALLOW_NEW:
                trace(c, tracing, f, R_LS_IN_ACL_ALLOW_NEW + rb, sw, d, <uint64_t>hit, 0)
                commit = True
            else:
                trace(c, tracing, f, R_LS_IN_ACL_ALLOW_EST + rb, sw, d, <uint64_t>hit, 0)
        else:
            if hint & H_BLOCK:
                if ci >= 0:
                    c.ct.conns[ci].blocked = 1     # ct_commit { ct_mark.blocked = 1; }
                emit_drop(c, tracing, f, R_LS_IN_ACL_DROP_BLOCK + rb, sw, d,
                          p.ip_src if egress else p.ip_dst, acl_why(p, hit, port))
            else:
                emit_drop(c, tracing, f, R_LS_IN_ACL_DROP + rb, sw, d,
                          p.ip_src if egress else p.ip_dst, acl_why(p, hit, port))
            return -1
    elif not (st & ACT_TRK):
        pass                # ct.* match only tracked packets (their prerequisite is ct.trk)
    elif not (st & ACT_EST):
        trace(c, tracing, f, R_LS_IN_ACL_DEFAULT_NEW + rb, sw, d, 0, 0)
        commit = True
    elif st & ACT_BLOCKED:
        trace(c, tracing, f, R_LS_IN_ACL_DEFAULT_UNBLOCK + rb, sw, d, 0, 0)
        commit = True
    # -- ls_*_stateful (a router or localnet port's commit goes to a zone no VM's traffic reads: skipped)
    if commit:
        trace(c, tracing, f, R_LS_IN_STATEFUL + rb, sw, d, 0, 0)
        if not ap.skip_ct:
            acl_commit(c, p, zone, ci, hit)
    return 0
