"""Captures taken with a snaplen (``tcpdump -s 96``, issue 12): frames replayed on their headers.

OVN reads only headers, so a frame cut by the capture replays as the whole
frame would: what is captured is rewritten (MACs, TTL, NAT addresses and
ports), every checksum updated incrementally (so it is the whole frame's
checksum even over a payload the file lacks), and the output record keeps
the captured bytes and the original length.  A frame whose headers
themselves were cut is a drop of its own, ``snaplen-truncated``.

Each test replays the same frames twice, whole and cut, and holds the cut
outputs against the whole ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapWriter

from ovnsim.capture.pcap import read_frames
from ovnsim.capture.replay import DROPS_FILE, replay
from ovnsim.cli import main
from ovnsim.northd.stages import Drop

pytest.importorskip("ovnsim.datapath._fastpath")

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "topologies" / "reference.yaml"
VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
ROUTER_WEB_MAC = "fa:16:3e:fe:49:48"  # lrp-router1-web-v4 (reference.yaml)
UPSTREAM_MAC = "52:54:00:c0:ff:ee"
GW_MAC = "fa:16:3e:ab:62:10"  # lrp-router1-gw
SNAT_IP, INTERNET = "172.24.4.10", "198.51.100.7"
PAYLOAD = bytes(range(256)) * 4  # 1 KiB: far past a 96-byte snaplen


def _write(path: Path, frames: List[bytes], snaplen: int) -> Path:
    """A classic pcap as tcpdump -s SNAPLEN writes it: each frame cut, its wire length kept."""
    with PcapWriter(str(path), linktype=1, snaplen=snaplen, sync=True) as writer:
        for i, frame in enumerate(frames):
            pkt = Raw(load=frame[:snaplen])
            pkt.time = 1_700_000_000 + i / 1000
            pkt.wirelen = len(frame)
            writer.write(pkt)
    return path


def _replay(tmp_path: Path, name: str, frames: List[bytes], snaplen: int = 65535):
    capture = _write(tmp_path / f"{name}.pcap", frames, snaplen)
    out = tmp_path / name
    return replay(REFERENCE, capture, out, auto=True), out


def _records(path: Path) -> List[Tuple[bytes, int]]:
    return [(frame, orig) for _ts, frame, orig in read_frames(path)] if path.exists() else []


def _session() -> List[bytes]:
    """vm1's TCP and UDP through SNAT with big payloads and the replies, an ICMP error about the UDP one,
    a big ping to its gateway: every header within 96 bytes."""
    out_tcp = Ether(src=VM1_MAC, dst=ROUTER_WEB_MAC) / IP(src=VM1_IP, dst=INTERNET, ttl=64) / \
        TCP(sport=40000, dport=443, flags="PA", seq=1000, ack=2000) / PAYLOAD
    back_tcp = Ether(src=UPSTREAM_MAC, dst=GW_MAC) / IP(src=INTERNET, dst=SNAT_IP, ttl=60) / \
        TCP(sport=443, dport=40000, flags="PA", seq=2000, ack=2024) / PAYLOAD
    out_udp = Ether(src=VM1_MAC, dst=ROUTER_WEB_MAC) / IP(src=VM1_IP, dst=INTERNET, ttl=64) / \
        UDP(sport=5353, dport=53) / PAYLOAD
    # the outside answers the SNATed datagram with port unreachable, quoting it whole (as Linux quotes up to 576)
    snated = IP(src=SNAT_IP, dst=INTERNET, ttl=62) / UDP(sport=5353, dport=53) / PAYLOAD[:400]
    unreachable = Ether(src=UPSTREAM_MAC, dst=GW_MAC) / IP(src=INTERNET, dst=SNAT_IP, ttl=60) / \
        ICMP(type=3, code=3) / IPerror(bytes(snated))
    ping = Ether(src=VM1_MAC, dst=ROUTER_WEB_MAC) / IP(src=VM1_IP, dst="10.0.0.1", ttl=64) / \
        ICMP(type=8, id=7, seq=1) / PAYLOAD
    return [bytes(f) for f in (out_tcp, back_tcp, out_udp, unreachable, ping)]


def test_a_header_only_capture_replays_as_the_whole_one(tmp_path):
    frames = _session()
    whole, out_whole = _replay(tmp_path, "whole", frames)
    cut, out_cut = _replay(tmp_path, "cut", frames, snaplen=96)
    assert whole.dropped == 0 and whole.outputs == {"provnet-public": 2, "vm1": 3}
    assert (cut.snaplen_truncated, cut.header_only) == (5, 5)
    for key in ("delivered", "exited", "dropped", "outputs", "output_kinds", "drops"):
        assert getattr(cut, key) == getattr(whole, key), key
    assert cut.as_dict()["header_only"] == 5
    for port in ("provnet-public", "vm1"):
        w, c = _records(out_whole / f"{port}-tx.pcap"), _records(out_cut / f"{port}-tx.pcap")
        assert len(w) == len(c)
        for (frame_w, orig_w), (frame_c, orig_c) in zip(w, c):
            assert len(frame_c) == 96 and orig_c == orig_w == len(frame_w) > 96
            # the captured bytes, rewritten as the whole frame was: MACs, TTL, NAT, every checksum
            assert frame_c == frame_w[:96]


def test_the_whole_frames_rewritten_checksums_are_right(tmp_path):
    """What the cut outputs are checked against: the whole frames' outputs carry valid checksums."""
    _whole, out = _replay(tmp_path, "whole", _session())
    outputs = [Ether(f) for f, _o in _records(out / "provnet-public-tx.pcap") + _records(out / "vm1-tx.pcap")]
    assert [o[IP].src for o in outputs[:2]] == [SNAT_IP, SNAT_IP]
    for pkt in outputs:
        rebuilt = pkt.copy()
        del rebuilt[IP].chksum
        layer = rebuilt[IP].payload
        del layer.chksum
        rebuilt = Ether(bytes(rebuilt))
        assert rebuilt[IP].chksum == pkt[IP].chksum
        assert rebuilt[IP].payload.chksum == pkt[IP].payload.chksum, pkt.summary()
    # the ICMP error un-NATed to vm1, its quoted datagram too
    error = next(o for o in outputs if ICMP in o and o[ICMP].type == 3)
    assert error[IP].dst == VM1_IP and error[IPerror].src == VM1_IP and error[UDPerror].sport == 5353


