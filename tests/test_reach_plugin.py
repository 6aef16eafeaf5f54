"""The pytest plugin, run in pytester sandboxes: fixtures, assertions, soft mode, what a failure shows."""

import shutil
from pathlib import Path

import pytest

# imported here, before pytester snapshots sys.modules: its in-process runs
# unload what they imported, and numpy cannot be loaded twice in a process
import ovnsim.neutron.loader  # noqa: F401
import ovnsim.testing.plugin  # noqa: F401
import scapy.all  # noqa: F401
import yaml  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "topologies" / "reference.yaml"


@pytest.fixture
def sandbox(pytester, request):
    shutil.copy(REF, pytester.path / "reference.yaml")
    shutil.copy(REF.parent / "security-groups.yaml", pytester.path / "security-groups.yaml")
    # the entry point loads the plugin when ovnsim is installed; from a source tree, name it
    loaded = request.config.pluginmanager.has_plugin("ovnsim")
    pytester.plugin_args = [] if loaded else ["-p", "ovnsim.testing.plugin"]
    return pytester


def run(sandbox, *args):
    return sandbox.runpytest_inprocess(*sandbox.plugin_args, "-p", "no:cacheprovider", *args)


def test_the_three_readme_examples_pass(sandbox):
    sandbox.makepyfile(test_net="""
        import pytest
        from ovnsim.testing import assert_fip, assert_isolated, assert_reachable, assert_snat

        pytestmark = pytest.mark.ovn_topology("reference.yaml")

        def test_web_reaches_db(ovn_topology):
            assert_reachable("vm1", "db1", proto="tcp/22")

        @pytest.mark.ovn_topology("security-groups.yaml")
        def test_db_not_reachable_from_the_internet(ovn_topology):
            assert_isolated("outside", "db1", proto="tcp/5432")  # its security group admits web only

        def test_vm2_leaves_as_its_floating_ip(ovn_topology):
            assert_fip("vm2", "172.24.4.100")
            assert_snat("vm1", via="172.24.4.10")
    """)
    run(sandbox).assert_outcomes(passed=3)


def test_failure_message_is_the_evidence(sandbox):
    sandbox.makepyfile(test_net="""
        import pytest
        from ovnsim.testing import assert_reachable

        @pytest.mark.ovn_topology("reference.yaml")
        def test_router_ssh(ovn_topology):
            assert_reachable("vm1", "172.24.4.10", proto="tcp/22")
    """)
    result = run(sandbox)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        '*assert_reachable("vm1", "172.24.4.10", proto="tcp/22")*',  # the user's line, not the plugin's
        "*expected vm1 -> 172.24.4.10 tcp/22 reachable, got:*",
        "*vm1 -> router router1 172.24.4.10 tcp/22: NOT reachable*",
        "*forward path: vm1 -> neutron-web -> neutron-router1 -> join-router1 -> gr-router1*",
        "*blocked: forward router-address at gr-router1 lr_in_arp_resolve (priority 2, match (ip4.dst == {172.24.4.10}), action (drop;))*",
        "*trace to the blocking stage:*",
    ])
    assert "plugin.py" not in result.stdout.str()  # __tracebackhide__


def test_soft_failures_are_reported_together(sandbox):
    sandbox.makepyfile(test_net="""
        from ovnsim.testing import assert_isolated, assert_snat

        def test_soft(ovn_topology):
            assert_isolated("vm1", "db1", proto="icmp", soft=True)
            assert_snat("vm2", via="172.24.4.10", soft=True)
            assert_snat("vm1", via="172.24.4.10", soft=True)   # holds
    """)
    result = run(sandbox, "--ovn-topology", "reference.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*2 soft assertion(s) failed:*",
        "*expected vm1 -> db1 icmp isolated, got:*",
        "*expected vm2 -> outside tcp/443 reachable and seen as 172.24.4.10, got:*",
        "*outside saw the sender as 172.24.4.100*",
    ])


def test_ini_option_and_ovn_sim_assert_packets(sandbox):
    sandbox.makeini("[pytest]\novn_topology = reference.yaml\n")
    sandbox.makepyfile(test_net="""
        from scapy.layers.l2 import Ether
        from scapy.layers.inet import IP, TCP
        from ovnsim.testing import assert_packets

        def test_routed(ovn_sim):
            frame = Ether(src="fa:16:3e:00:00:11", dst="fa:16:3e:fe:49:48") / IP(src="10.0.0.11", dst="10.0.1.21", ttl=64) / TCP(sport=1, dport=22)
            ovn_sim.inject("vm1", frame)
            expected = Ether(src="fa:16:3e:00:00:00", dst="fa:16:3e:00:01:21") / IP(src="10.0.0.11", dst="10.0.1.21", ttl=63) / TCP(sport=1, dport=22)
            assert_packets("db1", expected, ignore=("eth.src",))
            assert_packets("vm2", [])

        def test_wrong_ttl(ovn_sim):
            frame = Ether(src="fa:16:3e:00:00:11", dst="fa:16:3e:fe:49:48") / IP(src="10.0.0.11", dst="10.0.1.21", ttl=64) / TCP(sport=1, dport=22)
            ovn_sim.inject("vm1", frame)
            assert_packets("db1", frame, ignore=("eth.src", "eth.dst"))
    """)
    result = run(sandbox)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*port db1: expected 1 frame(s), 1 left it*", "*#0: ip.ttl: expected 64, got 63*"])


def test_no_topology_is_a_usage_error(sandbox):
    sandbox.makepyfile(test_net="""
        def test_x(ovn_topology):
            pass
    """)
    result = run(sandbox)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ovn_topology fixture needs a topology*"])


def test_disabled_with_p_no(sandbox):
    sandbox.makepyfile(test_net="""
        def test_x(ovn_topology):
            pass
    """)
    if sandbox.plugin_args:  # loaded by name: -p no:<module name> turns it off
        result = sandbox.runpytest_inprocess("-p", "no:ovnsim.testing.plugin", "-p", "no:cacheprovider")
    else:
        result = sandbox.runpytest_inprocess("-p", "no:ovnsim", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'ovn_topology' not found*"])


def test_entry_point_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.entry-points.pytest11]\n' in text
    assert 'ovnsim = "ovnsim.testing.plugin"' in text
