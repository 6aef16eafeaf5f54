"""The fast path's frame parser and checksum helpers, checked against scapy.

scapy is the oracle: frames are built with it, dissected back with it, and
every field ``parse_headers_dict`` reports must equal what scapy reads.  The
checksum rewrites must give byte for byte the frame scapy produces when it
recomputes every checksum from scratch.
"""

from __future__ import annotations

import array
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import (
    ICMP,
    IP,
    TCP,
    UDP,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
    fragment,
)
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, LLC, Dot1AD, Dot1Q, Dot3, Ether
from scapy.packet import Packet, Raw
from scapy.utils import checksum

from ovnsim.datapath import _fastpath as fp

MAC1 = "02:00:00:00:00:01"
MAC2 = "0a:1b:2c:3d:4e:5f"
IP1 = "10.0.0.1"
IP2 = "192.168.200.17"

HYPOTHESIS = settings(deadline=None, max_examples=200)

OFFSET_KEYS = ("ofs.l2", "ofs.l3", "ofs.l4", "ofs.payload", "ofs.end")


def eth(**kw) -> Ether:
    # Both MACs always given: otherwise scapy resolves the destination by ARP.
    return Ether(dst=kw.pop("dst", MAC2), src=kw.pop("src", MAC1), **kw)


def ip(**kw) -> IP:
    return IP(src=kw.pop("src", IP1), dst=kw.pop("dst", IP2), **kw)


# ---------------------------------------------------------------------------
# The oracle: what scapy reads from a frame
# ---------------------------------------------------------------------------


def scapy_view(frame: bytes) -> dict:
    """The dict parse_headers_dict must return for a well-formed ``frame``."""
    pkt = Ether(frame)
    d = {"status": "OK", "ofs.l2": 0, "ofs.l4": None, "ofs.end": len(frame)}
    d.update({"eth.dst": pkt.dst, "eth.src": pkt.src, "vlan.present": False})
    if isinstance(pkt, Dot3):  # 802.3 length field instead of an ethertype
        d["eth.type"] = pkt.len
        return dict(d, **{"ofs.l3": 14, "ofs.payload": 14})
    d["eth.type"] = pkt.type
    layer, l3 = pkt.payload, 14
    if isinstance(layer, (Dot1Q, Dot1AD)):
        d.update({
            "vlan.present": True,
            "vlan.tpid": pkt.type,
            "vlan.tci": layer.prio << 13 | layer.dei << 12 | layer.vlan,
            "vlan.pcp": layer.prio,
            "vlan.vid": layer.vlan,
            "eth.type": layer.type,
        })
        layer, l3 = layer.payload, 18
    d["ofs.l3"] = d["ofs.payload"] = l3
    if isinstance(layer, ARP):
        d.update({
            "arp.op": layer.op,
            "arp.sha": layer.hwsrc,
            "arp.spa": layer.psrc,
            "arp.tha": layer.hwdst,
            "arp.tpa": layer.pdst,
            "ofs.payload": l3 + 28,
        })
    elif isinstance(layer, IPv6):
        d["status"] = "IPV6_UNSUPPORTED"
    elif isinstance(layer, IP):
        d.update(_ip_view(layer, l3))
    return d


