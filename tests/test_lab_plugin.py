"""The opt-in ``ovn_lab`` fixture (ovnsim.lab.pytest_plugin), run in a pytester session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="labs need root and nftables")
def test_ovn_lab_fixture_builds_and_tears_down(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_inner=f"""
        import os
        def test_ping(ovn_lab):
            lab = ovn_lab({str(REPO / "topologies" / "reference.yaml")!r}, name="plugin{os.getpid()}")
            assert lab.exec("vm1", "ping", "-c1", "-W2", "10.0.1.21").returncode == 0
            open("namespaces.txt", "w").write("\\n".join(ns.name for ns in lab.plan.namespaces))
    """)
    result = pytester.runpytest_subprocess("-p", "ovnsim.lab.pytest_plugin", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    names = (pytester.path / "namespaces.txt").read_text().split()
    assert names and not any(os.path.exists(f"/run/netns/{n}") for n in names)


def test_ovn_lab_fixture_skips_with_the_reason_without_root(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_inner="""
        import os
        def test_x(ovn_lab, monkeypatch):
            pass
        """)
    pytester.makeconftest("""
        import os
        os.geteuid = lambda: 1000
        """)
    result = pytester.runpytest_subprocess("-p", "ovnsim.lab.pytest_plugin", "-q", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*labs need root*"])
