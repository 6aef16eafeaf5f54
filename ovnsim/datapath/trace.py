"""Traces: the engine's trace records rendered as OVN prints its flows, and printed as ovn-trace does.

The engine records one compact step per rule it applies (rule code,
datapath, depth, two values; see :class:`~ovnsim.datapath.engine.BatchResult`).
:class:`TraceRenderer` turns those records into
:class:`~ovnsim.sim.TraceEvent` objects by filling the rule's templates from
:mod:`ovnsim.northd.rules` with the record's values and the names and rows
of the engine's tables.

Printing a :class:`~ovnsim.sim.Result`:
``minimal``: per output, the header fields that changed and ``output("port");``
(ovn-trace ``--minimal``); drops as ``drop;`` with their disposition.
``detailed``: every stage visited, with OVN's table number, stage name,
priority, match and action, grouped by datapath and pipeline
(ovn-trace ``--detailed``).
``json``: the verdict (``ovnsim.sim.verdict``) with the trace.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Tuple

from ovnsim.northd.rules import CT_OUTCOMES, DHCP_RESULTS, PARSE_PROBLEMS, RULES, Rule
from ovnsim.northd.stages import STAGES, Drop
from ovnsim.northd.tables import int_to_ip, int_to_mac

if TYPE_CHECKING:  # pragma: no cover
    from ovnsim.sim import Result

FORMATS = ("minimal", "detailed", "json")

_FIELD = re.compile(r"\$\{([a-z_0-9]+)(?:\.([a-z_0-9]+))?\}")
_DROP_RULES = frozenset(i for i, rule in enumerate(RULES) if rule.drop is not None)
_CT_NEW = next(i for i, (name, _) in enumerate(CT_OUTCOMES) if name == "NEW")
_CT_COMMITTED = next(i for i, (name, _) in enumerate(CT_OUTCOMES) if name == "COMMITTED")


class _Port(NamedTuple):
    name: str
    mac: str

    def __str__(self) -> str:
        return self.name


class _Nat(NamedTuple):
    external_ip: str
    logical: str
    logical_ip: str
    external_mac: str


class _Route(NamedTuple):
    priority: int
    prefix: str
    src_ip: str
    src_mac: str
    outport: str


class _Snat(NamedTuple):
    priority: int
    priority1: int  #: the SNAT-zone variant of a DNAT-local destination (priority + 1)
    logical: str
    external_ip: str


class _Hop(NamedTuple):
    port: str
    mac: str


class _Net(NamedTuple):
    ip: str
    prefix: str


class _Martian(NamedTuple):
    ip: str
    broadcast: str


class _Dhcp(NamedTuple):
    port: str
    mac: str
    offerip: str
    server_id: str
    server_mac: str
    options: str
    trace_options: str


class _Acl(NamedTuple):
    priority: int  #: its flows' priority (the ACL's + 1000)
    match: str


class _Why(NamedTuple):
    """A drop ACL and the security group rule the dropped packet would need."""

    priority: int
    match: str
    text: str


#: ct_state flags of an ACL ct_next (the engine's ACT_* bits), in ovn-trace's order.
_CT_STATE_FLAGS = ((0x02, "new"), (0x04, "est"), (0x10, "rel"), (0x08, "rpl"), (0x20, "inv"), (0x01, "trk"))
_L4_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}


class Step(NamedTuple):
    """One rendered trace record: the rule, where, and its filled-in text."""

    rule: Rule
    datapath: str
    depth: int
    priority: Optional[int]
    match: str
    action: str
    detail: str
    writes: Tuple[Tuple[str, Optional[str]], ...]  #: the rule's writes, templates filled ("@" kept)


class TraceRenderer:
    """Renders an engine's trace records (the engine's tables give names and rows)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self._cache: Dict[tuple, Step] = {}
        #: (rule, depth, datapath, a, b) -> (its event or None, its drop's fields or None)
        self._results: Dict[tuple, tuple] = {}
        tables = engine.tables
        self.datapaths: List[str] = list(engine.datapath_names)
        self.ports: List[str] = list(engine.port_names)
        routers = list(tables.routers.values())
        self.n_switches = len(tables.switches)
        self.gw: List[str] = [""] * self.n_switches + [lr.gateway_port or "" for lr in routers]
        self.martians = [None] * self.n_switches + [lr.martian_sources for lr in routers]
        self.rports: List[_Port] = []
        for name in engine.router_port_names:
            lr = tables.routers[tables.router_of_port[name]]
            self.rports.append(_Port(name, int_to_mac(lr.ports[name].mac)))
        self.nats = [_Nat(int_to_ip(n.external_ip), str(n.logical), int_to_ip(n.logical.network),
                          int_to_mac(n.external_mac) if n.external_mac is not None else "")
                     for n in engine.nat_rows]
        self.routes = [_Route(r.priority, str(r.prefix), int_to_ip(r.src_ip), int_to_mac(r.src_mac), r.outport)
                       for r in engine.route_rows]
        self.rnets = [_Net(int_to_ip(ip), str(prefix)) for lr in routers for rp in lr.ports.values()
                      for ip, prefix in rp.networks]
        self.snats = [_Snat(prio, prio + 1, str(n.logical), int_to_ip(n.external_ip))
                      for prio, n in engine.snat_rows]
        self.dhcps = [_Dhcp(r.port, int_to_mac(r.mac), int_to_ip(r.offer_ip), int_to_ip(r.server_id),
                            int_to_mac(r.server_mac), r.text, r.trace_text) for r in engine.dhcp_rows]


        self.acls = [_Acl(row.priority, row.acl.match) for row in (getattr(engine, "acl_rows", None) or ())]

    # -- values ------------------------------------------------------------------

    def _value(self, kind: str, v: int, dp: int, other: int):
        if kind == "ip":
            return int_to_ip(v)
        if kind == "mac":
            return int_to_mac(v)
        if kind == "lsp":
            return self.ports[v]
        if kind == "lrp":
            return self.rports[v]
        if kind == "nat":
            return self.nats[v]
        if kind == "route":
            return self.routes[v]
        if kind == "snat":
            return self.snats[v]
        if kind == "portmac":
            return _Hop(self.rports[v >> 48].name, int_to_mac(v & 0xFFFFFFFFFFFF))
        if kind == "rnet":
            return self.rnets[v]
        if kind == "martian":
            ip, broadcast = self.martians[dp][v]
            return _Martian(int_to_ip(ip), int_to_ip(broadcast))
        if kind == "binding":
            return int_to_mac(v) if v else "no MAC binding"
        if kind == "ct":
            return _ct_text(v)
        if kind == "dhcp":
            return self.dhcps[v]
        if kind == "dhcp_result":
            return DHCP_RESULTS[v][1]
        if kind == "parse":
            return PARSE_PROBLEMS[v][1].format(n=other)
        if kind == "acl":
            return self.acls[v]
        if kind == "aclwhy":
            return self._why(v, other)
        if kind == "ctstate":
            return "|".join(name for bit, name in _CT_STATE_FLAGS if v & bit)
        return str(v)

    def _why(self, v: int, remote: int) -> _Why:
        """A drop ACL's record: the ACL and the rule missing_rule() names for the packet."""
        from ovnsim.nb.acls import missing_rule

        row = self.engine.acl_rows[v >> 48]
        port = self.ports[(v >> 32) & 0xFFFF]
        proto, code, l4 = (v >> 24) & 0xFF, (v >> 16) & 0xFF, v & 0xFFFF
        ip = int_to_ip(remote)
        fields: Dict[str, object] = {"ip4.src": ip, "ip4.dst": ip, "ip.proto": proto}
        if proto == 1:
            fields.update({"icmp4.type": l4, "icmp4.code": code})
        elif proto in _L4_NAMES:
            fields[f"{_L4_NAMES[proto]}.dst"] = l4
        stage = "ls_in_acl" if row.acl.direction == "from-lport" else "ls_out_acl"
        rule = missing_rule(self.engine.logical, port, stage, fields)
        return _Why(row.priority, row.acl.match, f"no security group rule allows it; it needs {rule.text()}")

    def context(self, rule: Rule, dp: int, a: int, b: int) -> Dict[str, object]:
        ctx: Dict[str, object] = {"dp": self.datapaths[dp], "gw": self.gw[dp]}
        for arg, v, other in zip(rule.args, (a, b), (b, a)):
            name, kind = arg.split(":")
            ctx[name] = self._value(kind, v, dp, other)
        return ctx

    def step(self, code: int, dp: int, depth: int, a: int, b: int) -> Step:
        """One record, rendered (cached: the same record renders to the same step)."""
        key = (code, dp, depth, a, b)
        done = self._cache.get(key)
        if done is None:
            if len(self._cache) >= 65536:
                self._cache.clear()
            done = self._cache[key] = self._render(code, dp, depth, a, b)
        return done

    def _render(self, code: int, dp: int, depth: int, a: int, b: int) -> Step:
        rule = RULES[code]
        ctx = self.context(rule, dp, a, b)
        prio = rule.priority
        if isinstance(prio, str):
            prio = int(fill(prio, ctx))
        writes = tuple((f, v if v is None or v == "@" else fill(v, ctx)) for f, v in rule.writes)
        if rule.name == "LR_IN_GET_ARP" and not b:
            writes = (("eth.dst", "00:00:00:00:00:00"),)  # no MAC binding: lr_in_arp_request takes over
        return Step(rule, self.datapaths[dp], depth, prio, fill(rule.match, ctx), fill(rule.actions, ctx),
                    fill(rule.detail, ctx), writes)

    def events_and_drops(self, batch) -> Tuple[list, list]:
        """The trace records of ``batch`` as a Result's trace events and drops (drops carry their detail).

        Each distinct record is rendered once (a repeated flow's steps are the
        same records): its event, frozen, is shared; each drop is a new DropRecord.
        """
        from ovnsim.sim import DropRecord

        events, drops = [], []
        results = self._results
        for record in batch.trace_records():
            key = record[1:]
            done = results.get(key)
            if done is None:
                done = self._result(key)
            event, drop = done
            if event is not None:
                events.append(event)
            if drop is not None:
                drops.append(DropRecord(*drop))
        return events, drops

    def drops(self, batch) -> list:
        """The drops of ``batch``, traced or not, as a Result's drops (from its drop arrays)."""
        from ovnsim.sim import DropRecord

        drops = []
        results = self._results
        for i in range(batch.n_drops):
            # a drop's record is its trace record's, at depth 0 (a drop's text has no depth)
            key = (batch.drop_rule[i], 0, batch.drop_datapath[i], batch.drop_a[i], batch.drop_b[i])
            done = results.get(key)
            if done is None:
                done = self._result(key)
            drops.append(DropRecord(*done[1]))
        return drops

    def _result(self, key: tuple) -> tuple:
        """Record ``key`` (rule, depth, datapath, a, b) rendered as (event or None, drop fields or None), cached."""
        if len(self._results) >= 65536:
            self._results.clear()
        rule, depth, dp, a, b = key
        done = self._results[key] = _event_and_drop(self._render(rule, dp, depth, a, b))
        return done

    def steps(self, batch, start: int = 0, stop: Optional[int] = None) -> List[Step]:
        """Records ``start:stop`` of ``batch`` (a BatchResult), rendered."""
        return [self.step(rule, dp, depth, a, b) for _frame, rule, depth, dp, a, b in batch.trace_records(start, stop)]


