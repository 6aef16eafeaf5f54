"""Benchmarks: ``lab up`` and ``lab down`` of 50- and 200-port topologies (root).

    python -m pytest bench/test_bench_lab.py -q -p no:cacheprovider -s

Targets (issue 9): up of 50 ports under 10 s and its down under 5 s; up of
200 ports under 30 s (Mininet needs about 60 s for 200 hosts).  Nothing
here asserts on time: the machine is shared.  Every run also measures a
baseline -- the same number of namespaces made and deleted with one ``ip
netns add``/``del`` process each, the least a process-per-object builder
pays -- and ``bench/conftest.py`` prints the ratios.  Each benchmark checks
its lab works (a ping through the router), so under ``--benchmark-disable``
the file is a smoke test of large labs.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ovnsim.lab import Lab
from ovnsim.lab.runs import run_lab_dir
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                                                   reason="labs need root and nftables")]

PORTS_PER_NETWORK = 25


def topology_text(ports: int) -> str:
    """``ports`` VM ports on networks of 25 behind one gateway router with SNAT."""
    networks = (ports + PORTS_PER_NETWORK - 1) // PORTS_PER_NETWORK
    lines = ["name: bench", "external_networks:", "  public:", "    provider: {physical_network: physnet1}",
             "    subnets:", "      public-v4: {cidr: 172.24.4.0/24, gateway_ip: 172.24.4.1}",
             "projects:", "  p:", "    networks:"]
    for n in range(networks):
        lines.append(f"      net{n}: {{subnets: {{net{n}-v4: {{cidr: 10.0.{n}.0/24, gateway_ip: 10.0.{n}.1}}}}}}")
    lines.append("    ports:")
    for i in range(ports):
        n, h = divmod(i, PORTS_PER_NETWORK)
        lines.append(f"      vm{i}: {{network: net{n}, fixed_ips: [10.0.{n}.{h + 10}]}}")
    lines += ["    routers:", "      r1:", "        gateway_model: gateway-router",
              "        interfaces: [" + ", ".join(f"net{n}-v4" for n in range(networks)) + "]",
              "        external_gateway: {network: public, enable_snat: true}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def lab_dir():
    # ledgers in this run's directory under /run/ovnsim/runs, never a tmp dir (ovnsim.lab.runs);
    # whatever a benchmark left is torn down by them
    with run_lab_dir("bench"):
        yield


def logical_of(tmp_path, ports):
    path = tmp_path / f"bench{ports}.yaml"
    path.write_text(topology_text(ports))
    return compile_topology(load_topology(str(path)))


def _up_down(logical, name, times):
    import time

    start = time.perf_counter()
    lab = Lab.up(logical, name=name)
    times["up"] = time.perf_counter() - start
    last = sorted(lab.plan.ports)[-1]
    try:
        assert lab.exec("vm0", "ping", "-c1", "-W2", "198.51.100.7").returncode == 0
        assert lab.exec(last, "ping", "-c1", "-W2", "10.0.0.10").returncode == 0
    finally:
        start = time.perf_counter()
        lab.down()
        times["down"] = time.perf_counter() - start


@pytest.mark.parametrize("ports", [50, 200])
def test_lab_up_down(benchmark, lab_dir, tmp_path, ports):
    logical = logical_of(tmp_path, ports)
    times = {}
    benchmark.group = f"lab-{ports}"
    benchmark.pedantic(_up_down, args=(logical, f"bench{ports}", times), rounds=1, iterations=1)
    print(f"\nlab of {ports} ports: up {times['up']:.2f} s, down {times['down']:.2f} s")


@pytest.mark.parametrize("ports", [50, 200])
def test_baseline_ip_netns_processes(benchmark, ports):
    """As many namespaces as the lab has, one ``ip`` process each to add and to delete."""
    names = [f"ovnsim-benchbase-{i}" for i in range(ports + 3)]
    benchmark.group = f"lab-{ports}"

    def run():
        try:
            for name in names:
                subprocess.run(["ip", "netns", "add", name], check=True)
        finally:
            for name in names:
                if os.path.exists(f"/run/netns/{name}"):
                    subprocess.run(["ip", "netns", "del", name], check=True)

    benchmark.pedantic(run, rounds=1, iterations=1)
