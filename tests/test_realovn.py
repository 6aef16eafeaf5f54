"""The real-OVN fixture: start-up, loading, northd output, show parsing, traces, reset, stop.

Tests marked ``ovn`` need Debian's ovn-central/ovn-common (skipped otherwise,
see conftest.py); the parser tests at the end need nothing.
"""

from __future__ import annotations

import gc
import os
import subprocess

import pytest

from ovnsim.testing.nbshow import (
    NbShowParseError,
    normalize_prefix,
    parse_lr_nat_list,
    parse_lr_route_list,
    parse_nbctl_show,
)
from ovnsim.testing.realovn import CommandError, RealOVN, TraceCrash, TraceError

VM11_MAC, VM12_MAC, PU13_MAC, VM21_MAC = (
    "fa:16:3e:00:01:11", "fa:16:3e:00:01:12", "fa:16:3e:00:01:13", "fa:16:3e:00:02:21")
LR1_NET1_MAC, LR1_GW_MAC, GR2_GW_MAC = "fa:16:3e:aa:01:01", "fa:16:3e:aa:00:01", "fa:16:3e:bb:00:01"

#: A small hand-written topology with every kind of object ovnsim emits:
#: VM ports with addresses and port security, a port with "unknown", router
#: type ports, a localnet port, a distributed router with a gateway-chassis
#: port, a gateway router (options:chassis), static routes, snat, a
#: distributed dnat_and_snat (logical_port + external_mac) and a stateless one.
TOPO = [
    ["ls-add", "net1"],
    ["lsp-add", "net1", "vm11"],
    ["lsp-set-addresses", "vm11", f"{VM11_MAC} 10.1.0.11"],
    ["lsp-set-port-security", "vm11", f"{VM11_MAC} 10.1.0.11"],
    ["lsp-add", "net1", "vm12"],
    ["lsp-set-addresses", "vm12", f"{VM12_MAC} 10.1.0.12 fd00:1::12"],
    ["lsp-set-port-security", "vm12", f"{VM12_MAC} 10.1.0.12 fd00:1::12"],
    ["lsp-add", "net1", "pu13"],
    ["lsp-set-addresses", "pu13", f"{PU13_MAC} 10.1.0.13", "unknown"],
    ["lsp-add", "net1", "net1-lr1"],
    ["lsp-set-type", "net1-lr1", "router"],
    ["lsp-set-addresses", "net1-lr1", "router"],
    ["lsp-set-options", "net1-lr1", "router-port=lrp1-net1"],
    ["ls-add", "public"],
    ["lsp-add", "public", "ln-public"],
    ["lsp-set-type", "ln-public", "localnet"],
    ["lsp-set-addresses", "ln-public", "unknown"],
    ["lsp-set-options", "ln-public", "network_name=physnet1"],
    ["lsp-add", "public", "public-lr1"],
    ["lsp-set-type", "public-lr1", "router"],
    ["lsp-set-addresses", "public-lr1", "router"],
    ["lsp-set-options", "public-lr1", "router-port=lrp1-gw"],
    ["lsp-add", "public", "public-gr2"],
    ["lsp-set-type", "public-gr2", "router"],
    ["lsp-set-addresses", "public-gr2", "router"],
    ["lsp-set-options", "public-gr2", "router-port=lrp2-gw"],
    ["lr-add", "lr1"],
    ["lrp-add", "lr1", "lrp1-net1", LR1_NET1_MAC, "10.1.0.1/24", "fd00:1::1/64"],
    ["lrp-add", "lr1", "lrp1-gw", LR1_GW_MAC, "172.24.4.10/24"],
    ["lrp-set-gateway-chassis", "lrp1-gw", "hv2", "10"],
    ["lrp-set-gateway-chassis", "lrp1-gw", "hv1", "20"],
    ["lr-route-add", "lr1", "0.0.0.0/0", "172.24.4.1"],
    ["lr-route-add", "lr1", "192.168.10.0/24", "10.1.0.13"],
    ["lr-route-add", "lr1", "192.168.99.5/32", "10.1.0.13", "lrp1-net1"],
    ["lr-nat-add", "lr1", "snat", "172.24.4.10", "10.1.0.0/24"],
    ["lr-nat-add", "lr1", "dnat_and_snat", "172.24.4.101", "10.1.0.11", "vm11", "fa:16:3e:ee:01:11"],
    ["--stateless", "lr-nat-add", "lr1", "dnat_and_snat", "172.24.4.102", "10.1.0.12"],
    ["ls-add", "net2"],
    ["lsp-add", "net2", "vm21"],
    ["lsp-set-addresses", "vm21", f"{VM21_MAC} 10.2.0.21"],
    ["lsp-add", "net2", "net2-gr2"],
    ["lsp-set-type", "net2-gr2", "router"],
    ["lsp-set-addresses", "net2-gr2", "router"],
    ["lsp-set-options", "net2-gr2", "router-port=lrp2-net2"],
    ["lr-add", "gr2"],
    ["set", "Logical_Router", "gr2", "options:chassis=hv1"],
    ["lrp-add", "gr2", "lrp2-net2", "fa:16:3e:bb:02:01", "10.2.0.1/24"],
    ["lrp-add", "gr2", "lrp2-gw", GR2_GW_MAC, "172.24.4.20/24"],
    ["lr-route-add", "gr2", "0.0.0.0/0", "172.24.4.1"],
    ["lr-nat-add", "gr2", "snat", "172.24.4.20", "10.2.0.0/24"],
    ["lr-nat-add", "gr2", "dnat_and_snat", "172.24.4.201", "10.2.0.21"],
]

