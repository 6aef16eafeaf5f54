"""Engines: what runs batches of frames through a topology, and the contract they share.

An engine takes a batch of raw frames (one buffer, offsets and lengths, an
ingress port per frame) and fills a :class:`BatchResult` with flat arrays:
every output (frame index, port, kind, the rewritten bytes) and every drop
(frame index, disposition, stage, datapath).  No Python object per frame
crosses the contract, so a C engine can fill it in a ``nogil`` loop.

Two engines keep one behaviour:

* ``python`` -- :class:`PythonEngine`, the reference pipeline
  (``ovnsim.datapath.pipeline``) behind the batch contract;
* ``fast`` -- the Cython engine in ``ovnsim.datapath._fastpath`` (when built).

:func:`make_engine` picks one; ``OVNSIM_ENGINE=python|fast`` forces it.
Both keep conntrack and learned MAC bindings across batches.
"""

from __future__ import annotations

import os
from array import array
from typing import Dict, List, Optional, Sequence

from ovnsim.errors import EngineError
from ovnsim.nb.model import LogicalTopology
from ovnsim.datapath.packet import (
    KIND_ARP,
    KIND_ARP_REPLY,
    KIND_ECHO_REPLY,
    KIND_ICMP4,
    KIND_PACKET,
    KIND_TCP_RESET,
    ParseError,
    build_frame,
    parse_frame,
)
from ovnsim.datapath.pipeline import Conntrack, Pipeline
from ovnsim.northd.stages import LR_IN, LR_OUT, LS_IN, LS_OUT, Drop, Stage
from ovnsim.northd.tables import Tables, build_tables

#: Output kinds by code (``BatchResult.out_kind``).
KINDS = (KIND_PACKET, KIND_ARP_REPLY, KIND_ECHO_REPLY, KIND_ARP, KIND_ICMP4, KIND_TCP_RESET)
KIND_CODE = {k: i for i, k in enumerate(KINDS)}

#: Stages by code (``BatchResult.drop_stage``): OVN's stages in pipeline order.
STAGE_LIST: Sequence[Stage] = LS_IN + LS_OUT + LR_IN + LR_OUT
STAGE_CODE = {s.name: i for i, s in enumerate(STAGE_LIST)}

#: ``inports`` value asking the engine to choose the ingress port itself.
AUTO_INGRESS = -1

ENGINES = ("python", "fast")


class BatchResult:
    """What a batch produced, as flat arrays (``array.array``), in frame order.

    Outputs: ``out_frame[i]`` (index of the input frame in the batch),
    ``out_port[i]`` (index into the engine's ``port_names``), ``out_kind[i]``
    (index into :data:`KINDS`), and the frame bytes
    ``out_data[out_start[i]:out_start[i] + out_len[i]]``.
    Drops: ``drop_frame[i]``, ``drop_reason[i]`` (a :class:`~ovnsim.northd.stages.Drop`
    value), ``drop_stage[i]`` (index into :data:`STAGE_LIST`),
    ``drop_datapath[i]`` (index into the engine's ``datapath_names``).
    ``ingress[f]`` is the port frame ``f`` entered on (-1: none could be chosen).
    Trace (a batch run with ``trace=True``): one record per step,
    ``trace_frame[i]``, ``trace_rule[i]`` (a code of :mod:`ovnsim.northd.rules`),
    ``trace_dp[i]``, ``trace_depth[i]`` (datapaths crossed before this one)
    and the rule's two values ``trace_a[i]``, ``trace_b[i]``.
    """

    __slots__ = ("frames", "ingress", "out_frame", "out_port", "out_kind", "out_start", "out_len", "out_data",
                 "drop_frame", "drop_reason", "drop_stage", "drop_datapath",
                 "trace_frame", "trace_rule", "trace_dp", "trace_depth", "trace_a", "trace_b")

    def __init__(self) -> None:
        self.frames = 0
        self.ingress = array("i")
        self.out_frame = array("i")
        self.out_port = array("i")
        self.out_kind = array("b")
        self.out_start = array("q")
        self.out_len = array("i")
        self.out_data = bytearray()
        self.drop_frame = array("i")
        self.drop_reason = array("b")
        self.drop_stage = array("h")
        self.drop_datapath = array("i")
        self.trace_frame = array("i")
        self.trace_rule = array("h")
        self.trace_dp = array("i")
        self.trace_depth = array("h")
        self.trace_a = array("Q")
        self.trace_b = array("Q")

    @property
    def n_outputs(self) -> int:
        return len(self.out_frame)

    @property
    def n_drops(self) -> int:
        return len(self.drop_frame)

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
        from ovnsim.northd.tables import Prefix, ip_to_int, mac_to_int

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
                    words = entry.split()
                    if not words or words[0] in ("unknown", "router", "dynamic"):
                        continue
                    self.by_mac.setdefault(mac_to_int(words[0]), port_index[port.name])
                    for word in words[1:]:
                        if ":" not in word:
                            self.by_ip.setdefault(ip_to_int(word), port_index[port.name])

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


