"""Pure run decisions (DESIGN §5): no store, no clock, no processes.

Everything the loop decides about runs is a function here of what it is given:

* :func:`plan_job`: what happens to each slot of a job that has come due
  (catch-up, the per-job limit, jitter), and where its schedule moves on to;
* :func:`plan_retry`: whether a failed run's next attempt can be claimed now;
* :func:`start_gate`: whether a queued run may start, must wait, or is dropped;
* :func:`finish_decision`: how a finished run changes its job (retry, dead
  letter, a one-shot's end);
* :func:`recovered`: what a restart does with runs that provably never started.

The states these functions move runs between, and what each state means, are the
table in ``docs/run-states.md``. :mod:`symbid.lifecycle` applies the decisions,
always in the store first.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Optional

from symbid.auth import SCHEDULER
from symbid.config import SchedulerConfig
from symbid.errors import SymbidError
from symbid.model import (
    CatchUp,
    Job,
    JobStatus,
    RunStatus,
    Trigger,
    format_duration,
    format_instant,
    new_id,
)
from symbid.records import Run, RunOutcome
from symbid.spans import add_span, skip_claimed
from symbid.store import Advance, Finish
from symbid.store.audit import AuditEvent
from symbid.store.deliveries import AlertRequest
from symbid.timing import Schedule, make_schedule

log = logging.getLogger(__name__)

# Slots are claimed this long before they are due, so the claim's fsync is off
# the start path: the run then starts on a timer at its exact instant.
CLAIM_AHEAD_MS = 50
_ENUMERATION_FACTOR = 20  # missed slots walked before jumping ahead


# --- waits -------------------------------------------------------------------------------


def backoff_ms(attempt: int, config: SchedulerConfig) -> int:
    """The wait before attempt ``attempt + 1``: exponential, capped."""
    doublings = min(max(0, attempt - 1), 64)  # past 2**64 every backoff is at its cap
    base = config.retry_backoff_seconds * float(2 ** doublings)
    return int(min(base, config.retry_backoff_max_seconds) * 1000)


def jitter_ms(job: Job, config: SchedulerConfig, rng: random.Random) -> int:
    span = job.jitter_seconds if job.jitter_seconds is not None else config.max_jitter_seconds
    return int(rng.uniform(0, span) * 1000) if span > 0 else 0


def max_retries(job: Job, config: SchedulerConfig) -> int:
    return job.max_retries if job.max_retries is not None else config.default_max_retries


def start_due(run: Run) -> int:
    """When a queued run may start: its jitter or backoff deadline, else its slot."""
    return run.not_before if run.not_before is not None else run.slot


# --- slots ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DueSlots:
    slots: list[int]  # the newest due slots, at most ``cap``
    omitted: int  # older ones walked over without being kept
    next_slot: Optional[int]  # the first slot after ``until``


def due_slots(
    schedule: Schedule, first: int, until: int, cap: int, claimed: tuple[tuple[int, int], ...]
) -> DueSlots:
    """The slots from ``first`` up to ``until`` that no claimed span holds.

    At most ``cap`` are returned; a very long outage is walked for a bounded
    number of steps and then jumped over.
    """
    cap = max(1, cap)
    kept: deque[int] = deque(maxlen=cap)
    walked = 0
    omitted = 0
    slot = skip_claimed(schedule, first, claimed)
    while slot is not None and slot <= until:
        kept.append(slot)
        walked += 1
        if walked >= cap * _ENUMERATION_FACTOR and len(kept) == cap:
            span = kept[-1] - kept[0]
            jump = skip_claimed(schedule, schedule.next_after(until - span - 1), claimed)
            if jump is not None and jump > slot:
                omitted += walked
                walked = 0
                kept.clear()
                slot = jump
                continue
        slot = skip_claimed(schedule, schedule.next_after(slot), claimed)
    return DueSlots(list(kept), omitted, slot)


def skipped_run(job: Job, slot: int, now: int, reason: str) -> Run:
    return Run(
        id=new_id(), job_id=job.id, slot=slot, attempt=1, trigger=Trigger.SCHEDULE,
        status=RunStatus.SKIPPED, created_at=now, finished_at=now, error_message=reason,
    )


def _missed(slot: int, now: int, why: str) -> str:
    return f"missed by {format_duration(max(0, now - slot) // 1000)} ({why})"


def occupants(runs: Sequence[tuple[str, str]]) -> str:
    """The runs holding a job's places, for a skip's reason: ``3f2a9c1d running, ...``."""
    shown = ", ".join(f"{rid[:8]} {status}" for rid, status in runs[:3])
    return shown + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")


def plan_job(
    job: Job, now: int, horizon: int, open_runs: Sequence[tuple[str, str]], *,
    config: SchedulerConfig, rng: random.Random,
) -> Advance:
    """Decide every slot of ``job`` from its ``next_run`` up to ``horizon``.

    ``open_runs`` are (id, status) of the job's runs that take a ``max_concurrent``
    place now.
    """
    holding = list(open_runs)
    assert job.next_run is not None
    claimed = add_span(job.claimed, job.next_run, job.next_run)
    try:
        schedule = make_schedule(job.cron_expr, job.at, job.timezone)
    except SymbidError as exc:
        log.error("job %s: schedule no longer valid (%s); moved to dead_letter",
                  job.name, exc.message, extra={"SYMBID_JOB": job.name})
        skipped = skipped_run(job, job.next_run, now, f"schedule invalid: {exc.message}")
        ends = JobStatus.FAILED if job.one_shot else JobStatus.DEAD_LETTER
        return Advance(job.id, job.version, None, claimed, (skipped,), ends,
                       alert=job_stopped_alert(job, skipped, ends),
                       audit=_stop_events(job, skipped, ends))
    due = due_slots(schedule, job.next_run, horizon, config.keep_runs, job.claimed)
    slots = due.slots
    if slots:
        claimed = add_span(job.claimed, job.next_run, slots[-1], schedule)
    grace = int(config.misfire_grace_seconds * 1000)
    late = [s for s in slots if now - s > grace]
    timely = [s for s in slots if now - s <= grace]
    to_run: list[tuple[int, Trigger]] = [(s, Trigger.SCHEDULE) for s in timely]
    skips: list[tuple[int, str]] = []
    if job.catch_up is CatchUp.ALL:
        keep = late[-job.catch_up_limit:] if job.catch_up_limit > 0 else []
        skips += [(s, _missed(s, now, f"beyond catch_up_limit={job.catch_up_limit}"))
                  for s in late[: len(late) - len(keep)]]
        to_run = [(s, Trigger.CATCH_UP) for s in keep] + to_run
    elif job.catch_up is CatchUp.LATEST:
        if timely:
            skips += [(s, _missed(s, now, "catch_up=latest; a newer slot ran")) for s in late]
        elif late:
            to_run.insert(0, (late[-1], Trigger.CATCH_UP))
            skips += [(s, _missed(s, now, "catch_up=latest; only the latest missed slot ran"))
                      for s in late[:-1]]
    else:
        skips += [(s, _missed(s, now, "catch_up=skip")) for s in late]
    if due.omitted:
        log.warning(
            "job %s: %d+ further missed slots before %s are not recorded individually",
            job.name, due.omitted, format_instant(slots[0]), extra={"SYMBID_JOB": job.name},
        )
    runs: list[Run] = [skipped_run(job, s, now, why) for s, why in skips]
    started = 0
    for slot, trigger in sorted(to_run):
        # Catch-up runs queue behind each other (the start gate keeps them within
        # max_concurrent), and so does a one-shot's only slot. A regular slot that finds
        # the job at its limit is skipped; one claimed ahead of its time is decided by the
        # start gate when it is due.
        if trigger is Trigger.SCHEDULE and len(holding) >= job.max_concurrent and \
                slot <= now and not job.one_shot:
            runs.append(skipped_run(
                job, slot, now,
                f"max_concurrent reached ({len(holding)} of {job.max_concurrent} runs open: "
                f"{occupants(holding)})",
            ))
            continue
        started += 1
        base = slot if trigger is Trigger.SCHEDULE else now
        run = Run(
            id=new_id(), job_id=job.id, slot=slot, attempt=1, trigger=trigger,
            status=RunStatus.PENDING, created_at=now,
            not_before=base + jitter_ms(job, config, rng), input=job.input,
        )
        holding.append((run.id, run.status.value))
        runs.append(run)
    status = None
    alert = None
    if job.one_shot and started == 0:
        status = JobStatus.FAILED
        log.warning("job %s: one-shot slot skipped; job is now failed", job.name,
                    extra={"SYMBID_JOB": job.name})
        if runs:
            alert = job_stopped_alert(job, runs[-1], status)
    return Advance(job.id, job.version, due.next_slot, claimed, tuple(runs), status, alert,
                   audit=_stop_events(job, runs[-1], status) if status and runs else ())


def _stop_events(job: Job, run: Run, ends: JobStatus) -> tuple[AuditEvent, ...]:
    event = job_stopped_event(job, run, ends)
    return (event,) if event is not None else ()


def plan_retry(failed: Run, job: Job, open_count: int, now: int) -> Optional[Run]:
    """The next attempt of ``failed``, or None while the job is at its limit."""
    if open_count >= job.max_concurrent:
        return None
    assert failed.retry_at is not None
    return Run(
        id=new_id(), job_id=job.id, slot=failed.slot, attempt=failed.attempt + 1,
        trigger=Trigger.RETRY, status=RunStatus.PENDING, created_at=now,
        not_before=max(now, failed.retry_at), input=failed.input,
    )


# --- starting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What to do with a queued run whose start time has come."""

    action: str  # "start", "wait" (stays queued) or "drop" (ends as ``status``)
    status: Optional[RunStatus] = None
    reason: Optional[str] = None


