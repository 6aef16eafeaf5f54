"""NAT on routers (OVN-NOTES sections 0.7, 2 and 3): SNAT, floating IPs, hairpin, both gateway models.

Topologies: ``topologies/reference.yaml`` (gateway-router model: router1 ->
join -> gr-router1, SNAT 10.0.{0,1}.0/24 -> 172.24.4.10, stateful FIP
172.24.4.100 -> vm2), ``topologies/dgp.yaml`` (distributed gateway port
172.24.4.50, SNAT for both subnets, stateless FIPs 172.24.4.150 -> web1
(centralised) and 172.24.4.151 -> app1 (distributed, with external_mac)), and
small variants built in code.
"""

from __future__ import annotations

import dataclasses

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from ovnsim.neutron.builder import TopologyBuilder
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.nb.model import (
    LSP_TYPE_LOCALNET,
    LSP_TYPE_ROUTER,
    NAT_DNAT_AND_SNAT,
    NAT_SNAT,
    LogicalRouter,
    LogicalRouterPort,
    LogicalSwitch,
    LogicalSwitchPort,
    LogicalTopology,
    NATRule,
    StaticMACBinding,
    StaticRoute,
)
from ovnsim.sim import Simulator

from pipeline_helpers import (
    TOPOLOGIES,
    UPSTREAM_IP,
    UPSTREAM_MAC,
    arp_request,
    fip_external_mac,
    lrp_mac,
    only_arp_answer,
    only_output,
    ping_frame,
    tcp_frame,
    udp_frame,
    wire,
)

INTERNET = "8.8.8.8"

# reference.yaml
VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
VM2_MAC, VM2_IP = "fa:16:3e:00:00:12", "10.0.0.12"
DB1_MAC, DB1_IP = "fa:16:3e:00:01:21", "10.0.1.21"
REF_GW_IP, REF_FIP = "172.24.4.10", "172.24.4.100"

# dgp.yaml
WEB1_MAC, WEB1_IP = "fa:16:3e:01:00:11", "10.1.0.11"
WEB2_MAC, WEB2_IP = "fa:16:3e:01:00:12", "10.1.0.12"
APP1_MAC, APP1_IP = "fa:16:3e:01:01:21", "10.1.1.21"
FW1_MAC, FW1_IP = "fa:16:3e:01:01:31", "10.1.1.31"
DGP_GW_IP, WEB1_FIP, APP1_FIP = "172.24.4.50", "172.24.4.150", "172.24.4.151"


@pytest.fixture(scope="module")
def reference_topology():
    return load_topology(str(TOPOLOGIES / "reference.yaml"))


@pytest.fixture(scope="module")
def dgp_topology():
    return load_topology(str(TOPOLOGIES / "dgp.yaml"))


@pytest.fixture
def ref(reference_topology):
    return Simulator(reference_topology)


@pytest.fixture
def dgp(dgp_topology):
    return Simulator(dgp_topology)


def ref_macs(sim):
    """(router1's web port MAC, router1's db port MAC, gr-router1's gateway port MAC)."""
    return lrp_mac(sim, "lrp-router1-web-v4"), lrp_mac(sim, "lrp-router1-db-v4"), lrp_mac(sim, "lrp-router1-gw")


def dgp_macs(sim):
    """(web port MAC, app port MAC, gateway port MAC) of dgp.yaml's router1."""
    return lrp_mac(sim, "lrp-router1-web-v4"), lrp_mac(sim, "lrp-router1-app-v4"), lrp_mac(sim, "lrp-router1-gw")


# -- gateway-router model (reference.yaml) -------------------------------------------------------


