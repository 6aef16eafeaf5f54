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
``"<disposition> at <datapath> <stage>"`` -- for a security group's drop
followed by the rule it needed -- then ``"frame <n>, ingress <port>"``).

The per-frame work -- reading, the engine, accounting, writing -- runs in
C over whole batches (``ovnsim.capture._pcapio`` and the engine); Python runs once
per batch.  See docs/replay.md for the summary's fields and the choices made
about damaged captures.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import queue
import re
import signal
import sys
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

#: The text summary shows frames/s only for runs at least this long and this large (below, start-up
#: and the writer thread dominate and the number misleads).
RATE_MIN_SECONDS = 1.0
RATE_MIN_FRAMES = 10000

_N_REASONS = max(int(d) for d in Drop) + 1


def _default_timeouts() -> Dict[str, int]:
    try:
        from ovnsim.datapath._fastpath import CT_TIMEOUT_DEFAULTS
    except ImportError:  # pragma: no cover - the engine is not built: replay refuses to run anyway
        return {}
    return dict(CT_TIMEOUT_DEFAULTS)


#: OVS's default conntrack timeouts (seconds), by timeout-policy name.
CT_DEFAULT_TIMEOUTS = _default_timeouts()


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
    #: Packets held while their next hop's ARP resolved (pinctrl's buffered packets):
    #: still waiting at the end (no ARP reply came), and pushed out of a full queue
    #: (3 per next hop) or not held (1,000 next hops).  Not frame counts: a frame
    #: that was held is counted by what left for it (its ARP request), and a held
    #: packet an ARP reply released is an output of that reply's frame.
    held: int = 0
    held_dropped: int = 0
    tap: Optional[Dict[str, object]] = None  #: --only-from-port: sent, received, matched, mismatched, unseen
    interrupted: bool = False  #: stopped by SIGINT: the counts are those of the frames replayed until then
    snaplen_truncated: int = 0
    #: frames a capture's snaplen cut that were replayed on the headers captured (the others: snaplen-truncated)
    header_only: int = 0
    #: conntrack over the replay: created, expired, live (at the end), peak, limit, timeouts (s)
    conntrack: Dict[str, object] = field(default_factory=dict)
    timestamps_clamped: int = 0
    truncated_final_record: Optional[Dict[str, object]] = None
    warnings: List[str] = field(default_factory=list)
    capture_notes: List[str] = field(default_factory=list)  #: what was done to the frames (FCS stripped, ...)
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
        if self.header_only < 0:
            raise AssertionError(f"header-only frames {self.header_only} < 0")
        ct = self.conntrack
        if ct and ct["created"] != ct["expired"] + ct["live"]:
            raise AssertionError(f"conntrack: created {ct['created']} != expired {ct['expired']} + live {ct['live']}")

    def as_dict(self) -> Dict[str, object]:
        """The summary as one JSON-able object."""
        out: Dict[str, object] = {
            "topology": self.topology, "capture": self.capture, "format": self.format, "engine": self.engine,
            "ingress": self.ingress, "out_dir": self.out_dir,
            "interrupted": self.interrupted,
            "frames_in": self.frames_in, "delivered": self.delivered, "exited": self.exited,
            "dropped": self.dropped,
            "outputs": self.outputs, "files": self.files, "output_kinds": self.output_kinds,
            "generated": self.generated, "drops": self.drops, "copy_drops": self.copy_drops,
            "held": {"waiting": self.held, "dropped": self.held_dropped},
            "header_only": self.header_only, "conntrack": self.conntrack,
            "anomalies": {"snaplen_truncated": self.snaplen_truncated,
                          "timestamps_clamped": self.timestamps_clamped,
                          "truncated_final_record": self.truncated_final_record},
            "warnings": self.warnings, "capture_notes": self.capture_notes,
            "elapsed_s": round(self.elapsed_s, 6), "frames_per_s": round(self.frames_per_s, 1),
        }
        if self.tap is not None:
            out["tap"] = self.tap
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
            f"ingress {self.ingress}" + (" -- INTERRUPTED: the summary so far" if self.interrupted else ""),
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
        if self.held or self.held_dropped:
            lines.append(f"held for ARP resolution: {self.held} packets still waiting (no ARP reply came; "
                         f"their frames are counted by the ARP request they sent), {self.held_dropped} "
                         f"pushed out of a full queue")
        final = self.truncated_final_record
        cut = self.drops.get(Drop.SNAPLEN_TRUNCATED.label, {}).get("frames", 0)
        lines.append(f"capture: {self.snaplen_truncated} frames cut by the snaplen"
                     + (f" ({self.header_only} replayed on their headers, written with their original length; "
                        f"{cut} dropped, {Drop.SNAPLEN_TRUNCATED.label})" if self.snaplen_truncated else "")
                     + "; truncated final record: "
                     + (f"record {final['record']} at byte offset {final['offset']} (counted as dropped, "
                        f"malformed)" if final else "none")
                     + (f"; {self.timestamps_clamped} timestamps clamped" if self.timestamps_clamped else ""))
        lines += [f"capture: {note}" for note in self.capture_notes]
        if self.conntrack:
            ct = self.conntrack
            changed = {k: v for k, v in ct["timeouts"].items() if CT_DEFAULT_TIMEOUTS.get(k) != v}
            lines.append(f"conntrack: {ct['created']} connections created, {ct['expired']} expired, {ct['live']} "
                         f"live at the end, peak {ct['peak']}"
                         + (f" (limit {ct['limit']})" if ct["limit"] else "")
                         + "; timeouts " + (", ".join(f"{k}={v}s" for k, v in changed.items()) + ", others "
                                            if changed else "") + "OVS's defaults")
        if self.tap is not None:
            tap = self.tap
            lines.append(f"tap of {tap['port']}: {tap['sent']} frames sent by it (replayed above); "
                         f"{tap['received']} received by it, not injected: {tap['matched']} matched what ovnsim "
                         f"delivered to it, {tap['mismatched']} did not; {tap['unseen']} frames ovnsim delivered "
                         f"to it are not in the capture")
        files = f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"
        line = f"wrote {files} to {self.out_dir} in {self.elapsed_s:.2f} s"
        if self.rate_meaningful:
            rate = f"{self.frames_per_s / 1e6:.2f} M" if self.frames_per_s >= 1e6 else f"{self.frames_per_s:,.0f}"
            line += f" ({rate} frames/s)"
        lines.append(line)
        for trace in ([self.trace] if self.trace is not None else []) + self.traces:
            lines += ["", f"trace of frame {trace['frame']} (ingress {trace['ingress']}, "
                          f"{trace['state']}):", str(trace["text"])]
        return "\n".join(lines)

    @property
    def rate_meaningful(self) -> bool:
        """Whether frames/s says something: a run long and large enough that start-up does not dominate."""
        return self.elapsed_s >= RATE_MIN_SECONDS and self.frames_in >= RATE_MIN_FRAMES

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
        """Close every open file (all of them, even when one fails); raise the first failure."""
        first: Optional[BaseException] = None
        while self.open:
            _, writer = self.open.popitem()
            try:
                writer.close()
            except OvnsimError as err:
                first = first or err
        if first is not None:
            raise first


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


