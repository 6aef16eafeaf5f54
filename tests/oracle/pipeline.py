"""The frozen reference pipeline (a test oracle): OVN's logical switch and router stages over compiled tables.

Moved out of the package when the C engine became the one data path; no new
behaviour goes here.

Each ``_ls_*`` / ``_lr_*`` method is one stage (or a run of stages that do
nothing ovnsim models, kept in the trace by name).  The behaviour is OVN
23.03's as ``ovn-sbctl lflow-list`` shows it; priorities are quoted where an
order between rules matters.  A frame may fan out (flooding, clones); each
copy ends as an output on a port or a drop with a :class:`~ovnsim.northd.stages.Drop`
and the stage where it happened.

This is the readable engine every other engine (the Cython fast path) must
agree with.  It keeps no per-frame state beyond the frame's copies; the
connection tracker and learned MAC bindings live in the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from oracle.packet import (
    ETH_ARP,
    ICMP_QUERY_TYPES,
    KIND_ARP,
    KIND_ARP_REPLY,
    KIND_ECHO_REPLY,
    KIND_ICMP4,
    KIND_TCP_RESET,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_RST,
    Packet,
    embedded_header,
    parse_inner,
)
from ovnsim.northd.stages import STAGES, Drop, Stage
from ovnsim.northd.tables import BROADCAST_MAC, NatEntry, RouterTables, SwitchTables, Tables, int_to_ip, int_to_mac

#: How many datapaths one copy may cross before it is taken for a loop.
MAX_HOPS = 64

_MARTIAN_PREFIXES = ((0x7F000000, 0xFF000000), (0x00000000, 0xFF000000))  # 127/8, 0/8


@dataclass
class TraceEvent:
    """One step of a trace: where the frame was and what the stage did."""

    depth: int
    datapath: str
    stage: str
    table: int
    pipeline: str
    priority: Optional[int]
    match: str
    action: str

    def as_dict(self) -> Dict[str, object]:
        return {"datapath": self.datapath, "pipeline": self.pipeline, "table": self.table,
                "stage": self.stage, "priority": self.priority, "match": self.match, "action": self.action,
                "depth": self.depth}


@dataclass
class Output:
    """A frame leaving the logical network on a port (a VM port or a localnet port)."""

    port: str
    packet: Packet

    @property
    def kind(self) -> str:
        return self.packet.kind


@dataclass
class DropRecord:
    """A copy of the frame that was dropped: where, and why."""

    datapath: str
    stage: str
    reason: Drop
    detail: str = ""

    def as_dict(self) -> Dict[str, object]:
        return {"datapath": self.datapath, "stage": self.stage, "reason": self.reason.label,
                **({"detail": self.detail} if self.detail else {})}


@dataclass
class Result:
    """What became of one injected frame."""

    outputs: List[Output] = field(default_factory=list)
    drops: List[DropRecord] = field(default_factory=list)
    trace: List[TraceEvent] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        """True when no copy of the frame left the network."""
        return not self.outputs


class Conntrack:
    """Connection tracking with NAT, one table per zone, as OVN uses Linux conntrack.

    A connection is stored under its original tuple and under the tuple its
    replies will carry after NAT, so a reply finds it and is un-NATed.  SNAT
    keeps those reply tuples unique as Linux NAT does (:meth:`unique_source`):
    two connections never share one.
    """

    def __init__(self) -> None:
        self.zones: Dict[Tuple[str, str], Dict[Tuple, Tuple["_Conn", bool]]] = {}

    def clear(self) -> None:
        self.zones.clear()

    def __len__(self) -> int:
        return sum(len(z) for z in self.zones.values()) // 2

    def lookup(self, zone: Tuple[str, str], key: Tuple) -> Optional[Tuple["_Conn", bool]]:
        return self.zones.get(zone, {}).get(key)

    def commit(self, zone: Tuple[str, str], original: Tuple, translated: Tuple) -> "_Conn":
        conn = _Conn(original, translated)
        table = self.zones.setdefault(zone, {})
        table[original] = (conn, False)
        table[_reverse(translated)] = (conn, True)
        return conn

    def unique_source(self, zone: Tuple[str, str], translated: Tuple, icmp_query: bool) -> Tuple:
        """``translated`` with another source port if its reply tuple is taken in ``zone``.

        Linux NAT (nf_nat get_unique_tuple) for a source NAT whose reply
        tuple another connection already has: TCP/UDP try sport + 1, + 2,
        ... wrapping within 1024-65535 (a port below 1024 within 1-1023);
        an ICMP query the same on its identifier (both "ports"), within
        1-65535.  Other protocols, and a search that finds every port taken,
        keep ``translated`` (the later connection then takes the replies).
        """
        table = self.zones.get(zone)
        if not table or _reverse(translated) not in table:
            return translated
        proto, src, sport, dst, dport = translated
        if proto == PROTO_ICMP:
            if not icmp_query:
                return translated
            low, high = 1, 0xFFFF
        elif proto in (PROTO_TCP, PROTO_UDP):
            low, high = (1024, 0xFFFF) if sport >= 1024 else (1, 1023)
        else:
            return translated
        port = sport
        for _ in range(high - low + 1):
            port = port + 1 if low <= port < high else low
            candidate = (proto, src, port, dst, port if proto == PROTO_ICMP else dport)
            if _reverse(candidate) not in table:
                return candidate
        return translated


@dataclass
class _Conn:
    original: Tuple
    translated: Tuple


def _reverse(t: Tuple) -> Tuple:
    proto, src, sport, dst, dport = t
    return (proto, dst, dport, src, sport)


def _set_tuple(pkt: Packet, t: Tuple) -> None:
    _, pkt.ip_src, sport, pkt.ip_dst, dport = t
    if pkt.proto != PROTO_ICMP:
        pkt.sport, pkt.dport = sport, dport
    else:
        pkt.icmp_id = sport  # an ICMP "connection" has its identifier for both ports


class Pipeline:
    """Runs frames through the compiled tables of one topology."""

    def __init__(self, tables: Tables, conntrack: Optional[Conntrack] = None):
        self.tables = tables
        self.conntrack = conntrack if conntrack is not None else Conntrack()

    # -- entry ----------------------------------------------------------------

    def process(self, inport: str, pkt: Packet, *, trace: bool = False) -> Result:
        """Inject ``pkt`` on logical switch port ``inport``; returns every output and drop."""
        run = _Run(self, trace)
        switch = self.tables.switch_of_port[inport]
        pkt.inport = inport
        run.ls_ingress(self.tables.switches[switch], pkt, 0)
        return run.result


class _Run:
    """The state of one injected frame: the result being built and the trace switch."""

    def __init__(self, pipeline: Pipeline, tracing: bool):
        self.p = pipeline
        self.tables = pipeline.tables
        self.ct = pipeline.conntrack
        self.tracing = tracing
        self.result = Result()

    # -- bookkeeping ----------------------------------------------------------

    def log(self, depth: int, dp: str, stage: str, priority: Optional[int], match: str, action: str) -> None:
        st: Stage = STAGES[stage]
        self.result.trace.append(TraceEvent(depth, dp, stage, st.table, st.pipeline, priority, match, action))

    def drop(self, depth: int, dp: str, stage: str, reason: Drop, priority: Optional[int] = None,
             match: str = "", detail: str = "") -> None:
        if self.tracing:
            self.log(depth, dp, stage, priority, match, "drop;")
        self.result.drops.append(DropRecord(dp, stage, reason, detail))

    # -- logical switch ---------------------------------------------------------

    def ls_ingress(self, ls: SwitchTables, pkt: Packet, depth: int) -> None:
        if depth >= MAX_HOPS:
            self.drop(depth, ls.name, "ls_in_check_port_sec", Drop.LOOP_LIMIT)
            return
        pkt.loopback = False
        pkt.outport = ""
        inport = ls.ports[pkt.inport]
        dp = ls.name
        # ls_in_check_port_sec / ls_in_apply_port_sec
        if pkt.eth_src >> 40 & 1:
            return self.drop(depth, dp, "ls_in_check_port_sec", Drop.MULTICAST_SOURCE, 100, "eth.src[40]")
        if pkt.vlan:
            return self.drop(depth, dp, "ls_in_check_port_sec", Drop.VLAN_TAGGED, 100, "vlan.present")
        if not inport.enabled:
            return self.drop(depth, dp, "ls_in_check_port_sec", Drop.PORT_DISABLED, 100,
                             f'inport == "{inport.name}"')
        if inport.port_security and not _in_port_sec_ok(inport, pkt):
            return self.drop(depth, dp, "ls_in_apply_port_sec", Drop.PORT_SECURITY, 50, "reg0[15] == 1",
                             detail=f"{inport.name}: source not allowed by port_security")
        if self.tracing:
            self.log(depth, dp, "ls_in_check_port_sec", 50, "1", "reg0[15] = check_in_port_sec(); next;")

        # ls_in_arp_rsp
        if pkt.is_arp and pkt.arp_op == 1 and not inport.is_localnet:
            entry = ls.arp_responder.get(pkt.arp_tpa)
            if entry is not None and entry[1] != inport.name:
                mac = entry[0]
                tpa = pkt.arp_tpa
                _arp_reply_in_place(pkt, mac)
                if self.tracing:
                    self.log(depth, dp, "ls_in_arp_rsp", 50, f"arp.tpa == {int_to_ip(tpa)} && arp.op == 1",
                             f"ARP reply from {int_to_mac(mac)}; outport = inport; output;")
                return self.ls_egress(ls, pkt, pkt.inport, depth)

        # ls_in_l2_lkup
        if pkt.is_arp and pkt.arp_op == 1 and pkt.arp_tpa in ls.router_arp:
            router_lsp = ls.router_arp[pkt.arp_tpa]
            if self.tracing:
                self.log(depth, dp, "ls_in_l2_lkup", 80,
                         f"flags[1] == 0 && arp.op == 1 && arp.tpa == {int_to_ip(pkt.arp_tpa)}",
                         f'clone {{outport = "{router_lsp}"; output; }}; outport = "_MC_flood_l2"; output;')
            if router_lsp != pkt.inport:
                self.ls_egress(ls, pkt.copy(), router_lsp, depth)
            return self._flood(ls, pkt, ls.flood_l2, depth)
        if pkt.is_arp and pkt.arp_op == 1 and pkt.eth_src in ls.router_arp_sources:
            if self.tracing:
                self.log(depth, dp, "ls_in_l2_lkup", 75, f"eth.src == {int_to_mac(pkt.eth_src)} && arp.op == 1",
                         'outport = "_MC_flood_l2"; output;')
            return self._flood(ls, pkt, ls.flood_l2, depth)
        if pkt.eth_mcast:
            if self.tracing:
                self.log(depth, dp, "ls_in_l2_lkup", 70, "eth.mcast", 'outport = "_MC_flood"; output;')
            return self._flood(ls, pkt, ls.flood, depth)
        outport = ls.mac_table.get(pkt.eth_dst)
        if outport is not None:
            if self.tracing:
                self.log(depth, dp, "ls_in_l2_lkup", 50, f"eth.dst == {int_to_mac(pkt.eth_dst)}",
                         f'outport = "{outport}"; output;')
            if outport == pkt.inport and not pkt.loopback:
                return self.drop(depth, dp, "ls_in_l2_lkup", Drop.SAME_PORT, 50,
                                 f"eth.dst == {int_to_mac(pkt.eth_dst)}")
            return self.ls_egress(ls, pkt, outport, depth)
        # ls_in_l2_unknown
        if not ls.unknown:
            return self.drop(depth, dp, "ls_in_l2_unknown", Drop.UNKNOWN_DESTINATION, 50, 'outport == "none"',
                             detail=f"no port has {int_to_mac(pkt.eth_dst)} and none takes unknown")
        if self.tracing:
            self.log(depth, dp, "ls_in_l2_unknown", 50, 'outport == "none"', 'outport = "_MC_unknown"; output;')
        return self._flood(ls, pkt, ls.unknown, depth)

    def _flood(self, ls: SwitchTables, pkt: Packet, group: List[str], depth: int) -> None:
        # A multicast group never sends a copy back to the inport (flags.loopback is 0 here).
        targets = [p for p in group if p != pkt.inport]
        if not targets:
            stage = "ls_in_l2_unknown" if group is ls.unknown else "ls_in_l2_lkup"
            return self.drop(depth, ls.name, stage, Drop.NO_OTHER_PORT,
                             detail=f"no port of {ls.name} but the in-port {pkt.inport} is in the group")
        for i, port in enumerate(targets):
            self.ls_egress(ls, pkt if i == len(targets) - 1 else pkt.copy(), port, depth)

    def ls_egress(self, ls: SwitchTables, pkt: Packet, outport: str, depth: int) -> None:
        port = ls.ports[outport]
        pkt.outport = outport
        dp = ls.name
        if not port.enabled:
            return self.drop(depth, dp, "ls_out_check_port_sec", Drop.PORT_DISABLED, 150,
                             f'outport == "{outport}"')
        # ls_out_check_port_sec: multicast skips it (prio 100 eth.mcast).
        if port.port_security and not pkt.eth_mcast and not _out_port_sec_ok(port, pkt):
            return self.drop(depth, dp, "ls_out_apply_port_sec", Drop.EGRESS_PORT_SECURITY, 50, "reg0[15] == 1",
                             detail=f"{outport}: destination not allowed by port_security")
        if self.tracing:
            self.log(depth, dp, "ls_out_apply_port_sec", 0, "1", "output;")
        if port.is_router and port.peer:
            router = self.tables.routers[self.tables.router_of_port[port.peer]]
            pkt.inport = port.peer
            return self.lr_ingress(router, pkt, depth + 1)
        self.result.outputs.append(Output(outport, pkt))
        if self.tracing:
            self.log(depth, dp, "ls_out_apply_port_sec", None, "", f'output to "{outport}"')

    # -- logical router --------------------------------------------------------

    def lr_ingress(self, lr: RouterTables, pkt: Packet, depth: int) -> None:
        if depth >= MAX_HOPS:
            return self.drop(depth, lr.name, "lr_in_admission", Drop.LOOP_LIMIT)
        dp = lr.name
        inport = lr.ports[pkt.inport]
        pkt.loopback = False
        pkt.outport = ""
        pkt.ct_trk = pkt.ct_rpl = False
        # lr_in_admission
        if pkt.vlan or pkt.eth_src >> 40 & 1:
            return self.drop(depth, dp, "lr_in_admission", Drop.ADMISSION, 100, "vlan.present || eth.src[40]")
        if not lr.enabled or not inport.enabled:
            return self.drop(depth, dp, "lr_in_admission", Drop.PORT_DISABLED)
        admitted = pkt.eth_mcast or pkt.eth_dst == inport.mac
        if not admitted and inport.gateway:
            admitted = pkt.eth_dst in lr.distributed_macs
        if not admitted:
            return self.drop(depth, dp, "lr_in_admission", Drop.ADMISSION, 0, "1",
                             detail=f"eth.dst {int_to_mac(pkt.eth_dst)} is not {inport.name}'s MAC")
        pkt.xreg0 = inport.mac
        if self.tracing:
            self.log(depth, dp, "lr_in_admission", 50, f'eth.dst == {int_to_mac(pkt.eth_dst)} && inport == "{inport.name}"',
                     f"xreg0[0..47] = {int_to_mac(inport.mac)}; next;")
        if pkt.is_arp:
            return self._lr_arp(lr, inport, pkt, depth)
        if not pkt.is_ip4:
            return self.drop(depth, dp, "lr_in_ip_input", Drop.UNSUPPORTED, detail="not IPv4")
        self._lr_ip(lr, inport, pkt, depth)

    def _lr_arp(self, lr: RouterTables, inport, pkt: Packet, depth: int) -> None:
        """lr_in_lookup_neighbor .. lr_in_ip_input for ARP: answer for own and NAT IPs, learn, drop the rest."""
        dp = lr.name
        key = (inport.name, pkt.arp_spa)
        if pkt.arp_op == 2:
            learn = True  # lr_in_learn_neighbor: put_arp for every reply
        elif pkt.arp_op == 1 and inport.network_for(pkt.arp_spa):
            # A request whose sender is on the port's subnet.  With
            # options:always_learn_from_arp_request=false (Neutron) only one
            # for the port's own address (lr_in_lookup_neighbor prio 110:
            # arp.spa in that address's subnet, arp.tpa == it) creates a
            # binding; any other only refreshes an existing one (prio 100:
            # lookup_arp_ip(inport, arp.spa)).
            learn = (lr.always_learn_from_arp_request or key in lr.mac_bindings
                     or any(ip == pkt.arp_tpa and prefix.contains(pkt.arp_spa) for ip, prefix in inport.networks))
        else:
            learn = False
        if learn:
            lr.mac_bindings[key] = pkt.arp_sha
        if pkt.arp_op == 1:
            tpa = pkt.arp_tpa
            reply_mac: Optional[int] = None
            nat = lr.nat_by_ip.get(tpa)
            if nat is not None:
                # prio 92 on the gateway port (a distributed FIP answers with
                # its external_mac); prio 90 from any port for any sender.
                reply_mac = nat.external_mac if (nat.distributed and inport.gateway) else pkt.xreg0
                match = f"arp.op == 1 && arp.tpa == {int_to_ip(tpa)}"
                prio = 92 if inport.gateway else 90
            else:
                own = next((ip for ip, prefix in inport.networks if ip == tpa and prefix.contains(pkt.arp_spa)), None)
                if own is not None:
                    reply_mac = pkt.xreg0
                    match = f'inport == "{inport.name}" && arp.op == 1 && arp.tpa == {int_to_ip(tpa)}'
                    prio = 90
            if reply_mac is not None:
                _arp_reply_in_place(pkt, reply_mac)
                if self.tracing:
                    self.log(depth, dp, "lr_in_ip_input", prio, match, "ARP reply; outport = inport; output;")
                return self.lr_egress(lr, pkt, depth)
        return self.drop(depth, dp, "lr_in_ip_input", Drop.ARP_NOT_ANSWERED, 85, "arp || nd")

    def _lr_ip(self, lr: RouterTables, inport, pkt: Packet, depth: int) -> None:
        dp = lr.name
        src, dst = pkt.ip_src, pkt.ip_dst
        # lr_in_ip_input prio 120: a DGP lets its own SNAT address back in (hairpin).
        own_src_ok = inport.gateway and any(ip == src for ip, _ in inport.networks)
        # prio 100: martians and own addresses as source.
        if not own_src_ok and not pkt.hairpin and src in lr.martian_sources:
            ip, broadcast = lr.martian_sources[src]
            return self.drop(depth, dp, "lr_in_ip_input", Drop.MARTIAN, 100,
                             f"ip4.src == {{{int_to_ip(ip)}, {int_to_ip(broadcast)}}} && reg9[0] == 0")
        if (src >> 28) == 0xE or src == 0xFFFFFFFF or any(
                (a & m) == p for a in (src, dst) for p, m in _MARTIAN_PREFIXES):
            return self.drop(depth, dp, "lr_in_ip_input", Drop.MARTIAN, 100,
                             "ip4.src_mcast || ip4.src == 255.255.255.255 || ip4.src == 127.0.0.0/8 || "
                             "ip4.dst == 127.0.0.0/8 || ip4.src == 0.0.0.0/8 || ip4.dst == 0.0.0.0/8")
        own_ips = lr.own_ips
        # prio 90: ICMP echo to any router IP -> in-place echo reply, routed back.
        if dst in own_ips and pkt.proto == PROTO_ICMP and pkt.icmp_type == 8 and pkt.icmp_code == 0:
            pkt.ip_src, pkt.ip_dst = dst, src
            pkt.ttl = 255
            pkt.icmp_type = 0
            pkt.kind = KIND_ECHO_REPLY
            pkt.loopback = True
            if self.tracing:
                self.log(depth, dp, "lr_in_ip_input", 90, f"ip4.dst == {int_to_ip(dst)} && icmp4.type == 8 && icmp4.code == 0",
                         "ip4.dst <-> ip4.src; ip.ttl = 255; icmp4.type = 0; flags.loopback = 1; next;")
            return self._lr_after_input(lr, inport, pkt, depth)
        # prio 82: IP multicast is not routed.
        if (dst >> 28) == 0xE:
            return self.drop(depth, dp, "lr_in_ip_input", Drop.MULTICAST, 82, "ip4.mcast || ip6.mcast")
        if dst in own_ips and lr.answers_l4 and not pkt.later_frag:
            # prio 80/70: a plain router answers UDP with port unreachable,
            # TCP with a reset, anything else with protocol unreachable.
            return self._lr_l4_reject(lr, inport, pkt, depth)
        # prio 60: other traffic to the router's own (non-SNAT) addresses.
        if dst in lr.drop_ips:
            return self.drop(depth, dp, "lr_in_ip_input", Drop.ROUTER_ADDRESS, 60, f"ip4.dst == {{{int_to_ip(dst)}}}")
        if pkt.eth_bcast:
            return self.drop(depth, dp, "lr_in_ip_input", Drop.BROADCAST, 50, "eth.bcast")
        if pkt.ttl <= 1:
            if pkt.later_frag:
                return self.drop(depth, dp, "lr_in_ip_input", Drop.TTL_EXPIRED, 30, "ip.ttl == {0, 1}")
            return self._lr_time_exceeded(lr, inport, pkt, depth)
        self._lr_after_input(lr, inport, pkt, depth)

    def _lr_l4_reject(self, lr: RouterTables, inport, pkt: Packet, depth: int) -> None:
        dp = lr.name
        quoted = embedded_header(pkt) if pkt.proto != PROTO_TCP else b""
        pkt.raw = None  # from here on a generated frame
        pkt.eth_src, pkt.eth_dst = pkt.eth_dst, pkt.eth_src
        pkt.ip_src, pkt.ip_dst = pkt.ip_dst, pkt.ip_src
        pkt.ttl = 255
        if pkt.proto == PROTO_TCP:
            # pinctrl_handle_tcp_reset: RST only; after a segment with ACK,
            # seq = its ack; else seq 0, ack = its seq + its payload length.
            # The ports are written swapped before the nested actions run
            # (ovn-trace does not show this: it only applies those actions).
            if pkt.tcp_flags & TCP_ACK:
                pkt.tcp_seq, pkt.tcp_ack = pkt.tcp_ack, 0
            else:
                pkt.tcp_seq, pkt.tcp_ack = 0, (pkt.tcp_seq + pkt.tcp_dlen) & 0xFFFFFFFF
            pkt.sport, pkt.dport = pkt.dport, pkt.sport
            pkt.tcp_flags = TCP_RST
            pkt.tcp_dlen = 0
            pkt.kind = KIND_TCP_RESET
            action = "tcp_reset {eth.dst <-> eth.src; ip4.dst <-> ip4.src; next; };"
            prio = 80
        else:
            code = 3 if pkt.proto == PROTO_UDP else 2
            pkt.payload = quoted
            pkt.proto = PROTO_ICMP
            pkt.icmp_type, pkt.icmp_code = 3, code
            pkt.icmp_id = 0  # bytes 4-7 of an ICMP error are zero
            pkt.inner = parse_inner(quoted)
            pkt.kind = KIND_ICMP4
            action = (f"icmp4 {{eth.dst <-> eth.src; ip4.dst <-> ip4.src; ip.ttl = 255; icmp4.type = 3; "
                      f"icmp4.code = {code}; next; }};")
            prio = 80 if code == 3 else 70
        if self.tracing:
            l4 = {80: " && !ip.later_frag && udp", 70: " && !ip.later_frag"}.get(prio, "")
            if pkt.kind == KIND_TCP_RESET:
                l4 = " && !ip.later_frag && tcp"
            self.log(depth, dp, "lr_in_ip_input", prio, f"ip4 && ip4.dst == {int_to_ip(pkt.ip_src)}{l4}", action)
        self._lr_after_input(lr, inport, pkt, depth)

    def _lr_time_exceeded(self, lr: RouterTables, inport, pkt: Packet, depth: int) -> None:
        dp = lr.name
        if not inport.networks:
            return self.drop(depth, dp, "lr_in_ip_input", Drop.TTL_EXPIRED, 30, "ip.ttl == {0, 1}")
        payload = embedded_header(pkt)
        pkt.raw = None  # from here on a generated frame
        pkt.eth_src, pkt.eth_dst = pkt.eth_dst, pkt.eth_src
        if inport.gateway:
            # On a distributed gateway port the error comes from the address
            # the frame was sent to (ip4.dst <-> ip4.src).
            pkt.ip_src, pkt.ip_dst = pkt.ip_dst, pkt.ip_src
        else:
            pkt.ip_dst = pkt.ip_src
            pkt.ip_src = inport.networks[0][0]
        pkt.proto = PROTO_ICMP
        pkt.icmp_type, pkt.icmp_code = 11, 0
        pkt.icmp_id = 0  # bytes 4-7 of an ICMP error are zero
        pkt.payload = payload
        pkt.inner = parse_inner(payload)
        pkt.ttl = 254
        pkt.kind = KIND_ICMP4
        pkt.outport = inport.name
        pkt.loopback = True
        if self.tracing:
            self.log(depth, dp, "lr_in_ip_input", 31, f'inport == "{inport.name}" && ip4 && ip.ttl == {{0, 1}}',
                     "icmp4 { icmp4.type = 11; icmp4.code = 0; ...; outport = inport; output; };")
        self.lr_egress(lr, pkt, depth)

    def _ct_nat(self, lr: RouterTables, pkt: Packet, zone_kind: str, *, snat: Optional[int] = None,
                dnat: Optional[int] = None) -> str:
        """One ct_snat/ct_dnat action in zone (router, zone_kind); returns what it did, for the trace.

        A packet of a known connection is translated (un-NATed if it is a
        reply); a new one is committed when the action names an address
        (``snat``/``dnat``), with a source port that keeps its reply tuple
        unique (:meth:`Conntrack.unique_source`).  An ICMP error met by a
        lookup-only action (lr_in_unsnat, lr_out_undnat) is looked up by the
        datagram it quotes instead (:meth:`_ct_related`).
        """
        zone = (lr.name, zone_kind)
        pkt.ct_trk = True
        # A frame already matched to a connection in this zone earlier in the
        # same pass has been translated; a miss (lookup without commit)
        # leaves the zone free for a later committing action.
        if zone in pkt.ct_zones:
            return "already tracked in this zone"
        if snat is None and dnat is None and pkt.inner is not None:
            return self._ct_related(pkt, zone)
        key = pkt.conn_tuple()
        found = self.ct.lookup(zone, key)
        if found is not None:
            conn, reply = found
            pkt.ct_rpl = reply
            pkt.ct_zones = pkt.ct_zones + (zone,)
            _set_tuple(pkt, _reverse(conn.original) if reply else conn.translated)
            return "un-NAT (reply)" if reply else "NAT (established)"
        pkt.ct_rpl = False
        if snat is None and dnat is None:
            return "no conntrack entry, no change"
        proto, s, sp, d, dp = key
        translated = (proto, snat if snat is not None else s, sp, dnat if dnat is not None else d, dp)
        if snat is not None and not pkt.later_frag:  # (a later fragment has no ports to change)
            translated = self.ct.unique_source(zone, translated, pkt.icmp_type in ICMP_QUERY_TYPES)
        self.ct.commit(zone, key, translated)
        pkt.ct_zones = pkt.ct_zones + (zone,)
        _set_tuple(pkt, translated)
        port = f", source port {translated[2]}" if translated[2] != sp else ""
        return f"new connection, {'ip4.src' if snat is not None else 'ip4.dst'} = " \
               f"{int_to_ip(snat if snat is not None else dnat)}{port}"

    def _ct_related(self, pkt: Packet, zone: Tuple[str, str]) -> str:
        """A lookup-only ct_snat/ct_dnat of an ICMP error: the connection of the datagram it quotes.

        Linux conntrack (icmp_error_message) looks the quoted datagram up
        with its tuple reversed: a connection whose reply tuple that is (the
        datagram is one the connection sent out, as translated) makes the
        error RELATED, in the reply direction, and NAT then un-NATs it as a
        reply (nf_nat_icmp_reply_translation): the outer destination goes
        back to the original source (SNAT) and the outer source to the
        original destination (DNAT), and the quoted datagram gets back its
        original addresses and ports.  Anything else: no change.
        """
        found = self.ct.lookup(zone, _reverse(pkt.inner))
        if found is None or not found[1]:
            pkt.ct_rpl = False
            return "ICMP error, no related connection, no change"
        conn = found[0]
        original, translated = conn.original, conn.translated
        if translated[1] != original[1]:
            pkt.ip_dst = original[1]
        if translated[3] != original[3]:
            pkt.ip_src = original[3]
        pkt.inner = original
        pkt.ct_rpl = True
        pkt.ct_zones = pkt.ct_zones + (zone,)
        return "related ICMP error, un-NAT of it and of the datagram it quotes"

    def _lr_after_input(self, lr: RouterTables, inport, pkt: Packet, depth: int) -> None:
        """lr_in_unsnat .. lr_in_arp_request."""
        dp = lr.name
        gw = lr.gateway_port
        # lr_in_unsnat
        entry = lr.unsnat_ips.get(pkt.ip_dst)
        if entry is not None:
            if lr.gateway_router:
                done = self._ct_nat(lr, pkt, "snat")
                self._trace(depth, dp, "lr_in_unsnat", 90, f"ip && ip4.dst == {int_to_ip(entry.external_ip)}",
                            f"ct_snat; /* {done} */")
            elif inport.name == gw:
                if entry.stateless:
                    self._trace(depth, dp, "lr_in_unsnat", 100, f"ip4.dst == {int_to_ip(entry.external_ip)}", "next;")
                elif not pkt.loopback:
                    done = self._ct_nat(lr, pkt, "common")
                    self._trace(depth, dp, "lr_in_unsnat", 100, f"ip && ip4.dst == {int_to_ip(entry.external_ip)} && "
                                f'inport == "{gw}" && flags.loopback == 0', f"ct_snat_in_czone; /* {done} */")
                elif pkt.use_snat_zone:
                    done = self._ct_nat(lr, pkt, "snat")
                    self._trace(depth, dp, "lr_in_unsnat", 100, f"ip4.dst == {int_to_ip(entry.external_ip)} && "
                                "flags.use_snat_zone == 1", f"ct_snat; /* {done} */")
        # lr_in_dnat
        nat = lr.dnat.get(pkt.ip_dst)
        if nat is not None and (lr.gateway_router or inport.name == gw):
            if nat.stateless:
                pkt.ip_dst = nat.logical.network
                self._trace(depth, dp, "lr_in_dnat", 100, f"ip && ip4.dst == {int_to_ip(nat.external_ip)}",
                            f"ip4.dst = {int_to_ip(nat.logical.network)}; next;")
            elif lr.gateway_router:
                pkt.loopback = True
                done = self._ct_nat(lr, pkt, "dnat", dnat=nat.logical.network)
                self._trace(depth, dp, "lr_in_dnat", 100, f"ip && ip4.dst == {int_to_ip(nat.external_ip)}",
                            f"flags.loopback = 1; ct_dnat({int_to_ip(nat.logical.network)}); /* {done} */")
            else:
                done = self._ct_nat(lr, pkt, "common", dnat=nat.logical.network)
                self._trace(depth, dp, "lr_in_dnat", 100, f"ip && ip4.dst == {int_to_ip(nat.external_ip)} && "
                            f'inport == "{gw}"', f"ct_dnat_in_czone({int_to_ip(nat.logical.network)}); /* {done} */")
        # lr_in_ip_routing (LPM; routes are sorted by OVN priority)
        route = next((r for r in lr.routes if r.prefix.contains(pkt.ip_dst)), None)
        if route is None:
            return self.drop(depth, dp, "lr_in_ip_routing", Drop.NO_ROUTE, 0, "1",
                             detail=f"no route to {int_to_ip(pkt.ip_dst)}")
        pkt.ttl = (pkt.ttl - 1) & 0xFF
        pkt.reg0 = route.nexthop if route.nexthop is not None else pkt.ip_dst
        pkt.reg1 = route.src_ip
        pkt.eth_src = route.src_mac
        pkt.outport = route.outport
        pkt.loopback = True
        self._trace(depth, dp, "lr_in_ip_routing", route.priority, f"ip4.dst == {route.prefix}",
                    f"ip.ttl--; reg0 = {int_to_ip(pkt.reg0)}; reg1 = {int_to_ip(route.src_ip)}; "
                    f'eth.src = {int_to_mac(route.src_mac)}; outport = "{route.outport}"; next;')
        # lr_in_arp_resolve
        out = route.outport
        if (pkt.ip_dst >> 28) != 0xE:
            if out == gw and inport.name == gw and pkt.ip_dst in lr.nat_ips:
                return self.drop(depth, dp, "lr_in_arp_resolve", Drop.NAT_ADDRESS, 150,
                                 f'inport == "{gw}" && outport == "{gw}" && ip4.dst == {int_to_ip(pkt.ip_dst)}')
            mac = lr.arp_static.get((out, pkt.reg0))
            if mac is not None:
                pkt.eth_dst = mac
                self._trace(depth, dp, "lr_in_arp_resolve", 100, f'outport == "{out}" && reg0 == {int_to_ip(pkt.reg0)}',
                            f"eth.dst = {int_to_mac(mac)}; next;")
            elif pkt.ip_dst in lr.snat_own_ips:
                return self.drop(depth, dp, "lr_in_arp_resolve", Drop.ROUTER_ADDRESS, 2,
                                 f"ip4.dst == {{{int_to_ip(pkt.ip_dst)}}}")
            else:
                pkt.eth_dst = lr.mac_bindings.get((out, pkt.reg0), 0)
                self._trace(depth, dp, "lr_in_arp_resolve", 1, "ip4", f"get_arp(outport, reg0); next; /* "
                            f"{int_to_mac(pkt.eth_dst) if pkt.eth_dst else 'no MAC binding'} */")
        # lr_in_gw_redirect: a distributed FIP leaves with its own MAC.
        n = lr.distributed_by_logical_ip.get(pkt.ip_src) if out == gw else None
        if n is not None:
            pkt.eth_src = n.external_mac
            pkt.reg1 = n.external_ip
            self._trace(depth, dp, "lr_in_gw_redirect", 100, f"ip4.src == {int_to_ip(n.logical.network)} && outport == \"{gw}\"",
                        f"eth.src = {int_to_mac(n.external_mac)}; reg1 = {int_to_ip(n.external_ip)}; next;")
        # lr_in_arp_request
        if pkt.eth_dst == 0:
            payload_from = pkt
            arp = Packet()
            arp.eth_type = ETH_ARP
            arp.eth_src = payload_from.eth_src
            arp.eth_dst = BROADCAST_MAC
            arp.arp_op = 1
            arp.arp_sha = payload_from.eth_src
            arp.arp_spa = payload_from.reg1
            arp.arp_tha = 0
            arp.arp_tpa = payload_from.reg0
            arp.kind = KIND_ARP
            arp.inport = pkt.inport
            arp.outport = out
            arp.loopback = True
            self._trace(depth, dp, "lr_in_arp_request", 100, "eth.dst == 00:00:00:00:00:00 && ip4",
                        f"arp {{ eth.dst = ff:ff:ff:ff:ff:ff; arp.spa = {int_to_ip(pkt.reg1)}; "
                        f"arp.tpa = {int_to_ip(pkt.reg0)}; arp.op = 1; output; }};")
            return self.lr_egress(lr, arp, depth)
        self.lr_egress(lr, pkt, depth)

    def _trace(self, depth: int, dp: str, stage: str, priority: Optional[int], match: str, action: str) -> None:
        if self.tracing:
            self.log(depth, dp, stage, priority, match, action)

    def lr_egress(self, lr: RouterTables, pkt: Packet, depth: int) -> None:
        dp = lr.name
        out = pkt.outport
        gw = lr.gateway_port
        if pkt.is_ip4:
            # lr_out_chk_dnat_local: reg9[4] = 1 for traffic to a local DNAT address (DGP hairpin).
            pkt.dnat_local = gw is not None and pkt.ip_dst in lr.dnat
            # lr_out_undnat
            if lr.gateway_router:
                pkt.loopback = True
                done = self._ct_nat(lr, pkt, "dnat")
                self._trace(depth, dp, "lr_out_undnat", 50, "ip", f"flags.loopback = 1; ct_dnat; /* {done} */")
            elif out == gw:
                fip = lr.dnat_by_logical_ip.get(pkt.ip_src)
                if fip is not None and not fip.stateless:
                    if fip.distributed:
                        pkt.eth_src = fip.external_mac
                    done = self._ct_nat(lr, pkt, "common")
                    self._trace(depth, dp, "lr_out_undnat", 100, f'ip && ip4.src == {int_to_ip(pkt.ip_src)} && '
                                f'outport == "{gw}"', f"ct_dnat_in_czone; /* {done} */")
            # lr_out_snat
            if lr.gateway_router or out == gw:
                self._lr_snat(lr, pkt, depth)
            # lr_out_egr_loop: a DGP sends traffic for its own NAT addresses back into its ingress.
            if out == gw and pkt.ip_dst in lr.nat_ips:
                clone = pkt.copy()
                clone.ct_zones = ()
                clone.inport = out
                clone.outport = ""
                clone.eth_src, clone.eth_dst = pkt.eth_dst, pkt.eth_src
                clone.use_snat_zone = pkt.dnat_local
                clone.hairpin = True
                self._trace(depth, dp, "lr_out_egr_loop", 100, f'ip4.dst == {int_to_ip(pkt.ip_dst)} && outport == "{gw}"',
                            "clone { ct_clear; inport = outport; eth.dst <-> eth.src; flags.loopback = 1; "
                            "next(pipeline=ingress, table=0); };")
                return self._reenter(lr, clone, depth)
        # lr_out_delivery
        port = lr.ports[out]
        self._trace(depth, dp, "lr_out_delivery", 100, f'outport == "{out}"', "output;")
        if port.peer is None:
            return self.drop(depth, dp, "lr_out_delivery", Drop.NO_ROUTE, detail=f"{out} is not attached to a switch")
        ls = self.tables.switches[self.tables.switch_of_port[port.peer]]
        pkt.inport = port.peer
        pkt.hairpin = pkt.use_snat_zone = False
        pkt.ct_zones = ()
        self.ls_ingress(ls, pkt, depth + 1)

    def _reenter(self, lr: RouterTables, pkt: Packet, depth: int) -> None:
        """Run a hairpinned copy through the router's ingress again (from lr_in_admission)."""
        if depth + 1 >= MAX_HOPS:
            return self.drop(depth, lr.name, "lr_out_egr_loop", Drop.LOOP_LIMIT)
        inport = lr.ports[pkt.inport]
        pkt.xreg0 = inport.mac
        self._trace(depth + 1, lr.name, "lr_in_admission", 50, f'inport == "{inport.name}"',
                    f"xreg0[0..47] = {int_to_mac(inport.mac)}; next;")
        # The copy keeps flags.loopback = 1 (lr_in_unsnat then takes the
        # SNAT-zone variant) and reg9[0] = 1 (its own SNAT address is not a
        # martian source).
        pkt.loopback = True
        self._lr_ip(lr, inport, pkt, depth + 1)

    def _lr_snat(self, lr: RouterTables, pkt: Packet, depth: int) -> None:
        dp = lr.name
        gw = lr.gateway_port
        for priority, n in lr.snat:
            if not n.logical.contains(pkt.ip_src):
                continue
            if n.stateless:
                pkt.ip_src = n.external_ip
                self._trace(depth, dp, "lr_out_snat", priority, f"ip && ip4.src == {n.logical}",
                            f"ip4.src = {int_to_ip(n.external_ip)}; next;")
                return
            if lr.gateway_router:
                if pkt.ct_trk and pkt.ct_rpl:
                    return  # (!ct.trk || !ct.rpl): replies are not SNATed again
                done = self._ct_nat(lr, pkt, "snat", snat=n.external_ip)
                action = f"ct_snat({int_to_ip(n.external_ip)}); /* {done} */"
            else:
                if n.distributed:
                    pkt.eth_src = n.external_mac
                zone = "snat" if pkt.dnat_local else "common"
                done = self._ct_nat(lr, pkt, zone, snat=n.external_ip)
                action = (f"{'ct_snat' if zone == 'snat' else 'ct_snat_in_czone'}({int_to_ip(n.external_ip)});"
                          f" /* {done} */")
                priority += 1 if pkt.dnat_local else 0
            self._trace(depth, dp, "lr_out_snat", priority, f"ip && ip4.src == {n.logical}"
                        + (f' && outport == "{gw}"' if gw else ""), action)
            return


