"""The ``ovnsim`` command.

``ovnsim show TOPO``                   the logical topology, as ``ovn-nbctl show`` prints it
``ovnsim export nbctl TOPO``           the ovn-nbctl commands that build it in real OVN
``ovnsim graph TOPO --format dot``     a drawing (dot or mermaid)

Bad input of any kind ends with one line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ovnsim.errors import OvnsimError

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _load_logical(path: str):
    from ovnsim.compiler import compile_topology
    from ovnsim.loader import load_topology

    return compile_topology(load_topology(path))


def cmd_show(args: argparse.Namespace) -> int:
    from ovnsim.export.show import show_text

    sys.stdout.write(show_text(_load_logical(args.topology)))
    return EXIT_OK


def cmd_export_nbctl(args: argparse.Namespace) -> int:
    from ovnsim.export.nbctl import nbctl_script

    sys.stdout.write(nbctl_script(_load_logical(args.topology)))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from ovnsim.export.graph import logical_graph, to_dot, to_mermaid

    graph = logical_graph(_load_logical(args.topology))
    sys.stdout.write(to_dot(graph) if args.format == "dot" else to_mermaid(graph))
    return EXIT_OK


def _trace_one(sim, microflow: str, fmt: str) -> str:
    from ovnsim.microflow import parse_microflow
    from ovnsim.packet import parse_frame
    from ovnsim.trace import format_result

    flow = parse_microflow(microflow)
    result = sim.trace(microflow)
    return format_result(result, parse_frame(flow.to_frame()).fields(), fmt)


def cmd_trace(args: argparse.Namespace) -> int:
    import json

    from ovnsim.sim import Simulator

    sim = Simulator.from_file(args.topology)
    if args.flows:
        # One JSON object per line; a bad line carries its error and the run goes on.
        with open(args.flows, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                sim.reset()  # every flow is traced on a fresh network, as ovn-trace does
                try:
                    sys.stdout.write(_trace_one(sim, _strip_datapath(text), "json") + "\n")
                except OvnsimError as err:
                    sys.stdout.write(json.dumps({"line": number, "microflow": text, "error": str(err)}) + "\n")
        return EXIT_OK
    if not args.microflow:
        raise _usage_error("trace needs a MICROFLOW or --flows FILE")
    microflow = args.microflow[-1]
    sys.stdout.write(_trace_one(sim, microflow, args.format) + "\n")
    return EXIT_OK


def _strip_datapath(text: str) -> str:
    """Accept ovn-trace's optional leading DATAPATH word (``ovn-trace net1 'inport == ...'``)."""
    head, _, rest = text.partition(" ")
    if rest and "=" not in head and "&&" not in head:
        return rest.strip().strip("'\"") if rest.strip()[:1] in "'\"" else rest.strip()
    return text


def _usage_error(message: str) -> OvnsimError:
    return OvnsimError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovnsim",
        description="Emulate OVN's logical data path for Neutron-style topologies.",
    )
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
    graph.add_argument("--format", choices=("dot", "mermaid"), default="dot", help="output format (default dot)")
    graph.set_defaults(func=cmd_graph)

    trace = sub.add_parser("trace", help="trace a microflow (ovn-trace syntax) through the topology")
    trace.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    trace.add_argument("microflow", metavar="[DATAPATH] MICROFLOW", nargs="*",
                       help='e.g. \'inport == "vm1" && eth.src == ... && ip4.dst == ... && tcp.dst == 22\'')
    trace.add_argument("--format", choices=("minimal", "detailed", "json"), default="minimal",
                       help="output format (default minimal)")
    trace.add_argument("--flows", metavar="FILE", help="trace every microflow in FILE (one per line); prints JSON lines")
    trace.set_defaults(func=cmd_trace)
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
    except OSError as err:
        name = err.filename if err.filename is not None else ""
        print(f"ovnsim: error: {name}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