def _ip_view(ip4: IP, l3: int) -> dict:
    l4 = l3 + ip4.ihl * 4
    mf, later = bool(ip4.flags & 1), ip4.frag != 0
    d = {
        "ip4.src": ip4.src,
        "ip4.dst": ip4.dst,
        "ip.proto": ip4.proto,
        "ip.ttl": ip4.ttl,
        "ip.dscp": ip4.tos >> 2,
        "ip.ecn": ip4.tos & 3,
        "ip.is_frag": mf or later,
        "ip.later_frag": later,
        "ip4.ihl": ip4.ihl,
        "ip4.tos": ip4.tos,
        "ip4.len": ip4.len,
        "ip4.id": ip4.id,
        "ip4.flags": int(ip4.flags),
        "ip4.frag_offset": ip4.frag,
        "ip4.csum": ip4.chksum,
        "ofs.l4": l4,
        "ofs.payload": l4,
        "ofs.end": l3 + ip4.len,
        "status": "FRAGMENT" if (mf or later) else "OK",
    }
    seg = ip4.payload
    if later:
        return d
    if isinstance(seg, TCP):
        d.update({
            "tcp.src": seg.sport,
            "tcp.dst": seg.dport,
            "tcp.flags": int(seg.flags) | seg.reserved << 9,
            "tcp.csum": seg.chksum,
            "ofs.payload": l4 + seg.dataofs * 4,
        })
    elif isinstance(seg, UDP):
        d.update({"udp.src": seg.sport, "udp.dst": seg.dport, "udp.csum": seg.chksum,
                  "ofs.payload": l4 + 8})
    elif isinstance(seg, ICMP):
        rest = bytes(seg)[4:8]  # id/seq for echo; "unused" etc. otherwise
        d.update({
            "icmp4.type": seg.type,
            "icmp4.code": seg.code,
            "icmp4.id": int.from_bytes(rest[:2], "big"),
            "icmp4.seq": int.from_bytes(rest[2:], "big"),
            "icmp4.csum": seg.chksum,
            "ofs.payload": l4 + 8,
        })
    return d


def assert_matches_scapy(frame: bytes) -> dict:
    got = fp.parse_headers_dict(frame)
    assert got == scapy_view(frame)
    return got


# ---------------------------------------------------------------------------
# Well-formed frames: every field equals scapy's
# ---------------------------------------------------------------------------

WELL_FORMED = {
    "arp-request": eth(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC1, psrc=IP1, pdst=IP2),
    "arp-reply": eth() / ARP(op=2, hwsrc=MAC2, psrc=IP2, hwdst=MAC1, pdst=IP1),
    "arp-padded": eth() / ARP(op=1, hwsrc=MAC1, psrc=IP1, pdst=IP2) / Raw(b"\0" * 18),
    "icmp-echo": eth() / ip() / ICMP(type=8, id=0x1234, seq=7) / Raw(b"ping" * 8),
    "icmp-reply": eth() / ip(ttl=1) / ICMP(type=0, id=0xffff, seq=0xfffe),
    "icmp-unreachable": eth() / ip() / ICMP(type=3, code=3) / ip(src=IP2, dst=IP1) / UDP(),
    "tcp-syn": eth() / ip() / TCP(sport=43210, dport=80, flags="S"),
    "tcp-options-payload": eth() / ip(tos=0xb9, flags="DF", id=0xbeef)
    / TCP(sport=1, dport=65535, flags="PA", options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])
    / Raw(b"GET / HTTP/1.0\r\n\r\n"),
    "tcp-all-flags": eth() / ip() / TCP(flags=0x1FF, reserved=7),
    "udp": eth() / ip() / UDP(sport=68, dport=67) / Raw(b"x" * 30),
    "udp-no-checksum": eth() / ip() / UDP(sport=5000, dport=5001, chksum=0) / Raw(b"abc"),
    "udp-padded-to-60": eth() / ip() / UDP(sport=1, dport=2) / Raw(b"\xff" * 18),
    "ip-options-nop": eth() / ip(options=[IPOption_NOP()] * 3) / TCP(),
    "ip-options-rr": eth() / ip(options=[IPOption_RR(routers=["1.2.3.4", "5.6.7.8"])]) / UDP(),
    "ip-options-40-bytes": eth() / ip(options=[IPOption_Router_Alert()] * 10) / ICMP(),
    "ip-other-proto": eth() / ip(proto=47) / Raw(b"\x00\x00\x08\x00" + b"gre"),
    "ip-zero-addresses": eth() / ip(src="0.0.0.0", dst="255.255.255.255", ttl=0) / UDP(),
    "vlan-arp": eth() / Dot1Q(vlan=100, prio=5, dei=1) / ARP(op=1, hwsrc=MAC1, psrc=IP1, pdst=IP2),
    "vlan-tcp": eth() / Dot1Q(vlan=4095, prio=7) / ip() / TCP(sport=22, dport=2222, flags="SA"),
    "qinq-outer-tag-only": eth() / Dot1AD(vlan=5) / ip() / UDP(),
    "lldp-l2-only": eth(dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\0" * 40),
    "ethertype-only": eth(type=0x1234),
    "802.3-llc": Dot3(dst=MAC2, src=MAC1) / LLC() / Raw(b"llc-payload"),
    "ipv6": eth() / IPv6(src="fe80::1", dst="ff02::1") / UDP(),
    "vlan-ipv6": eth() / Dot1Q(vlan=3) / IPv6() / UDP(),
}


