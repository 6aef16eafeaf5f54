"""Capture I/O (ovnsim.capture.pcap): readers and writers against scapy and hand-built files, bad input, memory.

The hand-built pcapng files come from the small block builder below (``ng_*``),
written from the pcapng specification and independent of ovnsim's writer, so
the reader is checked against the format rather than against itself.
"""

from __future__ import annotations

import struct
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import List, Optional, Sequence

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import EDecimal, PcapNgReader, PcapNgWriter as ScapyPcapNgWriter, PcapWriter as ScapyPcapWriter
from scapy.utils import RawPcapReader, rdpcap

from ovnsim.errors import OvnsimError
from ovnsim.capture.pcap import (
    MAX_CAPLEN,
    MAX_TS_NS,
    CaptureError,
    PcapNgWriter,
    PcapWriter,
    open_capture,
    read_frames,
)

T0 = 1_700_000_000


def frames(n: int = 20) -> List[bytes]:
    """Distinct frames of different lengths (60 .. 60 + 17 * n bytes)."""
    out = []
    for i in range(n):
        pkt = Ether(src="fa:16:3e:00:00:11", dst="fa:16:3e:00:00:12") / IP(src="10.0.0.11", dst="10.0.0.12", id=i) \
            / UDP(sport=1000 + i, dport=53) / (b"x" * (17 * i))
        raw = bytes(pkt)
        out.append(raw + b"\0" * max(0, 60 - len(raw)))
    return out


# ---------------------------------------------------------------------------
# hand-built files
# ---------------------------------------------------------------------------


def pcap_header(order: str = "<", nano: bool = False, snaplen: int = 65535, linktype: int = 1,
                major: int = 2) -> bytes:
    return struct.pack(order + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, major, 4, 0, 0, snaplen, linktype)


def pcap_record(frame: bytes, sec: int = T0, sub: int = 0, order: str = "<", origlen: Optional[int] = None,
                caplen: Optional[int] = None) -> bytes:
    return struct.pack(order + "IIII", sec, sub, len(frame) if caplen is None else caplen,
                       len(frame) if origlen is None else origlen) + frame


def ng_option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def ng_block(order: str, btype: int, body: bytes, trailer: Optional[int] = None) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length if trailer is None
                                                                          else trailer)


def ng_shb(order: str = "<", major: int = 1, options: bytes = b"") -> bytes:
    return ng_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1) + options)


def ng_idb(order: str = "<", linktype: int = 1, snaplen: int = 0, tsresol: Optional[int] = None,
           tsoffset: Optional[int] = None) -> bytes:
    options = b""
    if tsresol is not None:
        options += ng_option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        options += ng_option(order, 14, struct.pack(order + "q", tsoffset))
    if options:
        options += b"\0\0\0\0"
    return ng_block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + options)


def ng_epb(order: str, frame: bytes, units: int, iface: int = 0, origlen: Optional[int] = None,
           caplen: Optional[int] = None, comments: Sequence[bytes] = ()) -> bytes:
    body = struct.pack(order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF,
                       len(frame) if caplen is None else caplen, len(frame) if origlen is None else origlen)
    body += frame + b"\0" * (-len(frame) % 4)
    if comments:
        body += b"".join(ng_option(order, 1, c) for c in comments) + b"\0\0\0\0"
    return ng_block(order, 6, body)


def ng_spb(order: str, frame: bytes) -> bytes:
    return ng_block(order, 3, struct.pack(order + "I", len(frame)) + frame)


def ng_opb(order: str, frame: bytes, units: int, iface: int = 0) -> bytes:
    body = struct.pack(order + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame))
    return ng_block(order, 2, body + frame)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(path: Path, **kwargs):
    with open_capture(path, **kwargs) as capture:
        got = [(b.timestamps[i], b.frame(i), b.origlens[i]) for b in capture for i in range(len(b))]
    return got, capture


