"""What the end-to-end fault tests share: an agent whose child logs each execution, and
readings of a stopped (or running) daemon's database."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any


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
