"""symbid side by side with APScheduler 3.x, in one run on one machine.

The peer runs in its own venv (built once under the bench cache, outside the repo:
``$SYMBID_BENCH_CACHE``, default ``~/.cache/symbid-bench``) with the scenarios of
:mod:`bench.peers.aps_scenarios`: a BackgroundScheduler, the SQLAlchemy job store on a
SQLite file, a 20-thread pool. symbid is the real daemon on a socket in a temp dir with
``max_concurrent_jobs = 20``. Both start a child per run and take the child's own first
clock reading as its start, so "late" is the same figure on both sides: ms from the
slot to the moment the child runs.

The two alternate round by round (symbid, peer, peer, symbid, ...), so that drift on a
shared machine hits both alike; each figure is the median over the rounds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench.engine_bench import pct
from symbid.clock import SystemClock
from symbid.model import format_instant

ROOT = Path(__file__).resolve().parents[1]
CLOCK = SystemClock()
APSCHEDULER = "3.11.3"
SQLALCHEMY = "2.0.58"
CACHE = Path(os.environ.get("SYMBID_BENCH_CACHE", "~/.cache/symbid-bench")).expanduser()
CONCURRENCY = 20
CLOCK_AGENT = 'agent clock { command: ["date", "+%s%N"] }\nagent true { command: ["/bin/true"] }\n'


# --- the peer ---------------------------------------------------------------------------
def aps_python() -> Path:
    """The peer venv's python, built when missing (pinned versions, from the registry)."""
    venv = CACHE / f"apscheduler-{APSCHEDULER}-sqlalchemy-{SQLALCHEMY}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        f"apscheduler=={APSCHEDULER}", f"sqlalchemy=={SQLALCHEMY}"],
                       check=True)
        stamp.write_text(f"{APSCHEDULER} {SQLALCHEMY}\n")
    return python


def aps(scenario: str, *args: int) -> dict[str, Any]:
    script = ROOT / "bench" / "peers" / "aps_scenarios.py"
    with tempfile.TemporaryDirectory(prefix="aps-bench-") as work:
        out = subprocess.run([str(aps_python()), str(script), scenario, work,
                              *(str(a) for a in args)],
                             capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"APScheduler {scenario} failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- symbid -----------------------------------------------------------------------------
def _daemon(root: Path, concurrency: int = CONCURRENCY) -> Any:
    from tests.integration.daemon_helper import Daemon

    return Daemon(root, {"agents.symbi": CLOCK_AGENT}, tcp=False,
                  config=f"max_concurrent_jobs = {concurrency}\nmax_jitter_seconds = 0\n")


def _finished(db: Path, count: int, timeout: float) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        conn = sqlite3.connect(str(db))
        rows = conn.execute("SELECT slot, status, output FROM runs").fetchall()
        conn.close()
        if len([r for r in rows if r[1] not in ("pending", "running")]) >= count:
            break
        time.sleep(0.2)
    return rows


def symbid_one_shots(count: int, spacing_ms: int, lead_ms: int) -> dict[str, Any]:
    """``count`` `at` jobs of ``date +%s%N`` created through the API, ``spacing_ms`` apart
    (0: all due at one instant)."""
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
        d = _daemon(Path(tmp))
        try:
            d.start()
            first = CLOCK.now() + lead_ms
            for i in range(count):
                status, body = d.api("POST", "/api/v1/schedule", {
                    "name": f"at-{i:05d}", "agent_id": "clock",
                    "at": format_instant(first + i * spacing_ms)})
                assert status == 201, body
            if CLOCK.now() > first - 1000:
                raise RuntimeError("creating the jobs took longer than the lead")
            rows = _finished(d.state / "symbid.db", count,
                             (first - CLOCK.now() + count * spacing_ms) / 1000 + 120)
            d.stop()
        finally:
            d.cleanup()
    late = [int(out.strip()) / 1e6 - slot for slot, status, out in rows
            if status == "succeeded"]
    return {"completed": len(late), "late_ms": late}


def symbid_adds(count: int) -> dict[str, Any]:
    """``count`` cron jobs created through the API over the socket, one request each."""
    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
        d = _daemon(Path(tmp))
        try:
            d.start()
            started = time.monotonic()
            for i in range(count):
                status, body = d.api("POST", "/api/v1/schedule", {
                    "name": f"cron-{i:06d}", "agent_id": "true",
                    "cron_expr": f"{i % 60} {i % 24} 1 1 *"})
                assert status == 201, body
            seconds = time.monotonic() - started
            d.stop()
        finally:
            d.cleanup()
    return {"jobs": count, "seconds": round(seconds, 3), "per_s": round(count / seconds, 1)}


# --- side by side -----------------------------------------------------------------------
def _alternate(rounds: int, ours: Callable[[], dict[str, Any]],
               theirs: Callable[[], dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                            list[dict[str, Any]]]:
    a: list[dict[str, Any]] = []
    b: list[dict[str, Any]] = []
    for i in range(rounds):
        if i % 2 == 0:
            a.append(ours())
            b.append(theirs())
        else:
            b.append(theirs())
            a.append(ours())
    return a, b


def _late_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "completed": [s["completed"] for s in samples],
        "p50_ms": round(statistics.median(pct(s["late_ms"], 50) for s in samples), 2),
        "p99_ms": round(statistics.median(pct(s["late_ms"], 99) for s in samples), 2),
        "p99_per_round_ms": [pct(s["late_ms"], 99) for s in samples],
    }


def _row(figure: str, ours: float, theirs: float, unit: str,
         target: str = "") -> dict[str, Any]:
    return {"figure": figure, "symbid": ours, "peer": theirs, "unit": unit,
            "ratio": round(ours / theirs, 2) if theirs else None, "target": target}


def vs_apscheduler(rounds: int = 3) -> dict[str, Any]:
    aps_python()  # built before anything is timed
    single = _alternate(rounds, lambda: symbid_one_shots(50, 200, 3000),
                        lambda: aps("one_shots", 50, 200, 3000))
    burst = _alternate(rounds, lambda: symbid_one_shots(1000, 0, 6000),
                       lambda: aps("one_shots", 1000, 0, 6000))
    adds = _alternate(rounds, lambda: symbid_adds(1000), lambda: aps("adds", 1000))
    s_single, p_single = _late_summary(single[0]), _late_summary(single[1])
    s_burst, p_burst = _late_summary(burst[0]), _late_summary(burst[1])
    s_add = statistics.median(r["per_s"] for r in adds[0])
    p_add = statistics.median(r["per_s"] for r in adds[1])
    rows = [
        _row("one one-shot at a time: child start after slot, p50", s_single["p50_ms"],
             p_single["p50_ms"], "ms"),
        _row("one one-shot at a time: child start after slot, p99", s_single["p99_ms"],
             p_single["p99_ms"], "ms", "≤ 2 ms"),
        _row("1,000 one-shots due at one instant, concurrency 20: child start after slot, "
             "p99", s_burst["p99_ms"], p_burst["p99_ms"], "ms", "ratio ≤ 0.5"),
        _row("adding jobs one by one through its API, one client", s_add, p_add, "jobs/s"),
    ]
    return {
        "peer": f"APScheduler {APSCHEDULER} (BackgroundScheduler, SQLAlchemy {SQLALCHEMY} "
                f"job store on SQLite, {CONCURRENCY}-thread pool)",
        "rounds": rounds,
        "rows": rows,
        "single": {"symbid": s_single, "peer": p_single},
        "burst_1000": {"symbid": s_burst, "peer": p_burst},
        "adds_1000": {"symbid": adds[0], "peer": adds[1]},
    }
