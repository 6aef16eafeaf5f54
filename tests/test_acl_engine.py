"""The ACL stages in the engine on ``topologies/security-groups.yaml``: conntrack across packets,
what a drop names (trace, replay's drops.pcapng, reachability), and the compiled tables.

The verdicts of single packets are held to real ovn-trace's in
``test_security_groups_trace.py``; these tests follow connections over
several packets, which ovn-trace cannot (it takes the conntrack state as
given), as the real data path does (docs/acl-engine-notes.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import PcapNgReader

from ovnsim.capture.pcap import PcapWriter
from ovnsim.capture.replay import DROPS_FILE, replay
from ovnsim.datapath.microflow import parse_microflow
from ovnsim.errors import EngineError
from ovnsim.nb.model import ACL, LogicalTopology, PortGroup
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.northd.acls import compile_acls
from ovnsim.northd.stages import Drop
from ovnsim.sim import Simulator

import acl_cases

ROUTER_MAC = "fa:16:3e:fe:49:48"
MAC = {"web1": "fa:16:3e:04:00:11", "web2": "fa:16:3e:04:00:12", "bastion1": "fa:16:3e:04:00:20",
       "app1": "fa:16:3e:04:00:30", "sl1": "fa:16:3e:04:00:40", "db1": "fa:16:3e:04:01:21",
       "fw1": "fa:16:3e:04:01:31"}
IP4 = {"web1": "10.4.0.11", "web2": "10.4.0.12", "bastion1": "10.4.0.20", "app1": "10.4.0.30",
       "sl1": "10.4.0.40", "db1": "10.4.1.21", "fw1": "10.4.1.31"}


@pytest.fixture(scope="module")
def topology():
    return load_topology(str(acl_cases.TOPO))


@pytest.fixture()
def sim(topology):
    return Simulator(topology)


def tcp(src: str, dst: str, sport: int, dport: int, flags: str = "S", via_router: bool = False) -> bytes:
    eth_dst = ROUTER_MAC if via_router else MAC[dst]
    return bytes(Ether(src=MAC[src], dst=eth_dst) / IP(src=IP4[src], dst=IP4[dst], ttl=64)
                 / TCP(sport=sport, dport=dport, flags=flags))


def delivered(result, port: str) -> bool:
    return any(o.port == port for o in result.outputs)


def test_a_reply_passes_only_after_its_connection(sim):
    """web1 -> web2:80 is allowed; web2's answer reaches web1 only as the reply of that connection."""
    reply = tcp("web2", "web1", 80, 40000, "SA")
    assert not delivered(sim.inject("web2", reply), "web1")  # no connection yet: a new one, dropped
    sim.reset()  # (web2's zone committed that "new connection": its egress rules allow anything)
    assert delivered(sim.inject("web1", tcp("web1", "web2", 40000, 80)), "web2")
    result = sim.inject("web2", reply, trace=True)
    assert delivered(result, "web1")
    assert [(e.stage, e.priority) for e in result.trace if e.stage in ("ls_in_acl", "ls_out_acl")] == [
        ("ls_in_acl", 65532), ("ls_out_acl", 65532)]  # replies pass without rule evaluation
    # the connection's later packets ride conntrack: hint 4 (established), the first packet's ACL
    later = sim.inject("web1", tcp("web1", "web2", 40000, 80, "A"), trace=True)
    assert delivered(later, "web2")
    assert ("ls_out_acl_hint", 4) in [(e.stage, e.priority) for e in later.trace]


def test_a_connection_no_rule_allows_stays_blocked(sim):
    """Every packet of app1 -> web2:22 is dropped at web2's ls_out_acl: never committed in web2's zone."""
    for flags in ("S", "A", "PA"):
        result = sim.inject("app1", tcp("app1", "web2", 40000, 22, flags), trace=True)
        assert not result.outputs
        assert [(d.datapath, d.stage, d.reason) for d in result.drops] == [("neutron-web", "ls_out_acl", Drop.ACL)]
        assert ("ls_out_acl_hint", 7) in [(e.stage, e.priority) for e in result.trace]  # new every time


