"""Benchmarks: loading and compiling the large topology (1,000 ports).

    python -m pytest bench/test_bench_compile.py -q -p no:cacheprovider
    python -m pytest bench/test_bench_compile.py -q -p no:cacheprovider --benchmark-disable   # smoke test

The machine is shared and noisy, so nothing here asserts on time. Every run
also measures a baseline -- safe-loading the same file with the YAML parser
the loader uses (libyaml's ``CSafeLoader`` when PyYAML has it) -- and
``bench/conftest.py`` prints each benchmark's median as a ratio to it; compare
those ratios between runs, not absolute figures. The target for load and
compile of ``topologies/large.yaml`` is "well under a second".

Each benchmark checks its result, so under ``--benchmark-disable`` (every
function run once) the file is a smoke test of loader and compiler on a large
input.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from ovnsim.nb.model import LSP_TYPE_VM, NAT_DNAT_AND_SNAT, NAT_SNAT, LogicalTopology
from ovnsim.neutron.model import DISTRIBUTED_GATEWAY_PORT, GATEWAY_ROUTER, Topology

LARGE = Path(__file__).resolve().parent.parent / "topologies" / "large.yaml"

# What topologies/generate_large.py builds.
PROJECTS = 5
TENANT_NETWORKS = 50
EXTERNAL_NETWORKS = 1
PORTS = 1000
ROUTERS = 7
GATEWAY_ROUTERS = 3  # p2-r1, p3-r1, p4-r2; the other 4 are distributed-gateway-port
FLOATING_IPS = 50
# even networks behind the distributed-gateway-port routers: p1-r1 5, p2-r2 3, p4-r1 2, p5-r1 5
DISTRIBUTED_FIPS = 15
NO_PORT_SECURITY = 5


def _load():
    from ovnsim.neutron.loader import load_topology

    return load_topology(str(LARGE))


def _compile(topology):
    from ovnsim.neutron.compiler import compile_topology

    return compile_topology(topology)


def _load_and_compile():
    return _compile(_load())


#: The YAML parser the loader itself uses (libyaml's when PyYAML has it).
FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _baseline():
    with open(LARGE, encoding="utf-8") as f:
        return yaml.load(f, Loader=FAST_SAFE_LOADER)


def _pure_python_safe_load():
    with open(LARGE, encoding="utf-8") as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------
# result checks (so the benchmarks double as smoke tests)
# --------------------------------------------------------------------------


def check_topology(topo: Topology) -> None:
    assert isinstance(topo, Topology)
    assert len(topo.projects) == PROJECTS
    assert len(topo.networks) == TENANT_NETWORKS + EXTERNAL_NETWORKS
    assert sum(1 for n in topo.networks.values() if n.external) == EXTERNAL_NETWORKS
    assert len(topo.ports) == PORTS
    assert len(topo.routers) == ROUTERS
    assert len(topo.floating_ips) == FLOATING_IPS
    assert sum(1 for f in topo.floating_ips.values() if f.distributed) == DISTRIBUTED_FIPS
    assert sum(1 for p in topo.ports.values() if not p.port_security) == NO_PORT_SECURITY
    models = [r.gateway_model for r in topo.routers.values()]
    assert models.count(GATEWAY_ROUTER) == GATEWAY_ROUTERS
    assert models.count(DISTRIBUTED_GATEWAY_PORT) == ROUTERS - GATEWAY_ROUTERS
    assert all(r.external_gateway is not None for r in topo.routers.values())
    # spot checks: file order kept, addresses as written
    assert next(iter(topo.ports)) == "p1-n01-vm01"
    vm = topo.ports["p3-n07-vm05"]
    assert [f.ip_address for f in vm.fixed_ips] == [ipaddress.ip_address("10.3.7.14")]
    assert topo.floating_ips["fip-p5-n10-vm01"].floating_ip_address == ipaddress.ip_address("172.24.4.149")


def check_logical(logical: LogicalTopology, topo: Topology) -> None:
    assert isinstance(logical, LogicalTopology)
    names = {ls.name for ls in logical.switches}
    for net_id in topo.networks:
        assert f"neutron-{net_id}" in names
    # one switch per network, plus a join switch per gateway-router-model router
    assert len(logical.switches) == TENANT_NETWORKS + EXTERNAL_NETWORKS + GATEWAY_ROUTERS
    vm_ports = [p for ls in logical.switches for p in ls.ports if p.type == LSP_TYPE_VM]
    assert sorted(p.name for p in vm_ports) == sorted(topo.ports)
    unknown = [p.name for p in vm_ports if "unknown" in p.addresses]
    assert len(unknown) == NO_PORT_SECURITY
    # a distributed router per Neutron router, plus a gateway router per gateway-router model
    assert len(logical.routers) == ROUTERS + GATEWAY_ROUTERS
    assert sum(1 for lr in logical.routers if lr.is_gateway_router) == GATEWAY_ROUTERS
    assert sum(len(lr.gateway_ports) for lr in logical.routers) == ROUTERS - GATEWAY_ROUTERS
    nat = [rule for lr in logical.routers for rule in lr.nat]
    assert sum(1 for r in nat if r.type == NAT_SNAT) == TENANT_NETWORKS  # SNAT per subnet
    assert sum(1 for r in nat if r.type == NAT_DNAT_AND_SNAT) == FLOATING_IPS
    assert sum(1 for r in nat if r.type == NAT_DNAT_AND_SNAT and r.external_mac) == DISTRIBUTED_FIPS


# --------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_topology():
    topo = _load()
    check_topology(topo)
    return topo


@pytest.mark.benchmark(group="large-topology")
def test_baseline_yaml_safe_load(benchmark):
    """Baseline: safe-loading large.yaml with the parser the loader uses (libyaml's
    CSafeLoader when available); the ratios are computed against this."""
    data = benchmark(_baseline)
    assert sum(len(p["ports"]) for p in data["projects"].values()) == PORTS


@pytest.mark.benchmark(group="large-topology")
def test_reference_yaml_safe_load_pure_python(benchmark):
    """For scale only: plain ``yaml.safe_load`` (pure-Python parser) of the same file."""
    data = benchmark(_pure_python_safe_load)
    assert sum(len(p["ports"]) for p in data["projects"].values()) == PORTS


@pytest.mark.benchmark(group="large-topology")
def test_load(benchmark):
    topo = benchmark(_load)
    check_topology(topo)


@pytest.mark.benchmark(group="large-topology")
def test_compile(benchmark, large_topology):
    logical = benchmark(_compile, large_topology)
    check_logical(logical, large_topology)


@pytest.mark.benchmark(group="large-topology")
def test_load_and_compile(benchmark):
    logical = benchmark(_load_and_compile)
    check_logical(logical, _load())
