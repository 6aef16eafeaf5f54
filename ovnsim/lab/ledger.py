"""The ledger: one JSON state file per lab, in one directory for the machine.

The directory is ``$OVNSIM_LAB_DIR`` or ``/run/ovnsim/labs`` (``/run`` is
cleared at boot, as the namespaces are), so ``status``, ``down`` and
``cleanup`` find every lab from any working directory.  Test runs keep
theirs in a directory of the run's own under ``/run/ovnsim/runs``
(:mod:`ovnsim.lab.runs`), never in a temporary directory that could vanish
while the namespaces it names remain.  The file names every
Linux object of the lab *before* ``up`` creates it; ``down``/``cleanup``
delete what it lists and nothing else.

Only namespaces are ever created in the host's view: every bridge, veth,
address, route, neighbour and nftables rule lives inside one of them, so
deleting the namespaces the ledger lists deletes the whole lab.  Each
namespace entry records the inode of the namespace once it exists; a
namespace found under a ledger name with another inode was made by someone
else after the lab lost its own (e.g. a reboot, then a look-alike) and is
left alone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from ovnsim.lab.plan import LabError, LabPlan, check_lab_name, lab_token

#: Where the state files live unless $OVNSIM_LAB_DIR says otherwise.
DEFAULT_LAB_DIR = "/run/ovnsim/labs"
#: Where named network namespaces are mounted (iproute2's convention).
NETNS_RUN_DIR = "/run/netns"
LEDGER_VERSION = 1

STATE_BUILDING = "building"
STATE_UP = "up"
STATE_TEARING_DOWN = "tearing-down"


def lab_dir() -> Path:
    """The directory holding every lab's state file."""
    return Path(os.environ.get("OVNSIM_LAB_DIR") or DEFAULT_LAB_DIR)


def netns_path(name: str) -> Path:
    """Where namespace ``name`` is mounted."""
    return Path(NETNS_RUN_DIR) / name


def netns_identity(name: str) -> Optional[List[int]]:
    """(device, inode) of the namespace mounted as ``name``, or None when there is none."""
    try:
        st = os.stat(netns_path(name))
    except FileNotFoundError:
        return None
    # An unmounted leftover file (a crash between creating the mount point
    # and mounting) is not a namespace: it lives on /run's own device.
    if st.st_dev == os.stat(NETNS_RUN_DIR).st_dev:
        return None
    return [st.st_dev, st.st_ino]


