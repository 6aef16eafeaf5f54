"""Documented exceptions between the frozen oracle and the C engine, shared by the differential tests.

The oracle is frozen: where the engine was fixed to do what real OVN does
and the oracle was not, the differential tests excuse exactly that case,
named here once, with the real-OVN test that shows the engine is right.
"""

from __future__ import annotations

from ovnsim.datapath.engine import STAGE_LIST
from ovnsim.northd.rules import CT_OUTCOMES
from ovnsim.northd.stages import Drop
from ovnsim.sim import ConntrackTable

from .engine import PythonEngine

#: ethertypes the oracle and the engine both treat by their headers (IPv4, ARP, IPv6, 802.1Q, 802.1ad)
_HEADER_ETHERTYPES = (b"\x08\x00", b"\x08\x06", b"\x86\xdd", b"\x81\x00", b"\x88\xa8")


def is_l2_only(frame: bytes) -> bool:
    """A whole Ethernet header whose ethertype is none the pipeline reads further (LLDP, garbage types)."""
    return len(frame) >= 14 and frame[12:14] not in _HEADER_ETHERTYPES


def l2_port_security_exception(frame: bytes, got) -> bool:
    """A frame neither IP nor ARP that the engine dropped at port security (documented exception).

    Real OVN admits only ARP and IP from a port whose port_security lists
    addresses (LLDP from such a port is dropped:
    test_realdp_known.py::test_lldp_from_a_port_with_port_security_is_dropped);
    the frozen oracle admits any ethertype with the port's MAC.  Such a frame
    changes no state, so the frames after it stay comparable.  ``got``: the
    engine's (outputs, drops) for the frame, drops as (reason, stage, ...).
    """
    outputs, drops = got
    return is_l2_only(frame) and not outputs and [d[:2] for d in drops] == [("port-security", "ls_in_apply_port_sec")]


class OracleWithL2PortSecurity(PythonEngine):
    """The frozen oracle, but a frame of :func:`is_l2_only` gets the C engine's port-security verdict.

    For replays compared file by file with the engine: the one frame kind
    :func:`l2_port_security_exception` excuses is asked of a C engine kept
    beside the oracle (such a frame changes no state, so a separate engine's
    verdict is the engine's verdict); when that is the port-security drop,
    the oracle records the same drop instead of flooding the frame.
    """

    def __init__(self, logical, tables=None):
        from ovnsim.datapath._fastpath import FastEngine

        super().__init__(logical, tables)
        self._engine = FastEngine(logical)

    def _one(self, i: int, raw: bytes, inport: int, result) -> None:
        if is_l2_only(raw):
            verdict = self._engine.process_batch(raw, [0], [len(raw)], [inport])
            if (not verdict.n_outputs and verdict.n_drops == 1 and verdict.drop_reason[0] == Drop.PORT_SECURITY
                    and STAGE_LIST[verdict.drop_stage[0]].name == "ls_in_apply_port_sec"):
                port = verdict.ingress[0]
                result.ingress.append(port)
                self._drop(result, i, Drop.PORT_SECURITY, "ls_in_apply_port_sec",
                           self.tables.switch_of_port[self.port_names[port]])
                return
        super()._one(i, raw, inport, result)


def dgp_hairpin_cell_exception(engine_cell, oracle_cell) -> bool:
    """A reachability cell the oracle fails at lr_in_arp_resolve (nat-address) on the way back, the engine passes.

    Documented exception (the per-frame form is test_engines.py's
    ``_dgp_hairpin_exception``): on a distributed-gateway-port router OVN's
    lr_out_chk_dnat_local marks every NAT address, so the reply of a hairpin
    to a floating IP through the router's SNAT address is looped back,
    un-SNATed and delivered (real OVN: test_realdp_known.py::
    test_hairpin_reply_through_the_snat_address_comes_back_on_a_dgp_router);
    the frozen oracle marks DNAT addresses only and drops it.
    """
    return (engine_cell.reachable and not oracle_cell.reachable
            and (oracle_cell.direction, oracle_cell.disposition, oracle_cell.stage)
            == ("return", "nat-address", "lr_in_arp_resolve")
            and (engine_cell.src, engine_cell.dst, engine_cell.proto, engine_cell.seen_as)
            == (oracle_cell.src, oracle_cell.dst, oracle_cell.proto, oracle_cell.seen_as))


