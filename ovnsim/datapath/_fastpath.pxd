# cython: language_level=3
#
# C-level surface of ovnsim's fast path: the parsed-frame struct, the parse
# status codes and the checksum helpers.  Other Cython modules cimport these
# names; the Python surface is documented in _fastpath.pyi.
#
# Conventions shared by every declaration below:
#   * frames are raw Ethernet frames, no FCS, starting at the destination MAC;
#   * multi-byte header fields are converted from network order to host order
#     when parsed (an IPv4 address 10.0.0.1 is 0x0A000001, a MAC is the 48-bit
#     integer whose most significant byte is the first byte on the wire);
#   * checksums are 16-bit values read big-endian from the wire, so the
#     one's-complement arithmetic needs no byte swapping;
#   * nothing here raises or touches a Python object: errors are status codes.

from libc.stdint cimport INT64_MAX, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef enum ParseStatus:
    # Closed set: one value per way a frame can stop parsing.  The pipeline
    # maps a non-OK status to a drop disposition; Python sees the names
    # without the PARSE_ prefix (status_name()).  Keep STATUS_NAMES in the
    # .pyx in step: it is checked against PARSE_STATUS_COUNT at import.
    PARSE_OK = 0                 # every header the frame carries was parsed
    PARSE_TRUNCATED_ETH          # < 14 bytes, or < 18 with an 802.1Q tag
    PARSE_STACKED_VLAN           # a second VLAN tag (QinQ): inner not parsed
    PARSE_TRUNCATED_ARP          # ethertype 0x0806 with < 28 bytes of ARP
    PARSE_BAD_ARP_FORMAT         # ARP that is not Ethernet/IPv4 (htype 1, ptype 0x0800, 6/4)
    PARSE_TRUNCATED_IP           # < 20 bytes, options cut, or total length past the frame
    PARSE_BAD_IP_VERSION         # ethertype 0x0800 but version nibble != 4
    PARSE_BAD_IHL                # IHL < 5
    PARSE_BAD_IP_TOTAL_LENGTH    # total length < IHL * 4
    PARSE_IPV6_UNSUPPORTED       # ethertype 0x86dd: ovnsim models IPv4 only
    PARSE_FRAGMENT               # IPv4 fragment: L4 parsed only in the first one
    PARSE_TRUNCATED_L4           # TCP/UDP/ICMP header cut short
    PARSE_BAD_TCP_OFFSET         # TCP data offset < 5
    PARSE_SNAPLEN_CUT            # a header the frame has on the wire is cut by the capture (parse_headers_wire)
    PARSE_STATUS_COUNT


cdef enum HeaderLayer:
    # Bits of Headers.layers: a field group is meaningful only when its bit
    # is set (the parser writes a group only once the whole header is in
    # the frame and checked; until then it stays zero).
    LAYER_ETH = 0x01
    LAYER_VLAN = 0x02
    LAYER_ARP = 0x04
    LAYER_IP4 = 0x08
    LAYER_ICMP4 = 0x10
    LAYER_TCP = 0x20
    LAYER_UDP = 0x40


cdef enum IpFrag:
    # Headers.ip_frag, with the bit values OVS uses for nw_frag so that
    # OVN's ip.is_frag (nw_frag/1) and ip.later_frag (nw_frag/2) read it as is.
    IP_FRAG_ANY = 0x01
    IP_FRAG_LATER = 0x02