START = Gate("start")
WAIT = Gate("wait")


def start_gate(job: Optional[Job], run: Run, running: Sequence[str],
               claimed_as: Optional[Job] = None, *,
               awaiting: Collection[str] = ()) -> Gate:
    """Whether ``run`` may start now; ``job`` is its job as stored now (None: deleted),
    ``claimed_as`` the job as it was when the run was claimed, ``running`` the ids of
    the job's runs that hold its places (``awaiting``: those of them awaiting approval)."""
    if job is None:
        return Gate("drop", RunStatus.CANCELLED, "its job was deleted")
    if job.status is not JobStatus.ACTIVE and run.trigger is not Trigger.MANUAL:
        return Gate("drop", RunStatus.CANCELLED,
                    f"job became {job.status.value} before the run started")
    if run.trigger is not Trigger.MANUAL and (job.one_shot or (claimed_as is not None and
                                                              claimed_as.one_shot)) \
            and job.at != run.slot:
        now_at = f"at {format_instant(job.at)}" if job.at is not None else "on cron"
        return Gate("drop", RunStatus.CANCELLED,
                    f"the one-shot was re-armed ({now_at}) before this run started")
    if run.trigger is not Trigger.MANUAL and len(running) >= job.max_concurrent:
        if run.trigger is Trigger.SCHEDULE and not job.one_shot:
            going = occupants([(rid, "awaiting approval" if rid in awaiting else "running")
                               for rid in running])
            return Gate("drop", RunStatus.SKIPPED,
                        f"max_concurrent reached ({len(running)} of {job.max_concurrent} runs "
                        f"going: {going})")
        return WAIT  # catch-up runs, retries and a one-shot's slot work through in turn
    return START


