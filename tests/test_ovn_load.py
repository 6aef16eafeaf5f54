"""Every example topology, compiled by ovnsim, loads into real OVN as ovnsim says it does.

For each file in ``topologies/``: the ``ovnsim export nbctl`` commands are
accepted by a real northbound database, ovn-northd writes logical flows for
every datapath, and what ``ovn-nbctl show`` (plus ``lr-route-list``, the NAT
rows, the static MAC bindings, the DHCP_Options rows with the ports that use
them, the Port_Group rows with their members and ACLs) lists equals what
ovnsim compiled, northd answers DHCP on exactly the ports that should get it,
derives the port groups' address sets ovnsim derives, and writes ACL flows
for exactly the switches with filtered ports.
"""

from __future__ import annotations

import json
import pathlib
import shlex
import subprocess
import sys

import pytest

from ovnsim.neutron.compiler import compile_topology
from ovnsim.nb.nbctl import nbctl_commands
from ovnsim.nb.show import show_text
from ovnsim.neutron.loader import load_topology
from ovnsim.testing.nbshow import normalize_prefix, parse_lr_route_list, parse_nbctl_show

TOPOLOGIES = sorted(pathlib.Path(__file__).resolve().parent.parent.joinpath("topologies").glob("*.yaml"))

pytestmark = pytest.mark.ovn


def test_there_are_example_topologies():
    names = {p.stem for p in TOPOLOGIES}
    assert {"reference", "two-projects", "dgp", "multi-router", "large", "provider-ports", "dhcp-metadata", "security-groups"} <= names


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_topology_loads_into_real_ovn(ovn, path):
    logical = compile_topology(load_topology(str(path)))
    ovn.run_nbctl_script(nbctl_commands(logical))
    ovn.sync()

    # ovn-northd made a datapath, with logical flows, for every switch and router.
    expected = {ls.name for ls in logical.switches} | {lr.name for lr in logical.routers}
    assert set(ovn.datapaths()) == expected
    flows = ovn.lflow_list()
    for ls in logical.switches:
        assert f'Datapath: "{ls.name}"' in flows
    assert flows.count("ls_in_l2_lkup") >= len(logical.switches)
    assert flows.count("lr_in_ip_routing") >= len(logical.routers)

    # ovn-nbctl show lists what ovnsim show lists.
    assert parse_nbctl_show(ovn.nbctl("show")) == parse_nbctl_show(show_text(logical))

    for lr in logical.routers:
        real_routes = sorted((normalize_prefix(str(r["ip_prefix"])), str(r["nexthop"]))
                             for r in parse_lr_route_list(ovn.nbctl("lr-route-list", lr.name)))
        ours = sorted((normalize_prefix(r.ip_prefix), r.nexthop) for r in lr.static_routes)
        assert real_routes == ours, lr.name
        ours_nat = sorted(((n.type, n.external_ip, n.logical_ip, n.external_mac, n.logical_port, n.stateless)
                           for n in lr.nat), key=lambda t: tuple("" if v is None else str(v) for v in t))
        assert ovn.nat_list(lr.name) == ours_nat, lr.name

    bindings = ovn.nbctl("static-mac-binding-list")
    for binding in logical.static_mac_bindings:
        assert binding.logical_port in bindings and binding.mac in bindings

    # the DHCP_Options rows, and which switch ports use which (by cidr)
    assert real_dhcp_options(ovn) == sorted(((d.cidr, dict(d.options), dict(d.external_ids))
                                             for d in logical.dhcp_options), key=json.dumps)
    rows = {d.key: d.cidr for d in logical.dhcp_options}
    ours_users = {p.name: rows[p.dhcpv4_options] for ls in logical.switches for p in ls.ports if p.dhcpv4_options}
    assert real_dhcp_users(ovn) == ours_users
    # northd answers DHCP for exactly those ports (a put_dhcp_opts flow each)
    offers = {line.split('inport == "', 1)[1].split('"', 1)[0]
              for line in flows.splitlines() if "put_dhcp_opts(" in line and "ls_in_dhcp_options" in line}
    assert offers == {name for name, cidr in ours_users.items()
                      if any(d.options.get("server_id") for d in logical.dhcp_options if d.cidr == cidr)}

    # the Port_Group rows: members, external_ids, ACLs with their external_ids
    assert ovn.port_groups() == {
        pg.name: {"ports": sorted(pg.ports), "external_ids": dict(pg.external_ids),
                  "acls": sorted(((a.direction, a.priority, a.match, a.action, dict(a.external_ids))
                                  for a in pg.acls), key=repr)}
        for pg in logical.port_groups}
    # northd's address sets for them (ovnsim derives the same), among the SB Address_Set rows
    real_sets = {str(r["name"]): sorted(r["addresses"] if isinstance(r["addresses"], list) else [r["addresses"]])
                 for r in ovn.sb_rows("Address_Set", ["name", "addresses"])}
    for aset in logical.port_group_address_sets():
        assert real_sets.pop(aset.name) == sorted(aset.addresses), aset.name
    assert set(real_sets) <= {"svc_monitor_mac"}
    # a switch gets priority-1001/1002 ACL flows (2001/2002 in ls_in_acl / ls_out_acl) iff a filtered port is on it
    filtered = {p for pg in logical.port_groups for p in pg.ports}
    with_acls, datapath = set(), None
    for line in flows.splitlines():
        if line.startswith("Datapath: "):
            datapath = line.split('"', 2)[1]
        elif "(ls_in_acl " in line and "priority=200" in line:
            with_acls.add(datapath)
    assert with_acls == {ls.name for ls in logical.switches if any(p.name in filtered for p in ls.ports)}