# One parsed frame.  Fields are ordered by size (8-, 4-, 2-, then 1-byte
# members) so the compiler inserts no padding between them: 106 bytes of
# fields plus 6 of tail padding make sizeof(Headers) 112 (HEADERS_SIZE in
# Python, checked by the tests), and an array of them stays dense.
# parse_headers() zeroes it first, so unparsed fields read as 0 and unset
# offsets as -1.
ctypedef struct Headers:
    # Ethernet and ARP hardware addresses, 48-bit values in a uint64.
    uint64_t eth_dst
    uint64_t eth_src
    uint64_t arp_sha
    uint64_t arp_tha

    # Byte offsets into the frame (-1: the layer is absent).  l3 is where
    # the ARP/IPv4/other payload of the Ethernet frame starts (after the tag,
    # if any); l4 where the IPv4 payload starts; payload the first byte after
    # the last header parsed; end one past the last byte of the L3 packet, so
    # frame[end:] is Ethernet padding (IPv4 total length is authoritative).
    int32_t l2_ofs
    int32_t l3_ofs
    int32_t l4_ofs
    int32_t payload_ofs
    int32_t end_ofs

    uint32_t arp_spa
    uint32_t arp_tpa
    uint32_t ip4_src
    uint32_t ip4_dst

    uint16_t eth_type        # ethertype after the VLAN tag, as OVN's eth.type
    uint16_t vlan_tpid       # 0x8100 or 0x88a8 when vlan_present
    uint16_t vlan_tci        # PCP(3) | DEI(1) | VID(12), as on the wire
    uint16_t arp_op
    uint16_t ip_total_len
    uint16_t ip_id
    uint16_t ip_frag_off     # flags(3) | fragment offset(13), as on the wire
    uint16_t ip_csum
    uint16_t icmp_id         # bytes 4-5 of the ICMP header (echo identifier)
    uint16_t icmp_seq        # bytes 6-7 of the ICMP header (echo sequence)
    uint16_t tp_src          # TCP or UDP source port (ip_proto tells which)
    uint16_t tp_dst
    uint16_t l4_csum         # TCP, UDP or ICMP checksum field
    uint16_t tcp_flags       # low 12 bits of TCP offset/flags, as OVS's tcp_flags

    uint8_t status           # a ParseStatus
    uint8_t layers           # HeaderLayer bits
    uint8_t vlan_present
    uint8_t ip_ihl           # in 32-bit words
    uint8_t ip_tos
    uint8_t ip_ttl
    uint8_t ip_proto
    uint8_t ip_frag          # IpFrag bits
    uint8_t icmp_type
    uint8_t icmp_code


# Parse `length` bytes at `frame` into `out` and return the status (also
# stored in out.status).  Reads only inside [frame, frame + length).
cdef int parse_headers(const unsigned char* frame, Py_ssize_t length,
                       Headers* out) noexcept nogil
# The same for a frame captured with a snaplen: `length` bytes are there of a
# frame `wire` bytes long.  Lengths (IPv4 total length) are checked against
# `wire`, headers must be in the `length` bytes (else PARSE_SNAPLEN_CUT);
# end_ofs may then lie beyond `length`.
cdef int parse_headers_wire(const unsigned char* frame, Py_ssize_t length, Py_ssize_t wire,
                            Headers* out) noexcept nogil

# One's-complement arithmetic (RFC 1071).  csum_partial adds the bytes as
# big-endian 16-bit words to `acc` (an odd tail is padded with a zero byte);
# csum_fold folds the carries and complements, giving the checksum to store.
cdef uint32_t csum_partial(const unsigned char* data, Py_ssize_t length,
                           uint32_t acc) noexcept nogil
cdef uint16_t csum_fold(uint32_t acc) noexcept nogil

# The IPv4 header checksum of `hlen` bytes at `ip`, computed as if the
# checksum field (bytes 10-11) were zero.
cdef uint16_t ipv4_header_checksum(const unsigned char* ip, Py_ssize_t hlen) noexcept nogil

# The TCP/UDP/ICMP checksum the L4 header of a parsed, unfragmented packet
# should carry (TCP and UDP include the pseudo-header), computed as if the
# checksum field were zero.  UDP's "computed 0" is returned as 0xffff.
cdef uint16_t l4_checksum(const unsigned char* frame, const Headers* h) noexcept nogil

# RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the checksum `csum` after a
# 16-bit word (or a 32-bit field, as two words) changes from old to new.
cdef uint16_t csum_update16(uint16_t csum, uint16_t old, uint16_t new) noexcept nogil
cdef uint16_t csum_update32(uint16_t csum, uint32_t old, uint32_t new) noexcept nogil

