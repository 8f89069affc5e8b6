"""Scaling: the real daemon on 1,000 to 1,000,000 active cron jobs.

For each N the store is filled directly (one transaction, the store's own row
form: :func:`symbid.store.job_params`), then ``symbid`` is started on it, on a
socket in a temporary directory, and measured:

* start-up: from the exec until sd_notify ``READY=1`` (a notify socket the bench
  holds), and until the API first answers;
* RSS (``VmRSS``) once ready and settled, and its peak (``VmHWM``);
* idle CPU % over a window: the threads' run time from ``/proc/PID/task/*/schedstat``
  (``idle_cpu_percent``, nanoseconds) and utime + stime from ``/proc/PID/stat``
  (``idle_cpu_percent_ticks``, in 10 ms ticks: 0.05 % steps over 20 s);
* lateness at that scale: a few one-shot jobs created through the API once the
  daemon idles, due a few seconds later; how long after its slot each run's spawn
  is recorded (``started_at - slot``) and each child's own first clock reading is.

The N jobs are yearly cron jobs spread over 1,440 (minute, hour) pairs of 1 January,
so none comes due while it is measured. Growth against N is reported as ratios:
``per_job`` figures (RSS above the 1,000-job daemon's, start-up above it) should not
grow with N, and lateness should not grow faster than N.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from bench.engine_bench import pct
from symbid.clock import SystemClock
from symbid.model import Job, format_instant
from symbid.store import SqliteJobStore, job_params
from symbid.store.rows import JOB_COLUMNS, JOB_PLACEHOLDERS
from symbid.timing import make_schedule

CLOCK = SystemClock()
SIZES = (1_000, 10_000, 100_000, 1_000_000)
_CHUNK = 50_000  # rows per executemany


def fill(db: str, jobs: int, now: int) -> float:
    """``jobs`` active yearly cron jobs in one transaction; the seconds it took."""
    started = time.monotonic()
    SqliteJobStore(db).close()  # the schema, as the daemon makes it
    templates = []
    for pair in range(1440):
        expr = f"{pair % 60} {pair // 60} 1 1 *"
        nxt: Optional[int] = make_schedule(expr, None, "UTC").next_after(now)
        row = list(job_params(Job(id="", name="", agent_id="true", cron_expr=expr,
                                  next_run=nxt, created_at=now - 60_000,
                                  updated_at=now - 60_000)))
        templates.append(row)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: the indexes stay in memory
    sql = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({JOB_PLACEHOLDERS})"
    # ids: uuid4-shaped, distinct and cheap (random ids cost 1M os.urandom calls)
    prefix = os.urandom(4).hex()
    with conn:
        for lo in range(0, jobs, _CHUNK):
            rows = []
            for i in range(lo, min(jobs, lo + _CHUNK)):
                row = templates[i % 1440].copy()
                row[0] = f"{prefix}-0000-4000-8000-{i:012x}"
                row[1] = f"yearly-{i:07d}"  # ids and names in index order: appended
                rows.append(row)
            conn.executemany(sql, rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.monotonic() - started


class Notify:
    """An sd_notify socket: what the daemon sends READY=1 to."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            if b"READY=1" in data.split(b"\n"):
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def _proc(pid: int) -> dict[str, float]:
    """CPU seconds (utime + stime, in clock ticks; and the threads' run time from
    schedstat, in ns, which resolves an idle daemon's few milliseconds), RSS and peak."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    out = {"cpu": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}
    run_ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                run_ns += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that just ended
            continue
    out["run"] = run_ns / 1e9
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def _lateness(d: Any, db: Path, count: int, lead_ms: int = 3000,
              spacing_ms: int = 200) -> dict[str, Any]:
    first = CLOCK.now() + lead_ms
    names = [f"due-{i}" for i in range(count)]
    for i, name in enumerate(names):
        status, body = d.api("POST", "/api/v1/schedule", {
            "name": name, "agent_id": "clock", "at": format_instant(first + i * spacing_ms)})
        assert status == 201, body
    deadline = time.monotonic() + (first + count * spacing_ms - CLOCK.now()) / 1000 + 60
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = conn.execute(
            "SELECT r.slot, r.started_at, r.status, r.output FROM runs r JOIN jobs j "
            "ON j.id = r.job_id WHERE j.name LIKE 'due-%'").fetchall()
        conn.close()
        if len([r for r in rows if r[2] not in ("pending", "running")]) >= count:
            break
        time.sleep(0.25)
    spawn = [float(r[1] - r[0]) for r in rows if r[1] is not None]
    child = [int(r[3].strip()) / 1e6 - r[0] for r in rows
             if r[2] == "succeeded" and (r[3] or "").strip().isdigit()]
    return {"runs": len(spawn),
            "spawn_late_ms": {"p50": pct(spawn, 50), "p99": pct(spawn, 99)},
            "child_late_ms": {"p50": pct(child, 50), "p99": pct(child, 99)}}


def one_size(jobs: int, idle_seconds: float, due: int, config: str = "") -> dict[str, Any]:
    from tests.integration.daemon_helper import Daemon

    with tempfile.TemporaryDirectory(prefix="symbid-scale-") as tmp:
        root = Path(tmp)
        agents = ('agent true { command: ["/bin/true"] }\n'
                  'agent clock { command: ["date", "+%s%N"] }\n')
        d = Daemon(root, {"agents.symbi": agents}, tcp=False,
                   config="max_jitter_seconds = 0\n" + config)
        extra = config.strip()
        db = root / "state" / "symbid.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        fill_seconds = fill(str(db), jobs, CLOCK.now())
        db_mib = os.path.getsize(db) / 2**20
        notify = Notify(d.sockdir)
        try:
            started = time.monotonic()
            d.start(env={"NOTIFY_SOCKET": notify.path}, wait=False)
            assert d.proc is not None
            ready = notify.wait_ready(600)
            ready_s = time.monotonic() - started
            assert ready, f"no READY=1 from symbid:\n{d.log.read_text()[-3000:]}"
            d.wait_ready(timeout=120)
            answer_s = time.monotonic() - started
            time.sleep(5)  # the first passes, the first STATUS line
            before = _proc(d.proc.pid)
            t0 = time.monotonic()
            time.sleep(idle_seconds)
            after = _proc(d.proc.pid)
            window = time.monotonic() - t0
            idle_cpu = 100 * (after["run"] - before["run"]) / window
            idle_ticks = 100 * (after["cpu"] - before["cpu"]) / window
            late = _lateness(d, db, due)
            d.stop()
        finally:
            notify.close()
            d.cleanup()
    return {
        "jobs": jobs,
        "config": extra,
        "fill_seconds": round(fill_seconds, 1),
        "db_mib": round(db_mib, 1),
        "startup_ready_s": round(ready_s, 2),
        "startup_api_s": round(answer_s, 2),
        "rss_mib": round(after["VmRSS"], 1),
        "rss_peak_mib": round(after["VmHWM"], 1),
        "idle_cpu_percent": round(idle_cpu, 3),
        "idle_cpu_percent_ticks": round(idle_ticks, 3),
        **late,
    }


def _ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth from the smallest N: each figure's increase per added job, and the ratio
    of the figure's growth to N's (≤ 1: no worse than linear)."""
    base = rows[0]
    out: dict[str, Any] = {}
    for row in rows[1:]:
        n = row["jobs"] / base["jobs"]
        entry = {"n_ratio": n}
        for key in ("rss_mib", "startup_ready_s"):
            entry[key + "_ratio"] = round(row[key] / base[key], 2)
            entry[key + "_vs_linear"] = round(row[key] / base[key] / n, 4)
        for key in ("spawn_late_ms", "child_late_ms"):
            b = max(base[key]["p99"], 1.0)  # sub-millisecond noise is not growth
            entry[key + "_p99_ratio"] = round(row[key]["p99"] / b, 2)
        entry["rss_kib_per_added_job"] = round(
            (row["rss_mib"] - base["rss_mib"]) * 1024 / (row["jobs"] - base["jobs"]), 3)
        out[str(row["jobs"])] = entry
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'N':>9} {'fill s':>7} {'ready s':>8} {'api s':>6} {'RSS MB':>7} {'peak MB':>8} "
            f"{'idle CPU%':>9} {'spawn p50/p99 ms':>17} {'child p50/p99 ms':>17}")
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['jobs']:>9} {r['fill_seconds']:>7} {r['startup_ready_s']:>8} "
            f"{r['startup_api_s']:>6} {r['rss_mib']:>7} {r['rss_peak_mib']:>8} "
            f"{r['idle_cpu_percent']:>9} "
            f"{str(r['spawn_late_ms']['p50']) + '/' + str(r['spawn_late_ms']['p99']):>17} "
            f"{str(r['child_late_ms']['p50']) + '/' + str(r['child_late_ms']['p99']):>17}")
    return "\n".join(lines)


