"""Engine benchmarks: lateness, throughput, idle cost with many jobs.

Each scenario runs the engine in its own process (tests/integration/engine_main.py)
on a fresh state directory, with real child processes and a real SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

from symbid.clock import SystemClock
from symbid.model import Job, RunStatus, new_id
from symbid.store import SqliteJobStore, job_params
from symbid.store.rows import JOB_COLUMNS, JOB_PLACEHOLDERS
from symbid.timing import make_schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK = SystemClock()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return round(ordered[k], 2)


class Engine:
    def __init__(self, state: str, agents: dict[str, Any], config: dict[str, Any]) -> None:
        agents_file = os.path.join(state, "agents.json")
        with open(agents_file, "w") as fh:
            json.dump(agents, fh)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.engine_main", state, agents_file,
             json.dumps(config)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        self.ready = json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def insert_jobs(db: str, jobs: list[Job]) -> None:
    """Bulk-load jobs in one transaction (the API would take one per job)."""
    SqliteJobStore(db).close()  # create the schema
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({JOB_PLACEHOLDERS})",
            [job_params(j) for j in jobs],
        )
    conn.close()


def at_job(name: str, agent: str, slot: int) -> Job:
    now = CLOCK.now()
    return Job(id=new_id(), name=name, agent_id=agent, at=slot, next_run=slot,
               created_at=now, updated_at=now)


def runs_of(db: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT slot, started_at, status, output FROM runs ORDER BY slot").fetchall()
    conn.close()
    return rows


def child_lateness(rows: list[tuple[Any, ...]]) -> tuple[list[float], list[float]]:
    """(ms from slot to the child's own first clock reading, ms from slot to spawn recorded)."""
    child, recorded = [], []
    for slot, started_at, status, output in rows:
        if status != RunStatus.SUCCEEDED.value:
            continue
        child.append(int(output.strip()) / 1e6 - slot)
        recorded.append(started_at - slot)
    return child, recorded


def _lateness(count: int, spacing_ms: int, lead_ms: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as state:
        db = os.path.join(state, "symbid.db")
        first = CLOCK.now() + lead_ms
        insert_jobs(db, [at_job(f"j{i}", "clock", first + i * spacing_ms) for i in range(count)])
        engine = Engine(state, {"clock": {"command": ["date", "+%s%N"]}},
                        {"max_concurrent_jobs": 1000})
        last = first + (count - 1) * spacing_ms
        deadline = time.monotonic() + (last - CLOCK.now()) / 1000 + 30
        while time.monotonic() < deadline:
            done = [r for r in runs_of(db) if r[2] not in ("pending", "running")]
            if len(done) >= count:
                break
            time.sleep(0.5)
        engine.stop()
        child, recorded = child_lateness(runs_of(db))
    return {
        "jobs": count,
        "completed": len(child),
        "child_start_late_ms": {"p50": pct(child, 50), "p99": pct(child, 99),
                                "max": pct(child, 100)},
        "spawn_recorded_late_ms": {"p50": pct(recorded, 50), "p99": pct(recorded, 99),
                                   "max": pct(recorded, 100)},
    }


def lateness_single() -> dict[str, Any]:
    """One job due at a time: 300 `at` slots 100 ms apart."""
    return _lateness(300, 100, 3000)


def lateness_500() -> dict[str, Any]:
    """500 jobs due in the same instant (max_concurrent_jobs = 1000)."""
    return _lateness(500, 0, 5000)


def throughput(jobs: int = 2000, seconds: float = 20.0) -> dict[str, Any]:
    """`jobs` jobs firing every second (6-field cron), agent /bin/true, each run durably
    recorded. More is offered than the target (1,500/s), so that the runs done per
    second are the ceiling; a slot whose previous run is still going is skipped
    (``skipped_in_window``)."""
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as state:
        db = os.path.join(state, "symbid.db")
        now = CLOCK.now()
        schedule = make_schedule("* * * * * *", None, "UTC")
        start = (schedule.next_after(now + 3000) or 0)
        insert_jobs(db, [
            Job(id=new_id(), name=f"t{i}", agent_id="true", cron_expr="* * * * * *",
                next_run=start, created_at=now, updated_at=now)
            for i in range(jobs)
        ])
        engine = Engine(state, {"true": {"command": ["/bin/true"]}},
                        {"max_concurrent_jobs": 2000})
        window_start = start + 2000
        window_end = window_start + int(seconds * 1000)
        time.sleep(max(0.0, (window_end - CLOCK.now()) / 1000) + 1)
        cpu = engine.cpu_seconds()
        engine.stop()
        conn = sqlite3.connect(db)
        ok = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE status = 'succeeded' AND slot >= ? AND slot < ?",
            (window_start, window_end)).fetchone()[0]
        skipped = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE status = 'skipped' AND slot >= ? AND slot < ?",
            (window_start, window_end)).fetchone()[0]
        late = [r[0] for r in conn.execute(
            "SELECT started_at - slot FROM runs WHERE status = 'succeeded' AND slot >= ? "
            "AND slot < ?", (window_start, window_end))]
        conn.close()
    return {
        "jobs": jobs,
        "offered_runs_per_s": jobs,
        "succeeded_runs_per_s": round(ok / seconds, 1),
        "skipped_in_window": skipped,
        "spawn_recorded_late_ms": {"p50": pct(late, 50), "p99": pct(late, 99)},
        "engine_cpu_seconds_total": round(cpu, 1),
    }


def idle_100k(jobs: int = 100_000, idle_seconds: float = 30.0) -> dict[str, Any]:
    """100,000 active jobs whose next slots are months away: memory and idle CPU."""
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as state:
        db = os.path.join(state, "symbid.db")
        now = CLOCK.now()
        built: list[Job] = []
        for i in range(jobs):
            expr = f"{i % 60} {i % 24} 1 1 *"
            nxt: Optional[int] = make_schedule(expr, None, "UTC").next_after(now)
            built.append(Job(id=new_id(), name=f"yearly-{i}", agent_id="true", cron_expr=expr,
                             next_run=nxt, created_at=now, updated_at=now))
        insert_jobs(db, built)
        del built
        started = time.monotonic()
        engine = Engine(state, {"true": {"command": ["/bin/true"]}}, {})
        startup = time.monotonic() - started
        time.sleep(5)
        cpu0, t0 = engine.cpu_seconds(), time.monotonic()
        time.sleep(idle_seconds)
        cpu1, t1 = engine.cpu_seconds(), time.monotonic()
        rss = engine.rss_kib()
        engine.stop()
        size = os.path.getsize(db)
    return {
        "jobs": jobs,
        "startup_seconds": round(startup, 2),
        "rss_mib": round(rss / 1024, 1),
        "idle_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "db_mib": round(size / 2**20, 1),
    }
