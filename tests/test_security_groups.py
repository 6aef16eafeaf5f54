"""Security groups: the topology format, the loader's checks, the compiled Port_Group/ACL rows, show and export.

The expected ACL matches are the strings Neutron's ML2/OVN driver builds
(``neutron/common/ovn/acl.py``); the real-OVN tests (marker ``ovn``) check
that ovn-nbctl accepts the export and lists the ACLs as ``ovnsim show`` does.
"""

from __future__ import annotations

import copy
import ipaddress
import pathlib
import subprocess
import sys

import pytest
import yaml

from ovnsim.errors import TopologyError
from ovnsim.nb.nbctl import nbctl_commands
from ovnsim.nb.show import show_text
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_document, load_topology
from ovnsim.neutron.model import SecurityGroupRule

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "topologies" / "security-groups.yaml"

BASE = {
    "projects": {
        "demo": {
            "networks": {"web": {"subnets": {"web-v4": {"cidr": "10.0.0.0/24"}}}},
            "security_groups": {},
            "ports": {"vm1": {"network": "web"}, "vm2": {"network": "web"}},
        }
    }
}


def doc_with(groups=None, ports=None, **project):
    doc = copy.deepcopy(BASE)
    demo = doc["projects"]["demo"]
    if groups is not None:
        demo["security_groups"] = groups
    if ports is not None:
        for name, extra in ports.items():
            demo["ports"].setdefault(name, {"network": "web"}).update(extra)
    demo.update(project)
    return doc


def compiled(doc):
    return compile_topology(load_document(doc, "t.yaml"))


def acls_of(logical, pg):
    return {(a.direction, a.match, a.action) for a in logical.port_group(pg).acls}


# --------------------------------------------------------------------------
# Neutron's defaults
# --------------------------------------------------------------------------


def test_project_with_security_groups_gets_the_default_group_and_ports_join_it():
    logical = compiled(doc_with())
    assert [pg.name for pg in logical.port_groups] == ["neutron_pg_drop", "pg_demo_default"]
    default = logical.port_group("pg_demo_default")
    assert default.ports == ("vm1", "vm2")
    assert default.external_ids == {"neutron:security_group_id": "demo-default"}
    assert acls_of(logical, "pg_demo_default") == {
        ("from-lport", "inport == @pg_demo_default && ip4", "allow-related"),
        ("from-lport", "inport == @pg_demo_default && ip6", "allow-related"),
        ("to-lport", "outport == @pg_demo_default && ip4 && ip4.src == $pg_demo_default_ip4", "allow-related"),
        ("to-lport", "outport == @pg_demo_default && ip6 && ip6.src == $pg_demo_default_ip6", "allow-related"),
    }
    assert {a.priority for a in default.acls} == {1002}
    drop = logical.port_group("neutron_pg_drop")
    assert drop.ports == ("vm1", "vm2") and drop.external_ids == {}
    assert {(a.direction, a.priority, a.match, a.action) for a in drop.acls} == {
        ("from-lport", 1001, "inport == @neutron_pg_drop && ip", "drop"),
        ("to-lport", 1001, "outport == @neutron_pg_drop && ip", "drop"),
    }


def test_a_new_group_starts_with_neutrons_egress_rules_unless_default_rules_is_false():
    logical = compiled(doc_with({"web": {}, "bare": {"default_rules": False}}))
    assert acls_of(logical, "pg_web") == {
        ("from-lport", "inport == @pg_web && ip4", "allow-related"),
        ("from-lport", "inport == @pg_web && ip6", "allow-related"),
    }
    assert logical.port_group("pg_bare").acls == ()


