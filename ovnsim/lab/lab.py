"""The lab API: bring a topology up as namespaces, use it, tear it down.

::

    from ovnsim.lab import Lab
    with Lab.up("topologies/reference.yaml") as lab:
        lab.exec("vm1", "ping", "-c1", "10.0.1.21").check_returncode()
        with lab.capture("vm2", count=1, timeout=5) as cap:
            lab.exec("vm1", "ping", "-c1", "10.0.0.12")
        print(cap.frames)

A lab is found again by name from any process (``Lab.attach(name)``); its
state lives in the ledger (:mod:`ovnsim.lab.ledger`).
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from ovnsim.lab import build as _build
from ovnsim.lab.ledger import (STATE_UP, Ledger, builder_alive, free_name, free_token, iter_ledgers,
                               ledger_names, status_of)
from ovnsim.lab.plan import ROLE_ROUTER, ROLE_UPSTREAM, LabError, LabPlan, plan_lab
from ovnsim.nb.model import LogicalTopology

#: Default seconds a ``Lab.exec`` may run.
EXEC_TIMEOUT = 60
#: packet socket pkttype of a frame the interface sent.
PACKET_OUTGOING = 4

Frame = Tuple[int, bytes]  #: (timestamp in ns, frame bytes)


def _logical(topology: Union[str, os.PathLike, LogicalTopology]) -> LogicalTopology:
    if isinstance(topology, LogicalTopology):
        return topology
    from ovnsim.neutron.compiler import compile_topology
    from ovnsim.neutron.loader import load_topology

    return compile_topology(load_topology(os.fspath(topology)))


def _default_name(logical: LogicalTopology) -> str:
    stem = Path(logical.source).stem if logical.source and not logical.source.startswith("<") else "lab"
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem).lstrip("-._") or "lab"
    return safe[:24]


class Capture:
    """Frames seen on one port's interface, from when it was opened until stopped.

    ``direction``: ``"in"`` (what the port delivers to its VM — what
    ``ovnsim replay`` writes to ``<port>-tx.pcap``), ``"out"`` (what the VM
    sends) or ``"both"``.  Stops by itself after ``count`` frames or
    ``timeout`` seconds.
    """

    def __init__(self, ns_name: str, ifname: str, direction: str = "both", count: Optional[int] = None,
                 timeout: Optional[float] = None):
        if direction not in ("in", "out", "both"):
            raise LabError(f"capture direction {direction!r}: use in, out or both")
        self.frames: List[Frame] = []
        self.direction = direction
        self.count = count
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._stop = threading.Event()
        self._sock = _build.open_packet_socket(ns_name, ifname)
        self._rfd, self._wfd = os.pipe()
        self._thread = threading.Thread(target=self._run, name="ovnsim-lab-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.count is not None and len(self.frames) >= self.count:
                    break
                wait = None if self.deadline is None else self.deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    break
                ready, _, _ = select.select([self._sock, self._rfd], [], [], wait)
                if self._sock not in ready:
                    continue
                data, addr = self._sock.recvfrom(262144)
                if not self._wanted(addr):
                    continue
                self.frames.append((time.time_ns(), data))
            # Frames already queued in the socket when stopped were seen
            # before the stop: keep them.
            self._sock.setblocking(False)
            while self.count is None or len(self.frames) < self.count:
                try:
                    data, addr = self._sock.recvfrom(262144)
                except (BlockingIOError, InterruptedError):
                    break
                if self._wanted(addr):
                    self.frames.append((time.time_ns(), data))
        finally:
            self._sock.close()

    def _wanted(self, addr) -> bool:
        outgoing = addr[2] == PACKET_OUTGOING
        return not ((self.direction == "in" and outgoing) or (self.direction == "out" and not outgoing))

    def wait(self) -> List[Frame]:
        """Block until ``count`` frames or the timeout; the frames."""
        self._thread.join()
        self._close_pipe()
        return self.frames

    def stop(self) -> List[Frame]:
        """Stop now (keeping the frames the socket already holds); the frames."""
        self._stop.set()
        try:
            os.write(self._wfd, b"x")
        except OSError:
            pass
        self._thread.join()
        self._close_pipe()
        return self.frames

    def _close_pipe(self) -> None:
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._rfd = self._wfd = -1

    def write_pcap(self, path: Union[str, os.PathLike]) -> int:
        """Write the frames to a classic pcap file; the number written."""
        from ovnsim.capture.pcap import PcapWriter

        with PcapWriter(path) as writer:
            for stamp, frame in self.frames:
                writer.write(frame, stamp)
        return len(self.frames)

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            if self.count is not None or self.deadline is not None:
                # Give bounded captures their chance to see what was just sent.
                self._thread.join(timeout=0.2)
            self.stop()
        else:
            self._close_pipe()


class Lab:
    """A running lab: its ledger, plan and ways to use it."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.plan: LabPlan = ledger.plan

    @property
    def name(self) -> str:
        """The lab's name."""
        return self.ledger.name

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def up(cls, topology: Union[str, os.PathLike, LogicalTopology], name: Optional[str] = None) -> "Lab":
        """Build a lab of ``topology`` (a file or an NB model); usable as a context manager.

        Without ``name`` the lab is named after the topology file, with
        ``-2``, ``-3``... if that name is taken.  On any failure everything
        created so far is deleted and the error raised.
        """
        _build.check_environment()
        logical = _logical(topology)
        name = name or free_name(_default_name(logical))
        plan = plan_lab(logical, name, free_token(name))
        # An absolute path: ``reach`` on the lab reloads the topology from any directory.
        source = logical.source if isinstance(topology, LogicalTopology) else os.path.abspath(os.fspath(topology))
        ledger = Ledger.create(plan, source)
        try:
            _build.build(ledger)
        except BaseException:
            try:
                _build.teardown(ledger, force=True)
            except LabError:
                pass
            raise
        return cls(ledger)

    @classmethod
    def attach(cls, name: str) -> "Lab":
        """The lab named ``name`` (built by any process)."""
        return cls(Ledger.load(name))

    def down(self) -> List[str]:
        """Delete the lab (idempotent); the namespaces left alone because they are not the lab's."""
        if not self.ledger.path.exists():
            return []
        return _build.teardown(self.ledger)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # -- using it ----------------------------------------------------------
    def namespace(self, target: str) -> str:
        """The namespace of a switch port (VM or localnet), a router, or ``upstream``."""
        if target in self.plan.ports:
            return self.plan.ports[target]
        for ns in self.plan.namespaces:
            if target in ns.objects and ns.role in (ROLE_ROUTER, ROLE_UPSTREAM):
                return ns.name
            if target == ns.key or target == ns.name:
                return ns.name
        upstreams = [ns.name for ns in self.plan.namespaces if ns.role == ROLE_UPSTREAM]
        if target == "upstream" and upstreams:
            return upstreams[0]
        valid = sorted(self.plan.ports) + sorted(o for ns in self.plan.namespaces if ns.role == ROLE_ROUTER
                                                 for o in ns.objects)
        raise LabError(f"lab {self.name!r} has no port or router {target!r}; valid: {', '.join(valid)}")

    def interface(self, port: str) -> Tuple[str, str]:
        """(namespace, interface name) of switch port ``port``'s endpoint."""
        try:
            link = self.plan.link_of_port(port)
        except KeyError:
            raise LabError(f"lab {self.name!r} has no switch port {port!r}; valid: "
                           f"{', '.join(sorted(self.plan.ports))}") from None
        if port not in self.plan.ports:
            raise LabError(f"{port!r} is a router's switch port; capture on a VM or localnet port")
        return link.netns, link.ifname

    def exec_argv(self, target: str, argv: Sequence[str]) -> List[str]:
        """The command line that runs ``argv`` inside ``target``'s namespace."""
        return ["ip", "netns", "exec", self.namespace(target), *argv]

    def exec(self, target: str, *argv: str, timeout: Optional[float] = EXEC_TIMEOUT, check: bool = False,
             input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` inside ``target``'s namespace; its output captured as text."""
        if not argv:
            raise LabError("exec: no command given")
        return subprocess.run(self.exec_argv(target, argv), capture_output=True, text=True, timeout=timeout,
                              check=check, input=input)

    def popen(self, target: str, *argv: str, **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside ``target``'s namespace (the caller waits for or kills it)."""
        return subprocess.Popen(self.exec_argv(target, argv), **kwargs)

    def capture(self, port: str, direction: str = "both", count: Optional[int] = None,
                timeout: Optional[float] = None) -> Capture:
        """Start capturing on switch port ``port``'s endpoint (returns once the socket is open)."""
        ns_name, ifname = self.interface(port)
        return Capture(ns_name, ifname, direction=direction, count=count, timeout=timeout)

    def status(self) -> dict:
        """The lab's state and what exists of it now."""
        return lab_status(self.ledger)


def lab_status(ledger: Ledger) -> dict:
    """:func:`~ovnsim.lab.ledger.status_of` plus the lab's ports, routers, bridges and notes."""
    info = status_of(ledger)
    plan = ledger.plan
    info["ports"] = {port: {"netns": ns, "ifname": plan.link_of_port(port).ifname,
                            "mac": plan.link_of_port(port).mac, "addresses": plan.link_of_port(port).addresses}
                     for port, ns in sorted(plan.ports.items())}
    info["routers"] = {o: ns.name for ns in plan.namespaces if ns.role == ROLE_ROUTER for o in ns.objects}
    info["bridges"] = {b.switch: b.ifname for b in plan.bridges}
    info["notes"] = plan.notes
    return info


def all_status() -> List[dict]:
    """The status of every lab on this machine."""
    return [status_of(ledger) for ledger in iter_ledgers()]


def cleanup(all_labs: bool = False) -> List[Tuple[str, List[str]]]:
    """Tear down broken labs (crashed mid-``up``, or with namespaces gone) or, with ``all_labs``, every lab.

    Also, always: the labs that test runs no longer alive left in their run
    directories (:func:`ovnsim.lab.runs.reap_dead_runs`; nobody else will
    take them down).  Labs of live test runs are never touched.  Returns
    (lab, namespaces left alone) per lab torn down.  Labs being built by a
    live process are skipped.
    """
    from ovnsim.lab.runs import reap_dead_runs

    done = reap_dead_runs()
    for ledger in list(iter_ledgers()):
        if builder_alive(ledger):
            continue
        healthy = ledger.state == STATE_UP and not status_of(ledger)["missing"]
        if healthy and not all_labs:
            continue
        done.append((ledger.name, _build.teardown(ledger)))
    return done


__all__ = ["Lab", "Capture", "cleanup", "all_status", "lab_status", "ledger_names"]
