# cython: language_level=3, boundscheck=False, wraparound=False
"""ovnsim's data path, in C: the packet pipeline (``FastEngine``), raw-frame
header parsing and checksum updates.  The one engine: traced on request, one
record per rule applied (``ovnsim.northd.rules``; rendered by
``ovnsim.datapath.trace``).

One module, its parts included in this order: ``_parse.pxi`` (parser,
checksums, in-place rewrites), ``_rules.pxi`` (codes generated from the rule
catalogue), ``_maps.pxi`` (hash tables, lookups), ``_conntrack.pxi``,
``_frame.pxi`` (results, trace records, output frame bytes), ``_switch.pxi``,
``_router.pxi``, ``_run.pxi`` (one frame: classify, ingress, work loop),
``_lower.pxi`` (the Python tables lowered into C, once per engine); the
Python edge is below.

:c:func:`parse_headers` turns a raw Ethernet frame into a flat ``Headers``
struct (see ``_fastpath.pxd`` for the layout), and the ``rewrite_*`` helpers
apply TTL and NAT rewrites in place while keeping every checksum valid by
RFC 1624 incremental update.  :class:`FastEngine` runs OVN's logical switch
and router stages over C tables built from ``ovnsim.northd.tables.build_tables()``, in a nogil loop, behind the batch
contract of ``ovnsim.datapath.engine``.

The C functions never raise and never touch Python objects: they return
status codes (the httptools/uvloop pattern).  The ``def`` functions below are
the Python edge: they take any contiguous byte buffer through the buffer
protocol (zero-copy), call the C code, and turn codes into values or
exceptions.
"""

import ipaddress

from libc.string cimport memset

# Wire constants.  (An anonymous enum, not DEF: Cython 3 deprecates DEF.)
cdef enum:
    ETH_HLEN = 14
    VLAN_HLEN = 4
    ARP_ETH_IP4_LEN = 28
    IP4_MIN_HLEN = 20
    TCP_MIN_HLEN = 20
    UDP_HLEN = 8
    ICMP4_HLEN = 8
    ETH_TYPE_IP4 = 0x0800
    ETH_TYPE_ARP = 0x0806
    ETH_TYPE_IP6 = 0x86dd
    ETH_TYPE_VLAN = 0x8100
    ETH_TYPE_QINQ = 0x88a8
    IPPROTO_ICMP = 1
    IPPROTO_TCP = 6
    IPPROTO_UDP = 17
    IP4_MF = 0x2000
    IP4_OFFSET_MASK = 0x1fff
    # Offsets are int32 in the struct; a longer buffer is parsed as if cut here.
    MAX_FRAME = 0x7fffffff


include "_parse.pxi"


# ---------------------------------------------------------------------------
# Python edge
# ---------------------------------------------------------------------------

