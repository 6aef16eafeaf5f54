"""The ``ovnsim`` command, run the way a user runs it: a separate process.

Every test starts ``python -m ovnsim.cli`` (and one test the installed
``ovnsim`` console script) with ``PYTHONPATH`` pointing at this checkout, so
what is tested is this working tree even when another copy of the package is
installed. Outputs are checked for their format (``ovn-nbctl show`` lines,
one ``ovn-nbctl`` invocation per line, dot and Mermaid that parse, ovn-trace's
``output("...")``) and against the compiled model; bad input of every kind
must end with exit status 2, one ``ovnsim: error:`` line on stderr and no
traceback.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import pytest
import yaml

from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.nb.model import LogicalTopology
from ovnsim.testing.nbshow import parse_nbctl_show

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))
REFERENCE = ROOT / "topologies" / "reference.yaml"

EXIT_OK = 0
EXIT_BAD_INPUT = 2
TIMEOUT = 120  # seconds; a hung CLI fails the test instead of the run

# This checkout first on the path, whatever `pip install -e` points at.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def run_cli(*args: object, exe: Sequence[str] = (sys.executable, "-m", "ovnsim.cli"),
            cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the CLI with ``args``; never raises on a non-zero exit status."""
    return subprocess.run([*exe, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=TIMEOUT, check=False)


@functools.lru_cache(maxsize=None)
def cached_cli(*args: str) -> subprocess.CompletedProcess:
    """:func:`run_cli` for read-only invocations several tests look at."""
    return run_cli(*args)


def assert_ok(proc: subprocess.CompletedProcess) -> str:
    """Exit 0, nothing on stderr, no traceback; returns stdout."""
    __tracebackhide__ = True
    assert proc.returncode == EXIT_OK, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stderr == "", proc.stderr
    assert "Traceback" not in proc.stdout
    return proc.stdout


def assert_bad_input(proc: subprocess.CompletedProcess) -> str:
    """Exit 2, exactly one ``ovnsim: error:`` line on stderr, no traceback; returns that line."""
    __tracebackhide__ = True
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, report
    assert proc.returncode == EXIT_BAD_INPUT, report
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, report
    assert lines[0].startswith("ovnsim: error: "), report
    assert proc.stdout == "", report
    return lines[0]


@functools.lru_cache(maxsize=None)
def logical(path: Path) -> LogicalTopology:
    return compile_topology(load_topology(str(path)))


def topo_id(path: Path) -> str:
    return path.stem


# --------------------------------------------------------------------------
# microflows on the reference topology (topologies/reference.yaml)
# --------------------------------------------------------------------------

VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"
VM2_MAC, VM2_IP = "fa:16:3e:00:00:12", "10.0.0.12"
UPSTREAM_IP, UPSTREAM_MAC = "172.24.4.1", "52:54:00:c0:ff:ee"  # public-v4 gateway_ip / gateway_mac
SNAT_IP = "172.24.4.10"  # router1's external_gateway ip_address


def router_mac(lrp: str) -> str:
    return logical(REFERENCE).router_ports()[lrp][1].mac


#: vm1 -> vm2 on the web switch.
SWITCHED = (f'inport == "vm1" && eth.src == {VM1_MAC} && eth.dst == {VM2_MAC} && '
            f"ip4.src == {VM1_IP} && ip4.dst == {VM2_IP} && ip.ttl == 64 && tcp.dst == 22")


def routed_flow(sep: str = " == ") -> str:
    """vm1 -> the upstream router: neutron-router1, join, gr-router1 (SNAT), provnet-public."""
    web_mac = router_mac("lrp-router1-web-v4")
    return " && ".join(f"{k}{sep}{v}" for k, v in [
        ("inport", '"vm1"'), ("eth.src", VM1_MAC), ("eth.dst", web_mac), ("ip4.src", VM1_IP),
        ("ip4.dst", UPSTREAM_IP), ("ip.ttl", 64), ("tcp.dst", 80)])


#: vm1 with a source MAC its port security does not allow.
SPOOFED = (f'inport == "vm1" && eth.src == fa:16:3e:00:00:99 && eth.dst == {VM2_MAC} && '
           f"ip4.src == {VM1_IP} && ip4.dst == {VM2_IP}")


# --------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_AKA = r"(?: \(aka [^()]+\))?"
SHOW_LINE = [
    ("switch", re.compile(rf"^switch (?P<uuid>{_UUID}) \((?P<name>[^()\s]+)\){_AKA}$")),
    ("router", re.compile(rf"^router (?P<uuid>{_UUID}) \((?P<name>[^()\s]+)\){_AKA}$")),
    ("port", re.compile(rf"^    port (?P<name>\S+){_AKA}$")),
    ("nat", re.compile(rf"^    nat (?P<uuid>{_UUID})$")),
    ("attr", re.compile(r"^        (type|tag|parent|addresses|router-port|mac|networks|gateway chassis"
                        r"|external ip|external port\(s\)|logical ip): \S.*$")),
    # ovnsim show's DHCP_Options rows, after the routers (ovn-nbctl show has none)
    ("dhcp", re.compile(rf"^dhcp-options (?P<uuid>{_UUID}) \((?P<name>[0-9./]+)\){_AKA}$")),
    ("dhcp-attr", re.compile(r"^    ([a-z_]+=\S.*|ports: \S.*)$")),
    # ovnsim show's Port_Group rows and their ACLs (as acl-list prints them), then remarks
    ("port-group", re.compile(rf"^port-group (?P<uuid>{_UUID}) \((?P<name>[A-Za-z0-9_.]+)\){_AKA}$")),
    ("acl", re.compile(r"^     *(from|to)-lport +\d+ \(.+\) [a-z-]+$")),
    ("remark", re.compile(r"^# \S.*$")),
]


def parse_show(text: str) -> Tuple[Dict[str, List[str]], Dict[str, List[str]], List[str]]:
    """Switches and routers (name -> port names) and every row UUID; fails on a line of unknown shape."""
    switches: Dict[str, List[str]] = {}
    routers: Dict[str, List[str]] = {}
    uuids: List[str] = []
    current: List[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        for kind, pattern in SHOW_LINE:
            m = pattern.match(line)
            if m:
                break
        else:
            pytest.fail(f"line {number} is not in ovn-nbctl show format: {line!r}")
        if kind in ("switch", "router"):
            current = (switches if kind == "switch" else routers).setdefault(m["name"], [])
            uuids.append(m["uuid"])
        elif kind == "port":
            current.append(m["name"])
        elif kind == "nat":
            uuids.append(m["uuid"])
        elif kind in ("dhcp", "port-group"):
            uuids.append(m["uuid"])
            current = []
    return switches, routers, uuids


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_show_lists_every_switch_router_and_port(topo):
    out = assert_ok(cached_cli("show", str(topo)))
    switches, routers, uuids = parse_show(out)
    model = logical(topo)
    assert switches == {ls.name: [p.name for p in ls.ports] for ls in model.switches}
    assert routers == {lr.name: [p.name for p in lr.ports] for lr in model.routers}
    assert len(set(uuids)) == len(uuids), "row UUIDs repeat"
    for u in uuids:
        assert str(uuid.UUID(u)) == u
    # the same parser that reads real ovn-nbctl show output takes it too
    parsed = parse_nbctl_show(out)
    assert set(parsed["switches"]) == set(switches)
    assert set(parsed["routers"]) == set(routers)


def test_show_reference_details_and_stable_uuids():
    out = assert_ok(cached_cli("show", str(REFERENCE)))
    assert out.endswith("\n")
    lines = out.splitlines()
    assert re.match(rf"^switch {_UUID} \(neutron-web\) \(aka web\)$", next(l for l in lines if "(neutron-web)" in l))
    assert re.match(rf"^router {_UUID} \(gr-router1\) \(aka router1\)$", next(l for l in lines if "(gr-router1)" in l))
    assert f'        addresses: ["{VM1_MAC} {VM1_IP}"]' in lines
    assert "        type: localnet" in lines
    assert "        router-port: lrp-router1-web-v4" in lines
    assert '        networks: ["172.24.4.10/24"]' in lines
    assert '        type: "snat"' in lines and '        type: "dnat_and_snat"' in lines
    # UUIDs are derived from names: a second run prints the same text
    assert assert_ok(run_cli("show", REFERENCE)) == out


# --------------------------------------------------------------------------
# export nbctl
# --------------------------------------------------------------------------


def nbctl_commands(script: str) -> List[List[str]]:
    """Every ovn-nbctl command of the script (``--``-separated), command options dropped."""
    commands: List[List[str]] = []
    for number, line in enumerate(script.splitlines(), 1):
        words = shlex.split(line)  # raises on unbalanced quotes
        assert words and words[0] == "ovn-nbctl", f"line {number} is not an ovn-nbctl invocation: {line!r}"
        command: List[str] = []
        for word in words[1:] + ["--"]:
            if word == "--":
                assert command, f"line {number}: empty command in {line!r}"
                while command and command[0].startswith("--"):
                    command.pop(0)  # --may-exist, --stateless, ...
                assert command, f"line {number}: options without a command in {line!r}"
                commands.append(command)
                command = []
            else:
                command.append(word)
    return commands


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_export_nbctl_one_invocation_per_line(topo):
    out = assert_ok(cached_cli("export", "nbctl", str(topo)))
    assert out.endswith("\n")
    commands = nbctl_commands(out)
    model = logical(topo)
    ls_added = [c[1] for c in commands if c[0] == "ls-add"]
    lsp_added = {(c[1], c[2]) for c in commands if c[0] == "lsp-add"}
    lr_added = [c[1] for c in commands if c[0] == "lr-add"]
    lrp_added = {(c[1], c[2]) for c in commands if c[0] == "lrp-add"}
    assert ls_added == [ls.name for ls in model.switches]
    assert lr_added == [lr.name for lr in model.routers]
    assert lsp_added == {(ls.name, p.name) for ls in model.switches for p in ls.ports}
    assert lrp_added == {(lr.name, p.name) for lr in model.routers for p in lr.ports}
    # a port is added after its switch or router
    order = [(c[0], c[1]) for c in commands]
    for c in commands:
        if c[0] in ("lsp-add", "lrp-add"):
            parent = ("ls-add" if c[0] == "lsp-add" else "lr-add", c[1])
            assert order.index(parent) < order.index((c[0], c[1]))


def test_export_nbctl_reference_nat_and_routes():
    commands = nbctl_commands(assert_ok(cached_cli("export", "nbctl", str(REFERENCE))))
    assert ["lr-nat-add", "gr-router1", "snat", SNAT_IP, "10.0.0.0/24"] in commands
    assert ["lr-nat-add", "gr-router1", "dnat_and_snat", "172.24.4.100", VM2_IP] in commands
    assert ["lr-route-add", "gr-router1", "0.0.0.0/0", UPSTREAM_IP] in commands
    assert ["lsp-set-type", "provnet-public", "localnet"] in commands


# --------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------

_DOT_QUOTED = r'"(?:[^"\\]|\\.)*"'
DOT_NODE = re.compile(rf"^\s*({_DOT_QUOTED})\s*\[(.*)\];$")
DOT_EDGE = re.compile(rf"^\s*({_DOT_QUOTED})\s*--\s*({_DOT_QUOTED})\s*(\[.*\])?;$")


def dot_braces_balanced(text: str) -> bool:
    """Braces outside quoted strings balance and never go negative."""
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "{}":
            depth += 1 if ch == "{" else -1
            if depth < 0:
                return False
    return depth == 0 and not quoted


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_graph_dot_parses(topo):
    out = assert_ok(cached_cli("graph", str(topo), "--format", "dot"))
    assert out == assert_ok(cached_cli("graph", str(topo))), "dot is the default format"
    lines = out.splitlines()
    assert re.match(rf"^graph {_DOT_QUOTED} \{{$", lines[0]), lines[0]
    assert lines[-1] == "}"
    assert dot_braces_balanced(out)
    declared, edges = set(), []
    for line in lines[1:-1]:
        if line.strip().startswith("node ["):
            continue
        edge = DOT_EDGE.match(line)
        node = DOT_NODE.match(line)
        assert edge or node, f"not a node or edge statement: {line!r}"
        if edge:
            edges.append((edge[1], edge[2]))
        else:
            assert "label=" in node[2]
            declared.add(node[1])
    assert edges, "no edges"
    for a, b in edges:
        assert a in declared and b in declared, f"edge {a} -- {b} names an undeclared node"
    model = logical(topo)
    names = {json.loads(n) for n in declared}
    assert {f"ls:{ls.name}" for ls in model.switches} <= names
    assert {f"lr:{lr.name}" for lr in model.routers} <= names


@pytest.mark.parametrize("topo", TOPOLOGIES, ids=topo_id)
def test_graph_mermaid_parses(topo):
    out = assert_ok(cached_cli("graph", str(topo), "--format", "mermaid"))
    lines = out.splitlines()
    assert lines[0].startswith("flowchart")
    node = re.compile(r"^  (n\d+)(\[\"|\(\[\"|\{\{\"|\[/\"|\(\(\")")
    edge = re.compile(r'^  (n\d+) (?:---|---\|"[^"]*"\|) (n\d+)$')
    declared, edges = set(), []
    for line in lines[1:]:
        m = edge.match(line) or node.match(line)
        assert m, f"not a Mermaid node or link: {line!r}"
        if m.re is edge:
            edges.append((m[1], m[2]))
        else:
            declared.add(m[1])
    assert edges
    assert all(a in declared and b in declared for a, b in edges)
    model = logical(topo)
    for name in [ls.name for ls in model.switches] + [lr.name for lr in model.routers]:
        assert f'"{name}' in out, name


# --------------------------------------------------------------------------
# trace
# --------------------------------------------------------------------------


def test_trace_minimal_routed_flow():
    out = assert_ok(cached_cli("trace", str(REFERENCE), routed_flow()))
    lines = out.splitlines()
    # ovn-trace --minimal: the actions that set fields, in OVN's order, then output("port");
    assert lines[-1] == 'output("provnet-public");'
    assert lines.count("ip.ttl--;") == 2  # two routers, two decrements
    assert f"ip4.src = {SNAT_IP};" in lines  # gr-router1's SNAT
    assert lines.index("ip.ttl--;", 1) < lines.index(f"eth.src = {router_mac('lrp-router1-gw')};") \
        < lines.index(f"eth.dst = {UPSTREAM_MAC};") < lines.index(f"ip4.src = {SNAT_IP};")
    assert not any(l.startswith("ip4.dst") for l in lines), "unchanged fields are not printed"


def test_trace_minimal_switched_flow_changes_nothing():
    out = assert_ok(cached_cli("trace", str(REFERENCE), SWITCHED))
    assert out == 'output("vm2");\n'


def test_trace_minimal_drop():
    out = assert_ok(run_cli("trace", REFERENCE, SPOOFED))
    assert re.match(r"^drop; /\* port-security at neutron-web ls_in_\w+", out), out


def test_trace_detailed_names_ovn_stages():
    out = assert_ok(cached_cli("trace", str(REFERENCE), "--format", "detailed", routed_flow()))
    for stage in ("ls_in_check_port_sec", "ls_in_l2_lkup", "ls_out_apply_port_sec", "lr_in_admission",
                  "lr_in_ip_routing", "lr_in_arp_resolve", "lr_out_snat", "lr_out_delivery"):
        assert re.search(rf"^\s*\d+\. {stage}\b", out, re.M), f"stage {stage} missing from\n{out}"
    for dp in ("neutron-web", "neutron-router1", "join-router1", "gr-router1", "neutron-public"):
        assert f'ingress(dp="{dp}")' in out
    assert "ip.ttl--;" in out
    assert out.rstrip("\n").splitlines()[-1] == 'output("provnet-public") packet'


def test_trace_json_verdict():
    out = assert_ok(cached_cli("trace", str(REFERENCE), "--format", "json", routed_flow()))
    verdict = json.loads(out)
    assert set(verdict) == {"outputs", "dropped", "drops", "trace"}
    assert verdict["dropped"] is False and verdict["drops"] == []
    [output] = verdict["outputs"]
    assert output["port"] == "provnet-public" and output["kind"] == "packet"
    assert output["ip4.src"] == SNAT_IP and output["ip4.dst"] == UPSTREAM_IP
    assert output["ip.ttl"] == 62 and output["tcp.dst"] == 80
    stages = [e["stage"] for e in verdict["trace"]]
    assert "lr_in_ip_routing" in stages and "lr_out_snat" in stages
    for event in verdict["trace"]:
        assert {"datapath", "pipeline", "table", "stage", "priority", "match", "action", "depth"} <= set(event)


def test_trace_json_drop():
    verdict = json.loads(assert_ok(run_cli("trace", REFERENCE, "--format", "json", SPOOFED)))
    assert verdict["outputs"] == [] and verdict["dropped"] is True
    [drop] = verdict["drops"]
    assert drop["reason"] == "port-security" and drop["datapath"] == "neutron-web"
    assert drop["stage"].startswith("ls_in_")


def test_trace_arp_answered_by_responder():
    flow = (f'inport == "vm1" && eth.src == {VM1_MAC} && eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && '
            f"arp.sha == {VM1_MAC} && arp.spa == {VM1_IP} && arp.tpa == 10.0.0.1")
    verdict = json.loads(assert_ok(run_cli("trace", REFERENCE, "--format", "json", flow)))
    [output] = verdict["outputs"]
    assert output["port"] == "vm1" and output["kind"] == "arp_reply"
    assert output["arp.op"] == 2 and output["arp.sha"] == router_mac("lrp-router1-web-v4")
    assert "ls_in_arp_rsp" in [e["stage"] for e in verdict["trace"]]


@pytest.mark.parametrize("fmt", ["minimal", "detailed", "json"])
def test_trace_optional_leading_datapath(fmt):
    """``ovnsim trace TOPO DATAPATH MICROFLOW`` as ``ovn-trace DATAPATH MICROFLOW``; option anywhere."""
    plain = assert_ok(cached_cli("trace", str(REFERENCE), "--format", fmt, routed_flow()))
    with_dp = assert_ok(run_cli("trace", REFERENCE, "neutron-web", "--format", fmt, routed_flow()))
    option_first = assert_ok(run_cli("trace", REFERENCE, "--format", fmt, "neutron-web", routed_flow()))
    assert with_dp == plain == option_first


def test_trace_unknown_datapath_is_bad_input():
    line = assert_bad_input(run_cli("trace", REFERENCE, "no-such-datapath", SWITCHED))
    assert "no-such-datapath" in line


# --------------------------------------------------------------------------
# trace --flows
# --------------------------------------------------------------------------


def test_trace_flows_file(tmp_path):
    compact = routed_flow(sep="==")
    flows = tmp_path / "flows.txt"
    flows.write_text("\n".join([
        "# microflows, one per line",
        "",
        compact,
        "   # an indented comment",
        f"{compact}   # a trailing comment",
        "this is not a microflow",
        f"neutron-web '{SWITCHED}'",  # ovn-trace's optional DATAPATH, quoted flow
        "",
        f"neutron-web {SPOOFED}",
        'inport=="nope" && eth.src==fa:16:3e:00:00:11',
        SWITCHED.replace(" == ", "=="),
    ]) + "\n")
    proc = run_cli("trace", REFERENCE, "--flows", flows)
    # the two bad lines make the exit status 2, with one line on stderr; every line is answered
    assert proc.returncode == EXIT_BAD_INPUT and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("ovnsim: error: ") and "2 lines could not be traced" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    lines = proc.stdout.splitlines()
    records = [json.loads(line) for line in lines]  # one JSON object per line
    assert len(records) == 7, lines
    routed_a, routed_b, bad, switched, spoofed, unknown_port, switched_again = records
    for routed in (routed_a, routed_b):
        assert "error" not in routed
        assert [(o["port"], o["ip4.src"], o["ip.ttl"]) for o in routed["outputs"]] == [
            ("provnet-public", SNAT_IP, 62)]
    # each flow runs on a fresh network, so the repeat is traced like the first
    assert (routed_a["line"], routed_b["line"]) == (3, 5)
    assert routed_b["microflow"] == compact
    assert {k: v for k, v in routed_a.items() if k not in ("line", "microflow")} == \
        {k: v for k, v in routed_b.items() if k not in ("line", "microflow")}
    assert [r["line"] for r in records] == [3, 5, 6, 7, 9, 10, 11]
    assert bad["line"] == 6 and bad["microflow"] == "this is not a microflow" and bad["error"]
    assert [o["port"] for o in switched["outputs"]] == ["vm2"]
    assert spoofed["dropped"] is True and spoofed["drops"][0]["reason"] == "port-security"
    assert unknown_port["line"] == 10 and "nope" in unknown_port["error"]
    assert switched_again["outputs"] == switched["outputs"]
    assert {"outputs", "dropped", "drops", "trace"} <= set(switched)


def test_trace_flows_file_spaced_microflow(tmp_path):
    flows = tmp_path / "flows.txt"
    flows.write_text(SWITCHED + "\n")
    [record] = [json.loads(line) for line in assert_ok(run_cli("trace", REFERENCE, "--flows", flows)).splitlines()]
    assert "error" not in record, record
    assert [o["port"] for o in record["outputs"]] == ["vm2"]


# --------------------------------------------------------------------------
# bad input: exit 2, one line, no traceback
# --------------------------------------------------------------------------

COMMANDS = {
    "show": lambda topo: ("show", topo),
    "export-nbctl": lambda topo: ("export", "nbctl", topo),
    "graph-mermaid": lambda topo: ("graph", topo, "--format", "mermaid"),
    "trace": lambda topo: ("trace", topo, SWITCHED),
}


def _reference_doc() -> dict:
    return yaml.safe_load(REFERENCE.read_text())


def _unknown_key(doc: dict) -> dict:
    doc["projects"]["demo"]["ports"]["vm1"]["colour"] = "blue"
    return doc


def _project_security_groups(doc: dict) -> dict:
    doc["projects"]["demo"]["security_groups"] = {
        "web-sg": {"rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 22}]}}
    return doc


def _port_security_groups(doc: dict) -> dict:
    doc["projects"]["demo"]["ports"]["vm1"]["security_groups"] = ["web-sg"]
    return doc


BAD_FILES = {
    # name: (file text, a word the error line must contain)
    "invalid-yaml": ("name: broken\nprojects: [\n  demo: {\n", "invalid YAML"),
    "unknown-key": (yaml.safe_dump(_unknown_key(_reference_doc())), "colour"),
    "security-groups-project": (yaml.safe_dump(_project_security_groups(_reference_doc())), "port_range_max"),
    "security-groups-port": (yaml.safe_dump(_port_security_groups(_reference_doc())), "declares no security_groups"),
    "not-utf8": (b"\xff\xfe name: x\n", "UTF-8"),
    "empty": ("", "empty"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_topology_file(tmp_path, command):
    missing = tmp_path / "missing.yaml"
    line = assert_bad_input(run_cli(*COMMANDS[command](missing)))
    assert "missing.yaml" in line


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("bad", BAD_FILES)
def test_bad_topology_file(tmp_path, bad, command):
    text, expected = BAD_FILES[bad]
    path = tmp_path / f"{bad}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    line = assert_bad_input(run_cli(*COMMANDS[command](path)))
    assert f"{bad}.yaml" in line, "the error names the file"
    assert expected in line


@pytest.mark.parametrize("microflow, expected", [
    ('inport == "vm1" && eth.src == zz:16', "not a MAC"),
    ('inport == "vm1" && ip4.dst == 10.0.0.0/8', "masked"),
    ('inport == "vm1" && bogus.field == 3', "bogus.field"),
    ("eth.src == fa:16:3e:00:00:11", "ingress port"),
    ('inport == "vm1" &&', "microflow"),
    ("", "microflow"),
], ids=["bad-mac", "masked", "unknown-field", "no-inport", "dangling-and", "empty"])
@pytest.mark.parametrize("fmt", ["minimal", "json"])
def test_trace_bad_microflow(microflow, expected, fmt):
    line = assert_bad_input(run_cli("trace", REFERENCE, "--format", fmt, microflow))
    assert expected in line


def test_trace_unknown_inport():
    flow = SWITCHED.replace('"vm1"', '"no-such-port"')
    line = assert_bad_input(run_cli("trace", REFERENCE, flow))
    assert "no-such-port" in line


def test_trace_without_microflow():
    assert "MICROFLOW" in assert_bad_input(run_cli("trace", REFERENCE))


def test_trace_missing_flows_file(tmp_path):
    line = assert_bad_input(run_cli("trace", REFERENCE, "--flows", tmp_path / "nope.txt"))
    assert "nope.txt" in line


def test_topology_path_is_a_directory(tmp_path):
    assert_bad_input(run_cli("show", tmp_path))


# --------------------------------------------------------------------------
# the installed console script
# --------------------------------------------------------------------------


def test_console_script():
    exe = shutil.which("ovnsim")
    if exe is None:
        pytest.skip("the `ovnsim` console script is not on PATH (package not installed: pip install -e .)")
    shown = run_cli("show", REFERENCE, exe=[exe])
    assert assert_ok(shown) == assert_ok(cached_cli("show", str(REFERENCE)))
    verdict = json.loads(assert_ok(run_cli("trace", REFERENCE, "--format", "json", routed_flow(), exe=[exe])))
    assert [o["port"] for o in verdict["outputs"]] == ["provnet-public"]
    assert_bad_input(run_cli("show", ROOT / "no-such-file.yaml", exe=[exe]))


def test_python_m_ovnsim_and_version_agree_with_the_metadata():
    """``python -m ovnsim --version`` runs the CLI and prints the version pyproject.toml declares."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import ovnsim

    root = Path(__file__).resolve().parents[1]
    declared = re.search(r'^version = "([^"]+)"', (root / "pyproject.toml").read_text(), re.M).group(1)
    proc = subprocess.run([sys.executable, "-m", "ovnsim", "--version"], capture_output=True, text=True,
                          cwd=root, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ovnsim {declared}" == f"ovnsim {ovnsim.__version__}"
    assert (root / "ovnsim" / "py.typed").exists() and (root / "LICENSE").exists()


def test_installed_metadata_names_the_licence_and_the_project_urls():
    """What ``pip show ovnsim`` shows: the licence and the URLs pyproject.toml declares."""
    import re
    from importlib.metadata import metadata
    from pathlib import Path

    meta = metadata("ovnsim")
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.findall(r'^"([^"]+)" = "(https://[^"]+)"$', pyproject.split("[project.urls]")[1].split("\n[")[0], re.M)
    assert declared, "pyproject.toml declares no project URLs"
    assert sorted(meta.get_all("Project-URL")) == sorted(f"{name}, {url}" for name, url in declared)
    assert meta.get("License-Expression") == "Apache-2.0" or meta.get("License") == "Apache-2.0"
