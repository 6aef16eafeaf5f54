"""The frozen Python reference engine behind the batch contract (a test oracle, not shipped).

No new behaviour goes here: the C engine is the one users run; this one
stays while the differential tests (tests/test_engines.py) earn their keep.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from oracle.packet import ParseError, build_frame, parse_frame
from oracle.pipeline import Conntrack, Pipeline
from ovnsim.datapath.engine import AUTO_INGRESS, KIND_CODE, STAGE_CODE, BatchResult, IngressTable
from ovnsim.nb.model import LogicalTopology
from ovnsim.northd.stages import Drop
from ovnsim.northd.tables import Tables, build_tables


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


