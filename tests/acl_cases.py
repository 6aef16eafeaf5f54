"""The ACL microflows on ``topologies/security-groups.yaml`` and ovn-trace's recorded verdicts for them.

One definition of the cases, used by ``tests/test_security_groups_trace.py``
(which replays them through ovnsim) and by this module's ``__main__``, which
records them with real OVN 23.03 into ``tests/data/acl/``::

    python tests/acl_cases.py          # from the repository root, as root or with the OVN binaries

ovn-trace evaluates the ACL stages' ``ct_next`` with the ``ct_state`` flags
given by ``--ct`` (one per conntrack pass, in order; the daemon mode does not
take ``--ct``, so every run is a process of its own).  Each case is recorded
under the profiles it lists:

* ``new``: every pass ``trk,new``: the first packet of a connection;
* ``est``: every pass ``trk,est``: a later packet of a connection (ovn-trace's
  default; ``ct_mark.blocked`` is 0);
* ``rpl``: every pass ``trk,est,rpl``: a reply of an established connection;
* ``inv`` / ``rel``: every pass ``trk,inv`` (an invalid packet) / ``trk,rel``
  (related, e.g. an ICMP error about a connection).

The upstream router's static MAC binding is written as the SB MAC_Binding
row ovn-trace can see (as ``tests/conformance`` does).  ``verdicts.json`` holds, per case and profile, the microflow, the ``--ct``
options, the verdict (:func:`ovnsim.testing.ovntrace.make_verdict` format)
and the drops ``[datapath, stage]``; ``<case>.<profile>.txt`` the whole
ovn-trace output; ``lflows-acl.txt`` the ACL-stage logical flows of the two
tenant switches.
"""

from __future__ import annotations

import json
import pathlib
import sys
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOPO = ROOT / "topologies" / "security-groups.yaml"
DATA = pathlib.Path(__file__).resolve().parent / "data" / "acl"

#: profile -> ct_state flags of every conntrack pass
PROFILES = {"new": "new", "est": "est", "rpl": "est,rpl", "inv": "inv", "rel": "rel"}
#: more than any path here crosses (switch ingress/egress, router NAT)
CT_PASSES = 6
#: the ACL stages whose flows lflows-acl.txt keeps
ACL_STAGES = ("ls_in_pre_acl", "ls_in_pre_lb", "ls_in_pre_stateful", "ls_in_acl_hint", "ls_in_acl ",
              "ls_in_acl_after_lb", "ls_in_stateful", "ls_out_pre_acl", "ls_out_pre_lb", "ls_out_pre_stateful",
              "ls_out_acl_hint", "ls_out_acl ", "ls_out_stateful")

SPORT = 40000  #: the client port of every TCP/UDP connection here
OUTSIDE = "198.51.100.7"
UPSTREAM_MAC = "52:54:00:c0:ff:ee"


@dataclass(frozen=True)
class Case:
    """One microflow: from a port (``ovnsim trace --from/--to`` terms) or written out."""

    name: str
    source: str = ""
    destination: str = ""
    tcp: Optional[int] = None
    udp: Optional[int] = None
    icmp: bool = False
    sport: int = 0
    microflow: str = ""  #: given instead of source/destination (traffic from outside)
    profiles: Tuple[str, ...] = ("new", "est")
    #: for a reply: the case whose connection it answers (replayed first)
    reply_to: str = ""
    why: str = ""


def _tcp_from_outside(fip: str, dport: int, gw_mac: str) -> str:
    return (f'inport == "provnet-public" && eth.src == {UPSTREAM_MAC} && eth.dst == {gw_mac} && '
            f"ip4.src == {OUTSIDE} && ip4.dst == {fip} && ip.ttl == 64 && tcp && tcp.src == {SPORT} && "
            f"tcp.dst == {dport}")


#: The router gateway's MAC (derived by the loader from the router id; checked by the tests).
GW_MAC = "fa:16:3e:ab:62:10"