# --- finishing -----------------------------------------------------------------------------


def job_end(job: Job, run: Run, status: RunStatus, **fields: object) -> Finish:
    """``run`` ending as ``status`` for good; a one-shot job ends with it. The Finish
    carries what the end puts in the outbox (:func:`outbox_of`)."""
    return outbox_of(job, _job_end(job, run, status, **fields))


def _job_end(job: Job, run: Run, status: RunStatus, **fields: object) -> Finish:
    """``run`` ending as ``status`` for good; a one-shot job ends with it.

    The job's status changes only while it still has the schedule the run belongs
    to: a one-shot re-armed at another time, or switched to cron, while its old
    run was going is not ended by that run.
    """
    final = run.replace(status=status, **fields)
    # Counted in run_count: runs that ran (cancelled ones too, once they had started),
    # and interrupted ones, which may have; never a run dropped before it started.
    counts = status.executed or status is RunStatus.INTERRUPTED or \
        (status is RunStatus.CANCELLED and final.started_at is not None)
    if run.trigger is Trigger.MANUAL or not job.one_shot:
        return Finish(run=final, counts=counts)
    return Finish(run=final, counts=counts, job_status=status.one_shot_end,
                  belongs_to=(None, run.slot))


def finish_decision(
    job: Job, run: Run, outcome: RunOutcome, now: int, config: SchedulerConfig
) -> Finish:
    """How a run that started ends, what that does to its job, and what it puts in the
    outbox (:func:`outbox_of`)."""
    return outbox_of(job, _finish_decision(job, run, outcome, now, config))


