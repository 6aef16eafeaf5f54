"""``ovnsim reach``: one question, the matrix in every format, --diff; exit statuses."""

import csv
import io
import json

from pathlib import Path

import pytest

from ovnsim.cli import main

REF = "topologies/reference.yaml"


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_question_reachable(capsys):
    rc, out, _ = run(capsys, "reach", REF, "vm1", "outside", "--proto", "tcp/443")
    assert rc == 0
    assert "NAT: SNAT 10.0.0.11 -> 172.24.4.10" in out
    assert "forward path: vm1 -> neutron-web -> neutron-router1 -> join-router1 -> gr-router1" in out


def test_question_blocked_prints_stage_and_rule(capsys):
    rc, out, _ = run(capsys, "reach", REF, "vm1", "172.24.4.10", "--proto", "udp/53")
    assert rc == 1
    assert "blocked: forward router-address at gr-router1 lr_in_arp_resolve" in out
    assert "action (drop;)" in out


def test_question_json(capsys):
    rc, out, _ = run(capsys, "reach", REF, "vm2", "outside", "--proto", "icmp,udp/53", "--format", "json")
    data = json.loads(out)
    assert rc == 0 and [d["seen_as"] for d in data] == ["172.24.4.100", "172.24.4.100"]


@pytest.mark.parametrize("argv,msg", [
    (("reach", REF, "vm9", "db1"), "unknown port or address 'vm9'"),
    (("reach", REF, "vm1", "db1", "--proto", "tcp/0"), "protocol 'tcp/0'"),
    (("reach", REF, "vm1"), "give both a source and a destination"),
    (("reach", "nonexistent.yaml"), "nonexistent.yaml"),
    (("reach",), "give TOPO"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, msg):
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert msg in err and len(err.strip().splitlines()) == 1


def test_matrix_formats(capsys, tmp_path):
    rc, out, _ = run(capsys, "reach", REF, "--proto", "icmp")
    assert rc == 0
    assert out.splitlines()[1].split() == ["vm1", "-++++"]
    rc, out, _ = run(capsys, "reach", REF, "--format", "json")
    data = json.loads(out)
    assert data["protocols"] == ["icmp", "tcp/22", "udp/53"] and len(data["cells"]) == 36
    target = tmp_path / "m.csv"
    rc, out, _ = run(capsys, "reach", REF, "--format", "csv", "-o", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert out == "" and len(rows) == 36
    assert {r["seen_as"] for r in rows if r["dst"] == "outside"} == {"172.24.4.10", "172.24.4.100"}


def test_diff(capsys, tmp_path):
    same = run(capsys, "reach", "--diff", REF, REF)
    assert same[0] == 0 and "0 cell(s) changed" in same[1]
    changed = tmp_path / "ref-no-snat.yaml"
    changed.write_text(Path(REF).read_text().replace("enable_snat: true", "enable_snat: false"))
    rc, out, _ = run(capsys, "reach", "--diff", REF, str(changed), "--proto", "icmp")
    assert rc == 1
    # without SNAT vm1 leaves as its fixed IP; its hairpin to vm2's floating IP
    # is answered from the fixed IP, not the floating IP it talked to
    assert "vm1 -> outside icmp: seen as 10.0.0.11, was 172.24.4.10" in out
    assert "vm1 -> fip 172.24.4.100 icmp: now blocked: return reply-not-un-nated" in out
    assert "vm2 -> outside icmp" not in out  # vm2 leaves as its floating IP either way


@pytest.mark.parametrize("path", sorted(p for p in __import__("glob").glob("topologies/*.yaml")
                                        if not p.endswith("large.yaml")))
def test_every_example_matrix_and_check(capsys, path, tmp_path):
    rc, out, _ = run(capsys, "reach", path, "--proto", "icmp,tcp/22")
    assert rc == 0 and "+ reachable both ways" in out
    rc, out, _ = run(capsys, "reach", path, "--format", "html", "-o", str(tmp_path / "m.html"))
    assert rc == 0 and (tmp_path / "m.html").read_text().startswith("<!DOCTYPE html>")
    rc, out, _ = run(capsys, "check", path)
    assert rc == 0 and "expectations hold" in out


def test_diff_json(capsys, tmp_path):
    changed = tmp_path / "ref-no-fip.yaml"
    changed.write_text(Path(REF).read_text().replace("port: vm2", "port: vm1"))
    rc, out, _ = run(capsys, "reach", "--diff", REF, str(changed), "--proto", "tcp/22", "--format", "json")
    data = json.loads(out)
    assert rc == 1
    by_key = {(d["src"], d["dst"]): d for d in data}
    assert by_key[("vm1", "outside")]["new"]["seen_as"] == "172.24.4.100"
    assert by_key[("vm2", "outside")]["reason"] == "seen as 172.24.4.10, was 172.24.4.100"


def test_topology_without_external_network(capsys, tmp_path):
    topo = tmp_path / "noext.yaml"
    topo.write_text("projects:\n  p:\n    networks:\n      a: {subnets: {a-v4: {cidr: 10.9.0.0/24, gateway_ip: 10.9.0.1}}}\n"
                    "    ports:\n      x: {network: a, fixed_ips: [10.9.0.11]}\n"
                    "      y: {network: a, fixed_ips: [10.9.0.12]}\n")
    rc, out, _ = run(capsys, "reach", str(topo), "--proto", "icmp")
    assert rc == 0 and "(x, y)" in out  # no outside column
    rc, _, err = run(capsys, "reach", str(topo), "x", "outside")
    assert rc == 2 and "the topology has no external network" in err
