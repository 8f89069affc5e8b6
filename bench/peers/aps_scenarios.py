"""APScheduler 3.x scenarios, run by the peer's own venv (stdlib + APScheduler + SQLAlchemy
only; symbid is not importable there). Prints one JSON object per scenario on stdout.

The set-up is what an operator would use APScheduler for in place of a scheduler daemon:
a BackgroundScheduler, its SQLAlchemy job store on a SQLite file (so jobs survive a
restart, as symbid's do), a 20-thread pool, and jobs that start a child process:
``date +%s%N``, whose own clock reading is the child-observed start (as in symbid's
figures), or ``/bin/true``.

    python aps_scenarios.py SCENARIO WORKDIR [ARGS...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

_LOCK = threading.Lock()
SEEN: list[tuple[int, int]] = []  # (slot ms, child's first clock reading ns)


def clock_job(slot_ms: int) -> None:
    """The job: start a child that prints its own clock reading."""
    out = subprocess.run(["date", "+%s%N"], capture_output=True, check=False).stdout
    with _LOCK:
        SEEN.append((slot_ms, int(out.strip())))


def true_job() -> None:
    subprocess.run(["/bin/true"], check=False)


def scheduler(workdir: str, threads: int = 20) -> BackgroundScheduler:
    db = os.path.join(workdir, "aps.sqlite")
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{db}")},
        executors={"default": ThreadPoolExecutor(threads)},
        job_defaults={"coalesce": False, "misfire_grace_time": None, "max_instances": 1},
        timezone=timezone.utc,
    )


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _wait_for(count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _LOCK:
            if len(SEEN) >= count:
                return
        time.sleep(0.05)


def _late_ms() -> list[float]:
    with _LOCK:
        return [ns / 1e6 - slot for slot, ns in SEEN]


def one_shots(workdir: str, count: int, spacing_ms: int, lead_ms: int) -> dict[str, Any]:
    """``count`` date jobs, ``spacing_ms`` apart (0: all at one instant), added to the
    running scheduler ``lead_ms`` ahead of the first slot."""
    sched = scheduler(workdir)
    sched.start()
    first = _now_ms() + lead_ms
    for i in range(count):
        slot = first + i * spacing_ms
        sched.add_job("aps_scenarios:clock_job", "date", run_date=_at(slot), args=[slot],
                      id=f"at-{i:05d}")
    if _now_ms() > first - 1000:
        raise SystemExit("adding the jobs took longer than the lead")
    _wait_for(count, (count * spacing_ms + lead_ms) / 1000 + 120)
    sched.shutdown(wait=True)
    return {"completed": len(SEEN), "late_ms": _late_ms()}


def adds(workdir: str, count: int) -> dict[str, Any]:
    """``count`` cron jobs added one by one to the running scheduler (each add is one
    store transaction, as each symbid API create is)."""
    sched = scheduler(workdir)
    sched.start()
    started = time.monotonic()
    for i in range(count):
        sched.add_job("aps_scenarios:true_job", "cron", minute=i % 60, hour=i % 24, day=1,
                      month=1, id=f"cron-{i:06d}")
    seconds = time.monotonic() - started
    sched.shutdown(wait=False)
    return {"jobs": count, "seconds": round(seconds, 3), "per_s": round(count / seconds, 1)}


def main(argv: list[str]) -> int:
    scenario, workdir, *rest = argv
    if scenario == "one_shots":
        count, spacing, lead = (int(x) for x in rest)
        result = one_shots(workdir, count, spacing, lead)
    elif scenario == "adds":
        result = adds(workdir, int(rest[0]))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    import apscheduler

    result["apscheduler"] = apscheduler.__version__
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    # The jobs are stored by reference ("aps_scenarios:clock_job"): run everything in the
    # module as imported under that name, so the job and this script share SEEN.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import aps_scenarios

    sys.exit(aps_scenarios.main(sys.argv[1:]))
