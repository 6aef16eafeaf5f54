"""``ovnsim reach`` and ``ovnsim check``: the command-line side of :mod:`ovnsim.reach`.

``ovnsim reach TOPO SRC DST [--proto P]``   one question: exit 0 reachable, 1 not, 2 bad input
``ovnsim reach TOPO [--proto LIST] [--format table|json|csv|html] [-o FILE]``   the matrix
``ovnsim reach --diff OLD NEW [--proto LIST]``   cells whose answer changed: exit 1 if any
``ovnsim reach --lab NAME SRC DST [--proto P]``   one question, answered by a running lab (real probes)
``ovnsim check TOPO [--lab NAME]``            the file's ``expect:`` block: exit 0 all hold, 1 some fail
"""

from __future__ import annotations

import argparse
import json
import sys

from ovnsim.errors import OvnsimError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _protos(text: str):
    from ovnsim.reach.endpoints import parse_proto

    return [parse_proto(p) for p in text.split(",") if p.strip()]


def _write(text: str, path) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def cmd_reach(args: argparse.Namespace) -> int:
    """``ovnsim reach``: one question, the matrix, or ``--diff``; the exit status says the verdict."""
    from ovnsim.reach.matrix import DEFAULT_PROTOCOLS, compute_matrix
    from ovnsim.reach.question import Reachability
    from ovnsim.reach.report import diff_matrices, format_matrix

    protos = _protos(args.proto) if args.proto else None
    if args.diff:
        if args.items:
            raise OvnsimError("reach --diff OLD NEW takes no other topology or endpoints")
        old = compute_matrix(args.diff[0], protos or DEFAULT_PROTOCOLS)
        new = compute_matrix(args.diff[1], protos or DEFAULT_PROTOCOLS)
        changes = diff_matrices(old, new)
        if args.format == "json":
            text = json.dumps([{"src": c.key[0], "dst": c.key[1], "proto": c.key[2], "reason": c.reason,
                                "old": c.old.as_dict() if c.old else None,
                                "new": c.new.as_dict() if c.new else None} for c in changes], indent=1) + "\n"
        else:
            text = "".join(f"{c}\n" for c in changes)
            text += f"{len(changes)} cell(s) changed\n"
        _write(text, args.output)
        return EXIT_FAILED if changes else EXIT_OK
    if args.lab:
        return _reach_on_lab(args, protos)
    if not args.items:
        raise OvnsimError("reach: give TOPO (and SRC DST for one question), or --diff OLD NEW")
    topo, rest = args.items[0], args.items[1:]
    if len(rest) == 1 or len(rest) > 2:
        raise OvnsimError("reach TOPO SRC DST: give both a source and a destination (or neither for the matrix)")
    if rest:
        r = Reachability(topo)
        answers = [r.ask(rest[0], rest[1], p) for p in (protos or _protos("tcp/22"))]
        return _answer(answers, args)
    m = compute_matrix(topo, protos or DEFAULT_PROTOCOLS)
    _write(format_matrix(m, args.format or "table"), args.output)
    return EXIT_OK


def _answer(answers, args: argparse.Namespace) -> int:
    """Write one question's answers (JSON or explained text); exit 0 when every one is reachable."""
    if args.format == "json":
        text = json.dumps([a.as_dict() for a in answers], indent=1) + "\n"
    else:
        text = "".join(a.explain() + "\n" for a in answers)
    _write(text, args.output)
    return EXIT_OK if all(answers) else EXIT_FAILED


def _reach_on_lab(args: argparse.Namespace, protos) -> int:
    """``ovnsim reach --lab NAME [TOPO] SRC DST``: one question, answered by a real probe in the running lab."""
    from ovnsim.lab.lab import Lab
    from ovnsim.reach.lab import LabReachability

    if args.diff or len(args.items) not in (2, 3):
        raise OvnsimError("reach --lab NAME: give SRC DST (TOPO SRC DST to name the topology file); "
                          "the matrix and --diff are the emulator's")
    topo = args.items[0] if len(args.items) == 3 else None
    r = LabReachability(Lab.attach(args.lab), topology=topo)
    answers = [r.ask(args.items[-2], args.items[-1], p) for p in (protos or _protos("tcp/22"))]
    return _answer(answers, args)


def cmd_check(args: argparse.Namespace) -> int:
    """``ovnsim check``: 0 when every expectation holds, 1 when one fails."""
    from ovnsim.reach.expect import check_file

    lab = None
    if args.lab:
        from ovnsim.lab.lab import Lab

        lab = Lab.attach(args.lab)
    report = check_file(args.topology, lab=lab)
    sys.stdout.write(report.text())
    return EXIT_OK if report.ok else EXIT_FAILED


def add_parsers(sub) -> None:
    """Add ``reach`` and ``check`` to the ``ovnsim`` subcommands."""
    from ovnsim.reach.report import FORMATS

    reach = sub.add_parser(
        "reach", help="reachability: one question (TOPO SRC DST), the matrix (TOPO), or --diff OLD NEW",
        description="One question: can SRC open a connection to DST (request delivered, reply back through "
                    "the same NAT state)? Exit 0 reachable, 1 not, 2 bad input. Endpoints: a port, a fixed, "
                    "floating or router IP, 'outside' or 'outside:IP'. Without SRC DST: the matrix, every VM port "
                    "x (every VM port + every floating IP + outside) x protocol. --diff OLD NEW: the cells whose "
                    "answer changed (exit 1 if any).")
    reach.add_argument("items", metavar="TOPO [SRC DST]", nargs="*", help="topology file, optional endpoints")
    reach.add_argument("--proto", metavar="LIST",
                       help="icmp, tcp/N, udp/N, comma-separated (default: tcp/22 for a question, "
                            "icmp,tcp/22,udp/53 for the matrix)")
    reach.add_argument("--format", choices=FORMATS, default=None,
                       help="matrix format (default table); json for a question or --diff")
    reach.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    reach.add_argument("--diff", nargs=2, metavar=("OLD", "NEW"), help="compare two versions of a topology")
    reach.add_argument("--lab", metavar="NAME", help="answer SRC DST with a real probe in the running lab NAME "
                                                     "(`ovnsim lab up`); its topology file unless TOPO is given")
    reach.set_defaults(func=cmd_reach)

    check = sub.add_parser("check", help="evaluate a topology file's expect: block (exit 0 all hold, 1 some fail)")
    check.add_argument("topology", metavar="TOPO", help="topology file (YAML) with an expect: block")
    check.add_argument("--lab", metavar="NAME", help="answer with real probes in the running lab NAME of TOPO "
                                                     "(`ovnsim lab up TOPO`); blocked_at then means not reachable")
    check.set_defaults(func=cmd_check)