def fill(template: str, ctx: Dict[str, object]) -> str:
    """``template`` with every ``${name}`` / ``${name.attr}`` replaced from ``ctx``."""
    if "$" not in template:
        return template

    def one(m: "re.Match[str]") -> str:
        value = ctx[m.group(1)]
        if m.group(2):
            value = getattr(value, m.group(2))
        return str(value)

    return _FIELD.sub(one, template)


def _ct_text(v: int) -> str:
    code = v & 0xFF
    if code == _CT_COMMITTED and (v >> 24) & 1:
        return f"new connection committed, source port {(v >> 8) & 0xFFFF} (its reply tuple was another connection's)"
    if code != _CT_NEW:
        return CT_OUTCOMES[code][1]
    port = (v >> 8) & 0xFFFF
    field = "ip4.dst" if (v >> 25) & 1 else "ip4.src"
    text = f"new connection, {field} = {int_to_ip(v >> 32)}"
    return text + (f", source port {port}" if (v >> 24) & 1 else "")


def _event_and_drop(s: Step) -> tuple:
    """A rendered step as (its TraceEvent or None, its DropRecord's fields or None)."""
    from ovnsim.sim import TraceEvent

    stage = STAGES[s.rule.stage]
    event = None
    if s.rule.event:
        event = TraceEvent(s.depth, s.datapath, stage.name, stage.table, stage.pipeline,
                           s.priority, s.match, s.action, s.rule.name, s.writes)
    drop = None
    if s.rule.drop is not None:
        drop = (s.datapath, stage.name, Drop(s.rule.drop), s.detail)
    return event, drop


