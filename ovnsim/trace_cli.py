"""What ``ovnsim trace`` does with its arguments, around the trace run itself.

The run and its rendering (``trace_one(sim, microflow, fmt, datapath)`` in
``ovnsim.cli``) are taken as given; this module decides *what* to trace:

* ``MICROFLOW`` as ovn-trace takes it, or ``--from P --to X [--tcp N|--udp N|--icmp]``
  built by :mod:`ovnsim.trace_args` (printed with ``--format detailed``, and
  as ``"microflow"`` in JSON);
* the optional ``DATAPATH`` by OVN name or Neutron network/router name;
  unknown datapaths and ports are one-line errors listing the valid ones;
* ``--flows FILE``: every line traced and printed in ``--format`` (JSON lines
  carry ``line`` and ``microflow``); ``--stateful`` keeps one conntrack and
  neighbour state across the lines, in order, instead of a fresh network per
  line as ovn-trace has;
* ``--expect PORT|drop``: exit status 1 when the verdict differs;
* ``--ct``: refused until ovnsim has stateful ACL stages (security groups).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Optional, Tuple

from ovnsim.errors import MicroflowError, OvnsimError
from ovnsim.trace_args import DatapathNames, FlowSpec, PortNames, build_microflow

#: Exit status of ``--expect`` when the verdict is not the expected one.
EXIT_UNEXPECTED = 1
#: Exit status of ``--flows`` when some line was an error (the others are still answered).
EXIT_LINE_ERROR = 2

TraceOne = Callable[..., str]
SplitDatapath = Callable[[str], Tuple[Optional[str], str]]


def add_arguments(trace: argparse.ArgumentParser) -> None:
    """The options of ``ovnsim trace`` beyond the microflow and ``--format``."""
    trace.add_argument("--from", dest="from_", metavar="PORT",
                       help="build the microflow (as ml2ovn-trace): inport, eth.src, ip4.src from this port")
    trace.add_argument("--to", metavar="DEST",
                       help="destination: a port, a router, an IPv4 address (fixed IP, floating IP, ...), "
                            "'outside' or 'outside:IP'; eth.dst is the peer's MAC on the same L2, else the gateway's")
    proto = trace.add_mutually_exclusive_group()
    proto.add_argument("--tcp", metavar="PORT", type=int, help="TCP to this destination port")
    proto.add_argument("--udp", metavar="PORT", type=int, help="UDP to this destination port")
    proto.add_argument("--icmp", action="store_true", help="ICMP echo request")
    trace.add_argument("--sport", metavar="PORT", type=int, default=0,
                       help="TCP/UDP source port (default 0, ovn-trace's default)")
    trace.add_argument("--eth-dst", "--via", dest="eth_dst", metavar="MAC",
                       help="eth.dst to use instead of the one worked out")
    trace.add_argument("-m", "--microflow-extra", dest="extra", metavar="TEXT", default="",
                       help="more microflow text, appended with && (ml2ovn-trace's -m)")
    trace.add_argument("--expect", metavar="PORT|drop",
                       help="exit 1 unless the packet leaves on PORT (or, for 'drop', leaves nowhere)")
    trace.add_argument("--stateful", action="store_true",
                       help="with --flows: run the lines through one conntrack state, in order (a SYN, then "
                            "its SYN-ACK), instead of a fresh network per line")
    trace.add_argument("--ct", metavar="new|est|rel", action="append", choices=("new", "est", "rel"),
                       help="ovn-trace's forced ct_state (refused: ovnsim's conntrack derives it; see --stateful)")


def run(args: argparse.Namespace, trace_one: TraceOne, split_datapath: SplitDatapath) -> int:
    """``ovnsim trace``; returns the exit status (bad input raises :class:`OvnsimError`)."""
    from ovnsim.neutron.loader import load_topology
    from ovnsim.sim import Simulator

    if args.stateful and not args.flows:
        raise OvnsimError("--stateful needs --flows FILE (it carries state from one line to the next)")
    built = args.from_ is not None or args.to is not None
    if built and (args.from_ is None or args.to is None):
        raise OvnsimError("--from and --to go together")
    if not built and (args.tcp is not None or args.udp is not None or args.icmp or args.eth_dst or args.extra):
        raise OvnsimError("--tcp, --udp, --icmp, --eth-dst and -m need --from and --to")
    if args.flows and (built or args.microflow):
        raise OvnsimError("give either --flows FILE or one microflow (or --from/--to), not both")
    if args.flows and args.expect:
        raise OvnsimError("--expect checks one trace; it does not combine with --flows")

    if args.format is None:
        args.format = "json" if args.flows else "minimal"
    topo = load_topology(args.topology)
    sim = Simulator(topo)
    if args.ct:
        if not sim.logical.port_groups:
            raise OvnsimError("--ct: no stateful ACL stages in this topology (no security groups, so no "
                              "ct_next reads a ct_state)")
        raise OvnsimError("--ct: ovnsim's conntrack gives each ACL stage's ct_next the state the packets "
                          "before it made; build the connection with --flows FILE --stateful instead")
    datapaths = DatapathNames(sim.logical)
    ports = PortNames(sim.logical)
    if args.flows:
        return _run_flows(args, sim, datapaths, ports, trace_one, split_datapath)

    if built:
        if len(args.microflow) > 1:
            raise OvnsimError("with --from/--to, trace takes at most a DATAPATH, not a MICROFLOW")
        spec = FlowSpec(args.from_, args.to, tcp=args.tcp, udp=args.udp, icmp=args.icmp, sport=args.sport,
                        eth_dst=args.eth_dst, extra=args.extra)
        microflow = build_microflow(topo, sim.logical, spec)
        datapath = args.microflow[0] if args.microflow else None
    else:
        if not args.microflow:
            raise OvnsimError("trace needs a MICROFLOW, --from/--to or --flows FILE")
        if len(args.microflow) > 2:
            raise OvnsimError("trace takes [DATAPATH] MICROFLOW: quote the microflow as one argument")
        datapath = args.microflow[0] if len(args.microflow) == 2 else None
        microflow = args.microflow[-1]
    datapath = _check(sim, datapaths, ports, microflow, datapath)

    status = 0
    if args.expect:
        verdict = json.loads(trace_one(sim, microflow, "json", datapath))
        status = _expect(args.expect, verdict, ports)
        sim.reset()  # the trace below starts from the same fresh network
    text = trace_one(sim, microflow, args.format, datapath)
    if args.format == "json" and built:
        text = json.dumps({"microflow": microflow, **json.loads(text)})
    elif args.format == "detailed":
        text = f"# microflow: {microflow}\n# datapath: {datapaths.show(_datapath_of(sim, microflow))}\n{text}"
    sys.stdout.write(text + "\n")
    if status:
        print(f"ovnsim: expected {args.expect}, got {_verdict_words(verdict)}", file=sys.stderr)
    return status


def _run_flows(args, sim, datapaths: DatapathNames, ports: PortNames, trace_one: TraceOne,
               split_datapath: SplitDatapath) -> int:
    """Trace every line of ``--flows``; a bad line gets its own error and the others are still answered.

    The file is read as bytes and each line decoded on its own, so a line
    that is not UTF-8 is an error for that line only.  Exit status 0 when
    every line was traced, 2 when some line was an error.
    """
    errors = 0
    with open(args.flows, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                text = raw.decode("utf-8", "backslashreplace").split("#", 1)[0].strip()
                errors += _line_error(args.format, number, text,
                                      f"{args.flows}: line {number}: not UTF-8 text ({err.reason} at byte "
                                      f"{err.start})")
                continue
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            if not args.stateful:
                sim.reset()  # every flow is traced on a fresh network, as ovn-trace does
            try:
                datapath, microflow = split_datapath(text)
                datapath = _check(sim, datapaths, ports, microflow, datapath)
                out = trace_one(sim, microflow, args.format, datapath)
            except OvnsimError as err:
                errors += _line_error(args.format, number, text, str(err))
                continue
            if args.format == "json":
                sys.stdout.write(json.dumps({"line": number, "microflow": microflow, **json.loads(out)}) + "\n")
            else:
                sys.stdout.write(f"# line {number}: {microflow}\n{out}\n\n")
    if errors:
        sys.stdout.flush()
        print(f"ovnsim: error: {args.flows}: {errors} line{'s' if errors > 1 else ''} could not be traced "
              f"(each has its error in the output; the other lines were traced)", file=sys.stderr)
        return EXIT_LINE_ERROR
    return 0


def _line_error(fmt: str, number: int, text: str, error: str) -> int:
    """Print one ``--flows`` line's error in ``fmt``; returns 1 (one more line in error)."""
    if fmt == "json":
        sys.stdout.write(json.dumps({"line": number, "microflow": text, "error": error}) + "\n")
    else:
        sys.stdout.write(f"# line {number}: {text}\nerror: {error}\n\n")
    return 1


