"""agents.d sync: what a reload must change, as a pure plan.

Schedules from files are declarative and keyed by name. A new block creates a
job, a changed block updates it in place (history, counters and status such as
paused survive), a removed block removes its job, and an unchanged block
changes nothing, so loading the same files twice is a no-op. Jobs created
through the API or CLI (``source = "api"``) are never touched. The jobs of a
file that failed to load keep their last good definition (the one stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from symbid.dsl.loader import LoadedFile
from symbid.model import FILE_SOURCE_PREFIX, Job, JobStatus, format_instant
from symbid.spans import claimed_span, first_free_slot
from symbid.timing import make_schedule

FILE_PREFIX = FILE_SOURCE_PREFIX


@dataclass(frozen=True)
class SyncPlan:
    create: tuple[Job, ...] = ()
    update: tuple[Job, ...] = ()  # new rows, carrying the version they were planned against
    remove: tuple[Job, ...] = ()
    unchanged: tuple[Job, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def from_file(job: Job) -> bool:
    return job.source.startswith(FILE_PREFIX)


def same_definition(a: Job, b: Job) -> bool:
    """Whether two jobs are defined alike (state such as next_run is ignored)."""
    return (a.agent_id, a.cron_expr, a.at, a.timezone, a.definition(), a.source) == \
        (b.agent_id, b.cron_expr, b.at, b.timezone, b.definition(), b.source)


def merge(have: Job, want: Job, now: int) -> tuple[Job, list[str]]:
    """``want``'s definition on ``have``'s identity and state; re-aimed if its schedule moved."""
    warnings: list[str] = []
    new = want.replace(
        id=have.id, status=have.status, next_run=have.next_run, last_run=have.last_run,
        claimed=have.claimed, run_count=have.run_count, failure_count=have.failure_count,
        created_at=have.created_at, updated_at=now, version=have.version,
    )
    if (have.cron_expr, have.at, have.timezone) == (want.cron_expr, want.at, want.timezone):
        return new, warnings
    finished = have.status in (JobStatus.COMPLETED, JobStatus.FAILED)
    if want.at is not None:
        if want.at > now and claimed_span(have.claimed, want.at) is None:
            status = JobStatus.ACTIVE if finished else have.status
            return new.replace(next_run=want.at, status=status), warnings
        why = "has passed" if want.at <= now else "was already claimed by this job"
        warnings.append(f"schedule {want.name}: at time {format_instant(want.at)} {why}; "
                        "it does not run")
        return new.replace(next_run=None), warnings
    # The first slot from now on that the job has not claimed: the high-water mark and
    # the claimed spans never go down, so a changed schedule never repeats a slot.
    schedule = make_schedule(want.cron_expr, None, want.timezone)
    status = JobStatus.ACTIVE if finished else have.status
    return new.replace(next_run=first_free_slot(schedule, now, have.claimed),
                       status=status), warnings


def defined_names(files: Sequence[LoadedFile]) -> set[str]:
    """The names of the jobs the files that loaded define."""
    return {job.name for f in files if f.ok for job in f.jobs}


def plan_sync(files: Sequence[LoadedFile], existing: Sequence[Job], now: int) -> SyncPlan:
    """Compare what the files define with the stored jobs: every file job, and any
    other job called as one of them (what :meth:`JobStore.sync_candidates` returns;
    other jobs play no part)."""
    failed = {f.source for f in files if not f.ok}
    desired: dict[str, Job] = {}
    for f in files:
        if f.ok:
            for job in f.jobs:
                desired.setdefault(job.name, job)
    by_name = {j.name: j for j in existing}
    create: list[Job] = []
    update: list[Job] = []
    remove: list[Job] = []
    unchanged: list[Job] = []
    errors: list[str] = []
    warnings: list[str] = []
    for name, want in desired.items():
        have = by_name.get(name)
        if have is None:
            if want.at is not None and want.at <= now:
                warnings.append(f"schedule {name}: at time {format_instant(want.at)} has "
                                "passed; no job is created for it")
                continue
            create.append(want)
        elif not from_file(have):
            path = want.source[len(FILE_PREFIX):]
            errors.append(f"{path}: schedule {name!r} clashes with a job of the same name "
                          f"created through the API ({have.id}); rename one of them")
        elif have.source in failed:
            unchanged.append(have)  # its old file is broken: keep the stored definition
        elif same_definition(have, want):
            unchanged.append(have)
        else:
            merged, notes = merge(have, want, now)
            update.append(merged)
            warnings.extend(notes)
    for job in existing:
        if from_file(job) and job.name not in desired:
            (unchanged if job.source in failed else remove).append(job)
    return SyncPlan(tuple(create), tuple(update), tuple(remove), tuple(unchanged),
                    tuple(errors), tuple(warnings))
