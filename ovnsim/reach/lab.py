"""Reachability questions answered by a running lab: real ping, TCP and UDP between namespaces.

::

    from ovnsim.lab import Lab
    from ovnsim.reach import reach

    with Lab.up("topologies/reference.yaml") as lab:
        answer = reach(lab, "vm1", "db1", "tcp/22")      # a real TCP connect from vm1's namespace
        assert answer, answer.explain()

The endpoints are resolved as the emulator resolves them (the topology
file the lab was built from: VM ports, fixed and floating IPs, router
addresses, ``outside``), then :func:`ovnsim.lab.probe.probe_from` sends the
request from the source's namespace and captures it where it arrives: the
answer is reachable when the request reached the destination's port and the
reply came back (the ping succeeded, the TCP connection was accepted, the
UDP datagram was echoed) within the probe's bounded wait.  ``seen_as`` is
the source address the request arrived with.  A lab knows no stages or
rules: a blocked answer says which direction failed and where the request
went, not which rule stopped it (ask the emulator, or use ``backend="both"``).
"""

from __future__ import annotations

import os
from typing import Optional, Union

from ovnsim.reach.endpoints import FIP, OUTSIDE_KIND, ROUTER, Directory, Endpoint, Protocol, ReachError, \
    parse_proto
from ovnsim.reach.question import NOT_DELIVERED, Answer, Blocker, resolve_ends

__all__ = ["LabReachability", "NO_REPLY"]

#: The disposition of a lab answer whose request arrived but whose reply did not come back.
NO_REPLY = "no-reply"


class LabReachability:
    """Questions about one running lab (the :class:`~ovnsim.reach.Reachability` API, answered by the kernel).

    ``topology``: the Neutron topology (or its file) the lab realises; by
    default the file the lab was built from (``lab status`` shows it).
    ``timeout``: seconds each probe waits for its answer.
    """

    def __init__(self, lab, topology=None, timeout: Optional[float] = None):
        from ovnsim.lab.probe import PROBE_TIMEOUT
        from ovnsim.neutron.compiler import compile_topology
        from ovnsim.neutron.loader import load_topology

        self.lab = lab
        self.timeout = PROBE_TIMEOUT if timeout is None else timeout
        if topology is None:
            source = str(lab.ledger.data.get("topology") or lab.plan.source or "")
            if not source or source.startswith("<") or not os.path.exists(source):
                raise ReachError(f"lab {lab.name!r}: reach needs the topology file it was built from "
                                 f"({source or 'unknown'}): give topology=")
            topology = source
        if isinstance(topology, (str, os.PathLike)):
            topology = load_topology(os.fspath(topology))
        self.topology = topology
        self.logical = compile_topology(topology)
        self.directory = Directory(topology, self.logical)

    def endpoints(self, src: str, dst: str):
        """Resolve both ends, as the emulator does."""
        return resolve_ends(self.directory, src, dst)

    def ask(self, src: str, dst: str, proto: Union[str, Protocol] = "tcp/22", *, fresh: bool = True) -> Answer:
        """Answer ``src -> dst proto`` with a real probe in the lab (``fresh`` is accepted, the lab keeps its state)."""
        proto = proto if isinstance(proto, Protocol) else parse_proto(proto)
        s, d = self.endpoints(src, dst)
        return self.ask_endpoints(s, d, proto)

    def ask_fresh(self, s: Endpoint, d: Endpoint, proto: Protocol) -> Answer:
        """:meth:`ask_endpoints` (the matrix API's name)."""
        if d.kind == OUTSIDE_KIND:
            d = self.directory.resolve(d.label, "destination", near=s)
        return self.ask_endpoints(s, d, proto)

    def _lab_port(self, ep: Endpoint) -> str:
        if ep.port not in self.lab.plan.ports:
            raise ReachError(f"{ep.label}: port {ep.port} has no endpoint in lab {self.lab.name!r}")
        return ep.port

    def _upstream_addresses(self, ep: Endpoint):
        """The addresses the upstream namespace behind ``ep``'s localnet port owns: the outside host, its gateways."""
        from ovnsim.lab.plan import OUTSIDE_ADDRESS

        link = self.lab.plan.link_of_port(self._lab_port(ep))
        return [OUTSIDE_ADDRESS] + [a.split("/")[0] for a in link.addresses]

    def ask_endpoints(self, s: Endpoint, d: Endpoint, proto: Protocol) -> Answer:
        """Probe ``s -> d`` in the lab and say what happened."""
        from ovnsim.lab.probe import probe_from

        source_address = None
        for ep, role in ((s, "source"), (d, "destination")):
            if ep.kind == OUTSIDE_KIND:
                held = self._upstream_addresses(ep)
                if str(ep.ip) not in held:
                    raise ReachError(f"{role} {ep.label}: the lab's upstream holds only {', '.join(held)}")
        if s.kind == OUTSIDE_KIND:
            source_address = str(s.ip)
        src_port = self._lab_port(s)
        want = None if d.kind == ROUTER else self._lab_port(
            self.directory.ports[d.target] if d.kind == FIP else d)
        [result] = probe_from(self.lab, src_port, [str(d.ip)], proto.name, proto.port or 7, timeout=self.timeout,
                              source_address=source_address)
        answer = Answer(s, d, proto, False, backend="lab")
        if want is None:  # a router address: the router answers itself
            answer.reachable = result.answered
            answer.seen_as = str(s.ip) if result.answered else None
            if not result.answered:
                answer.blocker = Blocker("forward", NO_REPLY, detail=f"the router did not answer within "
                                                                    f"{self.timeout:g} s")
            return answer
        if want not in result.delivered:
            where = ", ".join(sorted(result.delivered)) or "no port"
            answer.blocker = Blocker("forward", NOT_DELIVERED,
                                     detail=f"the request reached {where} in the lab, not {want}")
            return answer
        answer.delivered_port = want
        answer.seen_as = result.seen_as.get(want)
        if not result.answered:
            answer.blocker = Blocker("return", NO_REPLY,
                                     detail=f"{want} received the request; no reply came back to {s.label} "
                                            f"within {self.timeout:g} s")
            return answer
        answer.reachable = True
        return answer


