"""The ``ovnsim lab`` verbs: up, status, exec, capture, replay, down, cleanup.

Every failure is one line on stderr and exit status 2 (through
:func:`ovnsim.cli.main`'s handler of :class:`~ovnsim.errors.OvnsimError`);
``lab exec`` exits with the command's own status.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

EXIT_OK = 0


def cmd_up(args: argparse.Namespace) -> int:
    """``ovnsim lab up TOPO [--name N]``."""
    from ovnsim.lab.lab import Lab

    start = time.monotonic()
    try:
        lab = Lab.up(args.topology, name=args.name)
    except KeyboardInterrupt:  # Lab.up has deleted what it made
        print("ovnsim: interrupted; the half-built lab was removed", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - start
    plan = lab.plan
    print(f"lab {lab.name} up in {elapsed:.2f} s: {len(plan.namespaces)} namespaces, {len(plan.bridges)} bridges, "
          f"{len(plan.links)} links; `ovnsim lab exec {lab.name} PORT -- CMD`, `ovnsim lab down {lab.name}`")
    for note in plan.notes:
        print(f"ovnsim: note: {note}", file=sys.stderr)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """``ovnsim lab status [N] [--all] [--format json]``."""
    from ovnsim.lab.lab import Lab, all_status

    if args.name and not args.all:
        info = Lab.attach(args.name).status()
        if args.format == "json":
            print(json.dumps(info, indent=1, sort_keys=True))
            return EXIT_OK
        print(f"lab {info['name']}: {info['state']} ({info['topology']}), "
              f"{len(info['present'])}/{info['namespaces']} namespaces present")
        for port, entry in info["ports"].items():
            print(f"  port {port}: {entry['netns']} {entry['ifname']} {entry['mac']} {' '.join(entry['addresses'])}")
        for router, ns in info["routers"].items():
            print(f"  router {router}: {ns}")
        for name in info["missing"]:
            print(f"  missing: {name}")
        if info["state"] in ("crashed", "degraded"):
            print(f"  `ovnsim lab down {info['name']}` or `ovnsim lab cleanup` removes what is left")
        for name in info["replaced"]:
            print(f"  not the lab's any more (left alone): {name}")
        for note in info["notes"]:
            print(f"  note: {note}")
        return EXIT_OK
    labs = all_status()
    if args.format == "json":
        print(json.dumps(labs, indent=1, sort_keys=True))
        return EXIT_OK
    if not labs:
        print("no labs")
    for info in labs:
        print(f"{info['name']}\t{info['state']}\t{len(info['present'])}/{info['namespaces']} namespaces\t"
              f"{info['topology']}")
    from ovnsim.lab.runs import orphaned_labs

    orphans = orphaned_labs()
    if orphans:
        print(f"ovnsim: note: test runs that are no longer running left {len(orphans)} lab(s) "
              f"({', '.join(orphans)}); `ovnsim lab cleanup` removes them", file=sys.stderr)
    return EXIT_OK


def cmd_exec(args: argparse.Namespace) -> int:
    """``ovnsim lab exec N PORT -- CMD...``: the command's own exit status."""
    from ovnsim.errors import OvnsimError
    from ovnsim.lab.lab import Lab

    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise OvnsimError("lab exec: no command given (ovnsim lab exec LAB PORT -- CMD...)")
    lab = Lab.attach(args.name)
    return subprocess.call(lab.exec_argv(args.port, argv))


def cmd_capture(args: argparse.Namespace) -> int:
    """``ovnsim lab capture N PORT [-w FILE] [--count K] [--timeout S]``."""
    from ovnsim.lab.lab import Lab

    lab = Lab.attach(args.name)
    cap = lab.capture(args.port, direction=args.direction, count=args.count, timeout=args.timeout)
    try:
        frames = cap.wait()
    except KeyboardInterrupt:  # Ctrl-C ends an unbounded capture, as with tcpdump
        frames = cap.stop()
    if args.write:
        cap.write_pcap(args.write)
        print(f"{len(frames)} frames written to {args.write}", file=sys.stderr)
    else:
        for stamp, frame in frames:
            print(f"{stamp / 1e9:.6f} {len(frame)} {_summary(frame)}")
    return EXIT_OK


def _summary(frame: bytes) -> str:
    try:
        from scapy.layers import inet  # noqa: F401  (registers IP, ICMP, TCP, UDP)
        from scapy.layers.l2 import Ether

        return Ether(frame).summary()
    except Exception:  # a frame scapy cannot dissect is still shown
        return frame[:14].hex()


