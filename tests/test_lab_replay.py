"""One capture through the emulator (``ovnsim replay``) and a lab (``ovnsim lab replay``): same outputs (root).

The capture holds echo requests east-west, routed, out through SNAT and a
floating IP, and into a floating IP from the upstream.  Each port's
``<port>-tx.pcap`` from both must hold the same requests, rewritten the
same way (MACs, addresses, TTL).  What only the lab writes — the VM
kernels' echo replies and ARP (docs/lab.md) — is left out of the comparison.
"""

from __future__ import annotations

import os
import shutil

from pathlib import Path

import pytest

from ovnsim.lab import Lab

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                                                   reason="labs need root and nftables")]

VM1, VM2, DB1 = "fa:16:3e:00:00:11", "fa:16:3e:00:00:12", "fa:16:3e:00:01:21"
R_WEB, R_DB, GW, UPSTREAM = "fa:16:3e:fe:49:48", "fa:16:3e:98:25:8c", "fa:16:3e:ab:62:10", "52:54:00:c0:ff:ee"

# (eth.src, eth.dst, ip.src, ip.dst, icmp id): what a VM (or the upstream) sends
REQUESTS = [
    (VM1, VM2, "10.0.0.11", "10.0.0.12", 101),          # east-west
    (VM1, R_WEB, "10.0.0.11", "10.0.1.21", 102),        # routed
    (DB1, R_DB, "10.0.1.21", "198.51.100.7", 103),      # SNAT
    (VM2, R_WEB, "10.0.0.12", "198.51.100.7", 104),     # floating IP, outbound
    (UPSTREAM, GW, "198.51.100.7", "172.24.4.100", 105),  # floating IP, inbound
]


def topo_path(name: str) -> str:
    """An example topology by name, as an absolute path (tests may run from any directory)."""
    return str(Path(__file__).resolve().parent.parent / "topologies" / f"{name}.yaml")


def requests_of(path):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    from ovnsim.capture.pcap import read_frames

    out = set()
    if not path.exists():
        return out
    for _t, frame, _o in read_frames(path):
        pkt = Ether(frame)
        if IP in pkt and ICMP in pkt and pkt[ICMP].type == 8:
            out.add((pkt.src, pkt.dst, pkt[IP].src, pkt[IP].dst, pkt[IP].ttl, pkt[ICMP].id))
    return out


def test_replay_outputs_agree_with_the_emulator(tmp_path, run_labs):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    from ovnsim.capture.pcap import PcapWriter
    from ovnsim.capture.replay import replay
    from ovnsim.lab.replay import replay_into_lab

    capture = tmp_path / "in.pcap"
    with PcapWriter(capture) as writer:
        for src, dst, ip_src, ip_dst, ident in REQUESTS:
            writer.write(bytes(Ether(src=src, dst=dst) / IP(src=ip_src, dst=ip_dst, ttl=64) / ICMP(id=ident, seq=1)
                               / (b"x" * 32)))
    replay(topo_path("reference"), capture, tmp_path / "emu", auto=True)
    with Lab.up(topo_path("reference"), name=f"replay{os.getpid()}") as lab:
        summary = replay_into_lab(lab, capture, tmp_path / "lab", auto=True, settle=0.5)
    assert summary["sent"] == len(REQUESTS)
    ports = {"vm1", "vm2", "db1", "provnet-public"}
    compared = 0
    for port in ports:
        emu = requests_of(tmp_path / "emu" / f"{port}-tx.pcap")
        got = requests_of(tmp_path / "lab" / f"{port}-tx.pcap")
        assert got == emu, port
        compared += len(emu)
    assert compared == len(REQUESTS)  # every request left somewhere, in both
