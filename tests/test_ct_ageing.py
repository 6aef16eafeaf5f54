"""Conntrack ageing (issue 11): connections expire by the frames' times, as in OVS's userspace conntrack.

The timeouts are OVS's defaults (``lib/conntrack-tp.c``), chosen by each
connection's state as ``lib/conntrack-tcp.c``, ``conntrack-other.c`` and
``conntrack-icmp.c`` choose them.  What an expiry looks like from outside:
a reply that arrives after its connection expired is not a reply any more
(its SNAT is not undone), and a new packet of the same tuple starts a new
connection.

The counts are of conntrack entries, one per zone, as OVS's table (and
``dpctl/dump-conntrack``) has them: vm1's flow to the internet through
reference.yaml's gateway router gr-router1 is committed twice, in its DNAT zone
(lr_out_post_undnat, no NAT) and in its SNAT zone, and both entries age alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from ovnsim.neutron.loader import load_topology
from ovnsim.northd.stages import Drop
from ovnsim.sim import Simulator

from pipeline_helpers import (UPSTREAM_MAC, assert_dropped, lrp_mac, only_output, ping_frame,
                              udp_frame)

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "topologies" / "reference.yaml"
INTERNET = "8.8.8.8"
VM1_MAC, VM1_IP = "fa:16:3e:00:00:11", "10.0.0.11"  # reference.yaml
SNAT_IP = "172.24.4.10"  # router1's gateway address, vm1's SNAT address
T0 = 1_700_000_000.0  # a capture's epoch: any will do


@pytest.fixture(scope="module")
def reference_topology():
    return load_topology(str(REFERENCE))


@pytest.fixture
def sim(reference_topology):
    return Simulator(reference_topology)


class Flow:
    """vm1 <-> 8.8.8.8 through router1's SNAT: frames out, replies in."""

    def __init__(self, sim: Simulator, proto: str = "udp", sport: int = 40000, dport: int = 53):
        self.sim, self.proto, self.sport, self.dport = sim, proto, sport, dport
        self.vm_side = lrp_mac(sim, "lrp-router1-web-v4")
        self.gw = lrp_mac(sim, "lrp-router1-gw")

    def _tcp(self, src_mac, dst_mac, src, dst, sport, dport, flags):
        return Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=64) / TCP(sport=sport, dport=dport,
                                                                                     flags=flags)

    def out(self, t: float, flags: str = "A"):
        if self.proto == "udp":
            frame = udp_frame(VM1_MAC, self.vm_side, VM1_IP, INTERNET, sport=self.sport, dport=self.dport)
        elif self.proto == "icmp":
            frame = ping_frame(VM1_MAC, self.vm_side, VM1_IP, INTERNET, ident=self.sport)
        else:
            frame = self._tcp(VM1_MAC, self.vm_side, VM1_IP, INTERNET, self.sport, self.dport, flags)
        return self.sim.inject("vm1", frame, time=T0 + t)

    def reply(self, t: float, flags: str = "A"):
        if self.proto == "udp":
            frame = udp_frame(UPSTREAM_MAC, self.gw, INTERNET, SNAT_IP, sport=self.dport, dport=self.sport)
        elif self.proto == "icmp":
            frame = ping_frame(UPSTREAM_MAC, self.gw, INTERNET, SNAT_IP, ident=self.sport)
            frame[1].type = 0  # echo reply
        else:
            frame = self._tcp(UPSTREAM_MAC, self.gw, INTERNET, SNAT_IP, self.dport, self.sport, flags)
        return self.sim.inject("provnet-public", frame, time=T0 + t)

    def replied(self, t: float, flags: str = "A") -> bool:
        """Whether the reply at ``t`` is un-SNATed to vm1 (its connection is still tracked)."""
        result = self.reply(t, flags)
        return any(o.port == "vm1" and o.fields()["ip4.dst"] == VM1_IP for o in result.outputs)


