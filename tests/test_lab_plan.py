"""Lab planning, naming and the ledger: no root needed (nothing is created)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ovnsim.cli import main
from ovnsim.lab import LabError, LabUnavailableError, plan_lab
from ovnsim.lab.ledger import Ledger, free_name, ledger_names, status_of
from ovnsim.lab.plan import IFNAME_MAX, NETNS_PREFIX, OUTSIDE_ADDRESS, LabPlan, lab_token
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology

TOPOLOGIES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "topologies").glob("*.yaml")
                    if p.stem != "large")


def topo_path(name: str) -> str:
    """An example topology by name, as an absolute path (tests may run from any directory)."""
    return str(Path(__file__).resolve().parent.parent / "topologies" / f"{name}.yaml")


def logical(name):
    return compile_topology(load_topology(topo_path(name)))


@pytest.fixture
def lab_dir(tmp_path, monkeypatch):
    # A temporary directory is safe here: these ledgers name namespaces that are never created
    # (labs that create any keep their ledgers under /run/ovnsim/runs: the run_labs fixture).
    monkeypatch.setenv("OVNSIM_LAB_DIR", str(tmp_path / "labs"))
    return tmp_path / "labs"


@pytest.mark.parametrize("topo", TOPOLOGIES)
def test_names_carry_prefix_and_lab_and_fit_linux(topo):
    plan = plan_lab(logical(topo), "t1")
    names = [ns.name for ns in plan.namespaces]
    assert len(set(names)) == len(names)
    assert all(n.startswith(f"{NETNS_PREFIX}t1-") for n in names)
    ifnames = [b.ifname for b in plan.bridges] + [x for link in plan.links for x in (link.ifname, link.bridge_ifname)]
    assert len(set(ifnames)) == len(ifnames)
    assert all(n.startswith(plan.token) and len(n.encode()) <= IFNAME_MAX for n in ifnames)


def test_two_labs_of_one_topology_share_no_name():
    a, b = plan_lab(logical("reference"), "a"), plan_lab(logical("reference"), "b")
    assert not {ns.name for ns in a.namespaces} & {ns.name for ns in b.namespaces}
    assert a.token != b.token == lab_token("b")


def test_reference_plan_realises_the_nb_model():
    plan = plan_lab(logical("reference"), "r")
    vm1 = plan.link_of_port("vm1")
    assert (vm1.mac, vm1.addresses, vm1.mtu) == ("fa:16:3e:00:00:11", ["10.0.0.11/24"], 1442)
    assert plan.namespace("vm:vm1").routes == [("0.0.0.0/0", ["10.0.0.1"])]
    up = plan.link_of_port("provnet-public")
    assert up.mac == "52:54:00:c0:ff:ee" and up.addresses == ["172.24.4.1/24"] and up.flood
    assert plan.namespace("up:neutron-public").loopback == [f"{OUTSIDE_ADDRESS}/32"]
    gw = plan.link_of_port("router1-gw")
    assert gw.addresses == ["172.24.4.10/24", "172.24.4.100/32"]  # the FIP answered on the gateway port
    gr = plan.namespace("lr:gr-router1")
    assert gr.sysctls["net.ipv4.ip_forward"] == "1"
    assert ("0.0.0.0/0", ["172.24.4.1"]) in gr.routes
    assert "dnat to 10.0.0.12" in gr.nft and "snat to 172.24.4.10" in gr.nft
    assert 'iifname "' + vm1.bridge_ifname + '"' in plan.namespace("sw").nft


def test_dgp_stateless_fips_and_snat_only_through_the_gateway_port():
    plan = plan_lab(logical("dgp"), "d")
    nft = plan.namespace("lr:neutron-router1").nft
    gw = plan.link_of_port("router1-gw").ifname
    assert "ip daddr 172.24.4.150 ip daddr set 10.1.0.11 notrack" in nft
    router = plan.namespace("lr:neutron-router1")
    [fip] = router.fip_ports  # fip-app1, distributed: its own MAC on a macvlan of the gateway port
    assert (fip.lower, fip.mac, fip.address, fip.logical_ip) == (gw, "fa:16:3e:cd:6e:c7", "172.24.4.151/32",
                                                                 "10.1.1.21")
    assert ("0.0.0.0/0", "172.24.4.1", fip.ifname) in fip.routes and ("172.24.4.1", "52:54:00:c0:ff:ee") in fip.neighbours
    assert "172.24.4.151/32" not in plan.link_of_port("router1-gw").addresses
    assert "fa:16:3e:cd:6e:c7" in plan.link_of_port("router1-gw").fdb
    assert f'oifname {{ "{gw}", "{fip.ifname}" }} ip saddr 10.1.0.0/24 snat to 172.24.4.50' in nft
    assert not any("external_mac" in note for note in plan.notes)


def test_plan_with_a_distributed_fip_roundtrips_through_json():
    plan = plan_lab(logical("dgp"), "d")
    assert LabPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_plan_roundtrips_through_json():
    plan = plan_lab(logical("multi-router"), "m")
    again = LabPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan


@pytest.mark.parametrize("bad", ["", "-x", "a b", "x" * 33, "a/b"])
def test_bad_lab_names(bad):
    with pytest.raises(LabError):
        plan_lab(logical("reference"), bad)


def test_ledger_lists_every_namespace_before_build(lab_dir):
    plan = plan_lab(logical("reference"), "r")
    Ledger.create(plan, topo_path("reference"))
    data = json.loads((lab_dir / "r.json").read_text())
    assert [e["name"] for e in data["namespaces"]] == [ns.name for ns in plan.namespaces]
    assert data["state"] == "building" and all(e["id"] is None for e in data["namespaces"])
    with pytest.raises(LabError, match="exists already"):
        Ledger.create(plan, "again")
    assert ledger_names() == ["r"] and free_name("r") == "r-2"
    # The builder (this process) is alive, yet nothing exists: status says so.
    info = status_of(Ledger.load("r"))
    assert info["present"] == [] and len(info["missing"]) == len(plan.namespaces)


def test_unknown_lab_is_one_line_exit_2(lab_dir, capsys):
    assert main(["lab", "down", "nosuchlab"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no lab named 'nosuchlab'" in err


def test_not_root_is_one_clear_error_exit_2(lab_dir, capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "up", topo_path("reference")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "labs need root" in err
    assert not lab_dir.exists() or not list(lab_dir.iterdir())  # nothing written


def test_missing_nft_is_named(lab_dir, capsys, monkeypatch):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd == "nft" else real(cmd))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert main(["lab", "up", topo_path("reference")]) == 2
    assert "nftables" in capsys.readouterr().err
    with pytest.raises(LabUnavailableError):
        from ovnsim.lab.build import check_environment

        check_environment()


def test_status_with_no_labs(lab_dir, capsys):
    assert main(["lab", "status", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