def _padded(pkt: Packet) -> bytes:
    frame = bytes(pkt)
    return frame + b"\0" * max(0, 60 - len(frame))


@pytest.mark.parametrize("name", sorted(WELL_FORMED))
def test_fields_equal_scapys(name):
    frame = bytes(WELL_FORMED[name])
    got = assert_matches_scapy(frame)
    assert got["status"] in ("OK", "IPV6_UNSUPPORTED")


@pytest.mark.parametrize("name", sorted(WELL_FORMED))
def test_ethernet_padding_is_not_part_of_the_packet(name):
    frame = _padded(WELL_FORMED[name])
    got = assert_matches_scapy(frame)
    if "ip4.len" in got:
        assert got["ofs.end"] == got["ofs.l3"] + got["ip4.len"]


def test_a_few_fields_by_hand():
    # Independent of the oracle: the numbers as a person reads them.
    got = fp.parse_headers_dict(bytes(WELL_FORMED["vlan-tcp"]))
    assert got["eth.src"] == "02:00:00:00:00:01"
    assert got["eth.dst"] == "0a:1b:2c:3d:4e:5f"
    assert (got["eth.type"], got["vlan.tpid"], got["vlan.tci"]) == (0x0800, 0x8100, 0xEFFF)
    assert (got["vlan.pcp"], got["vlan.vid"]) == (7, 4095)
    assert (got["ip4.src"], got["ip4.dst"], got["ip.proto"]) == (IP1, IP2, 6)
    assert (got["tcp.src"], got["tcp.dst"], got["tcp.flags"]) == (22, 2222, 0x12)
    assert (got["ofs.l3"], got["ofs.l4"], got["ofs.payload"]) == (18, 38, 58)
    arp = fp.parse_headers_dict(bytes(WELL_FORMED["arp-reply"]))
    assert (arp["arp.op"], arp["arp.spa"], arp["arp.tha"]) == (2, IP2, MAC1)


def test_l2_only_frames_have_no_l3_keys():
    got = fp.parse_headers_dict(bytes(WELL_FORMED["lldp-l2-only"]))
    assert got["status"] == "OK"
    assert got["eth.type"] == 0x88CC
    assert not any(k.startswith(("arp.", "ip", "tcp.", "udp.", "icmp4.")) for k in got)


def test_stacked_vlan_tags_stop_after_the_first():
    frame = bytes(eth() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / ip() / UDP())
    got = fp.parse_headers_dict(frame)
    assert got["status"] == "STACKED_VLAN"
    assert (got["vlan.tpid"], got["vlan.vid"], got["eth.type"]) == (0x88A8, 10, 0x8100)
    assert got["ofs.l3"] == 18 and "ip4.src" not in got


# ---------------------------------------------------------------------------
# Fragments
# ---------------------------------------------------------------------------