def _arp_reply_in_place(pkt: Packet, mac: int) -> None:
    """Turn an ARP request into its reply from ``mac``, sent back out of the in-port.

    The responder actions of ls_in_arp_rsp and lr_in_ip_input alike:
    ``eth.dst = eth.src; eth.src = MAC; arp.op = 2; arp.tha = arp.sha;
    arp.sha = MAC; arp.tpa <-> arp.spa; outport = inport; flags.loopback = 1``.
    """
    pkt.eth_dst, pkt.eth_src = pkt.eth_src, mac
    pkt.arp_op = 2
    pkt.arp_tha, pkt.arp_sha = pkt.arp_sha, mac
    pkt.arp_tpa, pkt.arp_spa = pkt.arp_spa, pkt.arp_tpa
    pkt.kind = KIND_ARP_REPLY
    pkt.outport = pkt.inport
    pkt.loopback = True


# --------------------------------------------------------------------------
# port security (ovn-controller's check_in_port_sec / check_out_port_sec)
# --------------------------------------------------------------------------


def _in_port_sec_ok(port, pkt: Packet) -> bool:
    for entry in port.port_security:
        if entry.mac != pkt.eth_src:
            continue
        if pkt.is_arp:
            if pkt.arp_sha != entry.mac:
                return False
            return not entry.prefixes or any(p.contains(pkt.arp_spa) for p in entry.prefixes)
        if pkt.is_ip4:
            if not entry.prefixes:
                return True
            if any(p.contains(pkt.ip_src) for p in entry.prefixes):
                return True
            # DHCP discover from an address-less client.
            return (pkt.ip_src == 0 and pkt.ip_dst == 0xFFFFFFFF and pkt.proto == PROTO_UDP
                    and pkt.sport == 68 and pkt.dport == 67)
        return True
    return False


def _out_port_sec_ok(port, pkt: Packet) -> bool:
    for entry in port.port_security:
        if entry.mac != pkt.eth_dst:
            continue
        if not pkt.is_ip4 or not entry.prefixes:
            return True
        dst = pkt.ip_dst
        return dst == 0xFFFFFFFF or (dst >> 28) == 0xE or any(
            p.contains(dst) or (p.plen < 32 and dst == p.broadcast) for p in entry.prefixes)
    return False
