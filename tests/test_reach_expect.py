"""``expect:`` blocks and ``ovnsim check``: every example holds; failures and bad entries are reported."""

import glob
from pathlib import Path

import pytest

from ovnsim.cli import main
from ovnsim.errors import TopologyError
from ovnsim.reach.expect import check_file, load_expectations

EXAMPLES = sorted(glob.glob("topologies/*.yaml"))
REF = Path("topologies/reference.yaml")


@pytest.mark.parametrize("path", EXAMPLES)
def test_every_example_has_expectations_that_hold(path):
    report = check_file(path)
    assert report.outcomes, path
    assert report.ok, report.text()
    # both verdicts are exercised by the examples' blocks
    assert any(not o.expectation.reachable for o in report.outcomes) or path.endswith("dhcp-metadata.yaml")


def _variant(tmp_path, old, new):
    text = REF.read_text()
    assert old in text
    target = tmp_path / "variant.yaml"
    target.write_text(text.replace(old, new))
    return str(target)


def test_failing_expectation_exit_1_with_reason(tmp_path, capsys):
    path = _variant(tmp_path, "proto: tcp/443, via: 172.24.4.100", "proto: tcp/443, via: 172.24.4.99")
    rc = main(["check", path])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL  expect[4]: vm2 -> outside tcp/443 reachable via 172.24.4.99: seen as 172.24.4.100, " \
           "expected 172.24.4.99" in out
    assert "14 of 15 expectations hold, 1 fail" in out


def test_isolated_that_is_reachable_fails(tmp_path):
    path = _variant(tmp_path, "{from: db1, to: vm2, proto: [icmp, tcp/5432]}",
                    "{from: db1, to: vm2, proto: icmp, reachable: false}")
    report = check_file(path)
    (fail,) = report.failures
    assert fail.problem == "reachable (seen as 10.0.1.21), expected isolated"


@pytest.mark.parametrize("old,new,msg", [
    ("{from: db1, to: vm2,", "{from: db9, to: vm2,", "expect[1]: source: unknown port or address 'db9'"),
    ("proto: [icmp, tcp/5432]", "proto: [icmp, tcp/99999]", "expect[1].proto: protocol 'tcp/99999'"),
    ("{from: db1, to: vm2,", "{form: db1, to: vm2,", "expect[1]"),
])
def test_bad_entries_exit_2(tmp_path, capsys, old, new, msg):
    rc = main(["check", _variant(tmp_path, old, new)])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_no_expect_block(tmp_path):
    target = tmp_path / "none.yaml"
    target.write_text(REF.read_text().split("\nexpect:")[0])
    with pytest.raises(TopologyError, match="no expect: block"):
        check_file(str(target))
    assert load_expectations(str(target))[1] == []