class _TapSplit:
    """``--port P --only-from-port``: a capture of P's own interface (a VM's tap) split by direction.

    As tcpprep splits a capture: frames whose source MAC is P's were *sent*
    by P and enter the network at P; every other frame was *received* by P
    and is not injected (that would replay the network's own output back
    into it).  A received frame is compared with what ovnsim delivered to P:
    *matched* when ovnsim delivered the same frame (headers up to the IPv4
    total length or the ARP body; Ethernet padding aside), *mismatched*
    when not (replies of machines ovnsim does not emulate -- other VMs,
    the outside -- are mismatched too: ovnsim only answers for the
    network).  ``unseen`` counts frames ovnsim delivered to P that the
    capture does not show.
    """

    def __init__(self, port: str, port_index: int, mac: str):
        self.port = port
        self.port_index = port_index
        self.mac = bytes(int(b, 16) for b in mac.split(":"))
        self.received = self.matched = self.mismatched = 0
        self._delivered: Dict[bytes, int] = {}

    @staticmethod
    def key(frame: bytes) -> bytes:
        """The bytes compared: the frame without Ethernet padding."""
        if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
            frame = frame[:14 + int.from_bytes(frame[16:18], "big")]
        elif len(frame) >= 42 and frame[12:14] == b"\x08\x06":
            frame = frame[:42]
        return hashlib.blake2b(frame, digest_size=16).digest()

    def divide(self, batch):
        """(the batch of frames P sent, with their capture numbers; [(number, key)] of the frames P received)."""
        from ovnsim.capture.pcap import Batch

        data, mac = batch.data, self.mac
        keep = array("q")
        received = []
        for i in range(len(batch)):
            at, length = batch.offsets[i], batch.lengths[i]
            if length >= 12 and data[at + 6:at + 12] == mac:
                keep.append(i)
            else:
                received.append((batch.number(i), self.key(bytes(data[at:at + length]))))
        sent = Batch(data, array("q", (batch.offsets[i] for i in keep)), array("i", (batch.lengths[i] for i in keep)),
                     array("I", (batch.origlens[i] for i in keep)), array("q", (batch.timestamps[i] for i in keep)),
                     batch.first, array("i", (batch.ifaces[i] for i in keep)))
        sent.numbers = array("q", (batch.number(i) for i in keep))
        return sent, received

    def compare(self, result, received) -> List[tuple]:
        """Count ``received`` against what ``result`` delivered to P; ``(number, port, matched)`` per frame."""
        delivered = self._delivered
        data = result.out_data
        for i in range(len(result.out_port)):
            if result.out_port[i] == self.port_index:
                start = result.out_start[i]
                k = self.key(bytes(data[start:start + result.out_len[i]]))
                delivered[k] = delivered.get(k, 0) + 1
        out = []
        for number, k in received:
            matched = delivered.get(k, 0) > 0
            if matched:
                delivered[k] -= 1
                self.matched += 1
            else:
                self.mismatched += 1
            out.append((number, self.port, matched))
        self.received += len(received)
        return out

    @property
    def unseen(self) -> int:
        """Frames ovnsim delivered to P that the capture does not show P receiving."""
        return sum(self._delivered.values())


