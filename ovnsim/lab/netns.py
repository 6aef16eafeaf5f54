"""Network namespaces without a process per namespace.

A namespace is made the way ``ip netns add`` makes it — a mount point under
``/run/netns`` bound to a new network namespace — but by one worker thread
that ``unshare``\\s, binds ``/proc/thread-self/ns/net`` and moves on: a
thread's network namespace is its own, so the calling thread (and the rest
of the program) never changes namespace.  Work inside a namespace (netlink
sockets, sysctls, packet sockets) runs on such a thread too: a socket
belongs to the namespace of the thread that opened it, whichever thread
uses it afterwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Callable, Dict, Iterable, List, TypeVar

from ovnsim.lab.ledger import NETNS_RUN_DIR, netns_path

CLONE_NEWNET = 0x40000000
MS_REC = 16384
MS_BIND = 4096
MS_SHARED = 1 << 20
MNT_DETACH = 2

T = TypeVar("T")

_libc = None


def libc():
    """The C library (unshare, setns, mount), loaded once."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _check(rc: int, what: str, name: str = "") -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", name or None)


def prepare_run_dir() -> None:
    """Make ``/run/netns`` a shared mount, as iproute2 does, so namespaces show in every mount namespace."""
    os.makedirs(NETNS_RUN_DIR, exist_ok=True)
    lib = libc()
    if lib.mount(b"", NETNS_RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(lib.mount(NETNS_RUN_DIR.encode(), NETNS_RUN_DIR.encode(), b"none", MS_BIND | MS_REC, None),
           "bind-mounting", NETNS_RUN_DIR)
    _check(lib.mount(b"", NETNS_RUN_DIR.encode(), b"none", MS_SHARED | MS_REC, None), "sharing", NETNS_RUN_DIR)


def run_in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread (free to change its namespace) and return its result or raise its error."""
    box: Dict[str, object] = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as err:  # handed back to the caller
            box["error"] = err

    thread = threading.Thread(target=target, name="ovnsim-lab-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("result")  # type: ignore[return-value]


def enter(name: str) -> None:
    """Move the *calling thread* into namespace ``name`` (only on a thread of :func:`run_in_thread`)."""
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc().setns(fd, CLONE_NEWNET), "entering namespace", name)
    finally:
        os.close(fd)


def write_sysctls(values: Dict[str, str]) -> None:
    """Write sysctls of the calling thread's namespace (``/proc/sys/net`` follows the thread)."""
    for key, value in values.items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)


def create_namespaces(names: Iterable[str], on_created: Callable[[str], None],
                      setup: Callable[[str], None]) -> None:
    """Create each namespace, call ``setup(name)`` inside it, then ``on_created(name)``.

    Raises :class:`FileExistsError` if a name is taken (by anything: the
    mount point is created exclusively, so a namespace made by someone else
    is never adopted).
    """
    names = list(names)

    def work():
        lib = libc()
        for name in names:
            path = netns_path(name)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
            os.close(fd)
            _check(lib.unshare(CLONE_NEWNET), "creating namespace", name)
            _check(lib.mount(b"/proc/thread-self/ns/net", str(path).encode(), b"none", MS_BIND, None),
                   "mounting namespace", name)
            on_created(name)
            setup(name)

    run_in_thread(work)


def delete_namespace(name: str) -> None:
    """Unmount and remove ``/run/netns/<name>`` (the kernel frees the namespace when nothing uses it)."""
    path = netns_path(name)
    libc().umount2(str(path).encode(), MNT_DETACH)
    os.unlink(path)


def in_namespaces(names: List[str], fn: Callable[[str], None]) -> None:
    """Call ``fn(name)`` with the worker thread inside each namespace in turn."""

    def work():
        for name in names:
            enter(name)
            fn(name)

    run_in_thread(work)
