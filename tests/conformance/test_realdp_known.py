"""What real OVN does in each kind of known difference (known_differences.KINDS), asserted on
its data path alone: the reference the strict xfails are measured against, pinned so that a
change of OVN version (or of the harness) that alters it is noticed."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import ICMP, IP, ICMPerror, IPerror, TCP, UDP, UDPerror
from scapy.layers.l2 import ARP, Ether

from conformance import conversations as cv
from conformance.known_differences import KINDS, KNOWN
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.testing.realdp import RealDatapath

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def real():
    RealDatapath.skip_unless_available()
    harnesses = {}

    def get(name):
        if name not in harnesses:
            topo = load_topology(os.path.join(ROOT, "topologies", f"{name}.yaml"))
            logical = compile_topology(topo)
            dp = RealDatapath().start()
            harnesses[name] = (topo, logical, dp)
            dp.load(logical)
        topo, logical, dp = harnesses[name]
        dp.reset()
        hosts = cv.make_hosts(topo, logical)
        convs = {c.name: c for c in cv.conversations(topo, logical, hosts)}
        return lambda conv: cv.run(convs[conv], hosts, lambda p, f: dp.inject(p, f).outputs)

    try:
        yield get
    finally:
        for _, _, dp in harnesses.values():
            dp.stop()


def test_every_known_conversation_has_a_kind():
    assert set(KNOWN.values()) == set(KINDS)


def test_router_tcp_reset_is_rst_ack_with_ack_seq_plus_one(real):
    steps = real("reference")("vm1-tcp-gateway")
    syn = Ether(steps[-1].frame)
    (rst,) = [Ether(f) for f in steps[-1].outputs["vm1"]]
    assert str(rst[TCP].flags) == "RA"
    assert rst[TCP].ack == syn[TCP].seq + 1 and rst[TCP].seq == 0
    assert rst[IP].ttl == 62  # built with 64, routed back through the router (63), one more hop


def test_lldp_from_a_port_with_port_security_is_dropped(real):
    (step,) = real("reference")("vm1-lldp")
    assert step.outputs == {}


def test_the_reply_of_a_connection_from_outside_to_a_fixed_address_is_not_snated(real):
    steps = real("reference")("provnet-public-tcp-fixed-vm1")
    synack = [Ether(f) for s in steps for f in s.outputs.get("provnet-public", [])
              if TCP in Ether(f) and str(Ether(f)[TCP].flags) == "SA"]
    assert synack and synack[0][IP].src == "10.0.0.11"


@pytest.mark.parametrize("topology, vm, leaves_as", [
    # a gateway router commits the request in its DNAT zone (lr_out_post_undnat: ct.new => ct_commit),
    # so the reply is ct.rpl there and its (!ct.trk || !ct.rpl) SNAT flows skip it
    ("reference", "vm1", "10.0.0.11"),
    # a distributed gateway port's SNAT flows have no such condition: the UDP reply opens
    # a SNAT connection (a SYN-ACK could not) and leaves as the router's address
    ("dhcp-metadata", "web1", "172.24.4.60"),
])
def test_the_reply_of_a_udp_exchange_from_outside_to_a_fixed_address(real, topology, vm, leaves_as):
    steps = real(topology)(f"provnet-public-udp-fixed-{vm}")
    replies = [Ether(f) for s in steps for f in s.outputs.get("provnet-public", [])
               if UDP in Ether(f) and Ether(f)[UDP].sport == 53]
    assert replies and replies[0][IP].src == leaves_as


def test_a_packet_waiting_for_arp_is_sent_after_the_reply(real):
    steps = real("multi-router")("web1-icmp-outside")
    kinds = [(s.port, Ether(s.frame).lastlayer().name) for s in steps]
    # web1's ARP, web1's echo request (router ARPs upstream), the upstream ARP reply
    # releases the held request, the echo reply comes back to web1
    released = steps[2].outputs["provnet-upstream"]
    assert ICMP in Ether(released[0]) and Ether(released[0])[IP].src == "203.0.113.100", kinds
    assert ICMP in Ether(steps[-1].outputs["web1"][0])


def test_hairpin_reply_through_the_snat_address_comes_back_on_a_dgp_router(real):
    steps = real("dgp")("web2-icmp-fip-web1")
    reply = Ether(steps[-1].outputs["web2"][0])
    assert reply[ICMP].type == 0 and reply[IP].src == "172.24.4.150" and reply[IP].dst == "10.1.0.12"


def _plain_commit_then_its_reply_to_a_floating_ip():
    """outside -> 172.24.4.1 from vm2's floating IP (reference.yaml), then 172.24.4.1's answer to it."""
    upstream, gateway = "52:54:00:c0:ff:ee", "fa:16:3e:ab:62:10"
    return [bytes(Ether(src=upstream, dst=gateway) / IP(src="172.24.4.100", dst="172.24.4.1")
                  / UDP(sport=5000, dport=53)),
            bytes(Ether(src=upstream, dst=gateway) / IP(src="172.24.4.1", dst="172.24.4.100")
                  / UDP(sport=53, dport=5000))]


def _real_outputs(logical, frames):
    """What real OVN's data path (a fresh one) sends for each of ``frames``, (port, frame) pairs in order."""
    dp = RealDatapath().start()
    try:
        dp.load(logical)
        return [dp.inject(port, bytes(frame)).outputs for port, frame in frames]
    finally:
        dp.stop()