SWITCHES = ["net1", "net2", "public"]
ROUTERS = ["gr2", "lr1"]

VM11_TO_VM12 = f'inport == "vm11" && eth.src == {VM11_MAC} && eth.dst == {VM12_MAC}'
VM11_PING_VM12 = (f'inport == "vm11" && eth.src == {VM11_MAC} && eth.dst == {VM12_MAC} && '
                  'ip4.src == 10.1.0.11 && ip4.dst == 10.1.0.12 && ip.ttl == 64 && icmp4.type == 8')
VM11_ARP_VM12 = (f'inport == "vm11" && eth.src == {VM11_MAC} && eth.dst == ff:ff:ff:ff:ff:ff && '
                 f'arp.op == 1 && arp.sha == {VM11_MAC} && arp.spa == 10.1.0.11 && '
                 'arp.tha == 00:00:00:00:00:00 && arp.tpa == 10.1.0.12')
VM11_TO_ROUTE = (f'inport == "vm11" && eth.src == {VM11_MAC} && eth.dst == {LR1_NET1_MAC} && '
                 'ip4.src == 10.1.0.11 && ip4.dst == 192.168.10.5 && ip.ttl == 64 && icmp4.type == 8')
EXT_TO_GR2_FIP = (f'inport == "ln-public" && eth.src == fa:16:3e:99:00:01 && eth.dst == {GR2_GW_MAC} && '
                  'ip4.src == 8.8.8.8 && ip4.dst == 172.24.4.201 && ip.ttl == 64 && icmp4.type == 8')
UNKNOWN_INPORT = f'inport == "nosuch" && eth.src == {VM11_MAC} && eth.dst == {VM12_MAC}'


