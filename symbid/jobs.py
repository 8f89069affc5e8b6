"""Job lifecycle operations that keep a job's schedule consistent.

Creating, pausing, resuming, resetting and deleting jobs all go through
:class:`JobService`, whoever asks (API, CLI, the agents.d sync, tests): it
validates the schedule, computes ``next_run`` and wakes the scheduler loop.

Resuming a paused job and resetting a dead-letter job aim it at the first slot
after *now*: slots that passed while it was stopped are neither run nor
recorded (the operator stopped it on purpose). A paused one-shot whose slot has
not been claimed keeps its ``at`` time; if that has passed, its catch-up policy
decides at the next pass.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from symbid.clock import Clock
from symbid.errors import Conflict, InvalidInput
from symbid.model import Job, JobStatus, format_instant, new_id
from symbid.store import JobStore
from symbid.timing import make_schedule

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
    runtime = job.policy.max_runtime_seconds
    if runtime is not None and runtime <= 0:
        raise InvalidInput("policy.max_runtime must be positive", field="policy.max_runtime")
    schedule = make_schedule(job.cron_expr, job.at, job.timezone, now=now)
    if job.at is not None:
        if job.at <= now and not allow_past:
            raise InvalidInput(
                f"at time {format_instant(job.at)} is in the past (now {format_instant(now)})",
                field="at",
            )
        return job.at
    return schedule.next_after(now)


class JobService:
    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        *,
        wake: Callable[[], None] = lambda: None,
        agent_exists: Optional[Callable[[str], bool]] = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._wake = wake
        self._agent_exists = agent_exists

    def create(self, job: Job, *, allow_past: bool = False) -> Job:
        now = self._clock.now()
        if self._agent_exists is not None and not self._agent_exists(job.agent_id):
            raise InvalidInput(f"agent {job.agent_id!r} is not defined", field="agent_id")
        next_run = validate_job(job, now, allow_past=allow_past)
        job = job.replace(
            id=job.id or new_id(), status=JobStatus.ACTIVE, next_run=next_run, last_run=None,
            run_count=0, failure_count=0, created_at=now, updated_at=now, version=1,
        )
        self._store.create_job(job)
        log.info("job %s created (next run %s)", job.name,
                 format_instant(next_run) if next_run is not None else "never",
                 extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "job_created"})
        self._wake()
        return job

    def _next_from_now(self, job: Job, now: int) -> Optional[int]:
        if job.at is not None:
            return job.at if job.last_run is None else None
        schedule = make_schedule(job.cron_expr, None, job.timezone)
        return schedule.next_after(max(now, job.last_run or now))

    def pause(self, ref: str) -> Job:
        def change(job: Job) -> Job:
            if job.status is JobStatus.PAUSED:
                return job
            if job.status is not JobStatus.ACTIVE:
                raise Conflict(f"job {job.name} is {job.status.value}; only active jobs pause")
            return job.replace(status=JobStatus.PAUSED)

        job = self._store.modify_job(ref, change, self._clock.now())
        self._wake()
        return job

    def resume(self, ref: str) -> Job:
        now = self._clock.now()

        def change(job: Job) -> Job:
            if job.status is JobStatus.ACTIVE:
                return job
            if job.status is not JobStatus.PAUSED:
                raise Conflict(
                    f"job {job.name} is {job.status.value}; only paused jobs resume"
                    + (" (use reset)" if job.status is JobStatus.DEAD_LETTER else "")
                )
            return job.replace(status=JobStatus.ACTIVE, next_run=self._next_from_now(job, now))

        job = self._store.modify_job(ref, change, now)
        self._wake()
        return job

    def reset(self, ref: str) -> Job:
        """Re-arm a dead-letter job at its next slot after now; pending retries are dropped."""
        now = self._clock.now()

        def change(job: Job) -> Job:
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

        job = self._store.modify_job(ref, change, now)
        self._store.clear_retries(job.id)
        log.info("job %s reset to active", job.name,
                 extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "job_reset"})
        self._wake()
        return job

    def delete(self, ref: str) -> Job:
        job = self._store.delete_job(ref)
        log.info("job %s deleted", job.name,
                 extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "job_deleted"})
        self._wake()
        return job

