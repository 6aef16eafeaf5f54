# Lowering: the compiled tables (ovnsim.northd.tables, Python objects) into the
# engine's C tables (Core), once per FastEngine.  Nothing here runs per packet.

cdef lower(FastEngine self, tables, ip_to_int, mac_to_int):
    """Lower ``tables`` (ovnsim.northd.tables) into the engine's C tables (``self.core``)."""
    cdef Core* c = &self.core
    cdef Router* R
    cdef Py_ssize_t i, k
    cdef dict port_index = self.port_index
    switches = list(tables.switches.values())
    routers = list(tables.routers.values())
    nsw, nr, nports = len(switches), len(routers), len(self.port_names)
    # Keys pack a switch into 16 bits and owner ports into 16 bits of a value.
    if nsw >= 0xffff or nports >= 0xffff or nr >= 0x7fffffff:
        raise EngineError("topology too large for the fast engine (65534 switches/ports at most)")
    c.n_ports, c.n_switches, c.n_routers = nports, nsw, nr

    lrp_index = {}
    for lr in routers:
        for name in lr.ports:
            lrp_index[name] = len(lrp_index)
    c.n_rports = len(lrp_index)
    self.router_port_names = list(lrp_index)

    # -- switches and their ports
    c.ports = <SwPort*>_c_array(nports, sizeof(SwPort))
    c.switches = <Switch*>_c_array(nsw, sizeof(Switch))
    members, psec, pfx = [], [], []
    mac_table, arp_rsp, router_arp, router_src = {}, {}, {}, {}
    for s, ls in enumerate(switches):
        for name, sp in ls.ports.items():
            i = port_index[name]
            c.ports[i].sw = s
            c.ports[i].enabled = bool(sp.enabled)
            c.ports[i].is_localnet = bool(sp.is_localnet)
            c.ports[i].fdb = bool(sp.unknown and sp.type == "")
            c.ports[i].pre_lb = bool(sp.is_router or sp.is_localnet)
            c.ports[i].peer_lrp = -1
            if sp.is_router and sp.peer:
                if sp.peer not in lrp_index:
                    raise EngineError(f"switch port {name!r} names router port {sp.peer!r}, which no router has")
                c.ports[i].peer_lrp = lrp_index[sp.peer]
            c.ports[i].psec_start = len(psec)
            c.ports[i].psec_count = len(sp.port_security)
            for entry in sp.port_security:
                psec.append((entry.mac, len(pfx), len(entry.prefixes)))
                pfx.extend(entry.prefixes)
        for g, group in enumerate((ls.flood, ls.flood_l2, ls.unknown)):
            c.switches[s].group_start[g] = len(members)
            c.switches[s].group_count[g] = len(group)
            members.extend(port_index[name] for name in group)
        for mac, name in ls.mac_table.items():
            mac_table[(s << 48) | mac] = port_index[name]
        for ip, (mac, owner) in ls.arp_responder.items():
            arp_rsp[(s << 32) | ip] = (port_index[owner] << 48) | mac
        for ip, name in ls.router_arp.items():
            router_arp[(s << 32) | ip] = port_index[name]
        for mac in ls.router_arp_sources:
            router_src[(s << 48) | mac] = 1
    c.members = <int32_t*>_c_array(len(members), sizeof(int32_t))
    for k, v in enumerate(members):
        c.members[k] = v
    c.psec = <PortSec*>_c_array(len(psec), sizeof(PortSec))
    for k, (mac, start, count) in enumerate(psec):
        c.psec[k].mac, c.psec[k].pfx_start, c.psec[k].pfx_count = mac, start, count
    c.pfx = <Prefix4*>_c_array(len(pfx), sizeof(Prefix4))
    for k, prefix in enumerate(pfx):
        c.pfx[k].network, c.pfx[k].mask = prefix.network, prefix.mask
        c.pfx[k].bcast, c.pfx[k].plen = prefix.broadcast, prefix.plen
    map_fill(&c.mac_table, mac_table)
    map_fill(&c.arp_rsp, arp_rsp)
    map_fill(&c.router_arp, router_arp)
    map_fill(&c.router_src, router_src)

    # -- routers
    c.routers = <Router*>_c_array(nr, sizeof(Router))
    c.rports = <RtrPort*>_c_array(len(lrp_index), sizeof(RtrPort))
    rnets, routes, nats, snat_order, ipinfo = [], [], [], [], []
    ip_map, arp_static, bindings, gw_redirect, undnat_fip = {}, {}, {}, {}, {}
    for r, lr in enumerate(routers):
        R = &c.routers[r]
        R.gw_port = lrp_index[lr.gateway_port] if lr.gateway_port is not None else -1
        R.gateway_router = bool(lr.gateway_router)
        R.enabled = bool(lr.enabled)
        R.answers_l4 = bool(lr.answers_l4)
        R.has_distributed = any(n.distributed for n in lr.nat)
        R.always_learn = bool(lr.always_learn_from_arp_request)
        R.port_start = lrp_index[next(iter(lr.ports))] if lr.ports else 0
        R.port_count = len(lr.ports)
        for name, rp in lr.ports.items():
            i = lrp_index[name]
            c.rports[i].mac = rp.mac
            c.rports[i].router = r
            c.rports[i].peer_lsp = port_index[rp.peer] if rp.peer is not None else -1
            c.rports[i].gateway = bool(rp.gateway)
            c.rports[i].enabled = bool(rp.enabled)
            c.rports[i].net_start = len(rnets)
            c.rports[i].net_count = len(rp.networks)
            rnets.extend(rp.networks)
        R.route_start, R.route_count = len(routes), len(lr.routes)
        routes.extend(lr.routes)
        nat_of = {}
        R.nat_start, R.nat_count = len(nats), len(lr.nat)
        for n in lr.nat:
            nat_of[id(n)] = len(nats)
            nats.append(n)
        R.snat_start, R.snat_count = len(snat_order), len(lr.snat)
        snat_order.extend(nat_of[id(n)] for _prio, n in lr.snat)

        info = {}   # ip -> [first_nat, dnat, unsnat, flags]
        for rp in lr.ports.values():
            for ip, prefix in rp.networks:
                info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_OWN | IPF_MARTIAN_SRC
                info.setdefault(prefix.broadcast, [-1, -1, -1, 0])[3] |= IPF_MARTIAN_SRC
        for ip in lr.drop_ips:
            info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_DROP
        for ip in lr.snat_own_ips:
            info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_SNAT_OWN
        for ip in lr.nat_ips:
            info.setdefault(ip, [-1, -1, -1, 0])[3] |= IPF_NAT
        for n in lr.nat:
            entry = info.setdefault(n.external_ip, [-1, -1, -1, 0])
            if entry[0] < 0:
                entry[0] = nat_of[id(n)]
        for ip, n in lr.dnat.items():
            info.setdefault(ip, [-1, -1, -1, 0])[1] = nat_of[id(n)]
        for ip, n in lr.unsnat_ips.items():
            info.setdefault(ip, [-1, -1, -1, 0])[2] = nat_of[id(n)]
        for ip, entry in info.items():
            ip_map[(r << 32) | ip] = len(ipinfo)
            ipinfo.append(entry)
        for (name, ip), mac in lr.arp_static.items():
            arp_static[(lrp_index[name] << 32) | ip] = mac
        for (name, ip), mac in lr.mac_bindings.items():
            bindings[(lrp_index[name] << 32) | ip] = mac
        for n in lr.nat:
            if n.distributed and n.logical.plen == 32:
                gw_redirect.setdefault((r << 32) | n.logical.network, nat_of[id(n)])
        for n in lr.dnat.values():
            undnat_fip.setdefault((r << 32) | n.logical.network, nat_of[id(n)])

    # The rows trace records point at (by index), for the renderer.
    self.nat_rows = nats
    self.route_rows = routes
    self.snat_rows = [(prio, n) for lr in routers for prio, n in lr.snat]
    c.rnets = <RtrNet*>_c_array(len(rnets), sizeof(RtrNet))
    for k, (ip, prefix) in enumerate(rnets):
        c.rnets[k].ip, c.rnets[k].network = ip, prefix.network
        c.rnets[k].mask, c.rnets[k].bcast = prefix.mask, prefix.broadcast
    c.routes = <Route*>_c_array(len(routes), sizeof(Route))
    for k, route in enumerate(routes):
        c.routes[k].network, c.routes[k].mask = route.prefix.network, route.prefix.mask
        c.routes[k].has_nexthop = route.nexthop is not None
        c.routes[k].nexthop = route.nexthop if route.nexthop is not None else 0
        c.routes[k].src_ip, c.routes[k].src_mac = route.src_ip, route.src_mac
        c.routes[k].outport = lrp_index[route.outport]
    c.nats = <NatRule*>_c_array(len(nats), sizeof(NatRule))
    for k, n in enumerate(nats):
        c.nats[k].external_ip = n.external_ip
        c.nats[k].external_mac = n.external_mac if n.external_mac is not None else 0
        c.nats[k].logical_net, c.nats[k].logical_mask = n.logical.network, n.logical.mask
        c.nats[k].plen = n.logical.plen
        c.nats[k].stateless, c.nats[k].distributed = bool(n.stateless), bool(n.distributed)
    c.snat_order = <int32_t*>_c_array(len(snat_order), sizeof(int32_t))
    for k, v in enumerate(snat_order):
        c.snat_order[k] = v
    c.ipinfo = <IpInfo*>_c_array(len(ipinfo), sizeof(IpInfo))
    for k, (first_nat, dnat, unsnat, flags) in enumerate(ipinfo):
        c.ipinfo[k].first_nat, c.ipinfo[k].dnat = first_nat, dnat
        c.ipinfo[k].unsnat, c.ipinfo[k].flags = unsnat, flags
    map_fill(&c.ip_map, ip_map)
    map_fill(&c.arp_static, arp_static)
    map_fill(&c.bindings, bindings)
    map_fill(&c.gw_redirect, gw_redirect)
    map_fill(&c.undnat_fip, undnat_fip)

    # Static MAC bindings as oracle PythonEngine.reset() restores them.
    statics = []
    for binding in self.logical.static_mac_bindings:
        statics.append(((lrp_index[binding.logical_port] << 32) | ip_to_int(binding.ip),
                        mac_to_int(binding.mac)))
    c.n_static = len(statics)
    c.static_keys = <uint64_t*>_c_array(len(statics), sizeof(uint64_t))
    c.static_vals = <uint64_t*>_c_array(len(statics), sizeof(uint64_t))
    for k, (key, mac) in enumerate(statics):
        c.static_keys[k], c.static_vals[k] = key, mac

    # --auto ingress: IngressTable's own dicts and list, copied.
    table = self.ingress
    map_fill(&c.auto_mac, table.by_mac)
    map_fill(&c.auto_ip, table.by_ip)
    c.n_auto_nets = len(table.localnets)
    c.auto_nets = <AutoNet*>_c_array(len(table.localnets), sizeof(AutoNet))
    for k, (prefix, port) in enumerate(table.localnets):
        c.auto_nets[k].port = port
        c.auto_nets[k].has_prefix = prefix is not None
        if prefix is not None:
            c.auto_nets[k].network, c.auto_nets[k].mask = prefix.network, prefix.mask

    # -- native DHCPv4 responders (ovnsim.northd.dhcp): their option bytes in one array
    self.dhcp_rows = list(tables.dhcpv4)
    dhcp_bytes, dhcp_map = bytearray(), {}
    c.n_dhcp = len(self.dhcp_rows)
    c.dhcp = <DhcpResp*>_c_array(c.n_dhcp, sizeof(DhcpResp))
    for k, resp in enumerate(self.dhcp_rows):
        i = port_index[resp.port]
        dhcp_map.setdefault((i << 48) | resp.mac, k)   # the first entry's flows win, as in OVN
        c.dhcp[k].port, c.dhcp[k].mac, c.dhcp[k].server_mac = i, resp.mac, resp.server_mac
        c.dhcp[k].offer_ip, c.dhcp[k].server_id = resp.offer_ip, resp.server_id
        c.dhcp[k].has_next_server = resp.next_server is not None
        c.dhcp[k].next_server = resp.next_server or 0
        c.dhcp[k].opt_start, c.dhcp[k].opt_len = len(dhcp_bytes), len(resp.options)
        dhcp_bytes += resp.options
        c.dhcp[k].inform_start, c.dhcp[k].inform_len = len(dhcp_bytes), len(resp.inform_options)
        dhcp_bytes += resp.inform_options
    c.dhcp_bytes = <unsigned char*>_c_array(len(dhcp_bytes), 1)
    blob = bytes(dhcp_bytes)
    if blob:
        memcpy(c.dhcp_bytes, <const char*>blob, len(blob))
    map_fill(&c.dhcp_map, dhcp_map)
    lower_acls(self, port_index)

    if ct_alloc(&c.ct, 0) < 0:
        raise MemoryError()
    ct_clear(&c.ct)
    for k, (_name, seconds) in enumerate(CT_TIMEOUT_DEFAULTS):
        c.ct.timeout[k] = seconds * 1000000000
    c.scratch_cap = 4096
    c.scratch = <unsigned char*>_c_array(c.scratch_cap, 1)

