"""Test doubles for the edges of the engine: time, the native waiter, the launcher."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from symbid.clock import SystemClock
from symbid.model import Job, RunStatus
from symbid.records import Run, RunOutcome
from symbid.sandbox import Spawned
from symbid.timer import Wake
from symbid.timing import parse_instant


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: str | int = "2026-03-01T00:00:00Z") -> None:
        self._now = parse_instant(start) if isinstance(start, str) else start
        self._mono = 1000.0

    def now(self) -> int:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: str | int) -> None:
        """Jump the wall clock (either way); monotonic time moves on only when it goes forward."""
        target = parse_instant(when) if isinstance(when, str) else when
        if target > self._now:
            self._mono += (target - self._now) / 1000
        self._now = target

    def step(self, seconds: float) -> None:
        """Step the wall clock (as settimeofday does): monotonic time does not move."""
        self._now += int(seconds * 1000)

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * 1000)
        self._mono += seconds


class OffsetClock:
    """The system's clocks with the wall clock moved ``offset_ms`` (monotonic time is the
    system's): a process that sees a downtime, or a date, the system clock never had."""

    def __init__(self, offset_ms: int) -> None:
        self._system = SystemClock()
        self.offset_ms = offset_ms

    def now(self) -> int:
        return self._system.now() + self.offset_ms

    def monotonic(self) -> float:
        return self._system.monotonic()


class FakeWaiter:
    """Records waits; returns CLOCK_SET once when told to."""

    def __init__(self) -> None:
        self.waits: list[tuple[Optional[int], float]] = []
        self.woken = 0
        self.clock_set_next = False

    def wait_until(self, deadline_ms: Optional[int], cap_seconds: float) -> Wake:
        self.waits.append((deadline_ms, cap_seconds))
        if self.clock_set_next:
            self.clock_set_next = False
            return Wake.CLOCK_SET
        return Wake.DEADLINE

    def wake(self) -> None:
        self.woken += 1

    def close(self) -> None:
        pass


Behaviour = Callable[[Job, Run], Optional[RunStatus]]


@dataclass
class FakeLauncher:
    """Starts nothing: records each start and finishes runs when the test says so.

    ``behaviour(job, run)`` may return a status to finish the run at once.
    """

    clock: FakeClock
    behaviour: Behaviour = lambda job, run: RunStatus.SUCCEEDED
    started: list[tuple[Job, Run, int]] = field(default_factory=list)
    running: dict[str, tuple[Job, Run]] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    cancelled: list[tuple[str, str]] = field(default_factory=list)  # (run id, by)
    released: list[str] = field(default_factory=list)  # live outputs let go
    fail_to_start: set[str] = field(default_factory=set)
    no_room: bool = False  # starts cannot be recorded: a full disk (StorageFull)
    _pids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    sink: object = None

    def bind(self, sink: object) -> None:
        self.sink = sink

    def start(self, job: Job, run: Run, mark: Callable[[], None]) -> Spawned:
        from symbid.errors import SandboxError, StorageFull

        if job.name in self.fail_to_start:
            raise SandboxError(f"cannot start agent of {job.name}")
        if self.no_room:  # as the sandbox does when the start marker hits ENOSPC
            raise StorageFull("storage full: cannot record a run's start")
        mark()  # as the sandbox does, right before its spawn
        self.started.append((job, run, self.clock.now()))
        self.running[run.id] = (job, run)
        outcome = self.behaviour(job, run)
        if outcome is not None:
            self.finish(run.id, outcome)
        pid = next(self._pids)
        return Spawned(pid=pid, pgid=pid)

    def finish(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        job, run = self.running.pop(run_id)
        self.sink.run_finished(  # type: ignore[attr-defined]
            RunOutcome(
                run_id=run.id, job_id=job.id, status=status, finished_at=self.clock.now(),
                execution_time_ms=5, exit_code=0 if status is RunStatus.SUCCEEDED else 1,
                error_message=error, output="out",
            )
        )

    def cancel(self, run_id: str, by: str) -> bool:
        if run_id not in self.running:
            return False
        self.cancelled.append((run_id, by))
        return True

    def release_output(self, run_id: str) -> None:
        self.released.append(run_id)

    def run_uids(self) -> frozenset[int]:
        return frozenset({os.geteuid()})

    def kill_all(self, reason: str) -> int:
        ids = list(self.running)
        for rid in ids:
            self.killed.append(rid)
            self.finish(rid, RunStatus.INTERRUPTED, f"killed: {reason}")
        return len(ids)
