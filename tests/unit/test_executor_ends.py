"""How the executor ends a run, against a fake supervisor that lets the test choose the
instant: a cancel that reaches a heartbeat wake-up between two iterations never lets the
next one go on unkilled and leaves nothing behind; whatever goes wrong in working out an
outcome, one is reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from symbid import executor as executor_module
from symbid.agentdef import Agent
from symbid.executor import Agents, Executor
from symbid.heartbeat import Wakeup
from symbid.model import Heartbeat, Job, RunStatus, SessionMode, Trigger, new_id
from symbid.records import Run, RunOutcome
from symbid.sandbox import ChildExit, Spawned, SpawnSpec
from tests.fakes import FakeClock


class FakeSupervisor:
    """Spawns nothing: the test ends each "process" with :meth:`exit`."""

    def __init__(self) -> None:
        self.live: dict[str, Callable[[ChildExit], None]] = {}
        self.spawned = 0
        self.kills: list[str] = []
        self.while_spawning: Optional[Callable[[], None]] = None
        self.exit_at_once: Optional[bytes] = None  # the process ends before spawn returns

    def spawn(self, spec: SpawnSpec, on_exit: Callable[[ChildExit], None]) -> Spawned:
        self.spawned += 1
        if self.while_spawning is not None:  # before the process is registered
            hook, self.while_spawning = self.while_spawning, None
            hook()
        self.live[spec.tag] = on_exit
        if self.exit_at_once is not None:
            self.exit(spec.tag, self.exit_at_once)
        return Spawned(pid=1000 + self.spawned, pgid=1000 + self.spawned)

    def kill(self, tag: str, reason: str) -> bool:
        if tag not in self.live:
            return False
        self.kills.append(reason)
        return True

    def exit(self, tag: str, output: bytes, killed: Optional[str] = None) -> None:
        on_exit = self.live.pop(tag)
        on_exit(ChildExit(tag=tag, pid=1, exit_code=None if killed else 0,
                          signal=15 if killed else None, stdout=output,
                          stdout_truncated=False, stderr_tail=b"", killed=killed,
                          duration=0.01))

    def kill_all(self, reason: str) -> int:
        return 0


class Outcomes:
    def __init__(self) -> None:
        self.got: list[RunOutcome] = []
        self.processes: list[tuple[str, int]] = []

    def run_finished(self, outcome: RunOutcome) -> None:
        self.got.append(outcome)

    def process_started(self, run_id: str, spawned: Spawned) -> None:
        self.processes.append((run_id, spawned.pid))


def heartbeat_run(tmp_path: Path, heartbeat: bool = True, exit_at_once: Optional[bytes] = None
                  ) -> tuple[Executor, FakeSupervisor, Outcomes, Run]:
    clock = FakeClock()
    supervisor = FakeSupervisor()
    supervisor.exit_at_once = exit_at_once
    executor = Executor(supervisor, Agents({"beat": Agent(name="beat", command=("true",))}),
                        clock, runs_dir=str(tmp_path))  # type: ignore[arg-type]
    outcomes = Outcomes()
    executor.bind(outcomes)
    job = Job(id=new_id(), name="hb", agent_id="beat", cron_expr="* * * * *",
              heartbeat=Heartbeat(enabled=heartbeat,
                                  context_mode=SessionMode.FULLY_EPHEMERAL, max_iterations=5))
    run = Run(id=new_id(), job_id=job.id, slot=clock.now(), attempt=1,
              trigger=Trigger.MANUAL, status=RunStatus.RUNNING, created_at=clock.now())
    executor.start(job, run, lambda: None)
    return executor, supervisor, outcomes, run


def test_a_cancel_while_the_next_iteration_is_spawned_kills_that_iteration(
        tmp_path: Path) -> None:
    executor, supervisor, outcomes, run = heartbeat_run(tmp_path)
    answers: list[bool] = []
    supervisor.while_spawning = lambda: answers.append(executor.cancel(run.id, "uid:0"))
    supervisor.exit(run.id, b"working\n")  # iteration 1 ends; iteration 2 is spawned

    assert answers == [True]  # the cancel was taken: the run is being stopped
    assert supervisor.kills == ["cancel"]  # and iteration 2 was killed, not left to run
    supervisor.exit(run.id, b"", killed="cancel")
    [outcome] = outcomes.got
    assert outcome.status is RunStatus.CANCELLED
    assert outcome.stop_reason == "cancelled"
    assert supervisor.spawned == 2
    assert outcomes.processes == [(run.id, 1002)]  # iteration 2's process is reported


def test_a_cancel_that_races_the_end_of_a_wakeup_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executor, supervisor, outcomes, run = heartbeat_run(tmp_path)
    real = Wakeup.stop_reason
    answers: list[bool] = []

    def cancel_as_it_stops(self: Wakeup, status: RunStatus, output: Optional[str]) -> Any:
        answers.append(executor.cancel(run.id, "uid:0"))  # the process is gone already
        return real(self, status, output)

    monkeypatch.setattr(Wakeup, "stop_reason", cancel_as_it_stops)
    supervisor.exit(run.id, b"sleep\n")  # the wake-up ends on its own
    assert answers == [True]
    assert [o.stop_reason for o in outcomes.got] == ["sleep"]
    assert executor._cancelled_by == {} and executor._waking == set()


def test_a_first_iteration_that_ends_before_its_start_returns_leaves_nothing_behind(
        tmp_path: Path) -> None:
    executor, _, outcomes, run = heartbeat_run(tmp_path, exit_at_once=b"sleep\n")
    assert [o.stop_reason for o in outcomes.got] == ["sleep"]
    assert executor._waking == set()
    assert not executor.cancel(run.id, "uid:0")


def test_an_outcome_that_cannot_be_worked_out_is_still_reported_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(executor_module, "summarize", broken)
    _, supervisor, outcomes, run = heartbeat_run(tmp_path, heartbeat=False)
    supervisor.exit(run.id, b"done\n")
    [outcome] = outcomes.got
    assert outcome.status is RunStatus.FAILED
    assert "could not work out the run's outcome (RecursionError)" in \
        (outcome.error_message or "")
