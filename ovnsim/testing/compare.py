"""``ovnsim compare``: ovnsim against a sandboxed real OVN, for users who doubt the emulator.

* :func:`compare_capture` replays a capture frame by frame through ovnsim
  (:class:`~ovnsim.sim.Simulator`, conntrack carried) and through real OVN's
  whole data path (:class:`~ovnsim.testing.realdp.RealDatapath`), and
  reports every frame whose per-port outputs differ, side by side, with
  ovnsim's trace of that frame.
* :func:`compare_microflow` traces one microflow with ovnsim and with
  ``ovn-trace`` (:class:`~ovnsim.testing.realovn.RealOVN`); static MAC
  bindings are written as SB rows (ovn-trace 23.03 ignores
  ``Static_MAC_Binding``) and gateway routers' ``l3gateway`` bindings are
  retyped so traces continue past ``ct_snat;`` -- both said in the report.

Each frame enters on the port that owns its source MAC (else its source
IPv4 address), else the first provider network's localnet port: the frame
came from outside.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ovnsim.errors import OvnsimError

__all__ = ["CompareReport", "compare_capture", "compare_microflow", "choose_ingress"]


@dataclass
class FrameDiff:
    """One frame whose outputs differ: both sides' per-port frames and ovnsim's trace."""

    number: int
    port: str
    frame: bytes
    ovn: Dict[str, List[bytes]]
    ovnsim: Dict[str, List[bytes]]
    trace: str


@dataclass
class CompareReport:
    """The outcome of a comparison: frames compared, those that differ, timings, notes."""

    frames: int = 0
    diffs: List[FrameDiff] = field(default_factory=list)
    ovnsim_seconds: float = 0.0
    ovn_seconds: float = 0.0
    notes: List[str] = field(default_factory=list)
    text: str = ""

    @property
    def identical(self) -> bool:
        return not self.diffs


def choose_ingress(logical, frame: bytes) -> Optional[str]:
    """The logical port a frame enters on: the owner of its source MAC or IPv4, else a localnet port."""
    by_mac: Dict[str, str] = {}
    by_ip: Dict[str, str] = {}
    localnet: List[str] = []
    for ls in logical.switches:
        for p in ls.ports:
            if p.type == "localnet":
                localnet.append(p.name)
            elif not p.type:
                for addr in p.addresses:
                    words = addr.split()
                    if words and words[0] != "unknown":
                        by_mac.setdefault(words[0].lower(), p.name)
                        for ip in words[1:]:
                            by_ip.setdefault(ip, p.name)
    src = ":".join(f"{b:02x}" for b in frame[6:12])
    if src in by_mac:
        return by_mac[src]
    off = 12
    if frame[off:off + 2] == b"\x81\x00":
        off += 4
    if frame[off:off + 2] == b"\x08\x00" and len(frame) >= off + 2 + 20:
        ip = ".".join(str(b) for b in frame[off + 14:off + 18])
        if ip in by_ip:
            return by_ip[ip]
    return localnet[0] if localnet else None


def _summary(frame: bytes) -> str:
    try:
        from scapy.layers.l2 import Ether

        return Ether(frame).summary()
    except Exception:  # noqa: BLE001 - a description only
        return f"{len(frame)} bytes"


def _side_by_side(d: FrameDiff) -> List[str]:
    lines = [f"frame {d.number} (in {d.port}): {_summary(d.frame)}"]
    for port in sorted(set(d.ovn) | set(d.ovnsim)):
        a, b = sorted(d.ovn.get(port, [])), sorted(d.ovnsim.get(port, []))
        mark = "==" if a == b else "!="
        lines.append(f"  {port} {mark}")
        for i in range(max(len(a), len(b))):
            left = _summary(a[i]) if i < len(a) else "-"
            right = _summary(b[i]) if i < len(b) else "-"
            lines.append(f"    real OVN: {left}")
            lines.append(f"    ovnsim:   {right}")
            if i < len(a) and i < len(b) and a[i] != b[i]:
                lines.append(f"    real OVN bytes: {a[i].hex()}")
                lines.append(f"    ovnsim bytes:   {b[i].hex()}")
    if not d.ovn and not d.ovnsim:
        lines.append("  (nothing left either side)")
    lines.append("  ovnsim's trace:")
    lines += ["    " + line for line in d.trace.rstrip().splitlines()]
    return lines


def compare_capture(topology_path: str, capture_path: str) -> CompareReport:
    """Replay ``capture_path`` through ovnsim and a sandboxed real OVN; per-frame differences."""
    from ovnsim.capture.pcap import read_frames
    from ovnsim.datapath._fastpath import frame_fields
    from ovnsim.datapath.trace import format_result
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology
    from ovnsim.sim import Simulator
    from ovnsim.testing.realdp import RealDatapath

    ok, reason = RealDatapath.available()
    if not ok:
        raise OvnsimError(f"ovnsim compare needs a real OVN to compare with: {reason}")
    logical = compile_topology(load_topology(topology_path))
    frames = [data for _, data, _ in read_frames(capture_path)]
    sim = Simulator(logical)
    report = CompareReport()
    with RealDatapath() as dp:
        dp.load(logical)
        report.notes.append(f"real OVN: booted in {dp.startup_seconds:.2f} s, topology applied in "
                            f"{dp.load_seconds:.2f} s")
        skipped = 0
        for number, frame in enumerate(frames, 1):
            port = choose_ingress(logical, frame)
            if port is None:
                skipped += 1
                continue
            report.frames += 1
            t0 = time.perf_counter()
            result = sim.inject(port, frame, trace=True)
            t1 = time.perf_counter()
            got = dp.inject(port, frame)
            t2 = time.perf_counter()
            report.ovnsim_seconds += t1 - t0
            report.ovn_seconds += t2 - t1
            ours: Dict[str, List[bytes]] = {}
            for o in result.outputs:
                ours.setdefault(o.port, []).append(o.frame)
            theirs = got.outputs
            if {p: sorted(f) for p, f in ours.items()} != {p: sorted(f) for p, f in theirs.items()}:
                try:
                    fields = frame_fields(frame) or {}
                    trace = format_result(result, fields, "detailed")
                except Exception as err:  # noqa: BLE001 - the trace is an aid, not the verdict
                    trace = f"(no trace: {err})"
                report.diffs.append(FrameDiff(number, port, frame, theirs, ours, trace))
        if skipped:
            report.notes.append(f"{skipped} frames skipped: no port owns their source and the "
                                f"topology has no provider network to take them")
    lines = [f"{topology_path} + {capture_path}: {report.frames} frames, "
             f"{report.frames - len(report.diffs)} identical, {len(report.diffs)} differ"]
    for d in report.diffs:
        lines += [""] + _side_by_side(d)
    lines += ["", *report.notes, _speed(report)]
    report.text = "\n".join(lines) + "\n"
    return report


def _speed(report: CompareReport) -> str:
    if not report.frames:
        return "no frames compared"
    return (f"time per frame: ovnsim {1e6 * report.ovnsim_seconds / report.frames:.0f} us (traced), "
            f"real OVN {1e3 * report.ovn_seconds / report.frames:.1f} ms (waiting for each frame and "
            f"ovn-controller's output)")


def compare_microflow(topology_path: str, microflow: str) -> CompareReport:
    """One microflow through ovnsim and through ``ovn-trace``; their verdicts compared."""
    from ovnsim.nb.nbctl import nbctl_commands
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology
    from ovnsim.sim import Simulator
    from ovnsim.testing.ovntrace import make_verdict, run_trace, parse_trace
    from ovnsim.testing.realovn import RealOVN

    ok, reason = RealOVN.available()
    if not ok:
        raise OvnsimError(f"ovnsim compare needs a real OVN to compare with: {reason}")
    logical = compile_topology(load_topology(topology_path))
    sim = Simulator(logical)
    # ovn-trace has no pinctrl: it does not hold the packet a router ARPs for
    sim.engine.hold_packets = False
    report = CompareReport(frames=1)
    result = sim.trace(microflow)
    sim.reset()
    t0 = time.perf_counter()
    result = sim.trace(microflow)  # timed warm: the first call builds lazily
    report.ovnsim_seconds = time.perf_counter() - t0
    ours = make_verdict(sim.verdict(result)["outputs"])
    with RealOVN() as ovn:
        ovn.run_nbctl_script(nbctl_commands(logical))
        ovn.sync()
        for binding in logical.static_mac_bindings:
            router = next(lr.name for lr in logical.routers
                          if any(p.name == binding.logical_port for p in lr.ports))
            datapath = ovn.sbctl("--bare", "--columns=_uuid", "find", "Datapath_Binding",
                                 f"external_ids:name={router}").strip()
            ovn.sbctl("create", "MAC_Binding", f"logical_port={binding.logical_port}",
                      f"ip={binding.ip}", f'mac="{binding.mac}"', f"datapath={datapath}")
            report.notes.append(f"static MAC binding {binding.ip} -> {binding.mac} on "
                                f"{binding.logical_port} written as an SB MAC_Binding row "
                                f"(ovn-trace 23.03 ignores Static_MAC_Binding)")
        report.notes.append("ovnsim does not hold a packet a router ARPs for (ovn-trace has no pinctrl "
                            "to hold it); tcp_reset outputs as pinctrl builds them (ports swapped, TTL 63)")
        retyped = ovn.gateway_router_trace_fix()
        if retyped:
            report.notes.append("gateway routers' l3gateway port bindings retyped as patch so "
                                "ovn-trace continues past ct_snat; (" + ", ".join(retyped) + ")")
        text = run_trace(ovn, microflow)
        t0 = time.perf_counter()
        text = run_trace(ovn, microflow)  # timed warm: the first call starts the daemon
        report.ovn_seconds = time.perf_counter() - t0
        raw = parse_trace(text, microflow)
    outputs = []
    for out in raw["outputs"]:
        out = dict(out)
        if out["kind"] == "tcp_reset":
            # ovn-trace keeps the segment's ports and starts the packet at TTL 255;
            # pinctrl (and ovnsim) swap the ports and compose it with TTL 63
            out["tcp.src"], out["tcp.dst"] = out["tcp.dst"], out["tcp.src"]
            if "ip.ttl" in out:
                out["ip.ttl"] -= 192
        outputs.append(out)
    theirs = make_verdict(outputs)
    same = ours == theirs
    lines = [f"{topology_path}: {microflow}", f"verdicts {'identical' if same else 'DIFFER'}",
             "  ovn-trace: " + json.dumps(theirs["outputs"], sort_keys=True),
             "  ovnsim:    " + json.dumps(ours["outputs"], sort_keys=True)]
    if not same:
        from ovnsim.datapath._fastpath import frame_fields
        from ovnsim.datapath.microflow import parse_microflow
        from ovnsim.datapath.trace import format_result

        fields = frame_fields(parse_microflow(microflow).to_frame()) or {}
        lines += ["  ovnsim's trace:"] + ["    " + x for x in
                                          format_result(result, fields, "detailed").splitlines()]
        report.diffs.append(FrameDiff(1, "", b"", {}, {}, ""))
    lines += report.notes
    lines.append(f"time: ovnsim {1e3 * report.ovnsim_seconds:.2f} ms, ovn-trace "
                 f"{1e3 * report.ovn_seconds:.1f} ms (its daemon, warm; both traced in detail)")
    report.text = "\n".join(lines) + "\n"
    return report


def looks_like_capture(text: str) -> bool:
    """True when ``text`` names a capture file rather than a microflow.

    An existing file is a capture; so is anything without a microflow's
    operators (a mistyped path then gets the file's "cannot read" error,
    not a microflow syntax error).
    """
    import os

    if os.path.isfile(text):
        return True
    return not any(op in text for op in ("==", "!=", "&&", "||", " "))
