"""The Python API: a simulator of one topology's OVN data path.

::

    from ovnsim.sim import Simulator
    sim = Simulator.from_file("topologies/reference.yaml")
    result = sim.inject("vm1", frame)          # bytes or a scapy packet
    for out in result.outputs:
        print(out.port, out.kind, out.frame)    # the frame as it leaves that port
    print(result.drops, sim.verdict(result))

Frames run through the C engine (``ovnsim.datapath._fastpath.FastEngine``),
traced: the trace records are rendered with the rule catalogue
(:mod:`ovnsim.northd.rules`) into :class:`TraceEvent` objects, and give each
drop its detail.  The result types of the API live here.

State that outlives one frame, as in a real deployment, lives in the engine:
the connection tracker (so replies to SNATed or DNATed connections are
un-NATed) and the MAC bindings routers learn from ARP.  ``reset()`` forgets
both.  ``sim.conntrack`` lists the connections (:class:`ConntrackEntry`, a
``dpctl/dump-conntrack`` line each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, NamedTuple, Optional, Union

from ovnsim.errors import MicroflowError
from ovnsim.nb.model import LogicalTopology
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.model import Topology
from ovnsim.northd.stages import Drop
from ovnsim.northd.tables import build_tables

__all__ = ["Simulator", "Result", "Output", "DropRecord", "TraceEvent", "ConntrackTable", "ConntrackEntry",
           "ConntrackTuple", "verdict", "run_traced"]

FrameLike = Union[bytes, bytearray, memoryview, "scapy.packet.Packet"]  # noqa: F821


@dataclass(frozen=True)
class TraceEvent:
    """One step of a trace: where the frame was and what the stage did (frozen: steps are shared)."""

    depth: int
    datapath: str
    stage: str
    table: int
    pipeline: str
    priority: Optional[int]
    match: str
    action: str
    rule: str = ""  #: the catalogue rule (``ovnsim.northd.rules``) the step applied
    #: the header fields the step set, in order (``ovnsim.northd.rules.Rule.writes``, filled in)
    writes: tuple = ()

    def as_dict(self) -> Dict[str, object]:
        """The event as the JSON verdict prints it."""
        return {"datapath": self.datapath, "pipeline": self.pipeline, "table": self.table,
                "stage": self.stage, "priority": self.priority, "match": self.match, "action": self.action,
                "depth": self.depth}


class OutputPacket:
    """The header fields of an output frame (``output.packet.fields()``), read from its bytes."""

    __slots__ = ("_frame", "_fields")

    def __init__(self, frame: bytes):
        self._frame = frame
        self._fields: Optional[Dict[str, object]] = None

    def fields(self) -> Dict[str, object]:
        """OVN's field names and printed values (as ``ovnsim.datapath._fastpath.frame_fields``)."""
        if self._fields is None:
            from ovnsim.datapath._fastpath import frame_fields

            self._fields = frame_fields(self._frame) or {}
        return dict(self._fields)


@dataclass
class Output:
    """A frame leaving the logical network on a port (a VM port or a localnet port).

    ``kind`` says what it is (the frame itself, or a reply or error a router
    or responder generated, see ``ovnsim.datapath.engine.KINDS``); ``frame``
    is its bytes: the received frame rewritten in place (incremental
    checksums), or the generated frame.
    """

    port: str
    kind: str
    frame: bytes

    @property
    def packet(self) -> OutputPacket:
        """The frame's header fields (``.fields()``)."""
        return OutputPacket(self.frame)

    def fields(self) -> Dict[str, object]:
        """The frame's header fields with OVN's names."""
        return self.packet.fields()


@dataclass
class DropRecord:
    """A copy of the frame that was dropped: where, and why."""

    datapath: str
    stage: str
    reason: Drop
    detail: str = ""

    def as_dict(self) -> Dict[str, object]:
        """The drop as the JSON verdict prints it."""
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


class ConntrackTuple(NamedTuple):
    """One direction of a connection: addresses as dotted quads (as scapy's ``pkt[IP].src``), ports.

    An ICMP query has no ports: its identifier is both ``sport`` and ``dport``
    (OVS keys an ICMP query by its identifier in both directions).
    """

    src: str
    dst: str
    sport: int
    dport: int


#: dpctl's protocol names (ct-dpif.c); another protocol prints as its number
_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