def test_gateway_router_snat_rewrites_the_source_to_the_gateway_ip(ref):
    web_mac, _, gw_mac = ref_macs(ref)
    frame = tcp_frame(VM1_MAC, web_mac, VM1_IP, INTERNET, sport=40000, dport=443)
    out = only_output(ref.inject("vm1", frame))
    assert (out.port, out.kind) == ("provnet-public", "packet")
    assert out.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": REF_GW_IP,
                                   "ip4.dst": INTERNET, "ip.ttl": 62, "tcp.src": 40000, "tcp.dst": 443}
    pkt = wire(out)
    assert (pkt[IP].src, pkt[TCP].sport) == (REF_GW_IP, 40000)
    assert bytes(pkt[TCP].payload) == b"payload!"


def test_gateway_router_floating_ip_beats_its_subnets_snat(ref):
    web_mac, _, gw_mac = ref_macs(ref)
    out = only_output(ref.inject("vm2", udp_frame(VM2_MAC, web_mac, VM2_IP, INTERNET, sport=5000)))
    assert out.port == "provnet-public"
    assert out.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": REF_FIP,
                                   "ip4.dst": INTERNET, "ip.ttl": 62, "udp.src": 5000, "udp.dst": 53}
    wire(out)


def test_gateway_router_floating_ip_dnats_inbound_traffic(ref):
    web_mac, _, gw_mac = ref_macs(ref)
    frame = tcp_frame(UPSTREAM_MAC, gw_mac, INTERNET, REF_FIP, sport=50000, dport=22)
    out = only_output(ref.inject("provnet-public", frame))
    assert (out.port, out.kind) == ("vm2", "packet")
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM2_MAC, "ip4.src": INTERNET,
                                   "ip4.dst": VM2_IP, "ip.ttl": 62, "tcp.src": 50000, "tcp.dst": 22}
    assert wire(out)[IP].dst == VM2_IP


def test_gateway_router_model_east_west_goes_through_the_distributed_router_unnated(ref):
    # In the gateway-router model both subnets hang off router1 (distributed):
    # web -> db never crosses gr-router1, so its SNAT does not apply.
    web_mac, db_mac, _ = ref_macs(ref)
    out = only_output(ref.inject("vm1", udp_frame(VM1_MAC, web_mac, VM1_IP, DB1_IP)))
    assert out.port == "db1"
    assert out.packet.fields() == {"eth.src": db_mac, "eth.dst": DB1_MAC, "ip4.src": VM1_IP, "ip4.dst": DB1_IP,
                                   "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}


def test_gateway_router_hairpin_to_a_floating_ip_is_dnated_and_snated(ref):
    # OVN-NOTES 3 "GW router hairpin": DNAT to the VM + SNAT to the gateway IP.
    web_mac, _, _ = ref_macs(ref)
    out = only_output(ref.inject("vm1", tcp_frame(VM1_MAC, web_mac, VM1_IP, REF_FIP, sport=40000, dport=80)))
    assert out.port == "vm2"
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM2_MAC, "ip4.src": REF_GW_IP,
                                   "ip4.dst": VM2_IP, "ip.ttl": 61, "tcp.src": 40000, "tcp.dst": 80}
    wire(out)


def test_inbound_to_an_internal_ip_is_routed_without_nat_gateway_router(ref):
    web_mac, _, gw_mac = ref_macs(ref)
    out = only_output(ref.inject("provnet-public", udp_frame(UPSTREAM_MAC, gw_mac, INTERNET, VM1_IP)))
    assert out.port == "vm1"
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": VM1_MAC, "ip4.src": INTERNET, "ip4.dst": VM1_IP,
                                   "ip.ttl": 62, "udp.src": 40000, "udp.dst": 53}


# -- a gateway router with two subnets of its own (OVN-NOTES 3, "GW router east-west") ------------

GR_NET3_MAC, GR_NET5_MAC, GR_PUB_MAC = "0a:00:00:00:03:01", "0a:00:00:00:05:01", "0a:00:00:00:04:14"
VM31_MAC, VM31_IP = "0a:00:00:03:00:31", "10.3.0.31"
VM32_MAC, VM32_IP = "0a:00:00:03:00:32", "10.3.0.32"
VM51_MAC, VM51_IP = "0a:00:00:05:00:51", "10.5.0.51"
GRB_SNAT_IP, GRB_FIP = "172.24.4.20", "172.24.4.200"


