"""The engine with real seconds, real processes and a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from symbid.agentdef import Agent
from symbid.clock import SystemClock
from symbid.config import SchedulerConfig
from symbid.engine import Engine, build_engine
from symbid.executor import Agents
from symbid.jobs import JobService
from symbid.model import Job, JobStatus, Policy, RunStatus
from symbid.records import Run
from symbid.store import SqliteJobStore
from tests.integration.test_sandbox import alive, wait_gone

ROOT = Path(__file__).resolve().parents[2]


def wait_for(what: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    agents = Agents({
        "echo": Agent(name="echo", command=("sh", "-c", "echo started; cat")),
        "hang": Agent(name="hang", command=("sh", "-c", 'sleep 300 & echo $! > "$PIDFILE"; '
                                            "sleep 300"),
                      env={"PIDFILE": str(tmp_path / "grandchild.pid")}),
    })
    eng = build_engine(str(tmp_path / "state"), SchedulerConfig(kill_grace_seconds=1), agents)
    eng.scheduler.recover()
    eng.scheduler.start()
    yield eng
    eng.stop(timeout=2)


def add(eng: Engine, **kw: Any) -> Job:
    service = JobService(eng.store, SystemClock(), wake=eng.scheduler.wake)
    return service.create(Job(id="", **kw), actor="test")


def finished_run(eng: Engine, job: Job) -> Optional[Run]:
    runs = eng.store.history(job.id)
    return runs[0] if runs and not runs[0].status.is_open else None


def test_an_at_job_two_seconds_ahead_starts_on_time(engine: Engine) -> None:
    slot = SystemClock().now() + 2000
    job = add(engine, name="soon", agent_id="echo", at=slot, input="payload")
    run = wait_for(lambda: finished_run(engine, job), timeout=15)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == "started\npayload"
    assert run.slot == slot
    assert run.started_at is not None
    assert 0 <= run.started_at - slot < 1000  # generous: it is usually a few ms
    assert engine.store.get_job(job.id).status is JobStatus.COMPLETED


def test_a_run_exceeding_max_runtime_is_killed_with_its_grandchildren(
    engine: Engine, tmp_path: Path
) -> None:
    job = add(engine, name="slow", agent_id="hang", at=SystemClock().now() + 300,
              policy=Policy(max_runtime_seconds=1), max_retries=0)
    run = wait_for(lambda: finished_run(engine, job), timeout=15)
    assert run.status is RunStatus.TIMED_OUT
    assert "exceeded max_runtime 1s" in (run.error_message or "")
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert wait_gone(grandchild)
    assert engine.store.get_job(job.id).status is JobStatus.FAILED


class EngineProcess:
    """tests/integration/engine_main.py in its own process."""

    def __init__(self, state: Path, agents: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.engine_main", str(state), str(agents)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "engine died"
        self.ready = json.loads(line)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def hanging_agent(tmp_path: Path, script: str) -> tuple[Path, Path, Path]:
    """A state dir and an agents file whose "hang" agent writes its pid, then sleeps."""
    state = tmp_path / "state"
    state.mkdir()
    pidfile = tmp_path / "agent.pid"
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps({
        "hang": {"command": ["sh", "-c", script], "env": {"PIDFILE": str(pidfile)}},
    }))
    return state, pidfile, agents


def test_an_engine_killed_mid_run_records_interrupted_and_never_fires_the_slot_twice(
    tmp_path: Path,
) -> None:
    state, pidfile, agents = hanging_agent(tmp_path, 'echo $$ > "$PIDFILE"; sleep 300')
    clock = SystemClock()
    store = SqliteJobStore(str(state / "symbid.db"))
    once = JobService(store, clock).create(
        Job(id="", name="once", agent_id="hang", at=clock.now() + 1000), actor="test")
    store.close()

    first = EngineProcess(state, agents)
    assert first.ready["interrupted"] == 0
    agent_pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
    store = SqliteJobStore(str(state / "symbid.db"))
    wait_for(lambda: store.history(once.id) and store.history(once.id)[0].status
             is RunStatus.RUNNING)
    first.kill()
    assert alive(agent_pid)  # the run's process outlived the engine

    second = EngineProcess(state, agents)
    try:
        assert second.ready == {"ready": True, "interrupted": 1, "killed_groups": 1}
        assert wait_gone(agent_pid)
        time.sleep(2)  # the slot is in the past now: a buggy engine would fire it again
        (run,) = store.history(once.id)
        assert run.status is RunStatus.INTERRUPTED
        assert run.pid == agent_pid
        assert "not re-run" in (run.error_message or "")
        assert store.get_job(once.id).status is JobStatus.FAILED
    finally:
        assert second.stop() == 0
        store.close()


def test_a_graceful_stop_interrupts_runs_that_outlast_the_shutdown_timeout(
    tmp_path: Path,
) -> None:
    state, pidfile, agents = hanging_agent(tmp_path, 'echo $$ > "$PIDFILE"; exec sleep 300')
    clock = SystemClock()
    store = SqliteJobStore(str(state / "symbid.db"))
    job = JobService(store, clock).create(
        Job(id="", name="hourly", agent_id="hang", cron_expr="* * * * * *"), actor="test")
    engine = EngineProcess(state, agents)
    agent_pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
    started = time.monotonic()
    assert engine.stop() == 0
    assert time.monotonic() - started < 15  # 2 s timeout + 1 s kill grace, generously
    assert not alive(agent_pid)
    runs = store.history(job.id, limit=100)
    assert RunStatus.INTERRUPTED in {r.status for r in runs}
    assert not any(r.status.is_open for r in runs)
    store.close()
    assert os.path.exists(state / "symbid.db")
