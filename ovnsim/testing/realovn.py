"""Real OVN as plain processes: the reference ovnsim is tested against.

:class:`RealOVN` starts, in a private temporary directory and talking only
over unix sockets, the parts of OVN 23.03 that compute and interpret the
logical pipeline -- no kernel module, no root, no systemd, no ovn-controller:

* two ``ovsdb-server`` processes, one for the northbound (NB) and one for the
  southbound (SB) database;
* ``ovn-northd``, which compiles NB objects into SB logical flows;
* on demand, an ``ovn-trace`` daemon that answers ``trace`` requests over
  JSON-RPC on its unixctl socket.

Measured here (OVN 23.03.1): start-up (create DBs, three daemons, first
sync) about 75 ms; ``reset()`` about 35 ms; loading 3000 ovn-nbctl commands
about 70 ms.  A one-shot ``ovn-trace`` re-reads the whole SB database: about
21 ms on a 5-datapath topology, 460 ms on 64 datapaths.  Through the daemon
a trace takes 0.07-0.25 ms (JSON-RPC straight to its socket, no
``ovn-appctl``), and a daemon (re)start costs about one one-shot trace.
The names a trace needs (a port's datapath, the datapaths' uuids) come from
the SB over JSON-RPC too, cached until the SB may change: on the reference
topology, 2 busy cores, ``ovntrace.run_trace`` takes 0.6 ms a microflow
(33 ms while each lookup ran ``ovn-sbctl``) and ``trace_result`` with its
parse 1.5 ms (53 ms).

Typical use (the pytest fixtures in ``tests/conftest.py`` wrap this)::

    with RealOVN() as ovn:
        ovn.run_nbctl_script([["ls-add", "net1"], ["lsp-add", "net1", "vm1"]])
        ovn.sync()
        print(ovn.lflow_list("net1"))
        print(ovn.daemon_trace("net1", 'inport == "vm1" && ...', "--minimal"))
        ovn.reset()                     # empty NB again, ready for the next topology

The processes are children of this Python process (the skeleton shared
with :class:`~ovnsim.testing.realdp.RealDatapath`, in
:mod:`ovnsim.testing._harness`): the databases and ovn-northd run in the
foreground, started with ``PR_SET_PDEATHSIG`` so that they die with a killed
test run; the ovn-trace daemon, whose daemon mode exists only with
``--detach``, is watched by the harness's keeper process, which stops it (by
the pid in its pidfile) and removes the directory if this process dies.
Every process is stopped by pid (SIGTERM, then SIGKILL), never by name, by
:meth:`RealOVN.stop`, the ``with`` block, and a ``weakref.finalize`` at
interpreter exit.

ovn-trace quirks handled here (see ``/work/shared/OVN-NOTES.md``, sections 0
and 4): the daemon reads the SB database once, so it is restarted whenever
the databases may have changed; it accepts only the output-format options
(:data:`DAEMON_TRACE_OPTIONS`), so anything else (``--ct=...``, ``--lb-dst``)
falls back to a one-shot run; some flows crash ovn-trace 23.03 (finding 5),
in which case the flow is re-run one-shot to capture the assertion message,
:class:`TraceCrash` is raised and the daemon is restarted on the next call.
:meth:`RealOVN.gateway_router_trace_fix` implements finding 1 (retype
``l3gateway`` port bindings as ``patch`` so that traces through a gateway
router's ``ct_snat;`` continue).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import subprocess
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ovnsim.testing._harness import (CommandError, ConnectionClosed, DaemonHarness, RealOVNError,
                                     _child_setup, find_binary, find_schema, unix_connect)

__all__ = [
    "RealOVN",
    "RealOVNError",
    "CommandError",
    "TraceError",
    "TraceCrash",
    "BINARIES",
    "DAEMON_TRACE_OPTIONS",
    "find_binary",
    "find_schema",
]

#: The programs RealOVN runs; all must be present for :meth:`RealOVN.available`.
BINARIES = (
    "ovsdb-tool",
    "ovsdb-server",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
    "ovn-trace",
    "ovn-appctl",
)

#: The only options the ovn-trace daemon's ``trace`` command accepts; a
#: :meth:`RealOVN.daemon_trace` call with any other option runs one-shot.
DAEMON_TRACE_OPTIONS = frozenset({"--detailed", "--summary", "--minimal", "--all"})

#: ovn-nbctl global options a script line may carry (ignored: RealOVN sets
#: its own --db and --timeout; --wait asks for a sync after the script).
_NBCTL_GLOBAL_OPTIONS = (
    "--db", "--timeout", "--wait", "--no-wait", "--print-wait-time",
    "--leader-only", "--no-leader-only", "--shuffle-remotes",
    "--no-shuffle-remotes", "--no-syslog",
)

#: ovn-nbctl / ovn-sbctl commands that do not write (no daemon restart needed).
_READ_ONLY_COMMANDS = frozenset({
    "show", "list", "get", "find", "ls-list", "lr-list", "lsp-list", "lrp-list",
    "lsp-get-addresses", "lsp-get-port-security", "lsp-get-type",
    "lsp-get-options", "lr-route-list", "lr-nat-list", "lr-policy-list",
    "acl-list", "lb-list", "lrp-get-gateway-chassis", "lflow-list",
    "dump-flows", "chassis-list", "wait-until", "comment",
})

#: Batch limits for run_nbctl_script: one ovn-nbctl invocation loads about
#: 3000 commands in 70 ms, while 200-command batches take 4x as long.
_MAX_BATCH_COMMANDS = 5000
_MAX_BATCH_BYTES = 512 * 1024



# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class TraceError(RealOVNError):
    """ovn-trace rejected a trace (bad microflow, unknown datapath, bad option)."""

    def __init__(self, message: str, datapath: str = "", microflow: str = ""):
        self.message = message
        self.datapath = datapath
        self.microflow = microflow
        super().__init__(f"ovn-trace {datapath!r} {microflow!r}: {message}")


class TraceCrash(TraceError):
    """ovn-trace died while tracing (e.g. the 23.03 assertions of finding 5).

    ``message`` holds what the one-shot run printed on stderr (the assertion),
    ``signal`` the number of the signal that killed it (or None).
    """

    def __init__(self, message: str, datapath: str = "", microflow: str = "",
                 signal_number: Optional[int] = None):
        self.signal = signal_number
        super().__init__(message, datapath, microflow)


# --------------------------------------------------------------------------
# RealOVN
# --------------------------------------------------------------------------


class RealOVN(DaemonHarness):
    """OVN's NB/SB databases, ovn-northd and ovn-trace, run in a temp dir.

    ``RealOVN()`` only prepares; :meth:`start` (or ``with RealOVN() as ovn``)
    creates the databases and starts the daemons, and returns once
    ovn-northd has answered a ``--wait=sb sync``.  Parameters
    (``base_dir``, ``keep_dir``, ``timeout``): see
    :class:`~ovnsim.testing._harness.DaemonHarness`.
    """

    BINARIES = BINARIES
    _DIR_PREFIX = "ovnsim-ovn-"
    _STOP_ORDER = ("trace", "northd", "sb", "nb")

    def __init__(self, *, base_dir: Optional[str] = None, keep_dir: bool = False,
                 timeout: float = 30.0):
        super().__init__(base_dir=base_dir, keep_dir=keep_dir, timeout=timeout)
        self._northd_paused = False
        # SB content generation: bumped by anything that may change the SB;
        # the trace daemon is restarted, and the name maps are re-read, when
        # their generation is older.
        self._generation = 0
        self._daemon_generation = -1
        self._daemon_sock: Optional[socket.socket] = None
        self._nb_root_tables: Optional[List[str]] = None
        self._names_generation = -1
        self._datapath_names: Dict[str, str] = {}
        self._port_datapaths: Dict[str, str] = {}

    # ---------------------------------------------------------------- setup

    def _boot(self) -> None:
        """ovsdb-server x2 and ovn-northd in the foreground, then a first sync."""
        self._start_databases((("nb", "ovn-nb.ovsschema"), ("sb", "ovn-sb.ovsschema")))
        self._start_northd()
        self._run_nbctl(["--wait=sb", "sync"])

    def stop(self) -> None:
        """Stop every process this instance started (by pid) and remove its dir.

        Safe to call more than once; also runs at interpreter exit.
        """
        super().stop()
        self._northd_paused = False
        self._daemon_generation = -1
        self._names_generation = -1

    def _close_sockets(self) -> None:
        self._close_daemon_socket()
        super()._close_sockets()

    # -------------------------------------------------------------- commands

    def _run_nbctl(self, args: Sequence[str], note: str = "") -> str:
        self._require_running()
        argv = [self._bins["ovn-nbctl"], "--db=" + self.nb_db,
                f"--timeout={int(self.timeout)}", *args]
        return self._run(argv, note=note)

    def _run_sbctl(self, args: Sequence[str]) -> str:
        self._require_running()
        argv = [self._bins["ovn-sbctl"], "--db=" + self.sb_db,
                f"--timeout={int(self.timeout)}", *args]
        return self._run(argv)

    def _require_running(self) -> None:
        if not self.running:
            raise RealOVNError("RealOVN is not started (use start() or a with block)")

    def _touch(self, args: Sequence[str]) -> None:
        """Note that the SB may change unless ``args`` are read-only."""
        words = [a for a in args if not a.startswith("-")]
        if not words or words[0] not in _READ_ONLY_COMMANDS:
            self._generation += 1

    def nbctl(self, *args: str) -> str:
        """Run ``ovn-nbctl --db=<NB> ARGS...`` and return its stdout.

        Raises :class:`CommandError` (with stderr) on failure.
        """
        self._touch(args)
        return self._run_nbctl(args)

    def sbctl(self, *args: str) -> str:
        """Run ``ovn-sbctl --db=<SB> ARGS...`` and return its stdout."""
        self._touch(args)
        return self._run_sbctl(args)

    def appctl(self, role: str, *args: str) -> str:
        """Run ``ovn-appctl -t <role's unixctl socket> ARGS...``."""
        self._require_running()
        return self._run([self._bins["ovn-appctl"], "-t", self.ctl_path(role), *args])

    def run_nbctl_script(self, lines: Union[Iterable[Sequence[str]], Sequence[str], str]) -> int:
        """Load many ovn-nbctl commands with as few invocations as possible.

        ``lines`` is a list of argv lists, one ovn-nbctl command each
        (``[["ls-add", "net1"], ["--may-exist", "lsp-add", "net1", "vm1"]]``),
        or one flat argv list of commands separated by ``"--"`` (ovn-nbctl's
        own batch syntax).  A line may also start with ``"ovn-nbctl"`` and
        global options (dropped; ``--wait=...`` makes the script end with a
        :meth:`sync`), or contain ``"--"`` separators itself.  A ``str`` is
        taken as script text, one command per line, each split with
        :func:`shlex.split` (no shell is involved; ``#`` starts a comment).

        Commands are sent in batches of up to 5000 (each batch is one
        transaction; later batches see earlier ones).  Returns the number of
        commands run.  On failure :class:`CommandError` names the batch.
        """
        commands, want_sync = _normalise_script(lines)
        self._touch(["script"])
        batches: List[List[List[str]]] = []
        size = 0
        for cmd in commands:
            cost = sum(len(a) + 1 for a in cmd) + 3
            # a command naming a row created earlier in the transaction
            # (``dhcpv4_options=@dhcp0``) stays in that row's batch
            refers = any("=@" in a and not a.startswith("--id=") for a in cmd)
            if not batches or (not refers and (len(batches[-1]) >= _MAX_BATCH_COMMANDS
                                               or size + cost > _MAX_BATCH_BYTES)):
                batches.append([])
                size = 0
            batches[-1].append(cmd)
            size += cost
        done = 0
        for batch in batches:
            argv: List[str] = []
            for cmd in batch:
                argv += ["--", *cmd]
            note = (f"(batch of script commands {done + 1}..{done + len(batch)}; the whole "
                    f"batch was rolled back; earlier batches are committed)")
            self._run_nbctl(argv, note=note)
            done += len(batch)
        if want_sync:
            self.sync()
        return done

    def sync(self) -> None:
        """``ovn-nbctl --wait=sb sync``: return once northd has updated the SB."""
        if self._northd_paused:
            raise RealOVNError("ovn-northd is paused (gateway_router_trace_fix?): "
                               "call resume_northd() before sync()")
        self._generation += 1
        self._run_nbctl(["--wait=sb", "sync"])

    def _root_tables(self) -> List[str]:
        """NB root tables except NB_Global (what reset() empties)."""
        if self._nb_root_tables is None:
            with open(find_schema("ovn-nb.ovsschema")) as f:  # type: ignore[arg-type]
                schema = json.load(f)
            self._nb_root_tables = sorted(
                t for t, d in schema["tables"].items() if d.get("isRoot") and t != "NB_Global")
        return self._nb_root_tables

    def reset(self) -> None:
        """Delete all NB content and what tests add to the SB, then sync.

        Destroys every row of every NB root table but NB_Global (switches,
        routers, port groups, address sets, DHCP options, load balancers, BFD,
        ...; ports, routes, NAT and ACL rows go with them), resumes a paused
        northd, syncs, and removes SB MAC_Binding/FDB/Chassis rows a test may
        have inserted.  Takes a few tens of ms.
        """
        self._require_running()
        if self._northd_paused:
            self.resume_northd()
        self._generation += 1
        args: List[str] = []
        for table in self._root_tables():
            args += ["--", "--all", "destroy", table]
        self._run_nbctl(args)
        self.sync()
        self._run_sbctl(["--", "--all", "destroy", "MAC_Binding",
                         "--", "--all", "destroy", "FDB",
                         "--", "--all", "destroy", "Chassis_Private",
                         "--", "--all", "destroy", "Chassis"])

    # ---------------------------------------------------------------- queries

    def lflow_list(self, datapath: Optional[str] = None) -> str:
        """``ovn-sbctl lflow-list [DATAPATH]`` output (all datapaths by default)."""
        return self._run_sbctl(["lflow-list"] + ([datapath] if datapath else []))

    def sb_rows(self, table: str, columns: Sequence[str] = (),
                conditions: Sequence[str] = ()) -> List[Dict[str, object]]:
        """SB rows as dicts (``ovn-sbctl --format=json list|find``).

        OVSDB values are decoded: maps -> dict, sets -> list, uuids -> str.
        """
        return self._json_rows(self._run_sbctl, table, columns, conditions)

    def nb_rows(self, table: str, columns: Sequence[str] = (),
                conditions: Sequence[str] = ()) -> List[Dict[str, object]]:
        """NB rows as dicts, like :meth:`sb_rows`."""
        return self._json_rows(self._run_nbctl, table, columns, conditions)

    @staticmethod
    def _json_rows(run, table, columns, conditions) -> List[Dict[str, object]]:
        args = ["--format=json"]
        if columns:
            args.append("--columns=" + ",".join(columns))
        args += (["find", table, *conditions] if conditions else ["list", table])
        doc = json.loads(run(args))
        return [{h: _ovsdb_value(v) for h, v in zip(doc["headings"], row)} for row in doc["data"]]

    def port_groups(self) -> Dict[str, Dict[str, object]]:
        """The NB Port_Group rows by name, lossless: ``{"ports": [...], "external_ids": {...}, "acls": [...]}``.

        ``ports`` are switch port names, sorted; ``acls`` the rows' ``(direction,
        priority, match, action, external_ids)`` tuples, sorted.  Neither
        ``ovn-nbctl show`` nor ``acl-list`` prints a port group's members or
        an ACL's external_ids.
        """
        lsp = {str(r["_uuid"]): str(r["name"]) for r in self.nb_rows("Logical_Switch_Port", ["_uuid", "name"])}
        acls = {str(r["_uuid"]): (str(r["direction"]), int(r["priority"]), str(r["match"]), str(r["action"]),
                                  dict(r["external_ids"]))  # type: ignore[call-overload, arg-type]
                for r in self.nb_rows("ACL", ["_uuid", "direction", "priority", "match", "action", "external_ids"])}

        def refs(value) -> List[str]:
            return [value] if isinstance(value, str) else list(value)  # a one-element set decodes as its uuid

        out: Dict[str, Dict[str, object]] = {}
        for r in self.nb_rows("Port_Group", ["name", "ports", "acls", "external_ids"]):
            out[str(r["name"])] = {
                "ports": sorted(lsp[u] for u in refs(r["ports"])),
                "external_ids": dict(r["external_ids"]),  # type: ignore[call-overload]
                "acls": sorted((acls[u] for u in refs(r["acls"])), key=repr),
            }
        return out

    def datapaths(self) -> List[str]:
        """Sorted names (``external_ids:name``) of the SB Datapath_Bindings."""
        rows = self.sb_rows("Datapath_Binding", ["external_ids"])
        return sorted(str(r["external_ids"].get("name", "")) for r in rows)  # type: ignore[union-attr]

    def datapath_names(self) -> Dict[str, str]:
        """Map NB and SB uuids of every datapath to its name.

        With ``--no-friendly-names`` ovn-trace prints ``dp="<NB uuid>"``;
        this map turns that back into a switch or router name.  Read over
        JSON-RPC and kept until a RealOVN call may have changed the SB (as
        the trace daemon's copy is), so per-flow callers pay nothing.
        """
        self._read_names()
        return dict(self._datapath_names)

    def port_datapath(self, port: str) -> Optional[str]:
        """The name of the datapath a logical port is bound on (None if no
        SB Port_Binding has that name); cached like :meth:`datapath_names`."""
        self._read_names()
        if port not in self._port_datapaths:
            self._read_names(force=True)  # northd may have caught up since
        return self._port_datapaths.get(port)

    def _read_names(self, force: bool = False) -> None:
        self._require_running()
        if not force and self._names_generation == self._generation:
            return
        generation = self._generation
        names: Dict[str, str] = {}
        for r in self._sb_select("Datapath_Binding", ["_uuid", "external_ids"]):
            ids = _ovsdb_value(r["external_ids"])
            name = str(ids.get("name", ""))
            names[str(_ovsdb_value(r["_uuid"]))] = name
            for key in ("logical-switch", "logical-router"):
                if key in ids:
                    names[str(ids[key])] = name
        ports = {}
        for r in self._sb_select("Port_Binding", ["logical_port", "datapath"]):
            uuid = str(_ovsdb_value(r["datapath"]))
            ports[str(r["logical_port"])] = names.get(uuid) or uuid
        self._datapath_names, self._port_datapaths = names, ports
        self._names_generation = generation

    def nat_list(self, router: str) -> List[Tuple[str, str, str, Optional[str], Optional[str], bool]]:
        """A router's NAT rows, lossless and sorted:
        ``(type, external_ip, logical_ip, external_mac, logical_port, stateless)``.

        ``ovn-nbctl show`` prints neither external_mac, logical_port nor
        stateless, and ``lr-nat-list`` truncates IPv6 addresses; this reads
        the NAT rows themselves.
        """
        uuids = set(self._run_nbctl(
            ["--bare", "--columns=nat", "list", "Logical_Router", router]).split())
        out = []
        for row in self.nb_rows("NAT"):
            if str(row["_uuid"]) not in uuids:
                continue
            mac = row["external_mac"]
            port = row["logical_port"]
            stateless = str(row["options"].get("stateless", "false")) == "true"  # type: ignore[union-attr]
            out.append((str(row["type"]), str(row["external_ip"]), str(row["logical_ip"]),
                        str(mac) if mac not in ([], "") else None,
                        str(port) if port not in ([], "") else None, stateless))
        return sorted(out, key=lambda t: tuple("" if v is None else str(v) for v in t))

    # ------------------------------------------------------------ ovn-trace

    def trace(self, datapath: str, microflow: str, *options: str) -> str:
        """One-shot ``ovn-trace --db=<SB> --no-friendly-names OPTIONS DATAPATH MICROFLOW``.

        Any ovn-trace option is accepted (``--ct=new``, ``--minimal``...).
        Returns stdout.  Raises :class:`TraceCrash` if ovn-trace died on a
        signal (message = its stderr, e.g. the assertion for an unknown
        ``inport``), :class:`TraceError` for an unknown datapath, a microflow
        that does not parse (ovn-trace prints those with exit status 0) and
        other failures.
        """
        self._require_running()
        argv = [self._bins["ovn-trace"], "--db=" + self.sb_db, "--no-friendly-names",
                *options, datapath, microflow]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, env=self._env, cwd=self.dir,
                                  timeout=self.timeout, preexec_fn=_child_setup)
        except subprocess.TimeoutExpired:
            raise TraceError(f"timed out after {self.timeout} s", datapath, microflow) from None
        if proc.returncode < 0:
            raise TraceCrash(proc.stderr.strip() or f"killed by signal {-proc.returncode}",
                             datapath, microflow, -proc.returncode)
        if proc.returncode != 0:
            raise TraceError(proc.stderr.strip() or f"exit status {proc.returncode}",
                             datapath, microflow)
        return _check_trace_output(proc.stdout, datapath, microflow)

    def daemon_trace(self, datapath: str, microflow: str, *options: str) -> str:
        """Trace with the ovn-trace daemon (JSON-RPC on its unixctl socket).

        Same result as :meth:`trace` for the options in
        :data:`DAEMON_TRACE_OPTIONS`; any other option runs :meth:`trace`
        one-shot.  The daemon is (re)started when the databases may have
        changed since it started.  If it dies on this flow, the flow is re-run
        one-shot (so a crash raises :class:`TraceCrash` with ovn-trace's
        message) and the daemon is restarted on the next call.
        """
        if any(o not in DAEMON_TRACE_OPTIONS for o in options):
            return self.trace(datapath, microflow, *options)
        self._require_running()
        if self._daemon_generation != self._generation or "trace" not in self.pids:
            self.restart_trace_daemon()
        try:
            ok, value = self._rpc("trace", [*options, datapath, microflow])
        except _DaemonGone:
            self.stop_trace_daemon()
            return self.trace(datapath, microflow, *options)
        if not ok:
            raise TraceError(value, datapath, microflow)
        return _check_trace_output(value, datapath, microflow)

    def start_trace_daemon(self) -> int:
        """Start the ovn-trace daemon on the current SB content; returns its pid.

        Returns once the daemon has read the database and answers on its
        unixctl socket.  ovn-trace serves only with ``--detach`` (it forks,
        which clears a death signal), so the harness's keeper stops it if
        this process dies.
        """
        self._require_running()
        self.stop_trace_daemon()
        generation = self._generation
        pid = self._spawn_detached("trace", [
            self._bins["ovn-trace"], "--db=" + self.sb_db, "--no-friendly-names",
        ])
        self._daemon_generation = generation
        return pid

    def stop_trace_daemon(self) -> None:
        """Stop the ovn-trace daemon (by pid) if it runs."""
        self._close_daemon_socket()
        if self._children is not None:
            self._children.terminate("trace")
        self._daemon_generation = -1

    def restart_trace_daemon(self) -> int:
        """Restart the daemon so that it reads the SB again (after DB changes).

        :meth:`daemon_trace` does this by itself after any RealOVN call that
        may have changed the databases; call it after changing them by other
        means.
        """
        return self.start_trace_daemon()

    def _close_daemon_socket(self) -> None:
        if self._daemon_sock is not None:
            try:
                self._daemon_sock.close()
            finally:
                self._daemon_sock = None

    def _rpc(self, method: str, params: List[str]) -> Tuple[bool, str]:
        """One JSON-RPC request to the trace daemon: (True, result) or (False, error)."""
        try:
            if self._daemon_sock is None:
                self._daemon_sock = unix_connect(self.ctl_path("trace"))
            reply = self._jsonrpc(self._daemon_sock, method, params)
        except socket.timeout:
            self.stop_trace_daemon()
            raise TraceError(f"ovn-trace daemon gave no answer in {self.timeout} s",
                             *params[-2:]) from None
        except ConnectionClosed as e:
            raise _DaemonGone(str(e)) from None
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ECONNREFUSED, errno.ENOENT) \
                    or isinstance(e, ConnectionError):
                raise _DaemonGone(str(e)) from None
            raise
        if reply.get("error") is not None:
            return False, str(reply["error"]).strip()
        return True, reply.get("result") or ""

    # ---------------------------------------------------------------- northd

    def pause_northd(self) -> None:
        """``ovn-appctl -t northd pause``: northd stops writing the SB."""
        self.appctl("northd", "pause")
        self._northd_paused = True

    def resume_northd(self) -> None:
        """``ovn-appctl -t northd resume``."""
        self.appctl("northd", "resume")
        self._northd_paused = False
        self._generation += 1

    @property
    def northd_paused(self) -> bool:
        """True while northd is paused by :meth:`pause_northd`."""
        return self._northd_paused

    def gateway_router_trace_fix(self) -> List[str]:
        """OVN-NOTES finding 1: make ovn-trace trace through gateway routers.

        Syncs, pauses northd (so that it does not undo the change) and
        retypes every SB Port_Binding of type ``l3gateway`` as ``patch``:
        ovn-trace then treats a gateway router's ``ct_snat;`` as "no un-snat
        entry" and continues, as on a distributed router.  Returns the names
        of the retyped ports.  :meth:`reset` or :meth:`resume_northd` undo it
        (northd rewrites the bindings).
        """
        self.sync()
        self.pause_northd()
        rows = self.sb_rows("Port_Binding", ["_uuid", "logical_port"], ["type=l3gateway"])
        if rows:
            args: List[str] = []
            for r in rows:
                args += ["--", "set", "Port_Binding", str(r["_uuid"]), "type=patch"]
            self._run_sbctl(args)
        self._generation += 1
        return sorted(str(r["logical_port"]) for r in rows)