def test_the_drop_names_the_group_and_the_missing_rule(sim):
    result = sim.inject("app1", tcp("app1", "web2", 40000, 22))
    (drop,) = result.drops
    assert drop.detail == ("no security group rule allows it; it needs ingress tcp/22 from 10.4.0.30/32 "
                           "(or remote group shop-default) on group web of port web2")
    egress = sim.inject("db1", tcp("db1", "web1", 40000, 80, via_router=True))
    ((stage, detail),) = [(d.stage, d.detail) for d in egress.drops]
    assert stage == "ls_in_acl"
    assert detail.startswith("no security group rule allows it; it needs egress tcp/80 to 10.4.0.11/32 ")
    assert detail.endswith(" on group db of port db1")


def test_related_icmp_errors_of_an_allowed_connection_pass(sim):
    """The router's time-exceeded for web1's TTL-1 packet is ct.rel in web1's zone: delivered."""
    frame = bytes(Ether(src=MAC["web1"], dst=ROUTER_MAC) / IP(src=IP4["web1"], dst="198.51.100.7", ttl=1)
                  / UDP(sport=33000, dport=53))
    result = sim.inject("web1", frame, trace=True)
    assert [o.kind for o in result.outputs] == ["icmp4"] and result.outputs[0].port == "web1"
    assert ("ls_out_acl", 65532) in [(e.stage, e.priority) for e in result.trace]


def test_an_icmp_error_about_no_connection_is_invalid(sim):
    """fw1 (unfiltered, but tracked) sends an ICMP error quoting a datagram no connection of its zone knows:
    Linux conntrack finds nothing related, OVS says +inv, ls_in_acl drops it at 65532."""
    quoted = IP(src=IP4["db1"], dst="198.51.100.7", ttl=1) / UDP(sport=5555, dport=53)
    frame = bytes(Ether(src=MAC["fw1"], dst=MAC["db1"]) / IP(src=IP4["fw1"], dst=IP4["db1"])
                  / ICMP(type=3, code=3) / bytes(quoted)[:28])
    result = sim.inject("fw1", frame)
    assert [(d.stage, d.reason) for d in result.drops] == [("ls_in_acl", Drop.ACL_INVALID)]


def test_arp_and_unfiltered_ports_pass(sim):
    arp = bytes(Ether(src=MAC["app1"], dst="ff:ff:ff:ff:ff:ff")
                / ARP(op=1, hwsrc=MAC["app1"], psrc=IP4["app1"], pdst=IP4["web2"]))
    assert [o.kind for o in sim.inject("app1", arp).outputs] == ["arp_reply"]
    # fw1 has no port security: in no port group, anything to it from web1 is delivered
    assert delivered(sim.inject("web1", tcp("web1", "fw1", 40000, 9999, via_router=True)), "fw1")


def test_stateless_group_is_never_committed(sim):
    """sl1's allow-stateless rules let udp 5000-5010 in from 10.4.0.0/24 without conntrack."""
    frame = bytes(Ether(src=MAC["app1"], dst=MAC["sl1"]) / IP(src=IP4["app1"], dst=IP4["sl1"])
                  / UDP(sport=40000, dport=5005))
    before = len(sim.conntrack)
    result = sim.inject("app1", frame, trace=True)
    assert delivered(result, "sl1")
    assert ("ls_out_pre_acl", 2002) in [(e.stage, e.priority) for e in result.trace]
    assert len(sim.conntrack) == before + 1  # app1's side (allow-related egress) only
    off_range = bytes(Ether(src=MAC["app1"], dst=MAC["sl1"]) / IP(src=IP4["app1"], dst=IP4["sl1"])
                      / UDP(sport=40000, dport=6000))
    assert not delivered(sim.inject("app1", off_range), "sl1")