# -- printing -------------------------------------------------------------------


def format_result(result: "Result", input_fields: Dict[str, object], fmt: str) -> str:
    """``result`` in one of :data:`FORMATS`."""
    from ovnsim.sim import verdict

    if fmt == "json":
        return json.dumps(verdict(result, with_trace=True), sort_keys=False)
    if fmt == "detailed":
        return format_detailed(result)
    return format_minimal(result, input_fields)


#: Rules after which the frame goes to several ports (each copy from the state at the fork).
_FORKS = frozenset(("LS_IN_L2_ARP_ROUTER", "LS_IN_L2_ROUTER_SRC", "LS_IN_L2_MCAST", "LS_IN_UNKNOWN"))


def _is_terminal(event) -> bool:
    return event.rule == "LS_OUT_OUTPUT" or event.action == "drop;"


def output_writes(result: "Result") -> List[list]:
    """Per output (in ``result.outputs`` order), the writes of each step on that copy's path, in order.

    The trace is depth first: after a flood (a fork rule), each copy starts
    with a switch egress step at the fork's depth, from the state at the fork.
    """
    paths: List[list] = []
    cur: list = []
    forks: List[Tuple[int, str, list]] = []
    prev = None
    for e in result.trace:
        if prev is not None and e.stage.startswith("ls_out_") and prev.rule not in _FORKS and (
                prev.depth > e.depth or (prev.depth == e.depth and _is_terminal(prev))):
            fork = next((f for f in reversed(forks) if f[0] == e.depth and f[1] == e.datapath), None)
            if fork is not None:
                cur = list(fork[2])
        if e.writes:
            cur.append(e.writes)
        if e.rule in _FORKS:
            forks.append((e.depth, e.datapath, list(cur)))
        if e.rule == "LS_OUT_OUTPUT":
            paths.append(list(cur))
        prev = e
    return paths