cdef str _mac(uint64_t v):
    return "%02x:%02x:%02x:%02x:%02x:%02x" % (
        (v >> 40) & 0xff, (v >> 32) & 0xff, (v >> 24) & 0xff,
        (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)


cdef str _ip4(uint32_t v):
    return "%d.%d.%d.%d" % ((v >> 24) & 0xff, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)


cdef object _ofs(int32_t v):
    return None if v < 0 else v


def parse_headers_dict(const unsigned char[::1] frame not None):
    """Parse a raw Ethernet frame and return its header fields as a dict.

    ``frame`` is any C-contiguous byte buffer (``bytes``, ``bytearray``,
    ``memoryview``, ...); it is read in place, not copied.  Keys use OVN's
    field names where OVN has one (``eth.src``, ``vlan.tci``, ``arp.spa``,
    ``ip4.src``, ``ip.ttl``, ``ip.proto``, ``icmp4.type``, ``tcp.flags``,
    ``udp.dst``, ...) and the same style otherwise (``ip4.id``,
    ``icmp4.seq``, ``tcp.csum``).  MACs are ``"aa:bb:cc:dd:ee:ff"``, IPv4
    addresses dotted quads, everything else ints or bools.

    A key appears only when its header was parsed; ``status`` (a name from
    :data:`STATUS_NAMES`) and the byte offsets ``ofs.l2``, ``ofs.l3``,
    ``ofs.l4``, ``ofs.payload`` and ``ofs.end`` (``None`` when absent) are
    always there.  This never raises on frame contents: malformed frames
    are described by ``status``.
    """
    cdef Headers h
    # &frame[0] of an empty view would point past its end: pass NULL (the
    # parser reads nothing when the length is 0).
    parse_headers(&frame[0] if frame.shape[0] else NULL, frame.shape[0], &h)
    d = {
        "status": STATUS_NAMES[h.status],
        "ofs.l2": _ofs(h.l2_ofs),
        "ofs.l3": _ofs(h.l3_ofs),
        "ofs.l4": _ofs(h.l4_ofs),
        "ofs.payload": _ofs(h.payload_ofs),
        "ofs.end": _ofs(h.end_ofs),
    }
    if h.layers & LAYER_ETH:
        d["eth.dst"] = _mac(h.eth_dst)
        d["eth.src"] = _mac(h.eth_src)
        d["eth.type"] = h.eth_type
        d["vlan.present"] = bool(h.vlan_present)
    if h.layers & LAYER_VLAN:
        d["vlan.tpid"] = h.vlan_tpid
        d["vlan.tci"] = h.vlan_tci
        d["vlan.pcp"] = h.vlan_tci >> 13
        d["vlan.vid"] = h.vlan_tci & 0x0fff
    if h.layers & LAYER_ARP:
        d["arp.op"] = h.arp_op
        d["arp.sha"] = _mac(h.arp_sha)
        d["arp.spa"] = _ip4(h.arp_spa)
        d["arp.tha"] = _mac(h.arp_tha)
        d["arp.tpa"] = _ip4(h.arp_tpa)
    if h.layers & LAYER_IP4:
        d["ip4.src"] = _ip4(h.ip4_src)
        d["ip4.dst"] = _ip4(h.ip4_dst)
        d["ip.proto"] = h.ip_proto
        d["ip.ttl"] = h.ip_ttl
        d["ip.dscp"] = h.ip_tos >> 2
        d["ip.ecn"] = h.ip_tos & 0x03
        d["ip.is_frag"] = bool(h.ip_frag & IP_FRAG_ANY)
        d["ip.later_frag"] = bool(h.ip_frag & IP_FRAG_LATER)
        d["ip4.ihl"] = h.ip_ihl
        d["ip4.tos"] = h.ip_tos
        d["ip4.len"] = h.ip_total_len
        d["ip4.id"] = h.ip_id
        d["ip4.flags"] = h.ip_frag_off >> 13
        d["ip4.frag_offset"] = h.ip_frag_off & IP4_OFFSET_MASK
        d["ip4.csum"] = h.ip_csum
    if h.layers & LAYER_ICMP4:
        d["icmp4.type"] = h.icmp_type
        d["icmp4.code"] = h.icmp_code
        d["icmp4.id"] = h.icmp_id
        d["icmp4.seq"] = h.icmp_seq
        d["icmp4.csum"] = h.l4_csum
    if h.layers & LAYER_TCP:
        d["tcp.src"] = h.tp_src
        d["tcp.dst"] = h.tp_dst
        d["tcp.flags"] = h.tcp_flags
        d["tcp.csum"] = h.l4_csum
    if h.layers & LAYER_UDP:
        d["udp.src"] = h.tp_src
        d["udp.dst"] = h.tp_dst
        d["udp.csum"] = h.l4_csum
    return d


def checksums_ok(const unsigned char[::1] frame not None):
    """Return whether an IPv4 frame's checksums are right.

    Checks the IPv4 header checksum and, when the frame holds a whole
    datagram (not a fragment) with a parsed ICMP, TCP or UDP header, that
    header's checksum too (a UDP checksum of 0, "none", is accepted).
    Raises ``ValueError`` if the frame has no complete IPv4 header.
    """
    cdef Headers h
    cdef const unsigned char* p = &frame[0] if frame.shape[0] else NULL
    parse_headers(p, frame.shape[0], &h)
    if not (h.layers & LAYER_IP4):
        raise ValueError(f"no IPv4 header to check (status {STATUS_NAMES[h.status]})")
    if ipv4_header_checksum(p + h.l3_ofs, h.ip_ihl * 4) != h.ip_csum:
        return False
    if h.ip_frag or not (h.layers & (LAYER_ICMP4 | LAYER_TCP | LAYER_UDP)):
        return True
    if h.layers & LAYER_UDP and h.l4_csum == 0:
        return True
    return l4_checksum(p, &h) == h.l4_csum


def ipv4_checksum(const unsigned char[::1] header not None):
    """Return the checksum an IPv4 header should carry.

    ``header`` is the IPv4 header alone (IHL * 4 bytes, at least 12); its
    own checksum field is ignored.
    """
    if header.shape[0] < 12:
        raise ValueError("an IPv4 header is at least 12 bytes up to its checksum")
    return ipv4_header_checksum(&header[0], header.shape[0])


def checksum_update16(csum, old, new):
    """RFC 1624: ``csum`` after a 16-bit word it covers changes ``old`` -> ``new``."""
    _check_u16(csum)
    _check_u16(old)
    _check_u16(new)
    return csum_update16(<uint16_t>csum, <uint16_t>old, <uint16_t>new)


def checksum_update32(csum, old, new):
    """RFC 1624: ``csum`` after a 32-bit field it covers changes ``old`` -> ``new``."""
    _check_u16(csum)
    if not (0 <= old <= 0xffffffff and 0 <= new <= 0xffffffff):
        raise ValueError("old and new must be 32-bit unsigned values")
    return csum_update32(<uint16_t>csum, <uint32_t>old, <uint32_t>new)


cdef _check_u16(v):
    if not 0 <= v <= 0xffff:
        raise ValueError(f"not a 16-bit value: {v}")


def rewrite(unsigned char[::1] frame not None, *, ttl=None, ip4_src=None,
            ip4_dst=None, l4_src=None, l4_dst=None):
    """Rewrite IPv4/TCP/UDP fields of ``frame`` in place, fixing checksums.

    ``frame`` must be writable (``bytearray``, a writable ``memoryview``).
    ``ttl`` sets ``ip.ttl``; ``ip4_src``/``ip4_dst`` take a dotted quad, an
    int or an ``IPv4Address``; ``l4_src``/``l4_dst`` set the TCP or UDP
    ports.  The IPv4 header checksum and the TCP/UDP checksum are updated
    incrementally (RFC 1624), as the pipeline does for NAT and TTL
    decrement; a UDP checksum of 0 stays 0.  Raises ``ValueError`` (frame
    untouched) if a value is out of range or the frame lacks the header.
    """
    cdef Headers h
    cdef unsigned char* p = &frame[0] if frame.shape[0] else NULL
    cdef uint32_t src = 0, dst = 0
    parse_headers(p, frame.shape[0], &h)
    if not (h.layers & LAYER_IP4):
        raise ValueError(f"no IPv4 header to rewrite (status {STATUS_NAMES[h.status]})")
    if (l4_src is not None or l4_dst is not None) and not (h.layers & (LAYER_TCP | LAYER_UDP)):
        raise ValueError("no TCP or UDP header to rewrite ports in")
    if ttl is not None and not 0 <= ttl <= 0xff:
        raise ValueError(f"not a TTL: {ttl}")
    if l4_src is not None:
        _check_u16(l4_src)
    if l4_dst is not None:
        _check_u16(l4_dst)
    if ip4_src is not None:
        src = int(ipaddress.IPv4Address(ip4_src))
    if ip4_dst is not None:
        dst = int(ipaddress.IPv4Address(ip4_dst))
    # Everything is checked: from here on no step can fail.
    if ttl is not None:
        rewrite_ip_ttl(p, &h, <uint8_t>ttl)
    if ip4_src is not None:
        rewrite_ip4_addr(p, &h, 0, src)
    if ip4_dst is not None:
        rewrite_ip4_addr(p, &h, 1, dst)
    if l4_src is not None:
        rewrite_l4_port(p, &h, 0, <uint16_t>l4_src)
    if l4_dst is not None:
        rewrite_l4_port(p, &h, 1, <uint16_t>l4_dst)


# ===========================================================================
# The packet pipeline: FastEngine
#
# The same stages as oracle.pipeline (read it beside this: every function
# below names the Python method it mirrors), over the C tables declared in
# _fastpath.pxd.  The per-frame loop runs nogil and never raises: a drop is
# a record in the result arrays, an allocation failure sets core.error and
# stops the batch (MemoryError after the loop).
# ===========================================================================

from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memmove
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_READ
from cpython.ref cimport Py_REFCNT

from array import array as _array

from ovnsim.errors import EngineError

cdef enum:
    MAX_HOPS = 64            # oracle.pipeline.MAX_HOPS
    # The total work one input frame may cause, counted in datapath visits (a
    # pipeline entered by one copy: ls_in, ls_out, lr_in): a bound in time and
    # memory however the copies multiply.  OVS abandons a translation after
    # 4,096 resubmits; a visit here stands for several of its resubmits, so no
    # forwarding OVS completes comes near it.
    MAX_VISITS = 4096
    AUTO_INGRESS = -1
    # Work-item operations (Pkt.op)
    OP_DONE = 0
    OP_LS_IN
    OP_LS_OUT
    OP_LR_IN
    OP_REENTER
    OP_FLOOD_START
    OP_FLOOD_NEXT
    # Multicast groups of a switch
    G_FLOOD = 0
    G_FLOOD_L2 = 1
    G_UNKNOWN = 2
    # Conntrack zone kinds of a router (zone = router * 3 + kind)
    Z_SNAT = 0
    Z_DNAT = 1
    Z_COMMON = 2
    # IpInfo.flags
    IPF_OWN = 0x01           # a port IP of the router
    IPF_DROP = 0x02          # drop_ips
    IPF_SNAT_OWN = 0x04      # snat_own_ips
    IPF_NAT = 0x08           # nat_ips
    IPF_MARTIAN_SRC = 0x10   # a port IP or its subnet broadcast
    # Generated frames: an ICMP error quotes at most what fits in 576 bytes
    # (oracle.packet.ICMP_QUOTE_MAX)
    MAX_QUOTE = 576 - (14 + 20 + 8)
    MAX_GENERATED = 14 + 20 + 8 + MAX_QUOTE
    IP4_DF = 0x4000

# Rule, stage and drop codes: generated from ovnsim.northd.rules.
include "_rules.pxi"

cdef uint64_t MAP_EMPTY = 0xffffffffffffffffULL
cdef uint64_t MAC_MASK = 0xffffffffffffULL
cdef uint64_t BCAST_MAC = 0xffffffffffffULL


include "_maps.pxi"
include "_conntrack.pxi"
include "_frame.pxi"
include "_dhcp.pxi"
include "_acl.pxi"
include "_held.pxi"
include "_switch.pxi"
include "_router.pxi"
include "_run.pxi"


# ---------------------------------------------------------------------------
# Python edge
# ---------------------------------------------------------------------------

cdef int _check_contract() except -1:
    # The result arrays are copied into array.array objects byte for byte.
    for code, size in (("i", 4), ("I", 4), ("b", 1), ("h", 2), ("q", 8), ("Q", 8)):
        if _array(code).itemsize != size:
            raise ImportError(f"ovnsim.datapath._fastpath: array('{code}') is not {size} bytes")
    return 0


cdef void* _c_array(Py_ssize_t n, size_t size) except NULL:
    cdef void* p = calloc(n if n > 0 else 1, size)
    if p == NULL:
        raise MemoryError()
    return p


cdef object _int64_view(obj, Py_ssize_t n, str what):
    """``obj`` as a C-contiguous int64 buffer of at least n items (copied only when it must be)."""
    cdef const int64_t[::1] view
    try:
        view = obj
    except Exception:
        try:
            mv = memoryview(obj)
        except TypeError:
            view = _array("q", obj)
        else:
            view = _array("q", mv.tolist() if mv.ndim == 1 else list(obj))
    if view.shape[0] < n:
        raise EngineError(f"{what} has {view.shape[0]} items, offsets has {n}")
    return view


def frame_fields(const unsigned char[::1] frame not None, Py_ssize_t wire=0):
    """The header fields of a frame as OVN names them, or None when it cannot enter the pipeline.

    ``eth.src``/``eth.dst``; for ARP ``arp.op``, ``arp.sha``, ``arp.spa``,
    ``arp.tha``, ``arp.tpa`` (all zero for an ARP that is not
    Ethernet/IPv4); for IPv4 ``ip4.src``, ``ip4.dst``, ``ip.ttl`` and the
    ICMP type and code or the TCP/UDP ports (zero in a later fragment).
    The frame is parsed as the engine parses the frames it runs; ``wire``:
    its length on the wire, when a capture's snaplen cut it.
    """
    cdef Pkt p
    cdef FrameCtx f
    memset(&p, 0, sizeof(Pkt))
    f.wire = <int32_t>min(max(wire, frame.shape[0]), 0x7fffffff)
    if classify(&frame[0] if frame.shape[0] else NULL, <int32_t>frame.shape[0], &p, &f) >= 0:
        return None
    d = {"eth.src": _mac(p.eth_src), "eth.dst": _mac(p.eth_dst)}
    if p.eth_type == ETH_TYPE_ARP:
        d["arp.op"] = p.arp_op
        d["arp.sha"] = _mac(p.arp_sha)
        d["arp.spa"] = _ip4(p.arp_spa)
        d["arp.tha"] = _mac(p.arp_tha)
        d["arp.tpa"] = _ip4(p.arp_tpa)
    elif p.eth_type == ETH_TYPE_IP4:
        d["ip4.src"] = _ip4(p.ip_src)
        d["ip4.dst"] = _ip4(p.ip_dst)
        d["ip.ttl"] = p.ttl
        if p.proto == IPPROTO_ICMP:
            d["icmp4.type"] = p.icmp_type
            d["icmp4.code"] = p.icmp_code
        elif p.proto == IPPROTO_TCP:
            d["tcp.src"] = p.sport
            d["tcp.dst"] = p.dport
        elif p.proto == IPPROTO_UDP:
            d["udp.src"] = p.sport
            d["udp.dst"] = p.dport
    return d


include "_lower.pxi"


#: What a conntrack zone is: a router's SNAT, DNAT and common zones, indexed by
#: Z_* (zone = router * 3 + kind), then a switch port's ACL zone (acl_zone_base + port).
CT_ZONE_KINDS = ("snat", "dnat", "common", "acl")

# The TCP state dpctl/dump-conntrack prints, by CT_DPIF_TCPS_* number (the
# TCPS_* the engine keeps per end): OVS's names, SYN_RECV shown as ESTABLISHED
# and FIN_WAIT_2 as TIME_WAIT, as its non-verbose format coalesces them
# (ct-dpif.c, coalesce_tcp_state).
_DPCTL_TCP_STATES = ("CLOSED", "LISTEN", "SYN_SENT", "ESTABLISHED", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1",
                     "CLOSING", "LAST_ACK", "TIME_WAIT", "TIME_WAIT")


cdef class FastEngine:
    """The Cython engine: the reference pipeline's behaviour over C tables, nogil.

    ``FastEngine(logical)`` compiles ``ovnsim.northd.tables.build_tables(logical)``
    into arrays of C structs and hash tables; :meth:`process_batch` fills a
    :class:`ovnsim.datapath.engine.BatchResult` exactly as
    the oracle engine (``tests/oracle/engine.py``) does (same outputs, bytes, drops,
    ingress ports and conntrack state).  Conntrack and learned MAC bindings
    persist across batches until :meth:`reset`.
    """

    name = "fast"

    def __cinit__(self, *args, **kwargs):
        memset(&self.core, 0, sizeof(Core))
        self.busy = False

    def __dealloc__(self):
        cdef Core* c = &self.core
        free(c.ports); free(c.switches); free(c.members); free(c.psec); free(c.pfx)
        free(c.rports); free(c.rnets); free(c.routers); free(c.routes); free(c.nats)
        free(c.snat_order); free(c.ipinfo); free(c.auto_nets)
        free(c.static_keys); free(c.static_vals)
        free(c.mac_table.slots); free(c.arp_rsp.slots); free(c.router_arp.slots)
        free(c.router_src.slots); free(c.ip_map.slots); free(c.arp_static.slots)
        free(c.bindings.slots); free(c.gw_redirect.slots); free(c.undnat_fip.slots)
        free(c.auto_mac.slots); free(c.auto_ip.slots)
        free(c.ct.slots); free(c.ct.conns)
        free(c.dhcp); free(c.dhcp_map.slots); free(c.dhcp_bytes)
        free(c.acls); free(c.acl_list); free(c.acl_ports); free(c.acl_sets.slots)
        free(c.stack); free(c.scratch); free(c.quotes); free(c.ingress)
        free(c.out_frame); free(c.out_port); free(c.out_kind); free(c.out_start); free(c.out_len)
        free(c.out_wire)
        free(c.out_data)
        free(c.drop_frame); free(c.drop_reason); free(c.drop_stage); free(c.drop_dp)
        free(c.drop_rule); free(c.drop_a); free(c.drop_b)
        free(c.trace)
        held_clear(c)
        free(c.held)

    def __init__(self, logical, tables=None):
        from ovnsim.datapath.engine import IngressTable
        from ovnsim.northd.tables import build_tables, ip_to_int, mac_to_int

        tables = tables if tables is not None else build_tables(logical)
        self.logical = logical
        self.tables = tables
        self.port_names = list(tables.switch_of_port)
        self.port_index = {name: i for i, name in enumerate(self.port_names)}
        self.datapath_names = list(tables.switches) + list(tables.routers)
        self.datapath_index = {name: i for i, name in enumerate(self.datapath_names)}
        self.ingress = IngressTable(logical, self.port_index)
        lower(self, tables, ip_to_int, mac_to_int)

    def choose_ingress(self, const unsigned char[::1] frame not None, Py_ssize_t wire=0):
        """The port index ``--auto`` gives ``frame`` (-1: none), as :meth:`process_batch` chooses it.

        ``wire``: the frame's length on the wire, when a capture's snaplen cut it.
        """
        cdef Pkt p
        cdef FrameCtx f
        cdef int32_t n = <int32_t>frame.shape[0]
        cdef const unsigned char* raw = &frame[0] if n else NULL
        memset(&p, 0, sizeof(Pkt))
        f.wire = <int32_t>min(max(wire, n), 0x7fffffff)
        if classify(raw, n, &p, &f) >= 0:
            return auto_ingress(&self.core, rd48(raw + 6) if n >= 12 else 0, False, 0)
        if p.eth_type == ETH_TYPE_ARP:
            return auto_ingress(&self.core, p.eth_src, True, p.arp_spa)
        if p.eth_type == ETH_TYPE_IP4:
            return auto_ingress(&self.core, p.eth_src, True, p.ip_src)
        return auto_ingress(&self.core, p.eth_src, False, 0)

    def conntrack_entries(self):
        """The connections a lookup would find now, as ``ovs-appctl dpctl/dump-conntrack -s`` lists them.

        One tuple per connection, ``(zone, datapath, zone_kind, port, proto, orig, reply,
        tcp_state, timeout_policy, timeout_ns, mark)``, in the table's order:

        * ``zone``: the engine's zone number; ``zone_kind`` (one of
          :data:`CT_ZONE_KINDS`): a router's ``"snat"``, ``"dnat"`` or
          ``"common"`` zone (``datapath``: the router, ``port``: None), or a
          switch port's ``"acl"`` zone (``port``: the port, ``datapath``: its
          switch);
        * ``proto``: the IP protocol number;
        * ``orig``: the tuple of the packet that committed it; ``reply``: the
          tuple its replies carry (the translated tuple reversed); each
          ``(src, dst, sport, dport)``, addresses dotted quads, an ICMP
          query's identifier as both ports;
        * ``tcp_state``: TCP's state as dpctl prints it (the later of the two
          ends' states, SYN_RECV shown as ESTABLISHED and FIN_WAIT_2 as
          TIME_WAIT), None for other protocols; ``timeout_policy``: the
          timeout class its state gives (a :data:`CT_TIMEOUT_DEFAULTS`
          name); ``timeout_ns``: how long until it expires by the clock;
        * ``mark``: its ct_mark, of which ovnsim models one bit: 1 is an ACL
          zone's ``ct_mark.blocked``.

        A connection the clock has expired and the sweeper not yet removed
        is not listed, as no lookup finds it (``ct_find``); listing removes
        nothing (:attr:`conntrack_stats` stays as it was).  A scan of every
        connection slot: for a dump, not per frame.
        """
        cdef Conntrack* ct = &self.core.ct
        cdef const CtConn* conn
        cdef int64_t ci
        cdef uint32_t acl_base = <uint32_t>self.core.acl_zone_base
        entries = []
        for ci in range(ct.n_conns):
            conn = &ct.conns[ci]
            if conn.tm == CT_TM_FREE or ct.now >= conn.expiry:
                continue
            if conn.zone < acl_base:
                datapath = self.datapath_names[self.core.n_switches + conn.zone // 3]
                kind, port = CT_ZONE_KINDS[conn.zone % 3], None
            else:
                port = self.port_names[conn.zone - acl_base]
                datapath, kind = self.tables.switch_of_port[port], "acl"
            # An ICMP query's identifier is both ports (an ACL zone keeps its
            # type in the original's destination port and the reply type in
            # the translated source port: the keys' layout, not the tuple's).
            if conn.proto == IPPROTO_ICMP:
                orig = (_ip4(conn.osrc), _ip4(conn.odst), conn.osport, conn.osport)
                reply = (_ip4(conn.tdst), _ip4(conn.tsrc), conn.tdport, conn.tdport)
            else:
                orig = (_ip4(conn.osrc), _ip4(conn.odst), conn.osport, conn.odport)
                reply = (_ip4(conn.tdst), _ip4(conn.tsrc), conn.tdport, conn.tsport)
            entries.append((conn.zone, datapath, kind, port, conn.proto, orig, reply,
                            _DPCTL_TCP_STATES[max(conn.st0, conn.st1)] if conn.proto == IPPROTO_TCP else None,
                            CT_TIMEOUT_DEFAULTS[conn.tm][0], conn.expiry - ct.now, 1 if conn.blocked else 0))
        return entries

    @property
    def ct_limit(self):
        """Connections the tracker may hold (one table for every zone), or None for no limit.

        A ct_snat/ct_dnat that would commit one more is dropped with
        disposition ``conntrack-full``, as OVS drops a packet whose zone
        is at its limit (``ovs-appctl dpctl/ct-set-limits``).
        """
        return self.core.ct.limit or None

    @ct_limit.setter
    def ct_limit(self, value):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"ct_limit must be a positive integer or None, not {value!r}")
        if self.busy:
            raise RuntimeError("FastEngine.ct_limit set while a batch is running")
        self.core.ct.limit = value or 0

    @property
    def held(self):
        """Packets held now while their next hop's ARP resolves (pinctrl's buffered packets).

        Each is sent, through the egress pipeline of the router that held
        it, as an output of the frame whose ARP reply resolves the next hop.
        """
        return self.core.n_held

    @property
    def hold_packets(self):
        """Whether a packet that made a router ARP for its next hop is held (True, as
        ovn-controller's pinctrl does) or dropped once its ARP request is made (False:
        what ovn-trace and the frozen Python oracle model).  Setting it forgets held packets."""
        return not self.core.no_hold

    @hold_packets.setter
    def hold_packets(self, value):
        if self.busy:
            raise RuntimeError("FastEngine.hold_packets set while a batch is running")
        held_clear(&self.core)
        self.core.no_hold = not value

    @property
    def held_dropped(self):
        """Held packets pushed out of a full queue (3 per next hop) or not held (1,000 next hops)."""
        return self.core.held_dropped

    @property
    def ct_timeouts(self):
        """The conntrack timeouts in seconds, by OVS's timeout-policy names (``tcp_established``, ...).

        Defaults are OVS's userspace datapath's (``lib/conntrack-tp.c``).
        Assign a mapping of some of them to change those (whole seconds, at
        least 1), while no connection is tracked (before the first frame,
        or after :meth:`reset`): each class's expiry list relies on one
        timeout for all its connections.
        """
        return {name: self.core.ct.timeout[k] // 1000000000 for k, (name, _d) in enumerate(CT_TIMEOUT_DEFAULTS)}

    @ct_timeouts.setter
    def ct_timeouts(self, values):
        names = [name for name, _d in CT_TIMEOUT_DEFAULTS]
        new = {}
        for name, seconds in dict(values).items():
            if name not in names:
                raise ValueError(f"unknown conntrack timeout {name!r}; the timeouts are: {', '.join(names)}")
            if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 10 * 365 * 86400:
                raise ValueError(f"conntrack timeout {name}: {seconds!r} is not a whole number of seconds "
                                 f"from 1 to {10 * 365 * 86400} (ten years)")
            new[names.index(name)] = seconds
        if self.busy:
            raise RuntimeError("FastEngine.ct_timeouts set while a batch is running")
        if self.core.ct.n_live:
            raise RuntimeError("FastEngine.ct_timeouts set while connections are tracked (reset() first)")
        for k, seconds in new.items():
            self.core.ct.timeout[k] = seconds * 1000000000

    @property
    def conntrack_stats(self):
        """Conntrack counters: ``created``, ``expired``, ``live``, ``peak``, ``refused``, the clock ``now_ns``, ``bytes``.

        ``created`` connections were committed; ``expired`` were removed
        because they expired (or, a TCP connection both ends had closed, a
        new SYN reused its tuple); ``live`` are held (``created - expired``
        since the last :meth:`reset`); ``peak`` the most held at once;
        ``refused`` packets a NAT commit found unfit to open a connection (a
        SYN+ACK, an echo reply, an ICMP error: left un-NATed, as OVS does).  An
        expired connection is reclaimed lazily: call :meth:`conntrack_sweep`
        first for ``live`` and ``expired`` as of the clock.  ``bytes``: the
        memory the table and the connections take (it follows ``peak``).
        """
        cdef Conntrack* ct = &self.core.ct
        return {"created": ct.created, "expired": ct.expired, "live": ct.n_live, "peak": ct.peak,
                "refused": ct.refused,
                "now_ns": ct.now,
                "bytes": (ct.mask + 1) * sizeof(CtSlot) + ct.cap_conns * sizeof(CtConn)}

    def conntrack_sweep(self):
        """Remove every connection expired by the clock (the last frame's timestamp); how many."""
        if self.busy:
            raise RuntimeError("FastEngine.conntrack_sweep() while a batch is running")
        return ct_sweep(&self.core.ct, -1)

    def reset(self):
        """Forget connections, learned MAC bindings and held packets (static bindings stay), the conntrack counters and clock."""
        cdef Core* c = &self.core
        cdef int32_t k
        if self.busy:
            raise RuntimeError("FastEngine.reset() while a batch is running")
        ct_clear(&c.ct)
        map_clear(&c.bindings)
        held_clear(c)
        c.held_dropped = 0
        for k in range(c.n_static):
            if map_put(&c.bindings, c.static_keys[k], c.static_vals[k]) < 0:
                raise MemoryError()

    def process_batch(self, data, offsets, lengths, inports, result=None, *, trace=False, timestamps=None,
                      origlens=None):
        """Run ``len(offsets)`` frames (``data[offsets[i]:offsets[i] + lengths[i]]``) through the pipeline.

        With ``trace=True`` the result also gets the trace records (one per
        step, ``BatchResult.trace_*``; :mod:`ovnsim.datapath.trace` renders
        them); without, the loop only tests a flag.

        ``timestamps`` (nanoseconds, one per frame) drive conntrack ageing:
        the clock moves to each frame's time (never back) before it runs, so
        connections idle past their timeout are gone (:attr:`ct_timeouts`);
        without them the clock stands still.  ``origlens``: each frame's
        length on the wire, when a capture's snaplen cut it (``lengths[i] <
        origlens[i]``): the frame runs on the headers captured, a frame whose
        headers were cut is dropped as ``snaplen-truncated``.

        ``data`` is any byte buffer (read in place); ``offsets``, ``lengths``
        and ``inports`` are sequences of ints or int buffers (``array('q')``
        is taken without a copy).  ``inports[i]`` is an index into
        :attr:`port_names`, or ``-1`` (``AUTO_INGRESS``) to choose the port
        as ``--auto`` does.  Appends to ``result`` (a new
        :class:`~ovnsim.datapath.engine.BatchResult` if None) and returns it.
        """
        from ovnsim.datapath.engine import BatchResult

        cdef Core* c = &self.core
        cdef const unsigned char[::1] buf
        cdef const int64_t[::1] offs
        cdef const int64_t[::1] lens
        cdef const int64_t[::1] ins
        cdef const int64_t[::1] tss
        cdef const int64_t[::1] wires
        cdef bint timed = timestamps is not None, cut = origlens is not None
        cdef int64_t wire
        cdef Py_ssize_t n, i, size
        cdef int64_t start, stop, maxlen = MAX_GENERATED
        cdef int64_t* starts
        cdef int32_t* sizes
        cdef const unsigned char* base
        cdef int64_t data_base
        cdef int64_t port
        cdef bint tracing = bool(trace)
        cdef Traced traced          # which build of the pipeline runs (see TraceMode)
        cdef Untraced untraced

        if result is None:
            result = BatchResult()
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1 or not mv.c_contiguous:
            mv = mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes())
        elif mv.format not in ("B", "b", "c"):
            mv = mv.cast("B")
        if mv.format != "B":
            mv = mv.cast("B")
        buf = mv
        n = len(offsets)
        offs = _int64_view(offsets, n, "offsets")
        lens = _int64_view(lengths, n, "lengths")
        ins = _int64_view(inports, n, "inports")
        if timed:
            tss = _int64_view(timestamps, n, "timestamps")
        if cut:
            wires = _int64_view(origlens, n, "origlens")
        size = buf.shape[0]
        base = &buf[0] if size else <const unsigned char*>b""
        for i in range(n):
            port = ins[i]
            if port >= c.n_ports:
                raise IndexError(f"inports[{i}] = {port}: the engine has {c.n_ports} ports")
        if self.busy:
            raise RuntimeError("FastEngine.process_batch() is already running on this engine")
        self.busy = True
        starts = NULL
        sizes = NULL
        try:
            # Frame slices with Python's slice semantics, as oracle PythonEngine takes them.
            starts = <int64_t*>_c_array(n, sizeof(int64_t))
            sizes = <int32_t*>_c_array(n, sizeof(int32_t))
            for i in range(n):
                start = offs[i]
                stop = start + lens[i]
                if start < 0:
                    start = start + size if start + size > 0 else 0
                elif start > size:
                    start = size
                if stop < 0:
                    stop = stop + size if stop + size > 0 else 0
                elif stop > size:
                    stop = size
                if stop < start:
                    stop = start
                if stop - start > 0x7fffffff - 4096:
                    raise EngineError(f"frame {i} is too long")
                starts[i] = start
                sizes[i] = <int32_t>(stop - start)
                if sizes[i] > maxlen:
                    maxlen = sizes[i]
            if maxlen > c.scratch_cap:
                free(c.scratch)
                c.scratch = NULL
                c.scratch = <unsigned char*>_c_array(maxlen, 1)
                c.scratch_cap = maxlen
            free(c.ingress)
            c.ingress = NULL
            c.ingress = <int32_t*>_c_array(n, sizeof(int32_t))
            c.n_out = 0
            c.data_len = 0
            c.n_drop = 0
            c.n_trace = 0
            if trace and c.trace == NULL and self._last_trace is not None:
                # The last batch's records, if nobody holds them any more: their
                # pages are warm, so a traced batch after another costs no page faults.
                last = <_TraceBuf>self._last_trace
                if Py_REFCNT(last) == 2:     # self._last_trace and `last`
                    c.trace, c.cap_trace = last.data, last.cap
                    last.data, last.n, last.cap = NULL, 0, 0
                last = None
                self._last_trace = None
            c.error = 0
            with nogil:
                for i in range(n):
                    if timed:
                        ct_tick(&c.ct, tss[i])
                    wire = sizes[i]
                    if cut and wires[i] > wire:
                        wire = wires[i] if wires[i] < 0x7fffffff else 0x7fffffff
                    if tracing:
                        run_frame(c, &traced, base + starts[i], sizes[i], <int32_t>wire, ins[i], <int32_t>i)
                    else:
                        run_frame(c, &untraced, base + starts[i], sizes[i], <int32_t>wire, ins[i], <int32_t>i)
                    if c.error:
                        break
            if c.error:
                raise MemoryError("FastEngine: out of memory while processing a batch")

            # Append in bulk.
            data_base = len(result.out_data)
            for i in range(c.n_out):
                c.out_start[i] += data_base
            result.ingress.frombytes(_view(c.ingress, n * 4))
            result.out_frame.frombytes(_view(c.out_frame, c.n_out * 4))
            result.out_port.frombytes(_view(c.out_port, c.n_out * 4))
            result.out_kind.frombytes(_view(c.out_kind, c.n_out))
            result.out_start.frombytes(_view(c.out_start, c.n_out * 8))
            result.out_len.frombytes(_view(c.out_len, c.n_out * 4))
            result.out_wire.frombytes(_view(c.out_wire, c.n_out * 4))
            result.out_data += _view(c.out_data, c.data_len)
            result.drop_frame.frombytes(_view(c.drop_frame, c.n_drop * 4))
            result.drop_reason.frombytes(_view(c.drop_reason, c.n_drop))
            result.drop_stage.frombytes(_view(c.drop_stage, c.n_drop * 2))
            result.drop_datapath.frombytes(_view(c.drop_dp, c.n_drop * 4))
            result.drop_rule.frombytes(_view(c.drop_rule, c.n_drop * 2))
            result.drop_a.frombytes(_view(c.drop_a, c.n_drop * 4))
            result.drop_b.frombytes(_view(c.drop_b, c.n_drop * 8))
            if c.n_trace:
                # The records change hands without a copy (the buffer object owns them now).
                tb = _TraceBuf()
                tb.data, tb.n, tb.cap = c.trace, c.n_trace, c.cap_trace
                c.trace, c.n_trace, c.cap_trace = NULL, 0, 0
                self._last_trace = tb
                if len(result.trace):
                    result.trace = memoryview(bytes(result.trace) + bytes(memoryview(tb)))
                else:
                    result.trace = memoryview(tb)
            result.frames += n
        finally:
            self.busy = False
            free(starts)
            free(sizes)
        return result


cdef class _TraceBuf:
    """Trace records handed from the engine to a BatchResult (read through the buffer protocol)."""

    cdef TraceRec* data
    cdef int64_t n
    cdef int64_t cap
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        self.shape[0] = <Py_ssize_t>(self.n * sizeof(TraceRec))
        self.strides[0] = 1
        buffer.buf = <char*>self.data
        buffer.obj = self
        buffer.len = self.shape[0]
        buffer.readonly = 1
        buffer.itemsize = 1
        buffer.format = "B"
        buffer.ndim = 1
        buffer.shape = self.shape
        buffer.strides = self.strides
        buffer.suboffsets = NULL
        buffer.internal = NULL

    def __releasebuffer__(self, Py_buffer* buffer):
        pass

    def __dealloc__(self):
        free(self.data)


cdef object _view(void* p, Py_ssize_t nbytes):
    if nbytes == 0 or p == NULL:
        return b""
    return PyMemoryView_FromMemory(<char*>p, nbytes, PyBUF_READ)


_check_contract()
