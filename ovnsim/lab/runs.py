"""Ledger directories of test runs, and the labs of runs that died.

A test wants labs of its own (a ledger directory no other test sees), but a
ledger in a pytest temporary directory outlives nothing: kill the run
(SIGKILL, a CI timeout) while a lab is up and the namespaces stay, pytest
later deletes the old temporary directory, and with it the only record that
names them.  So test labs keep their ledgers here instead::

    /run/ovnsim/runs/<pid>-<start>/owner.json       the run: PID, start time, boot id
    /run/ovnsim/runs/<pid>-<start>/<label>-<x>/     one ledger directory ($OVNSIM_LAB_DIR)

``/run`` is cleared at boot, as namespaces are.  A run removes its directory
when it ends cleanly (:func:`run_dir` registers that with ``atexit``),
tearing down first what its ledgers still name.  A run that did not end
cleanly leaves its directory behind; ``ovnsim lab cleanup`` (and
:func:`ovnsim.lab.cleanup`) finds the runs whose owner is no longer alive
— by PID *and* start time, since PIDs are reused — and tears down exactly
what their ledgers name, ledger by ledger, as ``down`` does.  A live run's
labs are never touched, not even by ``cleanup --all``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from ovnsim.lab.ledger import builder_alive, boot_id, iter_ledgers, process_alive, process_start_time
from ovnsim.lab.plan import LabError

#: Where test runs keep their ledger directories (one subdirectory per run).
RUNS_DIR = "/run/ovnsim/runs"
#: The file naming a run's owner, in the run's directory.
OWNER_FILE = "owner.json"

_RUN_NAME = re.compile(r"^(\d+)-(\d+)$")
_this_run: Optional[Path] = None


def runs_root() -> Path:
    """The directory holding every run's directory."""
    return Path(RUNS_DIR)


def run_dir() -> Path:
    """This process's run directory, created (with its owner record) on first use.

    It is removed when the process exits normally (``atexit``), after the
    labs its ledgers still name are torn down; if the process is killed,
    :func:`reap_dead_runs` does that later.
    """
    global _this_run
    pid = os.getpid()
    if _this_run is not None and _this_run.name.startswith(f"{pid}-"):
        return _this_run
    start = process_start_time(pid)
    path = runs_root() / f"{pid}-{start}"
    path.mkdir(parents=True, exist_ok=True)
    owner = {"pid": pid, "start": start, "boot": boot_id(), "argv": sys.argv[:8], "created": time.time()}
    tmp = path / f".{OWNER_FILE}.tmp"
    tmp.write_text(json.dumps(owner, indent=1))
    os.replace(tmp, path / OWNER_FILE)
    _this_run = path
    atexit.register(_end_run, path, pid)
    return path


def read_owner(run: Path) -> Optional[dict]:
    """The owner record of run directory ``run``; from its name alone if ``owner.json`` is missing or bad.

    None when ``run`` is not a run directory at all (then nothing in it is
    ever deleted).
    """
    match = _RUN_NAME.match(run.name)
    if not match:
        return None
    owner = {"pid": int(match.group(1)), "start": int(match.group(2)), "boot": None}
    try:
        data = json.loads((run / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return owner
    if isinstance(data, dict) and data.get("pid") == owner["pid"] and data.get("start") == owner["start"]:
        owner["boot"] = data.get("boot") or None
    return owner


def run_alive(run: Path) -> bool:
    """True while the process that owns run directory ``run`` still runs (and for anything not a run)."""
    owner = read_owner(run)
    if owner is None:
        return True  # not ours to judge: left alone
    return process_alive(owner["pid"], owner["start"], owner["boot"])


def new_lab_dir(label: str = "labs") -> Path:
    """A fresh, empty ledger directory inside this process's run directory."""
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in label)[:40] or "labs"
    return Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=run_dir()))


def clear_lab_dir(directory: Path) -> List[Tuple[str, List[str]]]:
    """Tear down every lab whose ledger is in ``directory``; remove the directory once no ledger is left.

    A lab still being built by a live process, or one that could not be
    deleted, keeps its ledger (and so the directory).  Returns (lab,
    namespaces left alone because they are not the lab's) per lab torn down.
    """
    from ovnsim.lab.build import teardown

    done = []
    for ledger in list(iter_ledgers(directory)):
        if builder_alive(ledger):
            continue
        try:
            done.append((ledger.name, teardown(ledger)))
        except (LabError, OSError):  # kept, ledger and all, for a later cleanup (e.g. by root)
            continue
    _remove_if_no_ledgers(directory)
    return done