def test_fragments_of_a_udp_datagram():
    datagram = ip(id=4242) / UDP(sport=53, dport=5353) / Raw(bytes(range(256)) * 2)
    frags = fragment(datagram, fragsize=200)
    assert len(frags) > 2
    first, *later = [fp.parse_headers_dict(bytes(eth() / f)) for f in frags]
    assert first["status"] == "FRAGMENT"
    assert (first["ip.is_frag"], first["ip.later_frag"]) == (True, False)
    assert (first["udp.src"], first["udp.dst"]) == (53, 5353)
    for f, got in zip(frags[1:], later):
        assert got["status"] == "FRAGMENT"
        assert (got["ip.is_frag"], got["ip.later_frag"]) == (True, True)
        assert got["ip4.frag_offset"] == f.frag
        assert "udp.src" not in got and got["ofs.payload"] == got["ofs.l4"]
        assert got == scapy_view(bytes(eth() / f))


def test_first_fragment_too_short_for_tcp_is_truncated_l4():
    got = fp.parse_headers_dict(bytes(eth() / ip(flags="MF", proto=6) / Raw(b"\0" * 8)))
    assert got["status"] == "TRUNCATED_L4"
    assert got["ip.is_frag"] and "tcp.src" not in got


# ---------------------------------------------------------------------------
# Malformed frames: the status names what is wrong
# ---------------------------------------------------------------------------

ARP_FRAME = bytes(WELL_FORMED["arp-request"])


def _patched(frame: bytes, offset: int, data: bytes) -> bytes:
    return frame[:offset] + data + frame[offset + len(data):]


