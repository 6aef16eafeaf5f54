"""Python surface of ovnsim's Cython fast path (ovnsim/datapath/_fastpath.pyx).

The C surface (the ``Headers`` struct, ``parse_headers``, the checksum and
rewrite helpers) is declared in ``_fastpath.pxd`` for other Cython code.
"""

from ipaddress import IPv4Address
from typing import Optional, Sequence, Union

from typing_extensions import Buffer  # only for type checkers

#: Names of the parse status codes, indexed by code; ``STATUS_NAMES[0] == "OK"``.
#: The codes: OK, TRUNCATED_ETH, STACKED_VLAN, TRUNCATED_ARP, BAD_ARP_FORMAT,
#: TRUNCATED_IP, BAD_IP_VERSION, BAD_IHL, BAD_IP_TOTAL_LENGTH,
#: IPV6_UNSUPPORTED, FRAGMENT, TRUNCATED_L4, BAD_TCP_OFFSET, SNAPLEN_CUT.
STATUS_NAMES: tuple[str, ...]

#: OVS's userspace conntrack timeouts (seconds), ``(name, default)`` in timeout-class order.
CT_TIMEOUT_DEFAULTS: tuple[tuple[str, int], ...]

#: What a conntrack zone is (``FastEngine.conntrack_entries``' ``zone_kind``): a router's
#: SNAT, DNAT and common zones (the common one: NAT through a distributed gateway port,
#: which OVN runs in the router's DNAT zone), then a switch port's ACL zone.
CT_ZONE_KINDS: tuple[str, ...]

# (src, dst, sport, dport) of a conntrack entry: dotted-quad addresses, ports (ICMP: the identifier, twice)
_CtTuple = tuple[str, str, int, int]
# one connection of FastEngine.conntrack_entries(): (zone, datapath, zone_kind, port, proto,
# orig, reply, tcp_state, timeout_policy, timeout_ns, mark)
_CtRecord = tuple[int, str, str, Optional[str], int, _CtTuple, _CtTuple, Optional[str], str, int, int]

#: ``sizeof(Headers)``: the bytes one parsed frame takes in C.
HEADERS_SIZE: int

_IPv4 = Union[str, int, IPv4Address]
_Field = Union[str, int, bool, None]

def status_name(code: int) -> str:
    """Return the name of a parse status code; ``ValueError`` if there is none."""

def parse_headers_dict(frame: Buffer) -> dict[str, _Field]:
    """Parse a raw Ethernet frame (any C-contiguous byte buffer, not copied).

    Always present: ``status`` (a name from :data:`STATUS_NAMES`) and the byte
    offsets ``ofs.l2``, ``ofs.l3``, ``ofs.l4``, ``ofs.payload``, ``ofs.end``
    (``None`` when the layer is absent; ``ofs.end`` excludes Ethernet padding).

    Present when the header was parsed, with OVN's field names where OVN has
    one:

    * Ethernet: ``eth.dst``, ``eth.src`` (``"aa:bb:cc:dd:ee:ff"``),
      ``eth.type`` (after any VLAN tag), ``vlan.present``;
    * 802.1Q/802.1ad tag: ``vlan.tpid``, ``vlan.tci``, ``vlan.pcp``, ``vlan.vid``;
    * ARP: ``arp.op``, ``arp.sha``, ``arp.spa``, ``arp.tha``, ``arp.tpa``;
    * IPv4: ``ip4.src``, ``ip4.dst`` (dotted quads), ``ip.proto``, ``ip.ttl``,
      ``ip.dscp``, ``ip.ecn``, ``ip.is_frag``, ``ip.later_frag``, ``ip4.ihl``,
      ``ip4.tos``, ``ip4.len``, ``ip4.id``, ``ip4.flags``, ``ip4.frag_offset``,
      ``ip4.csum``;
    * ICMPv4: ``icmp4.type``, ``icmp4.code``, ``icmp4.id``, ``icmp4.seq``,
      ``icmp4.csum``;
    * TCP: ``tcp.src``, ``tcp.dst``, ``tcp.flags`` (12 bits), ``tcp.csum``;
    * UDP: ``udp.src``, ``udp.dst``, ``udp.csum``.

    Never raises on frame contents.
    """

def checksums_ok(frame: Buffer) -> bool:
    """Whether the IPv4 header checksum (and, for an unfragmented datagram,
    the ICMP/TCP/UDP checksum) is right; ``ValueError`` without IPv4."""

def ipv4_checksum(header: Buffer) -> int:
    """The checksum an IPv4 header should carry (its own field is ignored)."""

def checksum_update16(csum: int, old: int, new: int) -> int:
    """RFC 1624 incremental update for one 16-bit word."""

def checksum_update32(csum: int, old: int, new: int) -> int:
    """RFC 1624 incremental update for a 32-bit field (two words)."""

def rewrite(
    frame: Union[bytearray, memoryview],
    *,
    ttl: Optional[int] = ...,
    ip4_src: Optional[_IPv4] = ...,
    ip4_dst: Optional[_IPv4] = ...,
    l4_src: Optional[int] = ...,
    l4_dst: Optional[int] = ...,
) -> None:
    """Rewrite IPv4/TCP/UDP fields in place, updating checksums incrementally.

    A UDP checksum of 0 stays 0.  ``ValueError`` (frame untouched) for an
    out-of-range value or a frame without the header to rewrite.
    """

def frame_fields(frame: Buffer, wire: int = ...) -> Optional[dict[str, object]]:
    """A frame's header fields as OVN names them (None: it cannot enter the pipeline).

    ``wire``: its length on the wire when a capture's snaplen cut it."""

