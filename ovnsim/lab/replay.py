"""Replay a capture into a running lab (``ovnsim lab replay``).

Each frame is sent from inside its ingress port's namespace, on the port's
interface, as if the VM (or, for a localnet port, the upstream network)
had sent it; every VM and localnet port is captured meanwhile (frames it
*receives*: what the logical port delivers), and ``DIR/<port>-tx.pcap``
files are written as ``ovnsim replay`` writes them, so one capture can be
run through the emulator and the kernel and the outputs compared.

The namespaces are real hosts: a VM that receives a frame may answer it
(an ARP reply, a TCP reset for a connection it never opened), and those
answers are captured too; ``docs/lab.md`` lists this with the other
differences.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from pathlib import Path
from typing import Dict, Optional, Union

from ovnsim.lab import build as _build
from ovnsim.lab.plan import ROLE_UPSTREAM, LabError


def port_file_name(port: str) -> str:
    """``<port>-tx.pcap`` with unsafe characters as ``_`` (the name ``ovnsim replay`` uses)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", port)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    return f"{safe}-tx.pcap"


def _auto_ingress(lab, frame: bytes) -> Optional[str]:
    src_mac = ":".join(f"{b:02x}" for b in frame[6:12])
    by_mac: Dict[str, str] = {}
    by_ip: Dict[str, str] = {}
    upstream = None
    roles = {ns.name: ns.role for ns in lab.plan.namespaces}
    for port, ns_name in lab.plan.ports.items():
        link = lab.plan.link_of_port(port)
        if roles[ns_name] == ROLE_UPSTREAM:
            upstream = upstream or port
            continue
        by_mac.setdefault(link.mac, port)
        for address in link.addresses:
            by_ip.setdefault(address.split("/")[0], port)
    if src_mac in by_mac:
        return by_mac[src_mac]
    if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
        src_ip = str(ipaddress.IPv4Address(frame[26:30]))
        if src_ip in by_ip:
            return by_ip[src_ip]
    return upstream


def replay_into_lab(lab, capture: Union[str, os.PathLike], out_dir: Union[str, os.PathLike],
                    port: Optional[str] = None, auto: bool = False, rate: float = 1000.0, settle: float = 0.5,
                    force: bool = False) -> dict:
    """Send ``capture`` into ``lab``; write per-port pcaps in ``out_dir``; a summary dict."""
    from ovnsim.capture.pcap import PcapWriter, read_frames

    if (port is None) == (not auto):
        raise LabError("replay: give exactly one of port or auto")
    if rate <= 0:
        raise LabError("replay: --rate must be positive")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise LabError(f"{out}: not empty (use --force to replace an earlier replay's files)")
    out.mkdir(parents=True, exist_ok=True)
    frames = [(stamp, frame) for stamp, frame, _orig in read_frames(capture)]
    if port is not None:
        lab.interface(port)  # a one-line error for an unknown port
    captures = {p: lab.capture(p, direction="in") for p in lab.plan.ports}
    senders: Dict[str, object] = {}
    sent, not_sent = 0, 0
    try:
        gap = 1.0 / rate
        next_at = time.monotonic()
        for _stamp, frame in frames:
            ingress = port if port is not None else _auto_ingress(lab, frame)
            if ingress is None:
                not_sent += 1
                continue
            sock = senders.get(ingress)
            if sock is None:
                ns_name, ifname = lab.interface(ingress)
                sock = senders[ingress] = _build.open_packet_socket(ns_name, ifname)
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(now, next_at) + gap
            try:
                sock.send(frame)
                sent += 1
            except OSError:  # too short, too long for the MTU: the kernel refuses it
                not_sent += 1
        time.sleep(settle)
    finally:
        for sock in senders.values():
            sock.close()
        results = {p: cap.stop() for p, cap in captures.items()}
    files, outputs = {}, {}
    for p, got in sorted(results.items()):
        if not got:
            continue
        name = port_file_name(p)
        with PcapWriter(out / name) as writer:
            for stamp, frame in got:
                writer.write(frame, stamp)
        files[p], outputs[p] = name, len(got)
    return {"lab": lab.name, "capture": os.fspath(capture), "ingress": "auto" if auto else port,
            "frames_in": len(frames), "sent": sent, "not_sent": not_sent, "outputs": outputs, "files": files,
            "out_dir": os.fspath(out)}