# ---------------------------------------------------------------------------
# classic pcap
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("nano", [False, True])
def test_pcap_written_by_scapy_round_trips(tmp_path, nano):
    pkts = [Ether(f) for f in frames()]
    for i, pkt in enumerate(pkts):
        pkt.time = EDecimal(T0) + EDecimal(Decimal(i * 1_234_567) / 10**9)
    path = tmp_path / "s.pcap"
    writer = ScapyPcapWriter(str(path), linktype=1, nano=nano, sync=False)
    for pkt in pkts:
        writer.write(pkt)
    writer.close()
    got, capture = read_all(path)
    assert capture.format == "pcap" and capture.nanosecond == nano
    assert [g[1] for g in got] == [bytes(p) for p in pkts]
    # scapy rounds to the file's resolution
    assert [g[0] for g in got] == [T0 * 10**9 + (i * 1_234_567 if nano else round(i * 1_234_567 / 1000) * 1000)
                                   for i in range(len(pkts))]
    assert capture.records == len(pkts) and capture.partial is None and capture.snaplen_truncated == 0


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_both_byte_orders_and_resolutions(tmp_path, order, nano):
    fs = frames(7)
    data = pcap_header(order, nano) + b"".join(pcap_record(f, T0 + i, 999 * i, order) for i, f in enumerate(fs))
    got, _ = read_all(write(tmp_path, "x.pcap", data))
    assert [g[1] for g in got] == fs
    assert [g[0] for g in got] == [(T0 + i) * 10**9 + 999 * i * (1 if nano else 1000) for i in range(7)]


def test_scapy_big_endian_pcap(tmp_path):
    pkts = [Ether(f) for f in frames(5)]
    for i, pkt in enumerate(pkts):
        pkt.time = T0 + i
    path = tmp_path / "be.pcap"
    writer = ScapyPcapWriter(str(path), linktype=1, endianness=">", sync=False)
    for pkt in pkts:
        writer.write(pkt)
    writer.close()
    assert path.read_bytes()[:4] == b"\xa1\xb2\xc3\xd4"
    got, _ = read_all(path)
    assert [g[1] for g in got] == [bytes(p) for p in pkts]


def test_small_batches_and_chunks_give_the_same_frames(tmp_path):
    """Records straddle chunk boundaries; batches are numbered consecutively."""
    fs = frames(200)
    path = write(tmp_path, "x.pcap", pcap_header() + b"".join(pcap_record(f, T0, i) for i, f in enumerate(fs)))
    with open_capture(path, batch_size=7, chunk_size=300) as capture:
        batches = list(capture)
    assert all(len(b) <= 7 for b in batches)
    assert [b.first for b in batches] == [1 + sum(len(x) for x in batches[:k]) for k in range(len(batches))]
    assert [b.frame(i) for b in batches for i in range(len(b))] == fs
    # a batch kept from earlier still holds its own frames
    assert batches[0].frame(0) == fs[0]


def test_snaplen_truncated_records_are_read_as_captured(tmp_path):
    fs = frames(4)
    data = pcap_header(snaplen=64) + b"".join(pcap_record(f[:64], origlen=len(f)) for f in fs)
    got, capture = read_all(write(tmp_path, "s.pcap", data))
    assert [g[1] for g in got] == [f[:64] for f in fs]
    assert [g[2] for g in got] == [len(f) for f in fs]
    assert capture.snaplen_truncated == sum(len(f) > 64 for f in fs) > 0


def test_sample_capture_matches_scapy():
    path = Path(__file__).resolve().parent.parent / "pcaps" / "reference-mixed.pcap"
    ours = list(read_frames(path))
    with RawPcapReader(str(path)) as reader:
        theirs = [(data, meta) for data, meta in reader]
    assert [o[1] for o in ours] == [t[0] for t in theirs]
    assert [o[0] for o in ours] == [(m.sec * 10**6 + m.usec) * 1000 for _d, m in theirs]


# ---------------------------------------------------------------------------
# pcapng
# ---------------------------------------------------------------------------


