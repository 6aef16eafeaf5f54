"""The engine's batch contract: what runs batches of frames through a topology.

An engine takes a batch of raw frames (one buffer, offsets and lengths, an
ingress port per frame) and fills a :class:`BatchResult` with flat arrays:
every output (frame index, port, kind, the rewritten bytes), every drop
(frame index, disposition, stage, datapath) and, when asked, the trace
records.  No Python object per frame crosses the contract: the C engine
(``ovnsim.datapath._fastpath.FastEngine``) fills it in a ``nogil`` loop.

There is one engine.  :func:`fast_engine` / :func:`make_engine` give it, and
raise :class:`~ovnsim.errors.EngineError` when the extension is not built.
The engine keeps conntrack and learned MAC bindings across batches.
(The Python pipeline the engine was written against lives on, frozen, as a
test oracle in ``tests/oracle``.)
"""

from __future__ import annotations

import os
import struct
from array import array
from typing import Dict, List, Optional

from ovnsim.errors import EngineError
from ovnsim.nb.model import LogicalTopology
from ovnsim.northd.rules import OUTPUT_KINDS, STAGE_CODE, STAGE_LIST
from ovnsim.northd.tables import Tables

__all__ = ["BatchResult", "IngressTable", "KINDS", "KIND_CODE", "STAGE_LIST", "STAGE_CODE", "AUTO_INGRESS",
           "fast_engine", "make_engine"]

#: Output kinds by code (``BatchResult.out_kind``), from the rule catalogue.
KINDS = tuple(name for name, _ in OUTPUT_KINDS)
KIND_CODE = {k: i for i, k in enumerate(KINDS)}
KIND_PACKET, KIND_ARP_REPLY, KIND_ECHO_REPLY, KIND_ARP, KIND_ICMP4, KIND_TCP_RESET, KIND_DHCP_REPLY = KINDS

#: One trace record as the engine writes it (``TraceRec`` in ``_fastpath.pxd``):
#: frame (int32), rule (int16), depth (int16), datapath (int32), a (uint32), b (uint64).
TRACE_RECORD = struct.Struct("=ihhiIQ")

#: ``inports`` value asking the engine to choose the ingress port itself.
AUTO_INGRESS = -1

ENGINES = ("fast",)


class BatchResult:
    """What a batch produced, as flat arrays (``array.array``), in frame order.

    Outputs: ``out_frame[i]`` (index of the input frame in the batch),
    ``out_port[i]`` (index into the engine's ``port_names``), ``out_kind[i]``
    (index into :data:`KINDS`), and the frame bytes
    ``out_data[out_start[i]:out_start[i] + out_len[i]]``; ``out_wire[i]`` its
    length on the wire (more than ``out_len[i]`` when a capture's snaplen cut
    the frame it is rewritten from; empty from an engine that does not say).
    Drops: ``drop_frame[i]``, ``drop_reason[i]`` (a :class:`~ovnsim.northd.stages.Drop`
    value), ``drop_stage[i]`` (index into :data:`STAGE_LIST`),
    ``drop_datapath[i]`` (index into the engine's ``datapath_names``),
    ``drop_rule[i]``, ``drop_a[i]``, ``drop_b[i]`` (the dropping rule's code and
    values, as its trace record has them: what the drop's detail is rendered
    from, also without a trace).
    ``ingress[f]`` is the port frame ``f`` entered on (-1: none could be chosen).
    Trace (a batch run with ``trace=True``): ``trace``, a bytes-like object of
    :data:`TRACE_RECORD` records, one per step: frame index, rule (a code of
    :mod:`ovnsim.northd.rules`), depth (datapaths crossed before this one),
    datapath index and the rule's two values a (32 bits) and b (64 bits);
    :meth:`trace_records` unpacks them.
    """

    __slots__ = ("frames", "ingress", "out_frame", "out_port", "out_kind", "out_start", "out_len", "out_wire",
                 "out_data",
                 "drop_frame", "drop_reason", "drop_stage", "drop_datapath", "drop_rule", "drop_a", "drop_b",
                 "trace")

    def __init__(self) -> None:
        self.frames = 0
        self.ingress = array("i")
        self.out_frame = array("i")
        self.out_port = array("i")
        self.out_kind = array("b")
        self.out_start = array("q")
        self.out_len = array("i")
        self.out_wire = array("i")
        self.out_data = bytearray()
        self.drop_frame = array("i")
        self.drop_reason = array("b")
        self.drop_stage = array("h")
        self.drop_datapath = array("i")
        self.drop_rule = array("h")
        self.drop_a = array("I")
        self.drop_b = array("Q")
        self.trace = memoryview(b"")

    @property
    def n_outputs(self) -> int:
        return len(self.out_frame)

    @property
    def n_drops(self) -> int:
        return len(self.drop_frame)

    @property
    def n_trace(self) -> int:
        return len(self.trace) // TRACE_RECORD.size

    def trace_records(self, start: int = 0, stop: Optional[int] = None):
        """Records ``start:stop`` as (frame, rule, depth, datapath, a, b) tuples."""
        size = TRACE_RECORD.size
        stop = self.n_trace if stop is None else stop
        return TRACE_RECORD.iter_unpack(self.trace[start * size:stop * size])

    def output_bytes(self, i: int) -> bytes:
        start = self.out_start[i]
        return bytes(self.out_data[start:start + self.out_len[i]])


