"""The skeleton :class:`~ovnsim.testing.realovn.RealOVN` and
:class:`~ovnsim.testing.realdp.RealDatapath` share: OVN/OVS daemons as child
processes of this Python process, in a private temporary directory, talking
only over unix sockets.

One directory per harness (``<role>.db``, ``<role>.sock``, ``<role>.ctl``,
``<role>.pid``, ``<role>.log``); the environment points every OVS/OVN
directory variable at it and drops ``OVN_NB_DB``/``OVN_SB_DB``/``OVN_NB_DAEMON``,
so nothing talks to someone else's databases.

Every daemon is stopped by pid on every exit path:

* :meth:`DaemonHarness.stop`, the ``with`` block, and a ``weakref.finalize``
  (garbage collection, interpreter exit): SIGTERM, a wait, then SIGKILL;
* a parent that dies without running any of that (SIGKILL, ``os._exit``, a
  crash): daemons run in the foreground, started with ``PR_SET_PDEATHSIG`` =
  SIGKILL, so the kernel ends them with the parent.  A daemon that can only
  serve detached (ovn-trace: its daemon mode exists only with ``--detach``,
  whose fork clears the death signal) is registered, by its pidfile, with a
  *keeper* before it starts: a small child process reading a pipe that only
  the parent holds.  When the pipe ends (the parent closed it, or died), the
  keeper stops the process named by each registered pidfile whose command
  line still names this harness's directory, removes the directory (unless
  kept) and exits, so a killed run leaves neither daemons nor files.

Nothing is ever looked up or killed by name.  ``PR_SET_PDEATHSIG`` fires when
the *thread* that started a child ends: start a harness from a thread that
outlives it (normally the main thread).
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

from ovnsim.errors import OvnsimError

__all__ = ["DaemonHarness", "RealOVNError", "CommandError", "find_binary", "find_schema"]

#: Where Debian, Fedora and source installs put daemons that are not on a
#: normal user's PATH (Debian's ovsdb-server is in /usr/sbin).
_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin", "/usr/bin")
_SCHEMA_DIRS = ("/usr/share/ovn", "/usr/local/share/ovn", "/usr/share/openvswitch")

#: Unix socket paths must fit in sockaddr_un.sun_path (108 bytes on Linux);
#: the longest name in a work dir is "/ovs-vswitchd.ctl" under "ovnsim-xx-XXXXXXXX".
_MAX_SOCKET_PATH = 100
_SOCKET_NAME_ROOM = 40

_PR_SET_PDEATHSIG = 1


class RealOVNError(OvnsimError, RuntimeError):
    """Real OVN could not be started or used (missing binary, dead daemon...)."""


class CommandError(RealOVNError):
    """An OVN/OVS command-line tool failed.

    ``argv``, ``returncode``, ``stdout`` and ``stderr`` are the run's; the
    message quotes the command and its stderr.
    """

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str,
                 note: str = ""):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        shown = _shorten(" ".join(shlex.quote(a) for a in argv), 600)
        msg = f"{os.path.basename(argv[0])} failed (exit status {returncode}): {shown}"
        if note:
            msg += f"\n{note}"
        if stderr.strip():
            msg += f"\nstderr:\n{stderr.strip()}"
        super().__init__(msg)


class ConnectionClosed(RealOVNError):
    """A daemon closed its JSON-RPC connection (it exited or crashed)."""


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 5] + " ..."


def find_binary(name: str) -> Optional[str]:
    """Absolute path of an OVN/OVS program: PATH first, then the sbin dirs."""
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=os.pathsep.join(_EXTRA_BIN_DIRS))


def find_schema(name: str) -> Optional[str]:
    """Path of an OVSDB schema file (``ovn-nb.ovsschema``...) or None.

    ``$OVN_PKGDATADIR`` / ``$OVS_PKGDATADIR`` are searched first.
    """
    dirs = [os.environ.get("OVN_PKGDATADIR"), os.environ.get("OVS_PKGDATADIR"), *_SCHEMA_DIRS]
    for d in dirs:
        if d and os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    return None


# --------------------------------------------------------------------------
# Processes (kept apart from the harness so the finalizer holds no cycle)
# --------------------------------------------------------------------------


def _child_setup() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: die with the parent (a killed test run), and no core files
    (ovn-trace crashes by assertion on some flows)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (not Linux): existence is all we can tell
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not os.path.isdir("/proc")
    # the state is the field after the parenthesised command name
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def unix_connect(path: str) -> socket.socket:
    """A stream socket connected to the unix socket ``path`` (OSError if it cannot be)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def _pid_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


