"""The conntrack table limit (issue 11): a new connection beyond it is a ``conntrack-full`` drop.

OVS drops a packet whose ``ct(commit)`` would exceed its zone's limit
(``dpctl/ct-set-limits``); ovnsim has one table for every zone and one limit
for it.  Connections already in the table keep working.

The limit counts entries, one per zone a connection is committed in, as OVS's
table does: a gateway router commits every new connection in its DNAT zone on
the way out (lr_out_post_undnat: ``ct.new`` => ``ct_commit``, no NAT), then
SNATs it in its SNAT zone, so a tenant's connection to the internet through
reference.yaml's gr-router1 takes two entries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovnsim.cli import main
from ovnsim.neutron.loader import load_topology
from ovnsim.northd.stages import Drop
from ovnsim.sim import Simulator

from pipeline_helpers import UPSTREAM_MAC, assert_dropped, lrp_mac, only_output, tcp_frame

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "topologies" / "reference.yaml"
DGP = ROOT / "topologies" / "dgp.yaml"
INTERNET = "8.8.8.8"
VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"  # reference.yaml
REF_GW_IP, REF_FIP = "172.24.4.10", "172.24.4.100"
WEB2_MAC, WEB2_IP = "fa:16:3e:01:00:12", "10.1.0.12"  # dgp.yaml


@pytest.fixture(scope="module")
def reference_topology():
    return load_topology(str(REFERENCE))


def _out(sim: Simulator, sport: int):
    return tcp_frame(VM1_MAC, lrp_mac(sim, "lrp-router1-web-v4"), VM1_IP, INTERNET, sport=sport, dport=443)


def test_a_new_connection_beyond_the_limit_is_dropped(reference_topology):
    # Two connections out through the gateway router, two entries each, fill a limit of 4:
    # the third is refused at its first commit, the DNAT zone's in lr_out_post_undnat.
    sim = Simulator(reference_topology, ct_limit=4)
    assert sim.engine.ct_limit == 4
    only_output(sim.inject("vm1", _out(sim, 40000)))
    assert len(sim.conntrack) == 2
    only_output(sim.inject("vm1", _out(sim, 40001)))
    drop = assert_dropped(sim.inject("vm1", _out(sim, 40002), trace=True), Drop.CONNTRACK_FULL,
                          "lr_out_post_undnat", "gr-router1")
    assert drop.detail == "the conntrack table holds its limit of 4 connections"
    assert len(sim.conntrack) == 4
    # The tracked connections go on: another packet, and the reply un-SNATed.
    only_output(sim.inject("vm1", _out(sim, 40000)))
    gw_mac = lrp_mac(sim, "lrp-router1-gw")
    reply = only_output(sim.inject("provnet-public", tcp_frame(UPSTREAM_MAC, gw_mac, INTERNET, REF_GW_IP,
                                                               sport=443, dport=40001)))
    assert (reply.port, reply.packet.fields()["ip4.dst"]) == ("vm1", VM1_IP)
    sim.reset()
    only_output(sim.inject("vm1", _out(sim, 40002)))


def test_a_new_connection_with_room_for_one_entry_is_dropped_at_snat(reference_topology):
    # A limit of 3 leaves room for the second connection's DNAT zone commit, not for its SNAT:
    # refused in lr_out_snat, the plain commit before it stays (as in OVS, where each zone's
    # ct(commit) is its own action).
    sim = Simulator(reference_topology, ct_limit=3)
    only_output(sim.inject("vm1", _out(sim, 40000)))
    drop = assert_dropped(sim.inject("vm1", _out(sim, 40001), trace=True), Drop.CONNTRACK_FULL, "lr_out_snat",
                          "gr-router1")
    assert drop.detail == "the conntrack table holds its limit of 3 connections"
    assert len(sim.conntrack) == 3


def test_a_new_inbound_connection_to_a_floating_ip_is_dropped_at_dnat(reference_topology):
    sim = Simulator(reference_topology, ct_limit=2)
    only_output(sim.inject("vm1", _out(sim, 40000)))   # two entries: DNAT zone (plain) and SNAT zone
    gw_mac = lrp_mac(sim, "lrp-router1-gw")
    result = sim.inject("provnet-public", tcp_frame(UPSTREAM_MAC, gw_mac, INTERNET, REF_FIP, sport=50000, dport=22),
                        trace=True)
    assert_dropped(result, Drop.CONNTRACK_FULL, "lr_in_dnat", "gr-router1")
    assert any("the conntrack table is full" in e.action for e in result.trace)


def test_the_distributed_gateway_port_model_is_limited_too():
    sim = Simulator.from_file(str(DGP), ct_limit=1)
    web_mac = lrp_mac(sim, "lrp-router1-web-v4")
    only_output(sim.inject("web2", tcp_frame(WEB2_MAC, web_mac, WEB2_IP, INTERNET, sport=40000)))
    assert_dropped(sim.inject("web2", tcp_frame(WEB2_MAC, web_mac, WEB2_IP, INTERNET, sport=40001)),
                   Drop.CONNTRACK_FULL, "lr_out_snat")


def test_no_limit_by_default(reference_topology):
    sim = Simulator(reference_topology)
    assert sim.engine.ct_limit is None
    for sport in range(40000, 40100):
        only_output(sim.inject("vm1", _out(sim, sport)))
    assert len(sim.conntrack) == 200    # each in gr-router1's DNAT zone (not NATed) and SNAT zone


@pytest.mark.parametrize("bad", [0, -1, True, "3", 2.5])
def test_a_bad_limit_is_refused(reference_topology, bad):
    with pytest.raises(ValueError, match="ct_limit must be a positive integer"):
        Simulator(reference_topology, ct_limit=bad)


def test_replay_ct_limit_counts_conntrack_full_drops(tmp_path, capsys):
    capture = ROOT / "pcaps" / "reference-mixed.pcap"
    assert main(["replay", str(REFERENCE), str(capture), "--out-dir", str(tmp_path / "free"), "--auto",
                 "--json"]) == 0
    free = json.loads(capsys.readouterr().out)
    assert main(["replay", str(REFERENCE), str(capture), "--out-dir", str(tmp_path / "one"), "--auto",
                 "--ct-limit", "1", "--json"]) == 0
    limited = json.loads(capsys.readouterr().out)
    assert "conntrack-full" not in free["drops"]
    full = limited["drops"]["conntrack-full"]
    assert full["frames"] > 0 and set(full["stages"]) <= {"lr_in_dnat", "lr_out_post_undnat", "lr_out_snat"}
    assert limited["frames_in"] == limited["delivered"] + limited["exited"] + limited["dropped"]
    # (a reply to a refused connection finds no entry to un-NAT it: dropped further on)
    assert limited["dropped"] >= free["dropped"] + full["frames"]


def test_replay_ct_limit_zero_is_a_one_line_error(tmp_path, capsys):
    capture = ROOT / "pcaps" / "reference-mixed.pcap"
    assert main(["replay", str(REFERENCE), str(capture), "--out-dir", str(tmp_path / "o"), "--auto",
                 "--ct-limit", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "ovnsim: error: --ct-limit 0: must be at least 1\n"
