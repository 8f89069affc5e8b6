"""Missed-run policies after ten minutes of downtime, through real engine processes.

The engine (tests/integration/engine_main.py) runs real children on a real store; its
clock is the system's moved by an offset (never the system clock itself), so that it reads
a given instant once the engine process is up, however long it took to start. The first
engine starts at T - 3 s, runs the slot at T and stops; the next one starts with its clock
at T + 10 min 30 s, so the slots T+1 min .. T+10 min were missed while nothing ran. Each job's
``catch_up`` then gives exactly what README and symbid(8) document: ``latest`` runs the
newest missed slot once and records the others skipped, ``skip`` runs none and records
each, ``all`` runs each in turn (within ``catch_up_limit``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from symbid.clock import SystemClock
from symbid.jobs import JobService
from symbid.model import CatchUp, Job, RunStatus, Trigger, format_instant
from symbid.store import SqliteJobStore
from symbid.timing import parse_instant
from tests.fakes import OffsetClock
from tests.integration.test_engine import wait_for

ROOT = Path(__file__).resolve().parents[2]
T = parse_instant("2026-03-01T00:00:00Z")
MIN = 60_000
GRACE = {"misfire_grace_seconds": 10}  # a slot 30 s late is missed; T+10 min is


class Engine:
    def __init__(self, state: Path, agents: Path, clock_at: int) -> None:
        """An engine whose clock reads ``clock_at`` when it is built."""
        env = dict(os.environ, SYMBID_ENGINE_CLOCK_AT_MS=str(clock_at))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.engine_main", str(state), str(agents),
             json.dumps(GRACE)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "engine died"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self.proc.stderr.close()
        self.proc.stdout.close()
        return code


def test_ten_minutes_of_downtime_give_exactly_the_documented_runs_per_policy(
    tmp_path: Path,
) -> None:
    state, children = tmp_path / "state", tmp_path / "children.log"
    state.mkdir()
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps({"tick": {
        "command": ["/bin/sh", "-c", 'echo "$SYMBI_JOB_NAME $SYMBI_SLOT" >> "$CHILD_LOG"'],
        "env": {"CHILD_LOG": str(children)}}}))
    store = SqliteJobStore(str(state / "symbid.db"))
    before = OffsetClock(T - 3000 - SystemClock().now())  # 3 s before the slot at T
    service = JobService(store, before)
    jobs = {policy: service.create(Job(id="", name=policy.value, agent_id="tick",
                                       cron_expr="* * * * *", catch_up=policy), actor="test")
            for policy in CatchUp}

    def runs(policy: CatchUp) -> list[tuple[int, Trigger, RunStatus, str]]:
        return sorted((r.slot, r.trigger, r.status, r.error_message or "")
                      for r in store.history(jobs[policy].id, limit=100))

    def settled(n: dict[CatchUp, int]) -> bool:
        return all(len(runs(p)) == k and not any(r[2].is_open for r in runs(p))
                   for p, k in n.items())

    first = Engine(state, agents, T - 3000)
    try:
        wait_for(lambda: settled({p: 1 for p in CatchUp}), timeout=30)
    finally:
        assert first.stop() == 0
    # ten minutes of downtime: the next engine's clock reads T + 10 min 30 s
    second = Engine(state, agents, T + 10 * MIN + 30_000)
    try:
        wait_for(lambda: settled({CatchUp.LATEST: 11, CatchUp.SKIP: 11, CatchUp.ALL: 11}),
                 timeout=60)
    finally:
        assert second.stop() == 0

    missed = [T + i * MIN for i in range(1, 11)]
    on_time = (T, Trigger.SCHEDULE, RunStatus.SUCCEEDED)
    latest = runs(CatchUp.LATEST)
    assert [r[:3] for r in latest] == [on_time] + [
        (s, Trigger.SCHEDULE, RunStatus.SKIPPED) for s in missed[:-1]] + [
        (missed[-1], Trigger.CATCH_UP, RunStatus.SUCCEEDED)]
    assert all("catch_up=latest" in r[3] for r in latest[1:-1])
    skip = runs(CatchUp.SKIP)
    assert [r[:3] for r in skip] == [on_time] + [
        (s, Trigger.SCHEDULE, RunStatus.SKIPPED) for s in missed]
    assert all("missed by" in r[3] and "catch_up=skip" in r[3] for r in skip[1:])
    every = runs(CatchUp.ALL)
    assert [r[:3] for r in every] == [on_time] + [
        (s, Trigger.CATCH_UP, RunStatus.SUCCEEDED) for s in missed]

    # what ran is what is recorded as run, once each; every job is aimed at T + 11 min
    executed = Counter(tuple(line.split()) for line in children.read_text().splitlines())
    assert executed == Counter(
        [(p.value, format_instant(T)) for p in CatchUp]
        + [("latest", format_instant(missed[-1]))]
        + [("all", format_instant(s)) for s in missed])
    for policy in CatchUp:
        assert store.get_job(jobs[policy].id).next_run == T + 11 * MIN
    store.close()
