"""The operator's command line against a real daemon.

``status_round_trip``: ``symbi cron status JOB`` over the Unix socket, as an operator types
it (a new ``symbi`` process each time: interpreter start, imports, one API round trip,
printing), against a daemon with 100 jobs and some run history. Wall time per command
from the parent, after warm-ups. Beside it: the bare interpreter's start
(``python -c pass``, the floor no CLI change can go below) and where the command's own
imports go (``-X importtime``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.engine_bench import pct

JOBS = 100
AGENT = 'agent true { command: ["/bin/true"] }\n'


def _wall_ms(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    ms = (time.perf_counter() - started) * 1000
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr[-2000:]}")
    return ms


def import_times(argv: list[str], env: dict[str, str], top: int = 10) -> dict[str, Any]:
    """One run of ``argv`` (a console script of this venv) with ``-X importtime``: the
    total of the top-level imports and the heaviest ones (cumulative µs -> ms)."""
    out = subprocess.run(argv, env=dict(env, PYTHONPROFILEIMPORTTIME="1"),
                         capture_output=True, text=True, timeout=60, check=False)
    heaviest: list[tuple[float, str]] = []
    total = 0.0
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _self_us, cumulative, name = _fields(line)
        if not name.startswith(" "):  # a top-level import (nested ones are indented)
            total += float(cumulative)
            heaviest.append((float(cumulative), name.strip()))
    heaviest.sort(reverse=True)
    return {"top_level_imports_ms": round(total / 1000, 1),
            "heaviest_ms": {name: round(us / 1000, 1) for us, name in heaviest[:top]}}


def _fields(line: str) -> tuple[str, str, str, str]:
    # "import time:       123 |        456 |   package.module"
    head, cumulative, name = line.split("|", 2)
    return "", head.split(":", 1)[1].strip(), cumulative.strip(), name[1:]


def status_round_trip(runs: int = 30, warmups: int = 3, history: int = 20) -> dict[str, Any]:
    from tests.integration.daemon_helper import BIN, Daemon, add_job, final_run, start_run

    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
        d = Daemon(Path(tmp), {"agents.symbi": AGENT}, tcp=False)
        try:
            d.start()
            for i in range(JOBS):
                add_job(d, f"job-{i:03d}", "true", cron_expr=f"{i % 60} {i % 24} 1 1 *")
            job = "job-042"
            for _ in range(history):
                final_run(d, start_run(d, job))
            env = {k: v for k, v in os.environ.items() if not k.startswith("SYMBI_")}
            env.update(SYMBI_SOCKET=d.socket, NO_COLOR="1")
            argv = [str(BIN / "symbi"), "cron", "status", job]
            for _ in range(warmups):
                _wall_ms(argv, env)
            samples = [_wall_ms(argv, env) for _ in range(runs)]
            with_history = [_wall_ms(argv + ["--history", "10"], env) for _ in range(10)]
            floor = [_wall_ms([str(BIN / "python"), "-c", "pass"], env) for _ in range(10)]
            imports = import_times(argv, env)
            d.stop()
        finally:
            d.cleanup()
    return {
        "jobs": JOBS, "history_runs": history, "runs": runs, "warmups": warmups,
        "command": f"symbi cron status {job}",
        "p50_ms": pct(samples, 50), "p90_ms": pct(samples, 90), "max_ms": pct(samples, 100),
        "with_history_10_p50_ms": pct(with_history, 50),
        "python_start_p50_ms": pct(floor, 50),
        "imports": imports,
        "target_p50_ms": 40,
    }
