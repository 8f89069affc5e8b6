"""Adding jobs through the real daemon's API: 10,000 as one batch (target: <= 3 s), and one
by one for the rate a single client gets without batches.

The daemon is the real `symbid` process on a Unix socket in a temp dir; the batch is one
``POST /api/v1/schedule`` with a JSON array (one store transaction), timed from the
request's first byte to the last byte of its answer (the 10,000 created jobs).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.integration.daemon_helper import Daemon, UnixHTTP

AGENT = 'agent worker { command: ["/bin/true"] }\n'


def _batch(prefix: str, n: int, distinct: bool = True) -> bytes:
    """``n`` jobs: each with a cron expression of its own (the worst case: every one is
    parsed and walked from scratch), or sharing 24 hourly ones."""
    def cron(i: int) -> str:
        if distinct:
            return f"{i % 60} {(i // 60) % 24} {(i // 1440) % 28 + 1} * *"
        return f"{i % 24} * * * *"
    return json.dumps([{"name": f"{prefix}-{i:05d}", "agent_id": "worker",
                        "cron_expr": cron(i)} for i in range(n)]).encode()


def _post(d: Daemon, body: bytes) -> tuple[float, int, Any]:
    conn = UnixHTTP(d.socket)
    conn.timeout = 300
    t0 = time.perf_counter()
    try:
        conn.request("POST", "/api/v1/schedule", body=body,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return time.perf_counter() - t0, response.status, json.loads(data)


def add_10k(jobs: int = 10_000, singles: int = 1_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
        d = Daemon(Path(tmp), {"a.symbi": AGENT}, tcp=False)
        d.start()
        try:
            first = _batch("first", jobs)
            seconds, status, made = _post(d, first)
            assert status == 201 and len(made) == jobs, str(made)[:300]
            shared, status, made = _post(d, _batch("second", jobs, distinct=False))
            assert status == 201 and len(made) == jobs, str(made)[:300]  # beside 10,000
            t0 = time.perf_counter()
            for i in range(singles):
                status, job = d.api("POST", "/api/v1/schedule", {
                    "name": f"single-{i}", "agent_id": "worker", "cron_expr": "*/15 * * * *"})
                assert status == 201, job
            single_seconds = time.perf_counter() - t0
        finally:
            d.stop()
            d.cleanup()
    return {
        "jobs": jobs,
        "batch_body_bytes": len(first),
        "batch_10k_seconds": round(seconds, 3),  # 10,000 distinct cron expressions
        "batch_10k_jobs_per_second": round(jobs / seconds),
        "batch_10k_shared_crons_seconds": round(shared, 3),  # 24 expressions, 10k jobs beside
        "one_by_one_jobs_per_second": round(singles / single_seconds),
        "target_seconds": 3.0,
    }