# In-place rewrites for the pipeline's actions, keeping every checksum valid
# by incremental update: the IPv4 header checksum, and the TCP/UDP checksum
# when the field is in the pseudo-header (addresses) or the L4 header (ports).
# A UDP checksum of 0 ("none") stays 0.  `h` must come from parse_headers()
# on this frame and is updated too.  Return 0, or -1 (frame untouched) when
# the frame lacks the layer: no IPv4 header, or no TCP/UDP header for ports.
# which: 0 = source, 1 = destination.
cdef int rewrite_ip_ttl(unsigned char* frame, Headers* h, uint8_t ttl) noexcept nogil
cdef int rewrite_ip4_addr(unsigned char* frame, Headers* h, int which,
                          uint32_t addr) noexcept nogil
cdef int rewrite_l4_port(unsigned char* frame, Headers* h, int which,
                         uint16_t port) noexcept nogil


# ===========================================================================
# The packet pipeline (FastEngine)
#
# The tables are arrays of the structs below, built once from
# ovnsim.northd.tables.build_tables() by FastEngine.__init__ (Python), then walked
# nogil.  Indices, not names: a switch port (LSP) is its index in
# FastEngine.port_names; a switch is its datapath index; a router r is
# datapath n_switches + r; router ports (LRPs) are numbered router by router,
# in each router's port order, so one router's ports are contiguous.
# Exact-match lookups go through U64Map, one open-addressing table per
# lookup kind, with the datapath packed into the key's high bits.
# ===========================================================================

# u64 -> u64 hash table: linear probing, power-of-two capacity, at most half
# full.  A slot whose key is MAP_EMPTY (all ones) is free; no packed key can
# be all ones (datapath/port indices are limited so that it cannot).
ctypedef struct MapSlot:
    uint64_t key
    uint64_t val

ctypedef struct U64Map:
    MapSlot* slots
    uint64_t mask            # capacity - 1
    uint64_t count
    int shift                # 64 - log2(capacity): Fibonacci hashing

# One port_security entry of a switch port: its MAC and a slice of the
# prefix array (no prefixes: any address with that MAC).
ctypedef struct PortSec:
    uint64_t mac
    int32_t pfx_start
    int32_t pfx_count

ctypedef struct Prefix4:
    uint32_t network
    uint32_t mask
    uint32_t bcast
    uint8_t plen

# A logical switch port.  peer_lrp >= 0 only for a router-type port with a
# router-port option (traffic out of it enters that router).
ctypedef struct SwPort:
    int32_t sw
    int32_t peer_lrp
    int32_t psec_start
    int32_t psec_count
    uint8_t enabled
    uint8_t is_localnet
    uint8_t fdb              # a VIF port that takes unknown addresses (ls_in_lookup_fdb/put_fdb flows)
    uint8_t pre_lb           # a router-type or localnet port (ls_in/out_pre_lb prio 110 flows)

# A logical switch: its three multicast groups as slices of `members`
# (group 0 _MC_flood, 1 _MC_flood_l2, 2 _MC_unknown), in port order.
ctypedef struct Switch:
    int32_t group_start[3]
    int32_t group_count[3]

# A logical router port; peer_lsp is the router-type switch port naming it
# (-1: not attached).  Its networks are a slice of the RtrNet array.
ctypedef struct RtrPort:
    uint64_t mac
    int32_t router
    int32_t peer_lsp
    int32_t net_start
    int32_t net_count
    uint8_t gateway
    uint8_t enabled

ctypedef struct RtrNet:
    uint32_t ip
    uint32_t network
    uint32_t mask
    uint32_t bcast

# lr_in_ip_routing entry; a router's routes are a slice in OVN priority order.
ctypedef struct Route:
    uint64_t src_mac
    uint32_t network
    uint32_t mask
    uint32_t nexthop
    uint32_t src_ip
    int32_t outport
    uint8_t has_nexthop

ctypedef struct NatRule:
    uint64_t external_mac
    uint32_t external_ip
    uint32_t logical_net
    uint32_t logical_mask
    uint8_t plen
    uint8_t stateless
    uint8_t distributed