def scale(sizes: Optional[tuple[int, ...]] = None, idle_seconds: float = 20.0,
          due: int = 20, extra_config: Optional[str] = None) -> dict[str, Any]:
    """The table for each N (``SYMBID_SCALE_SIZES=1000,10000`` to choose), and the growth.
    ``extra_config`` (or ``SYMBID_SCALE_CONFIG``): TOML added to the daemon's config
    after its ``[scheduler]`` keys (``[metrics]`` and its keys, say)."""
    if sizes is None:
        env = os.environ.get("SYMBID_SCALE_SIZES")
        sizes = tuple(int(s) for s in env.split(",")) if env else SIZES
    if extra_config is None:
        extra_config = os.environ.get("SYMBID_SCALE_CONFIG", "")
    rows = []
    for n in sizes:
        rows.append(one_size(n, idle_seconds, due, extra_config))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows), flush=True)
    series = metrics_series() if os.environ.get("SYMBID_SCALE_SERIES", "1") != "0" else {}
    if series:
        print(f"per-job series of {series['jobs']} jobs that have run: "
              f"{series['per_job_labels_on']} (on), {series['per_job_labels_off']} (off)",
              flush=True)
    return {"sizes": rows, "growth": _ratios(rows) if len(rows) > 1 else {},
            "table": table(rows).splitlines(), "metrics_series": series}


