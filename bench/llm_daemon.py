"""LLM start overhead through the real daemon (issue 10): slot to the first request byte.

``llm_slot_to_request``: a daemon on a socket with one llm agent whose endpoint is the
loopback test LLM server (tests/llm_server.py); ``jobs`` one-shot `at` jobs due
``spacing_ms`` apart, one at a time. For each run after the first three (warm-up): from
its slot (wall clock) to the server accepting the connection and to it having read the
request head. The server's
instants are CLOCK_MONOTONIC, mapped to the wall clock by one offset taken here (the
system clock is never changed on this machine). This includes the loop's wake-up, the
store's claim and start marker, the sandbox's spawn and the child's start (which
``llm_start`` measures alone).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.engine_bench import pct
from symbid.clock import SystemClock
from symbid.model import format_instant

CLOCK = SystemClock()


WARM_UP = 3  # the first runs fill the page cache: not counted


def llm_slot_to_request(jobs: int = 100, spacing_ms: int = 300,
                        lead_ms: int = 5000) -> dict[str, Any]:
    import compileall

    from symbid.agents import child_pythonpath
    from tests.integration.daemon_helper import Daemon
    from tests.llm_server import LLMServer, text

    compileall.compile_dir(str(Path(child_pythonpath()) / "symbid"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp, LLMServer() as server:
        server.default = text("ok")
        root = Path(tmp)
        d = Daemon(root, {"agents.symbi": 'agent thinker { model: "m" }\n'}, tcp=False,
                   config=f'max_jitter_seconds = 0\n\n[llm]\nendpoint = "{server.url}"\n'
                          'api_key = "${BENCH_LLM_KEY}"\n')
        try:
            d.start(env={"BENCH_LLM_KEY": "sk-bench"})
            first = CLOCK.now() + lead_ms
            slots = [first + i * spacing_ms for i in range(jobs)]
            for i, slot in enumerate(slots):
                status, body = d.api("POST", "/api/v1/schedule", {
                    "name": f"think-{i:03d}", "agent_id": "thinker",
                    "at": format_instant(slot)})
                assert status == 201, body
            assert CLOCK.now() < first - 500, "creating the jobs took longer than the lead"
            server.wait_for_requests(jobs, timeout=(slots[-1] - CLOCK.now()) / 1000 + 60)
            offset_ms = time.time() * 1000 - time.monotonic() * 1000
            seen = sorted(server.requests, key=lambda r: r.connected_at)
            assert len(seen) == jobs, f"{len(seen)} requests for {jobs} runs"
            d.stop()
        finally:
            d.cleanup()
    pairs = list(zip(seen, slots))[WARM_UP:]
    connect = [r.connected_at * 1000 + offset_ms - s for r, s in pairs]
    request = [r.received_at * 1000 + offset_ms - s for r, s in pairs]
    return {
        "jobs": jobs, "requests": len(seen), "counted": len(pairs), "spacing_ms": spacing_ms,
        "slot_to_connect_ms": {"p50": pct(connect, 50), "p99": pct(connect, 99),
                               "max": pct(connect, 100)},
        "slot_to_request_ms": {"p50": pct(request, 50), "p99": pct(request, 99),
                               "max": pct(request, 100)},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(llm_slot_to_request()))
