# _maps.pxi: included by _fastpath.pyx (one module; declarations in _fastpath.pxd).
# Exact-match hash tables (U64Map) and the lookups the stages make in them.

# ---------------------------------------------------------------------------
# U64Map
# ---------------------------------------------------------------------------

cdef int map_alloc(U64Map* m, uint64_t min_entries) noexcept nogil:
    cdef uint64_t cap = 16, i
    cdef int bits = 4
    while cap < 2 * min_entries:
        cap <<= 1
        bits += 1
    cdef MapSlot* slots = <MapSlot*>malloc(cap * sizeof(MapSlot))
    if slots == NULL:
        return -1
    for i in range(cap):
        slots[i].key = MAP_EMPTY
    free(m.slots)
    m.slots = slots
    m.mask = cap - 1
    m.count = 0
    m.shift = 64 - bits
    return 0


cdef inline uint64_t _hash64(uint64_t key, int shift) noexcept nogil:
    return (key * 0x9E3779B97F4A7C15ULL) >> shift


cdef inline MapSlot* map_slot(const U64Map* m, uint64_t key) noexcept nogil:
    # The slot holding `key`, or the free slot where it would go.
    cdef uint64_t i = _hash64(key, m.shift)
    cdef MapSlot* s
    while True:
        s = &m.slots[i]
        if s.key == key or s.key == MAP_EMPTY:
            return s
        i = (i + 1) & m.mask


cdef inline bint map_get(const U64Map* m, uint64_t key, uint64_t* val) noexcept nogil:
    cdef MapSlot* s = map_slot(m, key)
    if s.key == MAP_EMPTY:
        return False
    val[0] = s.val
    return True


cdef int map_put(U64Map* m, uint64_t key, uint64_t val) noexcept nogil:
    # Insert or replace (a dict's d[key] = val); -1 if growing failed.
    cdef MapSlot* s
    cdef MapSlot* old
    cdef uint64_t old_cap, i
    if 2 * (m.count + 1) > m.mask + 1:
        old = m.slots
        old_cap = m.mask + 1
        m.slots = NULL
        if map_alloc(m, m.count + 1) < 0:
            m.slots = old
            return -1
        for i in range(old_cap):
            if old[i].key != MAP_EMPTY:
                s = map_slot(m, old[i].key)
                s[0] = old[i]
                m.count += 1
        free(old)
    s = map_slot(m, key)
    if s.key == MAP_EMPTY:
        s.key = key
        m.count += 1
    s.val = val
    return 0


cdef void map_clear(U64Map* m) noexcept nogil:
    cdef uint64_t i
    if m.slots != NULL:
        for i in range(m.mask + 1):
            m.slots[i].key = MAP_EMPTY
    m.count = 0



# ---------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------

cdef inline IpInfo* ip_info(const Core* c, int32_t r, uint32_t ip) noexcept nogil:
    cdef uint64_t v
    if map_get(&c.ip_map, (<uint64_t>r << 32) | ip, &v):
        return &c.ipinfo[v]
    return NULL


cdef inline uint8_t ip_flags(const Core* c, int32_t r, uint32_t ip) noexcept nogil:
    cdef IpInfo* info = ip_info(c, r, ip)
    return info.flags if info != NULL else 0


cdef inline bint in_prefixes(const Core* c, int32_t start, int32_t count, uint32_t ip) noexcept nogil:
    cdef int32_t k
    for k in range(start, start + count):
        if (ip & c.pfx[k].mask) == c.pfx[k].network:
            return True
    return False


cdef bint in_port_sec_ok(const Core* c, const SwPort* port, const Pkt* p) noexcept nogil:
    """pipeline._in_port_sec_ok."""
    cdef int32_t k
    cdef const PortSec* e
    for k in range(port.psec_start, port.psec_start + port.psec_count):
        e = &c.psec[k]
        if e.mac != p.eth_src:
            continue
        if p.eth_type == ETH_TYPE_ARP:
            if p.arp_sha != e.mac:
                return False
            return e.pfx_count == 0 or in_prefixes(c, e.pfx_start, e.pfx_count, p.arp_spa)
        if p.eth_type == ETH_TYPE_IP4:
            if e.pfx_count == 0:
                return True
            if in_prefixes(c, e.pfx_start, e.pfx_count, p.ip_src):
                return True
            return (p.ip_src == 0 and p.ip_dst == 0xffffffffU and p.proto == IPPROTO_UDP
                    and p.sport == 68 and p.dport == 67)
        # Any other ethertype (LLDP, ...): an entry with addresses admits only ARP and
        # IP (ovn-controller's in_port_sec flows: the port's priority-80 default drop).
        return e.pfx_count == 0
    return False


cdef bint out_port_sec_ok(const Core* c, const SwPort* port, const Pkt* p) noexcept nogil:
    """pipeline._out_port_sec_ok."""
    cdef int32_t k, j
    cdef const PortSec* e
    cdef uint32_t dst
    for k in range(port.psec_start, port.psec_start + port.psec_count):
        e = &c.psec[k]
        if e.mac != p.eth_dst:
            continue
        if p.eth_type != ETH_TYPE_IP4 or e.pfx_count == 0:
            return True
        dst = p.ip_dst
        if dst == 0xffffffffU or (dst >> 28) == 0xe:
            return True
        for j in range(e.pfx_start, e.pfx_start + e.pfx_count):
            if (dst & c.pfx[j].mask) == c.pfx[j].network or (c.pfx[j].plen < 32 and dst == c.pfx[j].bcast):
                return True
        return False
    return False


cdef int32_t auto_ingress(const Core* c, uint64_t eth_src, bint has_ip, uint32_t ip_src) noexcept nogil:
    """IngressTable.choose."""
    cdef uint64_t v
    cdef int32_t k
    if map_get(&c.auto_mac, eth_src, &v):
        return <int32_t>v
    if has_ip:
        if map_get(&c.auto_ip, ip_src, &v):
            return <int32_t>v
        for k in range(c.n_auto_nets):
            if c.auto_nets[k].has_prefix and (ip_src & c.auto_nets[k].mask) == c.auto_nets[k].network:
                return c.auto_nets[k].port
    return c.auto_nets[0].port if c.n_auto_nets else -1
