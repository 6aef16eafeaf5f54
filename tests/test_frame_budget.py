"""Bounded work per input frame (issue 11, item 1).

Several gateway routers share one external network.  An ARP request from
the upstream gateway's MAC with a multicast ``arp.sha`` makes each router
learn a multicast MAC for the gateway: OVN 23.03's flows learn it too
(``lr_in_admission`` drops only a multicast ``eth.src``;
``lr_in_lookup_neighbor``/``lr_in_learn_neighbor`` put ``arp.sha`` as it
is).  The next routed frame to the outside is then flooded to every router
on the external switch, each routes its copy back out, and the copies
multiply at every hop.  OVS abandons such a translation after a fixed
number of resubmits; ovnsim stops the frame after a fixed budget of
datapath visits with one ``loop-limit`` drop of what is left.
"""

from __future__ import annotations

from collections import Counter

import pytest
from scapy.layers.l2 import Ether

from ovnsim.northd.stages import Drop
from ovnsim.sim import Simulator

from pipeline_helpers import arp_request, lrp_mac, udp_frame

UPSTREAM_MAC = "52:54:00:c0:ff:ee"
MCAST_SHA = "01:00:00:00:00:01"
N_ROUTERS = 4
#: The engine's budget of datapath visits per input frame (_fastpath.pyx MAX_VISITS).
MAX_VISITS = 4096


def _topology(n: int) -> str:
    networks = "".join(f"      n{i}: {{subnets: {{n{i}-v4: {{cidr: 10.1.{i}.0/24, gateway_ip: 10.1.{i}.1}}}}}}\n"
                       for i in range(1, n + 1))
    routers = "".join(f"      r{i}: {{gateway_model: gateway-router, interfaces: [n{i}-v4], "
                      f"external_gateway: {{network: public, ip_address: 172.24.4.{10 + i}}}}}\n"
                      for i in range(1, n + 1))
    return f"""name: gateways
description: {n} gateway routers on one external network
external_networks:
  public:
    provider: {{physical_network: physnet1, network_type: flat}}
    subnets:
      public-v4: {{cidr: 172.24.4.0/24, gateway_ip: 172.24.4.1, gateway_mac: "{UPSTREAM_MAC}"}}
projects:
  p1:
    networks:
{networks}    ports:
      vm1: {{network: n1, fixed_ips: [10.1.1.10]}}
    routers:
{routers}"""


@pytest.fixture
def sim(tmp_path):
    path = tmp_path / "gateways.yaml"
    path.write_text(_topology(N_ROUTERS), encoding="utf-8")
    return Simulator.from_file(str(path))


def budget_rule(drop) -> str:
    """The catalogue rule of a budget drop at the drop's stage."""
    return {"ls_in_check_port_sec": "LS_IN_FRAME_BUDGET", "ls_out_check_port_sec": "LS_OUT_FRAME_BUDGET",
            "lr_in_admission": "LR_IN_FRAME_BUDGET"}[drop.stage]


def _vm1_mac(sim: Simulator) -> str:
    port = next(p for ls in sim.logical.switches for p in ls.ports if p.name == "vm1")
    return port.addresses[0].split()[0]


def _poison(sim: Simulator) -> None:
    # One ARP request per router's gateway address: each router learns the multicast MAC.
    for i in range(1, N_ROUTERS + 1):
        sim.inject("provnet-public", arp_request(MCAST_SHA, "172.24.4.1", f"172.24.4.{10 + i}", eth_src=UPSTREAM_MAC))


def _to_outside(sim: Simulator):
    return udp_frame(_vm1_mac(sim), lrp_mac(sim, "lrp-r1-n1-v4"), "10.1.1.10", "8.8.8.8")


def test_a_routed_frame_leaves_once_before_the_poisoning(sim):
    result = sim.inject("vm1", _to_outside(sim))
    assert [(o.port, Ether(o.frame).dst) for o in result.outputs] == [("provnet-public", UPSTREAM_MAC)]
    assert not result.drops


@pytest.mark.parametrize("trace", [False, True])
def test_the_multiplying_loop_stops_at_the_frame_budget(sim, trace):
    _poison(sim)
    result = sim.inject("vm1", _to_outside(sim), trace=trace)
    # The multicast sha was learned, as OVN's flows learn it: the frame goes out to it.
    assert any(Ether(o.frame).dst == MCAST_SHA for o in result.outputs)
    budget = [d for d in result.drops if "budget" in d.detail]
    assert len(budget) == 1, Counter((d.stage, d.reason, d.detail) for d in result.drops)
    assert budget[0].reason is Drop.LOOP_LIMIT
    assert f"budget of {MAX_VISITS} datapath visits is spent" in budget[0].detail
    # Every output and every drop is a visit's work: bounded by the budget.
    assert len(result.outputs) + len(result.drops) <= 2 * MAX_VISITS
    if trace:
        assert [e.rule for e in result.trace].count(budget_rule(budget[0])) == 1


def test_the_engine_keeps_working_after_a_spent_budget(sim):
    _poison(sim)
    sim.inject("vm1", _to_outside(sim))
    sim.reset()
    result = sim.inject("vm1", _to_outside(sim))
    assert [(o.port, Ether(o.frame).dst) for o in result.outputs] == [("provnet-public", UPSTREAM_MAC)]