MALFORMED = {
    "empty": (b"", "TRUNCATED_ETH"),
    "one-byte": (b"\x01", "TRUNCATED_ETH"),
    "13-bytes": (bytes(eth())[:13], "TRUNCATED_ETH"),
    "vlan-tag-cut": (bytes(eth() / Dot1Q(vlan=1) / ip())[:16], "TRUNCATED_ETH"),
    "arp-cut": (ARP_FRAME[:41], "TRUNCATED_ARP"),
    # scapy recomputes ARP's sizes from the addresses: patch the bytes instead.
    "arp-not-ethernet": (_patched(ARP_FRAME, 14, b"\x00\x06"), "BAD_ARP_FORMAT"),
    "arp-not-ipv4": (_patched(ARP_FRAME, 16, b"\x86\xdd"), "BAD_ARP_FORMAT"),
    "arp-bad-hlen": (_patched(ARP_FRAME, 18, b"\x08"), "BAD_ARP_FORMAT"),
    "arp-bad-plen": (_patched(ARP_FRAME, 19, b"\x10"), "BAD_ARP_FORMAT"),
    "ip-19-bytes": (bytes(eth() / ip())[:33], "TRUNCATED_IP"),
    "ip-version-5": (bytes(eth() / ip(version=5) / UDP()), "BAD_IP_VERSION"),
    "ip-version-6-in-0800": (bytes(eth(type=0x0800) / IPv6()), "BAD_IP_VERSION"),
    "ip-ihl-4": (bytes(eth() / ip(ihl=4) / UDP()), "BAD_IHL"),
    "ip-ihl-0": (bytes(eth() / ip(ihl=0) / UDP()), "BAD_IHL"),
    "ip-options-cut": (bytes(eth() / ip(ihl=15) / UDP()), "TRUNCATED_IP"),
    "ip-len-below-ihl": (bytes(eth() / ip(len=19) / UDP()), "BAD_IP_TOTAL_LENGTH"),
    "ip-len-0": (bytes(eth() / ip(len=0) / UDP()), "BAD_IP_TOTAL_LENGTH"),
    "ip-len-past-frame": (bytes(eth() / ip(len=1000) / UDP()), "TRUNCATED_IP"),
    "tcp-cut": (bytes(eth() / ip(proto=6) / Raw(b"\0" * 19)), "TRUNCATED_L4"),
    "tcp-options-cut": (bytes(eth() / ip() / TCP(dataofs=15)), "TRUNCATED_L4"),
    "tcp-offset-4": (bytes(eth() / ip() / TCP(dataofs=4)), "BAD_TCP_OFFSET"),
    "tcp-offset-0": (bytes(eth() / ip() / TCP(dataofs=0)), "BAD_TCP_OFFSET"),
    "udp-cut": (bytes(eth() / ip(proto=17) / Raw(b"\0" * 7)), "TRUNCATED_L4"),
    "icmp-cut": (bytes(eth() / ip(proto=1) / Raw(b"\x08\x00\x00\x00")), "TRUNCATED_L4"),
    # IP total length 20: the UDP header is in the frame but only as padding.
    "udp-in-padding": (bytes(eth() / ip(len=20, proto=17)) + bytes(UDP()), "TRUNCATED_L4"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_frames(name):
    frame, status = MALFORMED[name]
    got = fp.parse_headers_dict(frame)
    assert got["status"] == status
    _assert_consistent(frame, got)


def test_empty_frame_has_no_offsets():
    got = fp.parse_headers_dict(b"")
    assert got == {"status": "TRUNCATED_ETH", "ofs.l2": None, "ofs.l3": None, "ofs.l4": None,
                   "ofs.payload": None, "ofs.end": 0}


def _layer_ends(frame: bytes) -> list:
    """(end offset, status if cut before it) for each header of a good frame."""
    view = scapy_view(frame)
    ends = [(view["ofs.l3"], "TRUNCATED_ETH")]
    if "arp.op" in view:
        ends.append((view["ofs.l3"] + 28, "TRUNCATED_ARP"))
    elif "ip4.len" in view:
        # A cut anywhere in the IPv4 packet leaves fewer bytes than its
        # total length says.
        ends.append((view["ofs.end"], "TRUNCATED_IP"))
    return ends


@pytest.mark.parametrize("name", sorted(n for n in WELL_FORMED if "ipv6" not in n))
def test_truncated_at_every_byte(name):
    frame = bytes(WELL_FORMED[name])
    full = fp.parse_headers_dict(frame)
    ends = _layer_ends(frame)
    for cut in range(len(frame)):
        got = fp.parse_headers_dict(frame[:cut])
        expected = next((status for end, status in ends if cut < end), full["status"])
        assert got["status"] == expected, f"cut at {cut}"
        _assert_consistent(frame[:cut], got)
        # Whatever was parsed is what the whole frame says.
        for key in got:
            if key not in OFFSET_KEYS and key != "status":
                assert got[key] == full[key], (cut, key)


def _assert_consistent(frame: bytes, got: dict) -> None:
    assert got["status"] in fp.STATUS_NAMES
    offsets = [got[k] for k in OFFSET_KEYS if got[k] is not None]
    assert offsets == sorted(offsets)
    assert got["ofs.end"] <= len(frame)
    if got["ofs.payload"] is not None:
        assert got["ofs.payload"] <= got["ofs.end"]


# ---------------------------------------------------------------------------
# Any bytes at all: never a crash, always a status
# ---------------------------------------------------------------------------

ETHERTYPES = st.sampled_from([0x0800, 0x0806, 0x8100, 0x88A8, 0x86DD, 0x88CC, 0x0000, 0xFFFF])


@st.composite
def garbage_frames(draw):
    """Random bytes, often behind a real header so deep paths get random input too."""
    head = draw(st.sampled_from([b"", bytes(12), bytes(12) + b"\x08\x00\x45",
                                 bytes(12) + b"\x81\x00\x00\x01\x08\x00\x46"]))
    if draw(st.booleans()):
        head = bytes(12) + draw(ETHERTYPES).to_bytes(2, "big")
    return head + draw(st.binary(max_size=120))


@HYPOTHESIS
@given(garbage_frames())
def test_random_bytes_never_crash(frame):
    got = fp.parse_headers_dict(frame)
    _assert_consistent(frame, got)
    assert fp.parse_headers_dict(bytearray(frame)) == got
    if got["status"] == "OK" and "ip4.src" in got:
        assert isinstance(fp.checksums_ok(frame), bool)


# ---------------------------------------------------------------------------
# Random well-formed packets against scapy
# ---------------------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
ip4s = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))
u16 = st.integers(0, 0xFFFF)
ip_options = st.sampled_from([
    [],
    [IPOption_NOP()],
    [IPOption_Router_Alert()],
    [IPOption_RR(routers=["10.1.1.1"])],
    [IPOption_NOP()] * 9,
])
tcp_options = st.sampled_from([[], [("MSS", 1400)], [("NOP", None), ("WScale", 14)],
                               [("SAckOK", b""), ("Timestamp", (1, 2))]])


