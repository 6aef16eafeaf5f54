"""Reachability on a lab: ``reach(lab, ...)``, and the plugin's ``--ovn-backend emulator|lab|both``.

The plugin runs in pytester subprocesses (labs are namespaces and threads:
kept out of this process).  Root-only tests carry the ``root`` mark.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ovnsim.lab.build import bridge_conntrack_missing
from ovnsim.reach import reach

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
TOPOS = ROOT / "topologies"
LABS_OK = os.geteuid() == 0 and shutil.which("nft") is not None

README_TESTS = """
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
"""


@pytest.fixture
def sandbox(pytester, monkeypatch, run_labs):
    for name in ("reference.yaml", "multi-router.yaml", "security-groups.yaml"):
        shutil.copy(TOPOS / name, pytester.path / name)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return pytester  # the inner runs inherit $OVNSIM_LAB_DIR: run_labs


def _plugin_args():
    """``-p ovnsim.testing.plugin`` from a source tree; nothing where ovnsim is installed, whose
    ``pytest11`` entry point loads it already (naming it twice is refused: registered twice)."""
    from importlib.metadata import entry_points

    eps = entry_points()
    group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
    if any(ep.name == "ovnsim" for ep in group) and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    return ["-p", "ovnsim.testing.plugin"]


def run(sandbox, *args):
    return sandbox.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "-rs", *args)


@pytest.mark.parametrize("backend", ["lab", "both"])
@pytest.mark.root
@pytest.mark.skipif(not LABS_OK, reason="labs need root and nftables")
def test_readme_examples_pass_on_a_lab(sandbox, backend, run_labs):
    sandbox.makepyfile(test_net=README_TESTS)
    result = run(sandbox, f"--ovn-backend={backend}")
    result.assert_outcomes(passed=3)
    # one lab for the file's three tests, torn down when the session ended
    assert not list(run_labs.glob("*.json"))


SESSION_LAB_TEST = """
    import pytest
    from ovnsim.testing import assert_reachable
    from ovnsim.testing import plugin

    def test_the_session_lab_keeps_its_ledger_in_the_runs_directory(ovn_topology):
        assert_reachable("vm1", "db1", proto="tcp/22")
        (lab,) = plugin._labs.values()
        print("LEDGER", lab.ledger.path)
"""


@pytest.mark.root
@pytest.mark.skipif(not LABS_OK, reason="labs need root and nftables")
def test_the_lab_backend_keeps_its_session_labs_in_the_runs_directory(sandbox, monkeypatch):
    """Without $OVNSIM_LAB_DIR the backend's labs keep their ledgers in the run's directory
    under /run/ovnsim/runs (found by `ovnsim lab cleanup` if the run is killed), and a run that
    ends cleanly leaves nothing there."""
    from ovnsim.lab.runs import runs_root

    monkeypatch.delenv("OVNSIM_LAB_DIR")
    sandbox.makepyfile(test_net=SESSION_LAB_TEST)
    result = run(sandbox, "--ovn-backend=lab", "-s", "--ovn-topology=reference.yaml")
    result.assert_outcomes(passed=1)
    (line,) = [line for line in result.outlines if "LEDGER " in line]
    ledger = Path(line.split("LEDGER ", 1)[1].strip())
    assert runs_root() in ledger.parents and ledger.parent.name.startswith("session-"), ledger
    assert not ledger.exists() and not ledger.parent.parent.exists(), "the run's directory is gone"


@pytest.mark.root
@pytest.mark.skipif(not LABS_OK, reason="labs need root and nftables")
def test_both_fails_where_the_lab_and_the_emulator_disagree(sandbox):
    """multi-router's app1 leaves without SNAT: the emulator's outside answers, the lab's upstream has no route back."""
    sandbox.makepyfile(test_net="""
        import pytest
        from ovnsim.testing import assert_reachable

        pytestmark = pytest.mark.ovn_topology("multi-router.yaml")

        def test_app1_outside(ovn_topology):
            assert_reachable("app1", "outside", proto="icmp")

        def test_web1_outside(ovn_topology):
            assert_reachable("web1", "outside", proto="icmp")
    """)
    result = run(sandbox, "--ovn-backend=both")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*app1 -> outside icmp: the emulator and the lab disagree*",
                                 "*emulator: app1 -> outside icmp: reachable*",
                                 "*lab:      app1 -> outside icmp: NOT reachable (lab)*",
                                 "*no reply came back*"])
    # the emulator alone says reachable; the lab alone says not
    run(sandbox, "--ovn-backend=emulator").assert_outcomes(passed=2)
    run(sandbox, "--ovn-backend=lab").assert_outcomes(passed=1, failed=1)