def test_pcapng_written_by_scapy_round_trips(tmp_path):
    """scapy's PcapNgWriter: little-endian, microseconds, one IDB per interface name."""
    pkts = [Ether(f) for f in frames(12)]
    path = tmp_path / "s.pcapng"
    writer = ScapyPcapNgWriter(str(path))
    for i, pkt in enumerate(pkts):
        pkt.time = EDecimal(T0) + EDecimal(Decimal(i) / 1000)
        pkt.sniffed_on = "eth0" if i % 2 else "eth1"
        pkt.comments = [b"frame %d" % i]
        writer.write(pkt)
    writer.close()
    got, capture = read_all(path)
    assert capture.format == "pcapng"
    assert [g[1] for g in got] == [bytes(p) for p in pkts]
    assert [g[0] for g in got] == [T0 * 10**9 + i * 10**6 for i in range(12)]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_blocks_resolutions_and_sections(tmp_path, order):
    """EPB, SPB, OPB; if_tsresol 10^-9, 2^-10, 10^-3; if_tsoffset; unknown blocks skipped; a second
    section in the other byte order resets the interfaces."""
    fs = frames(8)
    other = ">" if order == "<" else "<"
    data = (ng_shb(order, options=ng_option(order, 4, b"test") + b"\0\0\0\0")
            + ng_idb(order, snaplen=0)  # 0: default microseconds
            + ng_idb(order, tsresol=9)  # nanoseconds
            + ng_idb(order, tsresol=0x80 | 10, tsoffset=100)  # 2^-10 s, +100 s
            + ng_epb(order, fs[0], (T0 * 10**6) + 5, iface=0)
            + ng_block(order, 5, struct.pack(order + "III", 0, 0, 0))  # ISB: skipped
            + ng_epb(order, fs[1], T0 * 10**9 + 7, iface=1)
            + ng_block(order, 0x0BAD, b"custom block, skipped" * 10)
            + ng_epb(order, fs[2], (T0 << 10) + 512, iface=2)
            + ng_opb(order, fs[3], T0 * 10**6 + 9, iface=0)
            + ng_block(order, 4, b"\0\0\0\0")  # NRB: skipped
            + ng_spb(order, fs[4])
            + ng_shb(other) + ng_idb(other, tsresol=3)  # milliseconds
            + ng_epb(other, fs[5], T0 * 1000 + 1)
            + ng_epb(other, fs[6], T0 * 1000 + 2)
            + ng_spb(other, fs[7]))
    got, capture = read_all(write(tmp_path, "x.pcapng", data))
    assert [g[1] for g in got] == fs
    assert [g[0] for g in got] == [
        T0 * 10**9 + 5000, T0 * 10**9 + 7, (T0 + 100) * 10**9 + 500_000_000, T0 * 10**9 + 9000, 0,
        T0 * 10**9 + 1_000_000, T0 * 10**9 + 2_000_000, 0]
    assert capture.records == 8 and not capture.warnings


@pytest.mark.parametrize("chunk", [64, 4096, 1 << 20])
def test_pcapng_unknown_blocks_larger_than_a_chunk_are_skipped(tmp_path, chunk):
    """A 3 MB custom block between frames is skipped by its length, whatever the chunk size."""
    fs = frames(3)
    data = (ng_shb() + ng_idb() + ng_epb("<", fs[0], 1) + ng_block("<", 0x40000BAD, b"\x5a" * (3 << 20))
            + ng_epb("<", fs[1], 2) + ng_block("<", 0x0BAD, b"small") + ng_epb("<", fs[2], 3))
    got, capture = read_all(write(tmp_path, "x.pcapng", data), chunk_size=chunk)
    assert [g[1] for g in got] == fs and not capture.warnings


