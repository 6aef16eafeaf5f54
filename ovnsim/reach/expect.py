"""Topology files that test themselves: the ``expect:`` block and ``ovnsim check``.

::

    expect:
      - {from: vm1, to: db1, proto: [icmp, tcp/22]}                 # reachable both ways
      - {from: vm1, to: outside, proto: tcp/443, via: 172.24.4.10}  # leaves SNATed
      - {from: outside, to: 172.24.4.100, proto: tcp/22}            # the floating IP answers
      - {from: db1, to: outside:203.0.113.9, reachable: false, blocked_at: lr_in_ip_routing}

Each entry is a :func:`ovnsim.reach.reach` question per protocol (default
``icmp``) and the answer it must get: ``reachable`` (default true), the
address the receiver sees the sender as (``via``), and for an isolated pair
the stage that must block it (``blocked_at``).  The loader checks the
block's shape (the schema); :func:`check_file` resolves the endpoints (a bad
one is a :class:`~ovnsim.errors.TopologyError` naming ``expect[i].from``)
and evaluates every entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import yaml

from ovnsim.errors import MicroflowError, TopologyError
from ovnsim.neutron.loader import load_topology
from ovnsim.reach.endpoints import Protocol, parse_proto
from ovnsim.reach.question import Answer, Reachability

__all__ = ["Expectation", "Outcome", "Report", "load_expectations", "check_file", "check"]


@dataclass(frozen=True)
class Expectation:
    """One entry of an ``expect:`` block."""

    src: str
    dst: str
    protos: Tuple[Protocol, ...]
    reachable: bool = True
    via: Optional[str] = None
    blocked_at: Optional[str] = None
    why: str = ""
    where: str = ""  #: ``expect[3]``: its place in the file

    def describe(self, proto: Protocol) -> str:
        """The expectation for one protocol, in words."""
        verdict = "reachable" if self.reachable else "isolated"
        extra = f" via {self.via}" if self.via else ""
        extra += f" blocked at {self.blocked_at}" if self.blocked_at else ""
        return f"{self.src} -> {self.dst} {proto} {verdict}{extra}"


@dataclass
class Outcome:
    """An expectation for one protocol, and what the question answered."""

    expectation: Expectation
    proto: Protocol
    answer: Answer
    problem: str = ""  #: empty when the expectation holds

    @property
    def ok(self) -> bool:
        """Whether the expectation holds."""
        return not self.problem


@dataclass
class Report:
    """Every outcome of a file's ``expect:`` block."""

    source: str
    outcomes: List[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every expectation holds."""
        return all(o.ok for o in self.outcomes)

    @property
    def failures(self) -> List[Outcome]:
        """The outcomes that do not hold."""
        return [o for o in self.outcomes if not o.ok]

    def text(self) -> str:
        """What ``ovnsim check`` prints: a line per outcome, the evidence of each failure, a summary."""
        lines = []
        for o in self.outcomes:
            exp = o.expectation
            if o.ok:
                lines.append(f"ok    {exp.where}: {exp.describe(o.proto)}")
                continue
            lines.append(f"FAIL  {exp.where}: {exp.describe(o.proto)}: {o.problem}" + (f" ({exp.why})" if exp.why else ""))
            lines += ["      " + line for line in o.answer.explain().splitlines()]
        n_fail = len(self.failures)
        lines.append(f"{self.source}: {len(self.outcomes) - n_fail} of {len(self.outcomes)} expectations hold"
                     + (f", {n_fail} fail" if n_fail else ""))
        return "\n".join(lines) + "\n"


def load_expectations(path: str) -> Tuple[object, List[Expectation]]:
    """The topology and its ``expect:`` entries (shapes checked by the loader's schema)."""
    from ovnsim.neutron.loader import _StrictLoader

    topo = load_topology(path)
    doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_StrictLoader)
    out = []
    for i, entry in enumerate(doc.get("expect") or []):
        where = f"expect[{i}]"
        protos = entry.get("proto", "icmp")
        protos = [protos] if isinstance(protos, str) else protos
        try:
            parsed = tuple(parse_proto(p) for p in protos)
        except MicroflowError as err:
            raise TopologyError(str(err), f"{where}.proto", path) from None
        if entry.get("reachable", True) and entry.get("blocked_at"):
            raise TopologyError("blocked_at needs reachable: false", f"{where}.blocked_at", path)
        out.append(Expectation(entry["from"], entry["to"], parsed, entry.get("reachable", True), entry.get("via"),
                               entry.get("blocked_at"), entry.get("why", ""), where))
    return topo, out


def judge(exp: Expectation, answer: Answer) -> str:
    """What is wrong with ``answer`` for ``exp`` (empty: it holds)."""
    if exp.reachable and not answer.reachable:
        return "not reachable: " + (answer.blocker.describe() if answer.blocker else "?")
    if not exp.reachable and answer.reachable:
        return f"reachable (seen as {answer.seen_as}), expected isolated"
    if exp.via and answer.seen_as != exp.via:
        return f"seen as {answer.seen_as}, expected {exp.via}"
    # A lab cannot say which stage stopped a packet: there, blocked_at is
    # only "not reachable".
    if exp.blocked_at and answer.backend != "lab" and answer.stage != exp.blocked_at:
        return f"blocked at {answer.stage or answer.disposition}, expected at {exp.blocked_at}"
    return ""


def check(reachability: Reachability, expectations: List[Expectation], source: str = "<topology>") -> Report:
    """Evaluate ``expectations``; an endpoint that does not resolve is a TopologyError naming the entry."""
    report = Report(source)
    for exp in expectations:
        for proto in exp.protos:
            try:
                answer = reachability.ask(exp.src, exp.dst, proto)
            except MicroflowError as err:
                raise TopologyError(str(err), exp.where, source) from None
            report.outcomes.append(Outcome(exp, proto, answer, judge(exp, answer)))
    return report


def check_file(path: str, lab=None) -> Report:
    """``ovnsim check``: load a topology file and evaluate its ``expect:`` block.

    ``lab``: a running :class:`~ovnsim.lab.Lab` of that topology answers
    instead of the emulator (real probes; ``blocked_at`` then only means
    "not reachable").
    """
    topo, expectations = load_expectations(path)
    if not expectations:
        raise TopologyError("the file has no expect: block to check", "expect", path)
    if lab is not None:
        from ovnsim.reach.lab import LabReachability

        return check(LabReachability(lab, topology=topo), expectations, path)
    return check(Reachability(topo), expectations, path)
