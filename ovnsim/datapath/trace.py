"""Printing a :class:`~ovnsim.datapath.pipeline.Result` the way ovn-trace prints its traces.

``minimal``: per output, the header fields that changed and ``output("port");``
(ovn-trace ``--minimal``); drops as ``drop;`` with their disposition.
``detailed``: every stage visited, with OVN's table number, stage name,
priority, match and action, grouped by datapath and pipeline
(ovn-trace ``--detailed``).
``json``: the verdict (``ovnsim.sim.verdict``) with the trace.
"""

from __future__ import annotations

import json
from typing import Dict, List

from ovnsim.datapath.pipeline import Result
from ovnsim.sim import verdict

FORMATS = ("minimal", "detailed", "json")


def format_result(result: Result, input_fields: Dict[str, object], fmt: str) -> str:
    """``result`` in one of :data:`FORMATS`."""
    if fmt == "json":
        return json.dumps(verdict(result, with_trace=True), sort_keys=False)
    if fmt == "detailed":
        return format_detailed(result)
    return format_minimal(result, input_fields)


def format_minimal(result: Result, input_fields: Dict[str, object]) -> str:
    lines: List[str] = []
    for out in result.outputs:
        fields = out.packet.fields()
        if out.kind != "packet":
            lines.append(f"{out.kind} {{")
            indent = "    "
        else:
            indent = ""
        for name, value in fields.items():
            if input_fields.get(name) != value:
                lines.append(f"{indent}{name} = {value};")
        lines.append(f'{indent}output("{out.port}");')
        if indent:
            lines.append("};")
    for drop in result.drops:
        lines.append(f"drop; /* {drop.reason.label} at {drop.datapath} {drop.stage}"
                     f"{': ' + drop.detail if drop.detail else ''} */")
    return "\n".join(lines)


def format_detailed(result: Result) -> str:
    lines: List[str] = []
    where = None
    for event in result.trace:
        here = (event.datapath, event.pipeline, event.depth)
        if here != where:
            title = f"{event.pipeline}(dp=\"{event.datapath}\")"
            lines.extend(["", "    " * event.depth + title, "    " * event.depth + "-" * len(title)])
            where = here
        pad = "    " * event.depth
        prio = f", priority {event.priority}" if event.priority is not None else ""
        head = f"{pad}{event.table:2d}. {event.stage}{prio}"
        lines.append(f"{head}, match ({event.match})" if event.match else head)
        lines.append(f"{pad}    {event.action}")
    for out in result.outputs:
        lines.append(f'output("{out.port}") {out.kind}')
    for drop in result.drops:
        lines.append(f"drop at {drop.datapath} {drop.stage}: {drop.reason.label}"
                     f"{' (' + drop.detail + ')' if drop.detail else ''}")
    return "\n".join(lines).lstrip("\n")