def _remove_if_no_ledgers(directory: Path) -> bool:
    """Remove ``directory`` unless it holds a ledger; True if it is gone.

    Journals and temporary files of ledgers already removed go with it;
    anything else (a ledger written meanwhile) makes ``rmdir`` fail and
    keeps the directory: never a recursive delete.
    """
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if any(p.suffix == ".json" and not p.name.startswith(".") for p in entries):
        return False
    for p in entries:
        if p.is_file() and (p.suffix == ".ids" or ".tmp" in p.name):
            with contextlib.suppress(OSError):
                p.unlink()
    try:
        directory.rmdir()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def run_lab_dir(label: str = "labs") -> Iterator[Path]:
    """A ledger directory of the caller's own (:func:`new_lab_dir`), as ``$OVNSIM_LAB_DIR`` while open.

    On exit the previous ``$OVNSIM_LAB_DIR`` is restored and the directory
    cleared (:func:`clear_lab_dir`): whatever a failing test left is torn
    down by its ledgers.
    """
    path = new_lab_dir(label)
    try:
        with using_lab_dir(path):
            yield path
    finally:
        clear_lab_dir(path)


@contextlib.contextmanager
def using_lab_dir(path: Path) -> Iterator[Path]:
    """``$OVNSIM_LAB_DIR`` set to ``path`` while open, restored after."""
    old = os.environ.get("OVNSIM_LAB_DIR")
    os.environ["OVNSIM_LAB_DIR"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("OVNSIM_LAB_DIR", None)
        else:
            os.environ["OVNSIM_LAB_DIR"] = old


def _lab_dirs(run: Path) -> List[Path]:
    try:
        return sorted(p for p in run.iterdir() if p.is_dir())
    except OSError:
        return []


def _finish(run: Path) -> List[Tuple[str, List[str]]]:
    """Clear every ledger directory of ``run``; remove ``run`` once none is left."""
    done = []
    for directory in _lab_dirs(run):
        done += clear_lab_dir(directory)
    if not _lab_dirs(run):
        for name in (OWNER_FILE, f".{OWNER_FILE}.tmp"):
            with contextlib.suppress(OSError):
                (run / name).unlink()
        with contextlib.suppress(OSError):
            run.rmdir()
    return done


def _end_run(run: Path, pid: int) -> None:
    # atexit handlers are inherited by forked children: only the owner ends its run.
    if os.getpid() == pid:
        _finish(run)


def dead_runs() -> List[Path]:
    """Run directories whose owner is no longer alive, sorted."""
    try:
        runs = sorted(p for p in runs_root().iterdir() if p.is_dir())
    except OSError:
        return []
    return [run for run in runs if not run_alive(run)]


def reap_dead_runs() -> List[Tuple[str, List[str]]]:
    """Tear down what the ledgers of dead runs name, ledger by ledger; remove those runs' directories.

    Never by name pattern: a namespace is deleted only if a ledger lists it
    (with the inode check of :func:`ovnsim.lab.build.teardown`).  A run
    being reaped by another process at the same moment is skipped (a lock
    on its directory).  Returns (lab, namespaces left alone) per lab torn
    down.
    """
    done = []
    for run in dead_runs():
        try:
            fd = os.open(run, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            done += _finish(run)
        finally:
            os.close(fd)
    return done


def orphaned_labs() -> List[str]:
    """Names of the labs whose ledgers dead runs left (what :func:`reap_dead_runs` would tear down)."""
    return [ledger.name for run in dead_runs() for directory in _lab_dirs(run) for ledger in iter_ledgers(directory)]


__all__ = ["RUNS_DIR", "run_dir", "run_alive", "read_owner", "new_lab_dir", "run_lab_dir", "using_lab_dir",
           "clear_lab_dir",
           "dead_runs", "reap_dead_runs", "orphaned_labs", "runs_root"]
