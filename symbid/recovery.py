"""What a start-up does with the runs a stopped daemon left open (DESIGN §5, the
restart rule in ``docs/run-states.md``): a run that may have started is ended
``interrupted`` (its leftover process groups are terminated first) and never re-run; a
run that provably never started is queued again, unless its job's ``catch_up`` skips it
now. :class:`~symbid.lifecycle.RunLifecycle` records the plan, store first.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Optional

from symbid.config import SchedulerConfig
from symbid.errors import UnreadableRow
from symbid.launch import RecoveryReport
from symbid.leftovers import find_run_processes, kill_process_groups, recorded_groups
from symbid.model import Job, JobStatus, RunStatus
from symbid.planner import CLAIM_AHEAD_MS, job_end, recovered
from symbid.records import Run
from symbid.startlog import StartLog
from symbid.store import Finish, JobStore

log = logging.getLogger(__name__)


@dataclass
class RecoveryPlan:
    finishes: list[Finish] = field(default_factory=list)  # runs that end now
    resume: list[tuple[Job, Run]] = field(default_factory=list)  # queued again
    awaiting: list[tuple[Job, Run]] = field(default_factory=list)  # still awaiting approval
    report: RecoveryReport = field(default_factory=lambda: RecoveryReport(0, 0, 0, 0))


def _extra(job: Job, run: Run, event: str) -> dict[str, str]:
    return {"SYMBID_JOB": job.name, "SYMBID_RUN": run.id, "SYMBID_EVENT": event}


def plan_recovery(store: JobStore, start_log: StartLog, now: int,
                  config: SchedulerConfig, *, run_uids: Optional[Collection[int]] = None
                  ) -> RecoveryPlan:
    """What becomes of each open run (leftover processes are terminated here: among the
    processes of ``run_uids``, the users runs execute as, when given)."""
    open_runs = store.open_runs()
    if not open_runs:
        return RecoveryPlan()
    record = start_log.read()
    if record.earlier_boot:
        record = record.clock_checked(store.latest_instant())
    finishes: list[Finish] = []
    never: dict[str, list[Run]] = {}
    awaiting: list[tuple[Job, Run]] = []
    interrupted = 0
    groups = find_run_processes({r.id for r in open_runs}, uids=run_uids)
    for rid, pgids in recorded_groups(
            (r.id, r.pid, r.pgid, r.pid_start, r.started_at) for r in open_runs).items():
        groups.setdefault(rid, set()).update(pgids)
    pgids = {g for gs in groups.values() for g in gs}
    if pgids:
        log.warning("terminating %d leftover process group(s) of interrupted runs",
                    len(pgids))
        kill_process_groups(pgids, config.kill_grace_seconds)
    jobs: dict[str, Optional[Job]] = {}
    for run in open_runs:
        started = run.status is RunStatus.RUNNING or run.id in groups
        if run.job_id not in jobs:
            try:
                jobs[run.job_id] = store.find_job(run.job_id)
            except UnreadableRow as exc:
                log.error("%s: its open runs are ended", exc.message)
                jobs[run.job_id] = None
        job = jobs[run.job_id]
        if job is None:  # unreadable: end its runs without touching the job
            status = RunStatus.INTERRUPTED if started or record.may_have_started(
                run) else RunStatus.CANCELLED
            finishes.append(Finish(run=run.replace(
                status=status, finished_at=now,
                error_message="its job cannot be read; see the daemon's log"),
                counts=status is RunStatus.INTERRUPTED))
            interrupted += status is RunStatus.INTERRUPTED
            continue
        if run.status is RunStatus.PENDING and not started and \
                not record.may_have_started(run):
            never.setdefault(job.id, []).append(run)
            continue
        if run.status is RunStatus.AWAITING_APPROVAL and not started:
            awaiting.append((job, run))  # it never started: it waits on
            continue
        was = "starting" if run.status is RunStatus.PENDING else run.status.value
        finishes.append(job_end(
            job, run, RunStatus.INTERRUPTED, finished_at=now,
            error_message=f"symbid stopped while this run was {was}; it may have "
            "run, so it is not re-run"))
        interrupted += 1
        log.warning("run %s of job %s was %s when symbid stopped: recorded interrupted",
                    run.id, job.name, was, extra=_extra(job, run, "run_interrupted"))
    resume: list[tuple[Job, Run]] = []
    skipped = 0
    for job_id, runs in never.items():
        job = jobs[job_id]
        assert job is not None
        newer_due = job.status is JobStatus.ACTIVE and job.next_run is not None \
            and job.next_run <= now + CLAIM_AHEAD_MS
        start, ended = recovered(job, runs, now, config, newer_due)
        resume += [(job, r) for r in start]
        finishes += ended
        skipped += len(ended)
    return RecoveryPlan(finishes, resume, awaiting,
                        RecoveryReport(interrupted, len(resume), skipped, len(pgids)))