class FastEngine:
    """The engine: OVN's logical switch and router stages over C tables, in a nogil loop, traced on request.

    Tested against the frozen oracle (``tests/oracle``) and real ovn-trace.  Conntrack and learned MAC bindings persist across batches until
    :meth:`reset`.  Not for concurrent use from several threads (one batch at
    a time per engine; ``RuntimeError`` otherwise); distinct engines run in
    parallel, the GIL is released while frames are processed.
    """

    name: str  #: ``"fast"``
    #: every logical switch port, the index space of ``inports`` / ``out_port``
    port_names: list[str]
    port_index: dict[str, int]
    #: logical switches, then logical routers (``drop_datapath``)
    datapath_names: list[str]
    datapath_index: dict[str, int]
    #: the ``LogicalTopology`` the engine was built from
    logical: object
    #: the ``IngressTable`` whose choices ``--auto`` ingress reproduces
    ingress: object
    #: the ``Tables`` it was built from, and the rows trace records point at
    tables: object
    router_port_names: list[str]
    nat_rows: list[object]
    route_rows: list[object]
    snat_rows: list[tuple[int, object]]
    #: the ACL rows (ovnsim.northd.acls.AclRow) trace records and drops of the ACL stages point at
    acl_rows: list[object]
    #: the native DHCPv4 responders (ovnsim.northd.dhcp.DhcpResponder), by the index trace records carry
    dhcp_rows: list[object]

    def __init__(self, logical: object, tables: Optional[object] = ...) -> None:
        """Compile ``tables`` (default ``build_tables(logical)``) into C tables.

        ``EngineError`` for a topology the C layout cannot hold (65534 switches
        or switch ports at most) or a router-type port naming no router port.
        """

    def process_batch(
        self,
        data: Buffer,
        offsets: Union[Sequence[int], Buffer],
        lengths: Union[Sequence[int], Buffer],
        inports: Union[Sequence[int], Buffer],
        result: Optional[object] = ...,
        *,
        trace: bool = ...,
        timestamps: Optional[Union[Sequence[int], Buffer]] = ...,
        origlens: Optional[Union[Sequence[int], Buffer]] = ...,
    ) -> object:
        """Run frame ``i`` = ``data[offsets[i]:offsets[i] + lengths[i]]`` in on
        port ``inports[i]`` (``-1``: chosen as ``--auto`` does) for every ``i``;
        append everything to ``result`` (a new ``BatchResult`` if None) and
        return it; with ``trace=True`` also the trace records
        (``BatchResult.trace``).  ``timestamps`` (ns): each frame's time, the
        conntrack clock (ageing); ``origlens``: each frame's length on the wire
        when a snaplen cut it (header-only replay, ``snaplen-truncated``).
        ``IndexError`` for an inport past ``port_names``, ``MemoryError`` if
        the result buffers cannot grow."""

    def choose_ingress(self, frame: Buffer, wire: int = ...) -> int:
        """The port index ``--auto`` gives ``frame`` (-1: none)."""

    def reset(self) -> None:
        """Forget connections and learned MAC bindings (static bindings stay), the conntrack counters and clock."""

    ct_timeouts: dict[str, int]
    """Conntrack timeouts in seconds by OVS's timeout-policy names; assign some to change them (no connection
    may be tracked then)."""

    @property
    def conntrack_stats(self) -> dict[str, int]:
        """``created``, ``expired``, ``live``, ``peak``, ``refused`` (packets a NAT commit found unfit to open a
        connection: SYN-ACK, echo reply...), ``now_ns`` (the clock), ``bytes`` (the table's memory)."""

    def conntrack_sweep(self) -> int:
        """Remove every connection expired by the clock; how many."""

    def conntrack_entries(self) -> list[_CtRecord]:
        """The connections a lookup would find now, as ``ovs-appctl dpctl/dump-conntrack -s`` lists them.

        One tuple per connection, in the table's order:
        ``(zone, datapath, zone_kind, port, proto, orig, reply, tcp_state,
        timeout_policy, timeout_ns, mark)``.  ``zone_kind`` (from
        :data:`CT_ZONE_KINDS`) says what the zone is: a router's
        ``"snat"``/``"dnat"``/``"common"`` zone (``datapath`` the router,
        ``port`` None) or a switch port's ``"acl"`` zone (``port`` that
        port, ``datapath`` its switch).  ``proto``: the IP protocol number.
        ``orig``: the tuple of the packet that committed the connection;
        ``reply``: the tuple its replies carry (the translated one
        reversed); each ``(src, dst, sport, dport)`` with dotted-quad
        addresses, an ICMP query's identifier as both ports.
        ``tcp_state``: TCP's state as dpctl prints it (None for other
        protocols); ``timeout_policy``: its timeout class (a
        :data:`CT_TIMEOUT_DEFAULTS` name); ``timeout_ns``: nanoseconds until
        it expires by the clock; ``mark``: ct_mark (1: an ACL zone's
        ``ct_mark.blocked``, the one bit ovnsim models).

        A connection the clock has expired but the sweeper has not removed
        is not listed (no lookup finds it); the dump removes nothing.
        """

    ct_limit: Optional[int]
    """Connections the tracker may hold, or None; one more is a ``conntrack-full`` drop."""

    hold_packets: bool
    """Whether a packet that made a router ARP for its next hop is held (True, the default, as
    ovn-controller's pinctrl does) or dropped once its ARP request is made (False: what ovn-trace
    and the frozen oracle model); setting it forgets held packets (``RuntimeError`` during a batch)."""

    @property
    def held(self) -> int:
        """Packets held now while their next hop's ARP resolves; each is sent, through the egress
        pipeline of the router that held it, as an output of the frame whose ARP reply resolves it."""

    @property
    def held_dropped(self) -> int:
        """Held packets pushed out of a full queue (3 per next hop) or not held (1,000 next hops)."""