# ---------------------------------------------------------------------------
# A gateway router commits every new connection in its DNAT zone
# ---------------------------------------------------------------------------

_CT_TEXT = dict(CT_OUTCOMES)


def _as_oracle_ct(action: str, stage: str) -> str:
    """A ct action's outcome as the oracle words it: ALREADY_NEW (a zone this packet committed
    the connection in, so ct.new for lr_out_post_undnat) is its ALREADY; lr_out_undnat's
    INVALID (a packet that cannot open a connection: ct.inv, nothing committed) its NO_ENTRY."""
    action = action.replace(f"/* {_CT_TEXT['ALREADY_NEW']} */", f"/* {_CT_TEXT['ALREADY']} */")
    if stage == "lr_out_undnat":
        action = action.replace(f"/* {_CT_TEXT['INVALID']} */", f"/* {_CT_TEXT['NO_ENTRY']} */")
    return action


def gateway_router_dnat_commit_trace(events, oracle_events=()):
    """The engine's trace events (``as_dict()`` form) as the frozen oracle traces them.

    Documented exception: a gateway router's lr_out_post_undnat commits every
    new connection in its DNAT zone (``ip && ct.new`` => ``ct_commit { }``,
    no NAT), as real OVN does (test_realdp_known.py::
    test_the_reply_of_a_udp_exchange_from_outside_to_a_fixed_address; the
    stage sequence is ovn-trace's, test_trace_sequence.py).  The frozen
    oracle has no such stage: this drops the engine's lr_out_post_undnat steps,
    reads lr_out_undnat's "not a first packet" outcome (a packet OVS would
    not let open a connection, so nothing is committed for it) as the
    oracle's "no conntrack entry, no change", and "already tracked in this
    zone, committed by this packet (ct.new)" (which tells lr_out_post_undnat
    the connection is new: a hairpin's DNAT) as its "already tracked in this
    zone".  And where a later packet meets such a plain entry in lr_out_undnat
    ("un-NAT (reply)" or "NAT (established)": nothing to translate) and the
    oracle's step at the same place is the same but for "no conntrack entry,
    no change", the oracle's step is taken (``oracle_events``: the oracle's
    trace of the same frame; the outputs, compared byte for byte elsewhere,
    show the packet unchanged).  Everything else is compared as it is.
    """
    out = []
    for e in events:
        if e["stage"] == "lr_out_post_undnat":
            continue
        out.append({**e, "action": _as_oracle_ct(e["action"], e["stage"])})
    no_entry = f"/* {_CT_TEXT['NO_ENTRY']} */"
    for i, (e, o) in enumerate(zip(out, oracle_events)):
        if e["stage"] == "lr_out_undnat" and o["action"].endswith(no_entry) and any(
                {**e, "action": e["action"].replace(f"/* {_CT_TEXT[k]} */", no_entry)} == o
                for k in ("REPLY", "ESTABLISHED")):
            out[i] = o
    return out


def gateway_router_plain_commits(engine) -> int:
    """Live connections a gateway router committed in its DNAT zone with no translation.

    lr_out_post_undnat's ``ct_commit { }`` of every new connection leaving a
    gateway router (see :func:`gateway_router_dnat_commit_trace`), read from
    the engine's conntrack dump.
    """
    return sum(1 for _ in gateway_router_plain_entries(engine))


def gateway_router_plain_entries(engine):
    """The dump entries of lr_out_post_undnat's commits: a gateway router's DNAT zone, nothing
    translated but (where the reply tuple was taken) the source port."""
    gateway_routers = {name for name, lr in engine.tables.routers.items() if lr.gateway_router}
    for e in ConntrackTable(engine):
        o, r = e.orig, e.reply
        if (e.zone_kind == "dnat" and e.datapath in gateway_routers
                and (r.src, r.sport, r.dst) == (o.dst, o.dport, o.src)):
            yield e


