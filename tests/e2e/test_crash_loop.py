"""The real daemon in a crash loop: 200 jobs every second, killed with SIGKILL over and over.

Every child appends ``job slot run`` to a log. Afterwards no slot has run twice,
every slot of every job is accounted for, nothing is left open, the database is
intact, and (almost) no run was written off that never started. The figures are
printed (``make e2e`` shows them) and written to ``bench/results/crash_loop.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.parts import kill_loop, open_runs, tick_agent
from tests.integration.daemon_helper import Daemon

JOBS = 200
KILLS = int(os.environ.get("SYMBID_CRASH_KILLS", "22"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"agents.symbi": tick_agent(tmp_path / "children.log")}, tcp=False,
               config="max_concurrent_jobs = 2000\nmax_jitter_seconds = 0\n")
    d.start()
    yield d
    d.cleanup()


def _kind(reason: str) -> str:
    """A skip's reason without the ids and durations in it."""
    if reason.startswith("max_concurrent reached"):
        return "max_concurrent reached"
    if "catch_up=" in reason:
        return "missed: " + reason.split("(", 1)[1].split(")", maxsplit=1)[0]
    return reason


def test_a_crash_loop_loses_and_doubles_nothing(daemon: Daemon, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("SYMBID_CRASH_SEED", "7")))
    for i in range(JOBS):
        status, body = daemon.api("POST", "/api/v1/schedule", {
            "name": f"job-{i:03d}", "agent_id": "tick", "cron_expr": "* * * * * *"})
        assert status == 201, body
    started = time.monotonic()
    downtimes = kill_loop(daemon, KILLS, rng)
    time.sleep(2)
    for i in range(JOBS):  # let it come to rest: no more claims, queued runs end
        assert daemon.api("POST", f"/api/v1/schedule/job-{i:03d}/pause")[0] == 200
    db = daemon.state / "symbid.db"
    daemon.wait_for(lambda: open_runs(db) == 0, timeout=60)
    assert daemon.stop(signal.SIGTERM) == 0
    elapsed = time.monotonic() - started

    conn = sqlite3.connect(str(db))
    rows = conn.execute(
        "SELECT j.name, r.id, r.slot, r.attempt, r.status, r.error_message, r.space "
        "FROM runs r JOIN jobs j ON j.id = r.job_id").fetchall()
    doubled_keys = conn.execute(
        "SELECT job_id, slot, COUNT(*) FROM runs WHERE attempt = 1 AND space = 'schedule' "
        "GROUP BY job_id, slot HAVING COUNT(*) > 1").fetchall()
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    children = [line.split() for line in (tmp_path / "children.log").read_text().splitlines()]
    executed = Counter((job, slot) for job, slot, _ in children)
    ran_ids = {run_id for _, _, run_id in children}

    by_status = Counter(status for *_, status, _, _ in rows)
    gaps: list[str] = []
    for i in range(JOBS):
        name = f"job-{i:03d}"
        slots = sorted(slot for job, _, slot, attempt, _, _, space in rows
                       if job == name and attempt == 1 and space == "schedule")
        expected = list(range(slots[0], slots[-1] + 1000, 1000))
        if slots != expected:
            missing = sorted(set(expected) - set(slots))
            gaps.append(f"{name}: {len(missing)} slot(s) unaccounted, first {missing[:3]}")
    interrupted = [r for r in rows if r[4] == "interrupted"]
    never_started = [r for r in interrupted if r[1] not in ran_ids]
    skipped_reasons = Counter(_kind(r[5] or "") for r in rows if r[4] == "skipped")
    figures = {
        "jobs": JOBS, "kills": KILLS, "kills_with_downtime": downtimes,
        "seconds": round(elapsed, 1), "slots": len(rows),
        "by_status": dict(by_status),
        "skip_reasons": dict(skipped_reasons),
        "child_executions": len(children),
        "slots_executed_twice": sum(1 for n in executed.values() if n > 1),
        "slots_with_two_attempt_1_rows": len(doubled_keys),
        "slots_unaccounted": len(gaps),
        "open_rows_left": by_status.get("pending", 0) + by_status.get("running", 0),
        "integrity_check": integrity,
        "interrupted": len(interrupted),
        "written_off_never_started": len(never_started),
    }
    print("\ncrash loop:", json.dumps(figures, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "crash_loop.json").write_text(json.dumps(figures, indent=2) + "\n")

    assert figures["slots_executed_twice"] == 0, executed.most_common(3)
    assert figures["slots_with_two_attempt_1_rows"] == 0
    assert not gaps, gaps[:5]
    assert figures["open_rows_left"] == 0
    assert integrity == "ok"
    assert len(never_started) <= 5, never_started[:5]
    # every run that is recorded as having run did run, once
    succeeded = {r[1] for r in rows if r[4] == "succeeded"}
    assert succeeded <= ran_ids
