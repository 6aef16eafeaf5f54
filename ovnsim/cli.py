"""The ``ovnsim`` command.

``ovnsim show TOPO``                   the logical topology, as ``ovn-nbctl show`` prints it
``ovnsim export nbctl TOPO``           the ovn-nbctl commands that build it in real OVN
``ovnsim graph TOPO --format dot``     a drawing (dot or mermaid)
``ovnsim trace TOPO MICROFLOW``        what OVN does with one packet (ovn-trace syntax)
``ovnsim trace TOPO --from P --to X``  the same, the microflow built as ml2ovn-trace builds it
``ovnsim replay TOPO CAPTURE ...``     replay a capture: per-port pcaps, drops, a summary
``ovnsim reach TOPO [SRC DST]``         reachability: one question, or the matrix; ``--diff OLD NEW``
``ovnsim check TOPO``                  evaluate the file's ``expect:`` block
``ovnsim lab up|status|exec|capture|replay|down|cleanup``  real netns labs (docs/lab.md)
``ovnsim compare TOPO CAPTURE|MICROFLOW``  the same through a sandboxed real OVN too; the differences

Bad input of any kind ends with one line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Dict, List, Optional

from ovnsim.errors import OvnsimError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
#: Interrupted by SIGINT (Ctrl-C), as a shell reports it (128 + 2).
EXIT_INTERRUPTED = 130


def _load_logical(path: str):
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    return compile_topology(load_topology(path))


def cmd_show(args: argparse.Namespace) -> int:
    from ovnsim.nb.show import show_text

    sys.stdout.write(show_text(_load_logical(args.topology)))
    return EXIT_OK


def cmd_export_nbctl(args: argparse.Namespace) -> int:
    from ovnsim.nb.nbctl import nbctl_script

    sys.stdout.write(nbctl_script(_load_logical(args.topology)))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from ovnsim.nb.graph import logical_graph, to_dot, to_mermaid

    graph = logical_graph(_load_logical(args.topology))
    sys.stdout.write(to_dot(graph) if args.format == "dot" else to_mermaid(graph))
    return EXIT_OK


def cmd_trace(args: argparse.Namespace) -> int:
    from ovnsim.trace_cli import run

    return run(args, _trace_one, _split_datapath)


def _split_datapath(text: str):
    """Split ovn-trace's optional leading DATAPATH word off a ``--flows`` line.

    A microflow starts with a field name (``inport``, ``eth.src``, ...) or a
    protocol (``ip4``, ``tcp``); a first word that is followed by another
    word rather than by an operator is a datapath.
    """
    match = re.match(r"\s*([A-Za-z0-9_.:-]+)\s+(['\"]?)(.*?)\2\s*$", text)
    if match and not re.match(r"(==|!=|=|&&|\|\||<|>)", match.group(3)):
        return match.group(1), match.group(3)
    return None, text


def _trace_one(sim, microflow: str, fmt: str, datapath=None) -> str:
    from ovnsim.datapath._fastpath import frame_fields
    from ovnsim.datapath.microflow import parse_microflow
    from ovnsim.datapath.trace import format_result

    flow = parse_microflow(microflow)
    if datapath is not None:
        # As ovn-trace: the datapath must exist and hold the inport.
        names = {ls.name for ls in sim.logical.switches} | {lr.name for lr in sim.logical.routers}
        if datapath not in names:
            raise OvnsimError(f'unknown datapath "{datapath}"')
        if sim.tables.switch_of_port.get(flow.inport) != datapath:
            raise OvnsimError(f'inport "{flow.inport}" is not a port of datapath "{datapath}"')
    frame = flow.to_frame()
    result = sim.inject(flow.inport, frame, trace=True)
    return format_result(result, frame_fields(frame) or {}, fmt)


def _ct_timeouts(items: Optional[List[str]]) -> Dict[str, int]:
    """``--ct-timeout NAME=SECONDS`` (repeated) as a dict; a malformed one is a one-line error."""
    out: Dict[str, int] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise OvnsimError(f"--ct-timeout {item}: expected NAME=SECONDS (e.g. udp_first=30)")
        out[name.strip()] = int(value)
    return out


def cmd_replay(args: argparse.Namespace) -> int:
    from ovnsim.capture.replay import replay

    show_progress = sys.stderr.isatty() and not args.json and not args.no_progress
    summary = replay(args.topology, args.capture, args.out_dir, port=args.port, auto=args.auto,
                     engine=args.engine, force=args.force, trace_frame=args.trace,
                     trace_match=args.trace_match, trace_limit=args.trace_limit,
                     progress=sys.stderr if show_progress else None, interruptible=True,
                     verdicts=args.verdicts, only_from_port=args.only_from_port, ct_limit=args.ct_limit,
                     ct_timeouts=_ct_timeouts(args.ct_timeout))
    for warning in summary.warnings:
        print(f"ovnsim: warning: {warning}", file=sys.stderr)
    sys.stdout.write((summary.to_json() if args.json else summary.format_text()) + "\n")
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


# --- ovnsim compare (ovnsim.testing.compare) ---------------------------------

EXIT_DIFFERENT = 1


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare ovnsim with a sandboxed real OVN: exit 0 identical, 1 different, 2 bad input/no OVN."""
    from ovnsim.testing.compare import compare_capture, compare_microflow, looks_like_capture

    what = " ".join(args.what)
    if len(args.what) == 1 and looks_like_capture(what):
        report = compare_capture(args.topology, what)
    else:
        report = compare_microflow(args.topology, what)
    sys.stdout.write(report.text)
    return EXIT_OK if report.identical else EXIT_DIFFERENT