def _assert_simulator_sends(topo, frames, real_outputs):
    """A fresh Simulator sends for each of ``frames`` exactly what real OVN sent, byte for byte."""
    from ovnsim.sim import Simulator

    sim = Simulator(topo)
    for (port, frame), real in zip(frames, real_outputs):
        assert {o.port: [o.frame] for o in sim.inject(port, bytes(frame)).outputs} == real


def test_the_reply_of_a_plain_commit_to_a_floating_ip_is_not_dnated():
    """A gateway router commits what it routes back out in its DNAT zone, un-NATed; a packet
    that is that connection's reply is not DNATed to the floating IP's VM, though it is sent to
    the floating IP: it is routed to that address as it is (an ARP for it on the provider network).
    The frozen oracle DNATs it (test_engines.py: PlainCommitReply); the engine does what real OVN does."""
    RealDatapath.skip_unless_available()
    topo = load_topology(os.path.join(ROOT, "topologies", "reference.yaml"))
    frames = [("provnet-public", f) for f in _plain_commit_then_its_reply_to_a_floating_ip()]
    real_outputs = _real_outputs(compile_topology(topo), frames)
    assert set(real_outputs[1]) == {"provnet-public"}, real_outputs[1]
    arp = Ether(real_outputs[1]["provnet-public"][0])
    assert arp.haslayer("ARP") and arp["ARP"].pdst == "172.24.4.100" and arp["ARP"].op == 1
    _assert_simulator_sends(topo, frames, real_outputs)


def test_a_plain_commit_whose_reply_tuple_is_taken_gets_another_source_port():
    """outside:5000 -> vm2's floating IP:53 is DNATed; then outside:5000 -> vm2's fixed address:53
    would have the same reply tuple in the gateway router's DNAT zone, where it is committed plain:
    OVS's conntrack gives it source port 5001, and vm2's reply from port 53 to 5000 still leaves
    as the floating IP.  The engine does what real OVN does (the frozen oracle has no plain
    commits: test_engines.py, PlainCommitClash)."""
    from ovnsim.northd.tables import build_tables, int_to_mac

    RealDatapath.skip_unless_available()
    topo = load_topology(os.path.join(ROOT, "topologies", "reference.yaml"))
    logical = compile_topology(topo)
    ports = build_tables(logical).routers["neutron-router1"].ports
    router_mac = int_to_mac(ports["lrp-router1-web-v4"].mac)
    upstream, gateway = "52:54:00:c0:ff:ee", "fa:16:3e:ab:62:10"
    frames = [("provnet-public", Ether(src=upstream, dst=gateway) / IP(src="172.24.4.1", dst="172.24.4.100")
               / UDP(sport=5000, dport=53)),
              ("provnet-public", Ether(src=upstream, dst=gateway) / IP(src="172.24.4.1", dst="10.0.0.12")
               / UDP(sport=5000, dport=53)),
              ("vm2", Ether(src="fa:16:3e:00:00:12", dst=router_mac) / IP(src="10.0.0.12", dst="172.24.4.1")
               / UDP(sport=53, dport=5000))]
    real_outputs = _real_outputs(logical, frames)
    second = Ether(real_outputs[1]["vm2"][0])
    assert (second[IP].dst, second[UDP].sport, second[UDP].dport) == ("10.0.0.12", 5001, 53)
    reply = Ether(real_outputs[2]["provnet-public"][0])
    assert (reply[IP].src, reply[UDP].sport, reply[IP].dst, reply[UDP].dport) == ("172.24.4.100", 53, "172.24.4.1", 5000)
    _assert_simulator_sends(topo, frames, real_outputs)