def _alive(pid: int) -> bool:
    """True if the pid runs (a zombie waiting for init to reap it is dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def _load(ovn: RealOVN) -> None:
    ovn.run_nbctl_script(TOPO)
    ovn.sync()


# --------------------------------------------------------------------------
# Fixture, loading, northd output
# --------------------------------------------------------------------------


@pytest.mark.ovn
def test_fixture_runs_the_three_daemons(ovn):
    assert RealOVN.available() == (True, "")
    assert set(ovn.pids) >= {"nb", "sb", "northd"}
    assert all(_alive(pid) for pid in ovn.pids.values())
    assert ovn.nb_db.startswith("unix:") and ovn.dir in ovn.nb_db
    assert ovn.datapaths() == []
    assert ovn.appctl("northd", "is-paused").strip() == "false"


@pytest.mark.ovn
def test_northd_builds_flows_for_every_datapath(ovn):
    _load(ovn)
    assert ovn.datapaths() == sorted(SWITCHES + ROUTERS)
    for dp in SWITCHES + ROUTERS:
        flows = ovn.lflow_list(dp)
        assert f'Datapath: "{dp}"' in flows
        assert flows.count("table=") > 20, dp
    for ls in SWITCHES:
        flows = ovn.lflow_list(ls)
        for stage in ("ls_in_check_port_sec", "ls_in_arp_rsp", "ls_in_l2_lkup", "ls_out_apply_port_sec"):
            assert f"({stage}" in flows, (ls, stage)
    for lr in ROUTERS:
        flows = ovn.lflow_list(lr)
        for stage in ("lr_in_admission", "lr_in_ip_input", "lr_in_ip_routing", "lr_in_arp_resolve",
                      "lr_out_snat"):
            assert f"({stage}" in flows, (lr, stage)
    # NAT, routes and port security made it into the flows
    lr1 = ovn.lflow_list("lr1")
    assert "ct_snat_in_czone(172.24.4.10)" in lr1
    assert "action=(ip4.dst=10.1.0.12; next;)" in lr1  # stateless FIP: plain rewrite
    assert "192.168.10.0/24" in lr1 and "192.168.99.5" in lr1
    assert "ct_dnat(10.2.0.21)" in ovn.lflow_list("gr2")
    # all datapaths in one listing
    assert ovn.lflow_list().count("Datapath: ") == 2 * len(SWITCHES + ROUTERS)
    # the gateway-chassis port got its chassisredirect binding, gr2 its l3gateway ones
    types = {r["logical_port"]: r["type"] for r in ovn.sb_rows("Port_Binding", ["logical_port", "type"])}
    assert types["cr-lrp1-gw"] == "chassisredirect"
    assert types["lrp2-gw"] == "l3gateway" and types["lrp1-gw"] == "patch"
    assert types["ln-public"] == "localnet" and types["vm11"] == ""
    names = ovn.datapath_names()
    assert sorted(set(names.values())) == sorted(SWITCHES + ROUTERS)


@pytest.mark.ovn
def test_script_forms(ovn):
    # export-style lines: "ovn-nbctl", global options, "--" chains
    n = ovn.run_nbctl_script([
        ["ovn-nbctl", "--wait=sb", "ls-add", "a", "--", "lsp-add", "a", "a1"],
        ["ovn-nbctl", "--may-exist", "ls-add", "a"],
    ])
    assert n == 3
    assert ovn.datapaths() == ["a"]  # --wait asked for a sync
    # one flat batch
    assert ovn.run_nbctl_script(["ls-add", "b", "--", "lsp-add", "b", "b1", "--",
                                 "lsp-set-addresses", "b1", "fa:16:3e:00:00:b1 10.9.0.1"]) == 3
    # script text with shell quoting and comments
    assert ovn.run_nbctl_script(
        "# a comment\n"
        "ovn-nbctl ls-add c\n"
        "ovn-nbctl lsp-add c c1 -- lsp-set-addresses c1 'fa:16:3e:00:00:c1 10.9.0.2'\n") == 3
    ovn.sync()
    assert ovn.datapaths() == ["a", "b", "c"]
    show = parse_nbctl_show(ovn.nbctl("show"))
    assert show["switches"]["c"]["ports"]["c1"]["addresses"] == ["fa:16:3e:00:00:c1 10.9.0.2"]


@pytest.mark.ovn
def test_many_commands_are_batched(ovn):
    script = []
    for s in range(20):
        script.append(["ls-add", f"n{s}"])
        for p in range(50):
            mac = f"fa:16:3e:00:{s:02x}:{p:02x}"
            script += [["lsp-add", f"n{s}", f"p{s}-{p}"],
                       ["lsp-set-addresses", f"p{s}-{p}", f"{mac} 10.{s}.0.{p + 2}"],
                       ["lsp-set-port-security", f"p{s}-{p}", f"{mac} 10.{s}.0.{p + 2}"]]
    assert ovn.run_nbctl_script(script) == len(script) == 3020
    ovn.sync()
    assert len(ovn.datapaths()) == 20
    assert len(ovn.nb_rows("Logical_Switch_Port", ["name"])) == 1000


@pytest.mark.ovn
def test_command_errors_carry_stderr(ovn):
    with pytest.raises(CommandError, match="no-such-switch") as info:
        ovn.nbctl("lsp-add", "no-such-switch", "p1")
    assert info.value.returncode != 0 and "not found" in info.value.stderr
    with pytest.raises(CommandError, match="batch of script commands 1..3"):
        ovn.run_nbctl_script([["ls-add", "x"], ["lsp-add", "x", "x1"], ["lsp-add", "nope", "x2"]])
    ovn.sync()
    assert ovn.datapaths() == []  # the failed batch was one transaction, rolled back


# --------------------------------------------------------------------------
# ovn-nbctl show, lr-route-list, lr-nat-list
# --------------------------------------------------------------------------


def _lsp(type_="", addresses=(), router_port=None, **kw):
    port = {"aka": None, "type": type_, "parent": None, "tag": None,
            "addresses": list(addresses), "router-port": router_port}
    port.update(kw)
    return port


def _lrp(mac, networks, chassis=()):
    return {"mac": mac, "networks": list(networks), "gateway chassis": list(chassis)}


EXPECTED_SHOW = {
    "switches": {
        "net1": {"aka": None, "ports": {
            "vm11": _lsp(addresses=[f"{VM11_MAC} 10.1.0.11"]),
            "vm12": _lsp(addresses=[f"{VM12_MAC} 10.1.0.12 fd00:1::12"]),
            "pu13": _lsp(addresses=[f"{PU13_MAC} 10.1.0.13", "unknown"]),
            "net1-lr1": _lsp("router", router_port="lrp1-net1"),
        }},
        "public": {"aka": None, "ports": {
            "ln-public": _lsp("localnet", ["unknown"]),
            "public-lr1": _lsp("router", router_port="lrp1-gw"),
            "public-gr2": _lsp("router", router_port="lrp2-gw"),
        }},
        "net2": {"aka": None, "ports": {
            "vm21": _lsp(addresses=[f"{VM21_MAC} 10.2.0.21"]),
            "net2-gr2": _lsp("router", router_port="lrp2-net2"),
        }},
    },
    "routers": {
        "lr1": {"aka": None,
                "ports": {"lrp1-net1": _lrp(LR1_NET1_MAC, ["10.1.0.1/24", "fd00:1::1/64"]),
                          "lrp1-gw": _lrp(LR1_GW_MAC, ["172.24.4.10/24"], ["hv1", "hv2"])},
                "nat": [("dnat_and_snat", "172.24.4.101", "10.1.0.11", None, None),
                        ("dnat_and_snat", "172.24.4.102", "10.1.0.12", None, None),
                        ("snat", "172.24.4.10", "10.1.0.0/24", None, None)],
                "nat port ranges": []},
        "gr2": {"aka": None,
                "ports": {"lrp2-net2": _lrp("fa:16:3e:bb:02:01", ["10.2.0.1/24"]),
                          "lrp2-gw": _lrp(GR2_GW_MAC, ["172.24.4.20/24"])},
                "nat": [("dnat_and_snat", "172.24.4.201", "10.2.0.21", None, None),
                        ("snat", "172.24.4.20", "10.2.0.0/24", None, None)],
                "nat port ranges": []},
    },
}


@pytest.mark.ovn
def test_show_parses_to_the_loaded_topology(ovn):
    _load(ovn)
    text = ovn.nbctl("show")
    assert parse_nbctl_show(text) == EXPECTED_SHOW
    # the printed format the parser is built on
    assert "    port lrp1-gw\n        mac: \"fa:16:3e:aa:00:01\"\n" in text
    # 23.03 prints gateway chassis in row order, not by priority; the parser sorts
    assert ("        gateway chassis: [hv1 hv2]\n" in text) != ("        gateway chassis: [hv2 hv1]\n" in text)
    assert "        addresses: [\"fa:16:3e:00:01:13 10.1.0.13\", \"unknown\"]\n" in text
    # show prints no static routes and no port security
    assert "0.0.0.0/0" not in text and "192.168.10.0" not in text
    # one switch / one router alone
    assert parse_nbctl_show(ovn.nbctl("show", "net2"))["switches"] == {"net2": EXPECTED_SHOW["switches"]["net2"]}
    assert parse_nbctl_show(ovn.nbctl("show", "gr2"))["routers"] == {"gr2": EXPECTED_SHOW["routers"]["gr2"]}


@pytest.mark.ovn
def test_route_list_and_nat_details(ovn):
    _load(ovn)
    routes = parse_lr_route_list(ovn.nbctl("lr-route-list", "lr1"))
    assert [(r["ip_prefix"], r["nexthop"], r["policy"], r["output_port"]) for r in routes] == [
        ("192.168.99.5", "10.1.0.13", "dst-ip", "lrp1-net1"),  # /32 printed bare
        ("192.168.10.0/24", "10.1.0.13", "dst-ip", None),
        ("0.0.0.0/0", "172.24.4.1", "dst-ip", None),
    ]
    assert {r["route_table"] for r in routes} == {""}
    assert normalize_prefix("192.168.99.5/32") == "192.168.99.5"
    assert parse_lr_route_list(ovn.nbctl("lr-route-list", "gr2"))[0]["nexthop"] == "172.24.4.1"
    # NAT details show does not print: lossless from the rows, and from lr-nat-list
    assert ovn.nat_list("lr1") == [
        ("dnat_and_snat", "172.24.4.101", "10.1.0.11", "fa:16:3e:ee:01:11", "vm11", False),
        ("dnat_and_snat", "172.24.4.102", "10.1.0.12", None, None, True),
        ("snat", "172.24.4.10", "10.1.0.0/24", None, None, False),
    ]
    assert parse_lr_nat_list(ovn.nbctl("lr-nat-list", "lr1")) == [t[:5] for t in ovn.nat_list("lr1")]


@pytest.mark.ovn
def test_show_rarer_attributes(ovn):
    ovn.run_nbctl_script([
        ["ls-add", "net4"],
        ["set", "Logical_Switch", "net4", 'external_ids:"neutron:network_name"=private4'],
        ["lsp-add", "net4", "vm41"],
        ["set", "Logical_Switch_Port", "vm41", 'external_ids:"neutron:port_name"=web1'],
        ["lsp-set-addresses", "vm41", "dynamic"],
        ["lsp-add", "net4", "vm42", "vm41", "7"],
        ["lsp-add", "net4", "ln4"],
        ["lsp-set-type", "ln4", "localnet"],
        ["set", "Logical_Switch_Port", "ln4", "tag=100"],
        ["lsp-set-addresses", "ln4", "unknown"],
        ["lsp-add", "net4", "empty4"],
        ["lsp-add", "net4", "multi4"],
        ["lsp-set-addresses", "multi4", "unknown", "fa:16:3e:00:04:09 10.4.0.9", "02:00:00:00:00:01"],
        ["lr-add", "lr4"],
        ["set", "Logical_Router", "lr4", 'external_ids:"neutron:router_name"=rtr4'],
        ["lrp-add", "lr4", "lrp4", "fa:16:3e:cc:00:01", "fd00:4::1/64"],
        ["--portrange", "lr-nat-add", "lr4", "dnat_and_snat", "172.24.4.55", "10.4.0.5", "1000-2000"],
        ["lr-add", "lr-empty"],
    ])
    ovn.sync()
    text = ovn.nbctl("show")
    # OVSDB sets print sorted, not in the order given
    assert 'addresses: ["02:00:00:00:00:01", "fa:16:3e:00:04:09 10.4.0.9", "unknown"]' in text
    show = parse_nbctl_show(text)
    net4 = show["switches"]["net4"]
    assert net4["aka"] == "private4"
    assert net4["ports"]["vm41"] == _lsp(addresses=["dynamic"], aka="web1")
    assert net4["ports"]["vm42"] == _lsp(parent="vm41", tag=7)
    assert net4["ports"]["ln4"] == _lsp("localnet", ["unknown"], tag=100)
    assert net4["ports"]["empty4"] == _lsp()
    assert net4["ports"]["multi4"]["addresses"] == [
        "02:00:00:00:00:01", "fa:16:3e:00:04:09 10.4.0.9", "unknown"]
    lr4 = show["routers"]["lr4"]
    assert lr4["aka"] == "rtr4"
    assert lr4["nat"] == [("dnat_and_snat", "172.24.4.55", "10.4.0.5", None, None)]
    assert lr4["nat port ranges"] == [("dnat_and_snat", "172.24.4.55", "10.4.0.5", "1000-2000")]
    assert show["routers"]["lr-empty"] == {"aka": None, "ports": {}, "nat": [], "nat port ranges": []}
    assert parse_lr_route_list(ovn.nbctl("lr-route-list", "lr4")) == []


# --------------------------------------------------------------------------
# ovn-trace: one-shot and daemon
# --------------------------------------------------------------------------


@pytest.mark.ovn
def test_trace_one_shot_and_daemon_agree(ovn):
    _load(ovn)
    one = ovn.trace("net1", VM11_TO_VM12, "--minimal")
    assert one.splitlines()[1:] == ['output("vm12");']
    assert ovn.daemon_trace("net1", VM11_TO_VM12, "--minimal") == one
    assert "trace" in ovn.pids
    for flow in (VM11_TO_VM12, VM11_PING_VM12, VM11_ARP_VM12, VM11_TO_ROUTE):
        for options in ((), ("--minimal",), ("--summary", "--minimal", "--detailed"), ("--all",)):
            assert ovn.daemon_trace("net1", flow, *options) == ovn.trace("net1", flow, *options), \
                (flow, options)
    # the detailed trace names OVN's stages; the routed flow leaves lr1 towards pu13's MAC
    detailed = ovn.daemon_trace("net1", VM11_TO_ROUTE, "--detailed")
    assert "ls_in_l2_lkup" in detailed and "lr_in_ip_routing" in detailed
    assert f"eth.dst = {PU13_MAC}" in ovn.daemon_trace("net1", VM11_TO_ROUTE, "--minimal")


@pytest.mark.ovn
def test_daemon_follows_db_changes(ovn):
    _load(ovn)
    ovn.daemon_trace("net1", VM11_TO_VM12, "--minimal")
    first = ovn.pids["trace"]
    ovn.run_nbctl_script([["lsp-add", "net1", "vm14"],
                          ["lsp-set-addresses", "vm14", "fa:16:3e:00:01:14 10.1.0.14"]])
    ovn.sync()
    flow = f'inport == "vm11" && eth.src == {VM11_MAC} && eth.dst == fa:16:3e:00:01:14'
    assert ovn.daemon_trace("net1", flow, "--minimal").splitlines()[1:] == ['output("vm14");']
    assert ovn.pids["trace"] != first and not _alive(first)
    # a read-only command does not restart it; an explicit restart does
    ovn.nbctl("show")
    ovn.daemon_trace("net1", flow)
    second = ovn.pids["trace"]
    assert ovn.restart_trace_daemon() != second and not _alive(second)


@pytest.mark.ovn
def test_a_warm_trace_runs_no_process(ovn, monkeypatch):
    """Once the daemon runs, tracing a microflow (port -> datapath lookup,
    datapath names, the trace) is JSON-RPC only: no ovn-sbctl, no one-shot
    ovn-trace (a process each was what made a trace cost ~50 ms)."""
    from ovnsim.testing import ovntrace

    _load(ovn)
    ovntrace.trace_result(ovn, VM11_PING_VM12)  # starts the daemon, reads the names

    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    result = ovntrace.trace_result(ovn, VM11_PING_VM12)
    assert result.verdict["outputs"][0]["port"] == "vm12"
    assert ovn.port_datapath("vm21") == "net2" and ovn.port_datapath("nosuch") is None


@pytest.mark.ovn
def test_names_follow_db_changes(ovn):
    _load(ovn)
    names = ovn.datapath_names()
    assert sorted(set(names.values())) == sorted(SWITCHES + ROUTERS)
    assert ovn.port_datapath("vm31") is None
    ovn.run_nbctl_script([["ls-add", "net3"], ["lsp-add", "net3", "vm31"]])
    ovn.sync()
    assert ovn.port_datapath("vm31") == "net3"
    assert "net3" in ovn.datapath_names().values()
    # the map is the SB's: every SB Datapath_Binding uuid is in it
    assert {str(r["_uuid"]) for r in ovn.sb_rows("Datapath_Binding", ["_uuid"])} <= set(ovn.datapath_names())


@pytest.mark.ovn
def test_ct_options_run_one_shot(ovn):
    _load(ovn)
    ovn.daemon_trace("net1", VM11_TO_VM12)
    daemon = ovn.pids["trace"]
    out = ovn.daemon_trace("net1", VM11_PING_VM12, "--ct=new", "--minimal")
    assert out == ovn.trace("net1", VM11_PING_VM12, "--ct=new", "--minimal")
    assert ovn.pids["trace"] == daemon  # untouched


@pytest.mark.ovn
def test_trace_crash_is_reported_and_daemon_restarts(ovn):
    _load(ovn)
    with pytest.raises(TraceCrash, match="assertion") as one_shot:
        ovn.trace("net1", UNKNOWN_INPORT)
    ovn.daemon_trace("net1", VM11_TO_VM12)
    crashed = ovn.pids["trace"]
    with pytest.raises(TraceCrash, match="assertion") as daemon:
        ovn.daemon_trace("net1", UNKNOWN_INPORT)
    # the daemon's crash is re-run one-shot: same assertion message
    for err in (one_shot.value, daemon.value):
        assert "execute_check_in_port_sec" in err.message
    assert daemon.value.signal == 6  # SIGABRT
    assert not _alive(crashed)
    assert ovn.daemon_trace("net1", VM11_TO_VM12, "--minimal").endswith('output("vm12");\n')
    assert ovn.pids["trace"] != crashed


@pytest.mark.ovn
def test_trace_input_errors(ovn):
    _load(ovn)
    for trace in (ovn.trace, ovn.daemon_trace):
        with pytest.raises(TraceError, match="unknown datapath"):
            trace("no-such-dp", VM11_TO_VM12)
        with pytest.raises(TraceError, match="error parsing flow"):
            trace("net1", "inport == ")


@pytest.mark.ovn
def test_gateway_router_trace_fix(ovn):
    _load(ovn)
    before = ovn.daemon_trace("public", EXT_TO_GR2_FIP, "--minimal")
    assert "vm21" not in before  # finding 1: the trace stops at ct_snat;
    assert ovn.gateway_router_trace_fix() == ["lrp2-gw", "lrp2-net2", "net2-gr2", "public-gr2"]
    assert ovn.northd_paused
    after = ovn.daemon_trace("public", EXT_TO_GR2_FIP, "--minimal")
    assert after == ovn.trace("public", EXT_TO_GR2_FIP, "--minimal")
    assert "ct_dnat(ip4.dst=10.2.0.21)" in after and 'output("vm21");' in after
    with pytest.raises(Exception, match="paused"):
        ovn.sync()
    ovn.reset()  # resumes northd
    assert not ovn.northd_paused
    assert ovn.appctl("northd", "is-paused").strip() == "false"
    _load(ovn)
    types = {r["logical_port"]: r["type"] for r in ovn.sb_rows("Port_Binding", ["logical_port", "type"])}
    assert types["lrp2-gw"] == "l3gateway"


# --------------------------------------------------------------------------
# reset and stop
# --------------------------------------------------------------------------


@pytest.mark.ovn
def test_reset_empties_both_databases(ovn):
    _load(ovn)
    ovn.sbctl("create", "MAC_Binding", 'logical_port="lrp1-gw"', "ip=172.24.4.1",
              'mac="fa:16:3e:99:00:01"',
              "datapath=" + ovn.sbctl("--bare", "--columns=_uuid", "find", "Datapath_Binding",
                                      "external_ids:name=lr1").strip())
    assert ovn.datapaths()
    ovn.reset()
    assert ovn.datapaths() == []
    assert ovn.nbctl("show") == ""
    assert ovn.lflow_list().strip() == ""
    assert ovn.sb_rows("MAC_Binding") == [] and ovn.sb_rows("Port_Binding") == []
    _load(ovn)  # the same names load again
    assert ovn.datapaths() == sorted(SWITCHES + ROUTERS)


@pytest.mark.ovn
def test_stop_kills_its_processes_and_removes_its_dir():
    ok, reason = RealOVN.available()
    if not ok:
        pytest.skip(reason)
    with RealOVN() as ovn:
        ovn.run_nbctl_script([["ls-add", "s"], ["lsp-add", "s", "p"]])
        ovn.sync()
        ovn.start_trace_daemon()
        pids, workdir = ovn.pids, ovn.dir
        assert set(pids) == {"nb", "sb", "northd", "trace"}
        assert all(_alive(p) for p in pids.values()) and os.path.isdir(workdir)
    assert not any(_alive(p) for p in pids.values())
    assert not os.path.exists(workdir)
    assert not ovn.running and ovn.pids == {}
    ovn.stop()  # idempotent


@pytest.mark.ovn
def test_garbage_collected_instance_cleans_up():
    ok, reason = RealOVN.available()
    if not ok:
        pytest.skip(reason)
    ovn = RealOVN().start()
    pids, workdir = ovn.pids, ovn.dir
    del ovn
    gc.collect()
    assert not any(_alive(p) for p in pids.values())
    assert not os.path.exists(workdir)


# --------------------------------------------------------------------------
# Parsers alone (no OVN needed)
# --------------------------------------------------------------------------

SHOW_TEXT = '''\
switch 11111111-2222-3333-4444-555555555555 (net1) (aka private)
    port vm1 (aka web)
        addresses: ["fa:16:3e:00:00:01 10.0.0.1", "unknown"]
    port net1-r
        type: router
        router-port: lrp-net1
router ls-0 (r)
    port lrp-net1
        mac: "fa:16:3e:00:00:fe"
        networks: ["10.0.0.254/24"]
        gateway chassis: [hv2 hv1]
    nat nat-1
        external ip: "172.24.4.5"
        logical ip: "10.0.0.1"
        type: "dnat_and_snat"
    nat nat-0
        external ip: "172.24.4.2"
        logical ip: "10.0.0.0/24"
        type: "snat"
'''


def test_parse_show_with_deterministic_ids():
    show = parse_nbctl_show(SHOW_TEXT)
    assert show["switches"]["net1"]["aka"] == "private"
    assert show["switches"]["net1"]["ports"]["vm1"]["aka"] == "web"
    assert show["switches"]["net1"]["ports"]["net1-r"]["router-port"] == "lrp-net1"
    assert show["routers"]["r"]["ports"]["lrp-net1"]["gateway chassis"] == ["hv1", "hv2"]
    assert show["routers"]["r"]["nat"] == [
        ("dnat_and_snat", "172.24.4.5", "10.0.0.1", None, None),
        ("snat", "172.24.4.2", "10.0.0.0/24", None, None)]
    assert parse_nbctl_show("") == {"switches": {}, "routers": {}}


@pytest.mark.parametrize("text, problem", [
    ("bridge x (y)\n", "expected 'switch"),
    ("switch u (a)\n  port p\n", "indentation"),
    ("switch u (a)\n    port p\n        colour: red\n", "unknown switch port attribute"),
    ("switch u (a)\nswitch v (a)\n", "duplicate switch"),
    ("    port p\n", "outside"),
    ("router u (r)\n    nat n\n        external ip: \"1.2.3.4\"\n", "without 'logical ip'"),
    ("router u (r)\n    port p\n        mac: fa:16:3e:00:00:01\n", "quoted"),
])
def test_parse_show_rejects_other_formats(text, problem):
    with pytest.raises(NbShowParseError, match=problem):
        parse_nbctl_show(text)


def test_parse_route_list_flags_and_tables():
    text = (
        "IPv4 Routes\n"
        "Route Table <main>:\n"
        "              10.8.0.0/24                 10.1.0.51 dst-ip ecmp\n"
        "              10.5.0.0/24                   discard dst-ip\n"
        "            10.1.0.128/25                172.24.4.1 src-ip\n"
        "\n"
        "Route Table rtb1:\n"
        "              10.7.0.0/24                 10.1.0.53 dst-ip\n"
        "\n"
        "IPv6 Routes\n"
        "Route Table <main>:\n"
        "             fd00:44::/48                 fd00:4::9 dst-ip lrp-c1 ecmp-symmetric-reply bfd\n"
    )
    routes = parse_lr_route_list(text)
    assert [(r["route_table"], r["ip_prefix"], r["nexthop"], r["policy"]) for r in routes] == [
        ("", "10.8.0.0/24", "10.1.0.51", "dst-ip"),
        ("", "10.5.0.0/24", "discard", "dst-ip"),
        ("", "10.1.0.128/25", "172.24.4.1", "src-ip"),
        ("rtb1", "10.7.0.0/24", "10.1.0.53", "dst-ip"),
        ("", "fd00:44::/48", "fd00:4::9", "dst-ip"),
    ]
    assert routes[0]["ecmp"] and not routes[1]["ecmp"]
    assert routes[4]["output_port"] == "lrp-c1"
    assert routes[4]["ecmp_symmetric_reply"] and routes[4]["bfd"]
    with pytest.raises(NbShowParseError):
        parse_lr_route_list("  10.0.0.0/8 10.0.0.1 dst-ip\n")
