"""A router learns a multicast ``arp.sha`` (issue 11): real OVN's data path and ovnsim agree.

OVN 23.03's logical flows put ``arp.sha`` as it is (``lr_in_admission``
drops only a multicast ``eth.src``), and ovn-controller's pinctrl does not
refuse it either: ``pinctrl_handle_put_mac_binding`` (controller/pinctrl.c,
v23.03.1) looks at ``eth.dst`` only to decide whether to delay the binding,
never at the MAC it binds.  On the real data path the SB ``MAC_Binding`` row
holds the multicast MAC and the next routed frame leaves with it as
``eth.dst`` (no ARP, no drop).  A multicast ``eth.src`` is the one thing
dropped: nothing is learned and the router ARPs for the address.

Each case runs on a :class:`~ovnsim.testing.realdp.RealDatapath` and on
:class:`~ovnsim.sim.Simulator`: what real OVN did is asserted, and ovnsim's
outputs must be byte-identical to it.
"""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology
from ovnsim.sim import Simulator
from ovnsim.testing.realdp import RealDatapath

pytestmark = [pytest.mark.ovn, pytest.mark.conformance]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GW_LRP = "lrp-router1-gw"  #: reference.yaml's gateway router port on the public network
GW_IP = "172.24.4.10"
NEIGHBOUR = "172.24.4.50"  #: an outside host with no static binding
ETH_SRC = "52:54:00:00:00:50"


@pytest.fixture(scope="module")
def sides():
    RealDatapath.skip_unless_available()
    logical = compile_topology(load_topology(os.path.join(ROOT, "topologies", "reference.yaml")))
    with RealDatapath() as dp:
        dp.load(logical)
        yield dp, Simulator(logical)


def _lrp_mac(dp, lrp: str) -> str:
    return dp.nbctl("--bare", "--columns=mac", "list", "Logical_Router_Port", lrp).strip()


def _arp(op: int, eth_src: str, sha: str, gw_mac: str) -> bytes:
    if op == 1:  # who has the router's gateway address? (broadcast)
        return bytes(Ether(src=eth_src, dst="ff:ff:ff:ff:ff:ff")
                     / ARP(op=1, hwsrc=sha, psrc=NEIGHBOUR, hwdst="00:00:00:00:00:00", pdst=GW_IP))
    return bytes(Ether(src=eth_src, dst=gw_mac) / ARP(op=2, hwsrc=sha, psrc=NEIGHBOUR, hwdst=gw_mac, pdst=GW_IP))


def _outputs(result) -> dict:
    outs: dict = {}
    for o in result.outputs:
        outs.setdefault(o.port, []).append(bytes(o.frame))
    return outs


def _both(dp, sim, port: str, frame: bytes):
    real = dp.inject(port, frame)
    assert _outputs(sim.inject(port, frame)) == real.outputs
    return real


def _bindings(dp) -> list:
    rows = dp.sbctl("--bare", "--columns=logical_port,mac", "find", "MAC_Binding", f'ip="{NEIGHBOUR}"')
    return rows.split()


def _learned(dp) -> list:
    """The SB binding of NEIGHBOUR once pinctrl has written it, with the flows updated.

    The harness does not always see that an ARP reached ovn-controller (a
    datapath flow's first packet is not counted), and then does not wait for
    the binding: wait here, a bounded number of main-loop round trips.
    """
    for _ in range(20):
        dp.nbctl("--wait=hv", "sync")
        rows = _bindings(dp)
        if rows:
            dp.nbctl("--wait=hv", "sync")
            dp.appctl("revalidator/purge")
            return rows
    return []


@pytest.mark.parametrize("op,sha", [(1, "01:00:5e:00:00:01"), (2, "33:33:00:00:00:01"),
                                    (1, "33:33:00:00:00:01"), (2, "01:00:5e:00:00:01"),
                                    (1, "01:00:00:00:00:01")],  # the frame
                         ids=["request-01005e", "reply-3333", "request-3333", "reply-01005e", "request-010000"])
def test_a_multicast_sender_mac_is_learned_and_used_as_eth_dst(sides, op, sha):
    dp, sim = sides
    dp.reset()
    sim.reset()
    gw_mac = _lrp_mac(dp, GW_LRP)
    got = _both(dp, sim, "provnet-public", _arp(op, ETH_SRC, sha, gw_mac))
    if op == 1:
        # answered to the unicast eth.src, arp.tha = the multicast sha
        (answer,) = [Ether(f) for f in got.outputs["provnet-public"]]
        assert answer.dst == ETH_SRC and answer[ARP].op == 2 and answer[ARP].hwdst == sha
    else:
        assert got.outputs == {}
    # pinctrl (put_arp) wrote the multicast MAC to the SB
    assert _learned(dp) == [GW_LRP, sha]
    frame = bytes(Ether(src="fa:16:3e:00:00:11", dst=_lrp_mac(dp, "lrp-router1-web-v4"))
                  / IP(src="10.0.0.11", dst=NEIGHBOUR, ttl=64) / UDP(sport=40000, dport=53))
    got = _both(dp, sim, "vm1", frame)
    # routed (SNATed) straight to the learned multicast MAC: no ARP, no drop
    assert not got.controller
    (out,) = [Ether(f) for f in got.outputs["provnet-public"]]
    assert out.dst == sha and out[IP].src == GW_IP and out[IP].dst == NEIGHBOUR


def test_a_multicast_eth_src_is_dropped_and_not_learned(sides):
    dp, sim = sides
    dp.reset()
    sim.reset()
    got = _both(dp, sim, "provnet-public", _arp(1, "01:00:5e:00:00:01", "01:00:5e:00:00:01", _lrp_mac(dp, GW_LRP)))
    assert got.outputs == {} and not got.controller
    dp.nbctl("--wait=hv", "sync")
    assert _bindings(dp) == []
    frame = bytes(Ether(src="fa:16:3e:00:00:11", dst=_lrp_mac(dp, "lrp-router1-web-v4"))
                  / IP(src="10.0.0.11", dst=NEIGHBOUR, ttl=64) / UDP(sport=40000, dport=53))
    got = _both(dp, sim, "vm1", frame)
    # nothing learned: the router ARPs for the neighbour
    (ask,) = [Ether(f) for f in got.outputs["provnet-public"]]
    assert ask[ARP].op == 1 and ask[ARP].pdst == NEIGHBOUR