class _Verdicts:
    """``--verdicts FILE.jsonl``: one JSON line per input frame, built from the batch arrays.

    ``{"frame": 12345, "ingress": "vm1", "outputs": [{"port": "vm2", "kind": "packet", "record": 17}],
    "dropped": null}`` -- ``record`` is the 1-based record number in that
    port's file; a frame of which nothing left has ``"dropped":
    {"disposition", "datapath", "stage", "record"}`` (its record in
    drops.pcapng) and no outputs.  The lines are written whole (a full disk
    leaves the file ending on a line).
    """

    def __init__(self, path: Union[str, os.PathLike], port_names: List[str], reasons: List[str],
                 datapaths: List[str]):
        from ovnsim.capture.pcap import _Writer

        self.path = os.fspath(path)
        self.writer = _Writer(self.path, b"", False, 1 << 20)
        self.dropped = 0  #: records written to drops.pcapng so far
        # Every name as a JSON string literal, encoded once.
        self._ports = [json.dumps(name) for name in port_names]
        self._kinds = [json.dumps(kind) for kind in KINDS]
        self._reasons = [json.dumps(reason) for reason in reasons]
        self._datapaths = [json.dumps(name) for name in datapaths]
        self._stages = [json.dumps(stage.name) for stage in STAGE_LIST]

    def batch(self, batch, result, state, port_counts: array, received=()) -> bytes:
        """The lines of one batch (``port_counts``: each port's records before it).

        ``received``: ``(number, port, matched)`` of the frames ``--only-from-port`` did not inject.
        The lines are formatted from pre-encoded JSON strings (``json.dumps`` per frame costs
        several times the engine).
        """
        n = len(batch)
        outputs: List[List[str]] = [[] for _ in range(n)]
        seen = list(port_counts)
        ports, kinds = self._ports, self._kinds
        out_port, out_kind, out_frame = result.out_port, result.out_kind, result.out_frame
        for i in range(len(out_frame)):
            p = out_port[i]
            seen[p] += 1
            outputs[out_frame[i]].append(f'{{"port": {ports[p]}, "kind": {kinds[out_kind[i]]}, "record": {seen[p]}}}')
        first_drop: Dict[int, int] = {}
        for i in range(len(result.drop_frame)):
            first_drop.setdefault(result.drop_frame[i], i)
        lines = []
        ingress = result.ingress
        for f in range(n):
            port = ingress[f]
            number = batch.number(f)
            if state[f] & 3:  # some copy left (account_batch's REACHED bits)
                dropped = "null"
            else:
                self.dropped += 1
                i = first_drop.get(f)
                if i is None:
                    dropped = (f'{{"disposition": "{NO_DISPOSITION}", "datapath": null, "stage": null, '
                               f'"record": {self.dropped}}}')
                else:
                    dropped = (f'{{"disposition": {self._reasons[result.drop_reason[i]]}, '
                               f'"datapath": {self._datapaths[result.drop_datapath[i]]}, '
                               f'"stage": {self._stages[result.drop_stage[i]]}, "record": {self.dropped}}}')
            lines.append((number, f'{{"frame": {number}, "ingress": {ports[port] if port >= 0 else "null"}, '
                                  f'"outputs": [{", ".join(outputs[f])}], "dropped": {dropped}}}'))
        for number, port, matched in received:
            lines.append((number, json.dumps({"frame": number, "received_by": port, "matched": matched})))
        if received:
            lines.sort()
        return ("\n".join(text for _n, text in lines) + "\n").encode() if lines else b""

    def partial(self, number: int) -> bytes:
        """The line of a cut-short final record (dropped as malformed at ``capture``)."""
        self.dropped += 1
        return (json.dumps({"frame": number, "ingress": None, "outputs": [],
                            "dropped": {"disposition": Drop.MALFORMED.label, "datapath": None,
                                        "stage": CAPTURE_STAGE, "record": self.dropped}}) + "\n").encode()