def test_project_without_security_groups_has_no_acls_and_show_says_so():
    doc = doc_with()
    del doc["projects"]["demo"]["security_groups"]
    logical = compiled(doc)
    assert logical.port_groups == ()
    assert logical.unfiltered_projects == ("demo",)
    assert "neutron:security_group_ids" not in logical.switch_ports()["vm1"][1].external_ids
    text = show_text(logical)
    assert "# project demo declares no security groups: no ACLs, its ports are not filtered" in text.splitlines()
    assert "port-group" not in text
    assert not any("acl" in " ".join(argv) or "pg-add" in argv for argv in nbctl_commands(logical))


def test_port_security_disabled_port_is_in_no_port_group():
    logical = compiled(doc_with({"web": {}}, {"vm1": {"security_groups": ["web"]}, "fw": {"port_security": False}}))
    assert all("fw" not in pg.ports for pg in logical.port_groups)
    assert logical.port_group("neutron_pg_drop").ports == ("vm1", "vm2")
    assert logical.port_group("pg_web").ports == ("vm1",)
    assert logical.port_group("pg_demo_default").ports == ("vm2",)
    ports = logical.switch_ports()
    assert ports["vm1"][1].external_ids["neutron:security_group_ids"] == "web"
    assert ports["fw"][1].external_ids["neutron:security_group_ids"] == ""


def test_empty_group_list_keeps_the_port_in_neutron_pg_drop_only():
    logical = compiled(doc_with(ports={"vm1": {"security_groups": []}}))
    assert "vm1" in logical.port_group("neutron_pg_drop").ports
    assert "vm1" not in logical.port_group("pg_demo_default").ports


def test_stateless_group_gets_allow_stateless_acls():
    rules = [{"direction": "ingress", "protocol": "udp", "port_range": "5000-5010"}]
    logical = compiled(doc_with({"sl": {"stateful": False, "rules": rules}}))
    assert {a.action for a in logical.port_group("pg_sl").acls} == {"allow-stateless"}
    assert ("to-lport", "outport == @pg_sl && ip4 && udp && udp.dst >= 5000 && udp.dst <= 5010",
            "allow-stateless") in acls_of(logical, "pg_sl")
    assert {a.action for a in logical.port_group("pg_demo_default").acls} == {"allow-related"}


def test_ids_name_port_groups_and_rules():
    rules = [{"direction": "ingress", "protocol": "tcp", "port_range": 22, "id": "ssh-rule"}]
    logical = compiled(doc_with({"web": {"id": "0f1e-web", "rules": rules}}))
    pg = logical.port_group("pg_0f1e_web")
    assert pg.external_ids == {"neutron:security_group_id": "0f1e-web"}
    rule_ids = [a.external_ids["neutron:security_group_rule_id"] for a in pg.acls]
    assert rule_ids == ["0f1e-web-rule0", "0f1e-web-rule1", "ssh-rule"]


# --------------------------------------------------------------------------
# Match strings, as acl.py builds them
# --------------------------------------------------------------------------