#: (what the outside sends from vm2's floating IP, the router's answer that comes back as its reply)
_ROUTER_ANSWERS = {
    # router1's own address: a TCP reset (lr_in_ip_input: tcp_reset)
    "tcp-reset": (IP(src="172.24.4.100", dst="10.0.0.1") / TCP(sport=5000, dport=22, flags="S", seq=1000),
                  ("10.0.0.1", TCP)),
    # and UDP to it: ICMP port unreachable
    "port-unreachable": (IP(src="172.24.4.100", dst="10.0.0.1") / UDP(sport=5000, dport=53), ("10.0.0.1", ICMP)),
    # to vm1 with TTL 2: the gateway router routes it with TTL 1, router1 answers time exceeded from its join address
    "time-exceeded": (IP(src="172.24.4.100", dst="10.0.0.11", ttl=2) / UDP(sport=5000, dport=53), ("100.64.0.1", ICMP)),
}


@pytest.mark.parametrize("case", sorted(_ROUTER_ANSWERS))
def test_a_routers_answer_that_is_the_reply_of_a_plain_commit_to_a_floating_ip_is_not_dnated(case):
    """The gateway router routes a packet from outside, sent from its floating IP, to router1
    and commits it, un-NATed, in its DNAT zone; router1 answers it (a TCP reset, an ICMP error),
    and the answer comes back into the gateway router as that connection's reply (or related to
    it): ct_dnat does not DNAT it to the floating IP's VM, it is routed to the floating IP as it
    is (held while the gateway router ARPs for it on the provider network, sent once an ARP reply
    comes).  The frozen oracle DNATs the reset and the port unreachable to vm2 and drops the time
    exceeded (test_engines.py's run_both excuses all three as PlainCommitReply, a router's own
    answer); the engine does what real OVN does, the ICMP errors RELATED to the plain commit."""
    RealDatapath.skip_unless_available()
    upstream, gateway, other = "52:54:00:c0:ff:ee", "fa:16:3e:ab:62:10", "52:54:00:00:01:00"
    packet, (answered_by, layer) = _ROUTER_ANSWERS[case]
    frames = [("provnet-public", Ether(src=upstream, dst=gateway) / packet),
              ("provnet-public", Ether(src=other, dst=gateway) / ARP(op=2, hwsrc=other, psrc="172.24.4.100",
                                                                       hwdst=gateway, pdst="172.24.4.10"))]
    topo = load_topology(os.path.join(ROOT, "topologies", "reference.yaml"))
    real_outputs = _real_outputs(compile_topology(topo), frames)
    assert set(real_outputs[0]) == {"provnet-public"}, real_outputs[0]
    (arp,) = [Ether(f) for f in real_outputs[0]["provnet-public"]]
    assert arp.haslayer(ARP) and arp[ARP].op == 1 and arp[ARP].pdst == "172.24.4.100"
    assert set(real_outputs[1]) == {"provnet-public"}, real_outputs[1]
    (answer,) = [Ether(f) for f in real_outputs[1]["provnet-public"]]
    assert (answer.dst, answer[IP].src, answer[IP].dst) == (other, answered_by, "172.24.4.100")
    assert answer.haslayer(layer)
    if layer is TCP:
        assert (answer[TCP].sport, answer[TCP].dport, str(answer[TCP].flags), answer[TCP].ack) == (22, 5000, "RA", 1001)
    else:
        assert (answer[ICMP].type, answer[ICMP].code) == ((11, 0) if case == "time-exceeded" else (3, 3))
        assert answer[IPerror].src == "172.24.4.100"
    _assert_simulator_sends(topo, frames, real_outputs)


