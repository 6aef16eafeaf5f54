"""Benchmark: replay through security groups (the ACL stages) against the same replay without them.

    python -m pytest bench/test_bench_acl.py -q -p no:cacheprovider
    python -m pytest bench/test_bench_acl.py -q -p no:cacheprovider --benchmark-disable   # smoke test

The topology is generated: one network, 20 VM ports on one switch.  With
groups, every port is in one security group of 50 rules (48 ingress TCP
rules that match nothing in the capture, one that does -- tcp/80 from the
network, the last written -- and Neutron's two default egress rules), so a
new connection's first packet is checked against the port's rules in both
its ACL passes (the sender's ingress, the receiver's egress); without, the
project declares no groups and no switch has ACL stages.  The capture is
the same for both: 2,000 TCP connections between the ports, 100 packets
each (SYN, SYN-ACK, then data both ways), 100 connections interleaved at a
time: 200,000 frames of 60 bytes, every one delivered.

Group ``replay-acl``: ``replay_no_groups_baseline`` and
``replay_50_rules_per_port``; ``bench/conftest.py`` prints the ratio
(groups median / baseline median; issue 10's target is the baseline
running at least 70 % as fast: a ratio of at most 1.43).  Nothing asserts
on time; both check that every frame was delivered.
"""

from __future__ import annotations

import itertools
import shutil
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PORTS = 20
RULES = 50
CONNECTIONS = 2_000
PACKETS = 100  #: per connection
AT_ONCE = 100  #: connections interleaved
FRAMES = CONNECTIONS * PACKETS
FRAME_LEN = 60
T0 = 1_700_000_000


def _mac(i: int) -> str:
    return f"fa:16:3e:09:00:{i:02x}"


def _ip(i: int) -> str:
    return f"10.9.0.{10 + i}"


def topology_doc(groups: bool) -> dict:
    """The benchmark's topology: 20 ports on one network, each in a 50-rule group (or no groups at all)."""
    ports = {f"vm{i}": {"network": "net", "fixed_ips": [_ip(i)], "mac_address": _mac(i)} for i in range(PORTS)}
    project = {"networks": {"net": {"subnets": {"net-v4": {"cidr": "10.9.0.0/24", "gateway_ip": "10.9.0.1"}}}},
               "ports": ports}
    if groups:
        rules = [{"direction": "ingress", "protocol": "tcp", "port_range": 1000 + k, "remote_ip_prefix": "10.99.0.0/16"}
                 for k in range(RULES - 3)]
        rules.append({"direction": "ingress", "protocol": "tcp", "port_range": 80, "remote_ip_prefix": "10.9.0.0/24"})
        project["security_groups"] = {"app": {"rules": rules}}
        for port in ports.values():
            port["security_groups"] = ["app"]
    return {"projects": {"bench": project}}


def _frames():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    def pad(frame: bytes) -> bytes:
        return frame + b"\0" * (FRAME_LEN - len(frame))

    conns = []
    for c in range(CONNECTIONS):
        a, b = c % PORTS, (c * 7 + 1) % PORTS
        if a == b:
            b = (b + 1) % PORTS
        sport = 10000 + c
        fwd = Ether(src=_mac(a), dst=_mac(b)) / IP(src=_ip(a), dst=_ip(b), ttl=64)
        rev = Ether(src=_mac(b), dst=_mac(a)) / IP(src=_ip(b), dst=_ip(a), ttl=64)
        conns.append([pad(bytes(fwd / TCP(sport=sport, dport=80, flags="S"))),
                      pad(bytes(rev / TCP(sport=80, dport=sport, flags="SA"))),
                      pad(bytes(fwd / TCP(sport=sport, dport=80, flags="A"))),
                      pad(bytes(rev / TCP(sport=80, dport=sport, flags="A")))])
    for start in range(0, CONNECTIONS, AT_ONCE):
        group = conns[start:start + AT_ONCE]
        for k in range(PACKETS):
            for frames in group:
                yield frames[k] if k < 2 else frames[2 + (k % 2)]


def write_capture(path: Path) -> Path:
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out.write(b"".join(struct.pack("<IIII", T0 + i // 1_000_000, i % 1_000_000, FRAME_LEN, FRAME_LEN) + frame
                           for i, frame in enumerate(_frames())))
    return path


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return write_capture(tmp_path_factory.mktemp("acl") / "acl-200k.pcap")


def _topology(tmp_path: Path, groups: bool) -> Path:
    import yaml

    path = tmp_path / ("groups.yaml" if groups else "plain.yaml")
    path.write_text(yaml.safe_dump(topology_doc(groups)))
    return path


def _bench(benchmark, tmp_path: Path, capture: Path, groups: bool, capsys):
    from ovnsim.capture.replay import replay
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    logical = compile_topology(load_topology(str(_topology(tmp_path, groups))))
    acls = sum(len(pg.acls) for pg in logical.port_groups)
    assert (acls > RULES) == groups  # the group's rules, IPv6 defaults and neutron_pg_drop's
    rounds = itertools.count()
    state = {}

    def setup():
        if "out" in state:
            shutil.rmtree(state["out"])
        state["out"] = tmp_path / f"out{next(rounds)}"
        return (), {}

    def run():
        state["summary"] = replay(logical, capture, state["out"], auto=True)

    benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    summary = state["summary"]
    summary.check()
    assert (summary.frames_in, summary.delivered, summary.dropped) == (FRAMES, FRAMES, 0)
    stats = getattr(benchmark, "stats", None)
    median = stats.stats.median if stats is not None else summary.elapsed_s
    with capsys.disabled():
        print(f"\n  {'50 rules per port' if groups else 'no groups'}: {FRAMES:,} frames, median {median:.3f} s, "
              f"{FRAMES / median / 1e6:.2f} M frames/s")


@pytest.mark.benchmark(group="replay-acl")
def test_replay_no_groups_baseline(benchmark, tmp_path, capture, capsys):
    _bench(benchmark, tmp_path, capture, False, capsys)


@pytest.mark.benchmark(group="replay-acl")
def test_replay_50_rules_per_port(benchmark, tmp_path, capture, capsys):
    _bench(benchmark, tmp_path, capture, True, capsys)