def test_icmp_type_rules(sim):
    """web allows echo requests from 10.4.0.0/16: ping passes, a timestamp request does not."""
    ping = bytes(Ether(src=MAC["app1"], dst=MAC["web2"]) / IP(src=IP4["app1"], dst=IP4["web2"]) / ICMP(type=8))
    stamp = bytes(Ether(src=MAC["app1"], dst=MAC["web2"]) / IP(src=IP4["app1"], dst=IP4["web2"])
                  / ICMP(type=13, id=7))
    assert delivered(sim.inject("app1", ping), "web2")
    assert not delivered(sim.inject("app1", stamp), "web2")


def test_topologies_without_acls_have_no_acl_stages():
    sim = Simulator.from_file(str(Path(acl_cases.ROOT) / "topologies" / "reference.yaml"))
    flow = ('inport == "vm1" && eth.src == fa:16:3e:00:00:11 && eth.dst == fa:16:3e:fe:49:48 && '
            "ip4.src == 10.0.0.11 && ip4.dst == 198.51.100.7 && ip.ttl == 64 && tcp && tcp.dst == 443")
    parse_microflow(flow)
    assert not [e for e in sim.trace(flow).trace if "acl" in e.stage or "stateful" in e.stage]


def test_the_lab_project_switch_has_no_acl_stages(topology):
    tables = compile_acls(compile_topology(topology))
    assert "lab1" not in tables.active_ports and "web1" in tables.active_ports and "fw1" in tables.active_ports
    assert "fw1" not in tables.per_port  # port security off: in no port group


def test_an_acl_match_ovnsim_does_not_evaluate_is_a_one_line_error(topology):
    logical = compile_topology(topology)
    pg = logical.port_groups[0]
    odd = PortGroup(pg.name, pg.ports, (ACL("to-lport", 1002, f"outport == @{pg.name} && ip4 && tcp.flags == 2",
                                            "allow-related"),))
    broken = LogicalTopology(logical.switches, logical.routers, logical.static_mac_bindings, port_groups=(odd,))
    with pytest.raises(EngineError, match=r"ACL to-lport 1002 .*tcp\.flags == 2.*not one ovnsim evaluates"):
        Simulator(broken)


def test_replay_drops_name_the_missing_rule(tmp_path, topology):
    capture = tmp_path / "sg.pcap"
    with PcapWriter(capture) as writer:
        writer.write(tcp("web1", "web2", 40000, 80), 1_000_000_000)  # allowed
        writer.write(tcp("app1", "web2", 40001, 22), 2_000_000_000)  # dropped by web2's groups
    summary = replay(str(acl_cases.TOPO), str(capture), str(tmp_path / "out"), auto=True)
    assert (summary.delivered, summary.dropped) == (1, 1)
    assert summary.drops["acl"]["stages"] == {"ls_out_acl": 1}
    with PcapNgReader(str(tmp_path / "out" / DROPS_FILE)) as reader:
        (comments,) = [[c.decode() for c in p.comments] for p in reader]
    assert comments == [
        "acl at neutron-web ls_out_acl",
        "no security group rule allows it; it needs ingress tcp/22 from 10.4.0.30/32 "
        "(or remote group shop-default) on group web of port web2",
        "frame 2, ingress app1"]


def test_ovn_dhcp_replies_pass_the_acls(sim):
    """ls_out_acl priority 34000: a reply from the port's DHCP server (server_mac, server_id, udp 67 -> 68)
    is not filtered; the same datagram from another address is (db1's groups allow no udp in)."""
    options = next(dict(row.options) for row in sim.logical.dhcp_options if row.key == "db-v4")

    def offer(src_ip: str) -> bytes:
        return bytes(Ether(src=options["server_mac"], dst=MAC["db1"]) / IP(src=src_ip, dst=IP4["db1"])
                     / UDP(sport=67, dport=68) / (b"\0" * 240))

    # fw1 has no port security: it can send what OVN's DHCP responder would
    result = sim.inject("fw1", offer(options["server_id"]), trace=True)
    assert delivered(result, "db1")
    assert ("ls_out_acl", 34000) in [(e.stage, e.priority) for e in result.trace]
    assert [d.stage for d in sim.inject("fw1", offer(IP4["fw1"])).drops] == ["ls_out_acl"]
