"""The matrix printed (table, JSON, CSV, HTML) and two matrices compared (``--diff``)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ovnsim.reach.matrix import REACHABLE, SELF, Cell, Matrix

__all__ = ["format_matrix", "diff_matrices", "CellChange", "FORMATS"]

FORMATS = ("table", "json", "csv", "html")


def _blocker_key(m: Matrix, p: int, s: int, d: int) -> Tuple:
    return (int(m.status[p, s, d]), int(m.disposition[p, s, d]), int(m.datapath[p, s, d]), int(m.stage[p, s, d]),
            int(m.left[p, s, d]))


def format_table(m: Matrix) -> str:
    """One grid per protocol: ``+`` reachable, a letter per distinct blocker (explained below the grids)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    legend: Dict[Tuple, str] = {}
    described: Dict[str, str] = {}
    width = max([len(s.label) for s in m.sources] + [6])
    lines: List[str] = []
    for p, proto in enumerate(m.protos):
        lines.append(f"{proto}: rows send, columns receive ({', '.join(d.label for d in m.dests)})")
        for s, src in enumerate(m.sources):
            row = []
            for d in range(len(m.dests)):
                st = int(m.status[p, s, d])
                if st == SELF:
                    row.append("-")
                elif st == REACHABLE:
                    row.append("+")
                else:
                    key = _blocker_key(m, p, s, d)
                    if key not in legend:
                        letter = letters[len(legend)] if len(legend) < len(letters) else "?"
                        legend[key] = letter
                        described[letter] = m.cell(p, s, d).describe()
                    row.append(legend[key])
            lines.append(f"  {src.label:<{width}} {''.join(row)}")
        lines.append("")
    lines.append("+ reachable both ways   - the port itself")
    for letter, text in described.items():
        lines.append(f"{letter} {text}")
    return "\n".join(lines) + "\n"


def format_json(m: Matrix) -> str:
    """Every cell as a JSON object, with the sources, destinations and protocols."""
    return json.dumps({"topology": m.reach.topology.name, "protocols": [str(p) for p in m.protos],
                       "sources": [s.label for s in m.sources], "destinations": [d.label for d in m.dests],
                       "cells": [c.as_dict() for c in m.cells()]}, indent=1) + "\n"


def format_csv(m: Matrix) -> str:
    """One CSV row per cell, with a header."""
    out = io.StringIO()
    fields = ["src", "dst", "proto", "reachable", "seen_as", "direction", "disposition", "datapath", "stage",
              "left_on"]
    w = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for c in m.cells():
        w.writerow(c.as_dict())
    return out.getvalue()


def format_matrix(m: Matrix, fmt: str) -> str:
    """The matrix in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "html":
        from ovnsim.reach.html import format_html

        return format_html(m)
    return {"table": format_table, "json": format_json, "csv": format_csv}[fmt](m)


@dataclass(frozen=True)
class CellChange:
    """A cell whose answer differs between two versions of a topology."""

    key: Tuple[str, str, str]
    old: Optional[Cell]
    new: Optional[Cell]

    @property
    def reason(self) -> str:
        """What changed, in words: now blocked where, no longer blocked, seen as another address."""
        old, new = self.old, self.new
        if old is None:
            return f"new cell: {new.describe()}"
        if new is None:
            return f"cell gone (was {old.describe()})"
        if old.reachable and not new.reachable:
            return f"now blocked: {new.describe()}"
        if new.reachable and not old.reachable:
            return f"no longer blocked (was {old.describe()}); seen as {new.seen_as}"
        if old.reachable:
            return f"seen as {new.seen_as}, was {old.seen_as}"
        return f"blocked elsewhere: {new.describe()} (was {old.describe()})"

    def __str__(self) -> str:
        src, dst, proto = self.key
        return f"{src} -> {dst} {proto}: {self.reason}"


def _comparable(c: Cell) -> Tuple:
    return (c.reachable, c.seen_as, c.direction, c.disposition, c.datapath, c.stage, c.left_on)


def diff_matrices(old: Matrix, new: Matrix) -> List[CellChange]:
    """Every cell whose answer changed (verdict, address seen, or where it is blocked), in ``new``'s order."""
    before = {c.key: c for c in old.cells()}
    changes = []
    seen = set()
    for c in new.cells():
        seen.add(c.key)
        o = before.get(c.key)
        if o is None or _comparable(o) != _comparable(c):
            changes.append(CellChange(c.key, o, c))
    for key, o in before.items():
        if key not in seen:
            changes.append(CellChange(key, o, None))
    return changes
