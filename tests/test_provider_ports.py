"""VM ports directly on a provider (external) network, as Neutron builds them.

``topologies/provider-ports.yaml``: bastion and pub-db on ``public`` beside the
localnet port, app1 (floating IP 172.24.4.151) and app2 (SNAT only) behind
router1.  What the loader accepts and refuses, what the compiler writes, and
what the data path does through the Simulator API and a replay (ovn-trace
agrees on the single-packet verdicts: tests/conformance runs this topology).
"""

from __future__ import annotations

import copy

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from ovnsim.capture.replay import replay
from ovnsim.errors import TopologyError
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_document, load_topology
from ovnsim.sim import Simulator

from pipeline_helpers import TOPOLOGIES, UPSTREAM_MAC, arp_request, lrp_mac, tcp_frame

TOPO = TOPOLOGIES / "provider-ports.yaml"
BASTION_MAC, BASTION_IP = "fa:16:3e:04:00:20", "172.24.4.20"
PUBDB_MAC, PUBDB_IP = "fa:16:3e:04:00:21", "172.24.4.21"
APP1_MAC, APP1_IP, APP1_FIP = "fa:16:3e:04:01:11", "10.2.0.11", "172.24.4.151"
APP2_MAC, APP2_IP = "fa:16:3e:04:01:12", "10.2.0.12"
GW_IP = "172.24.4.50"
OUTSIDE = "198.51.100.7"


@pytest.fixture(scope="module")
def topology():
    return load_topology(str(TOPO))


@pytest.fixture
def sim(topology):
    return Simulator(topology)


def _only(result):
    assert not result.drops, result.drops
    assert len(result.outputs) == 1, [(o.port, o.kind) for o in result.outputs]
    return result.outputs[0]


def _wire(out):
    return Ether(out.frame)


# -- loader and compiler --------------------------------------------------


def test_provider_port_sits_beside_the_localnet_port(topology):
    logical = compile_topology(topology)
    public = logical.switch("neutron-public")
    names = [p.name for p in public.ports]
    assert names[0] == "provnet-public" and {"bastion", "pub-db"} <= set(names)
    bastion = next(p for p in public.ports if p.name == "bastion")
    assert bastion.type == ""
    assert bastion.addresses == (f"{BASTION_MAC} {BASTION_IP}",)
    assert bastion.port_security == (f"{BASTION_MAC} {BASTION_IP}",)
    assert bastion.external_ids["neutron:cidrs"] == f"{BASTION_IP}/24"
    # no NAT rule names a provider port's address
    for router in logical.routers:
        assert all(BASTION_IP not in (n.logical_ip, n.external_ip) for n in router.nat)


def _doc():
    import yaml

    return yaml.safe_load(TOPO.read_text())


def test_floating_ip_on_a_provider_port_is_refused():
    doc = _doc()
    doc["projects"]["demo"]["floating_ips"]["fip-bastion"] = {"floating_ip_address": "172.24.4.160", "port": "bastion"}
    with pytest.raises(TopologyError) as info:
        load_document(doc, "t.yaml")
    assert str(info.value) == (
        "t.yaml: projects.demo.floating_ips.fip-bastion.port: port 'bastion' is on external network 'public'; "
        "floating IPs apply only to ports on project networks")


def test_allocated_provider_address_keeps_clear_of_explicit_floating_ips():
    doc = _doc()
    ports = doc["projects"]["demo"]["ports"]
    for name in ("bastion", "pub-db"):
        del ports[name]["fixed_ips"]
    # the lowest free addresses are .2 and .3: a floating IP asks for .2
    doc["projects"]["demo"]["floating_ips"]["fip-app1"]["floating_ip_address"] = "172.24.4.2"
    topo = load_document(copy.deepcopy(doc), "t.yaml")
    addresses = {p.name: str(p.fixed_ips[0].ip_address) for p in topo.ports.values()}
    assert addresses["bastion"] == "172.24.4.3" and addresses["pub-db"] == "172.24.4.4"
    assert str(next(iter(topo.floating_ips.values())).floating_ip_address) == "172.24.4.2"


def test_unknown_port_network_names_both_places():
    doc = _doc()
    doc["projects"]["demo"]["ports"]["bastion"]["network"] = "publik"
    with pytest.raises(TopologyError, match="network 'publik' does not exist in project 'demo' nor among the "
                                            "external networks"):
        load_document(doc, "t.yaml")


