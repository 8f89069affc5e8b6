"""The store's interface, and the commands the scheduler sends it."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Optional

from symbid.agentdef import Agent
from symbid.errors import NotFound
from symbid.model import Job, JobStatus, RunStatus
from symbid.records import Run, SessionContext
from symbid.spans import Spans
from symbid.store.audit import Act, AuditEvent, AuditRecord
from symbid.store.deliveries import AlertRequest, AlertState, Delivery
from symbid.text import shorten


@dataclass(frozen=True)
class Advance:
    """Claim a job's due slots: move its schedule on and insert the runs decided for them.

    Applied only if the job is still ``active`` at ``expect_version`` (another
    writer may have changed it since it was read).
    """

    job_id: str
    expect_version: int
    next_run: Optional[int]
    claimed: Optional[Spans] = None  # the job's claimed spans with these slots (None: as they are)
    runs: tuple[Run, ...] = ()
    status: Optional[JobStatus] = None
    alert: Optional[AlertRequest] = None  # the job's stop alerts (same write)
    audit: tuple[AuditEvent, ...] = ()  # what the claim puts on the audit trail (a stop)

    def at(self, run_id: Optional[str]) -> int:
        """When what is said about run ``run_id`` happened: that run's end."""
        return next((r.finished_at or r.created_at for r in self.runs if r.id == run_id), 0)

    @property
    def alert_at(self) -> int:
        """When the alert was raised: the end of the run it names."""
        assert self.alert is not None
        return self.at(self.alert.run_id)


class Claimed(list[Run]):
    """What :meth:`JobStore.claim` did: the pending runs it inserted (the list itself),
    and in ``audit`` the events it stored (those of the advances it applied)."""

    def __init__(self) -> None:
        super().__init__()
        self.audit: list[AuditEvent] = []


@dataclass(frozen=True)
class RetryClaim:
    """Start the next attempt of a failed run whose ``retry_at`` is due."""

    failed_run_id: str
    expect_retry_at: int
    run: Run


@dataclass(frozen=True)
class Finish:
    """A run reached its final state; maybe the job changes status with it."""

    run: Run
    counts: bool = True  # add to the job's run/success/failure counters
    # Applied only from active or paused, and only while the job still has the
    # schedule the run belongs to: (cron_expr, None) or (None, at). A retry_at with a
    # belongs_to is dropped, too, if the job no longer has that schedule.
    job_status: Optional[JobStatus] = None
    belongs_to: Optional[tuple[Optional[str], Optional[int]]] = None
    clear_retries: bool = False  # with the status change: drop every pending retry of the job
    context: Optional[SessionContext] = None  # the session context the run leaves (sessions)
    deliver: tuple[str, ...] = ()  # the channels its output goes to (outbox rows, same write)
    alert: Optional[AlertRequest] = None  # an alert the run's end raises (same write)
    alert_unretried: Optional[AlertRequest] = None  # instead, when its retry_at is dropped
    audit: tuple[AuditEvent, ...] = ()  # what the end puts in the audit trail (same write)


class Finished(set[str]):
    """What :meth:`JobStore.finish` did: the ids of the runs whose ``job_status`` it
    applied to their job (the set itself), in ``audit`` the events it stored (none of
    a run that was already final, or whose job was deleted; a dead letter only when it
    was applied), and in ``names`` the runs it recorded with their job's name as it is
    now (renamed since the run started, say; a run of a deleted job is not there)."""

    def __init__(self) -> None:
        super().__init__()
        self.audit: list[AuditEvent] = []
        self.names: dict[str, str] = {}


@dataclass(frozen=True)
class JobTotals:
    by_status: dict[str, int] = field(default_factory=dict)
    runs_total: int = 0
    runs_succeeded: int = 0
    runs_failed: int = 0
    execution_ms_total: int = 0
    longest_execution_ms: int = 0


API_SOURCE = "api"


@dataclass(frozen=True)
class StoredAgent:
    """An agent of the registry: its definition, where it comes from (``"api"`` or
    ``"file:<path>"``) and when its row was created and last changed."""

    agent: Agent
    source: str
    created_at: int
    updated_at: int

    @property
    def name(self) -> str:
        return self.agent.name

    @property
    def from_file(self) -> bool:
        return self.source != API_SOURCE

    @property
    def path(self) -> str:
        """The file it is defined in ("" for an API-defined agent)."""
        return self.source[len("file:"):] if self.from_file else ""