@dataclass(frozen=True)
class ConntrackEntry:
    """One connection the conntrack table holds: a line of ``ovs-appctl dpctl/dump-conntrack -s``.

    ``str(entry)`` is that line, e.g.
    ``udp,orig=(src=10.0.0.11,dst=8.8.8.8,sport=40000,dport=53),reply=(src=8.8.8.8,dst=172.24.4.10,sport=53,dport=40000),zone=3,timeout=60``
    (``zone=`` is printed also for zone 0; the packet and byte counters and
    the start time, which ovnsim does not keep, are not).
    """

    #: the zone's number in this simulator (ovn-controller numbers its zones its own way)
    zone: int
    #: the logical router or switch whose zone it is, named as traces and drops name datapaths
    datapath: str
    #: ``"snat"``, ``"dnat"`` or ``"common"`` (a router's zone; the common one is NAT through a
    #: distributed gateway port, ``ct_*_in_czone``) or ``"acl"`` (a switch port's zone, for its ACLs)
    zone_kind: str
    #: the switch port whose zone it is (``"acl"`` zones), else None
    port: Optional[str]
    #: ``"tcp"``, ``"udp"``, ``"icmp"``, or the IP protocol number as a string
    proto: str
    #: the tuple of the packet that committed the connection (before this zone's NAT)
    orig: ConntrackTuple
    #: the tuple its replies carry: the original after this zone's NAT, reversed
    reply: ConntrackTuple
    #: TCP's state as dpctl prints it (``"SYN_SENT"``, ``"ESTABLISHED"``, ``"TIME_WAIT"``...); None for others
    state: Optional[str]
    #: the timeout class its state gives, by OVS's timeout-policy names (``"tcp_established"``, ``"udp_first"``...)
    timeout_policy: str
    #: seconds until it expires by the simulator's clock (the last frame's ``time``)
    timeout: float
    #: its ct_mark: 1 is ``ct_mark.blocked`` (an ACL zone's connection an ACL change closed)
    mark: int

    @property
    def nat(self) -> bool:
        """Whether this zone translated the connection (its reply is not its original reversed)."""
        o = self.orig
        return self.reply != (o.dst, o.src, o.dport, o.sport)

    def __str__(self) -> str:
        def side(t: ConntrackTuple) -> str:
            ports = f"id={t.sport}" if self.proto == "icmp" else f"sport={t.sport},dport={t.dport}"
            return f"src={t.src},dst={t.dst},{ports}"

        line = f"{self.proto},orig=({side(self.orig)}),reply=({side(self.reply)}),zone={self.zone}," \
               f"timeout={int(self.timeout)}"
        if self.mark:
            line += f",mark={self.mark}"
        if self.state is not None:
            line += f",protoinfo=(state={self.state})"
        return line


class ConntrackTable:
    """The connections an engine's conntrack holds now (``Simulator.conntrack``), as dpctl dumps them.

    Iterating gives a :class:`ConntrackEntry` per connection, grouped by
    zone; ``len()`` counts them.  A connection whose timeout has passed by
    the clock is not listed, though the engine may not have reclaimed it
    yet (``engine.conntrack_stats``).  Each iteration reads the table
    afresh: a list taken before a frame is a snapshot.
    """

    def __init__(self, engine) -> None:
        self._engine = engine

    def __iter__(self) -> Iterator[ConntrackEntry]:
        entries = [ConntrackEntry(zone, datapath, kind, port, _PROTO_NAMES.get(proto, str(proto)),
                                  ConntrackTuple(*orig), ConntrackTuple(*reply), state, policy, left / 1e9, mark)
                   for zone, datapath, kind, port, proto, orig, reply, state, policy, left, mark
                   in self._engine.conntrack_entries()]
        return iter(sorted(entries, key=lambda e: e.zone))

    def __len__(self) -> int:
        return len(self._engine.conntrack_entries())

    def __str__(self) -> str:
        """The dump: one dpctl line per connection."""
        return "\n".join(map(str, self))


def _frame_bytes(frame: FrameLike) -> bytes:
    return bytes(frame)  # bytes-like objects as they are; a scapy packet serialises itself


def run_traced(engine, renderer, raw: bytes, inport: int, *, with_trace: bool = True,
               time_ns: Optional[int] = None, origlen: Optional[int] = None) -> Result:
    """Run one frame through ``engine``; its :class:`Result` (``with_trace``: its trace too).

    ``inport`` is a port index (``-1``: chosen as ``--auto`` does).  The
    trace records give the events; each drop's detail comes from the
    batch's drop arrays or its trace.  ``time_ns``: the
    frame's time (conntrack ageing; None: the clock stands still);
    ``origlen``: its length on the wire when a capture's snaplen cut it.
    """
    from ovnsim.datapath.engine import KINDS

    batch = engine.process_batch(raw, [0], [len(raw)], [inport], trace=with_trace,
                                 timestamps=None if time_ns is None else [time_ns],
                                 origlens=None if origlen is None else [origlen])
    names = engine.port_names
    outputs = [Output(names[batch.out_port[i]], KINDS[batch.out_kind[i]], batch.output_bytes(i))
               for i in range(batch.n_outputs)]
    if with_trace:
        events, drops = renderer.events_and_drops(batch)
        return Result(outputs, drops, events)
    # Without a trace the engine runs its untraced build; the drops (their
    # details included) come from the batch's drop arrays.
    return Result(outputs, renderer.drops(batch), [])


