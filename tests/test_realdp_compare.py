"""``ovnsim compare``: a capture against real OVN's data path, a microflow against ovn-trace."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from ovnsim.cli import main
from ovnsim.testing import compare as compare_mod
from ovnsim.testing.realdp import RealDatapath
from ovnsim.testing.realovn import RealOVN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "topologies", "reference.yaml")
VM1, VM2, GW = "fa:16:3e:00:00:11", "fa:16:3e:00:00:12", "fa:16:3e:fe:49:48"


def test_ingress_is_the_owner_of_the_source_else_the_provider_network():
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    logical = compile_topology(load_topology(REFERENCE))
    assert compare_mod.choose_ingress(logical, bytes(Ether(src=VM2) / IP())) == "vm2"
    spoofed_mac = bytes(Ether(src="02:00:00:00:00:99") / IP(src="10.0.1.21"))
    assert compare_mod.choose_ingress(logical, spoofed_mac) == "db1"
    outside = bytes(Ether(src="52:54:00:c0:ff:ee") / IP(src="198.51.100.7"))
    assert compare_mod.choose_ingress(logical, outside) == "provnet-public"


@pytest.mark.ovn
def test_identical_capture_exits_zero(tmp_path, capsys):
    RealDatapath.skip_unless_available()
    frames = [
        Ether(src=VM1, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=VM1, psrc="10.0.0.11", pdst="10.0.0.12"),
        Ether(src=VM1, dst=VM2) / IP(src="10.0.0.11", dst="10.0.0.12") / ICMP(),
        Ether(src=VM1, dst=GW) / IP(src="10.0.0.11", dst="10.0.1.21") / ICMP(),
    ]
    wrpcap(str(tmp_path / "ok.pcap"), frames)
    assert main(["compare", REFERENCE, str(tmp_path / "ok.pcap")]) == 0
    out = capsys.readouterr().out
    assert "3 frames, 3 identical, 0 differ" in out
    assert "time per frame" in out


@pytest.mark.ovn
def test_differing_frame_is_shown_side_by_side_with_ovnsims_trace(tmp_path, capsys):
    """A truncated TCP segment between two VMs: real OVN switches it, ovnsim drops it as
    malformed (on purpose: malformed frames are counted drops with a reason)."""
    from scapy.packet import Raw

    RealDatapath.skip_unless_available()
    wrpcap(str(tmp_path / "cut.pcap"),
           [Ether(src=VM1, dst="fa:16:3e:00:00:12") / IP(src="10.0.0.11", dst="10.0.0.12", proto=6)
            / Raw(bytes.fromhex("005001bb000000010000"))])
    assert main(["compare", REFERENCE, str(tmp_path / "cut.pcap")]) == 1
    out = capsys.readouterr().out
    assert "1 frames, 0 identical, 1 differ" in out
    assert "frame 1 (in vm1)" in out and "vm2 !=" in out
    assert "real OVN: Ether" in out and "ovnsim:   -" in out
    assert "ovnsim's trace:" in out and "truncated TCP header" in out


@pytest.mark.ovn
def test_microflow_against_ovn_trace_says_what_it_adjusted(capsys):
    RealOVN.skip_unless_available()
    flow = (f'inport == "vm1" && eth.src == {VM1} && eth.dst == {GW} && ip4.src == 10.0.0.11 && '
            'ip4.dst == 198.51.100.7 && ip.ttl == 64 && tcp && tcp.dst == 443')
    assert main(["compare", REFERENCE, flow]) == 0
    out = capsys.readouterr().out
    assert "verdicts identical" in out
    assert "Static_MAC_Binding" in out and "ct_snat" in out


def test_without_ovn_installed_the_message_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(RealDatapath, "available",
                        staticmethod(lambda: (False, "real OVN's data path is not installed (x)")))
    wrpcap(str(tmp_path / "a.pcap"), [Ether(src=VM1) / IP()])
    assert main(["compare", REFERENCE, str(tmp_path / "a.pcap")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ovnsim: error: ovnsim compare needs a real OVN") and err.count("\n") == 1


def test_a_missing_capture_is_one_line_not_a_microflow_error(tmp_path, capsys):
    RealDatapath.skip_unless_available()
    assert main(["compare", REFERENCE, str(tmp_path / "nope.pcap")]) == 2
    err = capsys.readouterr().err
    assert "nope.pcap" in err and err.count("\n") == 1 and "microflow" not in err
