"""The compiler's own check: a tenant subnet must not overlap the gateway-router model's join network."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from ovnsim.neutron.builder import TopologyBuilder
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.compiler import JOIN_CIDR
from ovnsim.errors import TopologyError


def _topology(gateway_model: str, cidr: str):
    b = TopologyBuilder("join-clash")
    b.external_network("public", cidr="172.24.4.0/24", gateway_ip="172.24.4.1", physical_network="physnet1")
    p = b.project("demo")
    p.network("web", cidr="10.0.0.0/24")
    p.network("cgnat", cidr=cidr)
    p.router("r1", interfaces=["web-v4", "cgnat-v4"], external_gateway="public", gateway_model=gateway_model)
    return b.build()


def test_subnet_overlapping_the_join_network_is_refused():
    assert JOIN_CIDR.overlaps(ipaddress.ip_network("100.64.0.0/24"))
    with pytest.raises(TopologyError) as err:
        compile_topology(_topology("gateway-router", "100.64.0.0/24"))
    assert err.value.path == "projects.demo.routers.r1.interfaces[1]"
    assert "join network" in err.value.problem and "\n" not in str(err.value)


def test_the_same_subnet_is_fine_behind_a_distributed_gateway_port():
    logical = compile_topology(_topology("distributed-gateway-port", "100.64.0.0/24"))
    assert not any(ls.name.startswith("join-") for ls in logical.switches)


def test_cli_reports_it_in_one_line(tmp_path):
    path = tmp_path / "clash.yaml"
    path.write_text("""
external_networks:
  public:
    provider: {physical_network: physnet1}
    subnets: {public-v4: {cidr: 172.24.4.0/24, gateway_ip: 172.24.4.1}}
projects:
  demo:
    networks:
      cgnat: {subnets: {cgnat-v4: {cidr: 100.64.0.0/24}}}
    routers:
      r1: {interfaces: [cgnat-v4], external_gateway: {network: public}}
""")
    run = subprocess.run([sys.executable, "-m", "ovnsim.cli", "show", str(path)], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "routers.r1.interfaces[0]" in run.stderr
    assert "Traceback" not in run.stderr