def _check_trace_output(output: str, datapath: str, microflow: str) -> str:
    """ovn-trace prints its two input errors as ordinary output, exit status 0."""
    if output.startswith(("unknown datapath ", "error parsing flow: ")):
        raise TraceError(output.strip(), datapath, microflow)
    return output


class _DaemonGone(Exception):
    """The ovn-trace daemon's socket closed or is gone (it crashed)."""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _ovsdb_value(v):
    """Decode an OVSDB JSON value: ["map", ...] -> dict, ["set", ...] -> list,
    ["uuid", u] -> u."""
    if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
        tag, body = v
        if tag == "map":
            return {_ovsdb_value(k): _ovsdb_value(x) for k, x in body}
        if tag == "set":
            return [_ovsdb_value(x) for x in body]
        if tag in ("uuid", "named-uuid"):
            return body
    return v


def _split_dashes(argv: Sequence[str]) -> List[List[str]]:
    out: List[List[str]] = [[]]
    for a in argv:
        if a == "--":
            out.append([])
        else:
            out[-1].append(a)
    return [c for c in out if c]


def _normalise_script(lines) -> Tuple[List[List[str]], bool]:
    """Script -> (list of one-command argv lists, whether --wait was asked).

    Accepts a list of argv lists, one flat argv list (``--``-separated), or
    script text (a ``str``: one ovn-nbctl command per line, shell quoting).
    """
    if isinstance(lines, str):
        lines = [shlex.split(ln, comments=True) for ln in lines.splitlines()]
    else:
        lines = list(lines)
        if lines and all(isinstance(x, str) for x in lines):
            lines = [lines]  # one flat argv: cmd1 -- cmd2 -- ...
    commands: List[List[str]] = []
    want_sync = False
    for line in lines:
        if isinstance(line, (str, bytes)):
            raise TypeError(f"script line {line!r}: expected an argv list")
        argv = [str(a) for a in line]
        if argv and os.path.basename(argv[0]) == "ovn-nbctl":
            argv = argv[1:]
            # global options come before the first command word
            while argv and argv[0].startswith("-") and argv[0] != "--":
                opt = argv[0]
                if opt.startswith(_NBCTL_GLOBAL_OPTIONS):
                    if opt.startswith("--wait") and opt != "--wait=none":
                        want_sync = True
                    argv = argv[1:]
                elif opt == "-t":
                    argv = argv[2:]
                else:
                    break  # a command option such as --may-exist
        commands.extend(_split_dashes(argv))
    return commands, want_sync