MATCHES = [
    ({"direction": "ingress", "protocol": "tcp", "port_range": 22},
     "to-lport", "outport == @pg_g && ip4 && tcp && tcp.dst == 22"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
     "to-lport", "outport == @pg_g && ip4 && tcp && tcp.dst == 22"),
    ({"direction": "ingress", "protocol": "tcp", "port_range": "1000-2000", "remote_ip_prefix": "10.1.0.0/16"},
     "to-lport", "outport == @pg_g && ip4 && ip4.src == 10.1.0.0/16 && tcp && tcp.dst >= 1000 && tcp.dst <= 2000"),
    ({"direction": "egress", "protocol": "udp", "port_range": 53, "remote_ip_prefix": "8.8.8.8"},
     "from-lport", "inport == @pg_g && ip4 && ip4.dst == 8.8.8.8/32 && udp && udp.dst == 53"),
    ({"direction": "ingress", "remote_ip_prefix": "10.1.2.3/16"},  # Neutron normalises the prefix
     "to-lport", "outport == @pg_g && ip4 && ip4.src == 10.1.0.0/16"),
    ({"direction": "ingress", "protocol": "icmp"}, "to-lport", "outport == @pg_g && ip4 && icmp4"),
    ({"direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
     "to-lport", "outport == @pg_g && ip4 && icmp4 && icmp4.type == 8 && icmp4.code == 0"),
    ({"direction": "ingress", "protocol": "ICMP", "port_range_min": 3},
     "to-lport", "outport == @pg_g && ip4 && icmp4 && icmp4.type == 3"),
    ({"direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp", "port_range_min": 128},
     "to-lport", "outport == @pg_g && ip6 && icmp6 && icmp6.type == 128"),
    ({"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "remote_ip_prefix": "fd00::/64"},
     "to-lport", "outport == @pg_g && ip6 && ip6.src == fd00::/64 && tcp"),
    ({"direction": "ingress", "protocol": 6, "port_range": 80}, "to-lport", "outport == @pg_g && ip4 && tcp && tcp.dst == 80"),
    ({"direction": "ingress", "protocol": "1"}, "to-lport", "outport == @pg_g && ip4 && icmp4"),
    ({"direction": "ingress", "protocol": 47}, "to-lport", "outport == @pg_g && ip4 && ip.proto == 47"),
    ({"direction": "ingress", "protocol": "gre"}, "to-lport", "outport == @pg_g && ip4 && ip.proto == 47"),
    ({"direction": "ingress", "protocol": "sctp", "port_range": 3868},
     "to-lport", "outport == @pg_g && ip4 && sctp && sctp.dst == 3868"),
    ({"direction": "ingress", "protocol": "any", "remote_group": "other"},
     "to-lport", "outport == @pg_g && ip4 && ip4.src == $pg_other_ip4"),
    ({"direction": "egress", "ethertype": "IPv6", "remote_group": "g"},
     "from-lport", "inport == @pg_g && ip6 && ip6.dst == $pg_g_ip6"),
]


@pytest.mark.parametrize("rule, direction, match", MATCHES, ids=[m[2][16:] for m in MATCHES])
def test_rule_compiles_to_neutrons_match(rule, direction, match):
    logical = compiled(doc_with({"g": {"default_rules": False, "rules": [rule]}, "other": {}}))
    (acl,) = logical.port_group("pg_g").acls
    assert (acl.direction, acl.priority, acl.match, acl.action) == (direction, 1002, match, "allow-related")


def test_rules_are_kept_as_neutron_stores_them():
    topo = load_document(doc_with({"g": {"default_rules": False, "rules": [
        {"direction": "ingress", "protocol": "TCP", "port_range": "22-23", "remote_ip_prefix": "10.0.0.9/8"}]}}))
    assert topo.security_groups["g"].rules == (
        SecurityGroupRule(id="g-rule0", direction="ingress", ethertype="IPv4", protocol="tcp", port_range_min=22,
                          port_range_max=23, remote_ip_prefix=ipaddress.ip_network("10.0.0.0/8")),)
    assert topo.ports["vm1"].security_groups == ("demo-default",)
    assert topo.projects["demo"].security_groups_enabled


# --------------------------------------------------------------------------
# Loader checks: one line naming file, field and problem
# --------------------------------------------------------------------------

G = "projects.demo.security_groups"


def rule_doc(**rule):
    return doc_with({"g": {"rules": [rule]}})


BAD = [
    ("unknown-port-group", doc_with({"web": {}}, {"vm1": {"security_groups": ["wbe"]}}),
     "projects.demo.ports.vm1.security_groups[0]", "security group 'wbe' does not exist in project 'demo' (did you mean 'web'?)"),
    ("group-twice", doc_with({"web": {}}, {"vm1": {"security_groups": ["web", "web"]}}),
     "projects.demo.ports.vm1.security_groups[1]", "security group 'web' is listed twice"),
    ("groups-without-port-security", doc_with({"web": {}}, {"vm1": {"security_groups": ["web"], "port_security": False}}),
     "projects.demo.ports.vm1.security_groups", "a port with port_security: false cannot have security groups"),
    ("unknown-remote-group", rule_doc(direction="ingress", remote_group="nope"),
     f"{G}.g.rules[0].remote_group", "security group 'nope' does not exist in project 'demo'"),
    ("remote-group-and-prefix", rule_doc(direction="ingress", remote_group="g", remote_ip_prefix="10.0.0.0/8"),
     f"{G}.g.rules[0].remote_group", "a rule has a remote_ip_prefix or a remote_group, not both"),
    ("bad-prefix", rule_doc(direction="ingress", remote_ip_prefix="10.0.0.300/8"),
     f"{G}.g.rules[0].remote_ip_prefix", "'10.0.0.300/8' is not a valid IP prefix"),
    ("prefix-ethertype", rule_doc(direction="ingress", remote_ip_prefix="fd00::/64"),
     f"{G}.g.rules[0].remote_ip_prefix", "fd00::/64 is an IPv6 prefix but the rule's ethertype is IPv4"),
    ("bad-direction", rule_doc(direction="inbound"),
     f"{G}.g.rules[0].direction", "expected one of 'ingress', 'egress', got 'inbound'"),
    ("unknown-protocol", rule_doc(direction="ingress", protocol="tpc"),
     f"{G}.g.rules[0].protocol", "unknown protocol 'tpc'"),
    ("protocol-number-range", rule_doc(direction="ingress", protocol=256),
     f"{G}.g.rules[0].protocol", "unknown protocol 256"),
    ("icmpv6-on-ipv4", rule_doc(direction="ingress", protocol="ipv6-icmp"),
     f"{G}.g.rules[0].protocol", "protocol ipv6-icmp is ICMPv6 and needs ethertype IPv6"),
    ("reversed-port-range", rule_doc(direction="ingress", protocol="tcp", port_range="80-22"),
     f"{G}.g.rules[0].port_range", "invalid port range 80-22"),
    ("port-zero", rule_doc(direction="ingress", protocol="udp", port_range=0),
     f"{G}.g.rules[0].port_range", "invalid port range 0-0"),
    ("port-too-big", rule_doc(direction="ingress", protocol="tcp", port_range_min=1, port_range_max=70000),
     f"{G}.g.rules[0].port_range_min", "invalid port range 1-70000"),
    ("half-port-range", rule_doc(direction="ingress", protocol="tcp", port_range_min=22),
     f"{G}.g.rules[0].port_range_min", "a port range needs both port_range_min and port_range_max"),
    ("ports-without-protocol", rule_doc(direction="ingress", port_range=22),
     f"{G}.g.rules[0].port_range", "a port range needs a protocol"),
    ("ports-on-gre", rule_doc(direction="ingress", protocol="gre", port_range=22),
     f"{G}.g.rules[0].port_range", "protocol gre has no ports"),
    ("bad-port-range-text", rule_doc(direction="ingress", protocol="tcp", port_range="ssh"),
     f"{G}.g.rules[0].port_range", "'ssh' is not a port range"),
    ("port-range-twice", rule_doc(direction="ingress", protocol="tcp", port_range=22, port_range_min=22),
     f"{G}.g.rules[0].port_range", "give port_range or port_range_min/port_range_max, not both"),
    ("icmp-type-range", rule_doc(direction="ingress", protocol="icmp", port_range_min=300),
     f"{G}.g.rules[0].port_range_min", "invalid ICMP type 300: expected 0-255"),
    ("icmp-port-range", rule_doc(direction="ingress", protocol="icmp", port_range=8),
     f"{G}.g.rules[0].port_range", "port_range is for tcp, udp and sctp; give the ICMP type as port_range_min"),
    ("icmp-code-without-type", rule_doc(direction="ingress", protocol="icmp", port_range_max=0),
     f"{G}.g.rules[0].port_range_max", "an ICMP code (port_range_max) needs a type (port_range_min)"),
    ("duplicate-rule", doc_with({"g": {"rules": [{"direction": "ingress", "protocol": "tcp", "port_range": 22},
                                                 {"direction": "ingress", "protocol": 6, "port_range": "22"}]}}),
     f"{G}.g.rules[1]", "this rule repeats rules[0] (Neutron refuses a duplicate rule)"),
    ("duplicate-default-rule", rule_doc(direction="egress"),
     f"{G}.g.rules[0]", "this rule repeats the default rule 'egress IPv4'"),
    ("bad-group-id", doc_with({"g": {"id": "web group"}}),
     f"{G}.g.id", "security group id 'web group' may hold only letters, digits"),
    ("port-group-name-clash", doc_with({"a-b": {}, "a_b": {}}),
     f"{G}.a_b", "security group id 'a_b' gives port group 'pg_a_b', as projects.demo.security_groups.a-b does"),
    ("unknown-rule-key", rule_doc(direction="ingress", remote_group_id="g"),
     f"{G}.g.rules[0]", "unknown key 'remote_group_id' (did you mean 'remote_group'?)"),
    ("group-needs-ip", doc_with({"web": {}}, {"noip": {"network": "web", "fixed_ips": [], "security_groups": ["web"]}}),
     "projects.demo.ports.noip.security_groups", "a port needs an IP address to have security groups"),
]


@pytest.mark.parametrize("doc, path, problem", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_security_groups_are_one_line_errors(doc, path, problem):
    with pytest.raises(TopologyError) as info:
        load_document(doc, "t.yaml")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"t.yaml: {path}: "), text
    assert problem in text, text


def test_cli_reports_a_bad_rule_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(rule_doc(direction="ingress", protocol="tcp", port_range="80-22")))
    proc = subprocess.run([sys.executable, "-m", "ovnsim.cli", "show", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"ovnsim: error: {path}: {G}.g.rules[0].port_range: invalid port range 80-22: ports are 1-65535 and the "
        "first is not above the last"]


# --------------------------------------------------------------------------
# The example topology: show and export, and real OVN
# --------------------------------------------------------------------------


def test_example_topology_has_every_kind_of_group():
    topo = load_topology(str(EXAMPLE))
    groups = {sg.name: sg for sg in topo.security_groups.values()}
    assert set(groups) == {"default", "web", "db", "bastion", "stateless"}
    assert not groups["stateless"].stateful
    assert any(r.remote_group == "bastion" for r in groups["web"].rules)
    assert not topo.ports["fw1"].port_security and topo.ports["fw1"].security_groups == ()
    assert not topo.projects["lab"].security_groups_enabled
    logical = compile_topology(topo)
    assert logical.unfiltered_projects == ("lab",)
    sets = {s.name: s.addresses for s in logical.port_group_address_sets()}
    assert sets["pg_web_ip4"] == ("10.4.0.11", "10.4.0.12")
    assert sets["pg_bastion_ip4"] == ("10.4.0.20",) and sets["pg_bastion_ip6"] == ()


def test_export_creates_port_groups_after_their_ports_and_acls_with_rule_ids():
    logical = compile_topology(load_topology(str(EXAMPLE)))
    commands = nbctl_commands(logical)
    first_pg = next(i for i, argv in enumerate(commands) if "pg-add" in argv)
    assert all("pg-add" in argv or "acl-add" in argv or "ACL" in argv for argv in commands[first_pg:])
    assert ["ovn-nbctl", "--type=port-group", "acl-add", "neutron_pg_drop", "to-lport", "1001",
            "outport == @neutron_pg_drop && ip", "drop"] in commands
    ssh = next(argv for argv in commands if any("$pg_bastion_ip4" in a for a in argv))
    assert 'match="outport == @pg_web && ip4 && ip4.src == $pg_bastion_ip4 && tcp && tcp.dst == 22"' in ssh
    assert ssh[-6:] == ["--", "add", "Port_Group", "pg_web", "acls", ssh[1][len("--id="):]]
    assert 'external_ids:"neutron:security_group_rule_id"="web-rule4"' in ssh


@pytest.mark.ovn
def test_real_ovn_lists_the_acls_as_ovnsim_show(ovn):
    logical = compile_topology(load_topology(str(EXAMPLE)))
    ovn.run_nbctl_script(nbctl_commands(logical))
    ovn.sync()
    shown = show_text(logical).splitlines()
    for pg in logical.port_groups:
        start = shown.index(next(line for line in shown if line.startswith("port-group ") and f"({pg.name})" in line))
        ours = [line[4:] for line in shown[start + 2:start + 2 + len(pg.acls)]]
        assert ovn.nbctl("--type=port-group", "acl-list", pg.name).splitlines() == ours, pg.name
    # northd turned the ACLs into ls_in_acl / ls_out_acl flows of the switches with filtered ports
    flows = ovn.lflow_list("neutron-web")
    assert "reg0[7] == 1 && (outport == @pg_web && ip4 && ip4.src == $pg_bastion_ip4 && tcp && tcp.dst == 22)" in flows
    # a stateless ACL skips conntrack: reg0[16] in ls_in_pre_acl, a plain next; in ls_in_acl
    assert "priority=2002 , match=(inport == @pg_stateless && ip4), action=(reg0[16] = 1; next;)" in flows
    assert "priority=2002 , match=(inport == @pg_stateless && ip4), action=(next;)" in flows
    assert "ls_in_pre_acl" in flows and "ls_out_acl" in flows
    assert "pg_" not in ovn.lflow_list("neutron-lab")


def test_builder_makes_the_same_document_as_a_file():
    from ovnsim.neutron.builder import TopologyBuilder

    b = TopologyBuilder("t")
    p = b.project("demo")
    p.network("web", cidr="10.0.0.0/24")
    p.security_group("g", [{"direction": "ingress", "protocol": "tcp", "port_range": 22, "remote_group": "default"}],
                     stateful=False)
    p.port("vm1", network="web", security_groups=["g", "default"])
    p.port("vm2", network="web")
    logical = compile_topology(b.build())
    assert logical.port_group("pg_g").ports == ("vm1",)
    assert ("to-lport", "outport == @pg_g && ip4 && ip4.src == $pg_demo_default_ip4 && tcp && tcp.dst == 22",
            "allow-stateless") in acls_of(logical, "pg_g")
    assert logical.port_group("pg_demo_default").ports == ("vm1", "vm2")

    bare = TopologyBuilder("t")
    bare.project("demo").enable_security_groups()
    assert bare.document()["projects"]["demo"]["security_groups"] == {}


@pytest.mark.ovn
def test_exported_script_runs_in_a_shell_and_builds_the_port_groups(ovn):
    """`ovnsim export nbctl` piped to sh: the quoting survives `$pg_..._ip4` and `@pg_...` in the matches."""
    import shlex

    script = subprocess.run([sys.executable, "-m", "ovnsim.cli", "export", "nbctl", str(EXAMPLE)],
                            check=True, capture_output=True, text=True).stdout
    subprocess.run(["sh", "-e", "-c", f"export OVN_NB_DB={shlex.quote(ovn.nb_db)}\n" + script],
                   check=True, capture_output=True, text=True)
    ovn.sync()
    logical = compile_topology(load_topology(str(EXAMPLE)))
    real = ovn.port_groups()
    assert set(real) == {pg.name for pg in logical.port_groups}
    web = real["pg_web"]
    assert web["ports"] == ["web1", "web2"]
    assert ("to-lport", 1002, "outport == @pg_web && ip4 && ip4.src == $pg_bastion_ip4 && tcp && tcp.dst == 22",
            "allow-related", {"neutron:security_group_rule_id": "web-rule4"}) in web["acls"]
