"""The real-data-path harness itself (ovnsim.testing.realdp): boot, bind, inject, reset, stop.

Needs OVS and OVN (Debian: openvswitch-switch, ovn-host, ovn-central); skipped
with the reason when they are missing, a failure under OVNSIM_REQUIRE_REAL_OVN.
"""

from __future__ import annotations

import os
import time

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.testing.realdp import RealDatapath, is_garp

pytestmark = pytest.mark.ovn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def multi_router():
    RealDatapath.skip_unless_available()
    dp = RealDatapath()
    dp.start()
    try:
        dp.load(compile_topology(load_topology(os.path.join(ROOT, "topologies", "multi-router.yaml"))))
        yield dp
    finally:
        dp.stop()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_binds_every_vm_and_localnet_port(multi_router):
    assert set(multi_router.interfaces) == {
        "web1", "app1", "app2", "fw1", "db1", "lab1", "lab2", "provnet-upstream"}


def test_east_west_frame_leaves_on_the_peer_only(multi_router):
    multi_router.reset()
    frame = bytes(Ether(src="fa:16:3e:0a:00:11", dst="fa:16:3e:c6:cd:26")
                  / IP(src="10.10.0.11", dst="10.10.0.2", ttl=64) / ICMP())
    got = multi_router.inject("app1", frame)
    assert got.outputs == {"app2": [frame]}
    assert not got.controller


def test_unknown_next_hop_arp_comes_from_the_controller_with_the_vlan_tag(multi_router):
    """web1 -> outside: r-edge does not know 203.0.113.1's MAC; ovn-controller ARPs on the wire."""
    multi_router.reset()
    frame = bytes(Ether(src="fa:16:3e:0d:00:10", dst=_router_mac(multi_router, "10.0.0.1"))
                  / IP(src="10.0.0.10", dst="198.51.100.7", ttl=64) / ICMP())
    got = multi_router.inject("web1", frame)
    assert got.controller
    (out,) = got.outputs["provnet-upstream"]
    pkt = Ether(out)
    # the wire carries VLAN 100; the harness reports the logical port's frame
    assert Dot1Q not in pkt
    assert pkt[ARP].op == 1 and pkt[ARP].pdst == "203.0.113.1"
    wire = _last_wire_frame(multi_router, "provnet-upstream")
    assert Ether(wire)[Dot1Q].vlan == 100 and Ether(wire)[ARP].pdst == "203.0.113.1"
    # the upstream router answers: the held echo request is released, SNATed
    reply = bytes(Ether(src="52:54:00:00:00:01", dst=pkt.src)
                  / ARP(op=2, hwsrc="52:54:00:00:00:01", psrc="203.0.113.1",
                        hwdst=pkt[ARP].hwsrc, pdst=pkt[ARP].psrc))
    got = multi_router.inject("provnet-upstream", reply)
    (held,) = got.outputs["provnet-upstream"]
    assert Ether(held)[IP].src == "203.0.113.100" and Ether(held).dst == "52:54:00:00:00:01"


def _last_wire_frame(dp, port):
    from ovnsim.capture.pcap import read_frames

    frames = [data for _, data, _ in read_frames(os.path.join(dp.dir, f"{dp.interfaces[port]}-tx.pcap"))]
    return [f for f in frames if not is_garp(f)][-1]  # a periodic GARP may have followed


def _router_mac(dp, ip):
    out = dp.nbctl("--bare", "--columns=mac", "find", "Logical_Router_Port", f'networks="{ip}/24"')
    return out.strip()


def test_reset_forgets_learned_mac_bindings(multi_router):
    multi_router.reset()
    assert multi_router.sbctl("--bare", "--columns=ip", "list", "MAC_Binding").strip() == ""


def test_garp_is_recognised():
    garp = bytes(Ether(src="fa:16:3e:00:00:01", dst="ff:ff:ff:ff:ff:ff")
                 / ARP(op=1, hwsrc="fa:16:3e:00:00:01", psrc="172.24.4.10", pdst="172.24.4.10"))
    ask = bytes(Ether(src="fa:16:3e:00:00:01", dst="ff:ff:ff:ff:ff:ff")
                / ARP(op=1, hwsrc="fa:16:3e:00:00:01", psrc="172.24.4.10", pdst="172.24.4.1"))
    assert is_garp(garp) and not is_garp(ask)
    assert not is_garp(bytes(Ether() / IP() / ICMP()))


def test_two_harnesses_at_once_are_independent():
    RealDatapath.skip_unless_available()
    with RealDatapath() as a, RealDatapath() as b:
        assert a.dir != b.dir
        assert not set(a.pids.values()) & set(b.pids.values())
        pids = list(a.pids.values()) + list(b.pids.values())
        assert all(_alive(p) for p in pids)
    assert not any(_alive(p) for p in pids)


def test_periodic_gratuitous_arps_are_kept_apart_from_a_frames_outputs(multi_router):
    """OVN announces NAT addresses on the provider wire at ~0, 2, 6 s: never a frame's output."""
    multi_router.reset()
    frame = bytes(Ether(src="fa:16:3e:0a:00:11", dst="fa:16:3e:c6:cd:26")
                  / IP(src="10.10.0.11", dst="10.10.0.2", ttl=64) / ICMP())
    garps = []
    deadline = time.monotonic() + 10
    while not garps and time.monotonic() < deadline:
        got = multi_router.inject("app1", frame)
        assert got.outputs == {"app2": [frame]}
        garps = got.garps
        time.sleep(0.05)
    assert garps, "no gratuitous ARP within 10 s of start"
    port, garp = garps[0]
    assert port == "provnet-upstream" and is_garp(garp)


def test_an_injected_gratuitous_arp_is_flooded_as_outputs(multi_router):
    multi_router.reset()
    garp = bytes(Ether(src="fa:16:3e:0a:00:11", dst="ff:ff:ff:ff:ff:ff")
                 / ARP(op=1, hwsrc="fa:16:3e:0a:00:11", psrc="10.10.0.11", pdst="10.10.0.11"))
    got = multi_router.inject("app1", garp)
    assert got.outputs.get("app2") == [garp] and got.outputs.get("fw1") == [garp]


def test_a_second_topology_is_refused(multi_router):
    from ovnsim.testing.realovn import RealOVNError

    with pytest.raises(RealOVNError, match="already loaded"):
        multi_router.load(compile_topology(load_topology(os.path.join(ROOT, "topologies", "reference.yaml"))))
