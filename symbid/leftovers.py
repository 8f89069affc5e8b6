"""What a crashed daemon's runs left behind: their live process groups, found at start-up
and terminated (DESIGN §5's recovery), and the termination itself.

A run's processes are found two ways:

- by the ``SYMBI_RUN_ID`` the sandbox puts in their environment (grandchildren that
  changed their process group too, and what is left of a run whose first process has
  exited). ``/proc/PID/environ`` is open to the process's own user only, so a daemon
  that is not root reads a process of another user (a run's, ``symbid-run``) under that
  process's file identity (the kernel checks the reader's fsuid and fsgid), which
  CAP_SETUID and CAP_SETGID allow (symbid.identity);
- by the pid, process group and process start time (clock ticks since boot, from
  ``/proc/PID/stat``) the store recorded when the run's process (a heartbeat's current
  iteration's) started: a process whose environ is closed to the daemon (an llm
  agent's child makes itself non-dumpable, so to a daemon that is not root its environ
  belongs to root) is still found while it lives. A recorded pid counts only when that
  process is still in the recorded group and started at the recorded tick, so a reused
  pid is never taken for the run (a record without the tick: within
  :data:`START_SLACK` seconds of the run's recorded start).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Collection, Iterable
from typing import Optional

from symbid.identity import file_identity
from symbid.sandbox import RUN_ID_VAR, process_stat

START_SLACK = 5.0  # seconds between a run's recorded start and its process's own


def find_run_processes(tags: Collection[str], *, uids: Optional[Collection[int]] = None
                       ) -> dict[str, set[int]]:
    """Process groups of live processes whose environment carries one of ``tags``, among
    the processes of ``uids`` (their real uid; None: any user's).

    Reads ``/proc/*/environ``: a run's processes, including grandchildren that
    changed their process group, inherit ``SYMBI_RUN_ID``. No other user's environment
    is read, so no process of another user can pass for a run's and have its group killed.
    """
    wanted = {f"{RUN_ID_VAR}={t}".encode(): t for t in tags}
    found: dict[str, set[int]] = {}
    if not wanted:
        return found
    own = {os.getpid(), os.getpgrp()}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in own:
            continue
        ids = _real_ids(name)
        if ids is None or (uids is not None and ids[0] not in uids):
            continue
        environ = _environ(name, ids)
        if environ is None:
            continue
        try:
            pgid = os.getpgid(pid)
        except OSError:
            continue
        if pgid in own:
            continue
        for var in environ.split(b"\0"):
            tag = wanted.get(var)
            if tag is not None:
                found.setdefault(tag, set()).add(pgid)
                break
    return found


def _real_ids(name: str) -> Optional[tuple[int, int]]:
    """The real uid and gid of process ``name`` (/proc/PID/status, readable for any)."""
    uid = gid = None
    try:
        with open(f"/proc/{name}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Uid:"):
                    uid = int(line.split()[1])
                elif line.startswith(b"Gid:"):
                    gid = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return (uid, gid) if uid is not None and gid is not None else None


def _environ(name: str, ids: tuple[int, int]) -> Optional[bytes]:
    """The environment of process ``name`` (real ids ``ids``); read as its own user when
    it is closed to this process's (None: it cannot be read, or the process is gone)."""
    path = f"/proc/{name}/environ"
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except PermissionError:
        pass
    except OSError:
        return None
    if ids[0] in (0, os.geteuid()):
        return None  # root's own, or ours and still closed (not dumpable): not readable
    try:
        with file_identity(*ids), open(path, "rb") as fh:
            return fh.read()
    except OSError:  # it may not switch, the process is not dumpable, or it is gone
        return None


def _boot_time() -> Optional[float]:
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def started_group(pid: int, pgid: int, start_ticks: Optional[int],
                  started_at_ms: Optional[int]) -> bool:
    """Whether ``pid`` lives in process group ``pgid`` and is the recorded process: its
    start time is ``start_ticks`` exactly, or (a record without them) within
    :data:`START_SLACK` seconds of ``started_at_ms``."""
    stat = process_stat(pid)
    if stat is None or stat[0] != pgid:
        return False
    if start_ticks is not None:
        return stat[1] == start_ticks
    boot = _boot_time()
    if boot is None or started_at_ms is None:
        return False
    began = boot + stat[1] / os.sysconf("SC_CLK_TCK")
    return abs(began - started_at_ms / 1000) <= START_SLACK


Recorded = tuple[str, Optional[int], Optional[int], Optional[int], Optional[int]]


def recorded_groups(runs: Iterable[Recorded]) -> dict[str, set[int]]:
    """Process groups of runs ``(id, pid, pgid, start_ticks, started_at_ms)`` whose
    recorded process still lives (see the module's note)."""
    own = os.getpgrp()
    found: dict[str, set[int]] = {}
    for run_id, pid, pgid, ticks, started_at in runs:
        if pid and pgid and pgid != own and started_group(pid, pgid, ticks, started_at):
            found.setdefault(run_id, set()).add(pgid)
    return found


def kill_process_groups(pgids: Collection[int], grace: float) -> None:
    """SIGTERM each group, wait up to ``grace`` seconds for them to go, then SIGKILL."""
    alive = set(pgids)
    for pgid in list(alive):
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            alive.discard(pgid)
    steps = max(1, int(grace / 0.05))
    for _ in range(steps):
        if not alive:
            return
        time.sleep(0.05)
        for pgid in list(alive):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                alive.discard(pgid)
            except OSError as exc:
                if exc.errno != errno.EPERM:
                    alive.discard(pgid)
    for pgid in alive:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
