"""Security groups in a lab (nftables with conntrack) behave as real OVN says (root).

The cases are ``tests/acl_cases.py``'s, on ``topologies/security-groups.yaml``;
real OVN's verdicts are ovn-trace's, recorded in ``tests/data/acl/verdicts.json``.
In the lab each case is a real connection: a ping, a TCP connect or a UDP
datagram from the case's source to its destination, captured on arrival.

* a connection-opening case (profile ``new``): the lab delivers the request to
  exactly the ports ovn-trace's ``--ct=new`` verdict outputs it on;
* a reply case (``rpl``, e.g. db1's answer to web1's PostgreSQL connection):
  the lab's connection is answered exactly when OVN delivers both the request
  (``new``) and the reply of the established connection (``rpl``), while the
  same packet as a connection of its own (``new``) is blocked in both;
* ARP is not filtered: a VM resolves a neighbour whose IP traffic to it is blocked.
"""

from __future__ import annotations

import os
import shutil

import pytest

from acl_cases import CASES, CASES_BY_NAME, OUTSIDE, TOPO, recorded
from ovnsim.lab import Lab
from ovnsim.lab.acl import UnsupportedMatch, translate_match
from ovnsim.lab.build import bridge_conntrack_missing
from ovnsim.lab.probe import endpoints, probe_from
from ovnsim.lab.runs import run_lab_dir

REQUESTS = [c for c in CASES if not c.reply_to and not c.name.startswith("web1_arp")]
REPLIES = [c for c in CASES if c.reply_to]


def _root_reason():
    if os.geteuid() != 0 or shutil.which("nft") is None:
        return "labs need root and nftables"
    return bridge_conntrack_missing() or None


def needs_lab(test):
    """Root, nftables and br_netfilter, or a skip saying which is missing."""
    return pytest.mark.root(pytest.mark.skipif(_root_reason() is not None, reason=str(_root_reason()))(test))


@pytest.fixture(scope="module")
def lab():
    # ledgers in this run's directory under /run/ovnsim/runs (ovnsim.lab.runs), never a tmp dir
    with run_lab_dir("sg"), Lab.up(str(TOPO), name=f"sg{os.getpid()}") as lab:
        yield lab


def _probe(lab, case, **kw):
    """Probe one case in the lab: (ports the request reached, answered)."""
    if case.microflow:  # from outside, to a floating IP (tcp only here)
        flow = case.microflow
        dst = flow.split("ip4.dst == ")[1].split()[0]
        port = int(flow.split("tcp.dst == ")[1].split()[0])
        source, proto, address = "provnet-public", "tcp", OUTSIDE
    else:
        source, address = case.source, None
        dst = endpoints(lab)[case.destination] if case.destination != "outside" else OUTSIDE
        proto = "icmp" if case.icmp else "tcp" if case.tcp else "udp"
        port = case.tcp or case.udp or 7
    [result] = probe_from(lab, source, [dst], proto, port, timeout=1.0, source_address=address, **kw)
    return result.delivered, result.answered


def _ovn_ports(case_name: str, profile: str):
    return {o["port"] for o in recorded()[case_name][profile]["verdict"]["outputs"] if o["kind"] == "packet"}


@pytest.mark.parametrize("case", REQUESTS, ids=lambda c: c.name)
@needs_lab
def test_lab_delivers_new_connections_as_ovn(lab, case):
    delivered, _answered = _probe(lab, case)
    assert delivered == _ovn_ports(case.name, "new"), case.why


@pytest.mark.parametrize("case", REPLIES, ids=lambda c: c.name)
@needs_lab
def test_lab_answers_connections_as_ovn_lets_replies_back(lab, case):
    request = CASES_BY_NAME[case.reply_to]
    ovn_answered = bool(_ovn_ports(request.name, "new")) and bool(_ovn_ports(case.name, "rpl"))
    assert ovn_answered  # each reply case answers an allowed connection
    assert not _ovn_ports(case.name, "new")  # ... and would be blocked as a connection of its own
    _delivered, answered = _probe(lab, request)
    assert answered == ovn_answered, case.why
    # The same packet as a connection of its own is blocked in the lab too.
    own = type(case)(case.name, case.source, case.destination, tcp=case.tcp, udp=case.udp, sport=case.sport)
    delivered, _ = _probe(lab, own)
    assert not delivered, case.why


@needs_lab
def test_arp_is_not_filtered(lab):
    blocked = CASES_BY_NAME["web1_to_web2_ssh"]
    assert _probe(lab, blocked)[0] == set()  # IP to web2: blocked by web's ingress rules
    neigh = lab.exec("web1", "ip", "neigh", "show", endpoints(lab)["web2"]).stdout
    assert "fa:16:3e:04:00:12" in neigh  # ... but web1 resolved web2's MAC with ARP


@needs_lab
def test_unfiltered_ports_and_projects_reach_each_other_freely(lab):
    """fw1 (port_security: false) is in no port group: anything from it, to it, passes its own stage."""
    [to_fw1] = probe_from(lab, "web1", [endpoints(lab)["fw1"]], "udp", 7777, timeout=1.0)
    assert to_fw1.answered and to_fw1.delivered == {"fw1"}



# -- the translation itself (no root) -----------------------------------------

