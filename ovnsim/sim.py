"""The Python API: a simulator of one topology's OVN data path.

::

    from ovnsim.sim import Simulator
    sim = Simulator.from_file("topologies/reference.yaml")
    result = sim.inject("vm1", frame)          # bytes or a scapy packet
    for out in result.outputs:
        print(out.port, out.kind, out.frame)    # the frame as it leaves that port
    print(result.drops, sim.verdict(result))

State that outlives one frame, as in a real deployment, lives here: the
connection tracker (so replies to SNATed or DNATed connections are un-NATed)
and the MAC bindings routers learn from ARP.  ``reset()`` forgets both.
"""

from __future__ import annotations

import json
from typing import Dict, List, Union

from ovnsim.neutron.compiler import compile_topology
from ovnsim.errors import MicroflowError
from ovnsim.nb.model import LogicalTopology
from ovnsim.neutron.model import Topology
from ovnsim.datapath.packet import ParseError, build_frame, parse_frame
from ovnsim.datapath.pipeline import Conntrack, DropRecord, Output, Pipeline, Result
from ovnsim.northd.tables import build_tables

__all__ = ["Simulator", "Result", "Output", "DropRecord", "verdict"]

FrameLike = Union[bytes, bytearray, memoryview, "scapy.packet.Packet"]  # noqa: F821


def _frame_bytes(frame: FrameLike) -> bytes:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    return bytes(frame)  # a scapy packet serialises itself


def output_frame(output: Output) -> bytes:
    """The wire bytes of an output: the received frame rewritten in place (incremental checksums), or a generated frame."""
    return build_frame(output.packet)


# Outputs expose their bytes as ``output.frame``; built only when asked for.
Output.frame = property(output_frame)  # type: ignore[attr-defined]


class Simulator:
    """OVN's logical data path for one topology, with its conntrack and neighbour state."""

    def __init__(self, topology: Union[Topology, LogicalTopology]):
        logical = topology if isinstance(topology, LogicalTopology) else compile_topology(topology)
        self.logical = logical
        self.tables = build_tables(logical)
        self.conntrack = Conntrack()
        self.pipeline = Pipeline(self.tables, self.conntrack)

    @classmethod
    def from_file(cls, path: str) -> "Simulator":
        """Load, check and compile a topology file."""
        from ovnsim.neutron.loader import load_topology

        return cls(load_topology(path))

    @property
    def ports(self) -> List[str]:
        """Every logical switch port a frame can be injected on."""
        return list(self.tables.switch_of_port)

    def reset(self) -> None:
        """Forget connections and learned MAC bindings (static ones stay)."""
        self.conntrack.clear()
        self.tables.reset_neighbours()

    def inject(self, port: str, frame: FrameLike, *, trace: bool = False) -> Result:
        """Send ``frame`` into the logical network on switch port ``port``.

        A frame ovnsim cannot parse is not an error: the result has no
        output and one drop with disposition ``malformed`` (or
        ``unsupported`` for IPv6).  An unknown port is a caller error
        (:class:`~ovnsim.errors.MicroflowError`).
        """
        if port not in self.tables.switch_of_port:
            raise MicroflowError(f"unknown logical port {port!r}")
        raw = _frame_bytes(frame)
        try:
            pkt = parse_frame(raw)
        except ParseError as err:
            switch = self.tables.switch_of_port[port]
            return Result(drops=[DropRecord(switch, "ls_in_check_port_sec", err.reason, err.detail)])
        return self.pipeline.process(port, pkt, trace=trace)

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
    outputs = [{"port": o.port, "kind": o.kind, **o.packet.fields()} for o in result.outputs]
    outputs.sort(key=lambda o: (o["port"], o["kind"], json.dumps(o, sort_keys=True)))
    out: Dict[str, object] = {
        "outputs": outputs,
        "dropped": result.dropped,
        "drops": [d.as_dict() for d in result.drops],
    }
    if with_trace:
        out["trace"] = [e.as_dict() for e in result.trace]
    return out