def _vm(name, mac, ip):
    return LogicalSwitchPort(name, addresses=(f"{mac} {ip}",), port_security=(f"{mac} {ip}",))


def _router_lsp(name, lrp):
    return LogicalSwitchPort(name, type=LSP_TYPE_ROUTER, addresses=("router",), options={"router-port": lrp})


@pytest.fixture(scope="module")
def grb_logical():
    """gr-b (options:chassis) with net3 (SNAT and a FIP) and net5 (no NAT) attached directly."""
    return LogicalTopology(
        switches=(
            LogicalSwitch("net3", (_vm("vm31", VM31_MAC, VM31_IP), _vm("vm32", VM32_MAC, VM32_IP),
                                   _router_lsp("net3-gr-b", "lrp-gr-b-net3"))),
            LogicalSwitch("net5", (_vm("vm51", VM51_MAC, VM51_IP), _router_lsp("net5-gr-b", "lrp-gr-b-net5"))),
            LogicalSwitch("public", (
                LogicalSwitchPort("ln-public", type=LSP_TYPE_LOCALNET, addresses=("unknown",),
                                  options={"network_name": "physnet1"}),
                _router_lsp("public-gr-b", "lrp-gr-b-public"))),
        ),
        routers=(
            LogicalRouter(
                "gr-b",
                (LogicalRouterPort("lrp-gr-b-net3", GR_NET3_MAC, ("10.3.0.1/24",)),
                 LogicalRouterPort("lrp-gr-b-net5", GR_NET5_MAC, ("10.5.0.1/24",)),
                 LogicalRouterPort("lrp-gr-b-public", GR_PUB_MAC, ("172.24.4.20/24",))),
                static_routes=(StaticRoute("0.0.0.0/0", UPSTREAM_IP),),
                nat=(NATRule(NAT_SNAT, GRB_SNAT_IP, "10.3.0.0/24"),
                     NATRule(NAT_DNAT_AND_SNAT, GRB_FIP, VM32_IP)),
                options={"chassis": "hv1"},
            ),
        ),
        static_mac_bindings=(StaticMACBinding("lrp-gr-b-public", UPSTREAM_IP, UPSTREAM_MAC),),
    )


@pytest.fixture
def grb(grb_logical):
    return Simulator(grb_logical)


