# _switch.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# The logical switch pipeline (ls_in_*, ls_out_*).

# ---------------------------------------------------------------------------
# Logical switch (_Run.ls_ingress, _flood, ls_egress)
# ---------------------------------------------------------------------------

cdef void ls_ingress(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p) noexcept nogil:
    cdef const SwPort* inp = &c.ports[p.inport]
    cdef int32_t sw = inp.sw
    cdef int32_t d = p.depth
    cdef uint64_t v, mac
    cdef uint32_t tpa
    cdef bint arp_req
    p.op = OP_DONE
    if d >= MAX_HOPS:
        emit_drop(c, tracing, f, R_LS_IN_LOOP_LIMIT, sw, d, 0, 0)
        return
    p.loopback = 0
    p.outport = -1
    if (p.eth_src >> 40) & 1:
        emit_drop(c, tracing, f, R_LS_IN_MCAST_SRC, sw, d, 0, 0)
        return
    if p.vlan:
        emit_drop(c, tracing, f, R_LS_IN_VLAN, sw, d, 0, 0)
        return
    if not inp.enabled:
        emit_drop(c, tracing, f, R_LS_IN_PORT_DISABLED, sw, d, p.inport, 0)
        return
    if inp.psec_count and not in_port_sec_ok(c, inp, p):
        trace(c, tracing, f, R_LS_IN_PORT_SEC_CHECKED, sw, d, 0, 0)
        emit_drop(c, tracing, f, R_LS_IN_PORT_SEC_DROP, sw, d, p.inport, 0)
        return
    trace(c, tracing, f, R_LS_IN_PORT_SEC, sw, d, 0, 0)
    if TraceMode is Traced and inp.fdb:
        # Pass-through stages OVN's trace shows: FDB learning.
        trace_record(c, f, R_LS_IN_LOOKUP_FDB, sw, d, p.inport, 0)
        trace_record(c, f, R_LS_IN_PUT_FDB, sw, d, p.inport, 0)
    if c.acl_ports != NULL and c.acl_ports[p.inport].active:
        # ls_in_pre_acl .. ls_in_stateful (pre_lb's steps included)
        if acl_pass(c, tracing, f, p, p.inport, 0) < 0:
            return
    elif TraceMode is Traced:
        if (p.eth_dst >> 40) & 1:
            trace_record(c, f, R_LS_IN_PRE_LB_MCAST, sw, d, 0, 0)
        elif inp.pre_lb and p.eth_type == ETH_TYPE_IP4:
            trace_record(c, f, R_LS_IN_PRE_LB_ROUTER, sw, d, p.inport, 0)
    if TraceMode is Traced and inp.is_localnet:
        trace_record(c, f, R_LS_IN_ARP_RSP_LOCALNET, sw, d, p.inport, 0)
    arp_req = p.eth_type == ETH_TYPE_ARP and p.arp_op == 1
    if arp_req:
        # ls_in_arp_rsp
        if TraceMode is Traced and not inp.is_localnet and map_get(&c.arp_rsp, (<uint64_t>sw << 32) | p.arp_tpa, &v) \
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
            trace(c, tracing, f, R_LS_IN_ARP_RSP, sw, d, tpa, mac)
            return
        # ls_in_l2_lkup prio 80: clone to the router port, flood to the others
        if map_get(&c.router_arp, (<uint64_t>sw << 32) | p.arp_tpa, &v):
            trace(c, tracing, f, R_LS_IN_L2_ARP_ROUTER, sw, d, p.arp_tpa, v)
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
            trace(c, tracing, f, R_LS_IN_L2_ROUTER_SRC, sw, d, 0, p.eth_src)
            p.group = G_FLOOD_L2
            p.op = OP_FLOOD_START
            return
    # ls_in_dhcp_options, ls_in_dhcp_response (_dhcp.pxi)
    if c.n_dhcp and p.eth_type == ETH_TYPE_IP4 and p.proto == IPPROTO_UDP and p.sport == 68 \
            and p.dport == 67 and not p.generated and dhcp_stage(c, tracing, f, p, sw, d):
        return
    if (p.eth_dst >> 40) & 1:
        trace(c, tracing, f, R_LS_IN_L2_MCAST, sw, d, 0, 0)
        p.group = G_FLOOD
        p.op = OP_FLOOD_START
        return
    if map_get(&c.mac_table, (<uint64_t>sw << 48) | p.eth_dst, &v):
        trace(c, tracing, f, R_LS_IN_L2_UNICAST, sw, d, v, p.eth_dst)
        if <int32_t>v == p.inport and not p.loopback:
            emit_drop(c, tracing, f, R_LS_IN_L2_SAME_PORT, sw, d, 0, p.eth_dst)
            return
        p.outport = <int32_t>v
        p.op = OP_LS_OUT
        return
    trace(c, tracing, f, R_LS_IN_L2_GET_FDB, sw, d, 0, 0)
    if c.switches[sw].group_count[G_UNKNOWN] == 0:
        emit_drop(c, tracing, f, R_LS_IN_UNKNOWN_DROP, sw, d, 0, p.eth_dst)
        return
    trace(c, tracing, f, R_LS_IN_UNKNOWN, sw, d, 0, 0)
    p.group = G_UNKNOWN
    p.op = OP_FLOOD_START


cdef void flood_start(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p) noexcept nogil:
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
    emit_drop(c, tracing, f, R_LS_IN_UNKNOWN_NO_OTHER_PORT if p.group == G_UNKNOWN else R_LS_IN_L2_NO_OTHER_PORT,
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


cdef void ls_egress(Core* c, const TraceMode* tracing, const FrameCtx* f, Pkt* p) noexcept nogil:
    cdef int32_t out = p.outport
    cdef const SwPort* port = &c.ports[out]
    p.op = OP_DONE
    if c.acl_ports != NULL and c.acl_ports[out].active:
        # ls_out_pre_acl .. ls_out_stateful (pre_lb's steps included)
        if acl_pass(c, tracing, f, p, out, 1) < 0:
            return
    elif TraceMode is Traced:
        if (p.eth_dst >> 40) & 1:
            trace_record(c, f, R_LS_OUT_PRE_LB_MCAST, port.sw, p.depth, 0, 0)
        elif port.pre_lb and p.eth_type == ETH_TYPE_IP4:
            trace_record(c, f, R_LS_OUT_PRE_LB_ROUTER, port.sw, p.depth, out, 0)
    if not port.enabled:
        emit_drop(c, tracing, f, R_LS_OUT_PORT_DISABLED, port.sw, p.depth, out, 0)
        return
    trace(c, tracing, f, R_LS_OUT_CHECK_PORT_SEC_MCAST if (p.eth_dst >> 40) & 1 else R_LS_OUT_CHECK_PORT_SEC,
          port.sw, p.depth, 0, 0)
    # ls_out_check_port_sec: multicast skips it (prio 100 eth.mcast).
    if port.psec_count and not ((p.eth_dst >> 40) & 1) and not out_port_sec_ok(c, port, p):
        emit_drop(c, tracing, f, R_LS_OUT_PORT_SEC_DROP, port.sw, p.depth, out, 0)
        return
    trace(c, tracing, f, R_LS_OUT_PORT_SEC, port.sw, p.depth, 0, 0)
    if port.peer_lrp >= 0:
        p.inport = port.peer_lrp
        p.depth += 1
        p.op = OP_LR_IN
        return
    emit_output(c, f, p, out)
    trace(c, tracing, f, R_LS_OUT_OUTPUT, port.sw, p.depth, out, 0)