def test_the_default_timeouts_are_ovs_userspace_ones(sim):
    assert sim.engine.ct_timeouts == {
        "tcp_syn_sent": 30, "tcp_syn_recv": 30, "tcp_established": 86400, "tcp_fin_wait": 900,
        "tcp_time_wait": 45, "tcp_close": 30, "udp_first": 60, "udp_single": 60, "udp_multiple": 30,
        "icmp_first": 60, "icmp_reply": 30}


def test_without_times_nothing_expires(sim):
    flow = Flow(sim)
    only_output(flow.out(0))
    vm_side = flow.vm_side
    # frames without a time leave the clock where it is
    only_output(sim.inject("vm1", udp_frame(VM1_MAC, vm_side, VM1_IP, INTERNET, sport=40001)))
    assert sim.engine.conntrack_stats["now_ns"] == int(T0 * 1e9)
    assert flow.replied(0)


@pytest.mark.parametrize("proto, first", [("udp", 60), ("icmp", 60)])
def test_a_reply_after_the_first_timeout_is_not_a_reply(sim, proto, first):
    early, late = Flow(sim, proto, sport=40000), Flow(sim, proto, sport=40001)
    only_output(early.out(0))
    only_output(late.out(0))
    assert early.replied(first - 0.5)
    result = late.reply(first)  # expired the moment its timeout is reached (OVS: now >= expiration)
    assert not any(o.port == "vm1" for o in result.outputs)
    assert_dropped(result, Drop.ROUTER_ADDRESS, "lr_in_arp_resolve", "gr-router1")


@pytest.mark.parametrize("proto, after_reply", [("udp", 30), ("icmp", 30)])
def test_after_a_reply_the_shorter_timeout_applies(sim, proto, after_reply):
    flow = Flow(sim, proto)
    only_output(flow.out(0))
    assert flow.replied(10)
    assert flow.replied(10 + after_reply - 1)  # each packet refreshes it
    assert not flow.replied(10 + 2 * after_reply)


def test_udp_one_way_traffic_keeps_the_first_timeout(sim):
    flow = Flow(sim)
    for t in (0, 50, 100, 150):  # udp_single (60 s) after the second packet
        only_output(flow.out(t))
    assert flow.replied(209)
    assert sim.engine.conntrack_stats["created"] == 2  # one connection: its DNAT zone and SNAT zone entries


def test_an_expired_connection_is_new_again(sim):
    flow = Flow(sim)
    only_output(flow.out(0))
    only_output(flow.out(61))  # the first expired: this one commits a new connection
    stats = sim.engine.conntrack_stats
    # (two entries a connection: gr-router1's DNAT zone and SNAT zone)
    assert (stats["created"], stats["expired"], stats["live"]) == (4, 2, 2)
    assert flow.replied(62)


def test_tcp_handshake_reaches_established(sim):
    flow = Flow(sim, "tcp", dport=443)
    only_output(flow.out(0, "S"))
    assert flow.replied(1, "SA")
    only_output(flow.out(2, "A"))
    # established: a day (tcp_established), not the 30 s of an opening connection
    assert flow.replied(2 + 3600, "A")
    assert flow.replied(2 + 3600 + 86399, "A")
    assert not flow.replied(2 + 3600 + 86399 + 86400, "A")


def test_tcp_syn_without_answer_expires_after_syn_sent(sim):
    flow = Flow(sim, "tcp", dport=443)
    only_output(flow.out(0, "S"))
    assert not flow.replied(30, "SA")


def test_tcp_half_open_expires_after_syn_recv(sim):
    flow = Flow(sim, "tcp", dport=443)
    only_output(flow.out(0, "S"))
    assert flow.replied(1, "SA")  # tcp_syn_recv (30 s) until vm1 acknowledges
    assert not flow.replied(31, "A")


def test_tcp_closed_by_fins_expires_after_tcp_close(sim):
    flow = Flow(sim, "tcp", dport=443)
    only_output(flow.out(0, "S"))
    assert flow.replied(0.1, "SA")
    only_output(flow.out(0.2, "A"))
    only_output(flow.out(1, "FA"))            # vm1 closes: CLOSING / ESTABLISHED -> tcp_fin_wait (900 s)
    assert flow.replied(100, "A")            # its FIN acknowledged: FIN_WAIT_2
    assert flow.replied(800, "FA")           # the server closes too: both closing -> tcp_time_wait (45 s)
    only_output(flow.out(801, "A"))           # both FIN_WAIT_2 or later: tcp_close (30 s)
    assert flow.replied(830, "A")
    assert not flow.replied(861, "A")