# The keeper (see the module doc).  It reads pidfile paths, one a line, until
# the pipe ends; then, unless the last line is "-" (the parent's own stop
# went through), it stops what each names (if the process's command line
# contains the work dir: a recycled pid is never hit) and removes the dir.
# ``-S -E``: no site, no environment, so it starts in a few ms and imports
# nothing of ovnsim.
_KEEPER = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
workdir, remove = sys.argv[1], sys.argv[2] == "1"
pidfiles = [line.rstrip("\n") for line in sys.stdin]
if pidfiles[-1:] == ["-"]:
    sys.exit(0)  # the parent stopped everything itself
def alive(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")
def ours(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return (workdir + "/").encode() in f.read().replace(b"\0", b" ")
    except OSError:
        return False
def sweep():
    pids = []
    for path in pidfiles:
        try:
            with open(path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if pid > 1 and alive(pid) and ours(pid):
            pids.append(pid)
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        pids = [p for p in pids if alive(p)]
        if not pids:
            break
sweep()
# a daemon forked just before the parent died may write its pidfile a moment later
time.sleep(0.2)
sweep()
if remove:
    deadline = time.monotonic() + 2.0
    while os.path.exists(workdir) and time.monotonic() < deadline:
        shutil.rmtree(workdir, ignore_errors=True)
        time.sleep(0.02)
"""


class _Children:
    """The processes one harness started and its directory.

    ``procs``: role -> the foreground child (a :class:`subprocess.Popen`).
    ``detached``: role -> the pid of a daemon that detached (read from its
    pidfile); signalled only while its command line still names ``workdir``.
    """

    def __init__(self, workdir: str, keep_dir: bool, stop_order: Sequence[str]):
        self.workdir = workdir
        self.keep_dir = keep_dir
        self.stop_order = tuple(stop_order)
        self.procs: Dict[str, subprocess.Popen] = {}
        self.detached: Dict[str, int] = {}
        self.keeper: Optional[subprocess.Popen] = None
        self._keeper_pipe: Optional[int] = None
        self._guarded: set = set()

    def start_keeper(self) -> None:
        read_end, self._keeper_pipe = os.pipe()
        try:
            # no death signal (it must outlive the parent), its own session
            # (a terminal's Ctrl-C or hang-up does not reach it)
            self.keeper = subprocess.Popen(
                [sys.executable, "-S", "-E", "-c", _KEEPER, self.workdir,
                 "0" if self.keep_dir else "1"],
                stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd="/", start_new_session=True)
        finally:
            os.close(read_end)

    def guard_pidfile(self, path: str) -> None:
        """Have the keeper stop the process ``path`` names if this process dies."""
        if self._keeper_pipe is None:
            raise RealOVNError("no keeper runs for detached daemons")
        if path not in self._guarded:  # a restarted daemon reuses its pidfile
            os.write(self._keeper_pipe, (path + "\n").encode())
            self._guarded.add(path)

    def pids(self) -> Dict[str, int]:
        out = {role: p.pid for role, p in self.procs.items()}
        out.update(self.detached)
        return out

    def owns(self, pid: int) -> bool:
        if not pid_alive(pid):
            return False
        cmdline = _pid_cmdline(pid)
        # Without /proc (not Linux) we cannot check; trust our own record.
        return (not cmdline and not os.path.isdir("/proc")) or (self.workdir + os.sep in cmdline)

    def terminate(self, role: str, timeout: float = 5.0) -> None:
        """Stop one process by pid: SIGTERM, wait, SIGKILL if needed."""
        proc = self.procs.pop(role, None)
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            return
        pid = self.detached.pop(role, None)
        if pid is None or not self.owns(pid):
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    return
                time.sleep(0.005)

    def stop(self) -> None:
        """Stop every process in ``stop_order`` (then any other), end the
        keeper, remove the directory unless kept."""
        roles = list(self.stop_order) + [r for r in (*self.procs, *self.detached)
                                         if r not in self.stop_order]
        for role in roles:
            self.terminate(role)
        if not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._keeper_pipe is not None:
            try:
                os.write(self._keeper_pipe, b"-\n")  # done: the keeper exits at once
            except OSError:
                pass  # it died: nothing to tell
            os.close(self._keeper_pipe)
            self._keeper_pipe = None
        if self.keeper is not None:
            try:
                self.keeper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.keeper.kill()
                self.keeper.wait()
            self.keeper = None


# --------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------


class DaemonHarness:
    """Common ground of the real-OVN harnesses (subclass; not used alone).

    ``Harness()`` only prepares; :meth:`start` (or ``with``) makes the work
    directory and runs the subclass's ``_boot()``; :meth:`stop` ends every
    process by pid.  Subclasses set :attr:`BINARIES`, :attr:`SCHEMAS`,
    ``_DIR_PREFIX`` and ``_STOP_ORDER``.

    Parameters:
        base_dir: where to create the temporary directory (default: the
            system temp dir, or ``/tmp`` when that path is too long for unix
            sockets).
        keep_dir: keep the directory (logs, databases) after :meth:`stop`.
        timeout: seconds any single command or daemon start may take.
    """

    #: The programs the harness runs; all must be installed for :meth:`available`.
    BINARIES: Tuple[str, ...] = ()
    #: The OVSDB schemas it creates databases from.
    SCHEMAS: Tuple[str, ...] = ("ovn-nb.ovsschema", "ovn-sb.ovsschema")
    _DIR_PREFIX = "ovnsim-"
    #: roles stopped first to last (clients before the databases they use)
    _STOP_ORDER: Tuple[str, ...] = ()
    #: what :meth:`available` calls the missing thing, and how to install it
    _WHAT = "real OVN"
    _INSTALL_HINT = ""

    def __init__(self, *, base_dir: Optional[str] = None, keep_dir: bool = False,
                 timeout: float = 30.0):
        self.base_dir = base_dir
        self.keep_dir = keep_dir
        self.timeout = float(timeout)
        #: the work directory (None until started)
        self.dir: Optional[str] = None
        #: seconds :meth:`start` took
        self.startup_seconds: Optional[float] = None
        self._children: Optional[_Children] = None
        self._finalizer: Optional[weakref.finalize] = None
        self._bins: Dict[str, str] = {}
        self._env: Dict[str, str] = {}
        self._sb: Optional[socket.socket] = None
        self._rpc_id = 0

    @classmethod
    def available(cls) -> Tuple[bool, str]:
        """``(True, "")`` if every program and schema is installed, else
        ``(False, reason)`` naming what is missing."""
        missing = [b for b in cls.BINARIES if find_binary(b) is None]
        schemas = [s for s in cls.SCHEMAS if find_schema(s) is None]
        if not missing and not schemas:
            return True, ""
        parts = []
        if missing:
            parts.append("programs not found: " + ", ".join(missing))
        if schemas:
            parts.append("schemas not found: " + ", ".join(schemas)
                         + " (searched $OVN_PKGDATADIR, " + ", ".join(_SCHEMA_DIRS) + ")")
        return False, f"{cls._WHAT} is not installed (" + "; ".join(parts) + ")" + cls._INSTALL_HINT

    @classmethod
    def skip_unless_available(cls) -> None:
        """In a test: skip it, with the reason, when the programs are missing;
        fail it instead when ``OVNSIM_REQUIRE_REAL_OVN`` is set (CI installs them)."""
        ok, reason = cls.available()
        if not ok:
            import pytest

            if os.environ.get("OVNSIM_REQUIRE_REAL_OVN", "") not in ("", "0"):
                pytest.fail(f"OVNSIM_REQUIRE_REAL_OVN is set but {reason}")
            pytest.skip(reason)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._children is not None

    @property
    def pids(self) -> Dict[str, int]:
        """Pids of the running processes by role."""
        return self._children.pids() if self._children else {}

    @property
    def nb_db(self) -> str:
        """The NB database remote, ``unix:<dir>/nb.sock``."""
        return "unix:" + self._path("nb.sock")

    @property
    def sb_db(self) -> str:
        """The SB database remote, ``unix:<dir>/sb.sock``."""
        return "unix:" + self._path("sb.sock")

    def ctl_path(self, role: str) -> str:
        """Unixctl socket of a role."""
        return self._path(f"{role}.ctl")

    def log_path(self, role: str) -> str:
        """Log file of a role."""
        return self._path(f"{role}.log")

    def _path(self, name: str) -> str:
        if self.dir is None:
            raise RealOVNError(f"{type(self).__name__} is not started")
        return os.path.join(self.dir, name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------- start, stop

    def start(self):
        """Make the work directory and boot the daemons; returns ``self``."""
        if self.running:
            return self
        ok, reason = self.available()
        if not ok:
            raise RealOVNError(reason)
        t0 = time.monotonic()
        self._bins = {b: find_binary(b) for b in self.BINARIES}  # type: ignore[misc]
        base = self.base_dir or tempfile.gettempdir()
        if len(os.path.abspath(base)) + _SOCKET_NAME_ROOM > _MAX_SOCKET_PATH:
            base = "/tmp"
        self.dir = tempfile.mkdtemp(prefix=self._DIR_PREFIX, dir=base)
        self._children = _Children(self.dir, self.keep_dir, self._STOP_ORDER)
        self._finalizer = weakref.finalize(self, self._children.stop)
        env = dict(os.environ)
        # never talk to someone else's ovn-nbctl daemon or databases
        for var in ("OVN_NB_DAEMON", "OVN_NB_DB", "OVN_SB_DB"):
            env.pop(var, None)
        for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR",
                    "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR", "OVN_SYSCONFDIR"):
            env[var] = self.dir
        self._env = env
        try:
            self._children.start_keeper()
            self._boot()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _boot(self) -> None:
        """Create databases and start daemons (the subclass's part of :meth:`start`)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every process this instance started (by pid) and remove its
        directory; safe to call more than once; also runs at interpreter exit."""
        self._close_sockets()
        if self._finalizer is not None:
            self._finalizer()  # runs _Children.stop once
        self._finalizer = None
        self._children = None

    def _close_sockets(self) -> None:
        """Close the harness's JSON-RPC connections (subclasses add theirs)."""
        if self._sb is not None:
            self._sb.close()
            self._sb = None

    # ------------------------------------------------------------- daemons

    def _daemon_options(self, role: str, unixctl: bool = True) -> List[str]:
        opts = ["--no-chdir", "--pidfile=" + self._path(f"{role}.pid"),
                "--log-file=" + self.log_path(role), "-vconsole:off"]
        if unixctl:
            opts.append("--unixctl=" + self.ctl_path(role))
        return opts

    def _spawn(self, role: str, argv: List[str], *, unixctl: bool = True) -> subprocess.Popen:
        """Start a daemon in the foreground, as a child that dies with this process."""
        assert self._children is not None
        # stderr goes to the log too: a daemon that cannot start says why there
        # (ovs_fatal writes to stderr, not to the log file)
        with open(self.log_path(role), "ab") as log:
            proc = subprocess.Popen(argv + self._daemon_options(role, unixctl),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log, env=self._env, cwd=self.dir,
                                    preexec_fn=_child_setup)
        self._children.procs[role] = proc
        return proc

    def _spawn_detached(self, role: str, argv: List[str]) -> int:
        """Start a daemon that only serves detached (``--detach``); returns its pid.

        The keeper learns its pidfile before it starts; ``--detach`` returns
        once the daemon is ready (OVS daemons detach when their start-up is
        complete); then its unixctl socket must answer.
        """
        assert self._children is not None
        pidfile = self._path(f"{role}.pid")
        for stale in (pidfile, self.ctl_path(role)):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        self._children.guard_pidfile(pidfile)
        try:
            self._run(argv + ["--detach"] + self._daemon_options(role))
        except CommandError as e:
            raise RealOVNError(f"{role} did not start: {e}\n{self._log_tail(role)}") from e
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            raise RealOVNError(f"{role} wrote no pidfile {pidfile}\n{self._log_tail(role)}") from None
        self._children.detached[role] = pid
        self._wait_ready(role, self.ctl_path(role))
        return pid

    def _wait_ready(self, role: str, sock_path: str) -> None:
        """Wait until ``sock_path`` accepts a connection; a one-line error with
        the log's tail if the daemon exits or the timeout passes first."""
        assert self._children is not None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                unix_connect(sock_path).close()
                return
            except OSError:
                pass
            proc = self._children.procs.get(role)
            if proc is not None and proc.poll() is not None:
                raise RealOVNError(f"{role} exited with status {proc.returncode} during start-up\n"
                                   f"{self._log_tail(role)}")
            pid = self._children.detached.get(role)
            if pid is not None and not pid_alive(pid):
                raise RealOVNError(f"{role} (pid {pid}) died during start-up\n{self._log_tail(role)}")
            if time.monotonic() > deadline:
                raise RealOVNError(f"{role} did not open {sock_path} in {self.timeout:g} s\n"
                                   f"{self._log_tail(role)}")
            time.sleep(0.002)

    def _start_databases(self, roles: Sequence[Tuple[str, str]]) -> None:
        """``ovsdb-tool create`` and an ovsdb-server per (role, schema); waits
        until every server accepts connections."""
        for role, schema in roles:
            db = self._path(f"{role}.db")
            self._run([self._bins["ovsdb-tool"], "create", db, find_schema(schema)])  # type: ignore[list-item]
            self._spawn(role, [self._bins["ovsdb-server"], db,
                               "--remote=punix:" + self._path(f"{role}.sock")])
        for role, _ in roles:
            self._wait_ready(role, self._path(f"{role}.sock"))

    def _start_northd(self) -> None:
        """ovn-northd between the NB and SB databases; waits for its unixctl socket."""
        self._spawn("northd", [self._bins["ovn-northd"],
                               "--ovnnb-db=" + self.nb_db, "--ovnsb-db=" + self.sb_db])
        self._wait_ready("northd", self.ctl_path("northd"))

    def _log_tail(self, role: str, lines: int = 15) -> str:
        try:
            with open(self.log_path(role), errors="replace") as f:
                tail = f.readlines()[-lines:]
        except (OSError, RealOVNError):
            return f"(no {role} log)"
        return f"last lines of {self.log_path(role)}:\n" + "".join(tail)

    # ------------------------------------------------------------ commands

    def _run(self, argv: Sequence[str], *, timeout: Optional[float] = None, note: str = "") -> str:
        """Run a program to completion, return stdout; CommandError on a
        non-zero exit or a timeout.  It too dies with this process."""
        try:
            proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, env=self._env or None, cwd=self.dir,
                                  timeout=timeout or self.timeout + 5, preexec_fn=_child_setup)
        except subprocess.TimeoutExpired as e:
            raise CommandError(argv, -1, "", f"timed out after {e.timeout} s", note) from None
        if proc.returncode != 0:
            raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr, note)
        return proc.stdout

    def _jsonrpc(self, sock: socket.socket, method: str, params) -> dict:
        """One JSON-RPC request on ``sock``; the reply with the request's id.

        Messages with another id (notifications, echoes) are skipped.  Raises
        :class:`ConnectionClosed` if the peer closes the connection,
        :class:`socket.timeout` after :attr:`timeout` seconds.
        """
        self._rpc_id += 1
        rpc_id = self._rpc_id
        sock.settimeout(self.timeout)
        sock.sendall(json.dumps({"method": method, "params": params, "id": rpc_id}).encode())
        decoder = json.JSONDecoder()
        buf = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionClosed(f"connection closed during {method}")
            buf += chunk
            # a reply is an object: decode only when the data may end one
            while buf.rstrip().endswith(b"}"):
                try:
                    text = buf.decode("utf-8").lstrip()
                    msg, end = decoder.raw_decode(text)
                except ValueError:  # incomplete (UnicodeDecodeError is one too)
                    break
                buf = text[end:].encode()
                if isinstance(msg, dict) and msg.get("id") == rpc_id:
                    return msg

    def _sb_select(self, table: str, columns: Sequence[str], where: Sequence = ()) -> List[dict]:
        """Rows of an SB table straight over JSON-RPC (no process, ~0.3 ms),
        in OVSDB's JSON notation (``["uuid", ...]``, ``["map", ...]``)."""
        if self._sb is None:
            self._sb = unix_connect(self._path("sb.sock"))
        reply = self._jsonrpc(self._sb, "transact", ["OVN_Southbound", {
            "op": "select", "table": table, "where": list(where), "columns": list(columns)}])
        if reply.get("error") is not None:
            raise RealOVNError(f"SB select {table}: {reply['error']}")
        result = reply["result"][0]
        if "error" in result:
            raise RealOVNError(f"SB select {table}: {result['error']}: {result.get('details', '')}")
        return result["rows"]
