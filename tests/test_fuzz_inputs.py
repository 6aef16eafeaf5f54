"""ovnsim fuzzing its own input edges: captures, microflows, topology files, and whole replays.

Structure-aware generators (hypothesis) build what a user or an attacker
could hand ovnsim -- pcap records and pcapng blocks in either byte order,
with extreme field values, cut at any offset; microflows from the grammar's
own tokens, nested and huge; topology documents with leaves replaced by
anything YAML can hold -- and check the one promise every edge makes: the
input is taken, or refused with one line naming the file (a
:class:`~ovnsim.errors.OvnsimError`), never another exception; and a replay's
counters always add up and its files are always valid.

Budgets.  In CI every test runs a fixed number of examples with
``derandomize=True`` (the seed comes from the test's name, so a failure
reproduces by running the test again).  For a longer run::

    OVNSIM_FUZZ_EXAMPLES=20000 python -m pytest -q -p no:cacheprovider tests/test_fuzz_inputs.py

which also draws fresh random seeds; a failure then prints the
``--hypothesis-seed=N`` and ``@reproduce_failure`` that replay it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovnsim.capture.pcap import MAX_TS_NS, CaptureError, open_capture
from ovnsim.errors import MicroflowError, OvnsimError
from oracle.engine import PythonEngine

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "topologies" / "reference.yaml"

#: Examples per test: OVNSIM_FUZZ_EXAMPLES for a long run, else each test's small CI budget.
LONG = int(os.environ.get("OVNSIM_FUZZ_EXAMPLES", "0") or 0)


def budget(ci_examples: int):
    """Hypothesis settings: ``ci_examples`` derandomized in CI, or OVNSIM_FUZZ_EXAMPLES with random seeds."""
    return settings(max_examples=LONG or ci_examples, derandomize=not LONG, deadline=None, database=None,
                    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                            HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------
# captures
# ---------------------------------------------------------------------------

U32_EDGES = st.sampled_from([0, 1, 3, 4, 14, 60, 64, 65535, 65536, 262144, 262148, 2**31 - 1, 2**31, 2**32 - 1])
u32 = st.one_of(U32_EDGES, st.integers(0, 2**32 - 1))
u16 = st.one_of(st.sampled_from([0, 1, 2, 9, 13, 14, 0xFFFF]), st.integers(0, 0xFFFF))
payload = st.one_of(st.binary(max_size=120), st.sampled_from([b"", b"\xff" * 6 + b"\0" * 54]))


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


@st.composite
def pcap_files(draw) -> bytes:
    order = draw(st.sampled_from("<>"))
    magic = draw(st.sampled_from([0xA1B2C3D4, 0xA1B23C4D]))
    linktype = draw(st.one_of(st.just(1), st.sampled_from([0, 113, 276, 0x04000000 | (2 << 28) | 1,
                                                            0x10000001]), u32))
    snaplen = draw(st.one_of(st.just(65535), u32))
    out = struct.pack(order + "IHHiIII", magic, draw(st.sampled_from([2, 2, 2, 1])), 4, 0, 0, snaplen, linktype)
    for _ in range(draw(st.integers(0, 6))):
        frame = draw(payload)
        caplen = draw(st.one_of(st.just(len(frame)), u32))
        origlen = draw(st.one_of(st.just(len(frame)), u32))
        out += struct.pack(order + "IIII", draw(u32), draw(u32), caplen, origlen) + frame
    return out


@st.composite
def pcapng_files(draw) -> bytes:
    order = draw(st.sampled_from("<>"))

    def block(btype: int, body: bytes, trailer=None) -> bytes:
        body = _pad(body)
        length = draw(st.one_of(st.just(12 + len(body)), st.just(12 + len(body)), u32))
        return (struct.pack(order + "II", btype, length) + body
                + struct.pack(order + "I", length if trailer is None else trailer))

    def option(code: int, value: bytes) -> bytes:
        return struct.pack(order + "HH", code, len(value)) + _pad(value)

    out = block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, draw(st.sampled_from([1, 1, 2])), 0, -1))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["idb", "epb", "epb", "spb", "opb", "other", "shb"]))
        if kind == "idb":
            options = b""
            for _ in range(draw(st.integers(0, 4))):
                code = draw(st.sampled_from([2, 9, 13, 14, 0, 77]))
                value = {9: st.binary(min_size=1, max_size=1), 13: st.binary(min_size=1, max_size=1),
                         14: st.integers(-(2**63), 2**63 - 1).map(lambda v: struct.pack(order + "q", v)),
                         2: st.binary(max_size=12)}.get(code, st.binary(max_size=9))
                options += option(code, draw(value))
            options += b"\0\0\0\0" if options else b""
            linktype = draw(st.one_of(st.just(1), st.sampled_from([105, 113, 276]), u16))
            out += block(1, struct.pack(order + "HHI", linktype, 0, draw(st.one_of(st.just(0), u32))) + options)
        elif kind in ("epb", "opb"):
            frame = draw(payload)
            stamp = draw(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**63, 2**64 - 1])))
            caplen = draw(st.one_of(st.just(len(frame)), u32))
            if kind == "epb":
                head = struct.pack(order + "IIIII", draw(st.sampled_from([0, 0, 1, 2**32 - 1])), stamp >> 32,
                                   stamp & 0xFFFFFFFF, caplen, draw(st.one_of(st.just(len(frame)), u32)))
                out += block(6, head + frame)
            else:
                head = struct.pack(order + "HHIIII", draw(st.sampled_from([0, 0, 1])), 0, stamp >> 32,
                                   stamp & 0xFFFFFFFF, caplen, len(frame))
                out += block(2, head + frame)
        elif kind == "spb":
            frame = draw(payload)
            out += block(3, struct.pack(order + "I", draw(st.one_of(st.just(len(frame)), u32))) + frame)
        elif kind == "other":
            out += block(draw(st.sampled_from([4, 5, 10, 0x80000001, 7])), draw(st.binary(max_size=40)))
        else:
            out += block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    return out


def _read_or_refuse(path: Path) -> None:
    """Read every batch; anything but a one-line CaptureError naming the file is a bug."""
    try:
        with open_capture(path, chunk_size=64, batch_size=3) as capture:
            for batch in capture:
                for i in range(len(batch)):
                    assert 0 <= batch.timestamps[i] <= MAX_TS_NS
                    assert 0 <= batch.offsets[i] and batch.offsets[i] + batch.lengths[i] <= len(batch.data)
            if capture.partial is not None:
                assert 0 <= capture.partial.timestamp <= MAX_TS_NS
    except CaptureError as err:
        assert str(err).startswith(f"{path}") and "\n" not in str(err)


captures = st.one_of(pcap_files(), pcapng_files())


@budget(300)
@given(data=captures, cut=st.integers(0, 10**6), flips=st.lists(st.tuples(st.integers(0, 10**6),
                                                                          st.integers(0, 255)), max_size=3))
def test_fuzz_capture_files_are_read_or_refused_in_one_line(tmp_path_factory, data, cut, flips):
    raw = bytearray(data[:cut % (len(data) + 1)] if cut % 3 == 0 else data)
    for at, value in flips:
        if raw:
            raw[at % len(raw)] = value
    path = tmp_path_factory.mktemp("fuzz") / "f.cap"
    path.write_bytes(bytes(raw))
    _read_or_refuse(path)


@budget(25)
@given(data=captures)
def test_fuzz_capture_cut_at_every_offset(tmp_path_factory, data):
    """A capture cut short anywhere (tcpdump killed, a copy cut) is read up to the cut or refused in one line."""
    folder = tmp_path_factory.mktemp("cut")
    for cut in range(len(data) + 1):
        path = folder / f"{cut}.cap"
        path.write_bytes(data[:cut])
        _read_or_refuse(path)
        path.unlink()


# ---------------------------------------------------------------------------
# microflows
# ---------------------------------------------------------------------------

FIELD_WORDS = ["inport", "outport", "eth.src", "eth.dst", "eth.type", "vlan.tci", "arp.op", "arp.sha", "arp.spa",
               "ip4.src", "ip4.dst", "ip.ttl", "ip.proto", "ip.dscp", "tcp.src", "tcp.dst", "tcp.flags",
               "udp.dst", "icmp4.type", "ip6.src", "eth.bcast", "tcp", "udp", "ip4", "arp", "icmp", "ip",
               "eth.src[40]", "ct.new"]
VALUES = st.one_of(st.sampled_from(['"vm1"', "'vm1'", "vm1", "fa:16:3e:00:00:11", "10.0.0.11", "0x800", "64",
                                    "0x86dd", "00", "ff:ff:ff:ff:ff:ff/ff:ff:ff:ff:ff:ff", "10.0.0.0/8",
                                    '"a\\"b"', "{1, 2}", "{3}", '""']),
                   st.integers(0, 2**70).map(str), st.text("0123456789abcdefx:.", max_size=30),
                   st.integers(0, 5000).map(lambda n: "9" * n))
OPS = st.sampled_from(["==", "!=", "<", ">=", "&&", "||", "!", "(", ")", "{", "}", ",", "/"])


@st.composite
def microflows(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        parts.append(draw(st.one_of(
            st.tuples(st.sampled_from(FIELD_WORDS), st.just("=="), VALUES).map(" ".join),
            st.sampled_from(FIELD_WORDS), OPS, VALUES)))
    text = " ".join(parts)
    depth = draw(st.one_of(st.just(0), st.integers(0, 40), st.sampled_from([500, 3000])))
    if draw(st.booleans()):
        text = "(" * depth + text + ")" * draw(st.sampled_from([depth, 0, depth + 1]))
    if draw(st.booleans()):
        text += draw(st.text(max_size=8))
    return text


@budget(500)
@given(text=microflows())
def test_fuzz_microflows_parse_or_fail_with_a_microflow_error(text):
    from ovnsim.datapath.microflow import parse_microflow

    try:
        flow = parse_microflow(text)
    except MicroflowError as err:
        assert "\n" not in str(err)
        return
    # What parses is canonical: its own expression parses back to the same packet.
    assert parse_microflow(flow.to_expr()) == flow


def test_fuzz_microflow_budget_reaches_the_deep_cases():
    """The generator does make the cases that once broke the parser (so the fuzz test can find them)."""
    from ovnsim.datapath.microflow import parse_microflow

    with pytest.raises(MicroflowError):
        parse_microflow("(" * 3000 + 'inport == "vm1"' + ")" * 3000)


# ---------------------------------------------------------------------------
# topology files
# ---------------------------------------------------------------------------

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                   st.text(max_size=20), st.sampled_from(["10.0.0.0/33", "fa:16:3e:zz", "0.0.0.0/0", "web",
                                                          "public", "vm1", "", "-1"]),
                   st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                            max_size=2))


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, prefix + (i,))


@st.composite
def topology_texts(draw) -> str:
    doc = yaml.safe_load(REFERENCE.read_text())
    paths = [p for p in _paths(doc) if p]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
            if action == "replace":
                parent[path[-1]] = draw(LEAVES)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[f"{path[-1]}-copy"] = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
    text = yaml.safe_dump(doc, sort_keys=False, width=10**6)
    if draw(st.booleans()):  # what safe_dump would not write: a huge integer, a stray byte, a bad date
        text = text.replace("1", draw(st.sampled_from(["1", "9" * 5000, "1\t", "\x00", "{", "2001-13-45 "])), 1)
    if draw(st.booleans()):  # YAML's own structure: deep nesting, aliases (recursive, or a bomb)
        depth = draw(st.sampled_from([3, 70, 2000, 60000]))
        snippet = draw(st.sampled_from(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth,
                                        "&x [*x]", "&y {k: *y}"]))
        text = text.replace("10.0.0.0/24", snippet, 1)
    if draw(st.integers(0, 29)) == 0:  # rare: refusing one walks a million values (about a second)
        bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
        bomb += [f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 10) + "]" for i in range(1, 9)]
        text = "\n".join(bomb) + "\n" + text
    return text


@budget(120)
@given(text=topology_texts())
def test_fuzz_topology_files_load_or_fail_in_one_line(tmp_path_factory, text):
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    path = tmp_path_factory.mktemp("topo") / "t.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        compile_topology(load_topology(path))
    except OvnsimError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err), str(err)


# ---------------------------------------------------------------------------
# whole replays: random frames through `ovnsim replay`
# ---------------------------------------------------------------------------

MACS = st.sampled_from(["fa:16:3e:00:00:11", "fa:16:3e:00:00:12", "fa:16:3e:00:01:21", "52:54:00:c0:ff:ee",
                        "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00"])
IPS = st.sampled_from(["10.0.0.11", "10.0.0.12", "10.0.1.21", "10.0.0.1", "172.24.4.10", "172.24.4.100",
                       "172.24.4.1", "198.51.100.7", "255.255.255.255", "0.0.0.0", "224.0.0.1"])


@st.composite
def frames(draw) -> bytes:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    eth = Ether(src=draw(MACS), dst=draw(MACS))
    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "arp", "vlan", "raw", "ip-other"]))
    if kind == "arp":
        pkt = eth / ARP(op=draw(st.sampled_from([1, 2, 3])), hwsrc=draw(MACS), psrc=draw(IPS), pdst=draw(IPS))
    elif kind == "raw":
        raw = draw(st.binary(max_size=80))
        return raw, draw(st.sampled_from([len(raw), len(raw) + 100]))
    else:
        ip = IP(src=draw(IPS), dst=draw(IPS), ttl=draw(st.sampled_from([0, 1, 2, 64, 255])),
                ihl=draw(st.sampled_from([None, None, 4, 6, 15])), flags=draw(st.sampled_from([0, 1, 2])),
                frag=draw(st.sampled_from([0, 0, 1, 185])))
        l4 = {"tcp": TCP(sport=draw(st.integers(0, 65535)), dport=draw(st.sampled_from([22, 80, 443, 0])),
                         flags=draw(st.sampled_from(["S", "SA", "A", "R", "F", "FA", ""]))),
              "udp": UDP(sport=draw(st.integers(0, 65535)), dport=draw(st.sampled_from([53, 67, 68, 0]))),
              "icmp": ICMP(type=draw(st.sampled_from([0, 3, 8, 11])))}.get(kind)
        pkt = (eth / Dot1Q(vlan=draw(st.integers(0, 4095))) / ip) if kind == "vlan" else eth / ip
        if l4 is not None:
            pkt = pkt / l4
        elif kind == "ip-other":
            ip.proto = draw(st.integers(0, 255))
    raw = bytes(pkt)
    cut = draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw))))
    # A cut frame is damaged, or (its wire length kept) cut by a capture's snaplen.
    return raw[:cut], draw(st.sampled_from([cut, len(raw), len(raw) + draw(st.integers(0, 2000))]))


@budget(40)
@given(batch=st.lists(frames(), min_size=1, max_size=40), engine=st.sampled_from(["python", "fast"]),
       linktype=st.sampled_from([1, 1, 113, 276]), cooked=st.data(), tap=st.booleans(),
       gaps=st.lists(st.sampled_from([0, 1, 29, 31, 61, 3600]), min_size=40, max_size=40))
def test_fuzz_replay_counters_add_up_and_files_are_valid(tmp_path_factory, batch, engine, linktype, cooked, tap,
                                                         gaps):
    """Random frames (Ethernet, or behind random Linux cooked headers; some cut by a snaplen) through a
    whole replay, at times that let conntrack entries expire."""
    from ovnsim.capture.pcap import read_frames
    from ovnsim.capture.replay import DROPS_FILE, replay

    folder = tmp_path_factory.mktemp("replay")
    capture = folder / "in.pcap"
    records = []
    when = 10**9
    for i, (frame, wire) in enumerate(batch):
        if linktype != 1:
            size = 16 if linktype == 113 else 20
            frame = cooked.draw(st.binary(min_size=size, max_size=size)) + frame[14:]
            wire = max(len(frame), wire - 14 + size)
        when += gaps[i]
        records.append(struct.pack("<IIII", when, 0, len(frame), max(wire, len(frame))) + frame)
    capture.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype) + b"".join(records))
    try:
        # "python": the frozen oracle engine (tests/oracle), beside the C engine users run.
        summary = replay(REFERENCE, capture, folder / "out", engine=PythonEngine if engine == "python" else engine,
                         verdicts=folder / "v.jsonl",
                         **({"port": "vm1", "only_from_port": True} if tap else {"auto": True}))
    except OvnsimError as err:
        assert "not built" in str(err)  # the C engine is not built here
        return
    summary.check()
    received = summary.tap["received"] if tap else 0
    assert summary.frames_in + received == len(batch)
    if tap:
        assert summary.tap["matched"] + summary.tap["mismatched"] == received
    assert len((folder / "v.jsonl").read_text().splitlines()) == len(batch)
    for port, name in summary.files.items():
        if name == DROPS_FILE:
            with open_capture(folder / "out" / name) as drops:
                assert sum(len(b) for b in drops) == summary.dropped
        else:
            written = list(read_frames(folder / "out" / name))
            assert len(written) == summary.outputs[port]
            assert all(orig >= len(frame) for _ts, frame, orig in written)