def test_gateway_router_snats_east_west_traffic_between_its_subnets(grb):
    # lr_out_snat on a gateway router has no outport match.
    out = only_output(grb.inject("vm31", udp_frame(VM31_MAC, GR_NET3_MAC, VM31_IP, VM51_IP)))
    assert out.port == "vm51"
    assert out.packet.fields() == {"eth.src": GR_NET5_MAC, "eth.dst": VM51_MAC, "ip4.src": GRB_SNAT_IP,
                                   "ip4.dst": VM51_IP, "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}
    wire(out)


def test_gateway_router_does_not_snat_a_subnet_without_rule(grb):
    out = only_output(grb.inject("vm51", udp_frame(VM51_MAC, GR_NET5_MAC, VM51_IP, "8.8.4.4")))
    assert out.port == "ln-public"
    assert out.packet.fields() == {"eth.src": GR_PUB_MAC, "eth.dst": UPSTREAM_MAC, "ip4.src": VM51_IP,
                                   "ip4.dst": "8.8.4.4", "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}


def test_gateway_router_hairpin_between_its_own_vms(grb):
    out = only_output(grb.inject("vm31", tcp_frame(VM31_MAC, GR_NET3_MAC, VM31_IP, GRB_FIP, sport=40000, dport=22)))
    assert out.port == "vm32"
    assert out.packet.fields() == {"eth.src": GR_NET3_MAC, "eth.dst": VM32_MAC, "ip4.src": GRB_SNAT_IP,
                                   "ip4.dst": VM32_IP, "ip.ttl": 63, "tcp.src": 40000, "tcp.dst": 22}
    wire(out)


# -- distributed gateway port (dgp.yaml) ------------------------------------------------------------


def test_dgp_snat_rewrites_the_source_to_the_gateway_ip(dgp):
    web_mac, _, gw_mac = dgp_macs(dgp)
    frame = tcp_frame(WEB2_MAC, web_mac, WEB2_IP, INTERNET, sport=40000, dport=443)
    out = only_output(dgp.inject("web2", frame))
    assert (out.port, out.kind) == ("provnet-public", "packet")
    assert out.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": DGP_GW_IP,
                                   "ip4.dst": INTERNET, "ip.ttl": 63, "tcp.src": 40000, "tcp.dst": 443}
    wire(out)


def test_dgp_centralised_floating_ip_beats_snat(dgp):
    web_mac, _, gw_mac = dgp_macs(dgp)
    out = only_output(dgp.inject("web1", udp_frame(WEB1_MAC, web_mac, WEB1_IP, INTERNET)))
    assert out.port == "provnet-public"
    assert out.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": WEB1_FIP,
                                   "ip4.dst": INTERNET, "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}
    wire(out)


def test_dgp_centralised_floating_ip_dnats_inbound_traffic(dgp):
    web_mac, _, gw_mac = dgp_macs(dgp)
    out = only_output(dgp.inject("provnet-public", tcp_frame(UPSTREAM_MAC, gw_mac, INTERNET, WEB1_FIP, 50000, 22)))
    assert out.port == "web1"
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": WEB1_MAC, "ip4.src": INTERNET,
                                   "ip4.dst": WEB1_IP, "ip.ttl": 63, "tcp.src": 50000, "tcp.dst": 22}
    wire(out)


