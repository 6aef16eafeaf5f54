"""Replay a capture through a topology and write, per logical port, what leaves it.

::

    from ovnsim.capture.replay import replay
    summary = replay("topologies/reference.yaml", "pcaps/reference-mixed.pcap", "out", auto=True)
    print(summary.format_text())

Every frame of the capture enters the logical network on one port (``port``)
or, with ``auto=True``, on the port the engine picks from the frame's source
addresses (:class:`ovnsim.datapath.engine.IngressTable`).  One engine runs the whole
capture, so connection tracking and learned MAC bindings persist from frame
to frame: the reply to an SNATed connection comes back un-SNATed to its VM.

Written into ``out_dir``: ``<port>-tx.pcap`` for every logical port that
emitted frames (classic pcap, nanosecond timestamps; each frame carries the
timestamp of the input frame it came from) and ``drops.pcapng`` (every
frame of which no copy left, as captured, with one packet comment per drop:
``"<disposition> at <datapath> <stage>"``, then ``"frame <n>, ingress
<port>"``).

The per-frame work -- reading, the engine, accounting, writing -- runs in
C over whole batches (``ovnsim.capture._pcapio`` and the engine); Python runs once
per batch.  See docs/replay.md for the summary's fields and the choices made
about damaged captures.
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import re
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, TextIO, Union

from ovnsim.datapath.engine import AUTO_INGRESS, KINDS, STAGE_LIST, BatchResult, make_engine
from ovnsim.errors import OvnsimError
from ovnsim.nb.model import LogicalTopology
from ovnsim.capture.pcap import DEFAULT_BATCH, DEFAULT_CHUNK, CaptureReader, PcapNgWriter, PcapWriter, _need_pcapio
from ovnsim.northd.stages import Drop

__all__ = ["replay", "ReplaySummary", "DROPS_FILE", "port_file_name", "GENERATED_KINDS"]

#: The file holding the dropped frames.
DROPS_FILE = "drops.pcapng"
#: Output kinds that are frames the network generated (everything but ``packet``).
GENERATED_KINDS = tuple(k for k in KINDS if k != "packet")
#: Frames per batch for the reference (Python) engine: small enough for a lively progress bar.
PYTHON_ENGINE_BATCH = 4096
#: The most per-port files kept open at once (the rest are closed and reopened to append):
#: half the process's file descriptor limit, within [16, 4096].
try:
    import resource as _resource

    MAX_OPEN_FILES = max(16, min(4096, _resource.getrlimit(_resource.RLIMIT_NOFILE)[0] // 2))
except (ImportError, ValueError, OSError):  # pragma: no cover - not Unix
    MAX_OPEN_FILES = 64
#: Write buffer of each per-port file: records arrive grouped per batch, so only small runs are buffered.
PORT_FILE_BUFFER = 16384
#: Output bytes one batch should produce at most; a batch that fans out more shrinks the next ones.
OUT_BYTES_PER_BATCH = 32 * 1024 * 1024
#: The stage a drop of the capture itself (its cut-short final record) is reported at.
CAPTURE_STAGE = "capture"
#: The disposition label of a dropped frame for which the engine recorded no drop.
NO_DISPOSITION = "no-disposition"

_N_REASONS = max(int(d) for d in Drop) + 1


def port_file_name(port: str) -> str:
    """The output file of a port: ``<port>-tx.pcap``, unsafe characters as ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", port)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    return f"{safe}-tx.pcap"


