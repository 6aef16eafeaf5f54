"""Tests of ovnsim.neutron.loader: resolution of topology files and every error it reports."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ovnsim.errors import NotSupportedError, TopologyError
from ovnsim.neutron.loader import MAC_KINDS, derive_mac, load_document, load_topology, topology_schema
from ovnsim.neutron.model import DISTRIBUTED_GATEWAY_PORT, Topology

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "topologies" / "reference.yaml"
MAC_RE = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")
ip = ipaddress.ip_address


def base_doc() -> dict:
    """A small valid document: two project networks, a router with a gateway, a FIP."""
    return {
        "name": "t",
        "external_networks": {
            "public": {
                "provider": {"physical_network": "physnet1"},
                "subnets": {"public-v4": {"cidr": "172.24.4.0/24", "gateway_ip": "172.24.4.1"}},
            }
        },
        "projects": {
            "demo": {
                "networks": {
                    "web": {"subnets": {"web-v4": {"cidr": "10.0.0.0/24"}}},
                    "db": {"subnets": {"db-v4": {"cidr": "10.0.1.0/24"}}},
                },
                "ports": {
                    "vm1": {"network": "web", "fixed_ips": ["10.0.0.11"]},
                    "db1": {"network": "db"},
                },
                "routers": {
                    "router1": {"interfaces": ["web-v4", "db-v4"], "external_gateway": {"network": "public"}},
                },
                "floating_ips": {"fip1": {"floating_ip_address": "172.24.4.100", "port": "vm1"}},
            }
        },
    }


def demo(doc: dict) -> dict:
    return doc["projects"]["demo"]


def write(tmp_path: Path, doc: dict, name: str = "topo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load(tmp_path: Path, doc: dict) -> Topology:
    return load_topology(write(tmp_path, doc))


def expect_error(tmp_path: Path, doc_or_text, path: str, phrase: str, cls=TopologyError) -> TopologyError:
    """Load a document (or raw YAML text) that must fail with ``path`` and ``phrase``."""
    file = tmp_path / "topo.yaml"
    if isinstance(doc_or_text, str):
        file.write_text(doc_or_text)
    else:
        write(tmp_path, doc_or_text)
    with pytest.raises(cls) as info:
        load_topology(file)
    err = info.value
    message = str(err)
    assert "\n" not in message, message
    assert message.startswith(f"{file}: {path}: " if path else f"{file}: "), message
    assert err.source == str(file)
    assert err.path == path, message
    assert phrase in err.problem, message
    return err


# --------------------------------------------------------------------------
# The reference topology
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Topology:
    return load_topology(REFERENCE)


def test_reference_objects_and_order(reference):
    assert reference.name == "reference"
    assert reference.source == str(REFERENCE)
    assert list(reference.projects) == ["demo"]
    # external networks first, then project networks, each in file order
    assert list(reference.networks) == ["public", "web", "db"]
    assert list(reference.ports) == ["vm1", "vm2", "db1"]
    assert list(reference.routers) == ["router1"]
    assert list(reference.floating_ips) == ["fip-vm2"]
    assert reference.networks["public"].external
    assert reference.networks["public"].project is None
    assert reference.networks["public"].network_type == "flat"
    assert reference.networks["public"].physical_network == "physnet1"
    assert reference.networks["web"].project == "demo"
    assert not reference.networks["web"].external


def test_reference_subnets(reference):
    public = reference.subnet("public-v4")
    assert public.network == "public"
    assert public.cidr == ipaddress.ip_network("172.24.4.0/24")
    assert public.gateway_ip == ip("172.24.4.1")
    assert public.gateway_mac == "52:54:00:c0:ff:ee"
    assert reference.subnet("web-v4").gateway_ip == ip("10.0.0.1")
    assert reference.subnet("db-v4").network == "db"


def test_reference_ports(reference):
    vm1 = reference.ports["vm1"]
    assert vm1.network == "web"
    assert vm1.project == "demo"
    assert vm1.mac_address == "fa:16:3e:00:00:11"
    assert [(f.subnet, f.ip_address) for f in vm1.fixed_ips] == [("web-v4", ip("10.0.0.11"))]
    assert vm1.port_security is True
    assert vm1.admin_state_up is True
    db1 = reference.ports["db1"]
    assert [(f.subnet, f.ip_address) for f in db1.fixed_ips] == [("db-v4", ip("10.0.1.21"))]


def test_reference_router(reference):
    router = reference.routers["router1"]
    assert router.gateway_model == "gateway-router"
    assert router.chassis == "hv1"
    assert [(i.id, i.subnet, i.ip_address) for i in router.interfaces] == [
        ("router1-web-v4", "web-v4", ip("10.0.0.1")),
        ("router1-db-v4", "db-v4", ip("10.0.1.1")),
    ]
    assert [i.mac_address for i in router.interfaces] == [
        derive_mac("router-interface", "router1-web-v4"),
        derive_mac("router-interface", "router1-db-v4"),
    ]
    gw = router.external_gateway
    assert (gw.network, gw.subnet, gw.ip_address, gw.enable_snat) == ("public", "public-v4", ip("172.24.4.10"), True)
    assert gw.mac_address == derive_mac("router-gateway", "router1")
    assert router.routes == ()


def test_reference_floating_ip(reference):
    fip = reference.floating_ips["fip-vm2"]
    assert fip.floating_ip_address == ip("172.24.4.100")
    assert fip.port == "vm2"
    assert fip.fixed_ip_address == ip("10.0.0.12")  # the port's first IPv4 address
    assert fip.router == "router1"  # the router on web-v4
    assert fip.network == "public"  # that router's gateway network
    assert fip.distributed is False
    assert fip.stateless is False  # gateway-router model


@pytest.mark.parametrize("path", sorted((ROOT / "topologies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_topology_loads(path):
    topo = load_topology(path)
    assert topo.ports or topo.networks


def test_schema_is_valid_and_accepts_reference():
    schema = topology_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(REFERENCE.read_text()), schema, cls=jsonschema.Draft202012Validator)


def test_schema_file_is_shipped_in_package():
    import ovnsim

    schema_file = Path(ovnsim.__file__).parent / "neutron" / "topology.schema.json"
    assert json.loads(schema_file.read_text())["$schema"].endswith("2020-12/schema")


# --------------------------------------------------------------------------
# Defaults and allocation
# --------------------------------------------------------------------------


def test_defaults(tmp_path):
    topo = load(tmp_path, base_doc())
    assert topo.name == "t"
    # db1 has no fixed_ips: lowest free address, skipping network and gateway
    assert topo.ports["db1"].fixed_ips[0].ip_address == ip("10.0.1.2")
    assert topo.ports["db1"].mac_address == derive_mac("port", "db1")
    assert topo.subnet("web-v4").gateway_ip == ip("10.0.0.1")
    # gateway address: lowest free, skipping the upstream router's 172.24.4.1
    assert topo.routers["router1"].external_gateway.ip_address == ip("172.24.4.2")
    fip = topo.floating_ips["fip1"]
    assert (fip.router, fip.network, fip.fixed_ip_address) == ("router1", "public", ip("10.0.0.11"))


def test_name_defaults_to_file_stem(tmp_path):
    doc = base_doc()
    del doc["name"]
    assert load_topology(write(tmp_path, doc, "my-lab.yaml")).name == "my-lab"


def test_explicit_addresses_are_placed_before_allocation(tmp_path):
    doc = base_doc()
    ports = demo(doc)["ports"]
    # "early" comes first in the file but allocates after "late"'s explicit .2
    demo(doc)["ports"] = {"early": {"network": "web"}, "late": {"network": "web", "fixed_ips": ["10.0.0.2"]}, **ports}
    # a floating IP at the lowest free external address pushes the gateway up
    demo(doc)["floating_ips"]["fip1"]["floating_ip_address"] = "172.24.4.2"
    topo = load(tmp_path, doc)
    assert topo.ports["early"].fixed_ips[0].ip_address == ip("10.0.0.3")
    assert topo.ports["late"].fixed_ips[0].ip_address == ip("10.0.0.2")
    assert topo.routers["router1"].external_gateway.ip_address == ip("172.24.4.3")


def test_allocation_is_deterministic(tmp_path):
    doc = base_doc()
    for i in range(5):
        demo(doc)["ports"][f"a{i}"] = {"network": "web", "fixed_ips": [{"subnet": "web-v4"}]}
    first, second = load(tmp_path, doc), load(tmp_path, copy.deepcopy(doc))
    assert first == second
    got = [first.ports[f"a{i}"].fixed_ips[0].ip_address for i in range(5)]
    assert got == [ip(f"10.0.0.{n}") for n in (2, 3, 4, 5, 6)]


def test_allocation_skips_router_interface_addresses(tmp_path):
    doc = base_doc()
    demo(doc)["routers"]["router1"]["interfaces"] = [{"subnet": "web-v4", "ip_address": "10.0.0.2"}, "db-v4"]
    demo(doc)["ports"]["new"] = {"network": "web"}
    topo = load(tmp_path, doc)
    # .1 is the gateway_ip (reserved even without a router on it), .2 the router
    assert topo.ports["new"].fixed_ips[0].ip_address == ip("10.0.0.3")


def test_fixed_ip_forms(tmp_path):
    doc = base_doc()
    demo(doc)["networks"]["web"]["subnets"]["web2-v4"] = {"cidr": "10.0.2.0/24"}
    demo(doc)["ports"]["multi"] = {
        "network": "web",
        "fixed_ips": ["10.0.2.7", {"subnet": "web-v4", "ip_address": "10.0.0.20"}, {"subnet": "web2-v4"}],
    }
    topo = load(tmp_path, doc)
    assert [(f.subnet, str(f.ip_address)) for f in topo.ports["multi"].fixed_ips] == [
        ("web2-v4", "10.0.2.7"),
        ("web-v4", "10.0.0.20"),
        ("web2-v4", "10.0.2.2"),
    ]


def test_empty_fixed_ips_means_no_address(tmp_path):
    doc = base_doc()
    demo(doc)["ports"]["bare"] = {"network": "web", "fixed_ips": []}
    assert load(tmp_path, doc).ports["bare"].fixed_ips == ()


def test_explicit_ids_and_interface_ids(tmp_path):
    doc = base_doc()
    demo(doc)["networks"]["web"]["id"] = "net-web"
    demo(doc)["networks"]["web"]["subnets"]["web-v4"]["id"] = "sub-web"
    demo(doc)["routers"]["router1"]["id"] = "r-1"
    demo(doc)["ports"]["vm1"]["id"] = "port-vm1"
    topo = load(tmp_path, doc)
    assert topo.ports["port-vm1"].network == "net-web"
    assert topo.ports["port-vm1"].fixed_ips[0].subnet == "sub-web"
    assert topo.routers["r-1"].interfaces[0].id == "r-1-sub-web"
    assert topo.routers["r-1"].external_gateway.mac_address == derive_mac("router-gateway", "r-1")
    assert topo.floating_ips["fip1"].port == "port-vm1"
    assert topo.floating_ips["fip1"].router == "r-1"


def test_mac_normalised_and_pairs(tmp_path):
    doc = base_doc()
    demo(doc)["ports"]["vm1"]["mac_address"] = "FA-16-3E-00-00-AA"
    demo(doc)["ports"]["vm1"]["allowed_address_pairs"] = [
        {"ip_address": "10.0.0.100"},
        {"ip_address": "10.0.5.0/24", "mac_address": "00:00:5E:00:01:33"},
    ]
    port = load(tmp_path, doc).ports["vm1"]
    assert port.mac_address == "fa:16:3e:00:00:aa"
    assert [(p.ip_address, p.mac_address) for p in port.allowed_address_pairs] == [
        ("10.0.0.100", None),
        ("10.0.5.0/24", "00:00:5e:00:01:33"),
    ]


def test_derived_mac_steps_around_a_taken_one(tmp_path):
    doc = base_doc()
    clash = derive_mac("port", "vm2")
    demo(doc)["ports"]["vm1"]["mac_address"] = clash  # explicit, placed first
    demo(doc)["ports"]["vm2"] = {"network": "web"}
    topo = load(tmp_path, doc)
    expected = "fa:16:3e:" + ":".join(f"{b:02x}" for b in hashlib.sha256(b"port:vm2:1").digest()[:3])
    assert topo.ports["vm1"].mac_address == clash
    assert topo.ports["vm2"].mac_address == expected != clash


def test_stateless_defaults_follow_gateway_model(tmp_path):
    doc = base_doc()
    demo(doc)["routers"]["router1"]["gateway_model"] = DISTRIBUTED_GATEWAY_PORT
    demo(doc)["floating_ips"]["fip2"] = {"floating_ip_address": "172.24.4.101", "port": "db1", "stateless": False}
    demo(doc)["floating_ips"]["fip1"]["distributed"] = True
    topo = load(tmp_path, doc)
    assert topo.floating_ips["fip1"].stateless is True
    assert topo.floating_ips["fip1"].distributed is True
    assert topo.floating_ips["fip2"].stateless is False
    assert topo.floating_ips["fip2"].fixed_ip_address == ip("10.0.1.2")  # an allocated address


def test_floating_ip_prefers_router_holding_the_gateway(tmp_path):
    doc = base_doc()
    demo(doc)["routers"] = {
        "side": {
            "interfaces": [{"subnet": "web-v4", "ip_address": "10.0.0.254"}],
            "external_gateway": {"network": "public"},
        },
        "main": {"interfaces": ["web-v4", "db-v4"], "external_gateway": {"network": "public"}},
    }
    topo = load(tmp_path, doc)
    assert topo.floating_ips["fip1"].router == "main"
    assert [r.external_gateway.ip_address for r in topo.routers.values()] == [ip("172.24.4.2"), ip("172.24.4.3")]


def test_vlan_external_network(tmp_path):
    doc = base_doc()
    doc["external_networks"]["public"]["provider"].update(network_type="vlan", segmentation_id=100)
    net = load(tmp_path, doc).networks["public"]
    assert (net.network_type, net.segmentation_id) == ("vlan", 100)


def test_load_document_directly():
    topo = load_document(base_doc(), "<test>")
    assert topo.source == "<test>"
    assert topo.ports["vm1"].fixed_ips[0].ip_address == ip("10.0.0.11")


def _candidate(kind: str, ident: str, attempt: int) -> str:
    seed = f"{kind}:{ident}" if attempt == 0 else f"{kind}:{ident}:{attempt}"
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in hashlib.sha256(seed.encode()).digest()[:3])


@given(
    kind=st.sampled_from(MAC_KINDS),
    ident=st.text(min_size=1, max_size=30),
    blocked=st.integers(min_value=0, max_value=3),
    others=st.sets(st.from_regex(MAC_RE, fullmatch=True), max_size=5),
)
def test_derive_mac_deterministic_and_well_formed(kind, ident, blocked, others):
    # block the first `blocked` candidates so the fallback hashes are exercised
    taken = set(others) | {_candidate(kind, ident, n) for n in range(blocked)}
    mac = derive_mac(kind, ident, taken)
    assert MAC_RE.match(mac)
    assert mac not in taken
    assert mac == derive_mac(kind, ident, sorted(taken))  # any iterable, same answer
    expected = next(c for c in (_candidate(kind, ident, n) for n in range(100)) if c not in taken)
    assert mac == expected
    assert derive_mac(kind, ident) == _candidate(kind, ident, 0)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    text = "name: t\nprojects:\n  demo:\n    ports:\n      vm1:\n        network: web\n       fixed_ips: [10.0.0.11]\n"
    err = expect_error(tmp_path, text, "line 7, column 8", "invalid YAML: did not find expected key")
    assert "line 5" in err.problem  # where the enclosing mapping started


def test_yaml_tab_hint(tmp_path):
    expect_error(tmp_path, "name: t\nprojects:\n\tdemo: {}\n", "line 3, column 1", "not tabs")


def test_yaml_duplicate_key(tmp_path):
    text = "name: t\nprojects:\n  demo:\n    ports:\n      vm1: {network: web}\n      vm1: {network: db}\n"
    expect_error(tmp_path, text, "line 6, column 7", "duplicate key 'vm1' (first defined on line 5)")


def test_empty_file_and_non_mapping(tmp_path):
    expect_error(tmp_path, "", "", "the file is empty")
    expect_error(tmp_path, "- a\n- b\n", "", "expected a mapping at the top level, got a list")


def test_missing_file(tmp_path):
    with pytest.raises(TopologyError, match="cannot read the file"):
        load_topology(tmp_path / "nope.yaml")


def test_unknown_key(tmp_path):
    doc = base_doc()
    demo(doc)["ports"]["vm1"]["fixed_ip"] = demo(doc)["ports"]["vm1"].pop("fixed_ips")
    err = expect_error(tmp_path, doc, "projects.demo.ports.vm1", "unknown key 'fixed_ip'")
    assert "did you mean 'fixed_ips'" in err.problem


def test_unquoted_mac_hint(tmp_path):
    text = REFERENCE.read_text().replace('"fa:16:3e:00:00:11"', "10:16:30:00:00:11")
    expect_error(tmp_path, text, "projects.demo.ports.vm1.mac_address", "quote MAC addresses")


# Each case: (id, edit of base_doc(), path, key phrase, exception class)
ERROR_CASES = [
    # wrong types and shapes
    ("type-list-for-string", lambda d: demo(d)["ports"]["vm1"].update(network=["web"]),
     "projects.demo.ports.vm1.network", "expected a string, got a list", TopologyError),
    ("type-string-for-list", lambda d: demo(d)["ports"]["vm1"].update(fixed_ips="10.0.0.11"),
     "projects.demo.ports.vm1.fixed_ips", "expected a list, got a string", TopologyError),
    ("type-int-for-string", lambda d: demo(d)["ports"]["vm1"].update(fixed_ips=[11]),
     "projects.demo.ports.vm1.fixed_ips[0]", "expected a string or a mapping, got an integer", TopologyError),
    ("type-string-for-int", lambda d: demo(d)["networks"]["web"].update(mtu="1500"),
     "projects.demo.networks.web.mtu", "expected an integer, got a string", TopologyError),
    ("missing-required", lambda d: demo(d)["networks"]["web"]["subnets"]["web-v4"].pop("cidr"),
     "projects.demo.networks.web.subnets.web-v4", "missing required key 'cidr'", TopologyError),
    ("gateway-model", lambda d: demo(d)["routers"]["router1"].update(gateway_model="dvr"),
     "projects.demo.routers.router1.gateway_model", "expected one of 'gateway-router', 'distributed-gateway-port'",
     TopologyError),
    # reserved and unsupported
    ("sg-top", lambda d: d.update(security_groups={}), "security_groups",
     "security groups belong to a project: put them under projects.<name>.security_groups", TopologyError),
    ("sg-port", lambda d: demo(d)["ports"]["vm1"].update(security_groups=["default"]),
     "projects.demo.ports.vm1.security_groups",
     "project 'demo' declares no security_groups; add `security_groups: {}` to the project to use them",
     TopologyError),
    ("ipv6-subnet", lambda d: demo(d)["networks"]["web"]["subnets"].update({"web-v6": {"cidr": "fd00::/64"}}),
     "projects.demo.networks.web.subnets.web-v6.cidr", "IPv6 is not supported yet", NotSupportedError),
    # unknown references
    ("unknown-network", lambda d: demo(d)["ports"]["vm1"].update(network="nope"),
     "projects.demo.ports.vm1.network", "network 'nope' does not exist in project 'demo'", TopologyError),
    ("unknown-interface-subnet", lambda d: demo(d)["routers"]["router1"].update(interfaces=["web-v4", "db-v5"]),
     "projects.demo.routers.router1.interfaces[1]", "subnet 'db-v5' does not exist in project 'demo'", TopologyError),
    ("unknown-interface-subnet-mapping",
     lambda d: demo(d)["routers"]["router1"].update(
         interfaces=["web-v4", {"subnet": "db-v5", "ip_address": "10.0.1.1"}]),
     "projects.demo.routers.router1.interfaces[1].subnet", "subnet 'db-v5' does not exist in project 'demo'",
     TopologyError),
    ("unknown-fixed-ip-subnet", lambda d: demo(d)["ports"]["vm1"].update(fixed_ips=[{"subnet": "db-v4"}]),
     "projects.demo.ports.vm1.fixed_ips[0].subnet", "subnet 'db-v4' is not a subnet of network 'web'", TopologyError),
    ("unknown-fip-port", lambda d: demo(d)["floating_ips"]["fip1"].update(port="vm9"),
     "projects.demo.floating_ips.fip1.port", "port 'vm9' does not exist in project 'demo'", TopologyError),
    ("unknown-external-network", lambda d: demo(d)["routers"]["router1"]["external_gateway"].update(network="pub"),
     "projects.demo.routers.router1.external_gateway.network", "external network 'pub' does not exist", TopologyError),
    ("unknown-fip-network", lambda d: demo(d)["floating_ips"]["fip1"].update(network="pub"),
     "projects.demo.floating_ips.fip1.network", "external network 'pub' does not exist", TopologyError),
    # external network where a project network is needed, and vice versa
    ("fip-on-provider-port", lambda d: demo(d)["ports"]["vm1"].update(network="public", fixed_ips=[]),
     "projects.demo.floating_ips.fip1.port",
     "port 'vm1' is on external network 'public'; floating IPs apply only to ports on project networks",
     TopologyError),
    ("interface-on-external", lambda d: demo(d)["routers"]["router1"].update(interfaces=["public-v4"]),
     "projects.demo.routers.router1.interfaces[0]", "subnet 'public-v4' belongs to external network 'public'",
     TopologyError),
    ("gateway-on-project-net", lambda d: demo(d)["routers"]["router1"]["external_gateway"].update(network="web"),
     "projects.demo.routers.router1.external_gateway.network", "'web' is a network of project 'demo', not an external",
     TopologyError),
    ("fip-on-project-net", lambda d: demo(d)["floating_ips"]["fip1"].update(network="db"),
     "projects.demo.floating_ips.fip1.network", "'db' is a network of project 'demo', not an external", TopologyError),
    # subnets, gateways, addresses
    ("overlap-on-router", lambda d: (
        demo(d)["networks"].update(big={"subnets": {"big-v4": {"cidr": "10.0.0.0/16", "gateway_ip": "10.0.200.1"}}}),
        demo(d)["routers"]["router1"]["interfaces"].append("big-v4")),
     "projects.demo.routers.router1.interfaces[2]", "overlaps subnet 'web-v4' (10.0.0.0/24) already on router",
     TopologyError),
    ("same-subnet-twice", lambda d: demo(d)["routers"]["router1"]["interfaces"].append("web-v4"),
     "projects.demo.routers.router1.interfaces[2]", "already attached to router 'router1' (interfaces[0])",
     TopologyError),
    ("overlap-in-network", lambda d: demo(d)["networks"]["web"]["subnets"].update({"b": {"cidr": "10.0.0.128/25"}}),
     "projects.demo.networks.web.subnets.b.cidr", "overlaps subnet 'web-v4' (10.0.0.0/24) of the same network",
     TopologyError),
    ("gateway-outside", lambda d: demo(d)["networks"]["web"]["subnets"]["web-v4"].update(gateway_ip="10.0.1.1"),
     "projects.demo.networks.web.subnets.web-v4.gateway_ip", "gateway_ip 10.0.1.1 is outside subnet 'web-v4'",
     TopologyError),
    ("gateway-network-address", lambda d: demo(d)["networks"]["web"]["subnets"]["web-v4"].update(gateway_ip="10.0.0.0"),
     "projects.demo.networks.web.subnets.web-v4.gateway_ip", "is the network address of subnet 'web-v4'",
     TopologyError),
    ("gateway-broadcast", lambda d: demo(d)["networks"]["web"]["subnets"]["web-v4"].update(gateway_ip="10.0.0.255"),
     "projects.demo.networks.web.subnets.web-v4.gateway_ip", "is the broadcast address of subnet 'web-v4'",
     TopologyError),
    ("interface-no-gateway", lambda d: demo(d)["networks"]["db"]["subnets"]["db-v4"].update(gateway_ip=None),
     "projects.demo.routers.router1.interfaces[1]",
     "subnet 'db-v4' has no gateway_ip; give the interface an ip_address",
     TopologyError),
    ("fixed-ip-outside-subnet",
     lambda d: demo(d)["ports"]["vm1"].update(fixed_ips=[{"subnet": "web-v4", "ip_address": "10.0.1.5"}]),
     "projects.demo.ports.vm1.fixed_ips[0].ip_address", "fixed IP 10.0.1.5 is outside subnet 'web-v4' (10.0.0.0/24)",
     TopologyError),
    ("fixed-ip-no-subnet", lambda d: demo(d)["ports"]["vm1"].update(fixed_ips=["10.9.9.9"]),
     "projects.demo.ports.vm1.fixed_ips[0]", "fixed IP 10.9.9.9 is not in any subnet of network 'web' (10.0.0.0/24)",
     TopologyError),
    ("fixed-ip-broadcast", lambda d: demo(d)["ports"]["vm1"].update(fixed_ips=["10.0.0.255"]),
     "projects.demo.ports.vm1.fixed_ips[0]", "is the broadcast address of subnet 'web-v4'", TopologyError),
    ("invalid-ip", lambda d: demo(d)["ports"]["vm1"].update(fixed_ips=["10.0.0.300"]),
     "projects.demo.ports.vm1.fixed_ips[0]", "'10.0.0.300' is not a valid IP address", TopologyError),
    ("invalid-cidr", lambda d: demo(d)["networks"]["web"]["subnets"]["web-v4"].update(cidr="10.0.0/24"),
     "projects.demo.networks.web.subnets.web-v4.cidr", "'10.0.0/24' is not a valid CIDR", TopologyError),
    ("cidr-host-bits", lambda d: demo(d)["networks"]["web"]["subnets"]["web-v4"].update(cidr="10.0.0.5/24"),
     "projects.demo.networks.web.subnets.web-v4.cidr", "'10.0.0.5/24' has host bits set; the network is 10.0.0.0/24",
     TopologyError),
    ("invalid-mac", lambda d: demo(d)["ports"]["vm1"].update(mac_address="fa:16:3e:00:00"),
     "projects.demo.ports.vm1.mac_address", "'fa:16:3e:00:00' is not a valid MAC address", TopologyError),
    ("multicast-mac", lambda d: demo(d)["ports"]["vm1"].update(mac_address="01:00:5e:00:00:01"),
     "projects.demo.ports.vm1.mac_address", "is a multicast MAC address", TopologyError),
    ("vlan-without-id", lambda d: d["external_networks"]["public"]["provider"].update(network_type="vlan"),
     "external_networks.public.provider", "network_type vlan needs a segmentation_id", TopologyError),
    ("route-nexthop", lambda d: demo(d)["routers"]["router1"].update(
        routes=[{"destination": "192.168.0.0/16", "nexthop": "10.0.0.99"},
                {"destination": "192.168.1.0/24", "nexthop": "10.9.0.1"}]),
     "projects.demo.routers.router1.routes[1].nexthop",
     "nexthop 10.9.0.1 is not on any subnet connected to router 'router1'", TopologyError),
    ("two-routers-claim-subnet", lambda d: demo(d)["routers"].update(router2={"interfaces": ["db-v4"]}),
     "projects.demo.routers.router2.interfaces[0]", "subnet 'db-v4' is already claimed by router 'router1'",
     TopologyError),
    ("duplicate-id", lambda d: d["projects"].update(other={"networks": {"web": {}}}),
     "projects.other.networks.web", "network id 'web' is already used by projects.demo.networks.web; set a different "
     "`id:`", TopologyError),
    # duplicate addresses on one network
    ("dup-ip-ports", lambda d: demo(d)["ports"].update(vm2={"network": "web", "fixed_ips": ["10.0.0.11"]}),
     "projects.demo.ports.vm2.fixed_ips[0]", "address 10.0.0.11 is already used on network 'web' by port "
     "projects.demo.ports.vm1.fixed_ips[0]", TopologyError),
    ("dup-ip-port-router", lambda d: demo(d)["ports"]["vm1"].update(fixed_ips=["10.0.0.1"]),
     "projects.demo.ports.vm1.fixed_ips[0]", "address 10.0.0.1 is already used on network 'web' by router interface "
     "projects.demo.routers.router1.interfaces[0]", TopologyError),
    ("dup-ip-gateway-upstream",
     lambda d: demo(d)["routers"]["router1"]["external_gateway"].update(ip_address="172.24.4.1"),
     "projects.demo.routers.router1.external_gateway.ip_address", "address 172.24.4.1 is already used on network "
     "'public' by the upstream router", TopologyError),
    ("dup-ip-two-gateways", lambda d: (
        demo(d)["routers"]["router1"]["external_gateway"].update(ip_address="172.24.4.5"),
        demo(d)["routers"].update(router2={"external_gateway": {"network": "public", "ip_address": "172.24.4.5"}})),
     "projects.demo.routers.router2.external_gateway.ip_address", "address 172.24.4.5 is already used on network "
     "'public' by router gateway projects.demo.routers.router1.external_gateway", TopologyError),
    ("dup-ip-fip-gateway", lambda d: (
        demo(d)["routers"]["router1"]["external_gateway"].update(ip_address="172.24.4.100")),
     "projects.demo.floating_ips.fip1.floating_ip_address", "address 172.24.4.100 is already used on network 'public' "
     "by router gateway", TopologyError),
    ("dup-ip-fip-upstream", lambda d: demo(d)["floating_ips"]["fip1"].update(floating_ip_address="172.24.4.1"),
     "projects.demo.floating_ips.fip1.floating_ip_address", "by the upstream router", TopologyError),
    ("dup-mac", lambda d: (demo(d)["ports"]["vm1"].update(mac_address="fa:16:3e:00:00:01"),
                           demo(d)["ports"].update(vm2={"network": "web", "mac_address": "FA:16:3E:00:00:01"})),
     "projects.demo.ports.vm2.mac_address", "MAC fa:16:3e:00:00:01 is already used on network 'web' by port "
     "projects.demo.ports.vm1", TopologyError),
    # floating IPs
    ("fip-outside", lambda d: demo(d)["floating_ips"]["fip1"].update(floating_ip_address="172.24.5.100"),
     "projects.demo.floating_ips.fip1.floating_ip_address",
     "floating IP 172.24.5.100 is outside external network 'public' (172.24.4.0/24)", TopologyError),
    ("fip-used-twice", lambda d: demo(d)["floating_ips"].update(
        fip2={"floating_ip_address": "172.24.4.100", "port": "db1"}),
     "projects.demo.floating_ips.fip2.floating_ip_address",
     "floating IP address 172.24.4.100 is already used by projects.demo.floating_ips.fip1", TopologyError),
    ("fip-router-without-gateway", lambda d: demo(d)["routers"]["router1"].pop("external_gateway"),
     "projects.demo.floating_ips.fip1", "router 'router1' on subnet 'web-v4' has no external gateway", TopologyError),
    ("fip-no-router", lambda d: demo(d)["routers"]["router1"].update(interfaces=["db-v4"]),
     "projects.demo.floating_ips.fip1", "no router has an interface on subnet 'web-v4' of port 'vm1'", TopologyError),
    ("fip-fixed-ip-not-of-port", lambda d: demo(d)["floating_ips"]["fip1"].update(fixed_ip_address="10.0.0.12"),
     "projects.demo.floating_ips.fip1.fixed_ip_address", "10.0.0.12 is not a fixed IP of port 'vm1'", TopologyError),
    ("fip-distributed-on-gateway-router", lambda d: demo(d)["floating_ips"]["fip1"].update(distributed=True),
     "projects.demo.floating_ips.fip1.distributed", "a distributed floating IP needs a distributed-gateway-port router",
     TopologyError),
]


@pytest.mark.parametrize("edit, path, phrase, cls", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error(tmp_path, edit, path, phrase, cls):
    doc = base_doc()
    edit(doc)
    err = expect_error(tmp_path, doc, path, phrase, cls)
    if cls is TopologyError:
        assert not isinstance(err, NotSupportedError)


def test_base_doc_is_valid(tmp_path):
    # guards the error cases above: each fails only because of its own edit
    assert load(tmp_path, base_doc()).ports["vm1"].fixed_ips[0].ip_address == ip("10.0.0.11")


def test_load_document_errors_use_the_source():
    doc = base_doc()
    demo(doc)["ports"]["vm1"]["network"] = "nope"
    with pytest.raises(TopologyError) as info:
        load_document(doc, "<builder>")
    assert str(info.value) == (
        "<builder>: projects.demo.ports.vm1.network: network 'nope' does not exist in project 'demo' "
        "nor among the external networks"
    )


def test_load_document_does_not_modify_its_input():
    doc = base_doc()
    before = copy.deepcopy(doc)
    load_document(doc)
    assert doc == before


# --------------------------------------------------------------------------
# Integer literals too long to convert (issue 11 item 6)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["9" * 5000, "-" + "1" * 4301, "0x" + "f" * 5000, "1_0" * 2000])
def test_an_oversized_integer_literal_names_its_file_and_field(tmp_path, literal):
    text = ("projects:\n  demo:\n    networks:\n      web: {subnets: {w: {cidr: 10.0.0.0/24}}}\n"
            f"    ports:\n      vm1: {{network: web, fixed_ips: [{literal}]}}\n")
    err = expect_error(tmp_path, text, "projects.demo.ports.vm1.fixed_ips[0]", "integer literal of")
    assert "line 6" in err.problem


def test_an_oversized_integer_key_names_its_mapping(tmp_path):
    text = "projects:\n  demo:\n    ? " + "7" * 5000 + "\n    : 1\n"
    expect_error(tmp_path, text, "projects.demo", "integer literal of 5,000 characters")


def test_ordinary_integer_literals_still_load():
    import yaml as _yaml

    from ovnsim.neutron.loader import _StrictLoader

    assert _yaml.load("a: 0x1f\nb: -12\nc: 1_000\nd: 0b11\ne: 1:30\nf: 017", Loader=_StrictLoader) == {
        "a": 31, "b": -12, "c": 1000, "d": 3, "e": 90, "f": 15}


# --------------------------------------------------------------------------
# What YAML can say but a topology cannot be (found by tests/test_fuzz_inputs.py)
# --------------------------------------------------------------------------


def test_a_date_like_value_is_text_not_a_crash(tmp_path):
    """PyYAML turns 2001-13-45 into a ValueError; the loader keeps it text and the schema names the place."""
    text = "projects:\n  demo:\n    networks:\n      web: {subnets: {w: {cidr: 2001-13-45}}}\n"
    err = expect_error(tmp_path, text, "projects.demo.networks.web.subnets.w.cidr", "2001-13-45")
    assert "2001-13-45" in str(err)


def test_a_recursive_alias_is_one_line(tmp_path):
    expect_error(tmp_path, "projects: &x\n  demo: [*x]\n", "projects.demo[0]", "refers to a node that contains it")


def test_an_alias_bomb_is_refused_before_it_is_walked(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 10) + "]" for i in range(1, 9)]
    expect_error(tmp_path, "\n".join(lines) + "\n", "", "more than 1,000,000 values")


@pytest.mark.parametrize("depth", [100, 2000, 100000])
def test_deep_nesting_is_one_line_never_a_crash(tmp_path, depth):
    """100,000 nested [ ] made libyaml crash the process (SIGSEGV); 100 made the schema checker recurse out."""
    text = "projects:\n  demo:\n    networks: " + "[" * depth + "]" * depth + "\n"
    if depth > 1000:
        expect_error(tmp_path, text, "line 3", "nested more than 1000 levels deep")
    else:
        expect_error(tmp_path, text, "projects.demo.networks[0][0][0][0][0]...", "nested more than 64 levels")


def test_brackets_in_quotes_and_comments_are_not_nesting(tmp_path):
    text = ("name: \"it's " + "[" * 1500 + "\"\n# " + "{" * 1500 + "\nprojects:\n  demo:\n    networks:\n"
            "      web: {subnets: {w: {cidr: 10.0.0.0/24}}}\n")
    assert load_topology(write_text(tmp_path, text)).name.startswith("it's [[[")


def write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topo.yaml"
    path.write_text(text)
    return path
