"""Reachability questions (ovnsim.reach): bidirectional answers, NAT seen, blocking stages."""

import pytest

from ovnsim.neutron.loader import load_topology
from ovnsim.reach import ReachError, Reachability, reach
from ovnsim.reach.frames import build_reply, build_request
from ovnsim.reach.endpoints import parse_proto
from ovnsim.sim import Simulator

REF = "topologies/reference.yaml"


@pytest.fixture(scope="module")
def ref():
    return Reachability(REF)


@pytest.mark.parametrize("proto", ["icmp", "tcp/22", "udp/53"])
def test_east_west_both_ways(ref, proto):
    a = ref.ask("vm1", "db1", proto)
    assert a.reachable, a.explain()
    assert a.seen_as == "10.0.0.11"
    assert [o.port for o in a.forward_outputs] == ["db1"]
    assert [o.port for o in a.return_outputs] == ["vm1"]
    assert a.path() == ["neutron-web", "neutron-router1", "neutron-db"]


def test_snat_and_fip_as_seen_outside(ref):
    assert ref.ask("vm1", "outside", "tcp/443").seen_as == "172.24.4.10"
    assert ref.ask("vm2", "outside", "tcp/443").seen_as == "172.24.4.100"
    a = ref.ask("outside", "172.24.4.100", "tcp/22")
    assert a.reachable and a.delivered_port == "vm2"
    assert a.nat() == ["DNAT 172.24.4.100 -> 10.0.0.12"]


def test_outside_on_the_external_subnet(ref):
    a = ref.ask("outside:172.24.4.1", "172.24.4.100", "icmp")
    assert a.reachable and a.seen_as == "172.24.4.1"
    a = ref.ask("outside:172.24.4.77", "172.24.4.100", "icmp")
    assert a.reachable and a.seen_as == "172.24.4.77"


def test_blocked_names_stage_and_rule(ref):
    a = ref.ask("vm1", "172.24.4.10", "tcp/22")
    assert not a.reachable
    assert (a.disposition, a.datapath, a.stage) == ("router-address", "gr-router1", "lr_in_arp_resolve")
    assert a.blocker.rule.action == "drop;"
    assert a.trace[-1] is a.blocker.rule
    assert "lr_in_arp_resolve" in a.explain()


def test_router_answers_ping(ref):
    a = ref.ask("vm1", "172.24.4.10", "icmp")
    assert a.reachable and a.forward_outputs[0].kind == "echo_reply"


def test_return_not_un_natted_is_a_failure():
    # outside -> a fixed IP behind a distributed gateway port (the upstream routes
    # it to the router): a UDP reply can open a connection, so the router's SNAT
    # commits it and it leaves as the router address, which the sender did not
    # talk to (real OVN: test_realdp_known.py)
    a = reach("topologies/dhcp-metadata.yaml", "outside", "web1", "udp/53")
    assert not a.reachable
    assert a.blocker.direction == "return" and a.disposition == "reply-not-un-nated"
    assert "172.24.4.60 -> 198.51.100.7" in a.blocker.detail


@pytest.mark.parametrize("proto", ["tcp/80", "icmp"])
def test_a_reply_that_cannot_open_a_connection_leaves_un_natted(proto):
    # behind a distributed gateway port, a SYN-ACK or an echo reply cannot open a
    # connection in conntrack: the SNAT commit is refused and the reply leaves as
    # the fixed IP, as on real OVN's data path (tests/conformance/test_realdp_known.py)
    a = reach("topologies/dhcp-metadata.yaml", "outside", "web1", proto)
    assert a.reachable and a.seen_as == "198.51.100.7", a.explain()
    assert a.return_outputs and a.return_outputs[0].fields()["ip4.src"] == "10.3.0.11"


@pytest.mark.parametrize("proto", ["tcp/80", "icmp", "udp/53"])
def test_a_gateway_router_does_not_snat_the_reply_of_a_connection_from_outside(ref, proto):
    # the gateway router commits the request in its DNAT zone (lr_out_post_undnat), so
    # the reply is ct.rpl there and skips (!ct.trk || !ct.rpl) SNAT, as on real OVN
    a = ref.ask("outside", "vm1", proto)
    assert a.reachable and a.seen_as == "198.51.100.7", a.explain()
    assert a.return_outputs and a.return_outputs[0].fields()["ip4.src"] == "10.0.0.11"
    assert "lr_out_post_undnat" in [e.stage for e in a.forward.trace]