class PythonEngine:
    """The reference pipeline behind the batch contract (one frame at a time)."""

    name = "python"

    def __init__(self, logical: LogicalTopology, tables: Optional[Tables] = None):
        self.logical = logical
        self.tables = tables if tables is not None else build_tables(logical)
        #: every logical switch port, the index space of ``out_port`` / ``inports``
        self.port_names: List[str] = list(self.tables.switch_of_port)
        self.port_index = {name: i for i, name in enumerate(self.port_names)}
        self.datapath_names: List[str] = list(self.tables.switches) + list(self.tables.routers)
        self.datapath_index = {name: i for i, name in enumerate(self.datapath_names)}
        self.ingress = IngressTable(logical, self.port_index)
        self.conntrack = Conntrack()
        self.pipeline = Pipeline(self.tables, self.conntrack)

    def process_batch(self, data, offsets: Sequence[int], lengths: Sequence[int],
                      inports: Sequence[int], result: Optional[BatchResult] = None) -> BatchResult:
        """Run ``len(offsets)`` frames (``data[offsets[i]:offsets[i] + lengths[i]]``) through the pipeline."""
        result = result if result is not None else BatchResult()
        view = memoryview(data)
        for i in range(len(offsets)):
            raw = bytes(view[offsets[i]:offsets[i] + lengths[i]])
            self._one(i, raw, inports[i], result)
        result.frames += len(offsets)
        return result

    def _one(self, i: int, raw: bytes, inport: int, result: BatchResult) -> None:
        try:
            pkt = parse_frame(raw)
        except ParseError as err:
            port = inport if inport >= 0 else self._auto_from_bytes(raw)
            result.ingress.append(port)
            switch = self.tables.switch_of_port[self.port_names[port]] if port >= 0 else self.datapath_names[0]
            self._drop(result, i, err.reason, "ls_in_check_port_sec", switch)
            return
        if inport == AUTO_INGRESS:
            ip_src = pkt.arp_spa if pkt.is_arp else (pkt.ip_src if pkt.is_ip4 else None)
            inport = self.ingress.choose(pkt.eth_src, ip_src)
        result.ingress.append(inport)
        if inport < 0:
            self._drop(result, i, Drop.NO_INGRESS, "ls_in_check_port_sec", self.datapath_names[0])
            return
        run = self.pipeline.process(self.port_names[inport], pkt)
        for out in run.outputs:
            frame = build_frame(out.packet)
            result.out_frame.append(i)
            result.out_port.append(self.port_index[out.port])
            result.out_kind.append(KIND_CODE[out.kind])
            result.out_start.append(len(result.out_data))
            result.out_len.append(len(frame))
            result.out_data += frame
        for drop in run.drops:
            self._drop(result, i, drop.reason, drop.stage, drop.datapath)

    def _auto_from_bytes(self, raw: bytes) -> int:
        eth_src = int.from_bytes(raw[6:12], "big") if len(raw) >= 12 else 0
        return self.ingress.choose(eth_src, None)

    def _drop(self, result: BatchResult, i: int, reason: Drop, stage: str, datapath: str) -> None:
        result.drop_frame.append(i)
        result.drop_reason.append(int(reason))
        result.drop_stage.append(STAGE_CODE[stage])
        result.drop_datapath.append(self.datapath_index[datapath])

    def reset(self) -> None:
        """Forget connections and learned MAC bindings."""
        self.conntrack.clear()
        self.tables.reset_neighbours()


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
    """The engine called ``name`` (default: ``$OVNSIM_ENGINE``, else the fast one when built)."""
    name = name or os.environ.get("OVNSIM_ENGINE") or "fast"
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "fast":
        try:
            from ovnsim.datapath._fastpath import FastEngine
        except ImportError:
            if os.environ.get("OVNSIM_ENGINE") == "fast":
                raise
            return PythonEngine(logical, tables)
        return FastEngine(logical, tables)
    return PythonEngine(logical, tables)