def _finish_decision(
    job: Job, run: Run, outcome: RunOutcome, now: int, config: SchedulerConfig
) -> Finish:
    fields = outcome.run_fields()
    if not outcome.status.is_failure or run.trigger is Trigger.MANUAL:
        return _job_end(job, run, outcome.status, **fields)
    final = run.replace(status=outcome.status, **fields)
    if run.attempt <= max_retries(job, config):
        # A one-shot's retry is for its slot: dropped if the job is re-armed meanwhile.
        return Finish(run=final.replace(retry_at=now + backoff_ms(run.attempt, config)),
                      belongs_to=(None, run.slot) if job.one_shot else None)
    if job.one_shot:
        return Finish(run=final, job_status=JobStatus.FAILED, belongs_to=(None, run.slot),
                      clear_retries=True)
    return Finish(run=final, job_status=JobStatus.DEAD_LETTER, belongs_to=(job.cron_expr, None),
                  clear_retries=True)


# --- restarts ------------------------------------------------------------------------------


def recovered(
    job: Job, runs: Sequence[Run], now: int, config: SchedulerConfig, newer_due: bool
) -> tuple[list[Run], list[Finish]]:
    """Runs of ``job`` that provably never started, found at start-up: (start, end).

    Each keeps its row, slot and jitter deadline. A scheduled first attempt that
    is by now later than ``misfire_grace_seconds`` is a missed slot: the job's
    ``catch_up`` decides, as it does for slots missed while symbid was down
    (``newer_due``: such slots are due now). Retries, manual runs and approved runs (an
    approver let them go; their lateness is the wait) start.
    """
    grace = int(config.misfire_grace_seconds * 1000)
    start: list[Run] = []
    late: list[Run] = []
    for run in sorted(runs, key=lambda r: (r.slot, r.attempt)):
        first = run.trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP) and run.attempt == 1
        if first and run.approved_by is None and now - start_due(run) > grace:
            late.append(run)
        else:
            start.append(run)
    if not late:
        return start, []
    keep: list[Run] = []
    why = ""
    if job.catch_up is CatchUp.ALL:
        keep = late[-job.catch_up_limit:] if job.catch_up_limit > 0 else []
        why = f"beyond catch_up_limit={job.catch_up_limit}"
    elif job.catch_up is CatchUp.LATEST:
        if any(r.trigger is not Trigger.MANUAL for r in start) or newer_due:
            why = "catch_up=latest; a newer slot ran"
        else:
            keep = late[-1:]
            why = "catch_up=latest; only the latest missed slot ran"
    else:
        why = "catch_up=skip"
    ended = [
        job_end(job, run, RunStatus.SKIPPED, finished_at=now,
                error_message=_missed(start_due(run), now, why)
                + "; symbid was down when it was due to start")
        for run in late if run not in keep
    ]
    return sorted(start + keep, key=lambda r: (r.slot, r.attempt)), ended