# -- data path ------------------------------------------------------------


def test_provider_port_to_the_outside_is_switched_unchanged(sim):
    frame = tcp_frame(BASTION_MAC, UPSTREAM_MAC, BASTION_IP, OUTSIDE, dport=443)
    out = _only(sim.inject("bastion", frame))
    assert out.port == "provnet-public" and out.kind == "packet"
    assert out.frame == bytes(frame)  # no routing, no NAT: the frame leaves as it came


def test_provider_port_to_a_tenant_floating_ip_is_dnated(sim):
    gw_mac = lrp_mac(sim, "lrp-router1-gw")
    # the router answers ARP for the floating IP with its gateway MAC
    answers = [o for o in sim.inject("bastion", arp_request(BASTION_MAC, BASTION_IP, APP1_FIP)).outputs
               if o.kind == "arp_reply"]
    assert len(answers) == 1 and _wire(answers[0]).hwsrc == gw_mac
    out = _only(sim.inject("bastion", tcp_frame(BASTION_MAC, gw_mac, BASTION_IP, APP1_FIP, dport=22)))
    pkt = _wire(out)
    assert out.port == "app1"
    assert (pkt[IP].src, pkt[IP].dst, pkt[IP].ttl) == (BASTION_IP, APP1_IP, 63)
    assert (pkt.src, pkt.dst) == (lrp_mac(sim, "lrp-router1-app-v4"), APP1_MAC)


def test_tenant_vm_reaches_a_provider_port_through_the_gateway(sim):
    app_mac = lrp_mac(sim, "lrp-router1-app-v4")
    gw_mac = lrp_mac(sim, "lrp-router1-gw")
    out = _only(sim.inject("app1", tcp_frame(APP1_MAC, app_mac, APP1_IP, BASTION_IP, dport=22)))
    pkt = _wire(out)
    assert out.port == "bastion"
    assert (pkt[IP].src, pkt[IP].ttl, pkt.src, pkt.dst) == (APP1_FIP, 63, gw_mac, BASTION_MAC)
    # app2 has no floating IP: SNAT to the gateway address, and the reply is un-SNATed
    out = _only(sim.inject("app2", tcp_frame(APP2_MAC, app_mac, APP2_IP, BASTION_IP, sport=40001, dport=22)))
    assert out.port == "bastion" and _wire(out)[IP].src == GW_IP
    sport = _wire(out)[TCP].sport
    reply = tcp_frame(BASTION_MAC, gw_mac, BASTION_IP, GW_IP, sport=22, dport=sport, flags="SA")
    back = _only(sim.inject("bastion", reply))
    pkt = _wire(back)
    assert back.port == "app2" and (pkt[IP].dst, pkt[TCP].dport) == (APP2_IP, 40001)


def test_provider_ports_talk_directly_and_port_security_applies(sim):
    out = _only(sim.inject("bastion", tcp_frame(BASTION_MAC, PUBDB_MAC, BASTION_IP, PUBDB_IP, dport=5432)))
    assert out.port == "pub-db"
    spoofed = sim.inject("bastion", tcp_frame(BASTION_MAC, PUBDB_MAC, "172.24.4.99", PUBDB_IP))
    assert not spoofed.outputs
    assert [(d.stage, d.reason.label) for d in spoofed.drops] == [("ls_in_apply_port_sec", "port-security")]


def test_replay_auto_takes_provider_port_frames_at_their_port(tmp_path, sim):
    gw_mac = lrp_mac(sim, "lrp-router1-gw")
    frames = [tcp_frame(BASTION_MAC, gw_mac, BASTION_IP, APP1_FIP, dport=22),
              tcp_frame(BASTION_MAC, UPSTREAM_MAC, BASTION_IP, OUTSIDE, dport=443)]
    wrpcap(str(tmp_path / "in.pcap"), frames)
    summary = replay(str(TOPO), str(tmp_path / "in.pcap"), str(tmp_path / "out"), auto=True)
    assert (summary.frames_in, summary.delivered, summary.exited, summary.dropped) == (2, 1, 1, 0)
    assert summary.outputs == {"app1": 1, "provnet-public": 1}
