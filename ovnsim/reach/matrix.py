"""The all-pairs reachability matrix, on the batch engine.

Every VM port × (every VM port + every floating IP + ``outside``) × protocol,
answered as :func:`ovnsim.reach.reach` answers one question -- the request
built as the sender's stack builds it, the reply built from what the
destination received and sent back through the same conntrack/NAT state --
but a batch at a time: the requests of a slice of sources go through the
engine (:func:`ovnsim.datapath.engine.make_engine`) in one buffer, the
replies are built (:func:`~ovnsim.reach.frames.stamp`) from the delivered
outputs and go through in a second batch.  No frame crosses the Python
pipeline; a cell that needs an explanation (its blocking rule and trace) is
asked again through the per-question API, on demand (:meth:`Matrix.explain`).

Each slice of sources starts from fresh state (``engine.reset()``); within a
slice every question is its own connection (distinct 5-tuples, both
ways: each ping has its own identifier).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ovnsim.datapath.engine import KIND_CODE, STAGE_LIST, make_engine
from ovnsim.neutron.model import Topology
from ovnsim.northd.stages import Drop
from ovnsim.reach.endpoints import FIP, OUTSIDE_KIND, Endpoint, Protocol, ReachError, parse_proto
from ovnsim.reach.frames import FRAME_LEN, ICMP_ID, SPORT, build_arp_reply, mac_bytes, reply_fields, stamp
from ovnsim.reach.question import NO_NEXT_HOP, NOT_DELIVERED, REJECTED, UNRESOLVED, WRONG_REPLY, Answer, Reachability

__all__ = ["Matrix", "Cell", "compute_matrix", "DEFAULT_PROTOCOLS"]

#: The protocols a matrix covers unless told otherwise.
DEFAULT_PROTOCOLS = ("icmp", "tcp/22", "udp/53")

#: Cell status codes.
REACHABLE, FORWARD_BLOCKED, RETURN_BLOCKED, SELF, NOT_ASKED = 0, 1, 2, 3, 4

_KIND_PACKET = KIND_CODE["packet"]
_OTHER_KINDS = {KIND_CODE["tcp_reset"]: REJECTED, KIND_CODE["icmp4"]: REJECTED, KIND_CODE["arp"]: UNRESOLVED}


@dataclass(frozen=True)
class Cell:
    """One answer of the matrix (what :class:`~ovnsim.reach.Answer` says, without the trace)."""

    src: str
    dst: str
    proto: str
    reachable: bool
    seen_as: Optional[str]
    direction: Optional[str]  #: "forward" or "return" when blocked
    disposition: Optional[str]
    datapath: Optional[str]
    stage: Optional[str]
    #: a request or reply delivered elsewhere: the port its first copy left on
    left_on: Optional[str] = None

    @property
    def key(self) -> Tuple[str, str, str]:
        """(source, destination, protocol): what identifies a cell across two matrices."""
        return (self.src, self.dst, self.proto)

    def describe(self) -> str:
        """The answer in a few words: reachable and as whom, or where it was blocked."""
        if self.reachable:
            return f"reachable (seen as {self.seen_as})"
        where = f" at {self.datapath} {self.stage}" if self.stage else ""
        left = f" (left on {self.left_on})" if self.left_on and not self.stage else ""
        return f"{self.direction} {self.disposition}{where}{left}"

    def as_dict(self) -> Dict[str, object]:
        """The JSON form."""
        return {"src": self.src, "dst": self.dst, "proto": self.proto, "reachable": self.reachable,
                "seen_as": self.seen_as, "direction": self.direction, "disposition": self.disposition,
                "datapath": self.datapath, "stage": self.stage, "left_on": self.left_on}


class Matrix:
    """Answers for sources × destinations × protocols, as arrays of shape (P, S, D)."""

    def __init__(self, reach: Reachability, sources: List[Endpoint], dests: List[Endpoint],
                 protos: List[Protocol], datapath_names: Sequence[str]):
        self.reach = reach
        self.sources, self.dests, self.protos = sources, dests, protos
        self.datapath_names = list(datapath_names)
        self.port_names: List[str] = []
        shape = (len(protos), len(sources), len(dests))
        self.status = np.full(shape, NOT_ASKED, dtype=np.int8)
        self.disposition = np.full(shape, -1, dtype=np.int16)
        self.stage = np.full(shape, -1, dtype=np.int16)
        self.datapath = np.full(shape, -1, dtype=np.int32)
        self.seen = np.zeros(shape, dtype=np.uint32)
        self.left = np.full(shape, -1, dtype=np.int32)
        self.dispositions: List[str] = []
        #: (localnet port index, address) -> MAC: the ARP requests outside hosts answer
        self.arp_answers: Dict[Tuple[int, int], str] = {}
        self._disp_index: Dict[str, int] = {}

    def code(self, disposition: str) -> int:
        """The index of ``disposition`` in :attr:`dispositions` (added when new)."""
        if disposition not in self._disp_index:
            self._disp_index[disposition] = len(self.dispositions)
            self.dispositions.append(disposition)
        return self._disp_index[disposition]

    def network_of(self, ep: Endpoint) -> str:
        """The network name an endpoint is grouped under."""
        return self.reach.topology.networks[ep.network].name

    def cell(self, p: int, s: int, d: int) -> Cell:
        """The answer of protocol ``p``, source ``s``, destination ``d`` (indices)."""
        st = int(self.status[p, s, d])
        stage = int(self.stage[p, s, d])
        dp = int(self.datapath[p, s, d])
        disp = int(self.disposition[p, s, d])
        return Cell(self.sources[s].label, self.dests[d].label, str(self.protos[p]), st == REACHABLE,
                    str(ipaddress.IPv4Address(int(self.seen[p, s, d]))) if st in (REACHABLE, RETURN_BLOCKED) else None,
                    {FORWARD_BLOCKED: "forward", RETURN_BLOCKED: "return"}.get(st),
                    self.dispositions[disp] if disp >= 0 else None,
                    self.datapath_names[dp] if dp >= 0 else None,
                    STAGE_LIST[stage].name if stage >= 0 else None,
                    self.port_names[int(self.left[p, s, d])] if self.left[p, s, d] >= 0 else None)

    def cells(self) -> Iterator[Cell]:
        """Every asked cell (not a port to itself), protocol-major."""
        for p, s, d in zip(*np.nonzero(self.status != SELF)):
            yield self.cell(int(p), int(s), int(d))

    def __len__(self) -> int:
        return int((self.status != SELF).sum())

    def explain(self, p: int, s: int, d: int) -> Answer:
        """The cell asked again through the per-question API: its full answer with trace."""
        return self.reach.ask_fresh(self.sources[s], self.dests[d], self.protos[p])


def _ip(ep: Endpoint) -> int:
    return int(ep.ip)


def compute_matrix(topology: Union[Topology, str, Reachability],
                   protos: Sequence[Union[str, Protocol]] = DEFAULT_PROTOCOLS,
                   sources: Optional[Sequence[str]] = None, *, engine: Optional[str] = None,
                   batch_frames: int = 20_000) -> Matrix:
    """Every VM port × (every VM port + every floating IP + outside) × ``protos``, on the batch engine.

    ``sources``: restrict the rows to these endpoints (names as :func:`reach` takes them).
    """
    r = topology if isinstance(topology, Reachability) else Reachability(topology)
    protos = [p if isinstance(p, Protocol) else parse_proto(p) for p in protos]
    directory = r.directory
    vms = directory.vm_ports()
    srcs = vms if sources is None else [directory.resolve(s, "source") for s in sources]
    for s in srcs:
        if s.kind != "port":
            raise ReachError(f"matrix source {s.label!r}: only VM ports are matrix sources")
    dests: List[Endpoint] = list(vms) + list(directory.fips)
    has_outside = bool(directory.external) and bool(directory.localnet)
    if has_outside:
        dests.append(directory.resolve("outside", "destination", near=srcs[0] if srcs else None))
    eng = make_engine(r.logical, engine)
    m = Matrix(r, srcs, dests, protos, eng.datapath_names)
    m.port_names = list(eng.port_names)
    port_index = eng.port_index
    m.arp_answers = {(port_index[port], int(ip)): mac for (port, ip), mac in directory.upstream_arp().items()}

    # -- per-endpoint numbers (vectorised below) ---------------------------
    macs: List[bytes] = []
    mac_index: Dict[str, int] = {}

    def mac_id(mac: Optional[str]) -> int:
        if not mac:
            return -1
        if mac not in mac_index:
            mac_index[mac] = len(macs)
            macs.append(mac_bytes(mac))
        return mac_index[mac]

    net_ids = {n: i for i, n in enumerate(r.topology.networks)}
    s_ip = np.array([_ip(s) for s in srcs], dtype=np.uint64)
    s_net = np.array([net_ids[s.network] for s in srcs], dtype=np.int64)
    s_mac = np.array([mac_id(s.mac) for s in srcs], dtype=np.int64)
    s_port = np.array([port_index[s.port] for s in srcs], dtype=np.int64)
    s_prefix = np.zeros(len(srcs), dtype=np.uint64)
    s_mask = np.zeros(len(srcs), dtype=np.uint64)
    s_gw = np.full(len(srcs), -1, dtype=np.int64)
    s_outside_port = np.full(len(srcs), -1, dtype=np.int64)
    for i, s in enumerate(srcs):
        net = r.topology.networks[s.network]
        sub = next((x for x in net.subnets if s.ip in x.cidr), None)
        if sub is not None:
            s_prefix[i] = int(sub.cidr.network_address)
            s_mask[i] = int(sub.cidr.netmask)
            if sub.gateway_ip is not None:
                held = directory.addresses.owner(net.id, sub.gateway_ip)
                s_gw[i] = mac_id(held[0]) if held else -1
        if has_outside:
            ext = directory.external_for(s)
            if ext.id in directory.localnet:
                s_outside_port[i] = port_index[directory.localnet[ext.id]]
                out = directory.resolve("outside", "destination", near=s)
                m.arp_answers[(port_index[out.port], int(out.arp_ip))] = out.mac
    d_ip = np.array([_ip(d) for d in dests], dtype=np.uint64)
    d_net = np.array([net_ids[d.network] for d in dests], dtype=np.int64)
    d_mac = np.full(len(dests), -1, dtype=np.int64)
    d_want = np.full(len(dests), -1, dtype=np.int64)
    d_outside = np.zeros(len(dests), dtype=bool)
    for j, d in enumerate(dests):
        if d.kind == OUTSIDE_KIND:
            d_outside[j] = True
            d_net[j] = -1  # never on a sender's L2: beyond the upstream gateway
            continue
        held = directory.addresses.owner(d.network, d.ip)
        d_mac[j] = mac_id(held[0]) if held else -1
        d_want[j] = port_index[d.target if d.kind == FIP else d.port]
    mac_id.table = lambda: np.frombuffer(b"".join(macs) or b"\0" * 6, dtype=np.uint8).reshape(-1, 6)
    mac_table = mac_id.table()
    src_of_dest = {id(d): i for i, d in enumerate(dests)}
    self_col = np.array([src_of_dest.get(id(s), -1) for s in srcs], dtype=np.int64)

    # a slice of sources per batch: small batches keep the conntrack table
    # small (its cost grows faster than linearly with the connections in it)
    per_chunk = max(1, batch_frames // max(1, len(dests)))
    for lo in range(0, len(srcs), per_chunk):
        hi = min(len(srcs), lo + per_chunk)
        eng.reset()
        for p, proto in enumerate(protos):
            _run_chunk(m, eng, p, proto, lo, hi, mac_id, s_ip, s_net, s_mac, s_port, s_prefix, s_mask, s_gw,
                       s_outside_port, d_ip, d_net, d_mac, d_want, d_outside, mac_table, self_col)
    return m


def _run_chunk(m: Matrix, eng, p: int, proto: Protocol, lo: int, hi: int, mac_id, s_ip, s_net, s_mac, s_port,
               s_prefix, s_mask, s_gw, s_outside_port, d_ip, d_net, d_mac, d_want, d_outside, mac_table,
               self_col) -> None:
    ns, nd = hi - lo, len(d_ip)
    si = np.repeat(np.arange(lo, hi), nd)
    dj = np.tile(np.arange(nd), ns)
    on_subnet = (d_net[dj] >= 0) & ((d_ip[dj] & s_mask[si]) == s_prefix[si])
    hop = np.where(on_subnet, d_mac[dj], s_gw[si])
    # on the sender's subnet but on another network (overlapping address
    # plans): the sender ARPs on its own L2, and whoever holds the address
    # there (if anyone) gets the frame
    other = np.nonzero(on_subnet & (d_net[dj] != s_net[si]))[0]
    for k in other:
        s_ep, d_ep = m.sources[si[k]], m.dests[dj[k]]
        held = m.reach.directory.addresses.owner(s_ep.network, d_ep.ip)
        hop[k] = mac_id(held[0]) if held and held[0] else -1
    if len(other):
        mac_table = mac_id.table()
    want = np.where(d_outside[dj], s_outside_port[si], d_want[dj])
    is_self = self_col[si] == dj
    status = m.status[p]
    status[si[is_self], dj[is_self]] = SELF
    ok = ~is_self & (hop >= 0) & (want >= 0)
    bad = ~is_self & ~ok
    status[si[bad], dj[bad]] = FORWARD_BLOCKED
    m.disposition[p][si[bad], dj[bad]] = m.code(NO_NEXT_HOP)
    si, dj, hop, want = si[ok], dj[ok], hop[ok], want[ok]
    n = len(si)
    if n == 0:
        return
    if proto.name == "icmp":
        # one identifier per question: a ping a -> b and one b -> a with the same identifier
        # would be one connection to a switch port's conntrack (the ACL stages' zones)
        sport, dport = (ICMP_ID + np.arange(n)) & 0xFFFF, np.ones(n)
    else:
        sport, dport = np.full(n, SPORT), np.full(n, proto.port)
    frames = stamp(proto.name, mac_table[s_mac[si]], mac_table[hop], s_ip[si], d_ip[dj], sport, dport,
                   reply=False)
    length = FRAME_LEN[proto.name]
    res = _batch(eng, frames, length, s_port[si].astype(np.int64), m.arp_answers)
    delivered = _first_output(res, n, want, kinds_packet=True)
    _record_failures(m, p, si, dj, res, n, delivered, FORWARD_BLOCKED, want)

    got = np.nonzero(delivered >= 0)[0]
    if len(got) == 0:
        return
    data = res.out_data
    starts = res.out_start[delivered[got]]
    received = data[starts[:, None] + np.arange(length)]
    seen = ((received[:, 26].astype(np.uint32) << 24) | (received[:, 27].astype(np.uint32) << 16)
            | (received[:, 28].astype(np.uint32) << 8) | received[:, 29].astype(np.uint32))
    m.seen[p][si[got], dj[got]] = seen
    out_port = res.out_port[delivered[got]].astype(np.int64)
    rproto, args = reply_fields(received)
    replies = stamp(rproto, *args)
    n2 = len(got)
    res2 = _batch(eng, replies, length, out_port, m.arp_answers)
    back_want = s_port[si[got]]
    back = _first_output(res2, n2, back_want, kinds_packet=True)
    _record_failures(m, p, si[got], dj[got], res2, n2, back, RETURN_BLOCKED, back_want)
    ok2 = np.nonzero(back >= 0)[0]
    data2 = res2.out_data
    starts2 = res2.out_start[back[ok2]]
    addr = data2[starts2[:, None] + np.arange(26, 34)].astype(np.uint64)
    src = (addr[:, 0] << 24) | (addr[:, 1] << 16) | (addr[:, 2] << 8) | addr[:, 3]
    dst = (addr[:, 4] << 24) | (addr[:, 5] << 16) | (addr[:, 6] << 8) | addr[:, 7]
    rows, cols = si[got][ok2], dj[got][ok2]
    right = (src == d_ip[cols]) & (dst == s_ip[rows])
    m.status[p][rows[right], cols[right]] = REACHABLE
    wrong = ~right
    m.status[p][rows[wrong], cols[wrong]] = RETURN_BLOCKED
    m.disposition[p][rows[wrong], cols[wrong]] = m.code(WRONG_REPLY)


def _first_output(res, n: int, want: np.ndarray, kinds_packet: bool) -> np.ndarray:
    """Per frame: the index of its first packet output on the wanted port, or -1."""
    out_frame, out_port, out_kind = res.out_frame, res.out_port, res.out_kind
    first = np.full(n, -1, dtype=np.int64)
    if len(out_frame) == 0:
        return first
    hit = (out_port == want[out_frame]) & (out_kind == _KIND_PACKET)
    idx = np.nonzero(hit)[0][::-1]  # reversed, so the first hit of a frame is written last
    first[out_frame[idx]] = idx
    return first


def _record_failures(m: Matrix, p: int, si, dj, res, n: int, hit: np.ndarray, status: int, want) -> None:
    failed = hit < 0
    if not failed.any():
        return
    m.status[p][si[failed], dj[failed]] = status
    disp = np.full(n, m.code(NOT_DELIVERED), dtype=np.int16)
    stage = np.full(n, -1, dtype=np.int16)
    dpath = np.full(n, -1, dtype=np.int32)
    # an output of another kind (a reset, an ICMP error, an ARP request) explains the failure ...
    out_frame, out_kind = res.out_frame, res.out_kind
    for kind, label in _OTHER_KINDS.items():
        sel = out_frame[out_kind == kind]
        disp[sel] = m.code(label)
    # ... and a drop more precisely (the first drop of a frame wins)
    drop_frame = res.drop_frame
    if len(drop_frame):
        reasons, stages, dps = res.drop_reason, res.drop_stage, res.drop_datapath
        order = np.arange(len(drop_frame))[::-1]
        codes = np.array([m.code(Drop(x).label) if x in set(Drop) else -1
                          for x in range(int(reasons.max()) + 1)], dtype=np.int16)
        disp[drop_frame[order]] = codes[reasons[order]]
        stage[drop_frame[order]] = stages[order]
        dpath[drop_frame[order]] = dps[order]
    rows, cols = si[failed], dj[failed]
    m.disposition[p][rows, cols] = disp[failed]
    m.stage[p][rows, cols] = stage[failed]
    m.datapath[p][rows, cols] = dpath[failed]
    left = np.full(n, -1, dtype=np.int32)
    order = np.arange(len(res.out_frame))[::-1]  # the first output of a frame is written last
    left[res.out_frame[order]] = res.out_port[order]
    m.left[p][rows, cols] = left[failed]


class _Flat:
    """A :class:`~ovnsim.datapath.engine.BatchResult` as numpy arrays (rows of some frames replaced)."""

    OUT = ("out_frame", "out_port", "out_kind", "out_start")
    DROP = ("drop_frame", "drop_reason", "drop_stage", "drop_datapath")
    TYPES = {"out_frame": np.int32, "out_port": np.int32, "out_kind": np.int8, "out_start": np.int64,
             "drop_frame": np.int32, "drop_reason": np.int8, "drop_stage": np.int16, "drop_datapath": np.int32}

    def __init__(self, res) -> None:
        for name in self.OUT + self.DROP:
            setattr(self, name, np.frombuffer(getattr(res, name), dtype=self.TYPES[name]))
        self.out_data = np.frombuffer(bytes(res.out_data), dtype=np.uint8)

    def replace(self, frames: np.ndarray, again: "_Flat") -> None:
        """Drop the rows of ``frames`` and take ``again``'s (whose frame k is ``frames[k]``)."""
        keep = ~np.isin(self.out_frame, frames)
        base = len(self.out_data)
        for name in self.OUT:
            new = getattr(again, name)
            if name == "out_frame":
                new = frames[new].astype(np.int32)
            elif name == "out_start":
                new = new + base
            setattr(self, name, np.concatenate([getattr(self, name)[keep], new]))
        self.out_data = np.concatenate([self.out_data, again.out_data])
        keep = ~np.isin(self.drop_frame, frames)
        for name in self.DROP:
            new = getattr(again, name)
            if name == "drop_frame":
                new = frames[new].astype(np.int32)
            setattr(self, name, np.concatenate([getattr(self, name)[keep], new]))