def test_tcp_reset_expires_after_tcp_close(sim):
    flow = Flow(sim, "tcp", dport=443)
    only_output(flow.out(0, "S"))
    assert flow.replied(0.1, "SA")
    only_output(flow.out(0.2, "A"))
    assert flow.replied(5, "R")              # both peers TIME_WAIT: tcp_close (30 s)
    assert flow.replied(34, "A")
    assert not flow.replied(65, "A")


def test_a_syn_on_a_closed_tcp_connection_opens_a_new_one(sim):
    flow = Flow(sim, "tcp", dport=443)
    only_output(flow.out(0, "S"))
    assert flow.replied(0.1, "SA")
    only_output(flow.out(0.2, "A"))
    assert flow.replied(1, "R")
    only_output(flow.out(2, "S"))            # OVS: CT_UPDATE_NEW, the old one expires, a new one is committed
    stats = sim.engine.conntrack_stats
    # in both of gr-router1's zones (the reset closed the DNAT zone's entry too: it saw the same segments)
    assert (stats["created"], stats["expired"], stats["live"]) == (4, 2, 2)
    assert flow.replied(3, "SA")


def test_a_long_capture_does_not_grow_the_table(reference_topology):
    sim = Simulator(reference_topology, ct_timeouts={"udp_first": 1})
    vm_side = lrp_mac(sim, "lrp-router1-web-v4")
    n = 3000
    for i in range(n):  # a new flow every 10 ms, each idle after its one packet
        only_output(sim.inject("vm1", udp_frame(VM1_MAC, vm_side, VM1_IP, INTERNET, sport=1024 + i),
                               time=i * 0.01))
    stats = sim.engine.conntrack_stats
    # A connection lives 1 s: 100 flows at once, never more, whatever the capture's length; each
    # flow is two entries (gr-router1's DNAT zone and SNAT zone), so 200 at most.
    assert stats["peak"] == 200
    assert stats["created"] == 2 * n
    assert stats["created"] == stats["expired"] + stats["live"]
    # a sweep at the last frame's time removes the expired connections still held, leaving the last 100 flows'
    assert sim.engine.conntrack_sweep() == stats["live"] - 200
    after = sim.engine.conntrack_stats
    assert after["created"] == after["expired"] + after["live"] and after["live"] == 200
    # the same flows with no ageing hold every connection
    grown = Simulator(reference_topology)
    for i in range(n):
        only_output(grown.inject("vm1", udp_frame(VM1_MAC, vm_side, VM1_IP, INTERNET, sport=1024 + i)))
    assert grown.engine.conntrack_stats["live"] == 2 * n
    assert grown.engine.conntrack_stats["bytes"] > 8 * after["bytes"]


def test_the_limit_does_not_count_expired_connections(reference_topology):
    # room for one flow through the gateway router: its DNAT zone and SNAT zone entries
    sim = Simulator(reference_topology, ct_limit=2, ct_timeouts={"udp_first": 1})
    a, b = Flow(sim, sport=40000), Flow(sim, sport=40001)
    only_output(a.out(0))
    assert_dropped(b.out(0.5), Drop.CONNTRACK_FULL, "lr_out_post_undnat", "gr-router1")
    only_output(b.out(1.5))  # a expired at 1 s: its places are free
    assert sim.engine.conntrack_stats["live"] == 2


def test_the_clock_does_not_go_back(sim):
    flow = Flow(sim)
    only_output(flow.out(100))
    only_output(Flow(sim, sport=40001).out(0))  # an earlier timestamp: the clock stays at 100
    assert sim.engine.conntrack_stats["now_ns"] == int((T0 + 100) * 1e9)
    assert flow.replied(159)