# Runs in a fresh interpreter: the RSS of the daemon's Metrics once every one of ``jobs``
# jobs has finished a run (what creates a job's series), and one /metrics rendering.
_SERIES = """
import json, resource, time
from symbid.metrics import Metrics

def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:")) / 1024

m = Metrics(per_job_labels={labels})
before = rss()
for i in range({jobs}):
    m.run_finished(f"yearly-{{i:07d}}", "succeeded", 0.2)
after = rss()
started = time.monotonic()
body, _ = m.render()
print(json.dumps({{"series_rss_mib": round(after - before, 1),
                   "render_seconds": round(time.monotonic() - started, 2),
                   "render_mib": round(len(body) / 2**20, 1)}}))
"""


def metrics_series(jobs: int = 100_000) -> dict[str, Any]:
    """What ``[metrics] per_job_labels`` costs once each of ``jobs`` jobs has run: the
    daemon's Metrics in a process of its own, each job's run recorded as the daemon
    records it, RSS before and after and one /metrics rendering, labels on and off.
    (The scale table's jobs never run while measured, so it has no per-job series.)"""
    out: dict[str, Any] = {"jobs": jobs}
    for labels in (True, False):
        done = subprocess.run([sys.executable, "-c", _SERIES.format(labels=labels, jobs=jobs)],
                              capture_output=True, text=True, check=True, timeout=900)
        out["per_job_labels_on" if labels else "per_job_labels_off"] = \
            json.loads(done.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    print(json.dumps(scale(), indent=2))