@st.composite
def ipv4_frames(draw, protos=("tcp", "udp", "icmp", "other"), other_protos=(2, 47, 50, 132, 255)):
    """A well-formed, unfragmented IPv4 frame, optionally VLAN-tagged and padded."""
    pkt = Ether(dst=draw(macs), src=draw(macs))
    if draw(st.booleans()):
        pkt = pkt / Dot1Q(prio=draw(st.integers(0, 7)), dei=draw(st.integers(0, 1)),
                          vlan=draw(st.integers(0, 4095)))
    pkt = pkt / IP(src=draw(ip4s), dst=draw(ip4s), ttl=draw(st.integers(0, 255)),
                   tos=draw(st.integers(0, 255)), id=draw(u16),
                   flags=draw(st.sampled_from([0, 2])), options=draw(ip_options))
    proto = draw(st.sampled_from(protos))
    if proto == "tcp":
        pkt = pkt / TCP(sport=draw(u16), dport=draw(u16), seq=draw(st.integers(0, 2**32 - 1)),
                        flags=draw(st.integers(0, 0x1FF)), reserved=draw(st.integers(0, 7)),
                        options=draw(tcp_options))
    elif proto == "udp":
        udp = UDP(sport=draw(u16), dport=draw(u16))
        if draw(st.booleans()):
            udp.chksum = 0
        pkt = pkt / udp
    elif proto == "icmp":
        pkt = pkt / ICMP(type=draw(st.sampled_from([0, 3, 8, 11])), code=draw(st.integers(0, 15)),
                         id=draw(u16), seq=draw(u16))
    else:
        pkt[IP].proto = draw(st.sampled_from(other_protos))
    frame = bytes(pkt / Raw(draw(st.binary(max_size=64))))
    if draw(st.booleans()):
        frame += b"\0" * max(0, 60 - len(frame))
    return frame


@HYPOTHESIS
@given(ipv4_frames())
def test_random_packets_equal_scapys(frame):
    assert_matches_scapy(frame)
    assert fp.checksums_ok(frame)


# ---------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------


@HYPOTHESIS
@given(ipv4_frames())
def test_ipv4_checksum_equals_scapys(frame):
    got = fp.parse_headers_dict(frame)
    header = frame[got["ofs.l3"]:got["ofs.l4"]]
    assert fp.ipv4_checksum(header) == got["ip4.csum"] == Ether(frame)[IP].chksum


def _words_checksum(words):
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@HYPOTHESIS
@given(st.lists(u16, min_size=1, max_size=30), st.data())
def test_incremental_update_equals_full_recomputation(words, data):
    # A fixed non-zero word, as every real header has (IPv4's version, the
    # pseudo-header's protocol): for all-zero data the one's-complement sum
    # has two representations of zero and the two methods may pick different
    # ones.
    words = [0x4500] + words
    i = data.draw(st.integers(1, len(words) - 1))
    new = data.draw(u16)
    csum = _words_checksum(words)
    changed = words[:i] + [new] + words[i + 1:]
    assert fp.checksum_update16(csum, words[i], new) == _words_checksum(changed)
    if i + 1 < len(words):
        old32 = words[i] << 16 | words[i + 1]
        new32 = data.draw(st.integers(0, 2**32 - 1))
        changed = words[:i] + [new32 >> 16, new32 & 0xFFFF] + words[i + 2:]
        assert fp.checksum_update32(csum, old32, new32) == _words_checksum(changed)


