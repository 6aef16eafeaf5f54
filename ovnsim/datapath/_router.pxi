# _router.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# The logical router pipeline (lr_in_*, lr_out_*).

# ---------------------------------------------------------------------------
# Logical router (_Run.lr_ingress .. lr_egress)
# ---------------------------------------------------------------------------

cdef void lr_ingress(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p) noexcept nogil:
    cdef const RtrPort* rp = &c.rports[p.inport]
    cdef int32_t r = rp.router
    cdef const Router* R = &c.routers[r]
    cdef int32_t dp = c.n_switches + r
    cdef int32_t d = p.depth
    cdef bint admitted
    cdef int32_t k
    p.op = OP_DONE
    if d >= MAX_HOPS:
        emit_drop(c, tracing, f, R_LR_IN_LOOP_LIMIT, dp, d, 0, 0)
        return
    p.loopback = 0
    p.outport = -1
    p.ct_trk = 0
    p.ct_rpl = 0
    if p.vlan or (p.eth_src >> 40) & 1:
        emit_drop(c, tracing, f, R_LR_IN_ADMISSION_VLAN_MCAST, dp, d, 0, 0)
        return
    if not R.enabled or not rp.enabled:
        emit_drop(c, tracing, f, R_LR_IN_PORT_DISABLED, dp, d, 0, 0)
        return
    admitted = ((p.eth_dst >> 40) & 1) or p.eth_dst == rp.mac
    if not admitted and rp.gateway:
        for k in range(R.nat_start, R.nat_start + R.nat_count):
            if c.nats[k].distributed and c.nats[k].external_mac == p.eth_dst:
                admitted = True
                break
    if not admitted:
        emit_drop(c, tracing, f, R_LR_IN_ADMISSION_DROP, dp, d, p.inport, p.eth_dst)
        return
    p.xreg0 = rp.mac
    trace(c, tracing, f, R_LR_IN_ADMISSION, dp, d, p.inport, p.eth_dst)
    if p.eth_type == ETH_TYPE_ARP:
        lr_arp(c, tracing, f, p, r, rp)
        return
    if TraceMode is Traced:
        trace_record(c, f, R_LR_IN_LOOKUP_NEIGHBOR, dp, d, 0, 0)
        trace_record(c, f, learn_skip(c, r), dp, d, 0, 0)
    if p.eth_type != ETH_TYPE_IP4:
        emit_drop(c, tracing, f, R_LR_IN_NOT_IP4, dp, d, 0, 0)
        return
    lr_ip(c, tracing, f, p, r, rp)


cdef inline int32_t network_for(const Core* c, const RtrPort* rp, uint32_t ip) noexcept nogil:
    cdef int32_t k
    for k in range(rp.net_start, rp.net_start + rp.net_count):
        if (ip & c.rnets[k].mask) == c.rnets[k].network:
            return k
    return -1


cdef inline int learn_skip(const Core* c, int32_t r) noexcept nogil:
    # lr_in_learn_neighbor's "nothing to learn" flow, as the router's option words it.
    return R_LR_IN_LEARN_SKIP_ALWAYS if c.routers[r].always_learn else R_LR_IN_LEARN_SKIP


cdef void lr_arp_trace(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp, bint learn) noexcept nogil:
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


