"""Reachability probes on a running lab: real ping, TCP and UDP, with bounded waits.

The lab side of the reachability questions: what a packet from a VM
port to an address *does* in the kernel.  A probe answers two things:

* ``delivered``: the VM and localnet ports whose endpoint received the
  request (captured on the way in, so one-way reachability is seen even
  when no reply comes back — the emulator's notion: the packet leaves on a
  port);
* ``answered``: whether the request was answered end to end (the ping
  succeeded, the TCP connection was accepted, the UDP datagram echoed).

Every wait is bounded (``timeout`` seconds per probe; the probes of one
source run in parallel).  ``ovnsim.reach`` (when present) can use
:func:`probe_matrix` as its lab backend.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ovnsim.lab.plan import OUTSIDE_ADDRESS, ROLE_UPSTREAM, ROLE_VM, LabError

#: Seconds a probe waits for its answer.
PROBE_TIMEOUT = 1.0
PROTOCOLS = ("icmp", "tcp", "udp")

#: A listener for TCP or UDP probes, started inside the destination's namespace.
_LISTENER = textwrap.dedent("""
    import socket, sys
    proto, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.settimeout(timeout)
    if proto == "udp":
        s.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO (8 on Linux; no constant in Python < 3.12)
    if proto == "tcp":
        s.listen(16)
    print("ready", flush=True)
    try:
        while True:
            if proto == "tcp":
                c, _ = s.accept(); c.sendall(b"ok"); c.close()
            else:
                # Answer from the address the datagram was sent to (IP_PKTINFO),
                # not the one routing would pick: NAT on the way back needs it.
                data, anc, _flags, addr = s.recvmsg(100, 64)
                info = [d for level, kind, d in anc if level == socket.IPPROTO_IP and kind == 8]
                if info:
                    reply = bytes(4) + info[0][8:12] + bytes(4)
                    s.sendmsg([b"ok"], [(socket.IPPROTO_IP, 8, reply)], 0, addr)
                else:
                    s.sendto(b"ok", addr)
    except socket.timeout:
        pass
""")

_CLIENT = textwrap.dedent("""
    import socket, sys
    proto, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    source = (sys.argv[5], 0) if len(sys.argv) > 5 else None
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=timeout, source_address=source)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout)
            if source:
                s.bind(source)
            s.sendto(b"probe", (host, port))
        s.recv(10)
    except OSError:
        sys.exit(1)
