"""A dead endpoint stalls nothing (issue 11): start lateness of 50 jobs firing every
second, through the real daemon, with and without a job whose webhook endpoint hangs.

Each round runs a daemon on a socket with 50 cron jobs ``* * * * * *`` (a command agent
printing nothing); in the "hung" round a 51st job delivers every run to a loopback
webhook that answers only after 60 s (the daemon's ``webhook_timeout_seconds`` is 30).
Lateness is ``started_at - slot`` of the runs stored in the measured window (ms).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.engine_bench import pct

AGENTS = 'agent quiet { command: ["/bin/true"] }\n'


def _round(hung: bool, jobs: int, seconds: float) -> dict[str, Any]:
    from tests.integration.daemon_helper import Daemon
    from tests.integration.delivery_parts import HttpServer, Reply

    server = HttpServer()
    server.answer("/hang", Reply(200, delay=60.0))
    try:
        with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
            d = Daemon(Path(tmp), {"agents.symbi": AGENTS}, tcp=False,
                       config="max_concurrent_jobs = 200\nmax_jitter_seconds = 0\n\n"
                              "[scheduler.delivery]\nwebhook_timeout_seconds = 30\n")
            d.start()
            try:
                for i in range(jobs):
                    status, body = d.api("POST", "/api/v1/schedule", {
                        "name": f"tick-{i:02d}", "agent_id": "quiet",
                        "cron_expr": "* * * * * *"})
                    assert status == 201, body
                if hung:
                    status, body = d.api("POST", "/api/v1/schedule", {
                        "name": "hung-hook", "agent_id": "quiet", "cron_expr": "* * * * * *",
                        "delivery": ["webhook"], "webhook_url": server.url("/hang")})
                    assert status == 201, body
                time.sleep(2)  # settle
                start_ms = int(time.time() * 1000)
                time.sleep(seconds)
                end_ms = int(time.time() * 1000)
                conn = sqlite3.connect(str(Path(tmp) / "state" / "symbid.db"))
                rows = conn.execute(
                    "SELECT r.started_at - r.slot FROM runs r JOIN jobs j ON j.id = r.job_id "
                    "WHERE j.name LIKE 'tick-%' AND r.slot >= ? AND r.slot < ? "
                    "AND r.started_at IS NOT NULL", (start_ms, end_ms)).fetchall()
                pending = conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = "
                                       "'pending'").fetchone()[0]
                conn.close()
            finally:
                d.stop()
                d.cleanup()
    finally:
        server.close()
    late = [float(r[0]) for r in rows]
    return {"runs": len(late), "late_ms": {"p50": pct(late, 50), "p99": pct(late, 99),
                                           "max": pct(late, 100)},
            "deliveries_pending": pending, "webhook_requests": len(server.requests)}


def dead_endpoint(jobs: int = 50, seconds: float = 20.0) -> dict[str, Any]:
    return {"jobs": jobs, "seconds": seconds, "without_hung_endpoint": _round(False, jobs, seconds),
            "with_hung_endpoint": _round(True, jobs, seconds)}


if __name__ == "__main__":
    import json

    print(json.dumps(dead_endpoint()))
