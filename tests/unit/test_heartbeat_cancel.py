"""A cancel that reaches a heartbeat wake-up between two iterations, against a fake
supervisor that lets the test choose the instant: the next iteration never goes on
unkilled, and no cancel is left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from symbid.executor import Agents, Executor
from symbid.model import (
    Agent,
    Heartbeat,
    Job,
    Run,
    RunOutcome,
    RunStatus,
    SessionMode,
    Trigger,
    new_id,
)
from symbid.sandbox import ChildExit, Spawned, SpawnSpec
from tests.fakes import FakeClock


class FakeSupervisor:
    """Spawns nothing: the test ends each "process" with :meth:`exit`."""

    def __init__(self) -> None:
        self.live: dict[str, Callable[[ChildExit], None]] = {}
        self.spawned = 0
        self.kills: list[str] = []
        self.while_spawning: Optional[Callable[[], None]] = None

    def spawn(self, spec: SpawnSpec, on_exit: Callable[[ChildExit], None]) -> Spawned:
        self.spawned += 1
        if self.while_spawning is not None:  # before the process is registered
            hook, self.while_spawning = self.while_spawning, None
            hook()
        self.live[spec.tag] = on_exit
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

    def run_finished(self, outcome: RunOutcome) -> None:
        self.got.append(outcome)


def heartbeat_run(tmp_path: Path) -> tuple[Executor, FakeSupervisor, Outcomes, Run]:
    clock = FakeClock()
    supervisor = FakeSupervisor()
    executor = Executor(supervisor, Agents({"beat": Agent(name="beat", command=("true",))}),
                        clock, runs_dir=str(tmp_path))  # type: ignore[arg-type]
    outcomes = Outcomes()
    executor.bind(outcomes)
    job = Job(id=new_id(), name="hb", agent_id="beat", cron_expr="* * * * *",
              heartbeat=Heartbeat(enabled=True, context_mode=SessionMode.FULLY_EPHEMERAL,
                                  max_iterations=5))
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


def test_a_cancel_that_races_the_end_of_a_wakeup_leaves_nothing_behind(
        tmp_path: Path) -> None:
    executor, supervisor, outcomes, run = heartbeat_run(tmp_path)
    supervisor.exit(run.id, b"sleep\n")  # the wake-up ends on its own
    assert [o.stop_reason for o in outcomes.got] == ["sleep"]
    assert not executor.cancel(run.id, "uid:0")  # too late: nothing to cancel
    assert executor._cancelled_by == {}
