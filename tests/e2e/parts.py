"""What the end-to-end fault tests share: an agent whose child logs each execution, and
readings of a stopped (or running) daemon's database."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from tests.integration.daemon_helper import Daemon


def tick_agent(log: Path, name: str = "tick") -> str:
    """A .symbi agent whose child appends ``job slot run`` to ``log``."""
    return (f'agent {name} {{ command: ["/bin/sh", "-c", '
            '"echo \\"$SYMBI_JOB_NAME $SYMBI_SLOT $SYMBI_RUN_ID\\" >> \\"$CHILD_LOG\\""], '
            f'env: {{ CHILD_LOG: "{log}" }} }}\n')


def executions(log: Path) -> list[tuple[str, str, str]]:
    """(job, slot, run id) of each child that ran, from a :func:`tick_agent` log."""
    if not log.exists():
        return []
    return [(job, slot, run) for job, slot, run in
            (line.split() for line in log.read_text().splitlines())]


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    conn = sqlite3.connect(str(db))
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def open_runs(db: Path) -> int:
    return int(query(db, "SELECT COUNT(*) FROM runs WHERE status IN ('pending', 'running')")
               [0][0])


def doubled_slots(db: Path) -> list[Any]:
    """Scheduled slots with more than one first attempt (must be none)."""
    return query(db, "SELECT job_id, slot, COUNT(*) FROM runs WHERE attempt = 1 AND "
                     "space = 'schedule' GROUP BY job_id, slot HAVING COUNT(*) > 1")


def twice(log: Path) -> list[tuple[tuple[str, str], int]]:
    """(job, slot) executed more than once by a first attempt's child (must be none)."""
    counts = Counter((job, slot) for job, slot, _ in executions(log))
    return [(k, n) for k, n in counts.items() if n > 1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def proc_stat(pid: int) -> Optional[tuple[int, int]]:
    """(process group, start time in clock ticks) of a live process, None if there is
    none (or only a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[2]), int(fields[19])


def in_groups(pgids: set[int]) -> list[int]:
    """The live processes in any of the process groups ``pgids``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[0] in pgids:
                found.append(int(entry))
    return found


def kill_loop(d: Daemon, kills: int, rng: random.Random, *, most: float = 3.0,
              down: float = 4.0) -> int:
    """SIGKILL the daemon ``kills`` times at random moments (claiming, spawning,
    delivering, idle), and start it again, sometimes after a downtime of up to ``down``
    seconds (slots come due while it is down); how many downtimes there were."""
    downtimes = 0
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, most))
        d.kill()
        if rng.random() < 0.3:
            downtimes += 1
            time.sleep(rng.uniform(1.0, down))
        d.start()
    return downtimes


def slot_gaps(db: Path, step_ms: dict[str, int]) -> list[str]:
    """Jobs (name -> the step of its cron) whose scheduled slots are not every step from
    the first to the last: slots unaccounted."""
    gaps = []
    for name, step in step_ms.items():
        slots = [s for (s,) in query(
            db, "SELECT r.slot FROM runs r JOIN jobs j ON j.id = r.job_id WHERE j.name = ? "
                "AND r.attempt = 1 AND r.space = 'schedule' ORDER BY r.slot", (name,))]
        if slots and slots != list(range(slots[0], slots[-1] + step, step)):
            missing = sorted(set(range(slots[0], slots[-1] + step, step)) - set(slots))
            gaps.append(f"{name}: {len(missing)} slot(s) unaccounted, first {missing[:3]}")
    return gaps


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def report(name: str, figures: dict[str, Any]) -> None:
    """Print a test's figures (``make e2e`` shows them) and keep them in
    ``bench/results/faults.json``, one entry per test."""
    print(f"\n{name}:", json.dumps(figures, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "faults.json"
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = {}
    kept[name] = figures
    path.write_text(json.dumps(kept, indent=2) + "\n")
