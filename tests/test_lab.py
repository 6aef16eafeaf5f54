"""Real labs (root): traffic through the namespaces, lifecycle, crash and cleanup safety.

Every lab here lives in a state directory of the test's own
(``$OVNSIM_LAB_DIR``, inside this run's directory under /run/ovnsim/runs:
ovnsim.lab.runs), every namespace it creates carries the lab's name,
and all traffic stays between the lab's namespaces.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ovnsim.cli import main
from ovnsim.lab import Lab, LabError
from ovnsim.lab.build import bridge_conntrack_missing
from ovnsim.lab.ledger import Ledger, netns_identity
from ovnsim.lab.runs import run_lab_dir
from ovnsim.neutron.compiler import compile_topology
from ovnsim.neutron.loader import load_topology


def topo_path(name: str) -> str:
    """An example topology by name, as an absolute path (tests may run from any directory)."""
    return str(Path(__file__).resolve().parent.parent / "topologies" / f"{name}.yaml")


def _why_no_labs():
    if os.geteuid() != 0:
        return "labs need root"
    if not os.path.exists("/proc/self/ns/net"):
        return "the kernel has no network namespaces"
    if shutil.which("nft") is None or shutil.which("ip") is None:
        return "nft or ip (nftables, iproute2) not installed"
    return None


pytestmark = [pytest.mark.root, pytest.mark.skipif(_why_no_labs() is not None, reason=str(_why_no_labs()))]

REPO = Path(__file__).resolve().parent.parent
#: Namespace names are machine-wide: lab names carry the test process's pid
#: so two test runs at once never meet.
PID = os.getpid()


@pytest.fixture
def lab_dir(run_labs):
    # Whatever a failing test left is torn down by the ledgers of this directory only (run_labs).
    return run_labs


@pytest.fixture(scope="module")
def ref_lab():
    with run_lab_dir("ref"), Lab.up(topo_path("reference"), name=f"tref{PID}") as lab:
        yield lab


def ping(lab, port, dst, ttl=None):
    argv = ["ping", "-c1", "-W2"] + (["-t", str(ttl)] if ttl else []) + [dst]
    return lab.exec(port, *argv)


def ip_of(frame):
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    pkt = Ether(frame)
    return pkt[IP] if IP in pkt else None


def icmp_frames(cap):
    from scapy.layers.inet import ICMP

    return [ip_of(f) for _t, f in cap.frames if ip_of(f) is not None and ICMP in ip_of(f)]


# -- traffic -------------------------------------------------------------------
def test_ping_east_west(ref_lab):
    result = ping(ref_lab, "vm1", "10.0.0.12")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ttl=64" in result.stdout  # same switch: no router, no TTL decrement


def test_ping_through_the_router(ref_lab):
    result = ping(ref_lab, "vm1", "10.0.1.21")
    assert result.returncode == 0 and "ttl=63" in result.stdout


def test_snat_source_seen_upstream(ref_lab):
    with ref_lab.capture("provnet-public", direction="in", timeout=5) as cap:
        assert ping(ref_lab, "vm1", "198.51.100.7").returncode == 0
    requests = [p for p in icmp_frames(cap) if p.dst == "198.51.100.7"]
    assert requests and {p.src for p in requests} == {"172.24.4.10"}


def test_floating_ip_both_ways(ref_lab):
    # In: the upstream reaches vm2 by its floating IP, vm2 sees the upstream's address.
    with ref_lab.capture("vm2", direction="in", timeout=5) as cap:
        assert ping(ref_lab, "upstream", "172.24.4.100").returncode == 0
    requests = [p for p in icmp_frames(cap) if p.src == "172.24.4.1"]
    assert requests and requests[0].dst == "10.0.0.12"
    # Out: vm2 leaves with its floating IP, not the router's SNAT address.
    with ref_lab.capture("provnet-public", direction="in", timeout=5) as cap:
        assert ping(ref_lab, "vm2", "198.51.100.7").returncode == 0
    assert {p.src for p in icmp_frames(cap) if p.dst == "198.51.100.7"} == {"172.24.4.100"}


def test_tcp_through_snat_to_a_listener_upstream(ref_lab):
    server = ref_lab.popen("upstream", sys.executable, "-c", textwrap.dedent("""
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("198.51.100.7", 8080)); s.listen(1); s.settimeout(10)
        print("ready", flush=True)
        c, addr = s.accept(); c.sendall(addr[0].encode()); c.close()
    """), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        client = ref_lab.exec("db1", sys.executable, "-c", textwrap.dedent("""
            import socket
            s = socket.create_connection(("198.51.100.7", 8080), timeout=5)
            print(s.recv(100).decode())
        """), timeout=15)
        assert client.stdout.strip() == "172.24.4.10", client.stderr
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def test_vm_port_carries_mac_ip_mtu_and_default_route(ref_lab):
    out = ref_lab.exec("vm1", "ip", "-o", "link").stdout + ref_lab.exec("vm1", "ip", "-o", "addr").stdout
    assert "fa:16:3e:00:00:11" in out and "mtu 1442" in out and "10.0.0.11/24" in out
    assert "default via 10.0.0.1" in ref_lab.exec("vm1", "ip", "route").stdout


def test_host_namespace_untouched(ref_lab):
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert ref_lab.plan.token not in host_links
    assert "172.24.4" not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout


# -- lifecycle -----------------------------------------------------------------
def test_cli_lifecycle(lab_dir, capsys):
    name = f"cli{PID}"
    assert main(["lab", "up", topo_path("reference"), "--name", name]) == 0
    assert main(["lab", "status", name, "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["lab", "status", "--format", "json"]) == 0
    import json

    labs = json.loads(capsys.readouterr().out)
    assert [(lab["name"], lab["state"]) for lab in labs] == [(name, "up")]
    assert main(["lab", "exec", name, "vm1", "--", "ping", "-c1", "-W2", "10.0.1.21"]) == 0
    assert main(["lab", "exec", name, "vm1", "--", "ping", "-c1", "-W1", "10.99.0.1"]) != 0
    assert main(["lab", "down", name]) == 0
    assert main(["lab", "down", name]) == 2  # gone: one-line error
    assert not any(n.startswith(f"ovnsim-{name}-") for n in os.listdir("/run/netns"))


def test_two_labs_of_one_topology_at_once(lab_dir):
    with Lab.up(topo_path("reference")) as a, Lab.up(topo_path("reference")) as b:
        # named after the file; the second gets the next free suffix
        assert a.name.startswith("reference") and b.name.startswith("reference-") and a.name != b.name
        assert ping(a, "vm1", "198.51.100.7").returncode == 0
        assert ping(b, "vm1", "198.51.100.7").returncode == 0
        a.down()
        assert ping(b, "db1", "10.0.0.11").returncode == 0
    assert not list(lab_dir.glob("*.json"))


def _fds():
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_leak_over_repeated_up_down(lab_dir):
    with Lab.up(topo_path("reference"), name=f"warm{PID}") as lab:  # imports, caches
        lab.capture("vm1", timeout=0.01).wait()
    before = _fds()
    for i in range(3):
        with Lab.up(topo_path("reference"), name=f"fd{i}-{PID}") as lab:
            assert ping(lab, "vm1", "10.0.0.12").returncode == 0
            lab.capture("vm1", timeout=0.01).wait()
    assert _fds() == before


CRASH_SCRIPT = """
import os, sys, time
sys.path.insert(0, {repo!r})
from ovnsim.lab import Lab, build
real = getattr(build, {hook!r})
count = [0]
def slow(*args):
    count[0] += 1
    if count[0] == 3:      # half-built
        open({flag!r}, "w").close()
        time.sleep(60)
    return real(*args)