def test_pcapng_skipped_block_with_a_bad_trailer(tmp_path):
    data = ng_shb() + ng_idb() + ng_block("<", 0x0BAD, b"\0" * 5000, trailer=12) + ng_epb("<", frames(1)[0], 1)
    with pytest.raises(CaptureError, match="trailing block length"):
        read_all(write(tmp_path, "x.pcapng", data), chunk_size=1024)


def test_pcapng_spb_bounded_by_interface_snaplen(tmp_path):
    frame = frames(5)[4]
    data = ng_shb() + ng_idb(snaplen=50) + ng_spb("<", frame)
    got, capture = read_all(write(tmp_path, "x.pcapng", data))
    assert got == [(0, frame[:50], len(frame))]
    assert capture.snaplen_truncated == 1


def test_pcapng_with_scapy_comments_read_back_by_scapy(tmp_path):
    """ovnsim's PcapNgWriter: scapy reads frames, nanosecond times and comments."""
    fs = frames(3)
    path = tmp_path / "w.pcapng"
    with PcapNgWriter(path, if_name="drops") as writer:
        writer.write(fs[0], T0 * 10**9 + 123_456_789, comments=["port-security at neutron-web ls_in_apply_port_sec"])
        writer.write(fs[1], T0 * 10**9, origlen=1500, comments=["a", "second comment"])
        writer.write(fs[2])
    with PcapNgReader(str(path)) as reader:
        got = list(reader)
    assert [bytes(p) for p in got] == fs
    assert got[0].time == EDecimal(T0) + EDecimal(Decimal(123_456_789) / 10**9)
    assert got[0].comments == [b"port-security at neutron-web ls_in_apply_port_sec"]
    assert got[1].comments == [b"a", b"second comment"] and got[1].wirelen == 1500
    ours, _ = read_all(path)
    assert [o[1] for o in ours] == fs and ours[1][2] == 1500


def test_pcap_writer_read_back_by_scapy(tmp_path):
    fs = frames(5)
    path = tmp_path / "w.pcap"
    with PcapWriter(path) as writer:
        for i, f in enumerate(fs):
            writer.write(f, T0 * 10**9 + i * 1001)
    got = rdpcap(str(path))
    assert [bytes(p) for p in got] == fs
    assert [p.time for p in got] == [EDecimal(T0) + EDecimal(Decimal(i * 1001) / 10**9) for i in range(5)]
    ours, _ = read_all(path)
    assert [o[0] for o in ours] == [T0 * 10**9 + i * 1001 for i in range(5)]
    with PcapWriter(path, append=True) as writer:
        writer.write(fs[0], 5)
    assert len(rdpcap(str(path))) == 6


# ---------------------------------------------------------------------------
# truncated files: the last record cut short is not an error
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [3, 16, 16 + 20])
def test_pcap_cut_short_in_the_last_record(tmp_path, keep):
    fs = frames(5)
    whole = pcap_header() + b"".join(pcap_record(f, T0, i) for i, f in enumerate(fs))
    last = 16 + len(fs[-1])
    data = whole[:len(whole) - last + keep]
    got, capture = read_all(write(tmp_path, "cut.pcap", data))
    assert [g[1] for g in got] == fs[:-1]
    partial = capture.partial
    assert partial is not None and partial.number == 5 and partial.offset == len(whole) - last
    assert partial.have == keep
    assert partial.need == (16 + len(fs[-1]) if keep >= 16 else None)
    assert partial.data == fs[-1][:max(0, keep - 16)]
    assert "record 5 at byte offset" in partial.describe()


def test_pcapng_cut_short_in_the_last_packet_block(tmp_path):
    fs = frames(3)
    whole = ng_shb() + ng_idb() + b"".join(ng_epb("<", f, T0 * 10**6 + i) for i, f in enumerate(fs))
    data = whole[:-10]
    got, capture = read_all(write(tmp_path, "cut.pcapng", data))
    assert [g[1] for g in got] == fs[:-1]
    assert capture.partial is not None and capture.partial.number == 3
    assert capture.partial.data == fs[-1][:len(capture.partial.data)] and capture.partial.data
    assert capture.partial.timestamp == T0 * 10**9 + 2000