class Ledger:
    """The state file of one lab: its plan, state and the namespaces it owns."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data

    # -- reading -----------------------------------------------------------
    @property
    def name(self) -> str:
        """The lab's name."""
        return self.data["name"]

    @property
    def state(self) -> str:
        """``building``, ``up`` or ``tearing-down`` as written (see :func:`status_of` for what exists)."""
        return self.data.get("state", "")

    @property
    def plan(self) -> LabPlan:
        """The lab's plan, as written before anything was created."""
        return LabPlan.from_dict(self.data["plan"])

    @property
    def namespaces(self) -> List[dict]:
        """``[{"name": ..., "id": [dev, inode] or None}]`` in creation order."""
        return self.data["namespaces"]

    @classmethod
    def load(cls, name: str, directory: Optional[Path] = None) -> "Ledger":
        """The ledger of lab ``name`` (in ``directory``, default :func:`lab_dir`); a :class:`LabError` if there
        is none or it is not one."""
        check_lab_name(name)
        path = Path(directory or lab_dir()) / f"{name}.json"
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise LabError(f"no lab named {name!r} (no state file {path})") from None
        except (OSError, ValueError) as err:
            raise LabError(f"{path}: unreadable lab state file: {err}") from None
        if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION or data.get("name") != name:
            raise LabError(f"{path}: not an ovnsim lab state file (version {LEDGER_VERSION})")
        ledger = cls(path, data)
        ledger._merge_journal()
        return ledger

    @property
    def journal_path(self) -> Path:
        """``<lab>.ids``: one ``name device inode`` line per namespace as ``up`` creates it.

        Appending a line is cheap enough to do for every namespace the
        moment it exists, so even an ``up`` killed half way leaves the
        identity of everything it made (the state file is rewritten once,
        after the namespaces).
        """
        return self.path.with_suffix(".ids")

    def note_created(self, name: str) -> None:
        """Append the identity of namespace ``name`` (just created) to the journal."""
        ident = netns_identity(name)
        if ident is None:
            return
        with open(self.journal_path, "a") as f:
            f.write(f"{name} {ident[0]} {ident[1]}\n")
            f.flush()
        for entry in self.namespaces:
            if entry["name"] == name and entry["id"] is None:
                entry["id"] = ident

    def _merge_journal(self) -> None:
        try:
            lines = self.journal_path.read_text().splitlines()
        except OSError:
            return
        ids = {}
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                ids[parts[0]] = [int(parts[1]), int(parts[2])]
        for entry in self.namespaces:
            if entry["id"] is None and entry["name"] in ids:
                entry["id"] = ids[entry["name"]]

    # -- writing -----------------------------------------------------------
    @classmethod
    def create(cls, plan: LabPlan, topology: str) -> "Ledger":
        """Write a new ledger for ``plan`` (every namespace listed, none created yet).

        The file is created exclusively: a second ``up`` of the same name
        fails here, before it creates anything.
        """
        directory = lab_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{plan.name}.json"
        data = {
            "version": LEDGER_VERSION, "name": plan.name, "token": plan.token, "topology": topology,
            "state": STATE_BUILDING, "pid": os.getpid(), "pid_start": process_start_time(os.getpid()),
            "created": time.time(),
            "namespaces": [{"name": ns.name, "id": None} for ns in plan.namespaces],
            "plan": plan.to_dict(),
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise LabError(f"a lab named {plan.name!r} exists already ({path}); `ovnsim lab down {plan.name}` "
                           "first, or choose another --name") from None
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        ledger = cls(path, data)
        try:  # a journal left by an earlier lab of this name is not this lab's
            ledger.journal_path.unlink()
        except FileNotFoundError:
            pass
        return ledger

    def save(self) -> None:
        """Replace the state file atomically (write, fsync, rename)."""
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def set_state(self, state: str) -> None:
        """Record ``state`` and save."""
        self.data["state"] = state
        self.save()

    def record_identities(self) -> None:
        """Note the (device, inode) of every listed namespace that exists now."""
        for entry in self.namespaces:
            if entry["id"] is None:
                entry["id"] = netns_identity(entry["name"])
        self.save()

    def remove(self) -> None:
        """Delete the state file and its journal (the lab is gone)."""
        for path in (self.path, self.journal_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def ledger_names(directory: Optional[Path] = None) -> List[str]:
    """Names of every lab with a state file (in ``directory``, default :func:`lab_dir`), sorted."""
    try:
        return sorted(p.stem for p in Path(directory or lab_dir()).glob("*.json") if not p.name.startswith("."))
    except OSError:
        return []


def iter_ledgers(directory: Optional[Path] = None) -> Iterator[Ledger]:
    """Every readable ledger of the state directory (or ``directory``); unreadable ones are skipped."""
    for name in ledger_names(directory):
        try:
            yield Ledger.load(name, directory)
        except LabError:
            continue


def free_token(name: str) -> str:
    """A token for lab ``name`` that no other lab on this machine uses."""
    used = {ledger.data.get("token") for ledger in iter_ledgers()}
    salt = 0
    while lab_token(name, salt) in used:
        salt += 1
    return lab_token(name, salt)


def free_name(base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... : the first lab name not in use.

    In use: a state file here, or any namespace named as the lab's would be
    (a lab kept in another state directory).
    """
    taken = set(ledger_names())
    try:
        existing = os.listdir(NETNS_RUN_DIR)
    except OSError:
        existing = []

    def free(name: str) -> bool:
        return name not in taken and not any(n.startswith(f"ovnsim-{name}-") for n in existing)

    if free(base):
        return base
    i = 2
    while not free(f"{base}-{i}"):
        i += 1
    return f"{base}-{i}"


def process_start_time(pid: int) -> Optional[int]:
    """When process ``pid`` started (clock ticks since boot), or None if it is not running.

    A PID and its start time name one process for the life of the boot:
    PIDs are reused, (PID, start time) pairs are not.  A zombie (killed,
    not yet waited for) is not running.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: fields 3.. follow the last ")".
    fields = stat[stat.rfind(b")") + 2:].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])  # field 22, starttime


def boot_id() -> str:
    """This boot's random id (``/proc/sys/kernel/random/boot_id``), or "" where there is none."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_alive(pid: object, start: object = None, boot: object = None) -> bool:
    """True while the process recorded as (``pid``, ``start``, ``boot``) still runs.

    ``start`` (:func:`process_start_time`) tells a reused PID from the
    process recorded; ``boot`` (:func:`boot_id`) tells a PID of an earlier
    boot.  Either may be None (not recorded): then the PID alone decides.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if boot and boot_id() and boot != boot_id():
        return False
    now = process_start_time(pid)
    if now is None:
        return False
    return start is None or start == now


def builder_alive(ledger: Ledger) -> bool:
    """True while the process that is building the lab still runs."""
    pid = ledger.data.get("pid")
    return (ledger.state == STATE_BUILDING and pid != os.getpid()
            and process_alive(pid, ledger.data.get("pid_start")))


def status_of(ledger: Ledger) -> Dict[str, object]:
    """What exists of a lab now: its state and each namespace present, missing or replaced."""
    present, missing, foreign = [], [], []
    for entry in ledger.namespaces:
        ident = netns_identity(entry["name"])
        if ident is None:
            missing.append(entry["name"])
        elif entry["id"] is not None and list(entry["id"]) != ident:
            foreign.append(entry["name"])
        else:
            present.append(entry["name"])
    state = ledger.state
    if state == STATE_BUILDING and not builder_alive(ledger):
        state = "crashed"
    elif state == STATE_UP and missing:
        state = "degraded"
    return {"name": ledger.name, "state": state, "topology": ledger.data.get("topology", ""),
            "namespaces": len(ledger.namespaces), "present": present, "missing": missing, "replaced": foreign}


__all__ = ["Ledger", "lab_dir", "ledger_names", "iter_ledgers", "free_token", "free_name", "status_of",
           "netns_identity", "builder_alive", "process_alive", "process_start_time", "boot_id", "DEFAULT_LAB_DIR"]