@dataclass
class ReplaySummary:
    """What a replay did; ``as_dict()`` is what ``--json`` prints, ``format_text()`` the table.

    ``frames_in == delivered + exited + dropped`` always: *delivered* frames
    had some copy leave on a VM (non-localnet) port, *exited* frames left
    only through localnet (provider network) ports, *dropped* frames had no
    copy leave.  ``drops`` counts the dropped frames by the disposition and
    stage of their first drop (so its frames add up to ``dropped``);
    ``copy_drops`` counts drops of copies of frames that still left
    somewhere (a flooded copy refused by egress port security, ...).
    """

    topology: str
    capture: str
    format: str
    engine: str
    ingress: str  #: "auto" or the port every frame entered on
    out_dir: str
    frames_in: int = 0
    delivered: int = 0
    exited: int = 0
    dropped: int = 0
    outputs: Dict[str, int] = field(default_factory=dict)  #: frames written per port
    files: Dict[str, str] = field(default_factory=dict)  #: port -> file name in out_dir (and "drops")
    output_kinds: Dict[str, int] = field(default_factory=dict)  #: every output, by kind
    generated: Dict[str, int] = field(default_factory=dict)  #: generated frames and replies, by kind
    drops: Dict[str, Dict[str, object]] = field(default_factory=dict)
    copy_drops: Dict[str, Dict[str, object]] = field(default_factory=dict)
    snaplen_truncated: int = 0
    truncated_final_record: Optional[Dict[str, object]] = None
    warnings: List[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    frames_per_s: float = 0.0
    trace: Optional[Dict[str, object]] = None
    traces: List[Dict[str, object]] = field(default_factory=list)  #: frames --trace-match selected

    def check(self) -> None:
        """Raise AssertionError unless the counts add up (they always should)."""
        if self.frames_in != self.delivered + self.exited + self.dropped:
            raise AssertionError(f"frames in {self.frames_in} != delivered {self.delivered} + exited "
                                 f"{self.exited} + dropped {self.dropped}")
        dropped = sum(int(d["frames"]) for d in self.drops.values())
        if dropped != self.dropped:
            raise AssertionError(f"drops by reason add up to {dropped}, not {self.dropped}")
        if sum(self.output_kinds.values()) != sum(self.outputs.values()):
            raise AssertionError("outputs by kind and by port disagree")

    def as_dict(self) -> Dict[str, object]:
        """The summary as one JSON-able object."""
        out: Dict[str, object] = {
            "topology": self.topology, "capture": self.capture, "format": self.format, "engine": self.engine,
            "ingress": self.ingress, "out_dir": self.out_dir,
            "frames_in": self.frames_in, "delivered": self.delivered, "exited": self.exited,
            "dropped": self.dropped,
            "outputs": self.outputs, "files": self.files, "output_kinds": self.output_kinds,
            "generated": self.generated, "drops": self.drops, "copy_drops": self.copy_drops,
            "anomalies": {"snaplen_truncated": self.snaplen_truncated,
                          "truncated_final_record": self.truncated_final_record},
            "warnings": self.warnings,
            "elapsed_s": round(self.elapsed_s, 6), "frames_per_s": round(self.frames_per_s, 1),
        }
        if self.trace is not None:
            out["trace"] = self.trace
        if self.traces:
            out["traces"] = self.traces
        return out

    def format_text(self) -> str:
        """The summary as printed by ``ovnsim replay``."""
        width = max([12] + [len(p) + 1 for p in self.outputs])
        lines = [
            f"replayed {self.capture} ({self.format}) through {self.topology}: engine {self.engine}, "
            f"ingress {self.ingress}",
            f"  {'frames in':<{width}}{self.frames_in:>12}",
            f"  {'delivered':<{width}}{self.delivered:>12}   a copy reached a VM port",
            f"  {'exited':<{width}}{self.exited:>12}   left only through a localnet port",
            f"  {'dropped':<{width}}{self.dropped:>12}   no copy left (frames in {DROPS_FILE})",
            "output frames per port:" if self.outputs else "output frames per port: none",
        ]
        for port, count in self.outputs.items():
            lines.append(f"  {port:<{width}}{count:>12}   {self.files[port]}")
        lines.append("generated: " + ", ".join(f"{k} {self.generated.get(k, 0)}" for k in GENERATED_KINDS))
        for title, table, unit in (("drops (frames with no copy left, by first disposition)", self.drops, "frames"),
                                   ("dropped copies of frames that left elsewhere", self.copy_drops, "copies")):
            if not table:
                continue
            lines.append(f"{title}:")
            for reason, entry in sorted(table.items(), key=lambda kv: (-int(kv[1][unit]), kv[0])):
                stages = ", ".join(f"{s} {n}" for s, n in entry["stages"].items())
                lines.append(f"  {reason:<24} {entry[unit]:>10}   at {stages}")
        final = self.truncated_final_record
        lines.append(f"capture: {self.snaplen_truncated} frames truncated by snaplen; truncated final record: "
                     + (f"record {final['record']} at byte offset {final['offset']} (counted as dropped, "
                        f"malformed)" if final else "none"))
        rate = f"{self.frames_per_s / 1e6:.2f} M" if self.frames_per_s >= 1e6 else f"{self.frames_per_s:,.0f}"
        files = f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"
        lines.append(f"wrote {files} to {self.out_dir} in {self.elapsed_s:.2f} s ({rate} frames/s)")
        for trace in ([self.trace] if self.trace is not None else []) + self.traces:
            lines += ["", f"trace of frame {trace['frame']} (ingress {trace['ingress']}, "
                          f"{trace['state']}):", str(trace["text"])]
        return "\n".join(lines)

    def to_json(self) -> str:
        """``as_dict()`` as one line of JSON (what ``--json`` prints)."""
        return json.dumps(self.as_dict(), indent=None, sort_keys=False)


class _PortFiles:
    """One classic pcap per port, opened when the port first emits, kept open up to MAX_OPEN_FILES."""

    def __init__(self, out_dir: Path, port_names: List[str]):
        self.out_dir = out_dir
        self.port_names = port_names
        self.names: Dict[int, str] = {}
        self.open: "OrderedDict[int, PcapWriter]" = OrderedDict()
        self._taken = {DROPS_FILE}

    def _file_name(self, port: int) -> str:
        name = port_file_name(self.port_names[port])
        stem, n = name[:-len("-tx.pcap")], 2
        while name in self._taken:  # two ports whose names differ only in unsafe characters
            name, n = f"{stem}-{n}-tx.pcap", n + 1
        self._taken.add(name)
        return name

    def write_batch(self, blob, bounds: array) -> None:
        """Write ``blob[bounds[p]:bounds[p + 1]]`` to port ``p``'s file, for every port with records."""
        view = memoryview(blob)
        for p in range(len(bounds) - 1):
            if bounds[p + 1] > bounds[p]:
                self.write(p, view[bounds[p]:bounds[p + 1]])

    def write(self, port: int, records) -> None:
        writer = self.open.get(port)
        if writer is None:
            first = port not in self.names
            if first:
                self.names[port] = self._file_name(port)
            if len(self.open) >= MAX_OPEN_FILES:
                _, oldest = self.open.popitem(last=False)
                oldest.close()
            writer = PcapWriter(self.out_dir / self.names[port], append=not first, buffering=PORT_FILE_BUFFER)
            self.open[port] = writer
        else:
            self.open.move_to_end(port)
        writer.write_raw(records)

    def close(self) -> None:
        while self.open:
            _, writer = self.open.popitem()
            writer.close()


class _Sink:
    """File writes on a thread of their own, in submission order, so they overlap the engine.

    The queue is bounded (``depth`` batches' worth of records), so memory
    stays bounded when the disk is slower than the engine.  Every file
    operation (open, write, close) runs on the writer thread; an error
    there is raised again in the caller at the next ``submit`` or at
    ``close``.
    """

    def __init__(self, depth: int = 4):
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="ovnsim-replay-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                fn, args = item
                try:
                    fn(*args)
                except BaseException as err:  # handed to the caller thread
                    self._error = err

    def submit(self, fn, *args) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((fn, args))

    def close(self) -> None:
        """Finish every pending write; re-raise a writer error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Progress:
    """``frames, %, frames/s`` on one stderr line, redrawn at most a few times a second."""

    INTERVAL = 0.25

    def __init__(self, stream: Optional[TextIO], total_bytes: int):
        self.stream = stream
        self.total = max(total_bytes, 1)
        self.start = self.last = time.monotonic()
        self.drawn = False

    def update(self, frames: int, position: int) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self.last < self.INTERVAL:
            return
        self.last = now
        rate = frames / max(now - self.start, 1e-9)
        self.stream.write(f"\rreplaying: {frames:,} frames  {min(100.0, 100.0 * position / self.total):5.1f}%  "
                          f"{rate / 1e6:.2f} M frames/s ")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.stream is not None and self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


class FrameFilter:
    """A microflow-style filter selecting frames to trace: ``ip4.src == 10.0.0.11 && tcp``.

    A conjunction (``&&``) of protocol words (``arp``, ``ip4``/``ip``,
    ``icmp4``/``icmp``, ``tcp``, ``udp``) and ``FIELD == VALUE`` terms over
    the fields ovnsim reports for a frame (``eth.src``, ``eth.dst``,
    ``arp.op``, ``arp.spa``, ``arp.tpa``, ``ip4.src``, ``ip4.dst``,
    ``ip.ttl``, ``icmp4.type``, ``tcp.dst``, ``udp.src``, ...) and
    ``inport`` (the ingress port).  Values are compared as ovnsim prints
    them: MACs in lower case, IPv4 dotted, numbers in any base (``0x11``).
    """

    _PROTOCOLS = {"arp": ("arp.op",), "ip4": ("ip4.src",), "ip": ("ip4.src",), "icmp4": ("icmp4.type",),
                  "icmp": ("icmp4.type",), "tcp": ("tcp.dst",), "udp": ("udp.dst",)}

    def __init__(self, expr: str):
        self.expr = expr
        self.protocols: List[str] = []
        self.terms: List[tuple] = []
        for raw_term in expr.split("&&"):
            term = raw_term.strip()
            if not term:
                raise OvnsimError(f"--trace-match {expr!r}: empty term")
            if "==" in term:
                name, _, value = (t.strip() for t in term.partition("=="))
                self.terms.append((name, self._normalise(name, value.strip('"'))))
            elif term in self._PROTOCOLS:
                self.protocols.append(term)
            else:
                raise OvnsimError(f"--trace-match {expr!r}: {term!r} is neither a protocol "
                                  f"({', '.join(self._PROTOCOLS)}) nor FIELD == VALUE")

    @staticmethod
    def _normalise(name: str, value: str) -> object:
        if name in ("inport",):
            return value
        if name.endswith((".src", ".dst", ".sha", ".tha", ".spa", ".tpa")) and not name.startswith(("tcp", "udp")):
            if name.startswith(("ip4", "arp.spa", "arp.tpa")):
                try:
                    return str(ipaddress.IPv4Address(value))
                except ValueError:
                    raise OvnsimError(f"--trace-match: {name} == {value!r}: not an IPv4 address") from None
            return value.lower()
        try:
            return int(value, 0)
        except ValueError:
            raise OvnsimError(f"--trace-match: {name} == {value!r}: not a number") from None

    def matches(self, fields: Dict[str, object], inport: Optional[str]) -> bool:
        for proto in self.protocols:
            if not all(f in fields for f in self._PROTOCOLS[proto]):
                return False
        for name, value in self.terms:
            have = inport if name == "inport" else fields.get(name)
            if have != value:
                return False
        return True


class _Tracer:
    """A C engine of its own kept in step with the replay, tracing the frames asked for.

    It replays every frame before a traced one (so conntrack and learned MAC
    bindings are what they are when that frame arrives) and traces the
    selected frames: frame number ``frame``, and/or up to ``limit`` frames
    that ``match`` selects.  It stops once it has nothing left to trace.
    """

    def __init__(self, logical: LogicalTopology, inport: int, frame: Optional[int] = None,
                 match: Optional[FrameFilter] = None, limit: int = 10):
        from ovnsim.datapath.engine import fast_engine
        from ovnsim.datapath.trace import TraceRenderer

        self.engine = fast_engine(logical)
        self.renderer = TraceRenderer(self.engine)
        self.frame = frame
        self.match = match
        self.limit = limit
        self.inport = inport
        self.result: Optional[Dict[str, object]] = None  #: the trace of frame ``frame``
        self.matched: List[Dict[str, object]] = []  #: traces of the frames ``match`` selected

    @property
    def done(self) -> bool:
        frame_done = self.frame is None or self.result is not None
        match_done = self.match is None or len(self.matched) >= self.limit
        return frame_done and match_done

    def feed(self, batch, inports: array) -> None:
        if self.done:
            return
        if self.match is None:
            # Only frame N: replay the frames before it in bulk.
            if batch.first > self.frame:
                return
            before = min(len(batch), self.frame - batch.first)
            if before > 0:
                self.engine.process_batch(batch.data, batch.offsets[:before], batch.lengths[:before],
                                          inports[:before])
            if before < len(batch):
                self.result = self._trace(batch.frame(before), self.frame)
            return
        for j in range(len(batch)):
            if self.done:
                return
            raw = batch.frame(j)
            number = batch.first + j
            if number == self.frame:
                self.result = self._trace(raw, number)
            elif len(self.matched) < self.limit and self._selected(raw):
                self.matched.append(self._trace(raw, number))
            else:
                self.engine.process_batch(raw, [0], [len(raw)], [inports[j]])

    def _ingress(self, raw: bytes) -> int:
        return self.inport if self.inport != AUTO_INGRESS else self.engine.choose_ingress(raw)

    def _selected(self, raw: bytes) -> bool:
        from ovnsim.datapath._fastpath import frame_fields

        fields = frame_fields(raw)
        if fields is None:
            return False
        inport = self._ingress(raw)
        return self.match.matches(fields, self.engine.port_names[inport] if inport >= 0 else None)

    def _trace(self, raw: bytes, number: int) -> Dict[str, object]:
        from ovnsim.datapath.trace import format_detailed
        from ovnsim.sim import run_traced, verdict

        engine = self.engine
        inport = self._ingress(raw)
        result = run_traced(engine, self.renderer, raw, inport)
        return {"frame": number, "ingress": engine.port_names[inport] if inport >= 0 else None,
                "state": f"conntrack and MAC bindings as left by frames 1-{number - 1}"
                         if number > 1 else "fresh network",
                "text": format_detailed(result), "verdict": verdict(result, with_trace=True)}


def _select_engine(logical: LogicalTopology, engine):
    """``engine``: None or "fast" (the C engine), or a callable making an engine from ``logical`` (tests)."""
    if callable(engine):
        return engine(logical)
    return make_engine(logical, engine)


def _engine_name(engine) -> str:
    return getattr(engine, "name", None) or type(engine).__name__


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OvnsimError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise OvnsimError(f"{out_dir}: output directory is not empty (use --force to replace the files of "
                              f"an earlier replay)")
        for old in list(out_dir.glob("*-tx.pcap")) + [out_dir / DROPS_FILE]:
            if old.is_file():
                old.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _load(topology: Union[str, os.PathLike, LogicalTopology]):
    if isinstance(topology, LogicalTopology):
        return topology, topology.source
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    return compile_topology(load_topology(os.fspath(topology))), os.fspath(topology)


def replay(topology: Union[str, os.PathLike, LogicalTopology], capture: Union[str, os.PathLike],
           out_dir: Union[str, os.PathLike], *, port: Optional[str] = None, auto: bool = False,
           engine=None, force: bool = False, trace_frame: Optional[int] = None,
           trace_match: Optional[str] = None, trace_limit: int = 10,
           progress: Optional[TextIO] = None, batch_size: Optional[int] = None,
           chunk_size: int = DEFAULT_CHUNK) -> ReplaySummary:
    """Replay ``capture`` through ``topology``, writing the per-port pcaps and drops into ``out_dir``.

    ``port`` (every frame enters there) or ``auto=True`` (the engine picks
    each frame's ingress); ``engine``: "fast" or None (the C engine; a callable
    that makes an engine from the logical topology is taken too, for tests); ``force``: replace the files of an earlier replay in a
    non-empty ``out_dir``; ``trace_frame``: also trace frame N (1-based), in
    the state the earlier frames left;
    ``trace_match``: also trace up to ``trace_limit`` frames a
    :class:`FrameFilter` expression selects (a second engine, traced, then
    keeps in step with the replay until it has traced them);
    ``progress``: a stream for the progress line (None: none).  Bad input
    raises :class:`~ovnsim.errors.OvnsimError` (``CaptureError`` for the
    capture) before anything is written, except a corrupt record in the
    middle of a capture: that error comes when the reader reaches it, and
    the files written up to then stay.
    """
    _need_pcapio()
    from ovnsim.capture import _pcapio

    if (port is None) == (not auto):
        raise OvnsimError("give exactly one of a port (--port P) or auto ingress (--auto)")
    if trace_frame is not None and trace_frame < 1:
        raise OvnsimError(f"--trace {trace_frame}: frame numbers start at 1")
    match = FrameFilter(trace_match) if trace_match is not None else None
    if trace_limit < 1:
        raise OvnsimError(f"--trace-limit {trace_limit}: must be at least 1")
    logical, topology_name = _load(topology)
    engine_obj = _select_engine(logical, engine)
    port_names: List[str] = list(engine_obj.port_names)
    if port is not None and port not in port_names:
        raise OvnsimError(f"unknown logical port {port!r}; the ports are: {', '.join(port_names)}")
    inport = AUTO_INGRESS if auto else port_names.index(port)
    if batch_size is None:
        batch_size = PYTHON_ENGINE_BATCH if _engine_name(engine_obj) == "python" else DEFAULT_BATCH
    reader = CaptureReader(capture, batch_size=batch_size, chunk_size=chunk_size)
    try:
        out = Path(out_dir)
        _prepare_out_dir(out, force)
        summary = ReplaySummary(topology=topology_name, capture=os.fspath(capture), format=reader.format,
                                engine=_engine_name(engine_obj), ingress="auto" if auto else port,
                                out_dir=os.fspath(out_dir))
        tracer = (_Tracer(logical, inport, trace_frame, match, trace_limit)
                  if trace_frame is not None or match is not None else None)
        _run(summary, reader, engine_obj, logical, inport, out, tracer, trace_frame, progress, _pcapio)
    finally:
        reader.close()
    return summary


def _run(summary: ReplaySummary, reader: CaptureReader, engine, logical: LogicalTopology, inport: int, out: Path,
         tracer: Optional[_Tracer], trace_frame: Optional[int], progress_stream: Optional[TextIO],
         _pcapio) -> None:
    port_names: List[str] = list(engine.port_names)
    n_ports, n_stages = len(port_names), len(STAGE_LIST)
    localnet = {p.name for ls in logical.switches for p in ls.ports if p.type == "localnet"}
    port_localnet = bytes(1 if name in localnet else 0 for name in port_names)
    reasons = [NO_DISPOSITION] + [Drop(c).label if c in Drop._value2member_map_ else f"drop-{c}"
                                  for c in range(1, _N_REASONS)]
    names = _pcapio.DropNames(reasons, [s.name for s in STAGE_LIST], list(engine.datapath_names), port_names)
    class_counts = array("q", [0, 0, 0])
    port_counts = array("q", [0] * n_ports)
    kind_counts = array("q", [0] * len(KINDS))
    dropped_counts = array("q", [0] * (_N_REASONS * n_stages))
    copy_counts = array("q", [0] * (_N_REASONS * n_stages))
    frame_state = bytearray(reader.batch_size)
    port_bounds = array("q", [0] * (n_ports + 1))
    inports_cache: Dict[int, array] = {}
    progress = _Progress(progress_stream, reader.size)
    ports = _PortFiles(out, port_names)
    drops = PcapNgWriter(out / DROPS_FILE, if_name="drops")
    sink = _Sink()
    frames = 0
    start = time.perf_counter()
    try:
        for batch in reader:
            n = len(batch)
            inports = inports_cache.get(n)
            if inports is None:
                inports = inports_cache[n] = array("i", [inport]) * n
            result = engine.process_batch(batch.data, batch.offsets, batch.lengths, inports, BatchResult())
            if result.frames != n or len(result.ingress) != n:
                raise AssertionError(f"engine returned {result.frames} frames / {len(result.ingress)} ingress "
                                     f"entries for a batch of {n}")
            state = memoryview(frame_state)[:n]
            n_dropped = _pcapio.account_batch(
                n, result.out_frame, result.out_port, result.out_kind, result.drop_frame, result.drop_reason,
                result.drop_stage, port_localnet, state, class_counts, port_counts, kind_counts, dropped_counts,
                copy_counts, n_stages)
            if result.n_outputs:
                blob = _pcapio.build_pcap_records(result.out_data, result.out_start, result.out_len,
                                                  result.out_frame, result.out_port, batch.timestamps, port_bounds)
                sink.submit(ports.write_batch, blob, array("q", port_bounds))
                # A batch that fans out into many copies gets smaller successors (memory stays bounded).
                if len(result.out_data) > OUT_BYTES_PER_BATCH and len(batch) > 256:
                    reader.batch_size = max(256, len(batch) * OUT_BYTES_PER_BATCH // len(result.out_data))
            if n_dropped:
                sink.submit(drops.write_raw, _pcapio.build_drop_epbs(
                    batch.data, batch.offsets, batch.lengths, batch.origlens, batch.timestamps, state,
                    result.ingress, batch.first, result.drop_frame, result.drop_reason, result.drop_stage,
                    result.drop_datapath, names))
            if tracer is not None:
                tracer.feed(batch, inports)
            frames += n
            progress.update(frames, reader.bytes_read)
        partial = reader.partial
        if partial is not None:
            frames += 1
            class_counts[2] += 1
            described = partial.describe()
            summary.truncated_final_record = {"record": partial.number, "offset": partial.offset,
                                              "have": partial.have, "need": partial.need}
            summary.warnings.append(f"{reader.path}: {described}: the capture ends inside this record; "
                                    f"counted as a dropped frame (malformed)")
            sink.submit(drops.write, partial.data, partial.timestamp, partial.origlen or len(partial.data),
                        [f"{Drop.MALFORMED.label} at {CAPTURE_STAGE}: final record cut short ({described})",
                         f"frame {partial.number}, ingress (none)"])
    finally:
        try:
            sink.close()
        finally:
            ports.close()
            drops.close()
            progress.finish()
    summary.elapsed_s = time.perf_counter() - start
    summary.frames_per_s = frames / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    summary.warnings = reader.warnings + summary.warnings
    summary.frames_in = frames
    summary.delivered, summary.exited, summary.dropped = class_counts
    summary.snaplen_truncated = reader.snaplen_truncated
    summary.outputs = {port_names[p]: port_counts[p] for p in sorted(range(n_ports), key=port_names.__getitem__)
                       if port_counts[p]}
    summary.files = {port_names[p]: name for p, name in sorted(ports.names.items(), key=lambda kv: port_names[kv[0]])}
    summary.files["drops"] = DROPS_FILE
    summary.output_kinds = {k: kind_counts[i] for i, k in enumerate(KINDS)}
    summary.generated = {k: kind_counts[KINDS.index(k)] for k in GENERATED_KINDS}
    summary.drops = _by_reason(dropped_counts, reasons, n_stages, "frames")
    if reader.partial is not None:
        entry = summary.drops.setdefault(Drop.MALFORMED.label, {"frames": 0, "stages": {}})
        entry["frames"] = int(entry["frames"]) + 1
        entry["stages"][CAPTURE_STAGE] = entry["stages"].get(CAPTURE_STAGE, 0) + 1
    summary.copy_drops = _by_reason(copy_counts, reasons, n_stages, "copies")
    if tracer is not None:
        summary.traces = tracer.matched
    if tracer is not None and trace_frame is not None:
        if tracer.result is None:
            partial = reader.partial
            if partial is not None and partial.number == trace_frame:
                summary.trace = {"frame": trace_frame, "ingress": None, "state": "not replayed",
                                 "text": f"frame {trace_frame} is the capture's cut-short final record: "
                                         f"not replayed (malformed at {CAPTURE_STAGE})", "verdict": None}
            else:
                raise OvnsimError(f"--trace {trace_frame}: the capture has only {frames} frames "
                                  f"(the replay's files are written)")
        else:
            summary.trace = tracer.result
    summary.check()


def _by_reason(counts: array, reasons: List[str], n_stages: int, unit: str) -> Dict[str, Dict[str, object]]:
    table: Dict[str, Dict[str, object]] = {}
    for key, count in enumerate(counts):
        if count:
            reason, stage = divmod(key, n_stages)
            entry = table.setdefault(reasons[reason], {unit: 0, "stages": {}})
            entry[unit] = int(entry[unit]) + count
            # a dropped frame with no record is counted at (0, 0): it has no stage
            entry["stages"]["-" if reason == 0 else STAGE_LIST[stage].name] = count
    return dict(sorted(table.items()))