def outbox_of(job: Job, fin: Finish) -> Finish:
    """``fin`` with what its run's end puts in the outbox, in the same write: its output
    for the job's ``delivery`` (a run that executed), and an alert for the job's
    ``alert`` channels (:func:`_alert_of`). A failure the store may find it cannot retry
    (its one-shot was re-armed) carries the alert for that case in ``alert_unretried``."""
    run = fin.run
    deliver = tuple(job.delivery) if job.delivery and run.status.executed else ()
    audit = audit_of(job, fin)
    alert = unretried = None
    if job.alert:
        alert = _alert_of(job, fin)
        if run.retry_at is not None and fin.belongs_to is not None:
            unretried = AlertRequest.about(job, "run_failed", _failed_message(
                job, run, "not retried: its one-shot was re-armed meanwhile"), run.id)
    if not deliver and alert is None and unretried is None and not audit:
        return fin
    return dataclasses.replace(fin, deliver=deliver, alert=alert, alert_unretried=unretried,
                               audit=audit)


def audit_event(job: Job, run: Run, kind: str, actor: str = SCHEDULER,
                **details: object) -> AuditEvent:
    """An audit event about ``run`` of ``job`` (its status and trigger in the details)."""
    return AuditEvent(kind, actor, job.id, job.name, run.id,
                      {"status": run.status.value, "trigger": run.trigger.value, **details})


def audit_of(job: Job, fin: Finish) -> tuple[AuditEvent, ...]:
    """The audit trail's record of a run that executed: it ran (and maybe dead-lettered
    its job). The end of a run that did not execute is recorded where it is decided:
    :func:`policy_denied`, and the approval moves for an approver's denial or an
    approval that expired."""
    run = fin.run
    why = run.error_message or ""
    out: list[AuditEvent] = []
    if run.status is RunStatus.SUCCEEDED:
        out.append(audit_event(job, run, "CronJobExecuted", duration_ms=run.execution_time_ms))
    elif run.status.is_failure:
        out.append(audit_event(job, run, "CronJobFailed", reason=why,
                               retry=run.retry_at is not None))
    if fin.job_status is not None:
        stop = job_stopped_event(job, run, fin.job_status)
        if stop is not None:
            out.append(stop)
    return tuple(out)


def job_stopped_event(job: Job, run: Run, ends: JobStatus) -> Optional[AuditEvent]:
    """The audit trail's record of ``job`` stopping with ``run``: ``CronJobDeadLettered``,
    or ``CronJobFailed`` for a one-shot ended ``failed`` by a run that did not fail itself
    (skipped, cancelled, interrupted, denied: a failed run is its own CronJobFailed).
    It carries ``job_status``: the store keeps it only if the run did stop the job."""
    why = run.error_message or ""
    if ends is JobStatus.DEAD_LETTER:
        return audit_event(job, run, "CronJobDeadLettered", reason=why,
                           job_status=ends.value)
    if ends is JobStatus.FAILED and not run.status.is_failure:
        return audit_event(job, run, "CronJobFailed", reason=why, job_status=ends.value)
    return None


def ended_with(fin: Finish, *events: AuditEvent) -> Finish:
    """``fin`` with ``events`` added to what it records on the audit trail."""
    return dataclasses.replace(fin, audit=fin.audit + events)