def _nb_json(ovn, table: str, *columns: str):
    data = json.loads(ovn.nbctl("--format=json", f"--columns={','.join(columns)}", "list", table))
    return data["data"]


def _ovsdb_map(value) -> dict:
    assert value[0] == "map"
    return {k: v for k, v in value[1]}


def real_dhcp_options(ovn):
    """(cidr, options, external_ids) of every DHCP_Options row in the real NB, sorted."""
    return sorted(((cidr, _ovsdb_map(options), _ovsdb_map(ids))
                   for cidr, options, ids in _nb_json(ovn, "DHCP_Options", "cidr", "options", "external_ids")),
                  key=json.dumps)


def real_dhcp_users(ovn):
    """Switch port name -> cidr of the DHCP_Options row its dhcpv4_options names."""
    cidr_of = {uuid[1]: cidr for uuid, cidr in _nb_json(ovn, "DHCP_Options", "_uuid", "cidr")}
    users = {}
    for name, ref in _nb_json(ovn, "Logical_Switch_Port", "name", "dhcpv4_options"):
        if ref[0] == "uuid":
            users[name] = cidr_of[ref[1]]
    return users


def test_export_nbctl_cli_prints_one_invocation_per_line():
    path = next(p for p in TOPOLOGIES if p.stem == "reference")
    out = subprocess.run([sys.executable, "-m", "ovnsim.cli", "export", "nbctl", str(path)],
                         check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    logical = compile_topology(load_topology(str(path)))
    assert [shlex.split(line) for line in lines] == nbctl_commands(logical)
    assert all(line.startswith("ovn-nbctl ") for line in lines)


def test_exported_script_runs_in_a_shell_against_real_ovn(ovn, tmp_path):
    """The printed script is what a user pipes to sh: run it that way."""
    path = next(p for p in TOPOLOGIES if p.stem == "dgp")
    script = subprocess.run([sys.executable, "-m", "ovnsim.cli", "export", "nbctl", str(path)],
                            check=True, capture_output=True, text=True).stdout
    env_prefix = f"export OVN_NB_DB={shlex.quote(ovn.nb_db)}\n"
    subprocess.run(["sh", "-e", "-c", env_prefix + script], check=True, capture_output=True, text=True)
    ovn.sync()
    logical = compile_topology(load_topology(str(path)))
    assert parse_nbctl_show(ovn.nbctl("show")) == parse_nbctl_show(show_text(logical))