def format_minimal(result: "Result", input_fields: Dict[str, object]) -> str:
    """ovn-trace ``--minimal``: per output the actions that set header fields, in OVN's order, then ``output``.

    From the trace: every field the rules on the copy's path set, in the
    order they set it (``ip.ttl--`` per hop); a generated packet (``icmp4``,
    ``arp``, ``tcp_reset``) opens a block as ovn-trace prints it.  NAT (ct_snat,
    ct_dnat) shows as the field it set, not as ovn-trace's nested ct blocks.
    Fields that changed on the way without a rule that says so (conntrack's
    source port) follow.  Drops as ``drop;`` with their disposition.
    """
    lines: List[str] = []
    paths = output_writes(result) if result.trace else []
    for i, out in enumerate(result.outputs):
        fields = out.fields()
        steps = paths[i] if i < len(paths) else [tuple((name, "@") for name in fields)]
        flat = [w for step in steps for w in step]
        # An "@" write shows the output's value: only the last write of a field can claim it.
        last = {field: k for k, (field, _value) in enumerate(flat)}
        indent, block, written, cur, k = "", False, set(), dict(input_fields), -1
        for step in steps:
            before = dict(cur)
            for field, value in step:
                k += 1
                if field == "{":
                    lines.append(f"{indent}{value} {{")
                    indent, block = indent + "    ", True
                    continue
                if field == "!":
                    lines.append(f"{indent}{value}")
                    continue
                written.add(field)
                if value is None:
                    lines.append(f"{indent}{field}--;")
                    if isinstance(cur.get(field), int):
                        cur[field] -= 1
                    continue
                if value.startswith("<"):
                    value = before.get(value[1:])
                elif value == "@":
                    if last[field] != k:
                        continue
                    value = fields.get(field)
                    if not block and cur.get(field) == value:
                        continue
                if value is None:
                    continue
                lines.append(f"{indent}{field} = {value};")
                cur[field] = value
        for field, value in fields.items():
            if field not in written and input_fields.get(field) != value and not block:
                lines.append(f"{field} = {value};")
        lines.append(f'{indent}output("{out.port}");')
        while indent:
            indent = indent[:-4]
            lines.append(f"{indent}}};")
    for drop in result.drops:
        lines.append(f"drop; /* {drop.reason.label} at {drop.datapath} {drop.stage}"
                     f"{': ' + drop.detail if drop.detail else ''} */")
    return "\n".join(lines)


def format_detailed(result: "Result") -> str:
    """ovn-trace ``--detailed``: every stage visited, by datapath and pipeline; outputs and drops."""
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