ctypedef struct Router:
    int32_t gw_port          # the distributed gateway port (LRP), -1
    int32_t port_start
    int32_t port_count
    int32_t route_start
    int32_t route_count
    int32_t nat_start        # this router's NAT rows (lr.nat order)
    int32_t nat_count
    int32_t snat_start       # lr_out_snat order: indices into the NAT array
    int32_t snat_count
    uint8_t gateway_router
    uint8_t enabled
    uint8_t answers_l4
    uint8_t has_distributed
    uint8_t always_learn     # options:always_learn_from_arp_request (default true)

# What a router knows about one IPv4 address (ip_map: (router, ip) -> index).
ctypedef struct IpInfo:
    int32_t first_nat        # first NAT row with this external IP (ARP), -1
    int32_t dnat             # lr.dnat[ip], -1
    int32_t unsnat           # lr.unsnat_ips[ip], -1
    uint8_t flags            # IPF_* bits

# --auto ingress: a localnet port and the provider prefix it stands for.
ctypedef struct AutoNet:
    uint32_t network
    uint32_t mask
    int32_t port
    uint8_t has_prefix

# Conntrack: one table for every zone; a slot maps (zone, 5-tuple) to a
# connection and whether the key is its reply direction.  A connection keeps
# its original and translated tuples, its protocol state and when it expires
# (OVS's userspace conntrack: lib/conntrack-tcp.c, -other.c, -icmp.c, -tp.c).
# A slot holds no key, only 32 bits of its hash: the key is the connection's
# original tuple, or its translated tuple reversed (`reply`), so a lookup
# compares the tuple only where the hash bits agree.  Twelve bytes a slot, not
# twenty-four: a table of many connections misses the cache half as often.
ctypedef struct CtSlot:
    uint32_t tag             # the key's hash (ct_tag); its home slot is the tag's top bits
    int32_t conn             # -1: free slot
    uint8_t reply

# Timeout classes (OVS's CT_TM_*), each with its own expiry list.
cdef enum:
    CT_TM_TCP_FIRST_PACKET = 0
    CT_TM_TCP_OPENING
    CT_TM_TCP_ESTABLISHED
    CT_TM_TCP_CLOSING
    CT_TM_TCP_FIN_WAIT
    CT_TM_TCP_CLOSED
    CT_TM_OTHER_FIRST
    CT_TM_OTHER_MULTIPLE
    CT_TM_OTHER_BIDIR
    CT_TM_ICMP_FIRST
    CT_TM_ICMP_REPLY
    CT_N_TM
    CT_TM_FREE = 255         # CtConn.tm of a free connection slot

ctypedef struct CtConn:
    int64_t expiry           # clock value (ns) from which it is expired (OVS: now >= expiration)
    uint32_t osrc
    uint32_t odst
    uint32_t tsrc
    uint32_t tdst
    uint32_t zone
    int32_t prev             # neighbours in its timeout class's list (oldest first); -1: none
    int32_t next             # (a free connection: the next free one)
    uint16_t osport
    uint16_t odport
    uint16_t tsport
    uint16_t tdport
    uint8_t proto
    uint8_t tm               # timeout class (CT_TM_*), CT_TM_FREE
    uint8_t st0              # TCP: the original direction's peer state (CT_DPIF_TCPS_*);
    uint8_t st1              # st1 the reply direction's.  Others: st0 is the OTHERS_*/ICMPS_* state
    # ACL zones only (a switch port's connections, committed by ls_*_stateful):
    int32_t acl_hit          # the ACL its original direction matched (-1 none, -2 not cached: evaluate)
    uint8_t blocked          # ct_mark.blocked