class _Interrupt:
    """SIGINT as a request to stop between batches (when asked for, in the main thread).

    ``stop`` becomes True at the first SIGINT; the replay loop checks it
    before each batch.  While the loop waits for input (``reading()``: a
    pipe that is slow to fill) a SIGINT stops the wait at once.  A second
    SIGINT raises KeyboardInterrupt.
    """

    class Stop(BaseException):
        """Raised inside a blocked read to end it (never leaves the replay loop)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.stop = False
        self._reading = False
        self._previous = None

    def __enter__(self) -> "_Interrupt":
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        if self._reading:
            raise self.Stop()

    def next_batch(self, batches):
        """The next batch, or None at the end of the capture or once stopped (a SIGINT ends a blocked read)."""
        try:
            self._reading = True
            try:
                return None if self.stop else next(batches, None)
            finally:
                self._reading = False
        except _Interrupt.Stop:  # raised by the handler only while _reading (the wait itself)
            self._reading = False
            return None


class _Progress:
    """``frames, %, frames/s`` on one stderr line, redrawn at most a few times a second."""

    INTERVAL = 0.25

    def __init__(self, stream: Optional[TextIO], total_bytes: int):
        self.stream = stream
        self.total = max(total_bytes, 1)
        self.known = total_bytes > 0  # 0: a pipe, whose size is unknown
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
        share = f"{min(100.0, 100.0 * position / self.total):5.1f}%  " if self.known else ""
        self.stream.write(f"\rreplaying: {frames:,} frames  {share}{rate / 1e6:.2f} M frames/s ")
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
                 match: Optional[FrameFilter] = None, limit: int = 10, ct_limit: Optional[int] = None,
                 ct_timeouts: Optional[Dict[str, int]] = None):
        from ovnsim.datapath.engine import fast_engine
        from ovnsim.datapath.trace import TraceRenderer

        self.engine = fast_engine(logical)
        self.engine.ct_limit = ct_limit
        if ct_timeouts:
            self.engine.ct_timeouts = ct_timeouts
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
        # Each frame runs with its time and wire length, as in the replay, so conntrack ages alike.
        if self.done:
            return
        if self.match is None:
            # Only frame N: replay the frames before it in bulk.
            if batch.first > self.frame:
                return
            before = min(len(batch), self.frame - batch.first)
            if before > 0:
                self.engine.process_batch(batch.data, batch.offsets[:before], batch.lengths[:before],
                                          inports[:before], timestamps=batch.timestamps[:before],
                                          origlens=array("q", batch.origlens[:before]))
            if before < len(batch):
                self.result = self._trace(batch, before, self.frame)
            return
        for j in range(len(batch)):
            if self.done:
                return
            raw = batch.frame(j)
            number = batch.first + j
            if number == self.frame:
                self.result = self._trace(batch, j, number)
            elif len(self.matched) < self.limit and self._selected(raw, batch.origlens[j]):
                self.matched.append(self._trace(batch, j, number))
            else:
                self.engine.process_batch(raw, [0], [len(raw)], [inports[j]], timestamps=[batch.timestamps[j]],
                                          origlens=[batch.origlens[j]])

    def _ingress(self, raw: bytes, wire: int = 0) -> int:
        return self.inport if self.inport != AUTO_INGRESS else self.engine.choose_ingress(raw, wire)

    def _selected(self, raw: bytes, wire: int) -> bool:
        from ovnsim.datapath._fastpath import frame_fields

        fields = frame_fields(raw, wire)
        if fields is None:
            return False
        inport = self._ingress(raw, wire)
        return self.match.matches(fields, self.engine.port_names[inport] if inport >= 0 else None)

    def _trace(self, batch, j: int, number: int) -> Dict[str, object]:
        from ovnsim.datapath.trace import format_detailed
        from ovnsim.sim import run_traced, verdict

        engine = self.engine
        raw = batch.frame(j)
        inport = self._ingress(raw, batch.origlens[j])
        result = run_traced(engine, self.renderer, raw, inport, time_ns=batch.timestamps[j],
                            origlen=batch.origlens[j])
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
           chunk_size: int = DEFAULT_CHUNK, interruptible: bool = False,
           verdicts: Optional[Union[str, os.PathLike]] = None, only_from_port: bool = False,
           ct_limit: Optional[int] = None, ct_timeouts: Optional[Dict[str, int]] = None) -> ReplaySummary:
    """Replay ``capture`` through ``topology``, writing the per-port pcaps and drops into ``out_dir``.

    ``port`` (every frame enters there) or ``auto=True`` (the engine picks
    each frame's ingress); ``engine``: "fast" or None (the C engine; a callable
    that makes an engine from the logical topology is taken too, for tests); ``force``: replace the files of an earlier replay in a
    non-empty ``out_dir``; ``trace_frame``: also trace frame N (1-based), in
    the state the earlier frames left;
    ``trace_match``: also trace up to ``trace_limit`` frames a
    :class:`FrameFilter` expression selects (a second engine, traced, then
    keeps in step with the replay until it has traced them);
    ``progress``: a stream for the progress line (None: none);
    ``only_from_port`` (with ``port``): the capture is of that port's own
    interface; only the frames it sent are injected, those it received are
    compared with what ovnsim delivered to it (:class:`_TapSplit`);
    ``verdicts``: a file to write one JSON line per frame into (what
    became of it: :class:`_Verdicts`);
    ``ct_limit``: connections the conntrack table may hold (None: no
    limit); a new connection beyond it is a ``conntrack-full`` drop;
    ``ct_timeouts``: conntrack timeouts (seconds) to change, by OVS's
    timeout-policy names (``{"udp_first": 10}``); connections expire by the
    capture's timestamps;
    ``interruptible``: SIGINT (Ctrl-C) stops the replay at a batch boundary
    (whole frames), every file is closed valid and the summary so far is
    returned with ``interrupted`` set (a second SIGINT raises
    KeyboardInterrupt at once; the files are still closed).  Bad input
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
    if ct_limit is not None and ct_limit < 1:
        raise OvnsimError(f"--ct-limit {ct_limit}: must be at least 1")
    logical, topology_name = _load(topology)
    engine_obj = _select_engine(logical, engine)
    if ct_limit is not None:
        engine_obj.ct_limit = ct_limit
    if ct_timeouts:
        try:
            engine_obj.ct_timeouts = ct_timeouts
        except ValueError as err:
            raise OvnsimError(f"--ct-timeout: {err}") from None
    port_names: List[str] = list(engine_obj.port_names)
    if port is not None and port not in port_names:
        raise OvnsimError(f"unknown logical port {port!r}; the ports are: {', '.join(port_names)}")
    inport = AUTO_INGRESS if auto else port_names.index(port)
    split = None
    if only_from_port:
        if port is None:
            raise OvnsimError("--only-from-port needs --port P (the port whose interface was captured)")
        if trace_frame is not None or match is not None:
            raise OvnsimError("--only-from-port does not combine with --trace or --trace-match yet")
        mac = _port_mac(logical, port)
        if mac is None:
            raise OvnsimError(f"--only-from-port: port {port!r} has no MAC address to tell its frames by")
        split = _TapSplit(port, port_names.index(port), mac)
    if batch_size is None:
        batch_size = PYTHON_ENGINE_BATCH if _engine_name(engine_obj) == "python" else DEFAULT_BATCH
    reader = CaptureReader(capture, batch_size=batch_size, chunk_size=chunk_size)
    try:
        from ovnsim.capture.cooked import DestinationResolver

        reader.cooked_resolver = DestinationResolver(logical, _port_mac(logical, port) if port else None)
        out = Path(out_dir)
        _prepare_out_dir(out, force)
        summary = ReplaySummary(topology=topology_name, capture=os.fspath(capture), format=reader.format,
                                engine=_engine_name(engine_obj), ingress="auto" if auto else port,
                                out_dir=os.fspath(out_dir))
        tracer = (_Tracer(logical, inport, trace_frame, match, trace_limit, ct_limit, ct_timeouts)
                  if trace_frame is not None or match is not None else None)
        with _Interrupt(interruptible) as interrupt:
            _run(summary, reader, engine_obj, logical, inport, out, tracer, trace_frame, progress, _pcapio,
                 interrupt, verdicts, split)
    finally:
        reader.close()
    return summary


