"""The rule catalogue (ovnsim.northd.rules) and the C engine's codes generated from it."""

from __future__ import annotations

from pathlib import Path

from ovnsim.northd.rules import RULE_CODE, RULES, STAGE_CODE, generate_pxi
from ovnsim.northd.stages import Drop

PXI = Path(__file__).resolve().parent.parent / "ovnsim" / "datapath" / "_rules.pxi"


def test_the_committed_rules_pxi_is_what_the_catalogue_generates():
    assert PXI.read_text(encoding="utf-8") == generate_pxi(), (
        "ovnsim/datapath/_rules.pxi is stale: run `python -m ovnsim.northd.rules` and rebuild")


def test_every_rule_names_a_stage_and_every_drop_disposition_but_engine_ones_has_a_rule():
    assert len(RULE_CODE) == len(RULES), "two rules share a name"
    assert all(rule.stage in STAGE_CODE for rule in RULES)
    dropped = {rule.drop for rule in RULES if rule.drop is not None}
    assert set(Drop) == dropped


def test_only_drops_are_silent_and_drop_rules_drop():
    for rule in RULES:
        if not rule.event:
            assert rule.drop is not None, rule.name
        if rule.drop is not None:
            assert rule.actions == "drop;", rule.name