setattr(build, {hook!r}, slow)
Lab.up("topologies/reference.yaml", name={name!r})
"""


# _ipr is first called once per namespace while they are made (the kill
# lands after two of seven); _build_endpoint once per endpoint namespace
# after bridges and veths exist.
@pytest.mark.parametrize("hook", ["_ipr", "_build_endpoint"])
def test_sigkill_mid_up_then_cleanup(lab_dir, tmp_path, hook):
    flag = tmp_path / "half-built"
    name = f"crash{PID}"
    script = CRASH_SCRIPT.format(repo=str(REPO), flag=str(flag), hook=hook, name=name)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "the builder never got half way"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ledger = Ledger.load(name)
    names = [e["name"] for e in ledger.namespaces]
    made = [e for e in ledger.namespaces if netns_identity(e["name"]) is not None]
    assert made and (len(made) < len(names)) == (hook == "_ipr")
    # every namespace that exists has its identity recorded, even when killed while making them
    assert all(e["id"] == netns_identity(e["name"]) for e in made)
    assert Lab.attach(name).status()["state"] == "crashed"
    assert main(["lab", "cleanup"]) == 0
    assert all(netns_identity(n) is None for n in names)
    assert not (lab_dir / f"{name}.json").exists()
    assert main(["lab", "cleanup"]) == 0  # idempotent


def test_down_after_the_kernel_lost_the_objects(lab_dir):
    from ovnsim.lab import netns

    lab = Lab.up(topo_path("reference"), name=f"lost{PID}")
    for entry in lab.ledger.namespaces:  # as after a reboot
        netns.delete_namespace(entry["name"])
    assert lab.status()["state"] == "degraded"
    assert lab.down() == []
    assert not (lab_dir / f"lost{PID}.json").exists()


def test_look_alikes_survive_cleanup_all(lab_dir):
    from ovnsim.lab import netns

    lab = Lab.up(topo_path("reference"), name=f"look{PID}")
    victim = lab.plan.namespace("vm:vm1").name
    outsider = f"ovnsim-look{PID}-vm-outsider"  # the lab's prefix, not in its ledger
    made = []
    try:
        netns.create_namespaces([outsider], made.append, lambda _n: None)
        # A namespace that took the name of one the lab lost.
        netns.delete_namespace(victim)
        netns.create_namespaces([victim], made.append, lambda _n: None)
        assert main(["lab", "cleanup", "--all"]) == 0
        assert netns_identity(outsider) is not None
        assert netns_identity(victim) is not None
        others = [ns.name for ns in lab.plan.namespaces if ns.name != victim]
        assert all(netns_identity(n) is None for n in others)
    finally:
        for name in made:
            if netns_identity(name) is not None:
                netns.delete_namespace(name)


def test_up_refuses_a_taken_name_and_leaves_it(lab_dir):
    from ovnsim.lab import netns

    made = []
    taken = f"ovnsim-taken{PID}-sw"
    netns.create_namespaces([taken], made.append, lambda _n: None)
    try:
        with pytest.raises(LabError, match="exists already"):
            Lab.up(topo_path("reference"), name=f"taken{PID}")
        assert netns_identity(taken) is not None
        assert not (lab_dir / f"taken{PID}.json").exists()
    finally:
        netns.delete_namespace(taken)


@pytest.mark.parametrize("topo", [
    pytest.param(p.stem, marks=[pytest.mark.skipif(p.stem == "security-groups" and bool(bridge_conntrack_missing()),
                                                   reason=bridge_conntrack_missing())])
    for p in sorted((REPO / "topologies").glob("*.yaml")) if p.stem != "large"])
def test_every_example_topology_comes_up(lab_dir, topo):
    with Lab.up(topo_path(topo)) as lab:
        status = lab.status()
        assert status["state"] == "up" and not status["missing"]
        # every VM reaches its gateway, when something in the lab owns that address
        # (security-groups' lab1 has a gateway_ip on a subnet no router is attached to)
        # Ports in a security group are left to test_lab_security_groups.py (what
        # their groups allow, e.g. db1 sends only DNS, is what real OVN allows).
        owned = {a.split("/")[0] for link in lab.plan.links for a in link.addresses}
        filtered = {port for pg in compile_topology(load_topology(topo_path(topo))).port_groups for port in pg.ports}
        pinged = 0
        for port in lab.plan.ports:
            ns = next(n for n in lab.plan.namespaces if n.name == lab.plan.ports[port])
            if ns.role == "vm" and ns.routes and ns.routes[0][1][0] in owned and port not in filtered:
                assert ping(lab, port, ns.routes[0][1][0]).returncode == 0, (topo, port)
                pinged += 1
        assert pinged


def test_cli_replay_writes_per_port_pcaps(lab_dir, tmp_path, capsys):
    import json

    name = f"rep{PID}"
    assert main(["lab", "up", topo_path("reference"), "--name", name]) == 0
    out = tmp_path / "out"
    assert main(["lab", "replay", name, str(REPO / "pcaps" / "reference-mixed.pcap"), "--auto", "--out-dir", str(out),
                 "--json", "--settle", "0.3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames_in"] == summary["sent"] + summary["not_sent"] > 0
    assert sorted(p.name for p in out.iterdir()) == sorted(summary["files"].values())
    assert "provnet-public-tx.pcap" in summary["files"].values()  # SNATed traffic reached the upstream
    # a non-empty directory is refused without --force: one line, exit 2
    assert main(["lab", "replay", name, str(REPO / "pcaps" / "reference-mixed.pcap"), "--auto", "--out-dir", str(out)]) == 2
    assert main(["lab", "down", name]) == 0


def test_tcp_and_udp_probes(ref_lab):
    from ovnsim.lab.probe import probe_from

    for proto in ("tcp", "udp"):
        got = {r.destination: r for r in probe_from(ref_lab, "db1", ["10.0.0.11", "198.51.100.7"], proto, 5001)}
        assert got["10.0.0.11"].delivered == {"vm1"} and got["10.0.0.11"].answered
        # out through SNAT to the outside host's listener, and answered back
        assert got["198.51.100.7"].delivered == {"provnet-public"} and got["198.51.100.7"].answered
    closed = probe_from(ref_lab, "vm1", ["10.99.0.1"], "udp", 5001)[0]  # no route beyond the upstream
    assert not closed.answered
