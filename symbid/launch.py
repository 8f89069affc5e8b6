"""What the run lifecycle (:mod:`symbid.lifecycle`) exchanges with the rest: the
executor's side (:class:`Launcher`, and :class:`RunSink` where it reports), an operator's
cancel (:class:`CancelRequest`) and what a start-up recovery did (:class:`RecoveryReport`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

from symbid.model import Job
from symbid.records import Run, RunOutcome
from symbid.sandbox import Spawned


class RunSink(Protocol):
    def run_finished(self, outcome: RunOutcome) -> None: ...

    def process_started(self, run_id: str, spawned: Spawned) -> None:
        """A running run has a new process (a heartbeat's next iteration)."""


class Launcher(Protocol):
    """What the lifecycle needs from the executor."""

    def bind(self, sink: RunSink) -> None:
        """Where outcomes go (the scheduler, which wakes its loop for them)."""

    def start(self, job: Job, run: Run, mark: Callable[[], None]) -> Spawned:
        """Start ``run``; call ``mark()`` immediately before the child is spawned."""

    def kill_all(self, reason: str) -> int: ...

    def run_uids(self) -> frozenset[int]:
        """The uids runs execute as (the daemon's own, [daemon] run_user, the agents'
        users): start-up recovery looks for leftovers among their processes only."""

    def cancel(self, run_id: str, by: str) -> bool:
        """Kill a started run's process group; it ends ``cancelled`` by ``by``. False when
        its process has already ended (its own outcome is on its way)."""

    def release_output(self, run_id: str) -> None:
        """The run's final state is stored: what it printed is no longer kept live."""


@dataclass
class CancelRequest:
    """An operator's cancel of one run, answered by the loop thread.

    ``outcome``: ``cancelled`` (recorded, it never started), ``killing`` (its process
    group is being killed; it is recorded when it has gone) or ``ended`` (it ended
    first: ``run`` is how). ``run`` is the run as it stands after the answer.
    """

    run_id: str
    by: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""
    run: Optional[Run] = None
    error: Optional[Exception] = None


@dataclass
class DecisionRequest:
    """An approver's decision on a run awaiting approval, answered by the loop thread:
    ``run`` is the run after it (pending again, or denied), ``error`` why it was refused
    (not an approver, not awaiting approval)."""

    run_id: str
    by: str
    approve: bool
    note: Optional[str] = None
    done: threading.Event = field(default_factory=threading.Event)
    run: Optional[Run] = None
    error: Optional[Exception] = None


@dataclass(frozen=True)
class RecoveryReport:
    interrupted: int  # open runs that may have started: recorded interrupted
    resumed: int  # runs that provably never started: queued again
    skipped: int  # of those, found too late: their catch_up skipped them
    killed_groups: int  # leftover process groups terminated