_KIND_ARP = KIND_CODE["arp"]


def _batch(eng, frames: np.ndarray, length: int, inports: np.ndarray, answers: Dict[Tuple[int, int], str]) -> _Flat:
    """One batch; the frames a router ARPed for are sent once more (a sender's retransmission).

    ``answers``: (localnet port, address) -> the MAC the outside host
    answering an ARP request for that address there replies with.
    """
    n = len(frames)
    offsets = np.arange(n, dtype=np.int64) * length
    lengths = np.full(n, length, dtype=np.int64)
    res = _Flat(eng.process_batch(frames.reshape(-1), offsets, lengths, inports))  # one flat byte buffer
    arp_rows = np.nonzero(res.out_kind == _KIND_ARP)[0]
    # a router resolved a neighbour on the way: an ARP request left, or a
    # router consumed an ARP reply (the sender's retransmission goes through)
    consumed = res.drop_frame[res.drop_reason == int(Drop.ARP_NOT_ANSWERED)]
    again = np.unique(np.concatenate([res.out_frame[arp_rows], consumed])).astype(np.int64)
    if len(again):
        asked = set()
        for row in arp_rows:
            start = int(res.out_start[row])
            req = res.out_data[start:start + 42].tobytes()
            key = (int(res.out_port[row]), int.from_bytes(req[38:42], "big"))
            if key in answers and key not in asked:
                asked.add(key)
                reply = build_arp_reply(req, answers[key])
                eng.process_batch(reply, [0], [len(reply)], [key[0]])
        k = len(again)
        res.replace(again, _Flat(eng.process_batch(np.ascontiguousarray(frames[again]).reshape(-1), offsets[:k],
                                                   lengths[:k], inports[again])))
    return res