class Simulator:
    """OVN's logical data path for one topology, with its conntrack and neighbour state."""

    def __init__(self, topology: Union[Topology, LogicalTopology], *, ct_limit: Optional[int] = None,
                 ct_timeouts: Optional[Dict[str, int]] = None):
        """``ct_limit``: connections the conntrack table may hold (None: no limit); a new
        connection beyond it is dropped with disposition ``conntrack-full``.  ``ct_timeouts``:
        conntrack timeouts (seconds) to change, by OVS's names (``{"udp_first": 10}``; the
        others keep OVS's defaults, ``engine.ct_timeouts``)."""
        from ovnsim.datapath.engine import fast_engine
        from ovnsim.datapath.trace import TraceRenderer

        logical = topology if isinstance(topology, LogicalTopology) else compile_topology(topology)
        #: the Neutron topology this simulator was built from (None when built from a logical
        #: topology): reachability questions name ports, fixed and floating IPs by it
        self.topology: Optional[Topology] = None if isinstance(topology, LogicalTopology) else topology
        self.logical = logical
        self.tables = build_tables(logical)
        self.engine = fast_engine(logical, self.tables)
        self.engine.ct_limit = ct_limit
        if ct_timeouts:
            self.engine.ct_timeouts = ct_timeouts
        self.renderer = TraceRenderer(self.engine)
        #: the connections tracked now: iterate for :class:`ConntrackEntry` objects, ``len()`` counts them
        self.conntrack = ConntrackTable(self.engine)

    @classmethod
    def from_file(cls, path: str, *, ct_limit: Optional[int] = None,
                  ct_timeouts: Optional[Dict[str, int]] = None) -> "Simulator":
        """Load, check and compile a topology file."""
        from ovnsim.neutron.loader import load_topology

        return cls(load_topology(path), ct_limit=ct_limit, ct_timeouts=ct_timeouts)

    @property
    def ports(self) -> List[str]:
        """Every logical switch port a frame can be injected on."""
        return list(self.engine.port_names)

    def reset(self) -> None:
        """Forget connections and learned MAC bindings (static ones stay)."""
        self.engine.reset()

    def inject(self, port: str, frame: FrameLike, *, trace: bool = False, time: Optional[float] = None) -> Result:
        """Send ``frame`` into the logical network on switch port ``port``.

        A frame ovnsim cannot parse is not an error: the result has no
        output and one drop with disposition ``malformed`` (or
        ``unsupported`` for IPv6).  An unknown port is a caller error
        (:class:`~ovnsim.errors.MicroflowError`).  ``trace=True`` fills
        ``result.trace``.

        ``time``: when the frame arrives, in seconds (any epoch; a capture's
        timestamps).  Conntrack connections expire by it as in OVS's userspace
        datapath (``engine.ct_timeouts``): a reply that comes after its
        connection expired is a new packet, not a reply.  The clock never goes
        back; a frame without a time leaves it where it is (so nothing
        expires in a simulator that is never given one).
        """
        index = self.engine.port_index.get(port)
        if index is None:
            raise MicroflowError(f"unknown logical port {port!r}")
        time_ns = None
        if time is not None:
            if isinstance(time, bool) or not isinstance(time, (int, float)) or not 0 <= time < 2 ** 63 / 1e9:
                raise ValueError(f"time must be a number of seconds from 0 to 9.2e9, not {time!r}")
            time_ns = round(time * 1_000_000_000) if isinstance(time, float) else time * 1_000_000_000
        return run_traced(self.engine, self.renderer, _frame_bytes(frame), index, with_trace=trace,
                          time_ns=time_ns)

    def trace(self, microflow: str) -> Result:
        """Run an ovn-trace microflow (``inport == "vm1" && eth.src == ... && ...``) with tracing on."""
        from ovnsim.datapath.microflow import parse_microflow

        flow = parse_microflow(microflow)
        return self.inject(flow.inport, flow.to_frame(), trace=True)

    def verdict(self, result: Result, *, with_trace: bool = False) -> Dict[str, object]:
        """``result`` as the JSON verdict ``ovnsim trace --format json`` prints."""
        return verdict(result, with_trace=with_trace)


def verdict(result: Result, *, with_trace: bool = False) -> Dict[str, object]:
    """The JSON-able verdict of a result: outputs (port, kind, header fields), drops, trace.

    Outputs are sorted so that two verdicts compare equal whatever order the
    fan-out produced them in.
    """
    outputs = [{"port": o.port, "kind": o.kind, **o.fields()} for o in result.outputs]
    outputs.sort(key=lambda o: (o["port"], o["kind"], json.dumps(o, sort_keys=True)))
    out: Dict[str, object] = {
        "outputs": outputs,
        "dropped": result.dropped,
        "drops": [d.as_dict() for d in result.drops],
    }
    if with_trace:
        out["trace"] = [e.as_dict() for e in result.trace]
    return out