@pytest.mark.parametrize("backend", ["lab", "both"])
def test_lab_backends_skip_with_the_reason_without_root(sandbox, backend):
    sandbox.makepyfile(test_net=README_TESTS)
    sandbox.makeconftest("""
        import os
        os.geteuid = lambda: 1000
    """)
    result = run(sandbox, f"--ovn-backend={backend}")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*--ovn-backend needs labs: labs need root*"])


def test_emulator_is_the_default_backend_and_a_bad_one_is_refused(sandbox):
    sandbox.makepyfile(test_net=README_TESTS)
    sandbox.makeconftest("""
        import os
        os.geteuid = lambda: 1000   # no lab could be built: the emulator answers
    """)
    run(sandbox).assert_outcomes(passed=3)
    sandbox.makeini("[pytest]\novn_backend = both\n")
    run(sandbox).assert_outcomes(skipped=3)  # the ini option selects it too
    result = run(sandbox, "--ovn-backend=kernel")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--ovn-backend*invalid choice*kernel*"])


@pytest.mark.root
@pytest.mark.skipif(not LABS_OK, reason="labs need root and nftables")
def test_ovn_lab_fixture_labs_answer_assertions(sandbox):
    sandbox.makepyfile(test_net=f"""
        from ovnsim.testing import assert_isolated, assert_reachable

        def test_on_the_lab(ovn_lab):
            lab = ovn_lab("reference.yaml", name="ptfix{os.getpid()}")
            assert_reachable("vm1", "db1", proto="tcp/22", net=lab)
            assert_isolated("outside", "db1", proto="icmp", net=lab)
            assert assert_reachable("vm1", "db1", proto="icmp").backend == "lab"  # the fixture's lab answers

        def test_net_path_follows_the_backend(ovn_lab):
            assert assert_reachable("vm1", "db1", proto="icmp", net="reference.yaml").backend == "emulator"
    """)
    result = sandbox.runpytest_subprocess(*_plugin_args(), "-p", "ovnsim.lab.pytest_plugin",
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.root
@pytest.mark.skipif(not LABS_OK, reason="labs need root and nftables")
def test_reach_on_a_lab_answers_as_the_emulator(run_labs):
    from ovnsim.lab import Lab

    path = str(TOPOS / "reference.yaml")
    # (not outside -> a fixed IP: the emulator's upstream routes tenant subnets to the router, the
    # lab's has no such route -- docs/lab.md, test_lab_differences.py)
    questions = [("vm1", "db1", "tcp/22"), ("vm1", "outside", "icmp"), ("outside", "172.24.4.100", "tcp/22"),
                 ("db1", "outside", "udp/53"), ("vm1", "10.0.0.1", "icmp"), ("outside", "172.24.4.10", "udp/53")]
    with Lab.up(path, name=f"rq{os.getpid()}") as lab:
        answers = [(reach(lab, *q), reach(path, *q)) for q in questions]
    for on_lab, emulated in answers:
        assert on_lab.backend == "lab" and emulated.backend == "emulator"
        assert on_lab.reachable == emulated.reachable, on_lab.explain()
        if emulated.reachable:
            assert (on_lab.seen_as, on_lab.delivered_port) == (emulated.seen_as, emulated.delivered_port)
    assert [a.reachable for a, _ in answers] == [True, True, True, True, True, False]
    assert answers[1][0].seen_as == "172.24.4.10"  # SNAT, seen where the request arrived in the lab
    blocked = answers[-1][0]
    # gr-router1 drops UDP to its own address (lr_in_ip_input), the lab's router namespace too (nftables)
    assert blocked.blocker.direction == "forward" and "the router did not answer" in blocked.blocker.detail
    assert answers[-1][1].blocker.direction == "forward"


@pytest.mark.root
@pytest.mark.skipif(not LABS_OK, reason="labs need root and nftables")
def test_reach_cli_on_a_lab(tmp_path, monkeypatch, capsys, run_labs):
    from ovnsim.cli import main
    from ovnsim.lab import Lab

    monkeypatch.chdir(tmp_path)  # the lab's topology file is found from any directory
    with Lab.up(str(TOPOS / "reference.yaml"), name=f"rc{os.getpid()}") as lab:
        assert main(["reach", "--lab", lab.name, "vm1", "outside", "--proto", "icmp"]) == 0
        assert "reachable (lab)" in capsys.readouterr().out
        assert main(["reach", "--lab", lab.name, "outside", "db1", "--proto", "tcp/22"]) == 1
        assert "NOT reachable (lab)" in capsys.readouterr().out
        assert main(["reach", "--lab", lab.name]) == 2
        assert main(["reach", "--lab", lab.name, "vm1", "outside:192.0.2.9"]) == 2
        err = capsys.readouterr().err
        assert "give SRC DST" in err and "holds only 198.51.100.7, 172.24.4.1" in err
    assert main(["reach", "--lab", "no-such-lab", "vm1", "db1"]) == 2
    assert "no lab named 'no-such-lab'" in capsys.readouterr().err


@pytest.mark.root
@pytest.mark.skipif(not LABS_OK or bool(bridge_conntrack_missing()),
                    reason=bridge_conntrack_missing() or "labs need root and nftables")
def test_both_backends_agree_on_security_groups(sandbox):
    """The emulator's ACL stages and the lab's nftables give the same answers, replies and stateless groups too."""
    sandbox.makepyfile(test_sg="""
        import pytest
        from ovnsim.testing import assert_isolated, assert_reachable

        pytestmark = pytest.mark.ovn_topology("security-groups.yaml")

        @pytest.mark.parametrize("src,dst,proto", [
            ("web2", "db1", "tcp/5432"), ("outside", "172.24.4.120", "tcp/22"), ("app1", "sl1", "udp/5001"),
            ("web1", "fw1", "tcp/9999"), ("db1", "outside", "udp/53"), ("app1", "web2", "icmp")])
        def test_allowed(ovn_topology, src, dst, proto):
            assert_reachable(src, dst, proto=proto)

        @pytest.mark.parametrize("src,dst,proto", [
            ("app1", "db1", "tcp/5432"), ("outside", "172.24.4.120", "tcp/80"), ("db1", "web1", "tcp/80"),
            ("app1", "sl1", "udp/6000"), ("lab1", "web1", "icmp"),
            ("sl1", "web2", "tcp/80")])   # delivered, but the stateless group drops web2's reply
        def test_blocked(ovn_topology, src, dst, proto):
            assert_isolated(src, dst, proto=proto)
    """)
    run(sandbox, "--ovn-backend=both").assert_outcomes(passed=12)


WITH_EXPECT = sorted(p.stem for p in TOPOS.glob("*.yaml") if p.stem != "large" and "\nexpect:" in p.read_text())


@pytest.mark.parametrize("topo", WITH_EXPECT)
@pytest.mark.root
@pytest.mark.skipif(not LABS_OK or bool(bridge_conntrack_missing()),
                    reason=bridge_conntrack_missing() or "labs need root and nftables")
def test_check_on_a_lab_holds_as_in_the_emulator(topo, capsys, run_labs):
    """Every example's expect: block holds in its lab too -- but where docs/lab.md lists a Linux difference:
    multi-router's app network leaves without SNAT, and the lab's upstream has no route back to it."""
    from ovnsim.cli import main
    from ovnsim.lab import Lab

    path = str(TOPOS / f"{topo}.yaml")
    assert main(["check", path]) == 0  # the emulator
    capsys.readouterr()
    with Lab.up(path, name=f"ck{os.getpid()}-{topo}"[:32]) as lab:
        rc = main(["check", path, "--lab", lab.name])
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    if topo == "multi-router":
        assert rc == 1 and len(failed) == 1 and "app1 -> outside tcp/443 reachable via 10.10.0.11" in failed[0]
        assert "return no-reply" in failed[0]
    else:
        assert rc == 0 and not failed
