"""``ovnsim trace`` as ml2ovn-trace and ovn-trace users expect it.

The microflow builder (``ovnsim.trace_args``: --from/--to/--tcp/--udp/--icmp,
MACs and gateway worked out per L2), names (datapaths by OVN or Neutron name,
one-line errors listing what is valid), ``--expect``, ``--flows`` in every
format, ``--stateful`` and ``--ct``.  The CLI runs in-process (``main``).
"""

from __future__ import annotations

import json

import pytest
import yaml

from ovnsim.cli import main
from ovnsim.errors import MicroflowError
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_document, load_topology
from ovnsim.sim import Simulator
from ovnsim.trace_args import OUTSIDE, FlowSpec, build_microflow

from pipeline_helpers import TOPOLOGIES, UPSTREAM_MAC, lrp_mac

REFERENCE = TOPOLOGIES / "reference.yaml"
PROVIDER = TOPOLOGIES / "provider-ports.yaml"
DGP = TOPOLOGIES / "dgp.yaml"


@pytest.fixture(scope="module")
def reference():
    topo = load_topology(str(REFERENCE))
    return topo, compile_topology(topo)


@pytest.fixture(scope="module")
def provider():
    topo = load_topology(str(PROVIDER))
    return topo, compile_topology(topo)


def flow(topo_logical, source, dest, **kw):
    topo, logical = topo_logical
    return build_microflow(topo, logical, FlowSpec(source, dest, **kw))


def fields(microflow):
    """``{"eth.dst": "...", ...}`` and the bare predicates of a built microflow."""
    out = {}
    for part in microflow.split(" && "):
        name, _, value = part.partition(" == ")
        out[name] = value or True
    return out