CASES = (
    # same switch (neutron-web): groups web, default, bastion, stateless
    Case("web1_to_web2_http", "web1", "web2", tcp=80, sport=SPORT, profiles=("new", "est", "inv", "rel"),
         why="web allows tcp/80 from anywhere; web1's egress: default rules"),
    Case("web2_to_web1_http_reply", "web2", "web1", tcp=SPORT, sport=80, profiles=("new", "est", "rpl"),
         reply_to="web1_to_web2_http",
         why="a reply: as a new connection web1 (web, default) allows nothing from web2 on port 40000"),
    Case("web1_to_web2_ssh", "web1", "web2", tcp=22, sport=SPORT, why="web allows ssh only from bastion members"),
    Case("bastion1_to_web2_ssh", "bastion1", "web2", tcp=22, sport=SPORT, profiles=("new", "est"),
         why="remote group: ip4.src == $pg_bastion_ip4"),
    Case("web2_to_bastion1_ssh_reply", "web2", "bastion1", tcp=SPORT, sport=22, profiles=("new", "rpl"),
         reply_to="bastion1_to_web2_ssh", why="bastion's egress default rules; the reply rides conntrack"),
    Case("app1_to_web2_ssh", "app1", "web2", tcp=22, sport=SPORT, why="app1 is not in bastion"),
    Case("app1_to_web1_ssh", "app1", "web1", tcp=22, sport=SPORT,
         why="web1 is also in default: ingress from default members (app1)"),
    Case("app1_to_web2_ping", "app1", "web2", icmp=True, why="web allows echo requests from 10.4.0.0/16"),
    Case("app1_to_sl1_udp_5001", "app1", "sl1", udp=5001, sport=SPORT, profiles=("new", "est"),
         why="stateless group: allow-stateless udp 5000-5010 from 10.4.0.0/24"),
    Case("sl1_to_app1_udp_reply", "sl1", "app1", udp=SPORT, sport=5001, profiles=("new", "rpl"),
         reply_to="app1_to_sl1_udp_5001",
         why="sl1 sends statelessly; app1 (default) lets it in only as the reply of its own connection"),
    Case("app1_to_sl1_udp_6000", "app1", "sl1", udp=6000, sport=SPORT, why="outside the stateless rule's range"),
    Case("web1_to_sl1_tcp_5001", "web1", "sl1", tcp=5001, sport=SPORT, why="the stateless rule is udp only"),
    Case("web1_arp_for_web2", microflow=(
        'inport == "web1" && eth.src == fa:16:3e:04:00:11 && eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && '
        "arp.sha == fa:16:3e:04:00:11 && arp.spa == 10.4.0.11 && arp.tha == 00:00:00:00:00:00 && "
        "arp.tpa == 10.4.0.12"), why="ARP is not IP: no ACL sees it"),
    # across router1: web -> db, db -> outside, outside -> bastion's floating IP
    Case("web1_to_db1_postgres", "web1", "db1", tcp=5432, sport=SPORT, profiles=("new", "est"),
         why="db allows 5432 from web members (remote group across the router)"),
    Case("db1_to_web1_postgres_reply", "db1", "web1", tcp=SPORT, sport=5432, profiles=("new", "rpl"),
         reply_to="web1_to_db1_postgres", why="db has no egress tcp rule: only the reply of an allowed connection"),
    Case("app1_to_db1_postgres", "app1", "db1", tcp=5432, sport=SPORT, why="app1 is not in web"),
    Case("db1_to_web1_http", "db1", "web1", tcp=80, sport=SPORT,
         why="db (default_rules: false) may only send udp/53"),
    Case("db1_to_outside_dns", "db1", "outside", udp=53, sport=SPORT, why="db's egress rule udp/53 to 0.0.0.0/0"),
    Case("db1_to_outside_https", "db1", "outside", tcp=443, sport=SPORT, why="no egress rule for tcp/443"),
    Case("fw1_to_db1_postgres", "fw1", "db1", tcp=5432, sport=SPORT,
         why="fw1 has no port security (unfiltered) but db1's ingress needs a web member"),
    Case("web1_to_fw1_tcp_9999", "web1", "fw1", tcp=9999, sport=SPORT, why="fw1 is in no port group: not filtered"),
    Case("outside_to_bastion_fip_ssh", microflow=_tcp_from_outside("172.24.4.120", 22, GW_MAC),
         why="bastion allows ssh from 0.0.0.0/0, through the floating IP"),
    Case("outside_to_bastion_fip_http", microflow=_tcp_from_outside("172.24.4.120", 80, GW_MAC),
         why="bastion1 is in bastion and default: neither allows http from outside"),
)