def test_a_frame_whose_headers_are_cut_is_snaplen_truncated(tmp_path):
    tcp = _session()[0]
    good = Ether(src=VM1_MAC, dst=ROUTER_WEB_MAC) / IP(src=VM1_IP, dst=INTERNET) / UDP(sport=1, dport=2) / PAYLOAD
    # 14 + 20 + 8 bytes: all of UDP's header, 8 of TCP's 20
    summary, out = _replay(tmp_path, "cut", [tcp, bytes(good)], snaplen=42)
    assert summary.snaplen_truncated == 2 and summary.header_only == 1
    assert summary.drops == {"snaplen-truncated": {"frames": 1, "stages": {"ls_in_check_port_sec": 1}}}
    assert summary.outputs == {"provnet-public": 1}
    (comments, frame, orig), = [(p.comments, bytes(p), p.wirelen) for p in _drops(out)]
    assert comments[0].decode() == "snaplen-truncated at neutron-web ls_in_check_port_sec"
    assert frame == tcp[:42] and orig == len(tcp)
    text = summary.format_text()
    assert "capture: 2 frames cut by the snaplen (1 replayed on their headers, written with their original " \
           "length; 1 dropped, snaplen-truncated)" in text


@pytest.mark.parametrize("snaplen, cut_at", [(10, "Ethernet"), (20, "IPv4"), (30, "IPv4")])
def test_cut_in_every_header_is_snaplen_truncated_not_malformed(tmp_path, snaplen, cut_at):
    summary, _out = _replay(tmp_path, "cut", [_session()[2]], snaplen=snaplen)
    assert list(summary.drops) == [Drop.SNAPLEN_TRUNCATED.label], cut_at


def test_an_icmp_error_whose_quoted_header_is_cut_is_snaplen_truncated(tmp_path):
    unreachable = _session()[3]  # its quote starts at byte 42: the UDP header in it ends at 70
    summary, _out = _replay(tmp_path, "cut", [_session()[2], unreachable], snaplen=60)
    assert summary.drops == {"snaplen-truncated": {"frames": 1, "stages": {"ls_in_check_port_sec": 1}}}
    summary, _out = _replay(tmp_path, "cut70", [_session()[2], unreachable], snaplen=70)
    assert summary.dropped == 0 and summary.outputs == {"provnet-public": 1, "vm1": 1}


def test_a_cut_frame_that_is_malformed_anyway_stays_malformed(tmp_path):
    bad = bytearray(_session()[2])
    bad[16:18] = (len(bad) - 14 + 100).to_bytes(2, "big")  # IPv4 total length past the frame on the wire
    summary, _out = _replay(tmp_path, "cut", [bytes(bad)], snaplen=96)
    assert list(summary.drops) == ["malformed"]


