"""Shared helpers of the pipeline tests: frames at the edge, exact checks of outputs and drops.

Frames are built with scapy and injected as such; outputs are checked twice,
through ``output.packet.fields()`` (OVN's field names) and by parsing
``output.frame`` back with scapy, whose re-serialisation with lengths and
checksums deleted must give the very same bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet as ScapyPacket

from ovnsim.nb.model import LogicalSwitchPort, LogicalTopology
from ovnsim.sim import DropRecord, Output, Result
from ovnsim.sim import Simulator
from ovnsim.northd.stages import STAGES, Drop
from ovnsim.northd.tables import int_to_ip, int_to_mac

BCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
#: The upstream router of the example topologies' external network.
UPSTREAM_MAC = "52:54:00:c0:ff:ee"
UPSTREAM_IP = "172.24.4.1"

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"


# -- topology facts ------------------------------------------------------------


def lrp_mac(sim: Simulator, lrp: str) -> str:
    """The MAC of logical router port ``lrp``."""
    router = sim.tables.routers[sim.tables.router_of_port[lrp]]
    return int_to_mac(router.ports[lrp].mac)


def fip_external_mac(sim: Simulator, router: str, fip: str) -> str:
    """The ``external_mac`` of the distributed floating IP ``fip`` on ``router``."""
    for nat in sim.tables.routers[router].nat:
        if nat.external_mac is not None and int_to_ip(nat.external_ip) == fip:
            return int_to_mac(nat.external_mac)
    raise KeyError(fip)


# -- frames --------------------------------------------------------------------


def ip_frame(src_mac: str, dst_mac: str, src: str, dst: str, l4: Optional[ScapyPacket] = None,
             ttl: int = 64, proto: Optional[int] = None) -> ScapyPacket:
    """An Ethernet/IPv4 frame (``l4`` may be TCP(), UDP(), ICMP() or None for a bare payload).

    The IP header has scapy's defaults otherwise (identification 1, no
    flags), which a switch or router must keep.
    """
    ip = IP(src=src, dst=dst, ttl=ttl)
    if proto is not None:
        ip.proto = proto
    frame = Ether(src=src_mac, dst=dst_mac) / ip
    return frame / l4 / b"payload!" if l4 is not None else frame / b"payload!"


def tcp_frame(src_mac: str, dst_mac: str, src: str, dst: str, sport: int = 40000, dport: int = 80,
              ttl: int = 64, flags: str = "S") -> ScapyPacket:
    return ip_frame(src_mac, dst_mac, src, dst, TCP(sport=sport, dport=dport, flags=flags, seq=1000), ttl)


def udp_frame(src_mac: str, dst_mac: str, src: str, dst: str, sport: int = 40000, dport: int = 53,
              ttl: int = 64) -> ScapyPacket:
    return ip_frame(src_mac, dst_mac, src, dst, UDP(sport=sport, dport=dport), ttl)


def ping_frame(src_mac: str, dst_mac: str, src: str, dst: str, ident: int = 0x1234, seq: int = 1,
               ttl: int = 64, type: int = 8) -> ScapyPacket:
    return ip_frame(src_mac, dst_mac, src, dst, ICMP(type=type, id=ident, seq=seq), ttl)


def arp_request(sha: str, spa: str, tpa: str, eth_src: Optional[str] = None) -> ScapyPacket:
    """A broadcast ARP request (who has ``tpa``? tell ``spa``)."""
    return Ether(src=eth_src or sha, dst=BCAST) / ARP(op=1, hwsrc=sha, psrc=spa, hwdst=ZERO_MAC, pdst=tpa)


def arp_reply(sha: str, spa: str, tha: str, tpa: str) -> ScapyPacket:
    return Ether(src=sha, dst=tha) / ARP(op=2, hwsrc=sha, psrc=spa, hwdst=tha, pdst=tpa)


# -- results -------------------------------------------------------------------


def wire(output: Output) -> ScapyPacket:
    """``output.frame`` parsed by scapy, after checking its lengths and checksums.

    The frame is parsed, every length and checksum scapy can compute is
    deleted, and the packet re-serialised: the bytes must not change.
    """
    frame = output.frame
    parsed = Ether(frame)
    rebuilt = parsed.copy()
    if IP in rebuilt:
        del rebuilt[IP].chksum
        del rebuilt[IP].len
        # (a TCP/UDP header quoted in an ICMP error is TCPerror/UDPerror, not
        # TCP/UDP, so only the outer L4 header is recomputed)
        if TCP in rebuilt:
            del rebuilt[TCP].chksum
        if UDP in rebuilt:
            del rebuilt[UDP].chksum
            del rebuilt[UDP].len
        if ICMP in rebuilt:
            del rebuilt[ICMP].chksum
    assert bytes(rebuilt) == frame, (
        f"lengths or checksums of the frame out of {output.port} are wrong:\n"
        f"  got      {frame.hex()}\n  expected {bytes(rebuilt).hex()}")
    return parsed


def describe(result: Result) -> str:
    outs = [f"  out {o.port} {o.kind} {o.packet.fields()}" for o in result.outputs]
    drops = [f"  drop {d.datapath} {d.stage} {d.reason.name} {d.detail}" for d in result.drops]
    return "\n".join(outs + drops) or "  (nothing)"


def only_output(result: Result) -> Output:
    """The one output of ``result``, which must have no drop."""
    assert len(result.outputs) == 1 and not result.drops, "expected exactly one output:\n" + describe(result)
    return result.outputs[0]


def outputs_by_port(result: Result) -> Dict[str, Output]:
    """The outputs by port (at most one per port)."""
    ports = [o.port for o in result.outputs]
    assert len(ports) == len(set(ports)), "two outputs on one port:\n" + describe(result)
    return {o.port: o for o in result.outputs}


def assert_dropped(result: Result, reason: Drop, stage: str, datapath: Optional[str] = None) -> DropRecord:
    """``result`` has no output and exactly one drop, with this reason at this stage."""
    assert stage in STAGES, stage
    assert not result.outputs and len(result.drops) == 1, "expected exactly one drop:\n" + describe(result)
    drop = result.drops[0]
    assert (drop.reason, drop.stage) == (reason, stage), describe(result)
    if datapath is not None:
        assert drop.datapath == datapath, describe(result)
    return drop


def drops_of(result: Result) -> List[tuple]:
    """The drops as sorted (datapath, stage, reason) tuples."""
    return sorted((d.datapath, d.stage, d.reason) for d in result.drops)


# -- logical topologies ----------------------------------------------------------


def with_switch_port(logical: LogicalTopology, switch: str, port: LogicalSwitchPort) -> LogicalTopology:
    """``logical`` with ``port`` added to logical switch ``switch``.

    For what a tenant topology cannot say but an OVN northbound database can
    hold (a VM port on a provider network, a router port with extra MACs).
    """
    switches = tuple(dataclasses.replace(ls, ports=ls.ports + (port,)) if ls.name == switch else ls
                     for ls in logical.switches)
    assert switches != logical.switches, f"no switch {switch}"
    return dataclasses.replace(logical, switches=switches)


def replace_switch_port(logical: LogicalTopology, name: str, **changes) -> LogicalTopology:
    """``logical`` with switch port ``name`` changed (``dataclasses.replace`` keywords)."""
    switches = tuple(
        dataclasses.replace(ls, ports=tuple(dataclasses.replace(p, **changes) if p.name == name else p
                                            for p in ls.ports))
        for ls in logical.switches)
    assert switches != logical.switches, f"no switch port {name}"
    return dataclasses.replace(logical, switches=switches)


def empty_flood(switch: str) -> tuple:
    """The drop of a flood copy that has no port to go to.

    An ARP request for a router-owned IP from a provider network's localnet
    port is cloned to the router (ls_in_l2_lkup prio 80) and flooded to
    ``_MC_flood_l2``; when the localnet port is that group's only member the
    flooded copy is dropped.
    """
    return (switch, "ls_in_l2_lkup", Drop.NO_OTHER_PORT)


def only_arp_answer(result: Result, switch: str) -> Output:
    """The one output of an ARP request answered by a router, whose flooded copy had nowhere to go."""
    assert len(result.outputs) == 1 and drops_of(result) == [empty_flood(switch)], describe(result)
    return result.outputs[0]