def oracle_conntrack_size(engine) -> int:
    """The C engine's conntrack size as the frozen oracle counts it: without the plain commits.

    Documented exception (see :func:`gateway_router_dnat_commit_trace`): the
    engine also holds, for every connection that left a gateway router, its
    untranslated entry in the router's DNAT zone; the oracle holds none.
    """
    # The oracle holds a key per direction and counts keys halved, so a
    # connection whose reply tuple is another's original counts as half.
    keys = set()
    for e in ConntrackTable(engine):
        keys.add((e.zone, e.proto, *e.orig))
        keys.add((e.zone, e.proto, *e.reply))
    return len(keys) // 2 - gateway_router_plain_commits(engine)


def _ip4_header(frame: bytes):
    """(offset of the IPv4 header, its length) of an untagged IPv4 frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    return 14, (frame[14] & 0x0F) * 4


def _without_source(frame: bytes) -> bytes:
    """``frame`` with its IPv4 source, source port (or ICMP id) and checksums zeroed."""
    at, ihl = _ip4_header(frame)
    out = bytearray(frame)
    out[at + 10:at + 16] = b"\0" * 6  # header checksum, source address
    l4, proto = at + ihl, frame[at + 9]
    spans = {6: ((l4, l4 + 2), (l4 + 16, l4 + 18)), 17: ((l4, l4 + 2), (l4 + 6, l4 + 8)),
             1: ((l4 + 2, l4 + 4), (l4 + 4, l4 + 6))}.get(proto, ())
    for a, b in spans:
        out[a:b] = b"\0" * (b - a)
    return bytes(out)


def reply_not_snated_exception(frame: bytes, expected, got, gateway_router_nat_ips) -> bool:
    """The oracle SNATed a packet the engine sends with its own source: the reply of a
    connection opened from outside to a fixed address, through a gateway router.

    Documented exception: the request committed the connection in the gateway
    router's DNAT zone (lr_out_post_undnat, see
    :func:`gateway_router_dnat_commit_trace`), so its reply is ``ct.rpl``
    there and skips lr_out_snat's ``(!ct.trk || !ct.rpl)`` flows: real OVN
    forwards it un-NATed (test_realdp_known.py::
    test_the_reply_of_a_udp_exchange_from_outside_to_a_fixed_address).  The
    frozen oracle SNATs it and commits a connection the engine does not hold,
    so state may differ from there on.  ``expected``/``got``: the oracle's
    and the engine's (outputs, drops) for ``frame``, outputs as (port, kind,
    bytes hex); ``gateway_router_nat_ips``: the NAT addresses of the
    topology's gateway routers (ints).  Excused: same drops, same outputs but
    for the IPv4 source (and source port or ICMP id, and checksums), the
    oracle's a gateway router's NAT address, the engine's the frame's own -- or, for a router's own answer to a
    request from outside (a TCP reset, an ICMP error back to the sender: a
    reply to, or RELATED to, the connection the request committed), the
    router's address where the oracle has its SNAT address.
    """
    (a_outs, a_drops), (b_outs, b_drops) = expected, got
    if a_drops != b_drops or len(a_outs) != len(b_outs) or not a_outs or _ip4_header(frame) is None:
        return False
    src = frame[26:30]
    for (pa, ka, ha), (pb, kb, hb) in zip(a_outs, b_outs):
        a, b = bytes.fromhex(ha), bytes.fromhex(hb)
        if (pa, ka) != (pb, kb) or len(a) != len(b) or _ip4_header(a) is None or _ip4_header(b) is None:
            return False
        if a == b:
            continue
        if (int.from_bytes(a[26:30], "big") not in gateway_router_nat_ips or a[26:30] in (src, b[26:30])
                or _without_source(a) != _without_source(b)):
            return False
        if b[26:30] not in (src, frame[30:34]) and not _icmp_error_back_to_sender(b):
            return False
    return a_outs != b_outs


def _icmp_error_back_to_sender(frame: bytes) -> bool:
    """An ICMP error (unreachable, time exceeded, parameter problem) to the source of the datagram it quotes."""
    at, ihl = _ip4_header(frame)
    icmp = at + ihl
    if frame[at + 9] != 1 or len(frame) < icmp + 8 + 20 or frame[icmp] not in (3, 11, 12):
        return False
    quoted = icmp + 8
    return frame[quoted + 12:quoted + 16] == frame[at + 16:at + 20]