def cli(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- the builder ------------------------------------------------------------


def test_same_network_peer_gets_its_own_mac(reference):
    f = fields(flow(reference, "vm1", "vm2", tcp=22))
    assert f['inport'] == '"vm1"'
    assert (f["eth.src"], f["ip4.src"], f["eth.dst"], f["ip4.dst"]) == (
        "fa:16:3e:00:00:11", "10.0.0.11", "fa:16:3e:00:00:12", "10.0.0.12")
    assert (f["ip.ttl"], f["tcp"], f["tcp.src"], f["tcp.dst"]) == ("64", True, "0", "22")


def test_routed_destination_gets_the_router_port_mac(reference):
    sim = Simulator(reference[1])
    f = fields(flow(reference, "vm1", "db1", udp=53, sport=5353))
    assert f["eth.dst"] == lrp_mac(sim, "lrp-router1-web-v4")
    assert (f["ip4.dst"], f["udp.src"], f["udp.dst"]) == ("10.0.1.21", "5353", "53")


def test_outside_and_icmp(reference):
    sim = Simulator(reference[1])
    f = fields(flow(reference, "vm1", "outside", icmp=True))
    assert (f["ip4.dst"], f["eth.dst"]) == (OUTSIDE, lrp_mac(sim, "lrp-router1-web-v4"))
    assert (f["icmp4.type"], f["icmp4.code"]) == ("8", "0")
    assert fields(flow(reference, "vm1", "outside:8.8.8.8"))["ip4.dst"] == "8.8.8.8"


def test_provider_port_uses_the_upstream_gateway_and_same_l2_floating_ip(provider):
    sim = Simulator(provider[1])
    # off its subnet: the upstream router (the subnet's gateway_mac)
    assert fields(flow(provider, "bastion", "outside"))["eth.dst"] == "52:54:00:c0:ff:ee"
    assert fields(flow(provider, "bastion", "app1"))["eth.dst"] == "52:54:00:c0:ff:ee"
    # a floating IP on its own L2: the router's gateway MAC (what ARP answers)
    f = fields(flow(provider, "bastion", "172.24.4.151", tcp=22))
    assert f["eth.dst"] == lrp_mac(sim, "lrp-router1-gw")
    # a tenant VM to it: via its router
    assert fields(flow(provider, "app2", "bastion"))["eth.dst"] == lrp_mac(sim, "lrp-router1-app-v4")
    # a router by name: its address on the source's L2
    assert fields(flow(provider, "bastion", "router1"))["ip4.dst"] == "172.24.4.50"


def test_distributed_floating_ip_on_the_same_l2_uses_its_external_mac():
    topo = load_topology(str(DGP))
    logical = compile_topology(topo)
    external_mac = next(n.external_mac for lr in logical.routers for n in lr.nat if n.external_mac)
    # dgp.yaml has no port on public: put one there, as provider-ports.yaml does
    doc = yaml.safe_load(DGP.read_text())
    doc["projects"]["demo"]["ports"]["edge"] = {"network": "public", "fixed_ips": ["172.24.4.30"]}
    topo = load_document(doc, str(DGP))
    logical = compile_topology(topo)
    assert fields(build_microflow(topo, logical, FlowSpec("edge", "172.24.4.151")))["eth.dst"] == external_mac
    assert fields(build_microflow(topo, logical, FlowSpec("edge", "172.24.4.150")))["eth.dst"] == \
        lrp_mac(Simulator(logical), "lrp-router1-gw")


def test_upstream_without_a_known_mac_is_a_clear_error(provider):
    topo, logical = provider
    import dataclasses

    net = topo.networks["public"]
    sub = dataclasses.replace(net.subnets[0], gateway_mac=None)
    topo2 = dataclasses.replace(topo, networks={**topo.networks, "public": dataclasses.replace(net, subnets=(sub,))})
    with pytest.raises(MicroflowError, match=r"the MAC of the gateway 172\.24\.4\.1 of subnet 'public-v4' "
                                             r"\(the upstream router\) is not in the topology"):
        build_microflow(topo2, logical, FlowSpec("bastion", "outside"))
    # --eth-dst (ml2ovn-trace's --via) is the way round it
    assert fields(build_microflow(topo2, logical, FlowSpec("bastion", "outside", eth_dst=UPSTREAM_MAC)))[
        "eth.dst"] == UPSTREAM_MAC


@pytest.mark.parametrize("source,dest,message", [
    ("nope", "vm2", "unknown --from port (a VM port) 'nope'"),
    ("provnet-public", "vm2", "unknown --from port (a VM port) 'provnet-public'"),
    ("lrp-router1-web-v4", "vm2", "is a router port: ovnsim injects frames only on logical switch ports"),
    ("vm1", "vm9", "--to: unknown port, router or address 'vm9'; did you mean"),
    ("vm1", "outside:1.2.3", "'1.2.3' is not an IPv4 address"),
    ("vm1", "10.0.0.99", "nothing holds 10.0.0.99 on vm1's network; give the MAC with --eth-dst"),
])
def test_builder_errors(reference, source, dest, message):
    with pytest.raises(MicroflowError) as info:
        flow(reference, source, dest)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# -- the command --------------------------------------------------------------


def test_from_to_traces_the_built_microflow(capsys):
    status, out, err = cli(capsys, "trace", REFERENCE, "--from", "vm1", "--to", "db1", "--tcp", "22")
    assert (status, err) == (0, "")
    assert out.splitlines()[-1] == 'output("db1");' and "ip.ttl = 63;" in out


def test_detailed_prints_the_microflow_and_friendly_datapath(capsys):
    status, out, _ = cli(capsys, "trace", REFERENCE, "--from", "vm1", "--to", "vm2", "--icmp",
                         "--format", "detailed")
    lines = out.splitlines()
    assert status == 0
    assert lines[0].startswith('# microflow: inport == "vm1" && eth.src == fa:16:3e:00:00:11')
    assert lines[1] == "# datapath: neutron-web (web)"


def test_json_carries_the_microflow(capsys):
    status, out, _ = cli(capsys, "trace", REFERENCE, "--from", "vm1", "--to", "vm2", "--format", "json")
    verdict = json.loads(out)
    assert status == 0 and verdict["microflow"].startswith('inport == "vm1"')
    assert [o["port"] for o in verdict["outputs"]] == ["vm2"]


@pytest.mark.parametrize("expect,status", [("db1", 0), ("vm2", 1), ("drop", 1)])
def test_expect_exit_status(capsys, expect, status):
    got, out, err = cli(capsys, "trace", REFERENCE, "--from", "vm1", "--to", "db1", "--tcp", "22",
                        "--expect", expect)
    assert got == status
    assert 'output("db1");' in out
    assert (err == "") == (status == 0)
    if status:
        assert err == f"ovnsim: expected {expect}, got output to db1 (packet)\n"


def test_expect_drop_on_a_dropped_packet(capsys):
    spoofed = ('inport == "vm1" && eth.src == fa:16:3e:00:00:11 && eth.dst == fa:16:3e:00:00:12 && '
               "ip4.src == 10.9.9.9 && ip4.dst == 10.0.0.12 && ip.ttl == 64")
    assert cli(capsys, "trace", REFERENCE, spoofed, "--expect", "drop")[0] == 0
    status, _, err = cli(capsys, "trace", REFERENCE, spoofed, "--expect", "vm2")
    assert status == 1 and "got drop (port-security at neutron-web ls_in_" in err


def test_expect_unknown_port_is_bad_input(capsys):
    status, _, err = cli(capsys, "trace", REFERENCE, "--from", "vm1", "--to", "vm2", "--expect", "vm7")
    assert status == 2 and err.startswith("ovnsim: error: unknown --expect port 'vm7'")


@pytest.mark.parametrize("datapath", ["neutron-web", "web"])
def test_datapath_by_ovn_or_network_name(capsys, datapath):
    status, out, _ = cli(capsys, "trace", REFERENCE, datapath, "--from", "vm1", "--to", "vm2")
    assert (status, out) == (0, 'output("vm2");\n')


def test_wrong_datapath_says_where_the_port_is(capsys):
    status, _, err = cli(capsys, "trace", REFERENCE, "db", "--from", "vm1", "--to", "vm2")
    assert status == 2
    assert err == "ovnsim: error: inport 'vm1' is not a port of datapath neutron-db (db); it is on neutron-web (web)\n"


def test_unknown_datapath_lists_the_valid_ones(capsys):
    status, _, err = cli(capsys, "trace", REFERENCE, "webb", "--from", "vm1", "--to", "vm2")
    assert status == 2 and len(err.splitlines()) == 1
    assert "unknown datapath 'webb'; did you mean 'web" in err
    assert "neutron-web (web)" in err and "neutron-router1 (router1)" in err


def test_unknown_inport_lists_the_valid_ports(capsys):
    status, _, err = cli(capsys, "trace", REFERENCE, 'inport == "vm3" && eth.src == fa:16:3e:00:00:11')
    assert status == 2 and len(err.splitlines()) == 1
    assert "unknown inport 'vm3'" in err and "vm1, vm2" in err


def test_router_port_inport_is_explained(capsys):
    status, _, err = cli(capsys, "trace", REFERENCE, 'inport == "lrp-router1-web-v4" && eth.src == fa:16:3e:00:00:11')
    assert status == 2 and "is a router port" in err and "'router1-web-v4'" in err


def test_ct_is_refused_until_acl_stages_exist(capsys):
    status, _, err = cli(capsys, "trace", REFERENCE, "--from", "vm1", "--to", "vm2", "--ct", "new")
    assert status == 2 and "no stateful ACL stages in this topology" in err


@pytest.mark.parametrize("args,message", [
    (["--from", "vm1"], "--from and --to go together"),
    (["--tcp", "22", 'inport == "vm1"'], "need --from and --to"),
    (["--stateful", 'inport == "vm1"'], "--stateful needs --flows"),
    (["--from", "vm1", "--to", "vm2", "--tcp", "70000"], "--tcp port 70000 is not a port number"),
])
def test_option_mistakes(capsys, args, message):
    status, _, err = cli(capsys, "trace", REFERENCE, *args)
    assert status == 2 and message in err


# -- --flows: formats, line numbers, state ------------------------------------------


def _flows_file(tmp_path, lines):
    path = tmp_path / "flows.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_flows_honour_format(capsys, tmp_path):
    ok = ('inport == "vm1" && eth.src == fa:16:3e:00:00:11 && eth.dst == fa:16:3e:00:00:12 && '
          "ip4.src == 10.0.0.11 && ip4.dst == 10.0.0.12 && ip.ttl == 64")
    path = _flows_file(tmp_path, ["# two flows", ok, "not a flow"])
    status, out, err = cli(capsys, "trace", REFERENCE, "--flows", path, "--format", "minimal")
    assert status == 2 and err.startswith("ovnsim: error: ") and "1 line could not be traced" in err
    assert out.split("\n\n")[0] == f'# line 2: {ok}\noutput("vm2");'
    assert out.split("\n\n")[1].startswith("# line 3: not a flow\nerror: ")
    status, out, _ = cli(capsys, "trace", REFERENCE, "--flows", path, "--format", "detailed")
    assert "ls_in_l2_lkup" in out and out.startswith(f"# line 2: {ok}\n")
    status, out, _ = cli(capsys, "trace", REFERENCE, "--flows", path)  # JSON lines by default
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["line"], r["microflow"]) for r in records] == [(2, ok), (3, "not a flow")]


