"""Job lifecycle operations that keep a job's schedule consistent.

Creating, pausing, resuming, resetting and deleting jobs all go through
:class:`JobService`, whoever asks (API, CLI, the agents.d sync, tests): it
validates the schedule, computes ``next_run`` and wakes the scheduler loop.

Resuming a paused job and resetting a dead-letter job aim it at the first slot
after *now*: slots that passed while it was stopped are neither run nor
recorded (the operator stopped it on purpose). A paused one-shot whose slot has
not been claimed keeps its ``at`` time; if that has passed, its catch-up policy
decides at the next pass.

An agent's ad hoc job (``symbi run AGENT``, :meth:`JobService.adhoc_job`) is created
paused, with no next run, and it can be neither changed, paused, resumed nor reset: so
the loop, which claims only active jobs, never runs it by itself, across restarts too.
Its runs are manual runs, which start whatever the job's status. It can be removed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from symbid.audit import emit
from symbid.auth import FILES_ACTOR
from symbid.channels import delivery_problem
from symbid.clock import Clock
from symbid.dsl.loader import LoadedFile
from symbid.dsl.sync import defined_names, from_file, merge, plan_sync
from symbid.errors import BatchRefused, Conflict, InvalidInput, SymbidError, UnreadableRow
from symbid.metrics import Metrics
from symbid.model import (
    ADHOC_SOURCE,
    LATEST_INSTANT,
    MAXIMUMS,
    Job,
    JobStatus,
    RunStatus,
    SessionMode,
    adhoc_name,
    format_instant,
    name_problem,
    new_id,
)
from symbid.policydef import pin_problem, policy_problem
from symbid.sessions import context_to_wire, empty_state, remove_state, state_dir, state_dirs
from symbid.spans import claimed_span, first_free_slot
from symbid.store import JobStore
from symbid.store.audit import Act, AuditEvent
from symbid.text import escape
from symbid.timing import make_schedule
from symbid.wire import job_to_wire

log = logging.getLogger(__name__)


def validate_job(job: Job, now: int, *, allow_past: bool = False) -> Optional[int]:
    """Check a job definition; return its first ``next_run``.

    Raises :class:`InvalidInput` (or a subclass) naming the offending field.
    """
    if not job.name or not job.name.strip():
        raise InvalidInput("name must not be empty", field="name")
    if not job.agent_id:
        raise InvalidInput("agent_id must not be empty", field="agent_id")
    if job.max_concurrent < 1:
        raise InvalidInput("max_concurrent must be at least 1", field="max_concurrent")
    if job.max_retries is not None and job.max_retries < 0:
        raise InvalidInput("max_retries must not be negative", field="max_retries")
    if job.jitter_seconds is not None and job.jitter_seconds < 0:
        raise InvalidInput("jitter must not be negative", field="jitter_seconds")
    if job.catch_up_limit < 0:
        raise InvalidInput("catch_up_limit must not be negative", field="catch_up_limit")
    check_maximums(job)
    bad_policy = policy_problem(job.policy) or pin_problem(job.agent_pin_jwt)
    if bad_policy is not None:
        raise InvalidInput(bad_policy[1], field=bad_policy[0])
    lacking = delivery_problem(job.delivery, job.delivery_config, job.alert,
                               job.alert_if_no_success_within_seconds,
                               job.alert_cooldown_seconds)
    if lacking is not None:
        raise InvalidInput(lacking[1], field=lacking[0])
    schedule = make_schedule(job.cron_expr, job.at, job.timezone, now=now)
    if job.at is not None:
        if job.at > LATEST_INSTANT:
            raise InvalidInput("at is out of range: the latest time symbid can show is "
                               "9999-12-31T23:59:59Z", field="at")
        if job.at <= now and not allow_past:
            raise InvalidInput(
                f"at time {format_instant(job.at)} is in the past (now {format_instant(now)})",
                field="at",
            )
        if not allow_past and claimed_span(job.claimed, job.at) is not None:
            raise InvalidInput(
                f"at time {format_instant(job.at)}: this job already claimed that slot; "
                "choose a later time", field="at")
        return job.at
    nxt = first_free_slot(schedule, now, job.claimed)
    if nxt is not None and nxt > LATEST_INSTANT:
        raise InvalidInput(f"cron expression {job.cron_expr!r} next fires after "
                           "9999-12-31, the latest time symbid can show", field="cron_expr")
    return nxt


def check_maximums(job: Job) -> None:
    """Every value within its documented maximum (model.MAXIMUMS); InvalidInput naming it."""
    values: dict[str, Optional[float]] = {
        "max_retries": job.max_retries, "max_concurrent": job.max_concurrent,
        "jitter_seconds": job.jitter_seconds, "catch_up_limit": job.catch_up_limit,
        "heartbeat.max_iterations": job.heartbeat.max_iterations,
        "cron_expr": len(job.cron_expr) if job.cron_expr is not None else None,
        "timezone": len(job.timezone),
    }
    for key, value in values.items():
        top = MAXIMUMS[key]
        if value is not None and value > top:
            unit = " characters" if key in ("cron_expr", "timezone") else ""
            raise InvalidInput(f"{key} must be at most {top}{unit}", field=key)


def check_name(name: str, what: str = "name") -> None:
    problem = name_problem(name)
    if problem is not None:
        raise InvalidInput(f"{what} '{escape(name)}' {problem}", field=what)


def check_shown(job: Job) -> None:
    """Every field of the job's wire form can be shown; checked before it is stored, so a
    create or update is atomic with its response."""
    try:
        job_to_wire(job)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"the job cannot be shown: {exc}",
                           field="at" if job.at is not None else "cron_expr") from None


_UNSERVED_PAGE = 500  # jobs read at a time when a reload checks their channels


class NamesInUse:
    """The names a file may keep although they break the name rule: those of stored
    jobs (not ad hoc ones), of the agents stored jobs name, and ``agents``. Each test
    is a lookup in the store: the daemon never holds every job's name."""

    def __init__(self, store: JobStore, agents: Collection[str] = ()) -> None:
        self._store = store
        self._agents = frozenset(agents)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._agents
                                          or self._store.name_in_use(name))


