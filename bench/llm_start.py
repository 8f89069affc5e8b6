"""LLM child start overhead (issue 10): process start to the first request at the model.

Spawns ``python -m symbid.agents.child`` ``runs`` times against the loopback test LLM
server (tests/llm_server.py) and measures, on CLOCK_MONOTONIC (system-wide, so the
server's instants compare with ours), from just before ``Popen`` to the server accepting
the connection (``connect``) and to it having read the request head (``request``). The
child takes a request slot, as the daemon's children do (``max_concurrent_requests``).
``python -m bench.llm_start`` runs it alone; ``make bench`` runs it as ``llm_start``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from symbid.agents import child_argv, child_pythonpath  # noqa: E402
from symbid.agents.slots import prepare, slots_dir  # noqa: E402
from tests.llm_server import LLMServer, text  # noqa: E402


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


def _measure(argv: list[str], runs: int) -> dict[str, Any]:
    connect: list[float] = []
    request: list[float] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMBI_")}
    env.update(PYTHONPATH=child_pythonpath(), SYMBI_LLM_API_KEY="sk-bench")
    with LLMServer() as server, tempfile.TemporaryDirectory() as runs_dir:
        server.default = text("ok")
        prepare(slots_dir(runs_dir), 4)
        spec = json.dumps({"endpoint": server.url, "model": "m", "input": "hi",
                           "timeout_seconds": 30, "request_slots": slots_dir(runs_dir),
                           "limits": {"max_concurrent_requests": 4}})
        for i in range(runs + 3):  # 3 warm-up runs fill the page cache
            started = time.monotonic()
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    env=env)
            proc.communicate(spec.encode(), timeout=60)
            if proc.returncode != 0:
                raise RuntimeError(f"the child failed with status {proc.returncode}")
            seen = server.requests[-1]
            if i >= 3:
                connect.append((seen.connected_at - started) * 1000)
                request.append((seen.received_at - started) * 1000)
    return {"connect_ms": {"p50": _pct(connect, 50), "p99": _pct(connect, 99)},
            "request_ms": {"p50": _pct(request, 50), "p99": _pct(request, 99),
                           "max": round(max(request), 1)}}


def llm_start(runs: int = 50) -> dict[str, Any]:
    """Byte-compiles symbid first (an installed package has its .pyc; a tree run with
    PYTHONDONTWRITEBYTECODE would otherwise compile every module on every start).

    ``child_argv()`` (``python -S -m symbid.agents.child``, what the daemon should spawn)
    and, for comparison, the same without ``-S``, and a bare ``python -S`` start."""
    import compileall

    compileall.compile_dir(os.path.join(child_pythonpath(), "symbid"), quiet=1)
    bare = [sys.executable, "-S", "-c", "pass"]
    bare_ms: list[float] = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(bare, check=True)
        bare_ms.append((time.monotonic() - started) * 1000)
    return {"runs": runs, "python": sys.version.split()[0], "argv": " ".join(child_argv()[1:]),
            "child": _measure(child_argv(), runs),
            "child_without_-S": _measure([sys.executable, "-m", "symbid.agents.child"], runs),
            "bare_python_-S_exit_ms": {"p50": _pct(bare_ms, 50), "p99": _pct(bare_ms, 99)}}


if __name__ == "__main__":
    print(json.dumps(llm_start()))