def test_an_outside_icmp_error_related_to_a_plain_commit_is_not_dnated():
    """The outside sends from vm2's floating IP to 172.24.4.1 (a timestamp request); the gateway
    router routes it back out and commits it, un-NATed, in its DNAT zone.  The time exceeded the
    outside sends about it, to the floating IP, is RELATED to that connection (the datagram it
    quotes is its original): ct_dnat does not DNAT it to vm2, it is routed to the floating IP as it
    is, after an ARP for it.  The frozen oracle DNATs it to vm2 (test_engines.py's run_both
    excuses it as PlainCommitReply); the engine does what real OVN does."""
    RealDatapath.skip_unless_available()
    upstream, gateway, other = "52:54:00:c0:ff:ee", "fa:16:3e:ab:62:10", "52:54:00:00:01:00"
    fip, outside = "172.24.4.100", "172.24.4.1"
    frames = [("provnet-public", Ether(src=upstream, dst=gateway) / IP(src=fip, dst=outside)
               / ICMP(type=13, id=7, seq=1)),
              ("provnet-public", Ether(src=upstream, dst=gateway) / ARP(op=2, hwsrc=upstream, psrc=outside,
                                                                          hwdst=gateway, pdst="172.24.4.10")),
              ("provnet-public", Ether(src=upstream, dst=gateway) / IP(src=outside, dst=fip) / ICMP(type=11, code=0)
               / IPerror(src=fip, dst=outside, ttl=63) / ICMPerror(type=13, id=7, seq=1)),
              ("provnet-public", Ether(src=other, dst=gateway) / ARP(op=2, hwsrc=other, psrc=fip,
                                                                       hwdst=gateway, pdst="172.24.4.10"))]
    topo = load_topology(os.path.join(ROOT, "topologies", "reference.yaml"))
    real_outputs = _real_outputs(compile_topology(topo), frames)
    assert set(real_outputs[2]) == {"provnet-public"}, real_outputs[2]
    (arp,) = [Ether(f) for f in real_outputs[2]["provnet-public"]]
    assert arp.haslayer(ARP) and arp[ARP].op == 1 and arp[ARP].pdst == fip
    assert set(real_outputs[3]) == {"provnet-public"}, real_outputs[3]
    (error,) = [Ether(f) for f in real_outputs[3]["provnet-public"]]
    assert (error.dst, error[IP].src, error[IP].dst, error[ICMP].type) == (other, outside, fip, 11)
    assert (error[IPerror].src, error[ICMPerror].id) == (fip, 7)
    _assert_simulator_sends(topo, frames, real_outputs)


#: (topology, VM, the NAT address its connections with the outside use)
_NATTED = [("reference", "vm2", "172.24.4.100"), ("reference", "vm1", "172.24.4.10"),
           ("dgp", "web1", "172.24.4.150"), ("dgp", "app1", "172.24.4.151"), ("dgp", "web2", "172.24.4.50")]
_FLOATING = {"172.24.4.100", "172.24.4.150", "172.24.4.151"}


#: (topology, VM, its NAT address, way): the outside opens connections only to floating IPs
_RELATED_CASES = [(topology, vm, nat_ip, way) for topology, vm, nat_ip in _NATTED for way in ("to-vm", "from-vm")
                  if way == "from-vm" or nat_ip in _FLOATING]