def test_reset_forgets_connections_counters_and_clock(sim):
    only_output(Flow(sim).out(0))
    sim.reset()
    assert sim.engine.conntrack_stats == {**sim.engine.conntrack_stats, "created": 0, "expired": 0, "live": 0,
                                          "peak": 0, "now_ns": 0}


def test_timeouts_are_checked_and_changed_only_while_nothing_is_tracked(sim):
    with pytest.raises(ValueError, match="unknown conntrack timeout 'udp'; the timeouts are: tcp_syn_sent"):
        sim.engine.ct_timeouts = {"udp": 5}
    for bad in (0, -1, 1.5, True, "5"):
        with pytest.raises(ValueError, match="not a whole number of seconds"):
            sim.engine.ct_timeouts = {"udp_first": bad}
    sim.engine.ct_timeouts = {"udp_first": 5}
    assert sim.engine.ct_timeouts["udp_first"] == 5 and sim.engine.ct_timeouts["udp_single"] == 60
    only_output(Flow(sim).out(0))
    with pytest.raises(RuntimeError, match="while connections are tracked"):
        sim.engine.ct_timeouts = {"udp_first": 6}
    sim.reset()
    sim.engine.ct_timeouts = {"udp_first": 6}


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
def test_a_bad_time_is_refused(sim, bad):
    with pytest.raises(ValueError, match="time must be a number of seconds"):
        sim.inject("vm1", b"\0" * 60, time=bad)


# ---------------------------------------------------------------------------
# replay: the capture's timestamps are the clock
# ---------------------------------------------------------------------------


def _capture(tmp_path: Path, sim: Simulator, times_and_frames) -> Path:
    from scapy.utils import PcapWriter

    path = tmp_path / "aged.pcap"
    with PcapWriter(str(path), linktype=1, sync=True) as writer:
        for t, frame in times_and_frames:
            frame.time = T0 + t
            writer.write(frame)
    return path


def _udp_session(sim: Simulator, reply_at: float):
    """vm1 -> 8.8.8.8 at 0, 8.8.8.8's reply to the SNAT address at ``reply_at``."""
    vm_side, gw = lrp_mac(sim, "lrp-router1-web-v4"), lrp_mac(sim, "lrp-router1-gw")
    return [(0, udp_frame(VM1_MAC, vm_side, VM1_IP, INTERNET, sport=40000, dport=53)),
            (reply_at, udp_frame(UPSTREAM_MAC, gw, INTERNET, SNAT_IP, sport=53, dport=40000))]


