"""The Simulator API: what goes in (bytes, scapy, microflows), what comes out (results, verdicts, traces).

Uses ``topologies/reference.yaml`` (gateway-router model, SNAT, a floating
IP) and, for flooding, a one-network topology built in code.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from ovnsim.neutron.builder import TopologyBuilder
from ovnsim.neutron.compiler import compile_topology
from ovnsim.errors import MicroflowError, OvnsimError
from ovnsim.neutron.loader import load_topology
from ovnsim.sim import Result
from ovnsim.sim import Simulator, verdict
from ovnsim.northd.stages import STAGES, Drop

from pipeline_helpers import (
    BCAST,
    TOPOLOGIES,
    UPSTREAM_MAC,
    arp_reply,
    arp_request,
    assert_dropped,
    lrp_mac,
    only_output,
    outputs_by_port,
    ping_frame,
    tcp_frame,
    udp_frame,
)

VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
VM2_MAC, VM2_IP = "fa:16:3e:00:00:12", "10.0.0.12"
DB1_MAC, DB1_IP = "fa:16:3e:00:01:21", "10.0.1.21"


@pytest.fixture(scope="module")
def reference():
    return load_topology(str(TOPOLOGIES / "reference.yaml"))


@pytest.fixture
def sim(reference):
    return Simulator(reference)


@pytest.fixture
def web_mac(sim):
    return lrp_mac(sim, "lrp-router1-web-v4")


# -- construction ----------------------------------------------------------------------------------


def test_simulator_takes_a_topology_a_logical_topology_or_a_file(reference):
    frame = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP)
    results = [Simulator(reference).inject("vm1", frame),
               Simulator(compile_topology(reference)).inject("vm1", frame),
               Simulator.from_file(str(TOPOLOGIES / "reference.yaml")).inject("vm1", frame)]
    verdicts = [verdict(r) for r in results]
    assert verdicts[0] == verdicts[1] == verdicts[2]
    assert only_output(results[0]).port == "vm2"


def test_ports_lists_every_switch_port(sim):
    assert {"vm1", "vm2", "db1", "provnet-public", "router1-web-v4", "router1-gw"} <= set(sim.ports)
    assert "lrp-router1-web-v4" not in sim.ports  # router ports are not switch ports


# -- input ------------------------------------------------------------------------------------------------


def test_bytes_and_scapy_packets_give_the_same_result(sim, web_mac):
    frame = tcp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, sport=1234, dport=80)
    raw = bytes(frame)
    got = [verdict(sim.inject("vm1", f)) for f in (frame, raw, bytearray(raw), memoryview(raw))]
    assert got[0] == got[1] == got[2] == got[3]
    assert got[0]["outputs"][0]["port"] == "db1"


def test_unknown_port_is_a_microflow_error(sim):
    with pytest.raises(MicroflowError, match="nope"):
        sim.inject("nope", udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP))
    assert issubclass(MicroflowError, OvnsimError)


def test_router_port_is_not_an_injection_point(sim):
    with pytest.raises(MicroflowError):
        sim.inject("lrp-router1-web-v4", udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP))


def _ipv4_header(ihl=5, total=None, version=4):
    hdr = bytes(IP(src=VM1_IP, dst=VM2_IP, proto=17, id=0))[:20]
    total = 28 if total is None else total
    return bytes([version << 4 | ihl, 0]) + total.to_bytes(2, "big") + hdr[4:]


ETH = bytes.fromhex("fa163e000012" "fa163e000011")
MALFORMED = {
    "runt": ETH[:10],
    "no-ethertype": ETH,
    "truncated-ipv4-header": ETH + b"\x08\x00" + _ipv4_header()[:12],
    "bad-ihl": ETH + b"\x08\x00" + _ipv4_header(ihl=4) + b"\0" * 8,
    "ihl-beyond-frame": ETH + b"\x08\x00" + _ipv4_header(ihl=15) + b"\0" * 8,
    "ip-version-6-in-ipv4": ETH + b"\x08\x00" + _ipv4_header(version=6) + b"\0" * 8,
    "total-length-beyond-frame": ETH + b"\x08\x00" + _ipv4_header(total=200) + b"\0" * 8,
    "truncated-udp": ETH + b"\x08\x00" + _ipv4_header(total=24) + b"\0" * 4,
    "truncated-tcp": bytes(Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, proto=6, id=0) / (b"\0" * 12)),
    "truncated-icmp": bytes(Ether(src=VM1_MAC, dst=VM2_MAC) / IP(src=VM1_IP, dst=VM2_IP, proto=1, id=0) / b"\x08\0"),
    "truncated-arp": bytes(Ether(src=VM1_MAC, dst=BCAST) / ARP(psrc=VM1_IP, pdst=VM2_IP, hwsrc=VM1_MAC))[:30],
    "truncated-vlan-tag": ETH + b"\x81\x00\x00",
}


@pytest.mark.parametrize("frame", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_frame_is_one_malformed_drop(sim, frame):
    result = sim.inject("vm1", frame)
    assert not result.outputs and result.dropped
    assert [d.reason for d in result.drops] == [Drop.MALFORMED]
    assert result.drops[0].datapath == "neutron-web"
    assert result.drops[0].stage in STAGES


def test_ipv6_is_unsupported(sim):
    frame = Ether(src=VM1_MAC, dst=VM2_MAC) / IPv6(src="fd00::11", dst="fd00::12") / UDP(sport=1, dport=2)
    result = sim.inject("vm1", frame)
    assert not result.outputs
    assert [d.reason for d in result.drops] == [Drop.UNSUPPORTED]


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=120), port=st.sampled_from(["vm1", "provnet-public", "router1-join"]))
def test_any_bytes_give_a_result_never_an_exception(sim, data, port):
    result = sim.inject(port, data)
    assert isinstance(result, Result)
    assert result.outputs or result.drops, "every frame ends as outputs or drops"
    for out in result.outputs:
        assert out.fields(), f"{out.port}: the output frame does not parse"
    for drop in result.drops:
        assert isinstance(drop.reason, Drop) and drop.stage in STAGES
    json.dumps(verdict(result))


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=60))
def test_any_truncation_of_a_valid_frame_gives_a_result(sim, web_mac, cut):
    frame = bytes(tcp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP))
    result = sim.inject("vm1", frame[:cut])
    assert [d.reason for d in result.drops] == [Drop.MALFORMED] and not result.outputs


# -- traces ---------------------------------------------------------------------------------------------


def test_trace_of_a_microflow_names_ovns_stages(sim, web_mac):
    result = sim.trace(f'inport == "vm1" && eth.src == {VM1_MAC} && eth.dst == {web_mac} && '
                       f"ip4.src == {VM1_IP} && ip4.dst == {DB1_IP} && ip.ttl == 64 && tcp && tcp.dst == 80")
    assert result.trace
    stages = [e.stage for e in result.trace]
    assert all(s in STAGES for s in stages)
    for expected in ("ls_in_check_port_sec", "ls_in_l2_lkup", "lr_in_admission", "lr_in_ip_routing",
                     "lr_in_arp_resolve", "lr_out_delivery", "ls_out_apply_port_sec"):
        assert expected in stages
    assert stages.index("ls_in_l2_lkup") < stages.index("lr_in_ip_routing") < stages.index("lr_in_arp_resolve")
    assert {e.datapath for e in result.trace} == {"neutron-web", "neutron-router1", "neutron-db"}
    for event in result.trace:
        assert STAGES[event.stage].table == event.table and STAGES[event.stage].pipeline == event.pipeline
    out = only_output(result)
    assert (out.port, out.packet.fields()["ip.ttl"], out.packet.fields()["tcp.dst"]) == ("db1", 63, 80)


def test_trace_gives_the_same_outputs_as_inject(sim, web_mac):
    traced = sim.trace(f'inport == "vm1" && eth.src == {VM1_MAC} && eth.dst == {web_mac} && '
                       f"ip4.src == {VM1_IP} && ip4.dst == 8.8.8.8 && ip.ttl == 64 && udp && udp.src == 5 "
                       f"&& udp.dst == 53")
    injected = Simulator(sim.logical).inject("vm1", Ether(src=VM1_MAC, dst=web_mac)
                                             / IP(src=VM1_IP, dst="8.8.8.8", ttl=64, id=0)
                                             / UDP(sport=5, dport=53))
    assert verdict(traced) == verdict(injected)


def test_trace_of_a_drop_ends_with_the_drop(sim):
    result = sim.trace(f'inport == "vm1" && eth.src == fa:16:3e:00:00:99 && eth.dst == {VM2_MAC} && '
                       f"ip4.src == {VM1_IP} && ip4.dst == {VM2_IP} && ip.ttl == 64 && udp")
    drop = assert_dropped(result, Drop.PORT_SECURITY, "ls_in_apply_port_sec")
    last = result.trace[-1]
    assert (last.stage, last.action, last.datapath) == (drop.stage, "drop;", drop.datapath)


def test_trace_rejects_a_bad_microflow(sim):
    with pytest.raises(MicroflowError):
        sim.trace('inport == "vm1" && eth.src ==')


_CAPTURES = [("reference-mixed.pcap", "reference.yaml"), ("dgp-mixed.pcap", "dgp.yaml"),
             ("multi-router-mixed.pcap", "multi-router.yaml"), ("two-projects-mixed.pcap", "two-projects.yaml"),
             ("dhcp-metadata-mixed.pcap", "dhcp-metadata.yaml"), ("reference-snaplen.pcap", "reference.yaml")]


@pytest.mark.parametrize("capture,topology", _CAPTURES)
def test_untraced_inject_gives_the_traced_outputs_and_drops(capture, topology):
    """Without a trace the engine runs its untraced build and the drops come from its drop
    arrays; with one, from the trace records: every frame of the bundled captures (auto
    ingress, capture times, snaplen) ends the same either way, drop details included."""
    from ovnsim.capture.pcap import read_frames
    from ovnsim.sim import run_traced

    logical = compile_topology(load_topology(str(TOPOLOGIES / topology)))
    untraced, traced = Simulator(logical), Simulator(logical)
    frames = list(read_frames(TOPOLOGIES.parent / "pcaps" / capture))
    drops = steps = 0
    for i, (stamp, frame, origlen) in enumerate(frames):
        a = run_traced(untraced.engine, untraced.renderer, frame, -1, with_trace=False, time_ns=stamp,
                       origlen=origlen)
        b = run_traced(traced.engine, traced.renderer, frame, -1, with_trace=True, time_ns=stamp,
                       origlen=origlen)
        assert a.outputs == b.outputs, f"{capture} frame {i}"
        assert a.drops == b.drops, f"{capture} frame {i}"
        assert not a.trace
        drops += len(a.drops)
        steps += len(b.trace)
    assert len(frames) >= 10 and drops > 0 and steps > 0, "the capture exercises drops and traces"


def test_inject_traces_only_when_asked(sim):
    frame = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP)
    assert sim.inject("vm1", frame).trace == []
    assert [e.stage for e in sim.inject("vm1", frame, trace=True).trace][:2] == ["ls_in_check_port_sec",
                                                                                 "ls_in_l2_lkup"]


# -- verdicts ---------------------------------------------------------------------------------------------


def test_verdict_of_an_output(sim, web_mac):
    result = sim.inject("vm1", tcp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, sport=1234, dport=80))
    v = sim.verdict(result)
    assert json.loads(json.dumps(v)) == v
    assert v == {
        "outputs": [{"port": "db1", "kind": "packet", "eth.src": lrp_mac(sim, "lrp-router1-db-v4"),
                     "eth.dst": DB1_MAC, "ip4.src": VM1_IP, "ip4.dst": DB1_IP, "ip.ttl": 63,
                     "tcp.src": 1234, "tcp.dst": 80}],
        "dropped": False,
        "drops": [],
    }


def test_verdict_of_a_drop(sim):
    v = sim.verdict(sim.inject("vm1", udp_frame(VM1_MAC, VM2_MAC, "10.0.0.99", VM2_IP)))
    assert json.loads(json.dumps(v)) == v
    assert v["outputs"] == [] and v["dropped"] is True
    assert len(v["drops"]) == 1
    assert {k: v["drops"][0][k] for k in ("datapath", "stage", "reason")} == {
        "datapath": "neutron-web", "stage": "ls_in_apply_port_sec", "reason": "port-security"}
    assert set(v["drops"][0]) <= {"datapath", "stage", "reason", "detail"}


def test_verdict_with_trace(sim):
    v = sim.verdict(sim.inject("vm1", udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP), trace=True), with_trace=True)
    assert json.loads(json.dumps(v)) == v
    assert v["trace"]
    for event in v["trace"]:
        assert set(event) == {"datapath", "pipeline", "table", "stage", "priority", "match", "action", "depth"}
        assert event["stage"] in STAGES
    assert "trace" not in sim.verdict(sim.inject("vm1", udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP)))


def test_verdict_does_not_depend_on_the_order_of_outputs(sim):
    result = sim.inject("vm1", arp_request(VM1_MAC, VM1_IP, "10.0.0.77"))
    assert len(result.outputs) >= 1
    flipped = Result(outputs=list(reversed(result.outputs)), drops=list(result.drops))
    assert verdict(flipped) == verdict(result)


def test_output_frame_is_bytes_of_the_packet(sim):
    out = only_output(sim.inject("vm1", udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP)))
    assert isinstance(out.frame, bytes)
    assert Ether(out.frame)[IP].dst == out.packet.fields()["ip4.dst"]


# -- counters: every frame ends as outputs and/or drops ------------------------------------------------------


@pytest.fixture(scope="module")
def lan():
    """One network, four ports, no router: flooding is easy to count."""
    b = TopologyBuilder("lan")
    p = b.project("demo")
    p.network("lan", cidr="10.9.0.0/24")
    for i in range(1, 5):
        p.port(f"h{i}", "lan", ip=f"10.9.0.{i + 10}", mac_address=f"fa:16:3e:00:09:{i + 10:02x}")
    p.network("solo", cidr="10.8.0.0/24")
    p.port("alone", "solo", ip="10.8.0.10", mac_address="fa:16:3e:00:08:10")
    return b.build()


def test_broadcast_makes_one_copy_per_other_port(lan):
    sim = Simulator(lan)
    result = sim.inject("h1", udp_frame("fa:16:3e:00:09:0b", BCAST, "10.9.0.11", "10.9.0.255"))
    assert set(outputs_by_port(result)) == {"h2", "h3", "h4"} and not result.drops


def _counted_frames(sim):
    web_mac, gw_mac = lrp_mac(sim, "lrp-router1-web-v4"), lrp_mac(sim, "lrp-router1-gw")
    return [
        ("vm1", udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP)),                    # switched
        ("vm1", udp_frame(VM1_MAC, BCAST, VM1_IP, "255.255.255.255")),           # flooded + router drop
        ("vm1", arp_request(VM1_MAC, VM1_IP, VM2_IP)),                           # ARP responder
        ("vm1", arp_request(VM1_MAC, VM1_IP, "10.0.0.77")),                      # flooded ARP
        ("vm1", tcp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP)),                    # routed
        ("vm1", tcp_frame(VM1_MAC, web_mac, VM1_IP, "8.8.8.8")),                 # SNATed
        ("vm1", ping_frame(VM1_MAC, web_mac, VM1_IP, "10.0.0.1")),               # echo reply
        ("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP, ttl=1)),             # time exceeded
        ("vm1", udp_frame(VM1_MAC, "02:00:00:00:00:77", VM1_IP, VM2_IP)),        # unknown unicast
        ("vm1", udp_frame(VM1_MAC, VM2_MAC, "10.0.0.99", VM2_IP)),               # port security
        ("vm1", b"\x00" * 10),                                                   # malformed
        ("provnet-public", arp_request(UPSTREAM_MAC, "172.24.4.1", "172.24.4.10")),  # router ARP reply
        ("provnet-public", udp_frame(UPSTREAM_MAC, gw_mac, "8.8.8.8", "172.24.4.100")),  # FIP in
        ("provnet-public", udp_frame(UPSTREAM_MAC, gw_mac, "8.8.8.8", "172.24.4.10")),   # no connection
        ("provnet-public", arp_reply(UPSTREAM_MAC, "172.24.4.1", gw_mac, "172.24.4.10")),  # consumed
    ]


def test_every_frame_ends_as_outputs_or_drops(sim):
    for port, frame in _counted_frames(sim):
        result = sim.inject(port, frame)
        assert result.outputs or result.drops, f"{port}: {frame!r} vanished"


def test_unknown_unicast_from_the_only_unknown_port_is_counted_as_a_drop(sim):
    # _MC_unknown of the provider network is {provnet-public}: minus the
    # in-port nothing is left, and the frame is dropped (not lost).
    result = sim.inject("provnet-public", udp_frame(UPSTREAM_MAC, "02:00:00:00:00:77", "172.24.4.1", "172.24.4.77"))
    assert not result.outputs and len(result.drops) == 1
    assert (result.drops[0].datapath, result.drops[0].stage) == ("neutron-public", "ls_in_l2_unknown")


def test_broadcast_on_a_switch_with_no_other_port_is_counted_as_a_drop(lan):
    result = Simulator(lan).inject("alone", udp_frame("fa:16:3e:00:08:10", BCAST, "10.8.0.10", "10.8.0.255"))
    assert not result.outputs and len(result.drops) == 1
    assert (result.drops[0].datapath, result.drops[0].stage) == ("neutron-solo", "ls_in_l2_lkup")


# -- state ---------------------------------------------------------------------------------------------------


def test_reset_forgets_learned_mac_bindings_but_keeps_static_ones(sim):
    gw_mac = lrp_mac(sim, "lrp-router1-gw")
    web_mac = lrp_mac(sim, "lrp-router1-web-v4")
    # gr-router1 learns 172.24.4.77 from an ARP reply on the provider network.
    sim.inject("provnet-public", arp_reply("52:54:00:00:00:77", "172.24.4.77", gw_mac, "172.24.4.10"))
    learned = only_output(sim.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "172.24.4.77")))
    assert (learned.kind, learned.packet.fields()["eth.dst"]) == ("packet", "52:54:00:00:00:77")
    sim.reset()
    forgotten = only_output(sim.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "172.24.4.77")))
    assert forgotten.kind == "arp" and forgotten.packet.fields()["arp.tpa"] == "172.24.4.77"
    # the upstream gateway's MAC is a static binding of the topology
    out = only_output(sim.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, "8.8.8.8")))
    assert out.packet.fields()["eth.dst"] == UPSTREAM_MAC