""")


@dataclass
class ProbeResult:
    """What one probe from ``source`` to ``destination`` (an IPv4 address) saw."""

    source: str
    destination: str
    protocol: str
    delivered: Set[str] = field(default_factory=set)
    answered: bool = False
    #: port -> the source address the request arrived with there (a SNAT or floating IP, or the sender's own)
    seen_as: Dict[str, str] = field(default_factory=dict)


def endpoints(lab) -> Dict[str, str]:
    """Every VM port of the lab -> its first IPv4 address (the probe targets), and ``outside``."""
    roles = {ns.name: ns.role for ns in lab.plan.namespaces}
    out = {}
    for port, ns_name in sorted(lab.plan.ports.items()):
        link = lab.plan.link_of_port(port)
        if roles[ns_name] == ROLE_VM and link.addresses:
            out[port] = link.addresses[0].split("/")[0]
    if any(role == ROLE_UPSTREAM for role in roles.values()):
        out["outside"] = OUTSIDE_ADDRESS
    return out


def _marker(i: int) -> bytes:
    return b"OVNSIMP" + bytes([i % 256])


def probe_from(lab, source: str, destinations: Iterable[str], protocol: str = "icmp", port: int = 7,
               timeout: float = PROBE_TIMEOUT, source_address: Optional[str] = None) -> List[ProbeResult]:
    """Probe every address in ``destinations`` from port ``source``, in parallel, each bounded by ``timeout``.

    ``source`` is a VM port, or a localnet port (the upstream namespace:
    give ``source_address``, e.g. :data:`~ovnsim.lab.plan.OUTSIDE_ADDRESS`,
    the address its probes are sent from).
    """
    from scapy.layers import inet  # noqa: F401  (registers IP, ICMP, TCP, UDP)
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether

    if protocol not in PROTOCOLS:
        raise LabError(f"probe protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    destinations = list(destinations)
    if len(destinations) > 256:
        raise LabError("at most 256 destinations per probe_from")
    results = [ProbeResult(source, dst, protocol) for dst in destinations]
    listeners = []
    if protocol != "icmp":
        listeners = _start_listeners(lab, protocol, port, timeout + 5.0)
    # The source too: a VM can reach itself through its own floating IP (a hairpin).
    captures = {p: lab.capture(p, direction="in") for p in lab.plan.ports}
    procs = []
    try:
        for i, dst in enumerate(destinations):
            if protocol == "icmp":
                argv = ["ping", "-c1", "-W", str(max(1, int(timeout + 0.999))), "-p", _marker(i).hex(), dst]
                if source_address:
                    argv[1:1] = ["-I", source_address]
            else:
                argv = [sys.executable, "-c", _CLIENT, protocol, dst, str(port), str(timeout)]
                if source_address:
                    argv.append(source_address)
            procs.append(lab.popen(source, *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout + 5.0
        for result, proc in zip(results, procs):
            try:
                result.answered = proc.wait(timeout=max(0.1, deadline - time.monotonic())) == 0
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        time.sleep(0.05)  # the last frames into the capture sockets
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        frames = {p: cap.stop() for p, cap in captures.items()}
        for proc in listeners:
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
    by_dst: Dict[str, List[int]] = {}
    for i, dst in enumerate(destinations):
        by_dst.setdefault(dst, []).append(i)
    for p, got in frames.items():
        for _stamp, raw in got:
            pkt = Ether(raw)
            if IP not in pkt:
                continue
            ip = pkt[IP]
            if protocol == "icmp":
                if ICMP not in pkt or pkt[ICMP].type != 8:
                    continue
                payload = bytes(pkt[ICMP].payload)
                for i, _dst in enumerate(destinations):
                    if _marker(i) in payload:
                        results[i].delivered.add(p)
                        results[i].seen_as.setdefault(p, ip.src)
            elif (TCP in pkt and protocol == "tcp" and pkt[TCP].dport == port and pkt[TCP].flags & 0x02
                  and not pkt[TCP].flags & 0x10) or (UDP in pkt and protocol == "udp" and pkt[UDP].dport == port):
                # Attributed by destination address (two targets with one
                # address, e.g. overlapping tenant CIDRs, are one packet); a
                # probe whose address is rewritten on the way (a floating IP)
                # is best probed alone.
                hits = by_dst.get(ip.dst, [0] if len(destinations) == 1 else [])
                for i in hits:
                    results[i].delivered.add(p)
                    results[i].seen_as.setdefault(p, ip.src)
    return results


def _start_listeners(lab, protocol: str, port: int, lifetime: float) -> list:
    procs = []
    roles = {ns.name: ns.role for ns in lab.plan.namespaces}
    targets = [p for p, ns in lab.plan.ports.items() if roles[ns] in (ROLE_VM, ROLE_UPSTREAM)]
    for target in targets:
        procs.append(lab.popen(target, sys.executable, "-c", _LISTENER, protocol, str(port), str(lifetime),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    for proc in procs:
        proc.stdout.readline()  # "ready" (or EOF if it failed)
    return procs


def probe_matrix(lab, protocol: str = "icmp", port: int = 7, timeout: float = PROBE_TIMEOUT,
                 sources: Optional[Iterable[str]] = None,
                 targets: Optional[Dict[str, str]] = None) -> Dict[Tuple[str, str], ProbeResult]:
    """(source port, destination name) -> probe result, for every VM port to every other and ``outside``.

    ``targets`` (name -> address) replaces the default :func:`endpoints`;
    with TCP and UDP, a target whose address is rewritten on the way (a
    floating IP) cannot be told from its VM's own address: probe it with
    ICMP, whose probes are marked.
    """
    targets = targets or endpoints(lab)
    matrix = {}
    for source in sources or [p for p in endpoints(lab) if p != "outside"]:
        names = [n for n in targets if n != source]
        for name, result in zip(names, probe_from(lab, source, [targets[n] for n in names], protocol, port,
                                                  timeout)):
            matrix[(source, name)] = result
    return matrix