def _check(sim, datapaths: DatapathNames, ports: PortNames, microflow: str, datapath: Optional[str]):
    """The microflow's inport must be a known switch port, on ``datapath`` if one is given (by any name)."""
    from ovnsim.datapath.microflow import parse_microflow

    inport = parse_microflow(microflow).inport
    if inport not in sim.ports:
        ports.lsp(inport, "inport")  # raises, listing the valid ports (or saying it is a router port)
        raise MicroflowError(f"inport {inport!r} is not a switch port")
    if datapath is None:
        return None
    name = datapaths.resolve(datapath)
    holder = _datapath_of(sim, microflow)
    if holder != name:
        raise MicroflowError(f"inport {inport!r} is not a port of datapath {datapaths.show(name)}; "
                             f"it is on {datapaths.show(holder)}")
    return name


def _datapath_of(sim, microflow: str) -> str:
    from ovnsim.datapath.microflow import parse_microflow

    return sim.logical.switch_ports()[parse_microflow(microflow).inport][0].name


def _expect(expected: str, verdict, ports: PortNames) -> int:
    outputs = {o["port"] for o in verdict["outputs"]}
    if expected == "drop":
        return EXIT_UNEXPECTED if outputs else 0
    port = ports.lsp(expected, "--expect port")
    return 0 if port in outputs else EXIT_UNEXPECTED


def _verdict_words(verdict) -> str:
    outputs = sorted({f'{o["port"]} ({o["kind"]})' for o in verdict["outputs"]})
    if outputs:
        return "output to " + ", ".join(outputs)
    drops = [f'{d["reason"]} at {d["datapath"]} {d["stage"]}' for d in verdict["drops"]]
    return "drop" + (f" ({'; '.join(drops)})" if drops else "")
