"""One reachability question, asked the way a real connection asks it.

``reach(topology, "vm1", "db1", "tcp/22")`` sends the first packet of a
connection from ``vm1`` (a TCP SYN, a UDP datagram, an ICMP echo request,
built as vm1's stack builds it), checks it is delivered to ``db1``, has
``db1`` answer it (SYN-ACK, UDP reply, echo reply, built from what ``db1``
received) and checks the answer comes back to ``vm1`` through the same
conntrack/NAT state, addressed as vm1 expects (from the address it sent to).
The :class:`Answer` says whether that worked, as which address the
destination saw the sender, the outputs of both directions, and for a
failure where and why: the disposition, the datapath, the first blocking
stage with its rule (match/action) and the trace that led there.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from ovnsim.datapath.engine import KIND_ECHO_REPLY, KIND_PACKET
from ovnsim.sim import Output, Result, TraceEvent
from ovnsim.nb.model import LogicalTopology
from ovnsim.neutron.model import Topology
from ovnsim.northd.stages import Drop
from ovnsim.reach.endpoints import FIP, OUTSIDE_KIND, ROUTER, Directory, Endpoint, Protocol, ReachError, \
    parse_proto
from ovnsim.reach.frames import build_arp_reply, build_reply, build_request
from ovnsim.sim import Simulator

__all__ = ["reach", "Answer", "Reachability", "Blocker"]

#: Dispositions a question can end with besides the data path's own drop reasons.
NOT_DELIVERED = "not-delivered"  #: the frame left the network, but not where the destination is
REJECTED = "rejected"  #: a router answered with a TCP reset / ICMP error instead
UNRESOLVED = "unresolved-neighbour"  #: a router sent an ARP request instead of the frame
WRONG_REPLY = "reply-not-un-nated"
NO_NEXT_HOP = "no-next-hop"  #: the sender's stack has nowhere to send the frame (no neighbour, no gateway)  #: the reply came back, but not from the address the sender used


@dataclass
class Blocker:
    """Where a direction of a question stopped: the disposition, datapath, stage and rule."""

    direction: str  #: "forward" or "return"
    disposition: str
    datapath: Optional[str] = None
    stage: Optional[str] = None
    rule: Optional[TraceEvent] = None  #: the trace step of the blocking stage (priority, match, action)
    detail: str = ""

    def describe(self) -> str:
        """One line: direction, disposition, where, and the rule."""
        where = f" at {self.datapath} {self.stage}" if self.stage else ""
        text = f"{self.direction} {self.disposition}{where}"
        if self.rule is not None:
            text += f" (priority {self.rule.priority}, match ({self.rule.match}), action ({self.rule.action}))"
        return text + (f": {self.detail}" if self.detail else "")


@dataclass
class Answer:
    """What became of one question; true when reachable."""

    src: Endpoint
    dst: Endpoint
    proto: Protocol
    reachable: bool
    #: the source address the destination saw (the sender's fixed IP, a SNAT address, its floating IP)
    seen_as: Optional[str] = None
    forward: Optional[Result] = None
    reply: Optional[Result] = None
    blocker: Optional[Blocker] = None
    #: the trace of the direction that failed, up to and including the blocking stage
    trace: List[TraceEvent] = field(default_factory=list)
    forward_frame: bytes = b""
    reply_frame: bytes = b""
    #: the switch port the forward frame was delivered on (a floating IP: its VM's port)
    delivered_port: Optional[str] = None
    #: who answered: "emulator" (ovnsim's data path) or "lab" (a real lab's kernel, :mod:`ovnsim.reach.lab`)
    backend: str = "emulator"

    def __bool__(self) -> bool:
        return self.reachable

    @property
    def question(self) -> str:
        """``vm1 -> db1 tcp/22``."""
        return f"{self.src.label} -> {self.dst.label} {self.proto}"

    @property
    def forward_outputs(self) -> List[Output]:
        """What the request produced (every output, wherever it left)."""
        return list(self.forward.outputs) if self.forward else []

    @property
    def return_outputs(self) -> List[Output]:
        """What the reply produced (empty when no reply was sent)."""
        return list(self.reply.outputs) if self.reply else []

    @property
    def disposition(self) -> Optional[str]:
        """Why it failed (a drop disposition, or not-delivered, rejected, ...); None when reachable."""
        return self.blocker.disposition if self.blocker else None

    @property
    def datapath(self) -> Optional[str]:
        """The datapath of the blocking stage."""
        return self.blocker.datapath if self.blocker else None

    @property
    def stage(self) -> Optional[str]:
        """The first blocking stage (OVN's name)."""
        return self.blocker.stage if self.blocker else None

    def path(self, direction: str = "forward") -> List[str]:
        """The datapaths a direction crossed, in order (from its trace)."""
        result = self.forward if direction == "forward" else self.reply
        out: List[str] = []
        for event in (result.trace if result else []):
            if not out or out[-1] != event.datapath:
                out.append(event.datapath)
        return out

    def nat(self) -> List[str]:
        """The address translations the forward frame went through (``SNAT a -> b``, ``DNAT a -> b``)."""
        out = []
        if self.seen_as and self.seen_as != str(self.src.ip):
            out.append(f"SNAT {self.src.ip} -> {self.seen_as}")
        if self.forward is not None:
            for o in self.forward.outputs:
                if o.kind == KIND_PACKET and o.port == self.delivered_port and o.fields()["ip4.dst"] != str(self.dst.ip):
                    out.append(f"DNAT {self.dst.ip} -> {o.fields()['ip4.dst']}")
                    break
        return out

    def explain(self) -> str:
        """The evidence, as the CLI and the pytest plugin print it."""
        on = " (lab)" if self.backend == "lab" else ""
        lines = [f"{self.question}: {'reachable' if self.reachable else 'NOT reachable'}{on}"]
        if self.forward is not None:
            lines.append("  forward path: " + " -> ".join([self.src.port or "?"] + self.path("forward")
                                                          + self._outs(self.forward)))
        if self.reply is not None:
            lines.append("  return path:  " + " -> ".join([self.delivered_port or "?"] + self.path("return")
                                                          + self._outs(self.reply)))
        if self.seen_as:
            lines.append(f"  {self.dst.label} saw the sender as {self.seen_as}")
        for nat in self.nat():
            lines.append(f"  NAT: {nat}")
        if self.blocker is not None:
            lines.append("  blocked: " + self.blocker.describe())
            if self.trace:
                lines.append("  trace to the blocking stage:")
                for e in self.trace[-12:]:
                    lines.append(f"    {e.datapath} {e.stage} ({e.priority}): {e.match} => {e.action}")
        return "\n".join(lines)

    @staticmethod
    def _outs(result: Result) -> List[str]:
        return [f"{o.port} [{o.kind}]" for o in result.outputs]

    def as_dict(self) -> Dict[str, object]:
        """The JSON form (CLI ``--format json``)."""
        out: Dict[str, object] = {"src": self.src.label, "dst": self.dst.label, "proto": str(self.proto),
                                  "reachable": self.reachable, "seen_as": self.seen_as,
                                  "path": self.path("forward"), "return_path": self.path("return"),
                                  "nat": self.nat(), "backend": self.backend}
        if self.blocker is not None:
            b = self.blocker
            out["blocked"] = {"direction": b.direction, "disposition": b.disposition, "datapath": b.datapath,
                              "stage": b.stage, "detail": b.detail,
                              "rule": b.rule.as_dict() if b.rule else None}
        return out


def _blocking_step(result: Result, datapath: Optional[str], stage: Optional[str]) -> Tuple[Optional[TraceEvent],
                                                                                         List[TraceEvent]]:
    if stage is None:
        return None, list(result.trace)
    for i in range(len(result.trace) - 1, -1, -1):
        e = result.trace[i]
        if e.stage == stage and (datapath is None or e.datapath == datapath):
            return e, list(result.trace[:i + 1])
    return None, list(result.trace)


def _find_rule(result: Result, predicate) -> Tuple[Optional[TraceEvent], List[TraceEvent]]:
    for i in range(len(result.trace) - 1, -1, -1):
        if predicate(result.trace[i]):
            return result.trace[i], list(result.trace[:i + 1])
    return None, list(result.trace)


def classify(result: Result, want_port: Optional[str], direction: str, *, router_answers: bool = False
             ) -> Tuple[Optional[Output], Optional[Blocker], List[TraceEvent]]:
    """The output that reached ``want_port`` (a packet, or the router's own echo reply), or why none did."""
    kinds = (KIND_ECHO_REPLY,) if router_answers else (KIND_PACKET,)
    for out in result.outputs:
        if out.port == want_port and out.kind in kinds:
            return out, None, []
    if result.drops:
        d = result.drops[0]
        rule, trace = _blocking_step(result, d.datapath, d.stage)
        return None, Blocker(direction, d.reason.label, d.datapath, d.stage, rule, d.detail), trace
    for out in result.outputs:
        if out.kind in ("tcp_reset", "icmp4", "arp"):
            word = "arp" if out.kind == "arp" else ("tcp_reset" if out.kind == "tcp_reset" else "icmp4")
            rule, trace = _find_rule(result, lambda e: word in e.action)
            disposition = UNRESOLVED if out.kind == "arp" else REJECTED
            return None, Blocker(direction, disposition, rule.datapath if rule else None,
                                 rule.stage if rule else None, rule,
                                 f"{out.kind} sent to {out.port}"), trace
    where = ", ".join(f"{o.port} [{o.kind}]" for o in result.outputs) or "nowhere"
    return None, Blocker(direction, NOT_DELIVERED, detail=f"left on {where}, not on {want_port}"), list(result.trace)


def resolve_ends(directory: Directory, src: str, dst: str) -> Tuple[Endpoint, Endpoint]:
    """Both ends of a question (an ``outside`` end is placed on the external network the other end uses)."""
    s0 = None if str(src).startswith("outside") else directory.resolve(src, "source")
    d = directory.resolve(dst, "destination", near=s0)
    s = s0 if s0 is not None else directory.resolve(src, "source", near=d)
    if s.kind == FIP:
        s = directory.ports[s.target]
    if not s.can_send:
        raise ReachError(f"source {src!r}: {s.label} does not send frames of its own (give a VM port or outside)")
    if d.kind == OUTSIDE_KIND and s.kind == OUTSIDE_KIND:
        raise ReachError("source and destination are both outside the topology")
    return s, d


class Reachability:
    """Questions about one topology, each on fresh state (or on a caller's simulator's state)."""

    def __init__(self, topology: Union[Topology, str], simulator: Optional[Simulator] = None):
        if isinstance(topology, (str, os.PathLike)):
            from ovnsim.neutron.loader import load_topology

            topology = load_topology(str(topology))
        self.topology: Topology = topology
        self.sim = simulator if simulator is not None else Simulator(topology)
        self.logical: LogicalTopology = self.sim.logical
        self.directory = Directory(topology, self.logical)

    def endpoints(self, src: str, dst: str) -> Tuple[Endpoint, Endpoint]:
        """Resolve both ends (an ``outside`` end is placed on the external network the other end uses)."""
        return resolve_ends(self.directory, src, dst)

    def ask(self, src: str, dst: str, proto: Union[str, Protocol] = "tcp/22", *, fresh: bool = True) -> Answer:
        """Answer ``src -> dst proto`` (``fresh``: forget conntrack and learned MACs first)."""
        proto = proto if isinstance(proto, Protocol) else parse_proto(proto)
        s, d = self.endpoints(src, dst)
        if fresh:
            self.sim.reset()
        return self.ask_endpoints(s, d, proto)

    def ask_fresh(self, s: Endpoint, d: Endpoint, proto: Protocol) -> Answer:
        """:meth:`ask_endpoints` on fresh state (an ``outside`` destination placed for this source)."""
        if d.kind == OUTSIDE_KIND:
            d = self.directory.resolve(d.label, "destination", near=s)
        self.sim.reset()
        return self.ask_endpoints(s, d, proto)

    def _send(self, port: str, frame: bytes, peer: Endpoint) -> Result:
        """Inject ``frame``; when a router had to resolve a neighbour with ARP on the way, send it once more.

        That is what the sender's stack does: the first frame is lost to the
        router's ARP exchange, the retransmission goes through.  A router
        inside the topology answers for its own addresses (its reply is
        consumed: an ``arp-not-answered`` drop); the upstream gateways and an
        outside ``peer`` answer for theirs here.
        """
        result = self.sim.inject(port, frame, trace=True)
        arps = [o for o in result.outputs if o.kind == "arp"]
        if not arps and not any(d.reason == Drop.ARP_NOT_ANSWERED for d in result.drops):
            return result
        answers = {(port, int(ip)): mac for (port, ip), mac in self.directory.upstream_arp().items()}
        if peer.kind == OUTSIDE_KIND:
            answers[(peer.port, int(peer.arp_ip))] = peer.mac
        for out in arps:
            mac = answers.get((out.port, int(ipaddress.ip_address(out.fields()["arp.tpa"]))))
            if mac is not None:
                self.sim.inject(out.port, build_arp_reply(out.frame, mac))
        return self.sim.inject(port, frame, trace=True)

    def ask_endpoints(self, s: Endpoint, d: Endpoint, proto: Protocol) -> Answer:
        """Answer a question whose ends are already resolved (no reset)."""
        try:
            eth_dst = self.directory.next_hop_mac(s, d.ip)
        except ReachError as err:
            return Answer(s, d, proto, False, blocker=Blocker("forward", NO_NEXT_HOP, detail=str(err)))
        request = build_request(s.mac, eth_dst, s.ip, d.ip, proto)
        answer = Answer(s, d, proto, False, forward_frame=request)
        fwd = self._send(s.port, request, d)
        answer.forward = fwd
        if d.kind == ROUTER:
            if proto.name != "icmp":
                _, blocker, trace = classify(fwd, None, "forward")
                answer.blocker, answer.trace = blocker, trace
                return answer
            out, blocker, trace = classify(fwd, s.port, "forward", router_answers=True)
            if out is None:
                answer.blocker, answer.trace = blocker, trace
                return answer
            answer.reachable, answer.seen_as = True, str(s.ip)
            return answer
        want = d.target if d.kind == FIP else d.port
        out, blocker, trace = classify(fwd, want, "forward")
        if out is None:
            answer.blocker, answer.trace = blocker, trace
            return answer
        received = out.frame
        answer.delivered_port = out.port
        answer.seen_as = out.fields()["ip4.src"]
        reply = build_reply(received)
        answer.reply_frame = reply
        back = self._send(out.port, reply, s)
        answer.reply = back
        ret, blocker, trace = classify(back, s.port, "return")
        if ret is None:
            answer.blocker, answer.trace = blocker, trace
            return answer
        got = (ret.fields()["ip4.src"], ret.fields()["ip4.dst"])
        if got != (str(d.ip), str(s.ip)):
            answer.blocker = Blocker("return", WRONG_REPLY,
                                     detail=f"reply arrived as {got[0]} -> {got[1]}, expected {d.ip} -> {s.ip}")
            return answer
        answer.reachable = True
        return answer


_CACHE: Dict[int, Tuple[object, Reachability]] = {}


def _is_lab(target) -> bool:
    from ovnsim.lab.lab import Lab

    return isinstance(target, Lab)


def _reachability(target):
    if isinstance(target, Reachability) or type(target).__name__ in ("LabReachability", "BothReachability"):
        return target
    if _is_lab(target):
        from ovnsim.reach.lab import LabReachability

        return LabReachability(target)
    if isinstance(target, Simulator):
        topo = getattr(target, "topology", None)
        if topo is None:
            raise ReachError("reach() on a Simulator needs its Neutron topology: use "
                             "Reachability(topology, simulator=sim), or build the Simulator from the Neutron topology")
        return Reachability(topo, simulator=target)
    key = id(target) if not isinstance(target, str) else hash(target)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] is target or (cached is not None and isinstance(target, str)
                                                       and cached[0] == target):
        return cached[1]
    r = Reachability(target)
    _CACHE.clear()  # one topology cached: tests ask many questions of the same one
    _CACHE[key] = (target, r)
    return r


def reach(topology_or_simulator, src: str, dst: str, proto: Union[str, Protocol] = "tcp/22") -> Answer:
    """Can ``src`` open a ``proto`` connection to ``dst``, and does the reply come back?

    ``topology_or_simulator``: a topology file path, a :class:`~ovnsim.neutron.model.Topology`
    (fresh conntrack/MAC state per question), a :class:`Reachability`, a
    :class:`~ovnsim.sim.Simulator` with a ``topology`` attribute (its state is
    kept and used: the question runs on it as it is), or a running
    :class:`~ovnsim.lab.Lab` (a real probe in the lab: :mod:`ovnsim.reach.lab`).
    """
    r = _reachability(topology_or_simulator)
    if isinstance(topology_or_simulator, Simulator):
        proto = proto if isinstance(proto, Protocol) else parse_proto(proto)
        s, d = r.endpoints(src, dst)
        return r.ask_endpoints(s, d, proto)
    return r.ask(src, dst, proto)
