"""Benchmarks through the real daemon (`symbid` on a socket), and against an older commit.

* ``lateness_1000``: 1,000 `at` jobs created through the API, all due at one instant;
  how late each child starts (its own first clock reading) and how long until the
  last one has started.
* ``lateness_single_vs_base``: one job due at a time (as ``lateness_single``), for
  the committed HEAD and for the commit before issue 7 (``SYMBID_BENCH_BASE``,
  default 4208412), run alternately in the same session, so that the two are
  compared on the same machine at the same moment.
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
from typing import Any

from bench.engine_bench import child_lateness, pct
from symbid.clock import SystemClock
from symbid.model import format_instant

ROOT = Path(__file__).resolve().parents[1]
CLOCK = SystemClock()
BASE = os.environ.get("SYMBID_BENCH_BASE", "4208412")


def lateness_1000(jobs: int = 1000, lead_ms: int = 20_000) -> dict[str, Any]:
    from tests.integration.daemon_helper import Daemon

    with tempfile.TemporaryDirectory(prefix="symbid-bench-") as tmp:
        root = Path(tmp)
        agents = 'agent clock { command: ["date", "+%s%N"] }\n'
        d = Daemon(root, {"agents.symbi": agents}, tcp=False,
                   config=f"max_concurrent_jobs = {jobs}\nmax_jitter_seconds = 0\n")
        try:
            d.start()
            slot = CLOCK.now() + lead_ms
            created = time.monotonic()
            for i in range(jobs):
                status, body = d.api("POST", "/api/v1/schedule", {
                    "name": f"at-{i:04d}", "agent_id": "clock", "at": format_instant(slot)})
                assert status == 201, body
            create_seconds = time.monotonic() - created
            assert CLOCK.now() < slot - 2000, "creating the jobs took longer than the lead"
            db = root / "state" / "symbid.db"
            deadline = time.monotonic() + (slot - CLOCK.now()) / 1000 + 60
            rows: list[tuple[Any, ...]] = []
            while time.monotonic() < deadline:
                conn = sqlite3.connect(str(db))
                rows = conn.execute(
                    "SELECT slot, started_at, status, output FROM runs").fetchall()
                conn.close()
                if len([r for r in rows if r[2] not in ("pending", "running")]) >= jobs:
                    break
                time.sleep(0.5)
            d.stop()
        finally:
            d.cleanup()
    child, recorded = child_lateness(rows)
    return {
        "jobs": jobs,
        "completed": len(child),
        "api_create_seconds": round(create_seconds, 2),
        "child_start_late_ms": {"p50": pct(child, 50), "p99": pct(child, 99),
                                "max": pct(child, 100)},
        "spawn_recorded_late_ms": {"p50": pct(recorded, 50), "p99": pct(recorded, 99),
                                   "max": pct(recorded, 100)},
    }


# Runs in either tree (cwd), with that tree's own engine and schema: the engine_bench
# helpers it uses exist in both. Prints the raw per-run lateness (ms).
_SINGLE = """
import json, os, tempfile, time
from bench import engine_bench as e
count, spacing, lead = {count}, {spacing}, 3000
with tempfile.TemporaryDirectory(prefix="symbid-bench-") as state:
    db = os.path.join(state, "symbid.db")
    first = e.CLOCK.now() + lead
    e.insert_jobs(db, [e.at_job(f"j{{i}}", "clock", first + i * spacing) for i in range(count)])
    engine = e.Engine(state, {{"clock": {{"command": ["date", "+%s%N"]}}}},
                      {{"max_concurrent_jobs": 1000}})
    cpu0 = engine.cpu_seconds()  # started and recovered: count only the runs
    deadline = time.monotonic() + (count * spacing + lead) / 1000 + 30
    while time.monotonic() < deadline:
        if len([r for r in e.runs_of(db) if r[2] not in ("pending", "running")]) >= count:
            break
        time.sleep(0.5)
    cpu = engine.cpu_seconds() - cpu0
    engine.stop()
    child, spawned = e.child_lateness(e.runs_of(db))
print(json.dumps({{"child": child, "spawned": spawned, "cpu_ms_per_run": 1000 * cpu / count}}))
"""


def _single(cwd: Path, count: int, spacing_ms: int) -> dict[str, Any]:
    code = _SINGLE.format(count=count, spacing=spacing_ms)
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, check=True, timeout=900)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def lateness_single_vs_base(rounds: int = 12, count: int = 200,
                            spacing_ms: int = 100) -> dict[str, Any]:
    """One job due at a time (``count`` slots ``spacing_ms`` apart), this tree against
    the base commit, alternating for ``rounds`` rounds."""
    with tempfile.TemporaryDirectory(prefix="symbid-vs-") as tmp:
        trees = {"head": Path(tmp) / "head", "base": Path(tmp) / "base"}
        for name, commit in (("head", "HEAD"), ("base", BASE)):  # committed trees only
            trees[name].mkdir()
            archive = subprocess.run(["git", "archive", commit], cwd=ROOT,
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(trees[name])], input=archive, check=True)
        samples: dict[str, list[dict[str, Any]]] = {"head": [], "base": []}
        for i in range(rounds):  # alternate, so drift on the machine hits both alike
            for name in (("head", "base") if i % 2 == 0 else ("base", "head")):
                samples[name].append(_single(trees[name], count, spacing_ms))

    def summary(rounds_of: list[dict[str, Any]]) -> dict[str, Any]:
        runs = [r["child"] for r in rounds_of]
        pooled = [x for r in runs for x in r]
        spawned = [x for r in rounds_of for x in r["spawned"]]
        return {"p99_per_round_ms": [pct(r, 99) for r in runs],
                "spawn_recorded_pooled_ms": {"p50": pct(spawned, 50), "p99": pct(spawned, 99)},
                "median_round_p99_ms": round(statistics.median(pct(r, 99) for r in runs), 2),
                "pooled_ms": {"n": len(pooled), "p50": pct(pooled, 50), "p99": pct(pooled, 99),
                              "max": pct(pooled, 100)},
                # engine CPU per run (claim, start, record, one child): far less noisy
                "cpu_ms_per_run": round(statistics.median(r["cpu_ms_per_run"]
                                                          for r in rounds_of), 3)}

    head, old = summary(samples["head"]), summary(samples["base"])
    return {
        "base_commit": BASE, "rounds": rounds, "slots_per_round": count,
        "head": head, "base": old,
        "pooled_p99_worse_by_ms": round(head["pooled_ms"]["p99"] - old["pooled_ms"]["p99"], 2),
        "median_round_p99_worse_by_ms": round(head["median_round_p99_ms"]
                                              - old["median_round_p99_ms"], 2),
        "pooled_p50_worse_by_ms": round(head["pooled_ms"]["p50"] - old["pooled_ms"]["p50"], 2),
        "cpu_ms_per_run_more": round(head["cpu_ms_per_run"] - old["cpu_ms_per_run"], 3),
    }