def test_the_json_summary_and_the_drop_catalogue(tmp_path, capsys):
    capture = _write(tmp_path / "cut.pcap", [_session()[0], _session()[2]], 40)
    assert main(["replay", str(REFERENCE), str(capture), "--out-dir", str(tmp_path / "o"), "--auto", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["header_only"] == 0 and data["anomalies"]["snaplen_truncated"] == 2
    assert data["drops"]["snaplen-truncated"]["frames"] == 2
    assert data["frames_in"] == data["delivered"] + data["exited"] + data["dropped"] == 2


def _drops(out: Path):
    from scapy.utils import PcapNgReader

    with PcapNgReader(str(out / DROPS_FILE)) as reader:
        return list(reader)


def test_a_cooked_capture_with_a_snaplen_replays_as_the_ethernet_one(tmp_path):
    """`tcpdump -i any -s 96`: Linux cooked headers (16 bytes for Ethernet's 14) on cut frames."""
    from scapy.layers.l2 import CookedLinux

    frames = _session()[:3]  # vm1's TCP and UDP out (packet type 4: sent), the TCP reply (0: to this host)
    cooked = []
    for pkttype, frame in zip((4, 0, 4), frames):
        eth = Ether(frame)
        head = CookedLinux(pkttype=pkttype, lladdrtype=1, lladdrlen=6,
                           src=bytes.fromhex(eth.src.replace(":", "")) + b"\0\0", proto=eth.type)
        cooked.append(bytes(head) + frame[14:])
    path = tmp_path / "any.pcap"
    with PcapWriter(str(path), linktype=113, snaplen=98, sync=True) as writer:
        for i, frame in enumerate(cooked):
            pkt = Raw(load=frame[:98])  # the same 84 bytes after the header as 96 of Ethernet
            pkt.time = 1_700_000_000 + i / 1000
            pkt.wirelen = len(frame)
            writer.write(pkt)
    summary = replay(REFERENCE, path, tmp_path / "any", auto=True)
    ethernet, out_eth = _replay(tmp_path, "eth", frames, snaplen=96)
    assert summary.header_only == ethernet.header_only == 3
    assert summary.outputs == ethernet.outputs == {"provnet-public": 2, "vm1": 1}
    for port in summary.outputs:
        assert _records(tmp_path / "any" / f"{port}-tx.pcap") == _records(out_eth / f"{port}-tx.pcap")



def test_frames_the_router_generates_for_header_only_frames(tmp_path):
    """A TCP reset is the one the whole frame gets (built from headers); an ICMP error quotes the bytes
    captured (a whole frame of its own, checksum right for what it holds)."""
    tcp = Ether(src=VM1_MAC, dst=ROUTER_WEB_MAC) / IP(src=VM1_IP, dst="10.0.0.1", ttl=64) / \
        TCP(sport=40000, dport=22, flags="PA", seq=1000, ack=1) / PAYLOAD
    udp = Ether(src=VM1_MAC, dst=ROUTER_WEB_MAC) / IP(src=VM1_IP, dst="10.0.0.1", ttl=64) / \
        UDP(sport=40000, dport=9999) / PAYLOAD[:500]
    frames = [bytes(tcp), bytes(udp)]
    whole, out_whole = _replay(tmp_path, "whole", frames)
    cut, out_cut = _replay(tmp_path, "cut", frames, snaplen=96)
    assert whole.generated == cut.generated and cut.generated["tcp_reset"] == cut.generated["icmp4"] == 1
    (rst_w, icmp_w), (rst_c, icmp_c) = _records(out_whole / "vm1-tx.pcap"), _records(out_cut / "vm1-tx.pcap")
    assert rst_c == rst_w and Ether(rst_c[0])[TCP].flags == "RA"
    assert icmp_c[1] == len(icmp_c[0]) < icmp_w[1]  # a whole frame, quoting 96 - 14 bytes
    error = Ether(icmp_c[0])
    assert len(error[ICMP].payload) == 96 - 14
    rebuilt = error.copy()
    del rebuilt[ICMP].chksum
    assert Ether(bytes(rebuilt))[ICMP].chksum == error[ICMP].chksum


def test_a_held_header_only_packet_keeps_its_original_length(tmp_path):
    """A cut packet a router holds while it ARPs for its next hop leaves, when the reply comes, with its
    captured bytes and its own original length (not the ARP reply's)."""
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology
    from scapy.layers.l2 import ARP

    topo = ROOT / "topologies" / "multi-router.yaml"
    routers = compile_topology(load_topology(str(topo))).router_ports()
    dmz, gw = routers["lrp-r-edge-dmz-v4"][1].mac, routers["lrp-r-edge-gw"][1].mac
    web1_mac, web1_ip, upstream_mac = "fa:16:3e:0d:00:10", "10.0.0.10", "52:54:00:00:00:01"
    out = bytes(Ether(src=web1_mac, dst=dmz) / IP(src=web1_ip, dst="198.51.100.7") / UDP(sport=4000, dport=53)
                / PAYLOAD)
    reply = bytes(Ether(src=upstream_mac, dst=gw) / ARP(op=2, hwsrc=upstream_mac, psrc="203.0.113.1", hwdst=gw,
                                                         pdst="203.0.113.10"))
    capture = _write(tmp_path / "held.pcap", [out, reply], 96)
    summary = replay(topo, capture, tmp_path / "out", auto=True)
    assert summary.header_only == 1 and summary.output_kinds["arp"] == 1
    records = _records(tmp_path / "out" / "provnet-upstream-tx.pcap")
    (arp_request, arp_orig), (held, held_orig) = records
    assert arp_orig == len(arp_request) and Ether(held)[UDP].sport == 4000
    assert len(held) == 96 and held_orig == len(out)