def policy_denied(job: Job, run: Run, now: int, reason: str, condition: str) -> Finish:
    """``run`` denied by its job's policy at ``now``: ``PolicyDenied`` on the record, and
    ``AgentPinVerificationFailed`` too when the credential decided it."""
    fin = job_end(job, run, RunStatus.DENIED, finished_at=now, error_message=reason)
    denied = fin.run
    pin = (audit_event(job, denied, "AgentPinVerificationFailed", reason=reason),) \
        if condition == "require_agent_pin" else ()
    return ended_with(fin, *pin, audit_event(job, denied, "PolicyDenied", reason=reason,
                                             condition=condition))


def job_stopped_alert(job: Job, run: Run, ends: JobStatus) -> Optional[AlertRequest]:
    """The alert for ``job`` stopping (dead_letter, or a one-shot ``failed``) with
    ``run``, which did not fail itself (skipped, cancelled, interrupted); None without
    ``alert`` channels."""
    if not job.alert:
        return None
    why = f": {run.error_message}" if run.error_message else ""
    if ends is JobStatus.DEAD_LETTER:
        return AlertRequest.about(job, "dead_letter", f"job {job.name} went to dead_letter: "
                                  f"run {run.id[:8]} {run.status.value}{why}; symbi cron "
                                  f"reset {job.name} re-arms it once it is fixed", run.id)
    return AlertRequest.about(job, "job_failed", f"one-shot job {job.name} is now failed "
                              f"without running to an end: run {run.id[:8]} "
                              f"{run.status.value}{why}", run.id)


def _failed_message(job: Job, run: Run, retried: str) -> str:
    why = f": {run.error_message}" if run.error_message else ""
    return (f"job {job.name}: run {run.id[:8]} {run.status.value} "
            f"(attempt {run.attempt}, {retried}){why}")


def approval_notice(job: Job, run: Run, approvers: Sequence[str], deadline: int
                    ) -> tuple[str, Optional[AlertRequest], AuditEvent]:
    """What a run that now awaits approval says (logged), the notice its job's alert
    channels get (None without them): who may approve, until when, and how; and its
    record in the audit trail."""
    who = ", ".join(approvers) or "anyone who can reach the API"
    message = (f"job {job.name}: run {run.id} awaits approval by {who} until "
               f"{format_instant(deadline)}: symbi cron approve {run.id} (or symbi cron "
               f"deny {run.id} --reason ...)")
    record = AuditEvent("ApprovalRequested", SCHEDULER, job.id, job.name, run.id, {
        "approvers": list(approvers), "deadline": format_instant(deadline)})
    return message, AlertRequest.about(job, "awaiting_approval", message) if job.alert \
        else None, record


def _alert_of(job: Job, fin: Finish) -> Optional[AlertRequest]:
    """What ``fin`` tells the job's ``alert`` channels: ``dead_letter`` (the job
    stopped), ``run_failed`` (a failure not retried), ``job_failed`` (a one-shot ended
    by a run that did not fail itself: skipped, cancelled, interrupted, denied),
    ``run_denied`` (the policy denied a run), ``recovered`` (a success), or nothing."""
    run = fin.run
    why = f": {run.error_message}" if run.error_message else ""
    if fin.job_status is JobStatus.DEAD_LETTER:
        return AlertRequest.about(job, "dead_letter", (
            f"job {job.name} went to dead_letter after run {run.id[:8]} {run.status.value} "
            f"(attempt {run.attempt}){why}; symbi cron reset {job.name} re-arms it"), run.id)
    if run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT) and run.retry_at is None:
        return AlertRequest.about(job, "run_failed", _failed_message(job, run, "not retried"),
                                  run.id)
    if fin.job_status is JobStatus.FAILED:
        return job_stopped_alert(job, run, JobStatus.FAILED)
    if run.status is RunStatus.DENIED:
        return AlertRequest.about(job, "run_denied", (
            f"job {job.name}: run {run.id[:8]} ({run.trigger.value}) was denied{why}"), run.id)
    if run.status is RunStatus.SUCCEEDED:
        return AlertRequest.about(job, "recovered",
                                  f"job {job.name} succeeded again (run {run.id[:8]})", run.id)
    return None
