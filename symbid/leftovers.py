"""What a crashed daemon's runs left behind: their live process groups, found at start-up
and terminated (DESIGN §5's recovery), and the termination itself.

A run's processes are found by the ``SYMBI_RUN_ID`` the sandbox puts in their
environment (grandchildren that changed their process group too).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Collection

from symbid.sandbox import RUN_ID_VAR


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