def test_distributed_floating_ip_leaves_with_its_external_mac(dgp):
    _, app_mac, _ = dgp_macs(dgp)
    ext_mac = fip_external_mac(dgp, "neutron-router1", APP1_FIP)
    out = only_output(dgp.inject("app1", udp_frame(APP1_MAC, app_mac, APP1_IP, INTERNET)))
    assert out.port == "provnet-public"
    assert out.packet.fields() == {"eth.src": ext_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": APP1_FIP,
                                   "ip4.dst": INTERNET, "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}
    wire(out)


def test_distributed_floating_ip_inbound_to_its_external_mac_is_dnated(dgp):
    _, app_mac, _ = dgp_macs(dgp)
    ext_mac = fip_external_mac(dgp, "neutron-router1", APP1_FIP)
    frame = tcp_frame(UPSTREAM_MAC, ext_mac, INTERNET, APP1_FIP, sport=50000, dport=8080)
    out = only_output(dgp.inject("provnet-public", frame))
    assert out.port == "app1"
    assert out.packet.fields() == {"eth.src": app_mac, "eth.dst": APP1_MAC, "ip4.src": INTERNET,
                                   "ip4.dst": APP1_IP, "ip.ttl": 63, "tcp.src": 50000, "tcp.dst": 8080}
    wire(out)


def test_arp_for_a_distributed_floating_ip_is_answered_with_its_external_mac(dgp):
    ext_mac = fip_external_mac(dgp, "neutron-router1", APP1_FIP)
    result = dgp.inject("provnet-public", arp_request(UPSTREAM_MAC, UPSTREAM_IP, APP1_FIP))
    out = only_arp_answer(result, "neutron-public")
    assert (out.port, out.kind) == ("provnet-public", "arp_reply")
    assert out.packet.fields() == {
        "eth.src": ext_mac, "eth.dst": UPSTREAM_MAC, "arp.op": 2,
        "arp.sha": ext_mac, "arp.spa": APP1_FIP, "arp.tha": UPSTREAM_MAC, "arp.tpa": UPSTREAM_IP}
    wire(out)


def test_arp_for_a_centralised_floating_ip_is_answered_with_the_gateway_mac(dgp):
    _, _, gw_mac = dgp_macs(dgp)
    result = dgp.inject("provnet-public", arp_request(UPSTREAM_MAC, UPSTREAM_IP, WEB1_FIP))
    out = only_arp_answer(result, "neutron-public")
    assert (out.port, out.kind) == ("provnet-public", "arp_reply")
    assert out.packet.fields()["eth.src"] == gw_mac and out.packet.fields()["arp.sha"] == gw_mac


def test_stateless_floating_ip_translates_both_directions_without_conntrack(dgp):
    web_mac, _, gw_mac = dgp_macs(dgp)
    out = only_output(dgp.inject("web1", tcp_frame(WEB1_MAC, web_mac, WEB1_IP, INTERNET, 40000, 443)))
    assert out.packet.fields()["ip4.src"] == WEB1_FIP
    back = only_output(dgp.inject("provnet-public", tcp_frame(UPSTREAM_MAC, gw_mac, INTERNET, WEB1_FIP, 443, 40000,
                                                              flags="SA")))
    assert back.port == "web1"
    assert back.packet.fields() == {"eth.src": web_mac, "eth.dst": WEB1_MAC, "ip4.src": INTERNET,
                                    "ip4.dst": WEB1_IP, "ip.ttl": 63, "tcp.src": 443, "tcp.dst": 40000}
    wire(back)
    assert len(dgp.conntrack) == 0


def test_stateful_snat_creates_a_conntrack_entry(dgp):
    # The counterpart of the stateless test: the same check sees SNAT's entry.
    web_mac, _, _ = dgp_macs(dgp)
    only_output(dgp.inject("web2", tcp_frame(WEB2_MAC, web_mac, WEB2_IP, INTERNET, 40000, 443)))
    assert len(dgp.conntrack) == 1


def test_dgp_hairpin_to_a_floating_ip_comes_from_the_gateway_ip_with_ttl_decremented_twice(dgp):
    # OVN-NOTES 0.7: routed to the gw port, SNAT to the gw IP, lr_out_egr_loop
    # re-enters the router, DNAT to the VM.
    web_mac, _, _ = dgp_macs(dgp)
    out = only_output(dgp.inject("web2", tcp_frame(WEB2_MAC, web_mac, WEB2_IP, WEB1_FIP, sport=40000, dport=80)))
    assert out.port == "web1"
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": WEB1_MAC, "ip4.src": DGP_GW_IP,
                                   "ip4.dst": WEB1_IP, "ip.ttl": 62, "tcp.src": 40000, "tcp.dst": 80}
    wire(out)


@pytest.fixture(scope="module")
def stateful_dgp_topology():
    b = TopologyBuilder("dgp-stateful")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip=UPSTREAM_IP, gateway_mac=UPSTREAM_MAC,
                       physical_network="physnet1")
    p = b.project("demo")
    p.network("web", cidr="10.1.0.0/24")
    p.port("web1", "web", ip=WEB1_IP, mac_address=WEB1_MAC)
    p.port("web2", "web", ip=WEB2_IP, mac_address=WEB2_MAC)
    p.router("router1", interfaces=["web-v4"], gateway_model="distributed-gateway-port",
             external_gateway={"network": "public", "ip_address": DGP_GW_IP})
    p.floating_ip("fip-web1", WEB1_FIP, port="web1", stateless=False)
    return b.build()


@pytest.fixture
def stateful_dgp(stateful_dgp_topology):
    return Simulator(stateful_dgp_topology)


def test_dgp_hairpin_to_a_stateful_floating_ip(stateful_dgp):
    web_mac = lrp_mac(stateful_dgp, "lrp-router1-web-v4")
    out = only_output(stateful_dgp.inject("web2", ping_frame(WEB2_MAC, web_mac, WEB2_IP, WEB1_FIP, ident=77)))
    assert out.port == "web1"
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": WEB1_MAC, "ip4.src": DGP_GW_IP,
                                   "ip4.dst": WEB1_IP, "ip.ttl": 62, "icmp4.type": 8, "icmp4.code": 0}
    assert wire(out)[ICMP].id == 77


