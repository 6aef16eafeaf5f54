"""Streaming pcap and pcapng reading and writing, in constant memory.

Reading::

    from ovnsim.capture.pcap import open_capture
    with open_capture("pcaps/reference-mixed.pcap") as capture:
        for batch in capture:                      # up to 65,536 frames each
            for i in range(len(batch)):
                frame = batch.frame(i)             # bytes (convenience; the engines take the arrays)
    print(capture.records, capture.snaplen_truncated, capture.partial)

A :class:`Batch` is one buffer plus flat arrays (``offsets``, ``lengths``,
``origlens``, ``timestamps`` in nanoseconds since the epoch): exactly what an
engine's ``process_batch`` takes, so no Python object is made per frame.
The file is read in chunks (8 MiB by default); memory stays bounded by the
chunk and batch sizes whatever the size of the capture.

Formats read: classic pcap in either byte order with microsecond or
nanosecond timestamps; pcapng with any number of sections (either byte order
each) and interfaces, Enhanced, Simple and (obsolete) Packet Blocks,
``if_tsresol`` and ``if_tsoffset``; every other block is skipped by its
length.  Link types Ethernet (1) and Linux cooked (113, 276: the Ethernet
header is rebuilt in place, :mod:`ovnsim.capture.cooked`); frames carrying
their FCS (pcapng ``if_fcslen``, the pcap link-type F bit) are read without
it.  Timestamps are clamped into [0, :data:`MAX_TS_NS`] (what every file
ovnsim writes can hold) and counted.  ``-`` reads standard input.

Bad input raises :class:`CaptureError` (an :class:`~ovnsim.errors.OvnsimError`)
naming the file and, where it applies, the record number and byte offset:
an empty file, an unknown magic, a truncated file header, an unsupported
link type, a record whose captured length exceeds the snaplen or 256 KiB,
a pcapng block whose lengths disagree.  A capture cut short in its *last*
record (tcpdump killed) is not an error: the complete records are read and
the partial one is reported as :attr:`CaptureReader.partial`.

Writing: :class:`PcapWriter` (classic pcap, nanosecond, little-endian) and
:class:`PcapNgWriter` (one section, Ethernet interfaces, Enhanced Packet
Blocks with ``opt_comment`` options).  Both write frames one at a time or
pre-built records in bulk (``ovnsim.capture._pcapio``), always whole records:
a failed write (a full disk) cuts the file back to its last whole record and
raises :class:`CaptureWriteError` naming the file.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
from array import array
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ovnsim.capture.cooked import COOKED, rebuild_ethernet
from ovnsim.errors import OvnsimError

try:
    from ovnsim.capture import _pcapio
except ImportError:  # pragma: no cover - only in an unbuilt checkout
    _pcapio = None

__all__ = [
    "CaptureError", "CaptureWriteError", "Batch", "PartialRecord", "CaptureReader", "open_capture", "read_frames",
    "PcapWriter", "PcapNgWriter", "MAX_CAPLEN", "LINKTYPE_ETHERNET", "MAX_TS_NS", "clamp_timestamp",
]

#: What a capture read from standard input (path ``-``) is called in messages.
STDIN_NAME = "<stdin>"
#: The largest captured length taken as a real record; beyond it a record is corrupt.
MAX_CAPLEN = 256 * 1024
#: Frames per batch (at most) and bytes read per chunk.
DEFAULT_BATCH = 65536
DEFAULT_CHUNK = 8 * 1024 * 1024
#: The largest pcapng block that is buffered whole (section, interface and packet blocks).
MAX_BLOCK = 16 * 1024 * 1024
LINKTYPE_ETHERNET = 1
#: The latest timestamp ovnsim keeps (nanoseconds since the epoch): classic pcap's 32-bit
#: seconds end at 2106-02-07 06:28:15 UTC.  Earlier than the epoch or later than this is clamped.
MAX_TS_NS = 2**32 * 10**9 - 1
#: The largest |if_tsoffset| (seconds) taken: beyond it the offset in nanoseconds leaves 64 bits.
MAX_TSOFFSET_S = (2**63 - 1) // 10**9
#: Snaplen written into the headers of the files ovnsim writes.
WRITE_SNAPLEN = 262144

_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_IDB = 1
_PCAPNG_PACKET_BLOCKS = (2, 3, 6)  # OPB, SPB, EPB
_BLOCK_NAMES = {2: "packet block", 3: "simple packet block", 6: "enhanced packet block"}
_LINKTYPE_NAMES = {
    0: "NULL (BSD loopback)", 101: "RAW (IP)", 105: "IEEE802_11", 113: "LINUX_SLL", 127: "IEEE802_11_RADIOTAP",
    228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2",
}


class CaptureError(OvnsimError, ValueError):
    """A capture file ovnsim cannot read.

    ``path`` names the file, ``record`` (1-based frame number) and ``offset``
    (byte offset of the record or block) where the problem is, when it is in
    one record; ``str()`` is the one line the CLI prints.
    """

    def __init__(self, path: str, problem: str, *, record: Optional[int] = None, offset: Optional[int] = None):
        self.path = path
        self.problem = problem
        self.record = record
        self.offset = offset
        parts = ([f"record {record}"] if record is not None else []) + (
            [f"byte offset {offset}"] if offset is not None else [])
        where = f"{path}: {' at '.join(parts)}" if parts else path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class PartialRecord:
    """The final record of a capture that was cut short (what is there of it)."""

    number: int  #: the frame number it would have had (1-based)
    offset: int  #: byte offset of the record header / block
    have: int  #: bytes of the record (header included) present in the file
    need: Optional[int]  #: bytes the record needed (None: its header is incomplete too)
    data: bytes = b""  #: the captured packet bytes that are present
    timestamp: int = 0  #: nanoseconds since the epoch (0 when the header is cut)
    origlen: int = 0  #: original length from the header (0 when cut)
    interface: int = 0  #: its interface, as a Batch's ``ifaces`` numbers them

    def describe(self) -> str:
        """``"record 41 at byte offset 4242: 30 of 76 bytes"`` (the record's header is counted)."""
        need = f"{self.need}" if self.need is not None else "a complete header's"
        return f"record {self.number} at byte offset {self.offset}: {self.have} of {need} bytes"


class Batch:
    """Consecutive frames of a capture: one buffer and flat arrays, in file order.

    Frame ``i`` is ``data[offsets[i]:offsets[i] + lengths[i]]`` (the captured
    bytes), ``origlens[i]`` its length on the wire, ``timestamps[i]`` its time
    in nanoseconds since the epoch; ``first`` is the 1-based number of frame
    0 in the capture.  ``data`` belongs to this batch (a later batch never
    overwrites it), so batches may be kept.
    """

    __slots__ = ("data", "offsets", "lengths", "origlens", "timestamps", "first", "ifaces", "numbers")

    def __init__(self, data, offsets: array, lengths: array, origlens: array, timestamps: array, first: int,
                 ifaces: Optional[array] = None):
        self.data = data
        self.offsets = offsets
        self.lengths = lengths
        self.origlens = origlens
        self.timestamps = timestamps
        self.first = first
        #: each frame's interface: an index into the reader's ``interface_names`` (all 0 for classic pcap)
        self.ifaces = ifaces if ifaces is not None else array("i", bytes(4 * len(offsets)))
        #: each frame's 1-based number in the capture when the batch is not consecutive frames, else None
        self.numbers: Optional[array] = None

    def __len__(self) -> int:
        return len(self.offsets)

    def number(self, i: int) -> int:
        """The 1-based number of frame ``i`` in the capture."""
        return self.numbers[i] if self.numbers is not None else self.first + i

    def frame(self, i: int) -> bytes:
        """The captured bytes of frame ``i`` (a copy)."""
        start = self.offsets[i]
        return bytes(self.data[start:start + self.lengths[i]])


class _Stream:
    """A file read in chunks: ``buf[pos:end]`` is what is read and not consumed.

    Every refill starts a new buffer (the unconsumed tail copied to its
    front), so a :class:`Batch` holding the old one stays valid.  ``base`` is
    the file offset of ``buf[0]``.
    """

    def __init__(self, handle: BinaryIO, chunk: int):
        self.handle = handle
        self.chunk = chunk
        self.buf = bytearray()
        self.pos = self.end = self.base = 0
        self.eof = False
        # One system call at a time (readinto1): a buffered readinto would wait for a pipe to fill the chunk.
        self._read = getattr(handle, "readinto1", handle.readinto)

    @property
    def available(self) -> int:
        return self.end - self.pos

    @property
    def offset(self) -> int:
        """File offset of ``buf[pos]``."""
        return self.base + self.pos

    def fill(self, need: int) -> bool:
        """Make ``need`` bytes available from ``pos``; False when the file ends first."""
        have = self.end - self.pos
        if have >= need:
            return True
        if self.eof:
            return False
        new = bytearray(max(self.chunk, need))
        view = memoryview(new)
        view[:have] = memoryview(self.buf)[self.pos:self.end]
        got = have
        # Up to a chunk, but no waiting for more than ``need``: a pipe (a live capture on standard
        # input) delivers what it has, and its frames are replayed without waiting for a chunk's worth.
        while got < need:
            n = self._read(view[got:])
            if not n:
                self.eof = True
                break
            got += n
        view.release()
        self.base += self.pos
        self.buf, self.pos, self.end = new, 0, got
        return got >= need

    def skip(self, n: int) -> bool:
        """Consume ``n`` bytes without keeping them; False when the file ends first."""
        have = self.end - self.pos
        if n <= have:
            self.pos += n
            return True
        rest = n - have
        self.base += self.end
        self.buf, self.pos, self.end = bytearray(), 0, 0
        while rest > 0 and not self.eof:
            piece = self.handle.read(min(rest, self.chunk))
            if not piece:
                self.eof = True
                break
            rest -= len(piece)
            self.base += len(piece)
        return rest == 0


def _need_pcapio() -> None:
    if _pcapio is None:
        raise OvnsimError("ovnsim.capture._pcapio (the compiled capture reader) is not built: run `pip install -e .`")


class CaptureReader:
    """A pcap or pcapng file, read as a stream of :class:`Batch`\\ es.

    Opening reads and checks the file header (errors raise here, before any
    frame is read); iterating yields batches of at most ``batch_size``
    frames.  After (and during) iteration: ``records`` (complete records
    read), ``snaplen_truncated`` (records with caplen < origlen),
    ``timestamps_clamped`` (records whose time was outside 1970-01-01 ..
    :data:`MAX_TS_NS` and was clamped into it),
    ``partial`` (a :class:`PartialRecord` for a final record cut short, else
    None), ``warnings`` (one line each, e.g. a truncated final block that
    held no frame), ``bytes_read`` and ``size``.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, batch_size: int = DEFAULT_BATCH,
                 chunk_size: int = DEFAULT_CHUNK):
        _need_pcapio()
        if batch_size < 1 or chunk_size < 64:
            raise ValueError("batch_size must be >= 1 and chunk_size >= 64")
        path = os.fspath(path)
        #: ``-`` reads standard input (a pipe from ``tcpdump -w -``, say); errors then name ``<stdin>``.
        self.path = STDIN_NAME if path == "-" else path
        self.batch_size = batch_size
        self.records = 0
        self.snaplen_truncated = 0
        self.timestamps_clamped = 0
        self.partial: Optional[PartialRecord] = None
        self.warnings: List[str] = []
        self.notes: List[str] = []  #: what was done to the frames to replay them (an FCS stripped, ...)
        #: every interface of the capture, across sections, by the number a Batch's ``ifaces`` gives it:
        #: its pcapng if_name ("" when it has none; classic pcap has one, unnamed)
        self.interface_names: List[str] = [""]
        self._if_base = 0
        self._seen_section = False
        self._linktypes: List[int] = [LINKTYPE_ETHERNET]  # per interface, as interface_names
        #: Linux cooked frames rebuilt as Ethernet so far; ``cooked_resolver`` gives their eth.dst
        #: (a :class:`~ovnsim.capture.cooked.DestinationResolver`; None: unicast eth.dst 00:00:00:00:00:00).
        self.cooked_frames = 0
        self.cooked_linktypes: set = set()
        self.cooked_resolver = None
        self._fcslen = 0
        self.format = ""
        self.nanosecond = False
        self.snaplen = 0
        self.linktype = LINKTYPE_ETHERNET
        self._iterating = False
        if path == "-":
            self._owned = False
            self._handle: Optional[BinaryIO] = sys.stdin.buffer
        else:
            self._owned = True
            self._handle = open(self.path, "rb")
        try:
            info = os.fstat(self._handle.fileno())
            self.size = info.st_size if stat.S_ISREG(info.st_mode) else 0  # 0: unknown (a pipe)
            self._stream = _Stream(self._handle, chunk_size)
            self._open()
        except BaseException:
            self.close()
            raise

    # -- context manager ------------------------------------------------------------

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (iteration stops working; counters stay readable)."""
        if self._handle is not None:
            if self._owned:
                self._handle.close()
            self._handle = None

    @property
    def bytes_read(self) -> int:
        """File offset up to which records have been indexed."""
        return self._stream.offset

    def _error(self, problem: str, *, record: Optional[int] = None, offset: Optional[int] = None) -> CaptureError:
        return CaptureError(self.path, problem, record=record, offset=offset)

    # -- file header ----------------------------------------------------------------

    def _open(self) -> None:
        s = self._stream
        s.fill(24)
        if s.available == 0:
            raise self._error("empty file (0 bytes): not a pcap or pcapng capture")
        if s.available < 4:
            raise self._error(f"{s.available} bytes: too short to be a pcap or pcapng capture")
        magic = bytes(s.buf[0:4])
        classic = {
            b"\xd4\xc3\xb2\xa1": (False, False), b"\xa1\xb2\xc3\xd4": (True, False),
            b"\x4d\x3c\xb2\xa1": (False, True), b"\xa1\xb2\x3c\x4d": (True, True),
        }
        if magic in classic:
            self._big, self.nanosecond = classic[magic]
            self.format = "pcap"
            self._open_pcap()
        elif magic == b"\x0a\x0d\x0d\x0a":
            self.format = "pcapng"
            self._big = False
            self._interfaces: List[Tuple[int, int, int, int, int, int]] = []
            self._if_arrays = self._interface_arrays()
            if self._pcapng_other_block(first=True) is False:
                raise self._error("truncated pcapng section header block", offset=0)
            # The blocks before the first frame (interfaces, ...) are read now, so their errors come at open.
            s = self._stream
            while s.fill(8) and self._u32(s.pos) not in _PCAPNG_PACKET_BLOCKS:
                if self._pcapng_other_block() is False:
                    break
        elif magic in (b"\xa1\xb2\xcd\x34", b"\x34\xcd\xb2\xa1"):
            raise self._error("modified (Kuznetzov) pcap format is not supported: convert it with "
                              "`editcap -F pcap`")
        elif magic[:2] == b"\x1f\x8b":
            raise self._error("gzip-compressed capture: decompress it first")
        else:
            raise self._error(f"not a pcap or pcapng capture (magic 0x{magic.hex()})")

    def _open_pcap(self) -> None:
        s = self._stream
        if s.available < 24:
            raise self._error(f"truncated pcap file header: {s.available} of 24 bytes")
        order = ">" if self._big else "<"
        major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(order + "HHiIII", s.buf, 4)
        if major != 2:
            raise self._error(f"unsupported pcap version {major}.{minor} (expected 2.4)")
        # The link type field's top bits: 0x04000000 says bits 28-31 hold the FCS length in 16-bit words.
        self._fcslen = ((linktype >> 28) & 0xF) * 2 if linktype & 0x04000000 else 0
        if linktype & 0xF0000000 and not self._fcslen:
            raise self._error(f"link type field 0x{linktype:08x}: FCS length bits set without the F bit: "
                              f"corrupt file header")
        self._check_linktype(linktype & 0xFFFF)
        self._linktypes = [linktype & 0xFFFF]
        if self._fcslen:
            self.notes.append(f"frames end with a {self._fcslen}-byte FCS (file header): stripped before replay")
        self.snaplen = snaplen
        self._limit = snaplen if 0 < snaplen < MAX_CAPLEN else MAX_CAPLEN
        s.pos = 24

    def _check_linktype(self, linktype: int, where: str = "") -> None:
        if linktype != LINKTYPE_ETHERNET and linktype not in COOKED:
            name = _LINKTYPE_NAMES.get(linktype)
            label = f"{linktype} ({name})" if name else f"{linktype}"
            raise self._error(f"{where}link type {label} is not supported: ovnsim replays Ethernet "
                              f"(link type 1) and Linux cooked captures (113, 276)")

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        if self._iterating:
            raise RuntimeError("a CaptureReader can be iterated once")
        self._iterating = True
        if self._handle is None:
            raise ValueError("I/O on a closed CaptureReader")
        return self._iter_pcap() if self.format == "pcap" else self._iter_pcapng()

    def _arrays(self) -> Tuple[array, array, array, array]:
        n = self.batch_size
        return (array("q", bytes(8 * n)), array("i", bytes(4 * n)), array("I", bytes(4 * n)),
                array("q", bytes(8 * n)), array("i", bytes(4 * n)))

    def _batch(self, arrays, n: int) -> Batch:
        for a in arrays:
            del a[n:]
        batch = Batch(self._stream.buf, *arrays[:4], first=self.records + 1, ifaces=arrays[4])
        if any(lt in COOKED for lt in self._linktypes):
            self._uncook(batch)
        self.records += n
        return batch

    def _uncook(self, batch: Batch) -> None:
        """Rebuild the Ethernet header of the batch's Linux cooked frames (ovnsim.capture.cooked)."""
        kinds = self._linktypes
        indices = [i for i in range(len(batch)) if kinds[batch.ifaces[i]] in COOKED]
        if not indices:
            return
        linktypes = [kinds[batch.ifaces[i]] for i in indices]
        self.cooked_linktypes.update(linktypes)
        self.cooked_frames += rebuild_ethernet(batch.data, batch.offsets, batch.lengths, batch.origlens, indices,
                                               linktypes, self.cooked_resolver)

    def _iter_pcap(self) -> Iterator[Batch]:
        s = self._stream
        sub_ns = 1 if self.nanosecond else 1000
        order = ">" if self._big else "<"
        while True:
            arrays = self._arrays()
            n, pos, status, truncated, detail, clamped = _pcapio.index_pcap(
                s.buf, s.pos, s.end, self._big, sub_ns, self._limit, self._fcslen, *arrays[:4])
            s.pos = pos
            self.snaplen_truncated += truncated
            self.timestamps_clamped += clamped
            if n:
                yield self._batch(arrays, n)
            if status == _pcapio.FULL:
                continue
            if status == _pcapio.BAD_CAPLEN:
                limit = (f"the snaplen {self.snaplen}" if self._limit == self.snaplen
                         else f"{MAX_CAPLEN // 1024} KiB")
                raise self._error(f"captured length {detail} exceeds {limit}: corrupt record",
                                  record=self.records + 1, offset=s.offset)
            # NEED_MORE: the next record runs past the buffer
            need = 16 + struct.unpack_from(order + "I", s.buf, s.pos + 8)[0] if s.available >= 16 else 16
            if not s.fill(need):
                if s.available:
                    self._pcap_partial(order)
                return

    def _pcap_partial(self, order: str) -> None:
        s = self._stream
        have = s.available
        number = self.records + 1
        if have >= 16:
            sec, sub, caplen, origlen = struct.unpack_from(order + "IIII", s.buf, s.pos)
            stamp = self._clamp(sec * 10**9 + sub * (1 if self.nanosecond else 1000))
            self.partial = PartialRecord(number, s.offset, have, 16 + caplen, bytes(s.buf[s.pos + 16:s.end]),
                                         stamp, origlen)
        else:
            self.partial = PartialRecord(number, s.offset, have, None)
        s.pos = s.end

    # -- pcapng -----------------------------------------------------------------------

    def _interface_arrays(self):
        ifs = self._interfaces
        return (array("i", [i[0] for i in ifs]), array("I", [i[1] for i in ifs]), array("Q", [i[2] for i in ifs]),
                array("q", [i[3] for i in ifs]), array("I", [i[4] for i in ifs]), array("I", [i[5] for i in ifs]))

    def _iter_pcapng(self) -> Iterator[Batch]:
        s = self._stream
        while True:
            arrays = self._arrays()
            n, pos, status, truncated, detail, clamped = _pcapio.index_pcapng(
                s.buf, s.pos, s.end, self._big, *self._if_arrays, *arrays[:4], self._if_base, arrays[4])
            s.pos = pos
            self.snaplen_truncated += truncated
            self.timestamps_clamped += clamped
            if n:
                yield self._batch(arrays, n)
            if status == _pcapio.FULL:
                continue
            if status == _pcapio.OTHER_BLOCK:
                if self._pcapng_other_block() is False:
                    return
                continue
            if status == _pcapio.NEED_MORE:
                need = self._u32(s.pos + 4) if s.available >= 8 else 8
                if need > MAX_BLOCK:
                    raise self._error(f"block length {need} is over {MAX_BLOCK // (1024 * 1024)} MiB: "
                                      f"corrupt block", record=self.records + 1, offset=s.offset)
                if not s.fill(need):
                    self._pcapng_partial()
                    return
                continue
            raise self._pcapng_error(status, detail)

    def _u32(self, at: int) -> int:
        return struct.unpack_from(">I" if self._big else "<I", self._stream.buf, at)[0]

    def _pcapng_error(self, status: int, detail: int) -> CaptureError:
        s = self._stream
        kind = _BLOCK_NAMES.get(self._u32(s.pos), "block")
        record, offset = self.records + 1, s.offset
        if status == _pcapio.BAD_BLOCK_LEN:
            problem = f"{kind} length {detail} is too short or not a multiple of 4: corrupt block"
        elif status == _pcapio.BAD_TRAILER:
            problem = f"{kind}: trailing block length {detail} differs from the leading one: corrupt block"
        elif status == _pcapio.BAD_IFACE:
            problem = f"{kind} names interface {detail}, but the section describes {len(self._interfaces)}"
        elif status == _pcapio.NOT_ETHERNET:
            linktype = self._interfaces[detail][0]
            name = _LINKTYPE_NAMES.get(linktype)
            problem = (f"interface {detail} has link type {linktype}{f' ({name})' if name else ''}, which is not "
                       f"supported: ovnsim replays Ethernet (link type 1) and Linux cooked captures (113, 276)")
        elif status == _pcapio.CAPLEN_OVER_BLOCK:
            problem = f"{kind}: captured length {detail} runs past the end of the block: corrupt block"
        elif status == _pcapio.BAD_CAPLEN:
            iface = self._u32(s.pos + 8) if self._u32(s.pos) == 6 else 0
            snaplen = self._interfaces[iface][4] if iface < len(self._interfaces) else 0
            limit = f"the snaplen {snaplen}" if 0 < snaplen < MAX_CAPLEN else f"{MAX_CAPLEN // 1024} KiB"
            problem = f"captured length {detail} exceeds {limit}: corrupt record"
        else:  # pragma: no cover - every status is named above
            problem = f"unexpected reader status {status}"
        return self._error(problem, record=record, offset=offset)

    def _pcapng_other_block(self, first: bool = False) -> Optional[bool]:
        """Read the non-packet block at ``pos``: a section header, an interface, or one to skip.

        Returns False when the file ends inside it (recorded as a warning).
        """
        s = self._stream
        if not s.fill(12):
            self._pcapng_partial()
            return False
        offset = s.offset
        if bytes(s.buf[s.pos:s.pos + 4]) == b"\x0a\x0d\x0d\x0a":
            bom = bytes(s.buf[s.pos + 8:s.pos + 12])
            if bom == b"\x1a\x2b\x3c\x4d":
                big = True
            elif bom == b"\x4d\x3c\x2b\x1a":
                big = False
            else:
                raise self._error(f"section header block with a bad byte-order magic 0x{bom.hex()}", offset=offset)
            self._big = big
            length = self._u32(s.pos + 4)
            if length < 28 or length % 4:
                raise self._error(f"section header block length {length} is too short or not a multiple of 4",
                                  offset=offset)
            body = self._whole_block(length, "section header block", first)
            if body is None:
                return False
            major, minor = struct.unpack_from(">HH" if big else "<HH", body, 12)
            if major != 1:
                raise self._error(f"unsupported pcapng version {major}.{minor} (expected 1.0)", offset=offset)
            self._interfaces = []
            self._if_arrays = self._interface_arrays()
            if self._seen_section:
                self._if_base = len(self.interface_names)
            else:  # the first section's interfaces replace the classic-pcap placeholder
                self._seen_section = True
                self.interface_names, self._linktypes, self._if_base = [], [], 0
            return True
        btype = self._u32(s.pos)
        length = self._u32(s.pos + 4)
        if length < 12 or length % 4:
            raise self._error(f"block of type 0x{btype:08x}: length {length} is too short or not a multiple of 4",
                              offset=offset)
        if btype == _PCAPNG_IDB:
            if length < 20:
                raise self._error(f"interface description block length {length} is too short", offset=offset)
            body = self._whole_block(length, "interface description block")
            if body is None:
                return False
            self._read_idb(body, offset)
            return True
        # Any other block (statistics, name resolution, decryption secrets, custom, unknown): skip it.
        if length <= s.available:
            self._check_trailer(length, offset)
            s.pos += length
            return True
        if not s.skip(length - 4) or not s.fill(4):
            self.warnings.append(f"{self.path}: the final block (type 0x{btype:08x}, at byte offset {offset}) is "
                                 f"cut short; it held no frame")
            s.pos = s.end
            return False
        if self._u32(s.pos) != length:
            raise self._error(f"block of type 0x{btype:08x}: trailing block length differs from the leading one",
                              offset=offset)
        s.pos += 4
        return True

    def _whole_block(self, length: int, name: str, first: bool = False) -> Optional[bytes]:
        s = self._stream
        offset = s.offset
        if length > MAX_BLOCK:
            raise self._error(f"{name} length {length} is over {MAX_BLOCK // (1024 * 1024)} MiB: corrupt block",
                              offset=offset)
        if not s.fill(length):
            if first:
                raise self._error(f"truncated {name}: {s.available} of {length} bytes", offset=offset)
            self.warnings.append(f"{self.path}: the final {name} (at byte offset {offset}) is cut short: "
                                 f"{s.available} of {length} bytes")
            s.pos = s.end
            return None
        self._check_trailer(length, offset)
        body = bytes(s.buf[s.pos:s.pos + length])
        s.pos += length
        return body

    def _check_trailer(self, length: int, offset: int) -> None:
        trailer = self._u32(self._stream.pos + length - 4)
        if trailer != length:
            raise self._error(f"trailing block length {trailer} differs from the leading one {length}: "
                              f"corrupt block", offset=offset)

    def _read_idb(self, body: bytes, offset: int) -> None:
        order = ">" if self._big else "<"
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 8)
        per_sec, offset_ns, fcslen, name = 10**6, 0, 0, ""
        at, end = 16, len(body) - 4
        while at + 4 <= end:
            code, size = struct.unpack_from(order + "HH", body, at)
            if code == 0:
                break
            value = body[at + 4:at + 4 + size]
            if len(value) < size:
                raise self._error("interface description block: an option runs past the block", offset=offset)
            if code == 9 and size >= 1:  # if_tsresol
                resol = value[0]
                per_sec = 2 ** (resol & 0x7F) if resol & 0x80 else 10 ** resol
                if per_sec >= 2**64:
                    raise self._error(f"interface {len(self._interfaces)}: if_tsresol {resol:#x} is finer than "
                                      f"ovnsim can represent", offset=offset)
            elif code == 2:  # if_name
                name = value.decode("utf-8", "replace")
            elif code == 13 and size >= 1:  # if_fcslen, bytes
                fcslen = value[0]
            elif code == 14 and size >= 8:  # if_tsoffset, seconds
                seconds = struct.unpack_from(order + "q", value)[0]
                if abs(seconds) > MAX_TSOFFSET_S:
                    raise self._error(f"interface {len(self._interfaces)}: if_tsoffset {seconds} s is beyond "
                                      f"+/-{MAX_TSOFFSET_S:,} s (what 64-bit nanoseconds hold): "
                                      f"corrupt interface description block", offset=offset)
                offset_ns = seconds * 10**9
            at += 4 + size + (-size % 4)
        limit = snaplen if 0 < snaplen < MAX_CAPLEN else MAX_CAPLEN
        if fcslen:
            label = f"interface {len(self._interfaces)}" + (f" ({name})" if name else "")
            self.notes.append(f"{label}: frames end with a {fcslen}-byte FCS (if_fcslen): stripped before replay")
        self._interfaces.append((linktype, limit, per_sec, offset_ns, snaplen, fcslen))
        self.interface_names.append(name)
        self._linktypes.append(linktype)
        self._if_arrays = self._interface_arrays()

    def _clamp(self, stamp: int) -> int:
        """A timestamp clamped into [0, MAX_TS_NS] as the C indexers do (and counted when it is)."""
        clamped = clamp_timestamp(stamp)
        if clamped != stamp:
            self.timestamps_clamped += 1
        return clamped

    def _pcapng_partial(self) -> None:
        s = self._stream
        have = s.available
        offset = s.offset
        if have >= 4 and self._u32(s.pos) in _PCAPNG_PACKET_BLOCKS:
            btype = self._u32(s.pos)
            need = self._u32(s.pos + 4) if have >= 8 else None
            data, stamp, origlen, interface = b"", 0, 0, self._if_base
            header = 12 if btype == 3 else 28
            if have >= header:
                if btype == 3:
                    origlen = self._u32(s.pos + 8)
                    caplen = origlen
                else:
                    order = ">" if self._big else "<"
                    hi, lo, caplen, origlen = struct.unpack_from(order + "IIII", s.buf, s.pos + 12)
                    iface = struct.unpack_from(order + ("I" if btype == 6 else "H"), s.buf, s.pos + 8)[0]
                    if iface < len(self._interfaces):
                        interface = self._if_base + iface
                        _lt, _limit, per_sec, off_ns, _snap, _fcs = self._interfaces[iface]
                        units = (hi << 32) | lo
                        stamp = self._clamp(units // per_sec * 10**9 + units % per_sec * 10**9 // per_sec + off_ns)
                data = bytes(s.buf[s.pos + header:min(s.end, s.pos + header + caplen)])
            self.partial = PartialRecord(self.records + 1, offset, have, need, data, stamp, origlen, interface)
        elif have:
            self.warnings.append(f"{self.path}: {have} bytes at byte offset {offset} are the start of a block that "
                                 f"is cut short; it held no frame")
        s.pos = s.end


def clamp_timestamp(stamp_ns: int) -> int:
    """``stamp_ns`` clamped into [0, :data:`MAX_TS_NS`], the range every file ovnsim writes can hold."""
    return min(max(stamp_ns, 0), MAX_TS_NS)


def open_capture(path: Union[str, "os.PathLike[str]"], **kwargs) -> CaptureReader:
    """Open a pcap or pcapng capture for streaming (see :class:`CaptureReader`)."""
    return CaptureReader(path, **kwargs)


def read_frames(path: Union[str, "os.PathLike[str]"]) -> Iterator[Tuple[int, bytes, int]]:
    """Every complete frame of a capture as ``(timestamp_ns, captured bytes, original length)``.

    One Python tuple per frame: for tests and small captures; replay uses
    the batches.
    """
    with open_capture(path) as capture:
        for batch in capture:
            for i in range(len(batch)):
                yield batch.timestamps[i], batch.frame(i), batch.origlens[i]


# ------------------------------------------------------------------------------
# Writers
# ------------------------------------------------------------------------------


class CaptureWriteError(OvnsimError):
    """Writing an output capture failed (a full disk, ...): ``str()`` names the file and the cause.

    The file is left valid: cut back to its last complete record (a file
    whose header could not be written is removed).
    """

    def __init__(self, path: str, err: OSError):
        super().__init__(f"{path}: cannot write: {err.strerror or err}")
        self.path = path
        self.errno = err.errno


#: The write system call (a seam for tests that simulate a full disk).
_os_write = os.write


class _Writer:
    """A capture file written in whole records, so a failed write never leaves half of one.

    Small writes gather in a buffer of ``buffering`` bytes; a bulk write
    (:meth:`write_raw`) goes out at once.  Each flush writes whole records;
    when the system refuses (ENOSPC, EIO, ...) the file is truncated back to
    the end of the last record written in full and :class:`CaptureWriteError`
    is raised, naming the file.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], header: bytes, append: bool, buffering: int):
        self.path = os.fspath(path)
        self._fd: Optional[int] = os.open(self.path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append
                                                                                   else os.O_TRUNC), 0o666)
        self._pending = bytearray()
        self._limit = buffering
        self._committed = os.fstat(self._fd).st_size if append else 0
        if not append:
            try:
                self._write_now(header)  # the header is on disk from the start
            except CaptureWriteError:
                self._abandon()
                os.unlink(self.path)
                raise

    def _write_now(self, data) -> None:
        """Write ``data`` (whole records) now, or cut the file back to its last whole record and raise."""
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += _os_write(self._fd, view[done:])
        except OSError as err:
            try:
                os.ftruncate(self._fd, self._committed)
            except OSError:  # pragma: no cover - truncating to a smaller size does not need space
                pass
            raise CaptureWriteError(self.path, err) from None
        finally:
            view.release()
        self._committed += done

    def _put(self, data) -> None:
        self._pending += data
        if len(self._pending) >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered."""
        if self._pending:
            pending, self._pending = self._pending, bytearray()
            self._write_now(pending)

    def write_raw(self, blob) -> None:
        """Append pre-built whole records or blocks (e.g. from ``ovnsim.capture._pcapio``) as they are."""
        if len(blob) < self._limit - len(self._pending):
            self._put(blob)
            return
        self.flush()
        self._write_now(blob)

    def _abandon(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Write what is buffered and close the file (closed even when that write fails)."""
        if self._fd is not None:
            try:
                self.flush()
            finally:
                self._abandon()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # A writer dropped without close() (an error path) gives its descriptor back; what was
        # buffered is lost, and the file still ends on a whole record.
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None


class PcapWriter(_Writer):
    """Classic pcap: little-endian, nanosecond timestamps, link type Ethernet, snaplen 262144.

    ``append=True`` reopens a file this class wrote and adds records (no
    header); ``buffering`` is the write buffer in bytes.
    """

    #: The 24-byte file header every file starts with.
    HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, WRITE_SNAPLEN, LINKTYPE_ETHERNET)

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, append: bool = False, buffering: int = 65536):
        super().__init__(path, self.HEADER, append, buffering)

    def write(self, frame: bytes, timestamp_ns: int = 0, origlen: Optional[int] = None) -> None:
        """Append one frame."""
        frame = bytes(frame)
        sec, nsec = divmod(clamp_timestamp(timestamp_ns), 10**9)
        self._put(struct.pack("<IIII", sec, nsec, len(frame), len(frame) if origlen is None else origlen) + frame)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


class PcapNgWriter(_Writer):
    """pcapng: one little-endian section, one Ethernet interface with nanosecond timestamps.

    Frames are Enhanced Packet Blocks; each may carry ``opt_comment``
    options, which Wireshark shows as packet comments.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, if_name: str = "ovnsim",
                 application: str = "ovnsim"):
        shb = _block(_PCAPNG_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                     + _option(4, application.encode()) + b"\0\0\0\0")
        super().__init__(path, shb + self.idb(if_name), False, 1024 * 1024)

    @staticmethod
    def idb(if_name: str) -> bytes:
        """An Interface Description Block: Ethernet, nanosecond timestamps, named ``if_name``."""
        return _block(_PCAPNG_IDB, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, WRITE_SNAPLEN)
                      + _option(2, if_name.encode()) + _option(9, b"\x09") + b"\0\0\0\0")

    def add_interface(self, if_name: str) -> None:
        """Describe one more interface (the next id: 1, 2, ...) for the blocks that follow."""
        self._put(self.idb(if_name))

    @staticmethod
    def epb(frame: bytes, timestamp_ns: int = 0, origlen: Optional[int] = None,
            comments: Iterable[str] = (), interface: int = 0) -> bytes:
        """One Enhanced Packet Block on ``interface`` (as bytes)."""
        frame = bytes(frame)
        stamp = clamp_timestamp(timestamp_ns)
        body = struct.pack("<IIIII", interface, stamp >> 32, stamp & 0xFFFFFFFF, len(frame),
                           len(frame) if origlen is None else origlen)
        body += frame + b"\0" * (-len(frame) % 4)
        options = b"".join(_option(1, c.encode()) for c in comments)
        if options:
            body += options + b"\0\0\0\0"
        return _block(6, body)

    def write(self, frame: bytes, timestamp_ns: int = 0, origlen: Optional[int] = None,
              comments: Sequence[str] = (), interface: int = 0) -> None:
        """Append one frame as an Enhanced Packet Block with its comments."""
        self._put(self.epb(frame, timestamp_ns, origlen, comments, interface))
