"""Control-plane benchmarks: CLI round trip and API latency with 10,000 jobs.

The daemon is the real `symbid` process on a Unix socket (and TCP), in a temp dir.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.engine_bench import CLOCK, insert_jobs, pct
from symbid.model import Job, new_id
from symbid.timing import make_schedule
from tests.integration.daemon_helper import BIN, Daemon


def _timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def control_plane(jobs: int = 10_000, adds: int = 500) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
        root = Path(tmp)
        d = Daemon(root, {"a.symbi": 'agent worker { command: ["/bin/true"] }\n'})
        d.state.mkdir(parents=True)
        now = CLOCK.now()
        nxt = make_schedule("0 3 * * *", None, "UTC").next_after(now)
        insert_jobs(str(d.state / "symbid.db"), [
            Job(id=new_id(), name=f"bulk-{i}", agent_id="worker", cron_expr="0 3 * * *",
                next_run=nxt, created_at=now, updated_at=now)
            for i in range(jobs - adds)])
        d.start()
        try:
            counter = iter(range(adds))

            def add() -> None:
                status, _ = d.api("POST", "/api/v1/schedule", {
                    "name": f"api-{next(counter)}", "agent_id": "worker",
                    "cron_expr": "*/15 * * * *"})
                assert status == 201

            add_ms = _timed(add, adds)
            list_ms = _timed(lambda: d.api("GET", "/api/v1/schedule"), 10)
            get_ms = _timed(lambda: d.api("GET", "/api/v1/schedule/api-7"), 200)
            env = {"SYMBI_SOCKET": d.socket, "NO_COLOR": "1"}

            def status_cli() -> None:
                out = subprocess.run([str(BIN / "symbi"), "cron", "status", "api-7"],
                                     capture_output=True, env=env, check=False)
                assert out.returncode == 0, out.stderr

            status_ms = _timed(status_cli, 30)
            t0 = time.perf_counter()
            listed = subprocess.run([str(BIN / "symbi"), "cron", "list"],
                                    capture_output=True, env=env, check=False)
            cli_list_ms = (time.perf_counter() - t0) * 1000
            assert listed.stdout.count(b"\n") == jobs + 1
        finally:
            d.stop()
            d.cleanup()
    return {
        "jobs": jobs,
        "api_add_ms": {"p50": pct(add_ms, 50), "p99": pct(add_ms, 99)},
        "api_list_all_ms": {"p50": pct(list_ms, 50), "max": pct(list_ms, 100)},
        "api_get_one_ms": {"p50": pct(get_ms, 50), "p99": pct(get_ms, 99)},
        "cli_cron_status_wall_ms": {"p50": pct(status_ms, 50), "p99": pct(status_ms, 99)},
        "cli_cron_list_all_wall_ms": round(cli_list_ms, 1),
    }