cdef lower_acls(FastEngine self, dict port_index):
    """The ACL stages' tables (ovnsim.northd.acls), when a switch has ACLs."""
    from ovnsim.northd.acls import ACTION_CODES, compile_acls

    cdef Core* c = &self.core
    cdef AclRule* a
    cdef AclPort* ap
    cdef Py_ssize_t k
    c.acl_zone_base = 3 * c.n_routers
    acl = compile_acls(self.logical)
    self.acl_rows = acl.rows
    if not acl.active_ports:
        return
    if len(acl.rows) >= 0xffff:
        raise EngineError(f"{len(acl.rows)} ACLs: the fast engine takes 65534 at most")
    set_index = {name: i for i, name in enumerate(acl.address_sets)}
    c.n_acls = len(acl.rows)
    c.acls = <AclRule*>_c_array(len(acl.rows), sizeof(AclRule))
    for k, row in enumerate(acl.rows):
        a = &c.acls[k]
        m = row.match
        a.action = ACTION_CODES[row.acl.action]
        a.priority = row.acl.priority
        a.ip6 = m.ip6
        if m.src is not None:
            a.src_net, a.src_mask = int(m.src.network_address), int(m.src.netmask)
        if m.dst is not None:
            a.dst_net, a.dst_mask = int(m.dst.network_address), int(m.dst.netmask)
        a.src_set = set_index[m.src_set] if m.src_set is not None else -1
        a.dst_set = set_index[m.dst_set] if m.dst_set is not None else -1
        a.has_proto = m.proto is not None
        a.proto = m.proto or 0
        a.has_ports = m.has_ports
        a.dport_lo, a.dport_hi = m.dport_lo, m.dport_hi
        a.icmp_type, a.icmp_code = m.icmp_type, m.icmp_code
    lists = []
    c.acl_ports = <AclPort*>_c_array(c.n_ports, sizeof(AclPort))
    for name in acl.active_ports:
        ap = &c.acl_ports[port_index[name]]
        ap.active = 1
        ap.skip_ct = self.core.ports[port_index[name]].pre_lb
        for way, rows in enumerate(acl.per_port.get(name, ([], []))):
            ap.start[way], ap.count[way] = len(lists), len(rows)
            lists.extend(rows)
            stateless = [i for i in rows if acl.rows[i].acl.action == "allow-stateless"]
            ap.sl_start[way], ap.sl_count[way] = len(lists), len(stateless)
            lists.extend(stateless)
    c.acl_list = <int32_t*>_c_array(len(lists), sizeof(int32_t))
    for k, v in enumerate(lists):
        c.acl_list[k] = v
    members = {}
    for name, ips in acl.address_sets.items():
        for ip in ips:
            members[(set_index[name] << 32) | ip] = 1
    map_fill(&c.acl_sets, members)

cdef map_fill(U64Map* m, dict items):
    """Fill a U64Map from a dict (MemoryError when it cannot grow)."""
    if map_alloc(m, len(items)) < 0:
        raise MemoryError()
    for key, val in items.items():
        if map_put(m, key, val) < 0:
            raise MemoryError()
