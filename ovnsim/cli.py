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

    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