ctypedef struct Conntrack:
    CtSlot* slots
    uint64_t mask
    uint64_t count           # keys in the table (two per connection, fewer after overwrites)
    int tag_shift            # 32 - log2(slots): a tag's home slot is tag >> tag_shift
    CtConn* conns
    int64_t n_conns          # connection slots ever used (the array's high-water mark)
    int64_t cap_conns
    int64_t limit            # connections the table may hold; 0: no limit
    # Ageing: the clock is the frames' capture timestamps (ns), never going back.
    int64_t now
    int64_t timeout[CT_N_TM] # ns per timeout class
    int32_t head[CT_N_TM]    # per class: a list ordered by expiry (same timeout, refreshed at the tail)
    int32_t tail[CT_N_TM]
    int32_t free_conn        # first free connection slot, -1
    int64_t sweep_from       # no connection expires before this time (a lower bound): ct_sweep skips until then
    int64_t n_live           # connections held (committed, not yet removed)
    int64_t created          # connections committed
    int64_t expired          # connections removed because they expired (or were closed and reused)
    int64_t peak             # most connections held at once
    int64_t refused          # first packets it would not commit (OVS: a SYN+ACK, an echo reply...: ct.inv)

# A native DHCPv4 responder (ovnsim.northd.dhcp.DhcpResponder): one port
# address entry's ls_in_dhcp_options/ls_in_dhcp_response flows.  Its option
# bytes (as ovn-controller's put_dhcp_opts userdata holds them) are slices of
# Core.dhcp_bytes: opt_* for an OFFER/ACK, inform_* for the ACK to a DHCPINFORM.
ctypedef struct DhcpResp:
    uint64_t mac
    uint64_t server_mac
    uint32_t offer_ip
    uint32_t server_id
    uint32_t next_server
    int32_t port
    int32_t opt_start
    int32_t opt_len
    int32_t inform_start
    int32_t inform_len
    uint8_t has_next_server

# ACL stages (security groups, _acl.pxi).  One compiled ACL: a conjunction of
# the terms Neutron writes (ip4/ip6, a remote prefix or address set, protocol,
# destination port range, ICMP type/code); a mask of 0 matches any address.
ctypedef struct AclRule:
    uint32_t src_net
    uint32_t src_mask
    uint32_t dst_net
    uint32_t dst_mask
    int32_t src_set          # address set (Core.acl_sets key) the source must be in, -1
    int32_t dst_set
    int32_t priority         # the ACL's priority (its flows: + 1000)
    int16_t icmp_type        # -1: any
    int16_t icmp_code
    uint16_t dport_lo        # tcp/udp/sctp destination port range (has_ports)
    uint16_t dport_hi
    uint8_t ip6              # an IPv6 ACL: never matches (ovnsim models IPv4)
    uint8_t proto
    uint8_t has_proto
    uint8_t has_ports
    uint8_t action           # ACL_ALLOW_RELATED / ACL_ALLOW_STATELESS / ACL_DROP

# A switch port's ACLs, per pipeline (0 ingress: from-lport, 1 egress:
# to-lport), as slices of Core.acl_list in evaluation order (priority, then
# ACL row order); the allow-stateless ones again as a slice for pre_acl.
ctypedef struct AclPort:
    int32_t start[2]
    int32_t count[2]
    int32_t sl_start[2]
    int32_t sl_count[2]
    uint8_t active           # the port's switch has ACLs: its pipelines have the ACL stages
    uint8_t skip_ct          # a router or localnet port: pre_acl 110, no conntrack