def test_stateful_flows_carry_conntrack(capsys, tmp_path, reference):
    """A SYN out through SNAT, then the server's SYN-ACK to the SNAT address: un-SNATed only with --stateful."""
    sim = Simulator(reference[1])
    web = lrp_mac(sim, "lrp-router1-web-v4")
    gw = lrp_mac(sim, "lrp-router1-gw")
    syn = (f'inport == "vm1" && eth.src == fa:16:3e:00:00:11 && eth.dst == {web} && ip4.src == 10.0.0.11 && '
           "ip4.dst == 198.51.100.7 && ip.ttl == 64 && tcp && tcp.src == 40000 && tcp.dst == 443 && tcp.flags == 2")
    synack = (f'inport == "provnet-public" && eth.src == {UPSTREAM_MAC} && eth.dst == {gw} && '
              "ip4.src == 198.51.100.7 && ip4.dst == 172.24.4.10 && ip.ttl == 60 && tcp && tcp.src == 443 && "
              "tcp.dst == 40000 && tcp.flags == 18")
    path = _flows_file(tmp_path, [syn, synack])
    _, out, _ = cli(capsys, "trace", REFERENCE, "--flows", path, "--stateful")
    first, second = [json.loads(line) for line in out.splitlines()]
    assert [o["port"] for o in first["outputs"]] == ["provnet-public"]
    assert [(o["port"], o["ip4.dst"], o["tcp.dst"]) for o in second["outputs"]] == [("vm1", "10.0.0.11", 40000)]
    _, out, _ = cli(capsys, "trace", REFERENCE, "--flows", path)
    second = [json.loads(line) for line in out.splitlines()][1]
    assert not any(o["port"] == "vm1" for o in second["outputs"])  # a fresh network knows no connection


