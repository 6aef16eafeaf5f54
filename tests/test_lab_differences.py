"""Where a Linux lab and OVN differ, and where the lab does the closest real thing (docs/lab.md).

Each test shows one entry of docs/lab.md's list on a real lab (root).
"""

from __future__ import annotations

import os
import shutil

from pathlib import Path

import pytest

from ovnsim.lab import Lab
from ovnsim.lab.build import open_packet_socket
from ovnsim.lab.runs import run_lab_dir

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                                                   reason="labs need root and nftables")]


def topo_path(name: str) -> str:
    """An example topology by name, as an absolute path (tests may run from any directory)."""
    return str(Path(__file__).resolve().parent.parent / "topologies" / f"{name}.yaml")


def _lab(topo, name):
    # ledgers in this run's directory under /run/ovnsim/runs (ovnsim.lab.runs), never a tmp dir
    with run_lab_dir(topo), Lab.up(topo_path(topo), name=name) as lab:
        yield lab


@pytest.fixture(scope="module")
def ref():
    yield from _lab("reference", f"dref{os.getpid()}")


@pytest.fixture(scope="module")
def multi():
    yield from _lab("multi-router", f"dmulti{os.getpid()}")


def dissect(frame):
    from scapy.layers import inet  # noqa: F401
    from scapy.layers.l2 import Ether

    return Ether(frame)


def send_raw(lab, port, frame: bytes) -> None:
    ns_name, ifname = lab.interface(port)
    sock = open_packet_socket(ns_name, ifname)
    try:
        sock.send(frame)
    finally:
        sock.close()


def test_arp_for_a_known_address_reaches_other_vms(multi):
    """OVN's ARP responder answers in the switch; a Linux bridge floods the request to every VM."""
    from scapy.layers.l2 import ARP

    multi.exec("app1", "ip", "neigh", "flush", "all")
    with multi.capture("fw1", direction="in", timeout=3) as cap:
        assert multi.exec("app1", "ping", "-c1", "-W2", "10.10.0.2").returncode == 0
    who_has = [dissect(f)[ARP] for _t, f in cap.frames if ARP in dissect(f)]
    assert any(a.op == 1 and a.pdst == "10.10.0.2" for a in who_has)


def test_vm_knows_its_gateway_without_arp(ref):
    """The closest real thing to the ARP responder: a permanent neighbour entry for the gateway."""
    out = ref.exec("vm1", "ip", "neigh", "show", "10.0.0.1").stdout
    assert "fa:16:3e:fe:49:48" in out and "PERMANENT" in out


def _emulated(frame):
    """What the emulator sends back to vm1 for ``frame`` from vm1: [(kind, ip.src, ip.ttl)]."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    from ovnsim.sim import Simulator

    sim = Simulator.from_file(topo_path("reference"))
    return [(o.kind, Ether(o.frame)[IP].src, Ether(o.frame)[IP].ttl) for o in sim.inject("vm1", frame).outputs
            if o.port == "vm1"]


def _request(dst, ttl):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    return bytes(Ether(src="fa:16:3e:00:00:11", dst="fa:16:3e:fe:49:48") / IP(src="10.0.0.11", dst=dst, ttl=ttl)
                 / ICMP(id=9, seq=1))


def _seen_by_vm1(lab, *ping_args):
    from scapy.layers.inet import ICMP, IP

    with lab.capture("vm1", direction="in", timeout=3) as cap:
        lab.exec("vm1", "ping", "-c1", "-W2", *ping_args)
    return [(dissect(f)[IP].src, dissect(f)[IP].ttl, dissect(f)[ICMP].type) for _t, f in cap.frames
            if ICMP in dissect(f)]


@pytest.mark.parametrize("dst", ["10.0.0.1", "100.64.0.2"])  # one router away, two routers away
def test_router_echo_reply_ttl_as_in_ovn(ref, dst):
    """OVN's router reply is built with TTL 255 and routed (254 when it leaves); the lab sets ip_default_ttl=254."""
    emulated = _emulated(_request(dst, 64))
    assert [kind for kind, _src, _ttl in emulated] == ["echo_reply"]
    assert _seen_by_vm1(ref, dst) == [(dst, emulated[0][2], 0)]


@pytest.mark.parametrize("ttl", [1, 2])
def test_icmp_time_exceeded_source_and_ttl_as_in_ovn(ref, ttl):
    """OVN sends ICMP errors from the port the packet came in on; the lab too (icmp_errors_use_inbound_ifaddr)."""
    emulated = _emulated(_request("198.51.100.7", ttl))
    assert [kind for kind, _src, _ttl in emulated] == ["icmp4"]
    assert _seen_by_vm1(ref, "-t", str(ttl), "198.51.100.7") == [(emulated[0][1], emulated[0][2], 11)]