class Disagreement(ReachError):
    """The emulator and a lab answered one question differently (``answers``: emulator's, lab's)."""

    def __init__(self, emulator: Answer, lab: Answer):
        self.answers = (emulator, lab)
        super().__init__(f"{emulator.question}: the emulator and the lab disagree\n"
                         f"emulator: {emulator.explain()}\nlab:      {lab.explain()}")


def agree(emulator: Answer, lab: Answer) -> bool:
    """Whether two answers to one question say the same: reachable, and then as whom and where delivered."""
    if emulator.reachable != lab.reachable:
        return False
    return not emulator.reachable or (emulator.seen_as, emulator.delivered_port) == (lab.seen_as,
                                                                                     lab.delivered_port)


class BothReachability:
    """Every question asked of the emulator and of a lab of the same topology; they must agree.

    :meth:`ask` returns the emulator's answer (it has the trace) when the two
    agree (:func:`agree`) and raises :class:`Disagreement`, with both
    explanations, when they do not.
    """

    def __init__(self, emulator, lab: LabReachability):
        self.emulator = emulator
        self.lab = lab
        self.topology = emulator.topology
        self.directory = emulator.directory

    def endpoints(self, src: str, dst: str):
        """Resolve both ends, as the emulator does."""
        return self.emulator.endpoints(src, dst)

    def ask(self, src: str, dst: str, proto: Union[str, Protocol] = "tcp/22", *, fresh: bool = True) -> Answer:
        """The emulator's answer, once the lab has given the same one."""
        emulator = self.emulator.ask(src, dst, proto, fresh=fresh)
        lab = self.lab.ask(src, dst, proto)
        if not agree(emulator, lab):
            raise Disagreement(emulator, lab)
        return emulator