def test_flows_with_expect_is_refused(capsys, tmp_path):
    path = _flows_file(tmp_path, ['inport == "vm1"'])
    status, _, err = cli(capsys, "trace", REFERENCE, "--flows", path, "--expect", "vm2")
    assert status == 2 and "--expect checks one trace" in err


# -- --flows: a bad line is that line's error (issue 11 items 4 and 5) -----------------


OK_FLOW = ('inport == "vm1" && eth.src == fa:16:3e:00:00:11 && eth.dst == fa:16:3e:00:00:12 && '
           "ip4.src == 10.0.0.11 && ip4.dst == 10.0.0.12 && ip.ttl == 64")


@pytest.mark.parametrize("bad", [
    "(" * 500 + 'inport == "vm1"' + ")" * 500,
    OK_FLOW + " && tcp.dst == " + "9" * 5000,
    "(" * 5000,
])
def test_flows_a_pathological_line_is_its_own_error(capsys, tmp_path, bad):
    path = _flows_file(tmp_path, [OK_FLOW, bad, OK_FLOW])
    status, out, err = cli(capsys, "trace", REFERENCE, "--flows", path)
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3]
    assert [o["port"] for o in records[0]["outputs"]] == ["vm2"] == [o["port"] for o in records[2]["outputs"]]
    assert records[1]["error"].startswith("microflow: ") and "Traceback" not in out + err
    assert status == 2 and len(err.splitlines()) == 1


def test_flows_a_line_that_is_not_utf8_is_its_own_error(capsys, tmp_path):
    path = tmp_path / "flows.txt"
    path.write_bytes(OK_FLOW.encode() + b"\n" + b'inport == "vm\xff\xfe1"\n' + OK_FLOW.encode() + b"\n")
    status, out, err = cli(capsys, "trace", REFERENCE, "--flows", path, "--format", "minimal")
    blocks = out.split("\n\n")
    assert blocks[0] == f'# line 1: {OK_FLOW}\noutput("vm2");'
    assert blocks[1].startswith('# line 2: inport == "vm\\xff\\xfe1"\nerror: ')
    assert f"{path}: line 2: not UTF-8 text (invalid start byte at byte 13)" in blocks[1]
    assert blocks[2] == f'# line 3: {OK_FLOW}\noutput("vm2");'
    assert status == 2 and "1 line could not be traced" in err