CASES_BY_NAME = {c.name: c for c in CASES}


def microflow(case: Case, topo=None, logical=None) -> str:
    """The case's ovn-trace microflow (built like ``ovnsim trace --from/--to``)."""
    if case.microflow:
        return case.microflow
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology
    from ovnsim.trace_args import FlowSpec, build_microflow

    if topo is None:
        topo = load_topology(str(TOPO))
    if logical is None:
        logical = compile_topology(topo)
    spec = FlowSpec(case.source, case.destination, tcp=case.tcp, udp=case.udp, icmp=case.icmp, sport=case.sport)
    return build_microflow(topo, logical, spec)


def ct_options(profile: str) -> Tuple[str, ...]:
    """The ``--ct`` options of a profile, one per conntrack pass."""
    return tuple(f"--ct={PROFILES[profile]}" for _ in range(CT_PASSES))


def recorded() -> Dict[str, Dict[str, dict]]:
    """case name -> profile -> {microflow, ct, verdict, drops}, as recorded."""
    return json.loads((DATA / "verdicts.json").read_text())


def record() -> None:  # pragma: no cover - run by hand against real OVN
    """Run every case and profile through real ovn-trace and write tests/data/acl/."""
    from ovnsim.nb.nbctl import nbctl_commands
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology
    from ovnsim.testing.ovntrace import parse_trace_result, run_trace
    from ovnsim.testing.realovn import RealOVN

    topo = load_topology(str(TOPO))
    logical = compile_topology(topo)
    DATA.mkdir(parents=True, exist_ok=True)
    out: Dict[str, Dict[str, dict]] = {}
    with RealOVN() as ovn:
        ovn.run_nbctl_script(nbctl_commands(logical))
        ovn.sync()
        # ovn-trace does not see Static_MAC_Binding rows: write the SB MAC_Binding they stand for,
        # as tests/conformance does
        for binding in logical.static_mac_bindings:
            router = next(lr.name for lr in logical.routers if any(p.name == binding.logical_port for p in lr.ports))
            datapath = ovn.sbctl("--bare", "--columns=_uuid", "find", "Datapath_Binding",
                                 f"external_ids:name={router}").strip()
            ovn.sbctl("create", "MAC_Binding", f"logical_port={binding.logical_port}", f"ip={binding.ip}",
                      f'mac="{binding.mac}"', f"datapath={datapath}")
        names = ovn.datapath_names()
        version = ovn.nbctl("--version").splitlines()[0]
        for case in CASES:
            flow = microflow(case, topo, logical)
            for profile in case.profiles:
                options = ct_options(profile)
                text = run_trace(ovn, flow, options=options)
                result = parse_trace_result(text, flow, names)
                out.setdefault(case.name, {})[profile] = {
                    "microflow": flow, "ct": list(options), "why": case.why,
                    "verdict": result.verdict, "drops": [list(d) for d in result.drops]}
                header = f"# ovn-trace {' '.join(options)} ({version}), topologies/security-groups.yaml\n# {flow}\n"
                (DATA / f"{case.name}.{profile}.txt").write_text(header + text)
        lines = []
        for switch in ("neutron-web", "neutron-db"):
            for line in ovn.lflow_list(switch).splitlines():
                if line.startswith("Datapath:") or any(f"({stage}" in line for stage in ACL_STAGES):
                    lines.append(line)
        (DATA / "lflows-acl.txt").write_text(
            f"# ovn-sbctl lflow-list, ACL stages only ({version}), topologies/security-groups.yaml\n"
            + "\n".join(lines) + "\n")
    (DATA / "verdicts.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(ROOT))
    record()