def test_checksum_helpers_reject_out_of_range_values():
    with pytest.raises(ValueError):
        fp.checksum_update16(0x10000, 0, 0)
    with pytest.raises(ValueError):
        fp.checksum_update32(0, -1, 0)
    with pytest.raises(ValueError):
        fp.ipv4_checksum(b"\x45" * 11)


def test_checksums_ok_sees_a_flipped_bit():
    frame = bytearray(bytes(WELL_FORMED["tcp-options-payload"]))
    assert fp.checksums_ok(frame)
    frame[-1] ^= 0x01
    assert not fp.checksums_ok(frame)
    frame[-1] ^= 0x01
    frame[14 + 8] ^= 0x01  # TTL: the IPv4 header checksum no longer fits
    assert not fp.checksums_ok(frame)
    with pytest.raises(ValueError, match="no IPv4 header"):
        fp.checksums_ok(bytes(WELL_FORMED["arp-request"]))


# ---------------------------------------------------------------------------
# In-place rewrites (TTL decrement, NAT) against scapy's full recomputation
# ---------------------------------------------------------------------------


@st.composite
def rewrites(draw):
    """Keyword arguments for fp.rewrite: each field left alone or set."""
    kw = {
        "ttl": draw(st.none() | st.integers(0, 255)),
        "ip4_src": draw(st.none() | ip4s),
        "ip4_dst": draw(st.none() | ip4s),
    }
    return {k: v for k, v in kw.items() if v is not None}


# Scapy cannot re-serialise IGMP (protocol 2) faithfully: dissecting it adds a
# Router Alert option to the IP layer when there is none, so the rewrite
# property uses other opaque protocols, and IGMP has its own test below.
NOT_IGMP = (47, 50, 89, 132, 255)


@HYPOTHESIS
@given(ipv4_frames(other_protos=NOT_IGMP), rewrites(), st.none() | u16, st.none() | u16)
def test_rewrite_equals_scapy_recomputing_checksums(frame, kw, sport, dport):
    pkt = Ether(frame)
    has_ports = TCP in pkt or UDP in pkt
    if has_ports:
        kw.update({k: v for k, v in (("l4_src", sport), ("l4_dst", dport)) if v is not None})
    buf = bytearray(frame)
    fp.rewrite(buf, **kw)

    ip4 = pkt[IP]
    ip4.ttl = kw.get("ttl", ip4.ttl)
    ip4.src = kw.get("ip4_src", ip4.src)
    ip4.dst = kw.get("ip4_dst", ip4.dst)
    del ip4.chksum
    if TCP in pkt or (UDP in pkt and pkt[UDP].chksum != 0):
        seg = pkt[TCP] if TCP in pkt else pkt[UDP]
        seg.sport = kw.get("l4_src", seg.sport)
        seg.dport = kw.get("l4_dst", seg.dport)
        del seg.chksum
    elif UDP in pkt:  # checksum 0, "none": stays 0
        pkt[UDP].sport = kw.get("l4_src", pkt[UDP].sport)
        pkt[UDP].dport = kw.get("l4_dst", pkt[UDP].dport)
    elif ICMP in pkt:
        del pkt[ICMP].chksum  # no pseudo-header: must come out unchanged
    assert bytes(buf) == bytes(pkt)
    assert fp.checksums_ok(buf)


def test_rewrite_of_an_igmp_frame_touches_only_the_ip_header():
    # The frame Hypothesis found: TTL 0, IGMP, no options, 4 bytes of payload.
    frame = bytes.fromhex("00" * 12 + "0800" "450000180000000000020000" + "00" * 8 + "31000000")
    frame = frame[:24] + checksum(frame[14:34]).to_bytes(2, "big") + frame[26:]
    buf = bytearray(frame)
    fp.rewrite(buf)
    assert bytes(buf) == frame
    fp.rewrite(buf, ttl=64, ip4_src="10.0.0.1")
    header = bytearray(frame[14:34])
    header[8] = 64
    header[12:16] = bytes([10, 0, 0, 1])
    header[10:12] = b"\0\0"
    header[10:12] = checksum(bytes(header)).to_bytes(2, "big")
    assert bytes(buf) == frame[:14] + bytes(header) + frame[34:]
    assert fp.checksums_ok(buf)