def _related_conversation(topo, logical, vm, nat_ip, way, proto):
    """(port, frame) triples: a UDP exchange (or a ping and its echo reply) between ``vm`` and the
    outside host, then an ICMP port unreachable about the reply, sent the connection's original
    way.  ``way``: "to-vm" (the outside opened it to the floating IP; the outside's error about
    the VM's reply) or "from-vm" (the VM opened it; the VM's error about the outside's reply)."""
    from ovnsim.reach.endpoints import Directory, frame_ends

    directory = Directory(topo, logical)
    host, me, nat = directory.resolve("outside"), directory.resolve(vm), directory.resolve(nat_ip)
    out_port, out_src, out_dst = frame_ends(directory, host, nat)
    vm_port, vm_src, vm_dst = frame_ends(directory, me, host)
    outside, fixed = str(host.ip), str(me.ip)

    def request(sport, dport):
        return UDP(sport=sport, dport=dport) if proto == "udp" else ICMP(type=8, id=sport, seq=1)

    def reply(sport, dport):
        return UDP(sport=sport, dport=dport) if proto == "udp" else ICMP(type=0, id=dport, seq=1)

    def quoted(sport, dport):
        return UDPerror(sport=sport, dport=dport) if proto == "udp" else ICMPerror(type=0, id=dport, seq=1)

    if way == "to-vm":
        return [(out_port, Ether(src=out_src, dst=out_dst) / IP(src=outside, dst=nat_ip) / request(5000, 53)),
                (vm_port, Ether(src=vm_src, dst=vm_dst) / IP(src=fixed, dst=outside) / reply(53, 5000)),
                (out_port, Ether(src=out_src, dst=out_dst) / IP(src=outside, dst=nat_ip) / ICMP(type=3, code=3)
                 / IPerror(src=nat_ip, dst=outside, ttl=63) / quoted(53, 5000))]
    return [(vm_port, Ether(src=vm_src, dst=vm_dst) / IP(src=fixed, dst=outside) / request(40000, 53)),
            (out_port, Ether(src=out_src, dst=out_dst) / IP(src=outside, dst=nat_ip) / reply(53, 40000)),
            (vm_port, Ether(src=vm_src, dst=vm_dst) / IP(src=fixed, dst=outside) / ICMP(type=3, code=3)
             / IPerror(src=outside, dst=fixed, ttl=62) / quoted(53, 40000))]


@pytest.mark.parametrize("proto", ["udp", "icmp"])
@pytest.mark.parametrize("topology,vm,nat_ip,way", _RELATED_CASES)
def test_an_icmp_error_the_original_way_is_nated_as_its_connection(topology, vm, nat_ip, way, proto):
    """An ICMP error about a connection's reply travels the connection's original way; conntrack
    finds it RELATED (the quoted datagram reversed is the connection's original tuple) and NATs it
    as the connection: the outside's port unreachable to a floating IP reaches the VM at its fixed
    address, the datagram it quotes rewritten too; a VM's error about a reply it got leaves from
    its NAT address, never its fixed one.  On a gateway router the datagram it quotes is rewritten
    too; through a distributed gateway port's floating IP real OVN leaves the quoted datagram as it
    was.  The engine does what real OVN does, byte for byte (on a gateway router it used to route
    the first to the floating IP as it was and let the second leave with the VM's fixed address).
    ``proto``: the connection a UDP exchange, or a ping (the error quotes an echo reply)."""
    RealDatapath.skip_unless_available()
    topo = load_topology(os.path.join(ROOT, "topologies", f"{topology}.yaml"))
    logical = compile_topology(topo)
    frames = _related_conversation(topo, logical, vm, nat_ip, way, proto)
    real_outputs = _real_outputs(logical, frames)
    error_port = vm if way == "to-vm" else frames[1][0]
    assert set(real_outputs[2]) == {error_port}, real_outputs[2]
    (error,) = [Ether(f) for f in real_outputs[2][error_port]]
    fixed = frames[1 if way == "to-vm" else 0][1][IP].src  # the VM's own address
    # the quoted datagram as the error's receiver sent it (a DGP's floating IP: as it was on the wire)
    quoted = nat_ip if topology == "dgp" and nat_ip in _FLOATING else None
    if way == "to-vm":
        assert (error[IP].dst, error[IPerror].src) == (fixed, quoted or fixed)
    else:
        assert (error[IP].src, error[IPerror].dst) == (nat_ip, fixed if quoted else nat_ip)
    _assert_simulator_sends(topo, frames, real_outputs)
