"""Tests of ovnsim.neutron.builder: the builder and the file format give the same topologies and errors."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import jsonschema
import pytest

from ovnsim.neutron.builder import BUILDER_SOURCE, TopologyBuilder
from ovnsim.errors import NotSupportedError, TopologyError
from ovnsim.neutron.loader import load_topology, topology_schema

REFERENCE = Path(__file__).resolve().parent.parent / "topologies" / "reference.yaml"


def reference_builder() -> TopologyBuilder:
    """topologies/reference.yaml, in code."""
    b = TopologyBuilder("reference", description="two subnets, one router, gateway router with SNAT and a floating IP")
    b.external_network(
        "public",
        cidr="172.24.4.0/24",
        gateway_ip="172.24.4.1",
        gateway_mac="52:54:00:c0:ff:ee",
        physical_network="physnet1",
        network_type="flat",
    )
    p = b.project("demo")
    p.network("web", subnets={"web-v4": {"cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}})
    p.network("db", subnets={"db-v4": {"cidr": "10.0.1.0/24", "gateway_ip": "10.0.1.1"}})
    p.port("vm1", network="web", ip="10.0.0.11", mac_address="fa:16:3e:00:00:11")
    p.port("vm2", network="web", fixed_ips=["10.0.0.12"], mac_address="fa:16:3e:00:00:12")
    p.port(
        "db1",
        network="db",
        fixed_ips=[{"subnet": "db-v4", "ip_address": "10.0.1.21"}],
        mac_address="fa:16:3e:00:01:21",
    )
    p.router(
        "router1",
        gateway_model="gateway-router",
        interfaces=["web-v4", "db-v4"],
        external_gateway={"network": "public", "ip_address": "172.24.4.10", "enable_snat": True},
    )
    p.floating_ip("fip-vm2", "172.24.4.100", port="vm2")
    return b


def test_builder_matches_the_reference_file():
    from_file = load_topology(REFERENCE)
    built = reference_builder().build()
    assert built.source == BUILDER_SOURCE
    assert built == dataclasses.replace(from_file, source=BUILDER_SOURCE)
    # same order too (dict equality ignores it)
    for attr in ("projects", "networks", "ports", "routers", "floating_ips"):
        assert list(getattr(built, attr)) == list(getattr(from_file, attr))


def test_document_validates_against_the_schema():
    doc = reference_builder().document()
    jsonschema.validate(doc, topology_schema(), cls=jsonschema.Draft202012Validator)
    assert doc["projects"]["demo"]["ports"]["vm1"] == {
        "network": "web",
        "fixed_ips": ["10.0.0.11"],
        "mac_address": "fa:16:3e:00:00:11",
    }


def test_document_is_a_copy():
    b = reference_builder()
    b.document()["projects"]["demo"]["ports"].clear()
    assert "vm1" in b.document()["projects"]["demo"]["ports"]


def test_shorthands_and_defaults():
    b = TopologyBuilder("demo-topo")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip="172.24.4.1", physical_network="physnet1")
    p = b.project("demo", description="the demo project")
    web = p.network("web", cidr=ipaddress.ip_network("10.0.0.0/24"))
    p.port("vm1", network=web, ip=ipaddress.ip_address("10.0.0.11"), port_security=False)
    p.port("vm2", network=web)
    p.router(
        "r1",
        interfaces=["web-v4"],
        external_gateway="public",
        gateway_model="distributed-gateway-port",
        routes=[("192.168.0.0/16", "10.0.0.11")],
    )
    p.floating_ip("fip1", "172.24.4.100", port="vm1")
    assert b.project("demo") is p
    topo = b.build()
    assert topo.name == "demo-topo"
    assert topo.projects["demo"].description == "the demo project"
    assert [s.id for s in topo.networks["web"].subnets] == ["web-v4"]
    assert topo.ports["vm1"].port_security is False
    assert str(topo.ports["vm2"].fixed_ips[0].ip_address) == "10.0.0.2"
    router = topo.routers["r1"]
    assert str(router.external_gateway.ip_address) == "172.24.4.2"
    assert [(str(r.destination), str(r.nexthop)) for r in router.routes] == [("192.168.0.0/16", "10.0.0.11")]
    fip = topo.floating_ips["fip1"]
    assert (fip.router, fip.network, fip.stateless) == ("r1", "public", True)


def test_builder_and_yaml_share_errors():
    b = reference_builder()
    b.project("demo").router("router2", interfaces=["db-v5"])
    with pytest.raises(TopologyError) as info:
        b.build()
    err = info.value
    assert err.source == "<builder>"
    assert err.path == "projects.demo.routers.router2.interfaces[0]"
    assert str(err) == (
        "<builder>: projects.demo.routers.router2.interfaces[0]: subnet 'db-v5' does not exist in project 'demo'"
    )


def test_builder_schema_error():
    b = reference_builder()
    b.project("demo").router("router2", gateway_model="dvr")
    with pytest.raises(TopologyError) as info:
        b.build()
    assert info.value.source == "<builder>"
    assert info.value.path == "projects.demo.routers.router2.gateway_model"
    assert "expected one of" in info.value.problem


def test_builder_missing_required_key():
    b = TopologyBuilder("t")
    b.external_network("public", cidr="172.24.4.0/24")  # no physical_network
    with pytest.raises(TopologyError) as info:
        b.build()
    assert str(info.value) == "<builder>: external_networks.public.provider: missing required key 'physical_network'"


def test_builder_ipv6_not_supported():
    b = TopologyBuilder("t")
    b.project("demo").network("web", cidr="fd00::/64")
    with pytest.raises(NotSupportedError, match="IPv6 is not supported yet") as info:
        b.build()
    assert info.value.path == "projects.demo.networks.web.subnets.web-v4.cidr"


@pytest.mark.parametrize(
    "action, path, phrase",
    [
        (lambda p: (p.port("vm1", network="web"), p.port("vm1", network="web")), "projects.demo.ports.vm1",
         "port 'vm1' is already defined"),
        (lambda p: p.network("web", cidr="10.0.0.0/24", subnets={}), "projects.demo.networks.web",
         "either cidr= (one subnet) or subnets="),
        (lambda p: p.port("vm1", network="web", ip="10.0.0.5", fixed_ips=[]), "projects.demo.ports.vm1",
         "either ip= or fixed_ips="),
        (lambda p: p.network("web", gateway_ip="10.0.0.1"), "projects.demo.networks.web", "need cidr="),
    ],
    ids=["duplicate-name", "cidr-and-subnets", "ip-and-fixed-ips", "gateway-without-cidr"],
)
def test_builder_usage_errors(action, path, phrase):
    p = TopologyBuilder("t").project("demo")
    with pytest.raises(TopologyError) as info:
        action(p)
    assert info.value.source == "<builder>"
    assert info.value.path == path
    assert phrase in info.value.problem