# One copy of a frame while it crosses the pipeline: the header fields and
# logical registers of oracle.packet.Packet.  The received bytes are not in
# here (every copy of a frame shares them, see FrameCtx); a generated frame
# (ARP request, ICMP error, TCP reset) is rebuilt from these fields, with the
# datagram an ICMP error quotes at Core.quotes[quote_ofs:quote_ofs +
# quote_len] (a per-frame arena, so that copies stay small and share it).
# A DHCP reply (generated == GEN_STORED) is stored whole in the same arena,
# as ovn-controller built it from the request (Ethernet and IPv4 headers at
# the request's offsets); its header fields here are written over it.
# `op` says which stage runs next (the engine is a trampoline: stages
# return, the loop dispatches).
ctypedef struct Pkt:
    uint64_t eth_src
    uint64_t eth_dst
    uint64_t arp_sha
    uint64_t arp_tha
    uint64_t xreg0
    uint32_t arp_spa
    uint32_t arp_tpa
    uint32_t ip_src
    uint32_t ip_dst
    uint32_t reg0
    uint32_t reg1
    uint32_t in_src          # an ICMP error's quoted datagram as a conntrack tuple
    uint32_t in_dst          # (has_inner; oracle.packet.Packet.inner)
    uint32_t tcp_seq         # a TCP segment's sequence and acknowledgement numbers
    uint32_t tcp_ack
    int32_t tcp_dlen         # its payload length as pinctrl counts it (IP payload - data offset * 4)
    int32_t inport           # LSP in a switch, LRP in a router
    int32_t outport          # likewise; -1 for ""
    int32_t depth
    int32_t gidx             # next member of the group being flooded
    int32_t quote_ofs        # an ICMP error's quoted datagram in Core.quotes
    uint16_t eth_type
    uint16_t arp_op
    uint16_t icmp_id
    uint16_t sport
    uint16_t dport
    uint16_t quote_len
    uint16_t in_sport
    uint16_t in_dport
    uint8_t vlan
    uint8_t arp_opaque       # ARP but not Ethernet/IPv4: arp.* all 0, not written back
    uint8_t ttl
    uint8_t tos
    uint8_t tcp_flags        # low 8 bits of the TCP flags (ACK 0x10, RST 0x04)
    uint8_t proto
    uint8_t later_frag
    uint8_t icmp_type
    uint8_t icmp_code
    uint8_t kind             # index into ovnsim.datapath.engine.KINDS
    uint8_t loopback
    uint8_t hairpin
    uint8_t use_snat_zone
    uint8_t dnat_local
    uint8_t ct_trk
    uint8_t ct_rpl
    uint8_t ct_zones         # bit per zone kind of the current router; bit kind + 4: committed by this packet
    uint8_t generated        # Packet.raw is None (GEN_FIELDS: built from these fields; GEN_STORED: a DHCP reply)
    uint8_t has_inner        # in_* hold the quoted datagram's tuple
    uint8_t in_proto
    uint8_t op
    uint8_t group            # group being flooded (0, 1, 2)
    uint8_t acl_ct           # ct_state of the last ACL ct_next (ACT_* bits; 0: !ct.trk)

# A packet held while its next hop's ARP resolves (pinctrl's buffered packets,
# controller/pinctrl.c): the copy as it reached lr_in_arp_request, and the
# bytes it refers to in its own buffer: the received frame (n bytes; none for
# a generated copy), then the datagram an ICMP error quotes (p.quote_len).
ctypedef struct Held:
    Pkt p
    uint64_t key             # outport LRP << 32 | next hop (reg0): pinctrl's (datapath, outport, ip)
    unsigned char* data
    int32_t n
    int32_t wire             # the frame's length on the wire (FrameCtx.wire)
    int32_t l3
    int32_t l4
    uint8_t ready            # its next hop's binding came: sent after the frame being run

# The received frame every copy of it refers to.
ctypedef struct FrameCtx:
    const unsigned char* raw
    int32_t n                # bytes captured
    int32_t wire             # the frame's length on the wire (> n: cut by a capture's snaplen)
    int32_t l3
    int32_t l4
    int32_t index

# One trace record (24 bytes, no padding; ovnsim.datapath.engine.TRACE_RECORD is
# its Python struct format "=ihhiIQ").  `a` holds 32-bit values (an IP, an
# index), `b` 64-bit ones (a MAC, a conntrack outcome).
ctypedef struct TraceRec:
    int32_t frame
    int16_t rule
    int16_t depth
    int32_t dp
    uint32_t a
    uint64_t b