AgentGuard = Callable[[list[StoredAgent]], None]
RemoveGuard = Callable[[list[StoredAgent], list[str]], StoredAgent]


class JobStore(abc.ABC):
    """What the scheduler and the API need from durable state."""

    # jobs
    # Each method that changes something takes what it puts on the audit trail in the
    # same transaction: an ``act`` (its events are about what the method finds or
    # makes), or the ``audit`` events themselves, at ``now``.
    @abc.abstractmethod
    def create_job(self, job: Job, act: Optional[Act] = None) -> Job: ...

    @abc.abstractmethod
    def create_jobs(self, jobs: Sequence[Job], act: Optional[Act] = None) -> None:
        """Create all of ``jobs`` in one transaction, or none (names already stored:
        :class:`~symbid.errors.BatchRefused` by index)."""

    @abc.abstractmethod
    def taken_names(self, names: Sequence[str]) -> set[str]:
        """Those of ``names`` that stored jobs have."""

    @abc.abstractmethod
    def find_job(self, ref: str) -> Optional[Job]:
        """A job by id, or else by name."""

    def get_job(self, ref: str) -> Job:
        job = self.find_job(ref)
        if job is None:
            raise NotFound(f"no job with id or name {shorten(ref)!r}; "
                           "`symbi cron list --all` shows them")
        return job

    @abc.abstractmethod
    def list_jobs(
        self,
        status: Optional[JobStatus] = None,
        agent_id: Optional[str] = None,
        source: Optional[str] = None,
        id_prefix: Optional[str] = None,
    ) -> list[Job]:
        """Jobs by name; ``id_prefix``: only those whose id starts with it (an index
        range)."""

    @abc.abstractmethod
    def sync_candidates(self, names: Collection[str]) -> list[Job]:
        """What a sync of agents_dir compares the files with, by name: every job a file
        defined, and the jobs called one of ``names`` (those the files define now)."""

    @abc.abstractmethod
    def jobs_with_channels(self, source: str, after: str, limit: int
                           ) -> tuple[list[Job], Optional[str]]:
        """A page of the jobs of ``source`` that name a delivery or alert channel, by
        name: up to ``limit`` rows from the first after ``after`` (an unreadable one left
        out), and the name to ask after for the next page (None: this was the last)."""

    @abc.abstractmethod
    def jobs_of_agent(self, agent: str, limit: int) -> tuple[int, list[str]]:
        """How many stored jobs (not ad hoc ones) name ``agent``, and the first ``limit``
        of their names, by name."""

    @abc.abstractmethod
    def name_in_use(self, name: str) -> bool:
        """Whether a stored job (not an agent's ad hoc one) is called ``name``, or a
        stored job names ``name`` as its agent."""

    @abc.abstractmethod
    def unusual_job_names(self) -> list[str]:
        """The names of stored jobs (not ad hoc ones) that may break the name rule
        (:func:`symbid.model.name_problem` decides), by name: a superset, read without
        reading every job."""

    @abc.abstractmethod
    def modify_job(self, ref: str, change: Callable[[Job], Job], now: int,
                   act: Optional[Act] = None, *, clear_retries: bool = False) -> Job:
        """Read, change and write one job in a single transaction (with ``act``'s event,
        and with ``clear_retries`` every pending retry of the job dropped). When
        ``change`` returns the job it was given, nothing is written or recorded."""

    @abc.abstractmethod
    def apply_changes(
        self, create: Sequence[Job], update: Sequence[Job], delete: Sequence[str],
        audit: Sequence[AuditEvent] = (), now: int = 0,
    ) -> None:
        """Create, update and delete jobs in one transaction.

        Each update carries the version it was planned against; if any job
        changed meanwhile, nothing is written and :class:`Conflict` is raised.
        """

    @abc.abstractmethod
    def delete_job(self, ref: str, act: Optional[Act] = None) -> Job:
        """Delete a job and its run history; returns what was deleted."""

    # agents
    @abc.abstractmethod
    def list_agents(self, name: Optional[str] = None) -> list[StoredAgent]:
        """The stored agents (only those called ``name`` when given), by name, a file's
        row before the API's. A row that cannot be read is left out (logged once)."""

    @abc.abstractmethod
    def sync_file_agents(self, put: Sequence[StoredAgent], remove: Sequence[str],
                         audit: Sequence[AuditEvent] = (), now: int = 0) -> None:
        """In one transaction: write the file agents ``put`` (created, or replacing the
        file row of the same name) and delete the file rows named in ``remove``. Rows
        defined through the API are never touched."""

    @abc.abstractmethod
    def define_agents(self, agents: Sequence[Agent], now: int, guard: AgentGuard,
                      act: Optional[Act] = None) -> tuple[list[str], list[str]]:
        """Create or replace API-defined agents in one transaction; returns the names
        (created, updated). ``guard`` first sees every row already stored under those
        names, in that transaction, and raises to refuse the whole request."""

    @abc.abstractmethod
    def remove_agent(self, name: str, guard: RemoveGuard,
                     act: Optional[Act] = None) -> StoredAgent:
        """Delete one agent row in one transaction. ``guard`` sees the rows called
        ``name`` and the names (sorted) of the jobs naming that agent (not its ad hoc
        job, which does not hold it and stays); it returns the row to delete or raises
        to refuse."""

    @abc.abstractmethod
    def agent_use(self) -> dict[str, int]:
        """How many jobs name each agent (agents no job names are absent; ad hoc jobs
        are not counted)."""

    # session contexts
    @abc.abstractmethod
    def get_context(self, job_id: str) -> Optional[SessionContext]:
        """The job's stored session context (None: no run has left one, or it was
        cleared)."""

    @abc.abstractmethod
    def put_context(self, ctx: SessionContext) -> bool:
        """Store a job's context (replacing it); False when the job is gone. A
        :class:`Finish` with a ``context`` stores it in the run's own transaction."""

    @abc.abstractmethod
    def clear_context(self, job_id: str, now: int) -> bool:
        """Empty a job's context (the row stays, its ``generation`` bumped, so that a run
        going meanwhile cannot write over it); False when it held nothing. Deleting a
        job drops its context in the same transaction."""

    # the delivery outbox (rows are written by finish(), with ``Finish.deliver``)
    @abc.abstractmethod
    def due_deliveries(self, now: int, limit: int,
                       skip: Sequence[str] = ()) -> list[Delivery]:
        """Pending deliveries due by ``now``, oldest due first, but those in ``skip``."""

    @abc.abstractmethod
    def next_delivery_due(self) -> Optional[int]:
        """When the next pending delivery is due (epoch ms), or None."""

    @abc.abstractmethod
    def deliveries_of(self, run_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """Each run's deliveries."""

    @abc.abstractmethod
    def alerts_of(self, job_id: str, limit: int) -> list[Delivery]:
        """A job's alert rows, newest first."""

    @abc.abstractmethod
    def alert_state(self, job_id: str) -> Optional[AlertState]:
        """Where a job's alerts stand (open, the last, how many held back); None before
        its first alert."""

    @abc.abstractmethod
    def raise_alert(self, alert: AlertRequest, now: int) -> bool:
        """Outbox rows for an alert about a job, unless its cooldown holds it back."""

    @abc.abstractmethod
    def overdue_jobs(self, now: int) -> list[tuple[str, float, Optional[int]]]:
        """The dead man's switch's jobs that are due an alert: (job id, seconds, last
        success)."""

    @abc.abstractmethod
    def record_attempt(self, delivery_id: str, receipt: Mapping[str, Any], status: str,
                       next_at: Optional[int]) -> bool:
        """An attempt's receipt and the row's new status (pending: due at ``next_at``);
        False when the row is gone."""

    # scheduling
    @abc.abstractmethod
    def next_due(self) -> Optional[int]:
        """The earliest instant at which an active job or a retry comes due."""

    @abc.abstractmethod
    def due_jobs(self, now: int, limit: int) -> list[Job]: ...

    @abc.abstractmethod
    def due_retries(self, now: int, limit: int) -> list[Run]: ...

    @abc.abstractmethod
    def open_runs_by_job(self) -> dict[str, list[tuple[str, str]]]:
        """(run id, status) of the runs that take a ``max_concurrent`` place, per job id."""

    @abc.abstractmethod
    def claim(self, advances: Sequence[Advance], retries: Sequence[RetryClaim]) -> Claimed:
        """Apply claims in one transaction; returns the pending runs actually inserted."""

    @abc.abstractmethod
    def insert_run(self, run: Run, act: Optional[Act] = None) -> Run:
        """Insert a run outside the schedule (manual), in its own key space; its
        slot (the instant it was asked for) moves on by a millisecond if taken."""

    @abc.abstractmethod
    def postpone_retry(self, run_id: str, retry_at: Optional[int]) -> None:
        """Move a pending retry to ``retry_at``; None drops it."""

    @abc.abstractmethod
    def mark_started(self, started: Sequence[tuple[str, int, int, int, Optional[int]]]
                     ) -> None:
        """(run_id, started_at, pid, pgid, pid_start) for runs whose child process is up
        (``pid_start``: its start in clock ticks since boot); each job's ``last_run``
        becomes the latest start."""

    @abc.abstractmethod
    def mark_process(self, processes: Sequence[tuple[str, int, int, Optional[int]]]) -> None:
        """(run_id, pid, pgid, pid_start) of a running run's new process (a heartbeat's
        next iteration), so that start-up recovery finds the process that is going."""

    @abc.abstractmethod
    def shift_waits(self, step_ms: int, since: int) -> None:
        """The wall clock was stepped by ``step_ms``: move the deadlines of waits that
        were still running at ``since`` (jitter of runs whose slot had passed, retry
        backoff, approval deadlines) by the step, so that each lasts as long as it
        said."""

    @abc.abstractmethod
    def query_audit(self, *, type: Optional[str] = None, job: Optional[str] = None,
                    actor: Optional[str] = None, since: Optional[int] = None,
                    until: Optional[int] = None, limit: int = 100) -> list[AuditRecord]: ...

    @abc.abstractmethod
    def prune_audit(self, before: int) -> int: ...

    @abc.abstractmethod
    def await_approval(self, run_id: str, deadline: int, notice: Optional[AlertRequest],
                       now: int, audit: Sequence[AuditEvent] = ()) -> bool:
        """A pending run waits for approval until ``deadline``; ``notice`` (the job's
        alert channels told how to approve it) goes in the same write. False when the
        run was no longer pending."""

    @abc.abstractmethod
    def approve(self, run_id: str, by: str, note: Optional[str],
                audit: Sequence[AuditEvent] = (), now: int = 0) -> bool:
        """A run awaiting approval is approved by ``by`` and pending again. False when it
        was no longer awaiting approval."""

    @abc.abstractmethod
    def finish(self, finishes: Sequence[Finish]) -> Finished:
        """Record final states (one transaction). Returns the ids of the runs whose
        ``job_status`` was applied to their job."""

    @abc.abstractmethod
    def open_runs(self) -> list[Run]: ...

    @abc.abstractmethod
    def jobs_claimed_after(self, instant: int) -> list[Job]:
        """Active recurring jobs whose high-water mark, or whose creation, is later than
        ``instant`` (the wall clock has gone back behind them)."""

    # history and health
    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    @abc.abstractmethod
    def history(
        self, job_id: str, limit: int = 20, status: Optional[RunStatus] = None
    ) -> list[Run]:
        """A job's runs, newest first, each with only the first OUTPUT_PREVIEW characters of
        its output and input (``output_bytes`` tells the whole size; ``get_run`` has it
        all)."""

    @abc.abstractmethod
    def find_runs(self, id_prefix: str, limit: int = 20) -> list[Run]:
        """Runs of any job whose id starts with ``id_prefix`` (an index range), newest
        first, with previews of their output and input as :meth:`history` has them."""

    @abc.abstractmethod
    def totals(self) -> JobTotals:
        """Jobs by status (ad hoc jobs left out) and the counts of every job's runs."""

    @abc.abstractmethod
    def latest_instant(self) -> Optional[int]:
        """The latest instant the store recorded (a run created, started or finished, a
        job changed): the previous daemon was alive then."""

    @abc.abstractmethod
    def backup(self, directory: str) -> BinaryIO:
        """A consistent copy of the whole database taken while the daemon runs, as an open
        file (already unlinked, made in ``directory``); raises :class:`StoreError`."""

    @abc.abstractmethod
    def storage_full(self) -> Optional[str]:
        """Why the last write failed for want of room (:class:`StorageFull`'s message),
        until a write succeeds again; None while writes succeed."""

    @abc.abstractmethod
    def recheck_room(self) -> Optional[str]:
        """While writes are refused for want of room, one small real write to see whether
        there is room again (a write that commits clears :meth:`storage_full`), so that an
        idle daemon recovers by itself too; :meth:`storage_full` after it."""

    @abc.abstractmethod
    def probe(self) -> None:
        """A real read of the database; raises :class:`StoreError` when it cannot be read."""

    @abc.abstractmethod
    def close(self) -> None: ...