@pytest.mark.parametrize("match,expected", [
    ("outport == @pg_web && ip4 && ip4.src == $pg_bastion_ip4 && tcp && tcp.dst == 22",
     ("outport", "pg_web", "ip saddr @pg_bastion_ip4 meta l4proto tcp tcp dport 22")),
    ("inport == @pg_db && ip4 && ip4.dst == 0.0.0.0/0 && udp && udp.dst >= 5000 && udp.dst <= 5010",
     ("inport", "pg_db", "ip daddr 0.0.0.0/0 meta l4proto udp udp dport >= 5000 udp dport <= 5010")),
    ("outport == @pg_web && ip4 && ip4.src == 10.4.0.0/16 && icmp4 && icmp4.type == 8 && icmp4.code == 0",
     ("outport", "pg_web", "ip saddr 10.4.0.0/16 meta l4proto icmp icmp type 8 icmp code 0")),
    ("inport == @pg_x && ip4 && ip.proto == 47", ("inport", "pg_x", "meta l4proto 47")),
    ("outport == @neutron_pg_drop && ip", ("outport", "neutron_pg_drop", "")),
    ("inport == @pg_web && ip6", None),
])
def test_translate_match(match, expected):
    assert translate_match(match) == expected


def test_translate_match_refuses_what_it_cannot_express():
    with pytest.raises(UnsupportedMatch):
        translate_match("outport == @pg && ip4 && ct.est")


_UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2.0)
s.connect((sys.argv[1], int(sys.argv[2]))); s.send(b"x")
try:
    s.recv(10); print("answered")
except ConnectionRefusedError:
    print("refused")        # the ICMP port unreachable came back
except socket.timeout:
    print("nothing")
"""


@needs_lab
def test_related_icmp_errors_of_an_allowed_connection_pass(lab):
    """db1 may send DNS (db's egress rule); the upstream's port unreachable is related to that connection and
    reaches db1, whose ingress rules allow nothing of the sort (OVN: ct.rel passes, as tests/data/acl's
    web1_to_web2_http.rel).  The same error is not let through as a connection of its own: UDP to a port db1's
    egress rules do not allow never leaves, so nothing comes back."""
    import sys

    assert lab.exec("db1", sys.executable, "-c", _UDP_CLIENT, OUTSIDE, "53").stdout.strip() == "refused"
    assert lab.exec("db1", sys.executable, "-c", _UDP_CLIENT, OUTSIDE, "54").stdout.strip() == "nothing"
    assert lab.exec("fw1", sys.executable, "-c", _UDP_CLIENT, OUTSIDE, "54").stdout.strip() == "refused"


def test_acl_plan_orders_by_priority_and_notes_what_it_cannot_do():
    from ovnsim.lab.acl import AclPlan, acl_ruleset
    from ovnsim.nb.model import ACL, LogicalSwitch, LogicalSwitchPort, LogicalTopology, PortGroup

    pg = PortGroup("pg_x", ("vm1",), acls=(
        ACL("to-lport", 1001, "outport == @pg_x && ip", "drop"),
        ACL("to-lport", 1002, "outport == @pg_x && ip4 && ip4.src == $pg_x_ip4 && tcp && tcp.dst == 22",
            "allow-related"),
        ACL("to-lport", 1003, "outport == @pg_x && ip4 && udp && udp.dst == 53", "reject"),
        ACL("from-lport", 1002, "inport == @pg_x && ip4 && ct.est", "allow-related"),
        ACL("from-lport", 1002, "inport == @pg_x && ip6", "allow-related")))
    ls = LogicalSwitch("ls", ports=(LogicalSwitchPort("vm1", addresses=("fa:16:3e:00:00:01 10.0.0.5",)),))
    plan = AclPlan(LogicalTopology(switches=(ls,), routers=(), port_groups=(pg,)), {"vm1": "osx1s1"})
    assert [r[3] for r in plan.rules[("osx1s1", "to")]] == ["reject", "allow-related", "drop"]
    assert ("osx1s1", "from") not in plan.rules  # ct.est: not realised; ip6: never matches in a lab
    assert any("ct.est" in n for n in plan.notes) and any("reject is realised as drop" in n for n in plan.notes)
    text = acl_ruleset(plan)
    assert "set pg_x_ip4 {\n    type ipv4_addr; flags interval;\n    elements = { 10.0.0.5 }" in text and "ip saddr @pg_x_ip4 meta l4proto tcp tcp dport 22 meta mark set" in text


@needs_lab
def test_a_remote_group_without_members_matches_nothing(tmp_path, run_labs):
    topo = tmp_path / "empty-remote.yaml"
    topo.write_text("""
projects:
  p:
    networks:
      n: {subnets: {n-v4: {cidr: 10.9.0.0/24, gateway_ip: 10.9.0.1}}}
    security_groups:
      a:
        rules:
          - {direction: ingress, protocol: icmp, remote_group: nobody}
      nobody:
        rules: []
    ports:
      a1: {network: n, fixed_ips: [10.9.0.11], security_groups: [a]}
      a2: {network: n, fixed_ips: [10.9.0.12], security_groups: [a]}
      free: {network: n, fixed_ips: [10.9.0.13], port_security: false}
""")
    with Lab.up(str(topo), name=f"er{os.getpid()}") as lab:
        assert "set pg_nobody_ip4 {" in lab.plan.namespace("sw").nft
        assert lab.exec("a1", "ping", "-c1", "-W1", "10.9.0.12").returncode != 0  # only from members of nobody
        assert lab.exec("a1", "ping", "-c1", "-W1", "10.9.0.13").returncode == 0  # free is not filtered