@pytest.mark.parametrize("reply_at, replied", [(59, True), (61, False)])
def test_replay_ages_connections_by_the_capture_timestamps(tmp_path, capsys, sim, reply_at, replied):
    from ovnsim.cli import main

    capture = _capture(tmp_path, sim, _udp_session(sim, reply_at))
    assert main(["replay", str(REFERENCE), str(capture), "--out-dir", str(tmp_path / "o"), "--auto", "--json",
                 "--trace", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert ("vm1" in data["outputs"]) is replied
    ct = data["conntrack"]
    # one connection, two entries: gr-router1's DNAT zone and SNAT zone
    assert (ct["created"], ct["expired"], ct["live"], ct["peak"]) == ((2, 0, 2, 2) if replied else (2, 2, 0, 2))
    assert ct["created"] == ct["expired"] + ct["live"] and ct["limit"] is None
    assert ct["timeouts"]["udp_first"] == 60
    # --trace N runs the frames before N with their times too: the trace agrees with the replay
    assert ('output("vm1")' in data["trace"]["text"]) is replied


def test_replay_ct_timeout_option(tmp_path, capsys, sim):
    from ovnsim.cli import main

    capture = _capture(tmp_path, sim, _udp_session(sim, 20))
    assert main(["replay", str(REFERENCE), str(capture), "--out-dir", str(tmp_path / "o"), "--auto",
                 "--ct-timeout", "udp_first=10", "--ct-timeout", "udp_single=15"]) == 0
    text = capsys.readouterr().out
    # (one flow, committed in gr-router1's DNAT zone and SNAT zone)
    assert "conntrack: 2 connections created, 2 expired, 0 live at the end, peak 2; timeouts udp_first=10s, " \
           "udp_single=15s, others OVS's defaults" in text
    assert "  vm1 " not in text


@pytest.mark.parametrize("arg, message", [
    ("udp=5", "--ct-timeout: unknown conntrack timeout 'udp'; the timeouts are: tcp_syn_sent, tcp_syn_recv"),
    ("udp_first", "--ct-timeout udp_first: expected NAME=SECONDS (e.g. udp_first=30)"),
    ("udp_first=-3", "--ct-timeout udp_first=-3: expected NAME=SECONDS (e.g. udp_first=30)"),
    ("udp_first=0", "--ct-timeout: conntrack timeout udp_first: 0 is not a whole number of seconds from 1 to"),
])
def test_replay_bad_ct_timeout_is_a_one_line_error(tmp_path, capsys, arg, message):
    from ovnsim.cli import main

    capture = ROOT / "pcaps" / "reference-mixed.pcap"
    assert main(["replay", str(REFERENCE), str(capture), "--out-dir", str(tmp_path / "o"), "--auto",
                 "--ct-timeout", arg]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ovnsim: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------
# ACL zones (security groups) age alike
# ---------------------------------------------------------------------------


def test_an_acl_connection_expires_and_its_reply_is_new_again():
    """web1 -> web2:80 is allowed; web2's answer passes as a reply only while the connection lives."""
    import acl_cases

    sim = Simulator(load_topology(str(acl_cases.TOPO)))
    mac = {"web1": "fa:16:3e:04:00:11", "web2": "fa:16:3e:04:00:12"}
    ip = {"web1": "10.4.0.11", "web2": "10.4.0.12"}

    def tcp(src, dst, sport, dport, flags, t):
        frame = Ether(src=mac[src], dst=mac[dst]) / IP(src=ip[src], dst=ip[dst]) / TCP(sport=sport, dport=dport,
                                                                                      flags=flags)
        return any(o.port == dst for o in sim.inject(src, frame, time=T0 + t).outputs)

    assert tcp("web1", "web2", 40000, 80, "S", 0)
    assert tcp("web2", "web1", 80, 40000, "SA", 1)  # a reply: passes web1's ingress ACLs
    assert tcp("web1", "web2", 40001, 80, "S", 2)
    # the second connection's SYN-ACK after tcp_syn_sent (30 s): no connection, a new packet web1 drops
    assert not tcp("web2", "web1", 80, 40001, "SA", 33)
    sim.engine.conntrack_sweep()
    stats = sim.engine.conntrack_stats
    assert stats["expired"] >= 2  # its entries in both ports' zones
    assert stats["created"] == stats["expired"] + stats["live"]


def test_every_live_connection_is_found_after_many_deletions(sim):
    """Backward-shift deletion keeps every remaining key reachable: after 2,000 flows and the
    removal of the expired ones, exactly the flows younger than udp_first get their replies."""
    import random

    rng = random.Random(5)
    ports = rng.sample(range(1024, 65536), 2000)
    vm_side, gw = lrp_mac(sim, "lrp-router1-web-v4"), lrp_mac(sim, "lrp-router1-gw")
    for i, sport in enumerate(ports):  # one flow every 50 ms: 100 s of capture
        only_output(sim.inject("vm1", udp_frame(VM1_MAC, vm_side, VM1_IP, INTERNET, sport=sport, dport=53),
                               time=T0 + i * 0.05))
    live = []
    for i, sport in enumerate(ports):  # all at 100.025 s: the clock stands, each reply is judged alone
        result = sim.inject("provnet-public", udp_frame(UPSTREAM_MAC, gw, INTERNET, SNAT_IP, sport=53, dport=sport),
                            time=T0 + 100.025)
        live.append(any(o.port == "vm1" for o in result.outputs))
    assert live == [i > 800 for i in range(2000)]  # flow i expires at i * 0.05 + 60 s
