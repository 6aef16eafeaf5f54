"""Emulator and lab agree: the ICMP and TCP reachability matrices of every example topology (root).

For every VM port and every other VM port (its first address) and the
outside host, the emulator is asked where an echo request built as
``ovnsim trace --from SRC --to DST --icmp`` (or ``--tcp 8080``) builds it leaves, and the lab
sends a real ``ping`` (or TCP connect) and records which ports' endpoints received it
(:func:`ovnsim.lab.probe.probe_matrix`).  The sets of ports must be equal.

An emulator output of kind ``arp`` (a router resolving an unknown next hop,
e.g. the upstream gateway of ``multi-router`` that has no ``gateway_mac``)
counts as the packet leaving on that port: the lab's kernel resolves it and
sends the packet.  Until ``ovnsim.reach`` lands this test builds the
emulator's matrix itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ovnsim.lab import Lab
from ovnsim.lab.plan import OUTSIDE_ADDRESS
from ovnsim.lab.probe import endpoints, probe_matrix

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                                                   reason="labs need root and nftables")]

REPO = Path(__file__).resolve().parent.parent
TOPOLOGIES = sorted(p.stem for p in (REPO / "topologies").glob("*.yaml") if p.stem != "large")


def emulator_matrix(path: str, targets, protocol: str = "icmp", port: int = 7):
    from ovnsim.datapath.microflow import parse_microflow
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology
    from ovnsim.sim import Simulator
    from ovnsim.trace_args import FlowSpec, build_microflow

    topo = load_topology(path)
    logical = compile_topology(topo)
    sim = Simulator(logical)
    matrix = {}
    for source in targets:
        if source == "outside":
            continue
        for name, ip in targets.items():
            if name == source:
                continue
            dest = "outside" if ip == OUTSIDE_ADDRESS else ip
            spec = (FlowSpec(source, dest, icmp=True) if protocol == "icmp"
                    else FlowSpec(source, dest, sport=40000, **{protocol: port}))
            flow = parse_microflow(build_microflow(topo, logical, spec))
            sim.reset()
            result = sim.inject(source, flow.to_frame())
            matrix[(source, name)] = {o.port for o in result.outputs if o.kind in ("packet", "arp")}
    return matrix


@pytest.mark.parametrize("protocol", ["icmp", "tcp"])
@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_emulator_and_lab_matrices_agree(topo, protocol, tmp_path, monkeypatch):
    monkeypatch.setenv("OVNSIM_LAB_DIR", str(tmp_path / "labs"))
    path = f"topologies/{topo}.yaml"
    with Lab.up(path, name=f"m{os.getpid()}-{topo}") as lab:
        targets = endpoints(lab)
        lab_m = {key: result.delivered for key, result in probe_matrix(lab, protocol, 8080).items()}
    emu_m = emulator_matrix(path, targets, protocol, 8080)
    assert set(lab_m) == set(emu_m)
    assert any(lab_m.values())  # a lab where nothing reaches anything would prove nothing
    differences = {key: {"emulator": sorted(emu_m[key]), "lab": sorted(lab_m[key])}
                   for key in emu_m if emu_m[key] != lab_m[key]}
    assert not differences, differences