cdef void lr_arp(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
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
    if TraceMode is Traced:
        lr_arp_trace(c, tracing, f, p, r, rp, learn)
    if learn:
        # lr_in_learn_neighbor: put_arp
        if map_put(&c.bindings, key, p.arp_sha) < 0:
            c.error = 1
            return
        if c.n_held:
            held_resolved(c, key, p.arp_sha)
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
            trace(c, tracing, f, rule, c.n_switches + r, p.depth, tpa, p.inport)
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
            lr_egress(c, tracing, f, p)
            return
    emit_drop(c, tracing, f, R_LR_IN_ARP_DROP, c.n_switches + r, p.depth, 0, 0)


cdef inline bint _martian_net(uint32_t a) noexcept nogil:
    # 127.0.0.0/8 or 0.0.0.0/8
    return (a & 0xff000000U) == 0x7f000000U or (a & 0xff000000U) == 0


cdef void lr_ip(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
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
        trace(c, tracing, f, R_LR_IN_IP_INPUT_OWN_SRC, dp, p.depth, src, p.inport)
    if not own_src_ok and not p.hairpin and ip_flags(c, r, src) & IPF_MARTIAN_SRC:
        emit_drop(c, tracing, f, R_LR_IN_MARTIAN_OWN, dp, p.depth, src, 0)
        return
    if (src >> 28) == 0xe or src == 0xffffffffU or _martian_net(src) or _martian_net(dst):
        emit_drop(c, tracing, f, R_LR_IN_MARTIAN, dp, p.depth, 0, 0)
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
        trace(c, tracing, f, R_LR_IN_ECHO, dp, p.depth, dst, 0)
        lr_after_input(c, tracing, f, p, r, rp, ip_info(c, r, p.ip_dst))
        return
    if (dst >> 28) == 0xe:
        emit_drop(c, tracing, f, R_LR_IN_MCAST_DROP, dp, p.depth, 0, 0)
        return
    if dflags & IPF_OWN and R.answers_l4 and not p.later_frag:
        lr_l4_reject(c, tracing, f, p, r, rp)
        return
    if dflags & IPF_DROP:
        emit_drop(c, tracing, f, R_LR_IN_ROUTER_ADDRESS, dp, p.depth, dst, 0)
        return
    if p.eth_dst == BCAST_MAC:
        emit_drop(c, tracing, f, R_LR_IN_BCAST, dp, p.depth, 0, 0)
        return
    if p.ttl <= 1:
        if p.later_frag:
            emit_drop(c, tracing, f, R_LR_IN_TTL_DROP, dp, p.depth, 0, 0)
            return
        lr_time_exceeded(c, tracing, f, p, r, rp)
        return
    lr_after_input(c, tracing, f, p, r, rp, dinfo)


cdef inline void _swap_eth(Pkt* p) noexcept nogil:
    cdef uint64_t t = p.eth_src
    p.eth_src = p.eth_dst
    p.eth_dst = t


cdef void lr_l4_reject(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
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
        # pinctrl_handle_tcp_reset (OVN 23.03): RST+ACK, seq 0, ack = the
        # segment's seq + 1 whatever its flags and payload, the ports swapped;
        # composed with TTL 63 and TOS 0 (pinctrl_compose_ipv4), then routed.
        p.tcp_ack = p.tcp_seq + 1
        p.tcp_seq = 0
        t = p.sport
        p.sport = p.dport
        p.dport = <uint16_t>t
        p.tcp_flags = 0x14
        p.tcp_dlen = 0
        p.ttl = 63
        p.tos = 0
        p.kind = KIND_TCP_RESET
        trace(c, tracing, f, R_LR_IN_TCP_RESET, c.n_switches + r, p.depth, p.ip_src, 0)
    else:
        p.icmp_code = 3 if p.proto == IPPROTO_UDP else 2
        p.proto = IPPROTO_ICMP
        p.icmp_type = 3
        p.icmp_id = 0       # bytes 4-7 of an ICMP error are zero
        parse_inner(c.quotes + p.quote_ofs, p.quote_len, p)
        p.kind = KIND_ICMP4
        trace(c, tracing, f, R_LR_IN_PORT_UNREACH if p.icmp_code == 3 else R_LR_IN_PROTO_UNREACH,
              c.n_switches + r, p.depth, p.ip_src, 0)
    lr_after_input(c, tracing, f, p, r, rp, ip_info(c, r, p.ip_dst))


cdef void lr_time_exceeded(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp) noexcept nogil:
    """_lr_time_exceeded: ICMP 11/0 back out of the in-port."""
    cdef uint32_t t
    if rp.net_count == 0:
        emit_drop(c, tracing, f, R_LR_IN_TTL_DROP, c.n_switches + r, p.depth, 0, 0)
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
    trace(c, tracing, f, R_LR_IN_TTL_EXCEEDED, c.n_switches + r, p.depth, p.inport, 0)
    lr_egress(c, tracing, f, p)


cdef void lr_after_input(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t r, const RtrPort* rp,
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
    cdef uint64_t v, done = 0
    # lr_in_unsnat
    if info != NULL and info.unsnat >= 0:
        dst0 = p.ip_dst
        if R.gateway_router:
            done = ct_nat(c, p, r, Z_SNAT, False, 0, False, 0)
            trace(c, tracing, f, R_LR_IN_UNSNAT_GR, dp, d, dst0, done)
        elif from_gw:
            # (every flow but the SNAT-zone one matches flags.loopback == 0)
            if not p.loopback and c.nats[info.unsnat].stateless:
                trace(c, tracing, f, R_LR_IN_UNSNAT_STATELESS, dp, d, dst0, 0)
            elif not p.loopback:
                done = ct_nat(c, p, r, Z_COMMON, False, 0, False, 0)
                trace(c, tracing, f, R_LR_IN_UNSNAT_DGP, dp, d, dst0, done)
            elif p.use_snat_zone and not c.nats[info.unsnat].stateless:
                done = ct_nat(c, p, r, Z_SNAT, False, 0, False, 0)
                trace(c, tracing, f, R_LR_IN_UNSNAT_SNAT_ZONE, dp, d, dst0, done)
        if p.ip_dst != dst0:
            info = ip_info(c, r, p.ip_dst)
    # lr_in_dnat
    if info != NULL and info.dnat >= 0 and (R.gateway_router or from_gw):
        nat = &c.nats[info.dnat]
        if nat.stateless:
            p.ip_dst = nat.logical_net
            trace(c, tracing, f, R_LR_IN_DNAT_STATELESS, dp, d, info.dnat, 0)
        elif R.gateway_router:
            p.loopback = 1
            k = info.dnat
            done = ct_nat(c, p, r, Z_DNAT, False, 0, True, nat.logical_net)
            trace(c, tracing, f, R_LR_IN_DNAT_GR, dp, d, k, done)
        else:
            k = info.dnat
            done = ct_nat(c, p, r, Z_COMMON, False, 0, True, nat.logical_net)
            trace(c, tracing, f, R_LR_IN_DNAT_DGP, dp, d, k, done)
        info = ip_info(c, r, p.ip_dst)
        if (done & 0xff) == CT_FULL:
            emit_drop(c, tracing, f, R_LR_IN_DNAT_CT_FULL, dp, d, <uint32_t>c.ct.limit, 0)
            return
    if c.error:
        return
    trace(c, tracing, f, R_LR_IN_ROUTING_PRE, dp, d, 0, 0)
    # lr_in_ip_routing (first match in priority order = LPM)
    for k in range(R.route_start, R.route_start + R.route_count):
        if (p.ip_dst & c.routes[k].mask) == c.routes[k].network:
            route = &c.routes[k]
            break
    if route == NULL:
        emit_drop(c, tracing, f, R_LR_IN_NO_ROUTE, dp, d, p.ip_dst, 0)
        return
    p.ttl = <uint8_t>(p.ttl - 1)
    p.reg0 = route.nexthop if route.has_nexthop else p.ip_dst
    p.reg1 = route.src_ip
    p.eth_src = route.src_mac
    out = route.outport
    p.outport = out
    p.loopback = 1
    trace(c, tracing, f, R_LR_IN_ROUTE, dp, d, k, p.reg0)
    if TraceMode is Traced:
        trace_record(c, f, R_LR_IN_ROUTING_ECMP, dp, d, 0, 0)
        trace_record(c, f, R_LR_IN_POLICY, dp, d, 0, 0)
        trace_record(c, f, R_LR_IN_POLICY_ECMP, dp, d, 0, 0)
    # lr_in_arp_resolve
    if (p.ip_dst >> 28) != 0xe:
        if out == gw and from_gw and info != NULL and info.flags & IPF_NAT:
            emit_drop(c, tracing, f, R_LR_IN_NAT_ADDRESS, dp, d, p.ip_dst, 0)
            return
        if map_get(&c.arp_static, (<uint64_t>out << 32) | p.reg0, &v):
            p.eth_dst = v
            trace(c, tracing, f, R_LR_IN_ARP_STATIC, dp, d, p.reg0, (<uint64_t>out << 48) | v)
        elif info != NULL and info.flags & IPF_SNAT_OWN:
            emit_drop(c, tracing, f, R_LR_IN_ARP_RESOLVE_ROUTER, dp, d, p.ip_dst, 0)
            return
        else:
            if map_get(&c.bindings, (<uint64_t>out << 32) | p.reg0, &v):
                p.eth_dst = v
            else:
                p.eth_dst = 0
            trace(c, tracing, f, R_LR_IN_GET_ARP, dp, d, 0, p.eth_dst)
    # lr_in_gw_redirect: a distributed FIP leaves with its own MAC.
    if out == gw and R.has_distributed and map_get(&c.gw_redirect, (<uint64_t>r << 32) | p.ip_src, &v):
        p.eth_src = c.nats[v].external_mac
        p.reg1 = c.nats[v].external_ip
        trace(c, tracing, f, R_LR_IN_GW_REDIRECT, dp, d, v, 0)
    elif out == gw:
        trace(c, tracing, f, R_LR_IN_GW_REDIRECT_CR, dp, d, 0, 0)
    # lr_in_arp_request: the frame becomes an ARP request for the next hop.
    if p.eth_dst == 0:
        trace(c, tracing, f, R_LR_IN_ARP_REQUEST, dp, d, p.reg1, p.reg0)
        if not c.no_hold:
            hold(c, f, p, out)
            trace(c, tracing, f, R_LR_IN_ARP_HOLD, dp, d, p.reg0, 0)
        _make_arp_request(p, out)
    else:
        trace(c, tracing, f, R_LR_IN_ARP_REQUEST_NONE, dp, d, 0, 0)
    lr_egress(c, tracing, f, p)


cdef void _make_arp_request(Pkt* p, int32_t out) noexcept nogil:
    # A fresh Packet(): every field zero but those the arp action sets.
    cdef uint64_t mac = p.eth_src
    cdef uint32_t spa = p.reg1, tpa = p.reg0
    cdef int32_t inport = p.inport, depth = p.depth
    cdef uint8_t acl_ct = p.acl_ct
    memset(p, 0, sizeof(Pkt))
    p.acl_ct = acl_ct       # the ct_state the ACL stages last loaded stays with it, as in ovn-trace
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


cdef void lr_egress(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p) noexcept nogil:
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
        # lr_out_chk_dnat_local: reg9[4] = 1 for every NAT address of the router
        # (a flow per external IP, SNAT ones included), so a hairpin to one of them
        # is un-SNATed in the SNAT zone once looped back
        if gw >= 0:
            info = ip_info(c, r, p.ip_dst)
            p.dnat_local = info != NULL and (info.flags & IPF_NAT) != 0
        else:
            p.dnat_local = 0
        if p.dnat_local:
            trace(c, tracing, f, R_LR_OUT_CHK_DNAT_LOCAL_NAT, dp, p.depth, p.ip_dst, 0)
        else:
            trace(c, tracing, f, R_LR_OUT_CHK_DNAT_LOCAL, dp, p.depth, 0, 0)
        # lr_out_undnat
        if R.gateway_router:
            p.loopback = 1
            done = ct_nat(c, p, r, Z_DNAT, False, 0, False, 0)
            if done == CT_NO_ENTRY and not ct_valid_new(p):
                done = CT_INVALID       # (an echo reply, an ICMP error...: ct.inv, not ct.new)
            trace(c, tracing, f, R_LR_OUT_UNDNAT_GR, dp, p.depth, p.ip_src, done)
            # lr_out_post_undnat: ip && ct.new => ct_commit { } (a no-op for a
            # connection this packet committed in the zone already: a hairpin's DNAT)
            if done == CT_NO_ENTRY:
                done = ct_commit_plain(c, p, r, Z_DNAT)
                if c.error:
                    return
                if done == CT_FULL:
                    emit_drop(c, tracing, f, R_LR_OUT_POST_UNDNAT_CT_FULL, dp, p.depth, <uint32_t>c.ct.limit, 0)
                    return
                trace(c, tracing, f, R_LR_OUT_POST_UNDNAT_GR, dp, p.depth, 0, done)
            elif done == CT_ALREADY_NEW:
                trace(c, tracing, f, R_LR_OUT_POST_UNDNAT_GR, dp, p.depth, 0, done)
        elif out == gw and map_get(&c.undnat_fip, (<uint64_t>r << 32) | p.ip_src, &v):
            fip = &c.nats[v]
            if not fip.stateless:
                if fip.distributed:
                    p.eth_src = fip.external_mac
                done = ct_nat(c, p, r, Z_COMMON, False, 0, False, 0)
                trace(c, tracing, f, R_LR_OUT_UNDNAT_DGP, dp, p.depth, p.ip_src, done)
            else:
                trace(c, tracing, f, R_LR_OUT_UNDNAT_STATELESS, dp, p.depth, p.ip_src, 0)
        # lr_out_snat
        if R.gateway_router or out == gw:
            if lr_snat(c, tracing, f, p, r, R):
                emit_drop(c, tracing, f, R_LR_OUT_SNAT_CT_FULL, dp, p.depth, <uint32_t>c.ct.limit, 0)
                return
        if c.error:
            return
        # lr_out_egr_loop: a DGP sends traffic for its own NAT addresses back into its ingress.
        if out == gw and ip_flags(c, r, p.ip_dst) & IPF_NAT:
            trace(c, tracing, f, R_LR_OUT_EGR_LOOP, dp, p.depth, p.ip_dst, 0)
            p.ct_zones = 0
            p.acl_ct = 0        # its ct_clear
            p.inport = out
            p.outport = -1
            _swap_eth(p)
            p.use_snat_zone = p.dnat_local
            p.hairpin = 1
            p.op = OP_REENTER
            return
    else:
        trace(c, tracing, f, R_LR_OUT_CHK_DNAT_LOCAL, dp, p.depth, 0, 0)
    # lr_out_delivery
    trace(c, tracing, f, R_LR_OUT_DELIVERY, dp, p.depth, out, 0)
    if op.peer_lsp < 0:
        emit_drop(c, tracing, f, R_LR_OUT_NOT_ATTACHED, dp, p.depth, out, 0)
        return
    p.inport = op.peer_lsp
    p.hairpin = 0
    p.use_snat_zone = 0
    p.ct_zones = 0
    p.depth += 1
    p.op = OP_LS_IN


cdef void lr_reenter(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p) noexcept nogil:
    """_reenter: the hairpinned copy runs the router's ingress again."""
    cdef const RtrPort* rp = &c.rports[p.inport]
    p.op = OP_DONE
    if p.depth + 1 >= MAX_HOPS:
        emit_drop(c, tracing, f, R_LR_OUT_LOOP_LIMIT, c.n_switches + rp.router, p.depth, 0, 0)
        return
    p.xreg0 = rp.mac
    p.loopback = 1
    p.depth += 1
    trace(c, tracing, f, R_LR_IN_REENTER, c.n_switches + rp.router, p.depth, p.inport, 0)
    if TraceMode is Traced:
        trace_record(c, f, R_LR_IN_LOOKUP_NEIGHBOR, c.n_switches + rp.router, p.depth, 0, 0)
        trace_record(c, f, learn_skip(c, rp.router), c.n_switches + rp.router, p.depth, 0, 0)
    lr_ip(c, tracing, f, p, rp.router, rp)


cdef bint lr_snat(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p, int32_t r, const Router* R) noexcept nogil:
    """_lr_snat: the first lr_out_snat entry whose logical_ip holds ip4.src; True: the table is full."""
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
            trace(c, tracing, f, R_LR_OUT_SNAT_STATELESS, dp, p.depth, k, 0)
            return False
        if R.gateway_router:
            if p.ct_trk and p.ct_rpl:
                return False    # (!ct.trk || !ct.rpl): replies are not SNATed again
            done = ct_nat(c, p, r, Z_SNAT, True, n.external_ip, False, 0)
            trace(c, tracing, f, R_LR_OUT_SNAT_GR_GW if R.gw_port >= 0 else R_LR_OUT_SNAT_GR, dp, p.depth, k, done)
        else:
            if n.distributed:
                p.eth_src = n.external_mac
            if p.dnat_local:
                # "reg9[4] = 0; ct_snat(...)": a copy looped back after this SNAT
                # is not un-SNATed in the SNAT zone (flags.use_snat_zone = reg9[4])
                p.dnat_local = 0
                done = ct_nat(c, p, r, Z_SNAT, True, n.external_ip, False, 0)
                trace(c, tracing, f, R_LR_OUT_SNAT_DNAT_LOCAL, dp, p.depth, k, done)
            else:
                done = ct_nat(c, p, r, Z_COMMON, True, n.external_ip, False, 0)
                trace(c, tracing, f, R_LR_OUT_SNAT_CZONE, dp, p.depth, k, done)
        return (done & 0xff) == CT_FULL
    return False