# Everything the nogil loop reads and writes: tables, state (conntrack,
# learned MAC bindings), the work stack and the batch's result arrays.
ctypedef struct Core:
    int32_t n_ports
    int32_t n_switches
    int32_t n_routers
    int32_t n_rports
    SwPort* ports
    Switch* switches
    int32_t* members
    PortSec* psec
    Prefix4* pfx
    RtrPort* rports
    RtrNet* rnets
    Router* routers
    Route* routes
    NatRule* nats
    int32_t* snat_order
    IpInfo* ipinfo
    U64Map mac_table         # (switch << 48 | mac) -> LSP
    U64Map arp_rsp           # (switch << 32 | ip) -> owner LSP << 48 | mac
    U64Map router_arp        # (switch << 32 | ip) -> router-type LSP
    U64Map router_src        # (switch << 48 | mac) -> 1
    U64Map ip_map            # (router << 32 | ip) -> IpInfo index
    U64Map arp_static        # (LRP << 32 | ip) -> mac
    U64Map bindings          # (LRP << 32 | ip) -> mac: static and learned MAC_Binding
    U64Map gw_redirect       # (router << 32 | logical ip) -> distributed /32 NAT
    U64Map undnat_fip        # (router << 32 | logical ip) -> first lr.dnat value
    U64Map auto_mac          # mac -> LSP
    U64Map auto_ip           # ip -> LSP
    AutoNet* auto_nets
    int32_t n_auto_nets
    uint64_t* static_keys    # static MAC bindings, restored by reset()
    uint64_t* static_vals
    int32_t n_static
    Conntrack ct
    DhcpResp* dhcp
    int32_t n_dhcp
    U64Map dhcp_map          # (LSP << 48 | eth.src) -> index into dhcp
    unsigned char* dhcp_bytes

    # ACL stages (NULL/0 when no switch has ACLs); a switch port's conntrack
    # zone is acl_zone_base + its index (router zones come first)
    AclRule* acls
    int32_t n_acls
    int32_t* acl_list
    AclPort* acl_ports
    U64Map acl_sets          # (address set << 32 | ip) -> 1
    int32_t acl_zone_base
    # work space
    Pkt* stack
    int64_t stack_len
    int64_t stack_cap
    int64_t visits           # datapath visits the frame being run has made (MAX_VISITS)
    unsigned char* scratch
    int64_t scratch_cap
    unsigned char* quotes    # the datagrams ICMP errors quote, for the frame being run
    int64_t quotes_len
    int64_t quotes_cap
    # the batch's results
    int32_t* ingress
    int32_t* out_frame
    int32_t* out_port
    int8_t* out_kind
    int64_t* out_start
    int32_t* out_len
    int32_t* out_wire        # each output's length on the wire (> out_len: a snaplen cut its frame)
    int64_t n_out
    int64_t cap_out
    unsigned char* out_data
    int64_t data_len
    int64_t data_cap
    int32_t* drop_frame
    int8_t* drop_reason
    int16_t* drop_stage
    int32_t* drop_dp
    int16_t* drop_rule       # the dropping rule and its record's values (a drop's detail)
    uint32_t* drop_a
    uint64_t* drop_b
    int64_t n_drop
    int64_t cap_drop
    # The trace (only in the traced build, see TraceMode): one record per step, a rule code of
    # ovnsim.northd.rules (R_* in _rules.pxi) and two values whose meaning
    # the rule's `args` gives; every drop has one.
    TraceRec* trace
    int64_t n_trace
    int64_t cap_trace
    # Packets held while ARP resolves, in arrival order (at most HELD_PER_HOP per
    # next hop, HELD_HOPS next hops); those pushed out of a full queue or refused.
    Held* held
    int64_t n_held
    int64_t cap_held
    int64_t n_ready
    int64_t n_hops           # distinct next hops among them
    int64_t held_dropped
    uint8_t no_hold          # hold_packets False: the packet is dropped once its ARP request is made
    int error                # set when an allocation failed: the batch stops


cdef class FastEngine:
    cdef Core core
    cdef bint busy
    cdef readonly list port_names
    cdef readonly dict port_index
    cdef readonly list datapath_names
    cdef readonly dict datapath_index
    cdef readonly object logical
    cdef readonly object ingress
    cdef readonly object tables
    cdef readonly list router_port_names
    cdef readonly list nat_rows
    cdef readonly list route_rows
    cdef readonly list snat_rows
    cdef readonly list dhcp_rows
    cdef object _last_trace
    cdef readonly list acl_rows