def test_dgp_stateful_floating_ip_snats_outbound_traffic(stateful_dgp):
    web_mac, gw_mac = lrp_mac(stateful_dgp, "lrp-router1-web-v4"), lrp_mac(stateful_dgp, "lrp-router1-gw")
    out = only_output(stateful_dgp.inject("web1", udp_frame(WEB1_MAC, web_mac, WEB1_IP, INTERNET, 6000, 53)))
    assert out.port == "provnet-public"
    assert out.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": WEB1_FIP,
                                   "ip4.dst": INTERNET, "ip.ttl": 63, "udp.src": 6000, "udp.dst": 53}


def test_dgp_stateful_floating_ip_dnats_inbound_traffic(stateful_dgp):
    web_mac, gw_mac = lrp_mac(stateful_dgp, "lrp-router1-web-v4"), lrp_mac(stateful_dgp, "lrp-router1-gw")
    inbound = only_output(stateful_dgp.inject(
        "provnet-public", udp_frame(UPSTREAM_MAC, gw_mac, "8.8.4.4", WEB1_FIP, 7000, 161)))
    assert inbound.port == "web1"
    assert inbound.packet.fields() == {"eth.src": web_mac, "eth.dst": WEB1_MAC, "ip4.src": "8.8.4.4",
                                       "ip4.dst": WEB1_IP, "ip.ttl": 63, "udp.src": 7000, "udp.dst": 161}
    wire(inbound)


@pytest.fixture(scope="module")
def dgp_app_unnated(dgp_topology):
    """dgp.yaml without the SNAT rule of the app subnet (10.1.1.0/24)."""
    logical = compile_topology(dgp_topology)
    routers = tuple(
        dataclasses.replace(lr, nat=tuple(n for n in lr.nat
                                          if not (n.type == NAT_SNAT and n.logical_ip == "10.1.1.0/24")))
        for lr in logical.routers)
    assert routers != logical.routers
    return dataclasses.replace(logical, routers=routers)


def test_dgp_subnet_without_snat_is_routed_unnated(dgp_app_unnated):
    sim = Simulator(dgp_app_unnated)
    web_mac, app_mac, gw_mac = dgp_macs(sim)
    out = only_output(sim.inject("fw1", udp_frame(FW1_MAC, app_mac, FW1_IP, INTERNET)))
    assert out.port == "provnet-public"
    assert out.packet.fields() == {"eth.src": gw_mac, "eth.dst": UPSTREAM_MAC, "ip4.src": FW1_IP,
                                   "ip4.dst": INTERNET, "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}
    # the other subnet keeps its SNAT
    out = only_output(sim.inject("web2", udp_frame(WEB2_MAC, web_mac, WEB2_IP, INTERNET)))
    assert out.packet.fields()["ip4.src"] == DGP_GW_IP


def test_inbound_to_an_internal_ip_is_routed_without_nat_dgp(dgp):
    web_mac, _, gw_mac = dgp_macs(dgp)
    out = only_output(dgp.inject("provnet-public", udp_frame(UPSTREAM_MAC, gw_mac, INTERNET, WEB2_IP)))
    assert out.port == "web2"
    assert out.packet.fields() == {"eth.src": web_mac, "eth.dst": WEB2_MAC, "ip4.src": INTERNET,
                                   "ip4.dst": WEB2_IP, "ip.ttl": 63, "udp.src": 40000, "udp.dst": 53}


def test_snat_keeps_udp_checksum_and_payload_right(dgp):
    web_mac, _, _ = dgp_macs(dgp)
    frame = udp_frame(WEB2_MAC, web_mac, WEB2_IP, INTERNET, sport=33333, dport=123)
    pkt = wire(only_output(dgp.inject("web2", frame)))
    assert (pkt[IP].src, pkt[UDP].sport, pkt[UDP].dport) == (DGP_GW_IP, 33333, 123)
    assert bytes(pkt[UDP].payload) == b"payload!"