def test_ingress_port_security_drops_a_spoofed_source(ref):
    # The legitimate ping first: vm2's MAC is then resolved, so the spoofed
    # ping is refused for its IP source, not for an ARP sent from 10.0.0.99.
    assert ref.exec("vm1", "ping", "-c1", "-W2", "10.0.0.12").returncode == 0
    ref.exec("vm1", "ip", "addr", "add", "10.0.0.99/32", "dev", ref.interface("vm1")[1], check=True)
    try:
        with ref.capture("vm2", direction="in", timeout=3) as cap:
            assert ref.exec("vm1", "ping", "-c1", "-W1", "-I", "10.0.0.99", "10.0.0.12").returncode != 0
        assert not [f for _t, f in cap.frames if b"\x0a\x00\x00\x63" in f[26:30]]  # nothing from 10.0.0.99
    finally:
        ref.exec("vm1", "ip", "addr", "del", "10.0.0.99/32", "dev", ref.interface("vm1")[1])


def test_egress_port_security_drops_a_routed_prefix_to_a_secured_vm(multi):
    """multi-router routes 192.168.100.0/24 via fw1, which has port security: OVN drops it at fw1's egress."""
    from scapy.layers.inet import IP

    with multi.capture("fw1", direction="in", timeout=2) as cap:
        assert multi.exec("app1", "ping", "-c1", "-W1", "192.168.100.5").returncode != 0
    assert not [f for _t, f in cap.frames if IP in dissect(f) and dissect(f)[IP].dst == "192.168.100.5"]


def _frame_to(dst_mac: str, src_mac: str) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(Ether(dst=dst_mac, src=src_mac) / IP(src="10.30.0.11", dst="10.30.0.99") / UDP(dport=9))


def test_unknown_unicast_floods_only_to_unknown_ports(multi):
    """OVN sends a frame for an unknown MAC only to ports with address "unknown" (lab2: no port security)."""
    lab1_mac = multi.plan.link_of_port("lab1").mac
    with multi.capture("lab2", direction="in", timeout=2) as to_lab2:
        send_raw(multi, "lab1", _frame_to("02:00:00:00:99:99", lab1_mac))
    assert any(dissect(f).dst == "02:00:00:00:99:99" for _t, f in to_lab2.frames)


def test_unknown_unicast_not_flooded_to_known_ports(ref):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frame = bytes(Ether(dst="02:00:00:00:99:98", src="fa:16:3e:00:00:11") / IP(src="10.0.0.11", dst="10.0.0.98")
                  / UDP(dport=9))
    with ref.capture("vm2", direction="in", timeout=1) as cap:
        send_raw(ref, "vm1", frame)
    assert not any(dissect(f).dst == "02:00:00:00:99:98" for _t, f in cap.frames)


def test_distributed_fip_answered_and_sent_with_its_external_mac():
    """As in OVN (and the emulator): a distributed floating IP is answered with its external_mac, and what its
    VM sends outside leaves with it; SNAT and centralised floating IPs keep the gateway port's MAC."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    for lab in _lab("dgp", f"ddgp{os.getpid()}"):
        gw_mac = lab.plan.link_of_port("router1-gw").mac
        with lab.capture("provnet-public", direction="in", timeout=3) as cap:
            assert lab.exec("upstream", "ping", "-c1", "-W2", "172.24.4.151").returncode == 0
            assert lab.exec("app1", "ping", "-c1", "-W2", "198.51.100.7").returncode == 0
            assert lab.exec("web2", "ping", "-c1", "-W2", "198.51.100.7").returncode == 0
        neigh = lab.exec("upstream", "ip", "neigh", "show", "172.24.4.151").stdout
        assert "fa:16:3e:cd:6e:c7" in neigh  # fip-app1's external_mac in topologies/dgp.yaml
        sources = {(p[Ether].src, p[IP].src) for p in map(Ether, (f for _t, f in cap.frames)) if ICMP in p}
        assert sources == {("fa:16:3e:cd:6e:c7", "172.24.4.151"), (gw_mac, "172.24.4.50")}
        from ovnsim.reach import reach

        emulated = reach(topo_path("dgp"), "app1", "outside", "icmp")
        assert {o.fields()["eth.src"] for o in emulated.forward_outputs} == {"fa:16:3e:cd:6e:c7"}


def test_replayed_frames_are_answered_by_the_vm_kernel(ref, tmp_path):
    """A replayed echo request reaches vm2 (as in the emulator), and vm2's kernel answers it (unlike it)."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    from ovnsim.capture.pcap import PcapWriter, read_frames
    from ovnsim.lab.replay import replay_into_lab

    capture = tmp_path / "in.pcap"
    with PcapWriter(capture) as writer:
        writer.write(bytes(Ether(src="fa:16:3e:00:00:11", dst="fa:16:3e:00:00:12")
                           / IP(src="10.0.0.11", dst="10.0.0.12", ttl=64) / ICMP(id=7, seq=1)))
    summary = replay_into_lab(ref, capture, tmp_path / "out", auto=True, settle=0.5)
    assert summary["sent"] == 1 and summary["files"]["vm2"] == "vm2-tx.pcap"
    got = [Ether(f) for _t, f, _o in read_frames(tmp_path / "out" / "vm2-tx.pcap")]
    assert any(ICMP in p and p[ICMP].type == 8 and p[ICMP].id == 7 for p in got)
    back = [Ether(f) for _t, f, _o in read_frames(tmp_path / "out" / "vm1-tx.pcap")]
    assert any(ICMP in p and p[ICMP].type == 0 and p[ICMP].id == 7 for p in back)