def _add_compare(sub) -> None:
    compare = sub.add_parser(
        "compare", help="compare ovnsim with a sandboxed real OVN (a capture, or a microflow vs ovn-trace)",
        description="With a CAPTURE (an existing pcap/pcapng file): replay it frame by frame through ovnsim "
                    "and through real OVN's whole data path (ovs-vswitchd with the dummy datapath and "
                    "ovn-controller, started in a temp dir) and report each frame whose per-port outputs "
                    "differ, side by side, with ovnsim's trace. With a MICROFLOW: trace it with ovnsim and "
                    "with ovn-trace. Needs OVN and OVS installed. Exit 0 when identical, 1 when not.")
    compare.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    compare.add_argument("what", metavar="CAPTURE|MICROFLOW", nargs="+",
                         help="a capture file, or an ovn-trace microflow")
    compare.set_defaults(func=cmd_compare)


def build_parser() -> argparse.ArgumentParser:
    from ovnsim import __version__
    from ovnsim.nb.graph import FORMATS as GRAPH_FORMATS
    from ovnsim.trace_cli import add_arguments as add_trace_arguments

    parser = argparse.ArgumentParser(
        prog="ovnsim",
        description="Emulate OVN's logical data path for Neutron-style topologies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    show = sub.add_parser("show", help="print the logical topology like ovn-nbctl show")
    show.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    show.set_defaults(func=cmd_show)

    export = sub.add_parser("export", help="export the logical topology for other tools")
    export_sub = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    nbctl = export_sub.add_parser("nbctl", help="ovn-nbctl commands, one invocation per line")
    nbctl.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    nbctl.set_defaults(func=cmd_export_nbctl)

    graph = sub.add_parser("graph", help="draw the logical topology")
    graph.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    graph.add_argument("--format", choices=GRAPH_FORMATS, default="dot", help="output format (default dot)")
    graph.set_defaults(func=cmd_graph)

    trace = sub.add_parser("trace", help="trace a microflow (ovn-trace syntax) through the topology")
    trace.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    trace.add_argument("microflow", metavar="[DATAPATH] MICROFLOW", nargs="*",
                       help='e.g. \'inport == "vm1" && eth.src == ... && ip4.dst == ... && tcp.dst == 22\'')
    trace.add_argument("--format", choices=("minimal", "detailed", "json"), default=None,
                       help="output format (default minimal; json with --flows)")
    trace.add_argument("--flows", metavar="FILE", help="trace every microflow in FILE (one per line), each printed "
                                                         "in --format (JSON lines carry line and microflow)")
    add_trace_arguments(trace)
    trace.set_defaults(func=cmd_trace)

    replay = sub.add_parser(
        "replay", help="replay a pcap/pcapng capture through the topology; write what leaves each port",
        description="Replay every frame of CAPTURE (pcap or pcapng: Ethernet or Linux cooked; - for standard "
                    "input) through TOPO with one engine "
                    "(conntrack persists across the capture) and write DIR/<port>-tx.pcap for every port that "
                    "emitted frames and DIR/drops.pcapng (each dropped frame, commented with its disposition, "
                    "datapath and stage). A capture cut short in its last record is replayed up to it; the "
                    "partial record counts as a dropped (malformed) frame, with a warning.")
    replay.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    replay.add_argument("capture", metavar="CAPTURE",
                        help="capture file (pcap or pcapng, link type Ethernet or Linux cooked), or - for "
                             "standard input "
                             "(e.g. tcpdump -w - ... | ovnsim replay TOPO - ...)")
    replay.add_argument("--out-dir", metavar="DIR", required=True,
                        help="where to write the per-port pcaps and drops.pcapng (created; must be empty or new)")
    ingress = replay.add_mutually_exclusive_group(required=True)
    ingress.add_argument("--port", metavar="P", help="every frame enters on logical port P")
    ingress.add_argument("--auto", action="store_true",
                         help="each frame enters on the port that owns its source MAC/IP (else a localnet port); "
                              "frames no port can take are dropped (no-ingress)")
    replay.add_argument("--only-from-port", action="store_true",
                        help="with --port P, for a capture of P's own interface (tcpdump -i tapXXX): only frames "
                             "whose source MAC is P's enter at P; frames P received are compared with what "
                             "ovnsim delivered to P (matched / mismatched counted), not injected")
    replay.add_argument("--engine", choices=("fast",), default=None,
                        help="the engine (the C engine, the only one; kept for scripts that name it)")
    replay.add_argument("--force", action="store_true",
                        help="replace the files of an earlier replay in a non-empty DIR")
    replay.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    replay.add_argument("--verdicts", metavar="FILE.jsonl",
                        help="write one JSON line per input frame: its number, ingress port, outputs (port, kind, "
                             "record number in the port's file) or its drop (disposition, datapath, stage, record "
                             "number in drops.pcapng)")
    replay.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    replay.add_argument("--trace", metavar="N", type=int,
                        help="also print the detailed trace of frame N (1-based), run by the reference pipeline "
                             "after it has replayed frames 1..N-1 (so conntrack state is carried; this costs the "
                             "reference pipeline's speed, about 20,000 frames/s, over those frames)")
    replay.add_argument("--trace-match", metavar="EXPR",
                        help="also trace the frames this microflow-style filter selects, e.g. "
                             "'inport == \"vm1\" && tcp && tcp.dst == 22' (a conjunction of protocol words and "
                             "FIELD == VALUE); the reference pipeline keeps in step with the replay until it has "
                             "traced --trace-limit frames, at its own speed")
    replay.add_argument("--ct-limit", metavar="N", type=int, default=None,
                        help="connections the conntrack table may hold (default: no limit); a new connection "
                             "beyond it is dropped as conntrack-full, as OVS drops one over a zone limit")
    replay.add_argument("--ct-timeout", metavar="NAME=SECONDS", action="append",
                        help="change a conntrack timeout (repeatable), by OVS's timeout-policy names: "
                             "tcp_syn_sent, tcp_syn_recv, tcp_established, tcp_fin_wait, tcp_time_wait, tcp_close, "
                             "udp_first, udp_single, udp_multiple, icmp_first, icmp_reply (defaults: OVS's "
                             "userspace datapath's); connections expire by the capture's timestamps")
    replay.add_argument("--trace-limit", metavar="N", type=int, default=10,
                        help="trace at most N frames selected by --trace-match (default 10)")
    replay.set_defaults(func=cmd_replay)

    # -- reachability (ovnsim/reach/cli.py): reach, check --------------------
    from ovnsim.reach.cli import add_parsers as add_reach_parsers

    add_reach_parsers(sub)
    # -- ovnsim lab ... (real network-namespace labs; ovnsim/lab/cli.py) --
    from ovnsim.lab.cli import add_lab_parser

    add_lab_parser(sub)
    _add_compare(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take positionals after an option when an earlier
    # positional is variadic (`trace TOPO --format json MICROFLOW`).
    if extra and getattr(args, "command", None) == "trace" and not any(e.startswith("-") for e in extra):
        args.microflow = list(args.microflow) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except OvnsimError as err:
        print(f"ovnsim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `ovnsim show ... | head`
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C outside a replay's loop (or a second one inside it)
        print("ovnsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        name = err.filename if err.filename is not None else ""
        print(f"ovnsim: error: {name}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
