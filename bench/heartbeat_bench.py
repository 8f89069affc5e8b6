"""``heartbeat_rss``: the daemon's resident memory over a heartbeat wake-up of 10,000
iterations in ``ephemeral_with_summary`` (a command agent that prints "working" and a
4 KiB summary file, and never answers ``sleep``): RSS sampled from /proc every 1,000
iterations, with the growth from the first sample to the last."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def heartbeat_rss(iterations: int = 10_000) -> dict[str, Any]:
    from tests.integration.daemon_helper import Daemon

    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
        script = ('head -c 4096 /dev/zero | tr "\\\\0" s > "$SYMBI_SUMMARY_FILE"; '
                  f'echo "$SYMBI_ITERATION" > {tmp}/count; echo "working $SYMBI_ITERATION"')
        agents = f"agent beat {{ command: {json.dumps(['/bin/sh', '-c', script])} }}\n"
        d = Daemon(Path(tmp), {"agents.symbi": agents}, tcp=False)
        try:
            d.start()
            assert d.proc is not None
            pid = d.proc.pid
            status, _ = d.api("POST", "/api/v1/schedule", {
                "name": "beat", "agent_id": "beat", "cron_expr": "0 0 1 1 *",
                "heartbeat": {"enabled": True, "context_mode": "ephemeral_with_summary",
                              "max_iterations": iterations}})
            assert status == 201
            status, run = d.api("POST", "/api/v1/schedule/beat/run")
            assert status == 202, run
            samples: list[tuple[int, int]] = []
            started = time.monotonic()
            next_mark = 0
            while True:
                _, r = d.api("GET", f"/api/v1/runs/{run['id']}")
                done = r["status"] not in ("pending", "running")
                count = int(Path(d.root / "count").read_text() or 0) \
                    if (d.root / "count").exists() else 0
                if done or count >= next_mark:
                    samples.append((count, _rss_kib(pid)))
                    next_mark += 1000
                if done:
                    break
                time.sleep(0.2)
            seconds = time.monotonic() - started
            iters = len(r["iterations"])
            return {
                "iterations": iterations, "status": r["status"],
                "stop_reason": r["stop_reason"], "iterations_listed": iters,
                "rss_kib_first": samples[0][1], "rss_kib_last": samples[-1][1],
                "rss_kib_max": max(k for _, k in samples),
                "rss_growth_kib": samples[-1][1] - samples[0][1],
                "iterations_per_second": round(iterations / seconds, 1),
                "samples": samples,
            }
        finally:
            d.cleanup()