@pytest.mark.parametrize("dst", ["10.0.0.1", "100.64.0.2", "172.24.4.10"])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_tcp_udp_to_router_addresses_as_in_ovn(ref, dst, proto):
    """A plain router answers (port unreachable, reset); a gateway router drops, as OVN's lr_in_ip_input."""
    import sys

    from scapy.layers.inet import IP, TCP, UDP

    l4 = UDP(sport=4000, dport=9) if proto == "udp" else TCP(sport=4000, dport=9, flags="S")
    from scapy.layers.l2 import Ether

    from ovnsim.sim import Simulator

    frame = Ether(src="fa:16:3e:00:00:11", dst="fa:16:3e:fe:49:48") / IP(src="10.0.0.11", dst=dst) / l4
    emulated_answer = bool(Simulator.from_file(topo_path("reference")).inject("vm1", bytes(frame)).outputs)
    client = (
        "import socket, sys\n"
        f"kind = socket.SOCK_DGRAM if {proto!r} == 'udp' else socket.SOCK_STREAM\n"
        "s = socket.socket(socket.AF_INET, kind); s.settimeout(1.5)\n"
        "try:\n"
        f"    s.connect(({dst!r}, 9)); s.send(b'x'); s.recv(10)\n"
        "except ConnectionRefusedError:\n"
        "    sys.exit(3)\n"
        "except OSError:\n"
        "    sys.exit(4)\n")
    result = ref.exec("vm1", sys.executable, "-c", client, timeout=10)
    assert result.returncode in (3, 4), result.stderr
    assert (result.returncode == 3) == emulated_answer  # refused: the router answered


def test_traffic_leaving_without_snat_gets_no_reply_from_upstream(multi):
    """The upstream has no routes to tenant subnets: app1 (not SNATed by r-edge) reaches it, gets nothing back."""
    from ovnsim.lab.probe import probe_from

    unsnated, snated = probe_from(multi, "app1", ["198.51.100.7"])[0], probe_from(multi, "web1", ["198.51.100.7"])[0]
    assert unsnated.delivered == {"provnet-upstream"} and not unsnated.answered
    assert snated.delivered == {"provnet-upstream"} and snated.answered


def test_outside_to_a_fixed_address_is_routed_by_the_emulator_not_by_the_lab(ref):
    """The emulator sends a frame from outside to a fixed IP to the router, as if the upstream had a
    route (real OVN then forwards it, and the SYN-ACK leaves un-NATed); the lab's upstream has none."""
    from ovnsim.reach import reach

    emulated, on_lab = reach(topo_path("reference"), "outside", "vm1", "tcp/22"), reach(ref, "outside", "vm1", "tcp/22")
    assert emulated.reachable and emulated.seen_as == "198.51.100.7", emulated.explain()
    assert not on_lab.reachable and on_lab.blocker.direction == "forward", on_lab.explain()


def test_dhcp_is_answered_by_the_emulator_not_by_the_lab():
    """OVN's (and the emulator's) DHCP responder answers web1's DISCOVER; a lab has no DHCP server."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from ovnsim.sim import Simulator

    for lab in _lab("dhcp-metadata", f"ddhcp{os.getpid()}"):
        mac = lab.plan.link_of_port("web1").mac
        discover = bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                         / UDP(sport=68, dport=67)
                         / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")) + bytes(10), xid=0x1234)
                         / DHCP(options=[("message-type", "discover"), "end"]))
        emulated = Simulator.from_file(topo_path("dhcp-metadata")).inject("web1", discover)
        assert any(o.port == "web1" and o.fields().get("udp.src") == 67 for o in emulated.outputs)
        with lab.capture("web1", direction="in", timeout=1.5) as cap:
            send_raw(lab, "web1", discover)
        assert not [f for _t, f in cap.frames if UDP in dissect(f) and dissect(f)[UDP].sport == 67]