def _run(summary: ReplaySummary, reader: CaptureReader, engine, logical: LogicalTopology, inport: int, out: Path,
         tracer: Optional[_Tracer], trace_frame: Optional[int], progress_stream: Optional[TextIO],
         _pcapio, interrupt: "_Interrupt", verdicts_path: Optional[Union[str, os.PathLike]] = None,
         split: Optional[_TapSplit] = None) -> None:
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
    verdicts = (_Verdicts(verdicts_path, port_names, reasons, list(engine.datapath_names))
                if verdicts_path is not None else None)
    # drops.pcapng describes the capture's interfaces, in the capture's order and by its names, so each
    # dropped frame keeps the interface it was captured on (a classic pcap's one interface: "drops").
    drops = PcapNgWriter(out / DROPS_FILE, if_name=_drops_if_name(reader.interface_names, 0))
    drops_ifaces = max(1, len(reader.interface_names))
    for i in range(1, drops_ifaces):
        drops.add_interface(_drops_if_name(reader.interface_names, i))
    sink = _Sink()
    details = _DropDetails(engine)
    frames = 0
    cut_frames = 0  # frames a snaplen cut, injected
    # The C engine takes each frame's time (conntrack ageing) and wire length (snaplen).
    timed = hasattr(engine, "conntrack_sweep")
    engine_cut = False  # a cut frame went in: outputs may carry their wire length from now on
    start = time.perf_counter()
    batches = iter(reader)
    try:
        while not interrupt.stop:
            batch = interrupt.next_batch(batches)
            if batch is None:
                break
            received: list = []
            if split is not None:
                batch, received = split.divide(batch)
            n = len(batch)
            inports = inports_cache.get(n)
            if inports is None:
                inports = inports_cache[n] = array("i", [inport]) * n
            cuts = _pcapio.snaplen_cuts(batch.lengths, batch.origlens) if timed else None
            if cuts is not None:
                cut_frames += cuts[1]
                engine_cut = True  # (a held cut frame may leave in a later batch)
            if timed:
                result = engine.process_batch(batch.data, batch.offsets, batch.lengths, inports, BatchResult(),
                                              timestamps=batch.timestamps, origlens=cuts[0] if cuts else None)
            else:  # an engine of the tests that predates ageing and snaplen (the frozen oracle)
                result = engine.process_batch(batch.data, batch.offsets, batch.lengths, inports, BatchResult())
            if result.frames != n or len(result.ingress) != n:
                raise AssertionError(f"engine returned {result.frames} frames / {len(result.ingress)} ingress "
                                     f"entries for a batch of {n}")
            state = memoryview(frame_state)[:n]
            before = array("q", port_counts) if verdicts is not None else None
            n_dropped = _pcapio.account_batch(
                n, result.out_frame, result.out_port, result.out_kind, result.drop_frame, result.drop_reason,
                result.drop_stage, port_localnet, state, class_counts, port_counts, kind_counts, dropped_counts,
                copy_counts, n_stages)
            if result.n_outputs:
                blob = _pcapio.build_pcap_records(result.out_data, result.out_start, result.out_len,
                                                  result.out_frame, result.out_port, batch.timestamps, port_bounds,
                                                  result.out_wire if engine_cut else None)
                sink.submit(ports.write_batch, blob, array("q", port_bounds))
                # A batch that fans out into many copies gets smaller successors (memory stays bounded).
                if len(result.out_data) > OUT_BYTES_PER_BATCH and len(batch) > 256:
                    reader.batch_size = max(256, len(batch) * OUT_BYTES_PER_BATCH // len(result.out_data))
            if n_dropped:
                while drops_ifaces < len(reader.interface_names):  # interfaces described mid-capture
                    sink.submit(drops.add_interface, _drops_if_name(reader.interface_names, drops_ifaces))
                    drops_ifaces += 1
                sink.submit(drops.write_raw, _pcapio.build_drop_epbs(
                    batch.data, batch.offsets, batch.lengths, batch.origlens, batch.timestamps, state,
                    result.ingress, batch.first, result.drop_frame, result.drop_reason, result.drop_stage,
                    result.drop_datapath, names, batch.ifaces, batch.numbers, details.of(result)))
            if split is not None:
                received = split.compare(result, received)
            if verdicts is not None:
                sink.submit(verdicts.writer.write_raw, verdicts.batch(batch, result, state, before, received))
            if tracer is not None:
                tracer.feed(batch, inports)
            frames += n
            progress.update(frames + (split.received if split is not None else 0), reader.bytes_read)
        partial = reader.partial if not interrupt.stop else None
        if partial is not None:
            while drops_ifaces < len(reader.interface_names):
                sink.submit(drops.add_interface, _drops_if_name(reader.interface_names, drops_ifaces))
                drops_ifaces += 1
            frames += 1
            class_counts[2] += 1
            described = partial.describe()
            summary.truncated_final_record = {"record": partial.number, "offset": partial.offset,
                                              "have": partial.have, "need": partial.need}
            summary.warnings.append(f"{reader.path}: {described}: the capture ends inside this record; "
                                    f"counted as a dropped frame (malformed)")
            sink.submit(drops.write, partial.data, partial.timestamp, partial.origlen or len(partial.data),
                        [f"{Drop.MALFORMED.label} at {CAPTURE_STAGE}: final record cut short ({described})",
                         f"frame {partial.number}, ingress (none)"],
                        partial.interface if partial.interface < drops_ifaces else 0)
            if verdicts is not None:
                sink.submit(verdicts.writer.write_raw, verdicts.partial(partial.number))
    finally:
        # Every file is closed whatever happened (each is valid: whole records only); the first
        # write error is the one reported, unless an error is already on its way out.
        failures: List[BaseException] = []
        for close in (sink.close, ports.close, drops.close) + ((verdicts.writer.close,) if verdicts else ()):
            try:
                close()
            except OvnsimError as err:
                failures.append(err)
        progress.finish()
        if failures and sys.exc_info()[1] is None:
            raise failures[0]
    summary.elapsed_s = time.perf_counter() - start
    summary.frames_per_s = frames / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    summary.warnings = reader.warnings + summary.warnings
    summary.frames_in = frames
    summary.delivered, summary.exited, summary.dropped = class_counts
    summary.snaplen_truncated = reader.snaplen_truncated
    summary.timestamps_clamped = reader.timestamps_clamped
    summary.capture_notes = list(reader.notes)
    if reader.cooked_frames:
        kinds = " and ".join(f"{lt} ({_COOKED_NAMES[lt]})" for lt in sorted(reader.cooked_linktypes))
        summary.capture_notes.append(
            f"{reader.cooked_frames} frames from a Linux cooked capture (link type {kinds}): Ethernet header "
            f"rebuilt (eth.src from the cooked header, eth.dst from its packet type and the topology's addresses)")
    if reader.timestamps_clamped:
        summary.warnings.append(f"{reader.path}: {reader.timestamps_clamped} frames have a timestamp before "
                                f"1970 or after 2106-02-07 06:28:15 UTC (what a pcap file holds); "
                                f"written clamped to that range")
    summary.outputs = {port_names[p]: port_counts[p] for p in sorted(range(n_ports), key=port_names.__getitem__)
                       if port_counts[p]}
    summary.files = {port_names[p]: name for p, name in sorted(ports.names.items(), key=lambda kv: port_names[kv[0]])}
    summary.files["drops"] = DROPS_FILE
    summary.output_kinds = {k: kind_counts[i] for i, k in enumerate(KINDS)}
    summary.generated = {k: kind_counts[KINDS.index(k)] for k in GENERATED_KINDS}
    summary.drops = _by_reason(dropped_counts, reasons, n_stages, "frames")
    summary.held = getattr(engine, "held", 0)
    summary.held_dropped = getattr(engine, "held_dropped", 0)
    summary.interrupted = interrupt.stop
    if split is not None:
        summary.tap = {"port": split.port, "sent": frames - (1 if reader.partial is not None and not interrupt.stop
                                                               else 0),
                       "received": split.received, "matched": split.matched, "mismatched": split.mismatched,
                       "unseen": split.unseen}
    if summary.interrupted:
        summary.warnings.append(f"interrupted: replayed the first {frames:,} frames of {reader.path}; the files "
                                f"hold what they produced")
    if reader.partial is not None and not interrupt.stop:
        entry = summary.drops.setdefault(Drop.MALFORMED.label, {"frames": 0, "stages": {}})
        entry["frames"] = int(entry["frames"]) + 1
        entry["stages"][CAPTURE_STAGE] = entry["stages"].get(CAPTURE_STAGE, 0) + 1
    summary.copy_drops = _by_reason(copy_counts, reasons, n_stages, "copies")
    summary.header_only = cut_frames - int(summary.drops.get(Drop.SNAPLEN_TRUNCATED.label, {}).get("frames", 0))
    if timed:
        engine.conntrack_sweep()  # expired by the last frame's time: counted as expired, not live
        stats = engine.conntrack_stats
        summary.conntrack = {"created": stats["created"], "expired": stats["expired"], "live": stats["live"],
                             "peak": stats["peak"], "limit": engine.ct_limit, "timeouts": engine.ct_timeouts}
    if tracer is not None:
        summary.traces = tracer.matched
    if tracer is not None and trace_frame is not None:
        if tracer.result is None and interrupt.stop:
            summary.trace = {"frame": trace_frame, "ingress": None, "state": "not replayed",
                             "text": f"frame {trace_frame} was not reached: the replay was interrupted",
                             "verdict": None}
        elif tracer.result is None:
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


_COOKED_NAMES = {113: "LINUX_SLL", 276: "LINUX_SLL2"}


class _DropDetails:
    """The drops.pcapng comment that follows an ACL drop's: the security group rule it needed.

    Rendered from the drop's rule and values (``BatchResult.drop_rule``,
    ``drop_a``, ``drop_b``) as the trace renders them; only batches with
    such a drop pay for it.
    """

    CODES = (int(Drop.ACL), int(Drop.ACL_INVALID))

    def __init__(self, engine) -> None:
        self.engine = engine
        self.renderer = None

    def of(self, result) -> Optional[List[bytes]]:
        reasons = result.drop_reason
        if not any(code in reasons for code in self.CODES):
            return None
        if self.renderer is None:
            from ovnsim.datapath.trace import TraceRenderer

            self.renderer = TraceRenderer(self.engine)
        out = []
        for i, reason in enumerate(reasons):
            if reason in self.CODES:
                step = self.renderer.step(result.drop_rule[i], result.drop_datapath[i], 0, result.drop_a[i],
                                          result.drop_b[i])
                out.append(step.detail.encode())
            else:
                out.append(b"")
        return out


def _port_mac(logical: LogicalTopology, port: str) -> Optional[str]:
    """The MAC of logical switch port ``port`` (its first address), if it has one."""
    from ovnsim.northd.tables import int_to_mac, parse_addresses

    for ls in logical.switches:
        for lsp in ls.ports:
            if lsp.name == port:
                for entry in lsp.addresses:
                    mac, _ = parse_addresses(entry)
                    if mac is not None:
                        return int_to_mac(mac)
    return None


def _drops_if_name(names: List[str], i: int) -> str:
    """The name drops.pcapng gives the capture's interface ``i``: its own, else ``drops``."""
    return (names[i] if i < len(names) else "") or "drops"


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