def test_ttl_decrement_keeps_the_header_checksum():
    buf = bytearray(bytes(WELL_FORMED["icmp-echo"]))
    for ttl in range(63, -1, -1):
        fp.rewrite(buf, ttl=ttl)
        recomputed = Ether(bytes(buf))
        del recomputed[IP].chksum
        assert bytes(recomputed) == buf
    assert fp.parse_headers_dict(buf)["ip.ttl"] == 0


def test_rewrite_accepts_int_and_address_objects():
    buf = bytearray(bytes(WELL_FORMED["udp"]))
    fp.rewrite(buf, ip4_src=0x01020304, ip4_dst=ipaddress.IPv4Address("5.6.7.8"))
    got = fp.parse_headers_dict(buf)
    assert (got["ip4.src"], got["ip4.dst"]) == ("1.2.3.4", "5.6.7.8")
    assert fp.checksums_ok(buf)


def test_rewrite_leaves_udp_checksum_zero():
    buf = bytearray(bytes(WELL_FORMED["udp-no-checksum"]))
    fp.rewrite(buf, ip4_src="172.16.0.1", l4_src=40000)
    got = fp.parse_headers_dict(buf)
    assert (got["udp.csum"], got["udp.src"]) == (0, 40000)


@pytest.mark.parametrize(
    ("name", "kw", "message"),
    [
        ("arp-request", {"ttl": 1}, "no IPv4 header"),
        ("ipv6", {"ttl": 1}, "no IPv4 header"),
        ("icmp-echo", {"l4_src": 1}, "no TCP or UDP header"),
        ("tcp-syn", {"ttl": 256}, "not a TTL"),
        ("tcp-syn", {"l4_dst": 70000}, "not a 16-bit value"),
        ("tcp-syn", {"ttl": 9, "ip4_src": "10.0.0.300"}, "10.0.0.300"),
    ],
)
def test_rewrite_refuses_without_touching_the_frame(name, kw, message):
    frame = bytes(WELL_FORMED[name])
    buf = bytearray(frame)
    with pytest.raises(ValueError, match=message):
        fp.rewrite(buf, **kw)
    assert buf == frame


def test_rewrite_needs_a_writable_buffer():
    with pytest.raises(BufferError, match="not writable"):
        fp.rewrite(bytes(WELL_FORMED["tcp-syn"]), ttl=1)


# ---------------------------------------------------------------------------
# The Python surface
# ---------------------------------------------------------------------------


def test_accepts_any_contiguous_byte_buffer():
    frame = bytes(WELL_FORMED["tcp-syn"])
    expected = fp.parse_headers_dict(frame)
    big = bytearray(b"\xee" * 3 + frame)
    for buf in (bytearray(frame), memoryview(frame), memoryview(big)[3:],
                array.array("B", frame)):
        assert fp.parse_headers_dict(buf) == expected


def test_rejects_what_is_not_a_byte_buffer():
    with pytest.raises(TypeError):
        fp.parse_headers_dict("not bytes")
    with pytest.raises(TypeError):
        fp.parse_headers_dict(None)
    with pytest.raises(BufferError, match="not C-contiguous"):
        fp.parse_headers_dict(memoryview(bytes(64))[::2])


def test_status_names():
    assert fp.STATUS_NAMES[0] == "OK"
    assert len(set(fp.STATUS_NAMES)) == len(fp.STATUS_NAMES) == 14
    for code, name in enumerate(fp.STATUS_NAMES):
        assert fp.status_name(code) == name
    for bad in (-1, len(fp.STATUS_NAMES)):
        with pytest.raises(ValueError):
            fp.status_name(bad)


def test_headers_struct_has_no_inner_padding():
    # 4 x u64 + 9 x 32-bit + 14 x u16 + 10 x u8 = 106 bytes, 8-aligned.
    assert fp.HEADERS_SIZE == 112
