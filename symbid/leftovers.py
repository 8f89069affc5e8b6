"""What a crashed daemon's runs left behind: their live process groups, found at start-up
and terminated (DESIGN §5's recovery), and the termination itself.

A run's processes are found two ways:

- by the ``SYMBI_RUN_ID`` the sandbox puts in their environment (grandchildren that
  changed their process group too), which needs ``/proc/PID/environ`` to be readable;
- by the pid and process group the store recorded when the run started: a process whose
  environ is closed to the daemon (an llm agent's child makes itself non-dumpable, so to
  a daemon that is not root its environ belongs to root) is still found while it lives.
  A recorded pid counts only when that process still leads the recorded group and began
  within :data:`START_SLACK` seconds of the run's recorded start, so a reused pid is
  never taken for the run.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Collection, Iterable
from typing import Optional

from symbid.sandbox import RUN_ID_VAR

START_SLACK = 5.0  # seconds between a run's recorded start and its process's own


def find_run_processes(tags: Collection[str]) -> dict[str, set[int]]:
    """Process groups of live processes whose environment carries one of ``tags``.

    Reads ``/proc/*/environ``: a run's processes, including grandchildren that
    changed their process group, inherit ``SYMBI_RUN_ID``.
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
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read()
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


def _boot_time() -> Optional[float]:
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def started_group(pid: int, pgid: int, started_at_ms: int) -> bool:
    """Whether ``pid`` lives, is in process group ``pgid`` and began within
    :data:`START_SLACK` seconds of ``started_at_ms`` (epoch ms)."""
    boot = _boot_time()
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    if boot is None:
        return False
    fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) "
    try:
        group, ticks = int(fields[2]), int(fields[19])  # pgrp (5th) and starttime (22nd)
    except (IndexError, ValueError):
        return False
    began = boot + ticks / os.sysconf("SC_CLK_TCK")
    return group == pgid and abs(began - started_at_ms / 1000) <= START_SLACK


def recorded_groups(runs: Iterable[tuple[str, Optional[int], Optional[int], Optional[int]]]
                    ) -> dict[str, set[int]]:
    """Process groups of runs ``(id, pid, pgid, started_at_ms)`` whose recorded process
    still lives (see the module's note)."""
    own = os.getpgrp()
    found: dict[str, set[int]] = {}
    for run_id, pid, pgid, started_at in runs:
        if pid and pgid and started_at is not None and pgid != own and \
                started_group(pid, pgid, started_at):
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
