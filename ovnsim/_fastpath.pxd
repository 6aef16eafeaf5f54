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

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t


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
