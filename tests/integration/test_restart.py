"""Restarts of the real daemon lose no run that never started, and double none that did."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbid.model import format_instant
from tests.integration.daemon_helper import Daemon

AGENTS = """
agent echo { command: ["/bin/sh", "-c", "echo ran"] }
agent hold { command: ["/bin/sh", "-c", "exec sleep 300"] }
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS}, config="max_concurrent_jobs = 1\n")
    d.start()
    yield d
    d.cleanup()


def now_ms() -> int:
    return int(time.time() * 1000)


def stored_run(d: Daemon, job: str) -> dict[str, Any]:
    """The job's one run as stored, with the columns the wire form leaves out."""
    conn = sqlite3.connect(str(d.state / "symbid.db"))
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT r.* FROM runs r JOIN jobs j ON j.id = r.job_id WHERE j.name = ?", (job,)
        ).fetchall()
    finally:
        conn.close()
    assert len(rows) == 1, [dict(r) for r in rows]
    return dict(rows[0])


def pending_with_jitter(d: Daemon, name: str) -> dict[str, Any]:
    """An at job claimed and waiting out its jitter, with at least 1 s of it left."""
    for attempt in range(8):
        job = f"{name}-{attempt}"
        status, body = d.api("POST", "/api/v1/schedule", {
            "name": job, "agent_id": "echo", "at": format_instant(now_ms() + 1500),
            "jitter_seconds": 15})
        assert status == 201, body
        run = d.wait_for(lambda job=job: _run_or_none(d, job))  # type: ignore[misc]
        if run["status"] == "pending" and run["not_before"] - now_ms() > 4000:
            return run
    raise AssertionError("the jitter never left four seconds to stop in")


def daemon_job_name(d: Daemon, job_id: str) -> str:
    conn = sqlite3.connect(str(d.state / "symbid.db"))
    try:
        return str(conn.execute("SELECT name FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])
    finally:
        conn.close()


def _run_or_none(d: Daemon, job: str) -> Any:
    try:
        return stored_run(d, job)
    except AssertionError:
        return None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_run_waiting_out_its_jitter_runs_after_a_restart(daemon: Daemon, sig: int) -> None:
    waiting = pending_with_jitter(daemon, "spread")
    daemon.stop(sig)
    job_name = daemon_job_name(daemon, waiting["job_id"])
    assert stored_run(daemon, job_name)["status"] == "pending"  # stopped before it started
    daemon.start()
    job = daemon.api("GET", f"/api/v1/schedule/{waiting['job_id']}")[1]["name"]
    run = daemon.wait_for(lambda: stored_run(daemon, job)["status"] == "succeeded"
                          and stored_run(daemon, job), timeout=30)
    assert (run["id"], run["slot"]) == (waiting["id"], waiting["slot"])
    assert run["started_at"] >= waiting["not_before"]  # its jitter deadline was kept
    assert daemon.api("GET", f"/api/v1/schedule/{job}")[1]["status"] == "completed"


def test_a_run_waiting_for_the_global_limit_runs_after_a_graceful_restart(
    daemon: Daemon,
) -> None:
    soon = format_instant(now_ms() + 1500)
    for name, agent in (("blocker", "hold"), ("queued", "echo")):
        status, body = daemon.api("POST", "/api/v1/schedule",
                                  {"name": name, "agent_id": agent, "at": soon})
        assert status == 201, body
    daemon.wait_for(lambda: (_run_or_none(daemon, "blocker") or {}).get("status") == "running")
    assert stored_run(daemon, "queued")["status"] == "pending"  # max_concurrent_jobs = 1
    daemon.stop(signal.SIGTERM)  # the blocker outlives shutdown_timeout: interrupted
    assert stored_run(daemon, "blocker")["status"] == "interrupted"
    assert stored_run(daemon, "queued")["status"] == "pending"
    daemon.start()
    daemon.wait_for(lambda: stored_run(daemon, "queued")["status"] == "succeeded")
    assert daemon.api("GET", "/api/v1/schedule/queued")[1]["status"] == "completed"
    assert daemon.api("GET", "/api/v1/schedule/blocker")[1]["status"] == "failed"


def test_a_stop_leaves_no_store_noise_in_the_log(daemon: Daemon) -> None:
    daemon.stop(signal.SIGTERM)
    daemon.log.write_text("")
    daemon.start("--log-level", "debug")
    daemon.api("POST", "/api/v1/schedule",
               {"name": "tick", "agent_id": "echo", "cron_expr": "* * * * * *"})
    time.sleep(1.5)
    assert daemon.stop(signal.SIGTERM) == 0
    log = daemon.log.read_text()
    assert "ProgrammingError" not in log and "Traceback" not in log