def cmd_replay(args: argparse.Namespace) -> int:
    """``ovnsim lab replay N CAPTURE (--port P | --auto) --out-dir DIR``."""
    from ovnsim.lab.lab import Lab
    from ovnsim.lab.replay import replay_into_lab

    lab = Lab.attach(args.name)
    summary = replay_into_lab(lab, args.capture, args.out_dir, port=args.port, auto=args.auto, rate=args.rate,
                              settle=args.settle, force=args.force)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(f"frames in: {summary['frames_in']}, sent: {summary['sent']}, not sent: {summary['not_sent']}")
        for port, n in sorted(summary["outputs"].items()):
            print(f"  {port}: {n} frames -> {summary['files'][port]}")
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    """``ovnsim lab down N``."""
    from ovnsim.lab.lab import Lab

    left = Lab.attach(args.name).down()
    print(f"lab {args.name} down")
    for name in left:
        print(f"ovnsim: warning: {name} is no longer the lab's namespace; left alone", file=sys.stderr)
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    """``ovnsim lab cleanup [--all]`` (labs of dead test runs too: :func:`ovnsim.lab.cleanup`)."""
    from ovnsim.lab.lab import cleanup

    done = cleanup(all_labs=args.all)
    for name, left in done:
        print(f"lab {name} removed")
        for ns in left:
            print(f"ovnsim: warning: {ns} is no longer lab {name}'s namespace; left alone", file=sys.stderr)
    if not done:
        print("nothing to clean up")
    return EXIT_OK


def add_lab_parser(sub) -> None:
    """Add ``ovnsim lab ...`` to the top-level subparsers ``sub``."""
    lab = sub.add_parser("lab", help="real network-namespace labs of a topology (root)",
                         description="Build the topology as Linux network namespaces, bridges and nftables rules "
                                     "(root only; nothing is created in the host's own namespace); see docs/lab.md.")
    verbs = lab.add_subparsers(dest="lab_command", required=True, metavar="VERB")

    up = verbs.add_parser("up", help="build a lab of TOPO")
    up.add_argument("topology", metavar="TOPO", help="topology file (YAML)")
    up.add_argument("--name", metavar="N", help="lab name (default: the file's stem, -2, -3... if taken)")
    up.set_defaults(func=cmd_up)

    status = verbs.add_parser("status", help="labs on this machine, or one lab in detail")
    status.add_argument("name", metavar="N", nargs="?", help="a lab name")
    status.add_argument("--all", action="store_true", help="every lab (the default without N)")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(func=cmd_status)

    run = verbs.add_parser("exec", help="run a command inside a port's (or router's) namespace")
    run.add_argument("name", metavar="N", help="lab name")
    run.add_argument("port", metavar="PORT", help="a VM or localnet port, a router, or 'upstream'")
    run.add_argument("cmd", metavar="-- CMD", nargs=argparse.REMAINDER, help="the command and its arguments")
    run.set_defaults(func=cmd_exec)

    cap = verbs.add_parser("capture", help="capture frames on a port's interface")
    cap.add_argument("name", metavar="N", help="lab name")
    cap.add_argument("port", metavar="PORT", help="a VM or localnet port")
    cap.add_argument("-w", "--write", metavar="FILE", help="write a pcap file instead of one line per frame")
    cap.add_argument("--count", metavar="K", type=int, help="stop after K frames")
    cap.add_argument("--timeout", metavar="S", type=float, help="stop after S seconds")
    cap.add_argument("--direction", choices=("in", "out", "both"), default="both",
                     help="in: what the port delivers to its VM; out: what the VM sends (default both)")
    cap.set_defaults(func=cmd_capture)

    rep = verbs.add_parser("replay", help="send a capture's frames into a lab, write what leaves every port",
                           description="Send every frame of CAPTURE from inside its ingress port's namespace "
                                       "(at most --rate frames/s), capture what every VM and localnet port receives "
                                       "meanwhile, write DIR/<port>-tx.pcap as `ovnsim replay` does.")
    rep.add_argument("name", metavar="N", help="lab name")
    rep.add_argument("capture", metavar="CAPTURE", help="pcap or pcapng file (Ethernet)")
    rep.add_argument("--out-dir", metavar="DIR", required=True, help="where the per-port pcaps go")
    ingress = rep.add_mutually_exclusive_group(required=True)
    ingress.add_argument("--port", metavar="P", help="every frame enters on port P")
    ingress.add_argument("--auto", action="store_true",
                         help="each frame enters on the port owning its source MAC (else its source IP, else the "
                              "localnet port)")
    rep.add_argument("--rate", type=float, default=1000.0, help="frames per second at most (default 1000)")
    rep.add_argument("--settle", type=float, default=0.5,
                     help="seconds to keep capturing after the last frame (default 0.5)")
    rep.add_argument("--force", action="store_true", help="replace files of an earlier replay in DIR")
    rep.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    rep.set_defaults(func=cmd_replay)

    down = verbs.add_parser("down", help="delete a lab (exactly what its ledger lists)")
    down.add_argument("name", metavar="N", help="lab name")
    down.set_defaults(func=cmd_down)

    clean = verbs.add_parser("cleanup", help="delete crashed or broken labs and those of dead test runs "
                                             "(--all: every lab)",
                             description="Delete, by their ledgers, labs crashed mid-up or with namespaces gone, "
                                         "and every lab a test run that is no longer running left in "
                                         "/run/ovnsim/runs; --all also healthy labs of the state directory. "
                                         "Labs of live test runs are never touched.")
    clean.add_argument("--all", action="store_true", help="every lab, healthy ones too")
    clean.set_defaults(func=cmd_cleanup)


__all__ = ["add_lab_parser"]