def test_pcapng_cut_short_in_a_final_non_packet_block(tmp_path):
    fs = frames(2)
    data = ng_shb() + ng_idb() + b"".join(ng_epb("<", f, 0) for f in fs) + ng_block("<", 5, b"\0" * 40)[:-8]
    got, capture = read_all(write(tmp_path, "cut.pcapng", data))
    assert len(got) == 2 and capture.partial is None
    assert len(capture.warnings) == 1 and "held no frame" in capture.warnings[0]


# ---------------------------------------------------------------------------
# bad input: one clear error naming the file (and record, offset)
# ---------------------------------------------------------------------------

BIG_FRAME = b"\0" * (MAX_CAPLEN + 4)

BAD_FILES = {
    "empty": (b"", "empty file"),
    "short": (b"\xd4\xc3", "too short to be a pcap or pcapng capture"),
    "bad-magic": (b"GIF89a" + b"\0" * 40, "not a pcap or pcapng capture (magic 0x47494638)"),
    "gzip": (b"\x1f\x8b\x08\x00" + b"\0" * 30, "gzip-compressed"),
    "kuznetzov": (b"\x34\xcd\xb2\xa1" + b"\0" * 30, "Kuznetzov"),
    "truncated-header": (pcap_header()[:10], "truncated pcap file header: 10 of 24 bytes"),
    "version": (pcap_header(major=3), "unsupported pcap version 3.4"),
    "linktype": (pcap_header(linktype=228) + pcap_record(b"\0" * 20), "link type 228 (IPV4) is not supported"),
    "fcs": (pcap_header(linktype=0x10000001), "FCS length bits set without the F bit"),
    "caplen-over-snaplen": (pcap_header(snaplen=96) + pcap_record(frames(1)[0]) + pcap_record(b"\0" * 100),
                            "record 2 at byte offset 100: captured length 100 exceeds the snaplen 96"),
    "caplen-over-256k": (pcap_header(snaplen=1 << 20) + pcap_record(BIG_FRAME),
                         f"record 1 at byte offset 24: captured length {MAX_CAPLEN + 4} exceeds 256 KiB"),
    "corrupt-caplen-at-eof": (pcap_header() + pcap_record(b"", caplen=0x7FFFFFF0), "captured length 2147483632"),
    "ng-bad-bom": (ng_shb()[:8] + b"\x11\x22\x33\x44" + ng_shb()[12:], "bad byte-order magic 0x11223344"),
    "ng-truncated-shb": (ng_shb()[:20], "truncated section header block"),
    "ng-version": (ng_shb(major=2), "unsupported pcapng version 2.0"),
    "ng-block-length": (ng_shb() + ng_idb() + struct.pack("<II", 6, 30) + b"\0" * 30, "length 30"),
    "ng-trailer": (ng_shb() + ng_idb() + ng_block("<", 6, struct.pack("<IIIII", 0, 0, 0, 4, 4) + b"abcd",
                                                  trailer=99), "trailing block length 99"),
    "ng-no-interface": (ng_shb() + ng_epb("<", frames(1)[0], 0), "names interface 0, but the section describes 0"),
    "ng-linktype": (ng_shb() + ng_idb(linktype=105) + ng_epb("<", frames(1)[0], 0),
                    "interface 0 has link type 105 (IEEE802_11)"),
    "ng-caplen-over-block": (ng_shb() + ng_idb() + ng_epb("<", b"abcd", 0, caplen=400), "runs past the end"),
    "ng-caplen-over-snaplen": (ng_shb() + ng_idb(snaplen=64) + ng_epb("<", frames(3)[2], 0),
                               "exceeds the snaplen 64"),
    "ng-idb-linktype-bad-record-number": (ng_shb() + ng_idb() + ng_epb("<", frames(1)[0], 0)
                                          + ng_epb("<", frames(1)[0], 0, iface=3), "record 2 at byte offset"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_is_one_clear_error(tmp_path, case):
    data, expected = BAD_FILES[case]
    path = write(tmp_path, f"{case}.cap", data)
    with pytest.raises(CaptureError) as info:
        with open_capture(path) as capture:
            for _ in capture:
                pass
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message
    assert isinstance(info.value, OvnsimError)


def test_header_errors_come_at_open(tmp_path):
    """A bad file header is reported before any frame is read (the CLI writes nothing)."""
    path = write(tmp_path, "x.pcap", b"not a capture at all")
    with pytest.raises(CaptureError):
        open_capture(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_capture(tmp_path / "nope.pcap")


# ---------------------------------------------------------------------------
# constant memory
# ---------------------------------------------------------------------------

STREAM_MB = 50


def _big_capture(path: Path, pcapng: bool) -> int:
    """A ~50 MB capture of 1,000-byte frames; returns the number of frames."""
    frame = frames(1)[0] + b"\xab" * (1000 - 60)
    record = ng_epb("<", frame, T0 * 10**6) if pcapng else pcap_record(frame)
    per_block = 1000
    block = record * per_block
    count = STREAM_MB * 1024 * 1024 // len(block)
    with open(path, "wb") as out:
        out.write(ng_shb() + ng_idb() if pcapng else pcap_header())
        for _ in range(count):
            out.write(block)
    return count * per_block


@pytest.mark.parametrize("pcapng", [False, True])
def test_streaming_memory_is_bounded(tmp_path, pcapng):
    """Reading a 50 MB capture never holds more than a few chunks: tracemalloc peak far below the file."""
    path = tmp_path / ("big.pcapng" if pcapng else "big.pcap")
    n = _big_capture(path, pcapng)
    size = path.stat().st_size
    assert size > 45 * 1024 * 1024
    tracemalloc.start()
    try:
        seen = 0
        biggest = 0
        with open_capture(path, chunk_size=2 * 1024 * 1024, batch_size=4096) as capture:
            for batch in capture:
                seen += len(batch)
                biggest = max(biggest, len(batch))
                assert batch.frame(len(batch) - 1)[:6] == b"\xfa\x16\x3e\x00\x00\x12"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n and biggest <= 4096
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while streaming a {size}-byte capture"
    assert peak < size / 6


# ---------------------------------------------------------------------------
# timestamps at the edges (issue 11, items 2 and 3)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("seconds", [10**10, -(10**10), 2**63 - 1, -(2**63)])
def test_pcapng_tsoffset_beyond_64_bit_nanoseconds_is_one_clear_error(tmp_path, order, seconds):
    data = ng_shb(order) + ng_idb(order, tsoffset=seconds) + ng_epb(order, frames(1)[0], 0)
    path = write(tmp_path, "off.pcapng", data)
    with pytest.raises(CaptureError) as info:
        open_capture(path)
    assert f"if_tsoffset {seconds} s is beyond" in str(info.value) and "\n" not in str(info.value)


def test_pcapng_tsoffset_at_the_limit_is_taken_and_clamped(tmp_path):
    """+/-9.2e9 s is still read; the times it gives are clamped into 1970..2106 and counted."""
    limit = (2**63 - 1) // 10**9
    data = (ng_shb() + ng_idb(tsoffset=limit) + ng_epb("<", frames(1)[0], 5)
            + ng_idb(tsoffset=-limit) + ng_epb("<", frames(1)[0], 5, iface=1)
            + ng_idb(tsoffset=-T0) + ng_epb("<", frames(1)[0], T0 * 10**6 + 7, iface=2))
    got, capture = read_all(write(tmp_path, "edge.pcapng", data))
    assert [g[0] for g in got] == [MAX_TS_NS, 0, 7000]
    assert capture.timestamps_clamped == 2


@pytest.mark.parametrize("tsresol", [None, 9, 0x80 | 30, 0])
def test_pcapng_timestamp_beyond_2106_is_clamped_not_wrapped(tmp_path, tsresol):
    """A complete EPB whose time is >= 2^63 ns used to wrap negative in C and be written as 0."""
    per_sec = {None: 10**6, 9: 10**9, 0x80 | 30: 2**30, 0: 1}[tsresol]
    fine = T0 * per_sec
    data = (ng_shb() + ng_idb(tsresol=tsresol) + ng_epb("<", frames(1)[0], 2**64 - 1)
            + ng_epb("<", frames(1)[0], 2**63 // 10**9 * per_sec) + ng_epb("<", frames(1)[0], fine))
    got, capture = read_all(write(tmp_path, "late.pcapng", data))
    assert [g[0] for g in got] == [MAX_TS_NS, MAX_TS_NS, T0 * 10**9]
    assert capture.timestamps_clamped == 2


def test_cut_short_final_block_with_a_huge_timestamp_is_clamped(tmp_path):
    """The partial record's time is clamped as a complete record's is (it is written to drops.pcapng)."""
    data = ng_shb() + ng_idb(tsresol=9) + ng_epb("<", frames(1)[0], 2**64 - 1)[:-10]
    got, capture = read_all(write(tmp_path, "cut.pcapng", data))
    assert got == [] and capture.partial is not None
    assert capture.partial.timestamp == MAX_TS_NS and capture.timestamps_clamped == 1


def test_writers_clamp_timestamps_they_cannot_hold(tmp_path):
    frame = frames(1)[0]
    with PcapWriter(tmp_path / "a.pcap") as writer:
        writer.write(frame, 2**70)
        writer.write(frame, -5)
    with PcapNgWriter(tmp_path / "a.pcapng") as writer:
        writer.write(frame, 2**70)
    assert [t for t, _f, _o in read_frames(tmp_path / "a.pcap")] == [MAX_TS_NS, 0]
    assert [t for t, _f, _o in read_frames(tmp_path / "a.pcapng")] == [MAX_TS_NS]


# ---------------------------------------------------------------------------
# frames that carry their FCS (issue 11 item 9)
# ---------------------------------------------------------------------------


def _with_fcs(frame: bytes) -> bytes:
    import zlib

    return frame + struct.pack("<I", zlib.crc32(frame))


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_if_fcslen_frames_are_read_without_their_fcs(tmp_path, order):
    fs = frames(4)
    fcs_idb = ng_block(order, 1, struct.pack(order + "HHI", 1, 0, 0) + ng_option(order, 2, b"eth0")
                       + ng_option(order, 13, b"\x04") + b"\0\0\0\0")
    data = (ng_shb(order) + ng_idb(order) + fcs_idb + ng_epb(order, fs[0], 0, iface=0)
            + b"".join(ng_epb(order, _with_fcs(f), 0, iface=1) for f in fs[1:])
            + ng_epb(order, _with_fcs(fs[1])[:-3], 0, iface=1, origlen=len(fs[1]) + 4))  # cut inside the FCS
    got, capture = read_all(write(tmp_path, "fcs.pcapng", data))
    assert [(g[1], g[2]) for g in got] == [(f, len(f)) for f in fs] + [(fs[1], len(fs[1]))]
    assert capture.notes == ["interface 1 (eth0): frames end with a 4-byte FCS (if_fcslen): stripped before replay"]
    assert capture.snaplen_truncated == 0


def test_pcap_fcs_bits_in_the_link_type_strip_the_fcs(tmp_path):
    fs = frames(3)
    linktype = 0x04000000 | (2 << 28) | 1  # F bit, FCS length 2 x 16 bits
    data = pcap_header(linktype=linktype) + b"".join(pcap_record(_with_fcs(f)) for f in fs)
    got, capture = read_all(write(tmp_path, "fcs.pcap", data))
    assert [(g[1], g[2]) for g in got] == [(f, len(f)) for f in fs]
    assert capture.notes == ["frames end with a 4-byte FCS (file header): stripped before replay"]