def test_port_security_blocks_spoofed_source():
    topo = load_topology(REF)
    r = Reachability(topo)
    s, d = r.endpoints("vm1", "db1")
    spoofed = type(s)(s.kind, s.label, s.ip, s.network, s.port, "fa:16:3e:99:99:99")
    a = r.ask_endpoints(spoofed, d, parse_proto("icmp"))
    assert (a.disposition, a.stage) == ("port-security", "ls_in_apply_port_sec")


def test_simulator_state_is_kept_when_passed():
    topo = load_topology(REF)
    sim = Simulator(topo)  # keeps the Neutron topology it was built from
    resets = []
    sim.reset = lambda: resets.append(1)  # the caller's state is never forgotten
    assert reach(sim, "vm1", "outside", "tcp/443").reachable
    assert resets == []
    r = Reachability(topo)
    r.sim.reset = lambda: resets.append(1)
    r.ask("vm1", "outside", "tcp/443")  # a question of its own: fresh state
    assert resets == [1]
    assert reach(Simulator.from_file(str(REF)), "vm1", "db1", "icmp").reachable
    from ovnsim.neutron.compiler import compile_topology

    with pytest.raises(ReachError, match="Neutron topology"):  # built from the logical model only
        reach(Simulator(compile_topology(topo)), "vm1", "db1")


@pytest.mark.parametrize("src,dst,proto,msg", [
    ("vm9", "db1", "icmp", "unknown port"),
    ("vm1", "db1", "sctp/1", "protocol"),
    ("vm1", "10.9.9.9", "icmp", "no port, floating IP or router"),
    ("outside", "outside:1.2.3.4", "icmp", "both outside"),
    ("172.24.4.10", "vm1", "icmp", "does not send"),
])
def test_bad_questions(ref, src, dst, proto, msg):
    with pytest.raises(ReachError, match=msg):
        ref.ask(src, dst, proto)


def test_reply_mirrors_request():
    import ipaddress
    req = build_request("fa:16:3e:00:00:11", "fa:16:3e:00:01:21", ipaddress.ip_address("10.0.0.11"),
                        ipaddress.ip_address("10.0.1.21"), parse_proto("tcp/22"))
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    rep = Ether(build_reply(req))
    q = Ether(req)
    assert (rep.src, rep.dst, rep[IP].src, rep[IP].dst) == (q.dst, q.src, q[IP].dst, q[IP].src)
    assert (rep[TCP].sport, rep[TCP].dport, int(rep[TCP].flags), rep[TCP].ack) == (22, q[TCP].sport, 0x12,
                                                                                 q[TCP].seq + 1)


def test_frames_have_right_checksums():
    import ipaddress
    from ovnsim.datapath._fastpath import checksums_ok
    for proto in ("icmp", "tcp/22", "udp/53"):
        req = build_request("fa:16:3e:00:00:11", "fa:16:3e:00:01:21", ipaddress.ip_address("10.0.0.11"),
                            ipaddress.ip_address("10.0.1.21"), parse_proto(proto))
        assert checksums_ok(req) and checksums_ok(build_reply(req))


def test_a_ports_second_fixed_ip(tmp_path):
    from pathlib import Path
    text = Path(REF).read_text().replace("fixed_ips: [10.0.0.12]", "fixed_ips: [10.0.0.12, 10.0.0.13]")
    topo = tmp_path / "two-ips.yaml"
    topo.write_text(text)
    r = Reachability(str(topo))
    a = r.ask("db1", "10.0.0.13", "tcp/22")
    assert a.reachable and a.dst.ip.exploded == "10.0.0.13" and a.delivered_port == "vm2"
    a = r.ask("10.0.0.13", "db1", "icmp")
    assert a.reachable and a.seen_as == "10.0.0.13"