@dataclass
class SyncResult:
    """What a load of agents.d changed, and what went wrong."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created, "updated": self.updated, "removed": self.removed,
            "unchanged": self.unchanged, "errors": self.errors, "warnings": self.warnings,
            "failed_files": self.failed_files,
        }


class JobService:
    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        *,
        wake: Callable[[], None] = lambda: None,
        agent_problem: Optional[Callable[[str], Optional[str]]] = None,
        delivery_problem: Optional[Callable[[Job], Optional[tuple[str, str]]]] = None,
        runs_dir: Optional[str] = None,
        metrics: Optional[Metrics] = None,
    ) -> None:
        self._store = store
        self._metrics = metrics if metrics is not None else Metrics(enabled=False)
        self._clock = clock
        self._wake = wake
        self._agent_problem = agent_problem  # None: any agent name is taken
        # what the daemon's delivery settings lack for a job's channels (None: nothing)
        self.delivery_problem = delivery_problem
        self.runs_dir = runs_dir  # where session state directories live (None: none)

    def _gone(self, jobs: Sequence[Job]) -> None:
        """Jobs were deleted (their contexts with them, in the store): their state
        directories and their metric series go too."""
        for job in jobs:
            if self.runs_dir is not None:
                remove_state(self.runs_dir, job.id)
            self._metrics.job_gone(job.name)

    def context(self, ref: str) -> dict[str, Any]:
        """A job's stored session context, in its wire form."""
        job = self._store.get_job(ref)
        return context_to_wire(self._store.get_context(job.id), job.session_mode,
                               self._state_of(job))

    def clear_context(self, ref: str) -> dict[str, Any]:
        """Reset a job's session context: the stored one dropped, its state directory
        emptied. Returns the (now empty) context. Refused while a run of the job is going
        (it is using the state directory); a run that starts from the old context just
        before the clear cannot bring it back (the store's context generation)."""
        job = self._store.get_job(ref)
        going = [r.id for r in self._store.open_runs()
                 if r.job_id == job.id and r.status is RunStatus.RUNNING]
        if going:
            raise Conflict(f"job {job.name} has a run going ({going[0][:8]}), which uses its "
                           "context: wait for it to end, or cancel it with `symbi cron "
                           "cancel`, then clear the context")
        self._store.clear_context(job.id, self._clock.now())
        if self.runs_dir is not None:
            empty_state(self.runs_dir, job.id)
        log.info("job %s: session context cleared", job.name,
                 extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "context_cleared"})
        return context_to_wire(None, job.session_mode, self._state_of(job))

    def _state_of(self, job: Job) -> Optional[str]:
        shared = SessionMode.SHARED_PERSISTENT
        if self.runs_dir is None or shared not in (
                job.session_mode, job.heartbeat.context_mode if job.heartbeat.enabled else None):
            return None
        existing = state_dirs(self.runs_dir, job.id)
        return existing[0][0] if existing else state_dir(self.runs_dir, job.id)

    def _validate(self, job: Job, now: int, *, allow_past: bool = False) -> Optional[int]:
        """:func:`validate_job`, then what the delivery settings lack for its channels."""
        next_run = validate_job(job, now, allow_past=allow_past)
        lacking = self.delivery_problem(job) if self.delivery_problem is not None else None
        if lacking is not None:
            raise InvalidInput(lacking[1], field=lacking[0])
        return next_run

    def unserved(self) -> list[str]:
        """A warning for each job the API defined that can still run (not a completed or
        failed one-shot) whose channels the delivery settings, as they are now (checked
        on every reload), cannot serve: it is kept, and those deliveries fail, each with
        a receipt, until the settings or the job change. (A file's job is checked when
        its file is loaded, as an error at its place.)"""
        if self.delivery_problem is None:
            return []
        out = []
        after: Optional[str] = ""
        while after is not None:  # a page at a time: an install may hold a million jobs
            page, after = self._store.jobs_with_channels("api", after, _UNSERVED_PAGE)
            for job in page:
                lacking = None if job.status in (JobStatus.COMPLETED, JobStatus.FAILED) \
                    else self.delivery_problem(job)
                if lacking is not None:
                    out.append(f"job {job.name}: {lacking[1]}; the job is kept, and those "
                               "deliveries fail until the settings serve it or the job "
                               "changes")
        return out

    def _check_agent(self, name: str) -> None:
        problem = self._agent_problem(name) if self._agent_problem is not None else None
        if problem is not None:
            raise InvalidInput(problem, field="agent_id")

    def create(self, job: Job, *, actor: str, allow_past: bool = False) -> Job:
        """Define a job for ``actor`` (recorded ``CronJobCreated`` on the audit trail, in
        the same transaction)."""
        now = self._clock.now()
        job = self._prepared(job, now, allow_past)
        act = Act("CronJobCreated", actor, now)
        self._store.create_job(job, act)
        self._created([job], act)
        return job

    def create_many(self, batch: Sequence[Job | SymbidError], *, actor: str,
                    allow_past: Sequence[bool] = ()) -> list[Job]:
        """Define all the jobs of ``batch`` for ``actor`` in one store transaction, or none
        of them (``allow_past[i]`` as :meth:`create`'s, for ``batch[i]``). An element the
        caller already refused is given as its error. Every element is checked before
        anything is written, and the refusals, by index, are one :class:`BatchRefused`:
        a name given twice is refused (:class:`Conflict`) where it comes again, a name
        already a job's wherever it is given. Each job is recorded ``CronJobCreated`` in
        the transaction."""
        if not batch:
            raise InvalidInput("the batch is empty: give at least one job")
        now = self._clock.now()
        problems: list[tuple[int, SymbidError]] = []
        made: list[Job] = []
        first_at: dict[str, int] = {}
        for i, job in enumerate(batch):
            if isinstance(job, SymbidError):
                problems.append((i, job))
                continue
            try:
                if job.name in first_at:
                    raise Conflict(f"name '{escape(job.name)}' is given twice in the batch "
                                   f"(also at [{first_at[job.name]}]); names are unique",
                                   field="name")
                first_at[job.name] = i
                made.append(self._prepared(job, now, i < len(allow_past) and allow_past[i]))
            except (InvalidInput, Conflict) as exc:
                problems.append((i, exc))
        taken = self._store.taken_names(list(first_at))  # the store checks again, as it writes
        refused = {i for i, _ in problems}
        problems += [(i, Conflict(f"a job named {job.name!r} already exists; names are "
                                  "unique", field="name"))
                     for i, job in enumerate(batch)
                     if isinstance(job, Job) and job.name in taken and i not in refused]
        if problems:
            raise BatchRefused(sorted(problems, key=lambda p: p[0]), len(batch))
        act = Act("CronJobCreated", actor, now)
        self._store.create_jobs(made, act)
        self._created(made, act)
        return made

    def _prepared(self, job: Job, now: int, allow_past: bool) -> Job:
        """``job`` checked and made ready to store as a new active job."""
        check_name(job.name)
        self._check_agent(job.agent_id)
        next_run = self._validate(job, now, allow_past=allow_past)
        job = job.replace(
            id=job.id or new_id(), status=JobStatus.ACTIVE, next_run=next_run, last_run=None,
            claimed=(), run_count=0, failure_count=0, created_at=now, updated_at=now,
            version=1,
        )
        check_shown(job)
        return job

    def _created(self, jobs: Sequence[Job], act: Act) -> None:
        """``jobs`` were created by ``act``: the log, the journal, the loop woken. Each
        job's CronJobCreated entry is journalled (its SYMBID_JOB story begins there); a
        batch logs its next runs at debug level, and one line for the whole of it."""
        level = logging.INFO if len(jobs) == 1 else logging.DEBUG
        if log.isEnabledFor(level):
            for job in jobs:
                log.log(level, "job %s created (next run %s)", job.name,
                        format_instant(job.next_run) if job.next_run is not None else "never",
                        extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "job_created"})
        if len(jobs) > 1:
            log.info("%d jobs created in one batch by %s", len(jobs), escape(act.actor),
                     extra={"SYMBID_EVENT": "jobs_created"})
        emit([act.about(job.id, job.name) for job in jobs])
        self._wake()

    def adhoc_job(self, agent: str, *, actor: str) -> Job:
        """``agent``'s ad hoc job, created on first use (for ``actor``, on the audit
        trail): paused, never scheduled, its session fully ephemeral. :class:`Conflict`
        when a job of that name is something else (a name stored before the name
        rule)."""
        name = adhoc_name(agent)
        for _ in range(2):
            job = self._store.find_job(name)
            if job is not None:
                if not job.adhoc or job.agent_id != agent:
                    raise Conflict(f"job {escape(name)} is not the ad hoc job of agent "
                                   f"'{escape(agent)}'; rename that job to run the agent "
                                   "outside the schedule", field="name")
                return job
            now = self._clock.now()
            job = Job(id=new_id(), name=name, agent_id=agent, at=now,
                      status=JobStatus.PAUSED, session_mode=SessionMode.FULLY_EPHEMERAL,
                      source=ADHOC_SOURCE, next_run=None, created_at=now, updated_at=now)
            check_shown(job)
            act = Act("CronJobCreated", actor, now)
            try:
                self._store.create_job(job, act)
            except Conflict:
                continue  # another request created it just now: read it
            log.info("job %s created: agent %s's ad hoc job (symbi run)", name, agent,
                     extra={"SYMBID_JOB": name, "SYMBID_EVENT": "job_created"})
            emit([act.about(job.id, job.name)])
            return job
        raise Conflict(f"job {escape(name)} could not be created; try again", field="name")

    def update(self, ref: str, build: Callable[[Job], Job], *, actor: str) -> Job:
        """Change a job's definition for ``actor``; its state and history stay, its
        schedule re-aims.

        Jobs defined in agents.d files are changed by editing the file.
        """
        now = self._clock.now()
        was: list[str] = []

        def change(have: Job) -> Job:
            was[:] = [have.name]
            self._refuse_file_job(have, "change")
            self._refuse_adhoc(have, "changed")
            want = build(have)
            if want.name != have.name:  # a name stored before the rule keeps working
                check_name(want.name)
            self._check_agent(want.agent_id)
            self._validate(want, now, allow_past=want.at == have.at)
            new = merge(have, want, now)[0]
            check_shown(new)
            return new

        job = self._modify(ref, change, now, Act("CronJobUpdated", actor, now))
        if was and was[0] != job.name:  # its series under the old name end
            self._metrics.job_gone(was[0])
        return job

    def _modify(self, ref: str, change: Callable[[Job], Job], now: int, act: Act) -> Job:
        """``change`` the job ``ref`` in one transaction that records ``act`` (a change
        that returns the job as it was, such as pausing a paused job, is no change: not
        written, not on the trail)."""
        changed = [False]

        def tracked(have: Job) -> Job:
            new = change(have)
            changed[0] = new is not have
            return new

        job = self._store.modify_job(ref, tracked, now, act)
        if changed[0]:
            emit([act.about(job.id, job.name)])
            self._wake()
        return job

    @staticmethod
    def _refuse_file_job(job: Job, verb: str) -> None:
        if from_file(job):
            raise Conflict(
                f"job {job.name} is defined in {job.source[len('file:'):]}; to {verb} it, "
                "edit that file and run `symbi reload`"
            )

    @staticmethod
    def _refuse_adhoc(job: Job, verb: str) -> None:
        if job.adhoc:
            raise Conflict(
                f"job {escape(job.name)} is the ad hoc job of agent '{escape(job.agent_id)}'"
                f": it holds the runs of `symbi run {escape(job.agent_id)}` and is never "
                f"scheduled, so it cannot be {verb}; run the agent with `symbi run`, or "
                "remove the job (with its runs) with `symbi cron remove`", field="status")

    def _next_from_now(self, job: Job, now: int) -> Optional[int]:
        """The first slot after ``now`` the job has not claimed (a one-shot keeps its ``at``
        until that is claimed)."""
        if job.at is not None:
            return job.at if claimed_span(job.claimed, job.at) is None else None
        schedule = make_schedule(job.cron_expr, None, job.timezone)
        return first_free_slot(schedule, now, job.claimed)

    def pause(self, ref: str, *, actor: str) -> Job:
        now = self._clock.now()

        def change(job: Job) -> Job:
            self._refuse_adhoc(job, "paused")
            if job.status is JobStatus.PAUSED:
                return job
            if job.status is not JobStatus.ACTIVE:
                raise Conflict(f"job {job.name} is {job.status.value}; only active jobs pause")
            return job.replace(status=JobStatus.PAUSED)

        return self._modify(ref, change, now, Act("CronJobPaused", actor, now))

    def resume(self, ref: str, *, actor: str) -> Job:
        now = self._clock.now()

        def change(job: Job) -> Job:
            self._refuse_adhoc(job, "resumed")
            if job.status is JobStatus.ACTIVE:
                return job
            if job.status is not JobStatus.PAUSED:
                raise Conflict(
                    f"job {job.name} is {job.status.value}; only paused jobs resume"
                    + (" (use reset)" if job.status is JobStatus.DEAD_LETTER else "")
                )
            return job.replace(status=JobStatus.ACTIVE, next_run=self._next_from_now(job, now))

        return self._modify(ref, change, now, Act("CronJobResumed", actor, now))

    def reset(self, ref: str, *, actor: str) -> Job:
        """Re-arm a dead-letter job at its next slot after now; pending retries are dropped."""
        now = self._clock.now()

        def change(job: Job) -> Job:
            self._refuse_adhoc(job, "reset")
            if job.status is not JobStatus.DEAD_LETTER:
                hint = ""
                if job.status is JobStatus.FAILED:
                    hint = ("; a failed one-shot's slot is spent: run it with `symbi cron run` "
                            "or add a new job")
                raise Conflict(
                    f"job {job.name} is {job.status.value}; only dead_letter jobs can be reset"
                    + hint
                )
            return job.replace(status=JobStatus.ACTIVE, next_run=self._next_from_now(job, now))

        act = Act("CronJobReset", actor, now)
        job = self._store.modify_job(ref, change, now, act, clear_retries=True)
        log.info("job %s reset to active", job.name,
                 extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "job_reset"})
        emit([act.about(job.id, job.name)])
        self._wake()
        return job

    def delete(self, ref: str, *, actor: str) -> Job:
        act = Act("CronJobDeleted", actor, self._clock.now())
        try:
            found = self._store.get_job(ref)
        except UnreadableRow:
            job = self._store.delete_job(ref, act)  # a row that cannot be read can still go
        else:
            self._refuse_file_job(found, "remove")
            job = self._store.delete_job(found.id, act)
        self._gone([job])
        log.info("job %s deleted", job.name,
                 extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "job_deleted"})
        emit([act.about(job.id, job.name)])
        self._wake()
        return job


    def sync_files(self, files: Sequence[LoadedFile], actor: str = FILES_ACTOR
                   ) -> SyncResult:
        """Make the stored file jobs match ``files`` in one transaction (see dsl.sync),
        with their audit events by ``actor`` (who asked for the reload, else
        ``agents.d``)."""
        result = SyncResult()
        for f in files:
            if not f.ok:
                result.failed_files.append(f.path)
                result.errors.extend(d.format() for d in f.errors)
            result.warnings.extend(d.format() for d in f.warnings)
        for attempt in range(5):
            now = self._clock.now()
            plan = plan_sync(files, self._store.sync_candidates(defined_names(files)), now)
            create, update, skipped = [], [], []
            for job in plan.create:
                try:
                    next_run = self._validate(job, now)
                    new = job.replace(id=new_id(), status=JobStatus.ACTIVE, next_run=next_run,
                                      created_at=now, updated_at=now, version=1)
                    check_shown(new)
                except InvalidInput as exc:
                    skipped.append(f"{job.source[5:]}: schedule {job.name}: {exc.message}")
                    continue
                create.append(new)
            for job in plan.update:
                try:
                    check_shown(job)  # the whole wire form, before the commit
                    lacking = self.delivery_problem(job) if self.delivery_problem else None
                    if lacking is not None:
                        raise InvalidInput(lacking[1], field=lacking[0])
                except InvalidInput as exc:
                    skipped.append(f"{job.source[5:]}: schedule {job.name}: {exc.message}; "
                                   "its stored definition is kept")
                    continue
                update.append(job)
            audit = [AuditEvent(kind, actor, j.id, j.name, details={"via": FILES_ACTOR})
                     for kind, jobs in (
                ("CronJobCreated", create), ("CronJobUpdated", update),
                ("CronJobDeleted", plan.remove)) for j in jobs]
            try:
                self._store.apply_changes(create, update, [j.id for j in plan.remove],
                                          audit, now)
            except Conflict:
                if attempt == 4:
                    raise
                continue  # a job changed under us (the loop claimed a slot): plan again
            result.created = [j.name for j in create]
            result.updated = [j.name for j in update]
            result.removed = [j.name for j in plan.remove]
            self._gone(plan.remove)
            result.unchanged = len(plan.unchanged)
            emit(audit)
            result.errors.extend(list(plan.errors) + skipped)
            result.warnings.extend(plan.warnings)
            break
        for name in result.created + result.updated + result.removed:
            log.info("agents.d: job %s %s", name,
                     "created" if name in result.created else
                     "updated" if name in result.updated else "removed",
                     extra={"SYMBID_JOB": name, "SYMBID_EVENT": "job_synced"})
        self._wake()
        return result