class IngressTable:
    """How ``--auto`` picks a frame's ingress port (shared by every engine).

    The port that owns the frame's source MAC (a VM port's address); else
    the VM port that owns its source IPv4 address (ARP: the sender address);
    else the localnet port of the provider network whose subnet holds the
    source address; else the first localnet port; else none (-1).
    """

    def __init__(self, logical: LogicalTopology, port_index: Dict[str, int]):
        from ovnsim.northd.tables import Prefix, parse_addresses

        self.by_mac: Dict[int, int] = {}
        self.by_ip: Dict[int, int] = {}
        self.localnets: List[tuple] = []  # (prefix or None, port index)
        for ls in logical.switches:
            localnet = next((p for p in ls.ports if p.type == "localnet"), None)
            if localnet is not None:
                prefixes = []
                for router in logical.routers:
                    for lrp in router.ports:
                        peer = next((p for p in ls.ports if p.options.get("router-port") == lrp.name), None)
                        if peer is not None:
                            prefixes += [Prefix.parse(n) for n in lrp.networks if ":" not in n]
                for prefix in prefixes or [None]:
                    self.localnets.append((prefix, port_index[localnet.name]))
            for port in ls.ports:
                if port.type:
                    continue
                for entry in port.addresses:
                    mac, ips = parse_addresses(entry)
                    if mac is None:
                        continue
                    self.by_mac.setdefault(mac, port_index[port.name])
                    for ip in ips:
                        self.by_ip.setdefault(ip, port_index[port.name])

    def choose(self, eth_src: int, ip_src: Optional[int]) -> int:
        port = self.by_mac.get(eth_src)
        if port is not None:
            return port
        if ip_src is not None:
            port = self.by_ip.get(ip_src)
            if port is not None:
                return port
            for prefix, index in self.localnets:
                if prefix is not None and prefix.contains(ip_src):
                    return index
        return self.localnets[0][1] if self.localnets else -1


def fast_engine(logical: LogicalTopology, tables: Optional[Tables] = None):
    """The C engine (``ovnsim.datapath._fastpath.FastEngine``) for ``logical``.

    Raises :class:`~ovnsim.errors.EngineError` when the extension is not
    built (an installation without a C compiler).
    """
    try:
        from ovnsim.datapath._fastpath import FastEngine
    except ImportError as err:
        raise EngineError(f"the C engine (ovnsim.datapath._fastpath) is not built ({err}); install ovnsim with "
                          "a C compiler (`pip install .`) or build it in place "
                          "(`python setup.py build_ext --inplace`)") from None
    return FastEngine(logical, tables)


def make_engine(logical: LogicalTopology, name: Optional[str] = None, *, tables: Optional[Tables] = None):
    """The engine called ``name`` (default ``$OVNSIM_ENGINE``, else ``"fast"``, the only one)."""
    name = name or os.environ.get("OVNSIM_ENGINE") or "fast"
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}: ovnsim has one engine, {', '.join(ENGINES)} "
                          "(the Python pipeline is a test oracle now)")
    return fast_engine(logical, tables)
