"""The approval moves of the run lifecycle (``docs/run-states.md``): a pending run its
policy holds for approval, an approver's decision, an approval that expires. They are
:class:`~symbid.lifecycle.RunLifecycle`'s (it inherits them), so run state keeps one
owner: the store first, then memory (``_awaiting``, and the job's places in
``_per_job``), on the loop thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Callable, Optional

from symbid.audit import emit
from symbid.errors import Conflict, Forbidden, UnreadableRow
from symbid.launch import DecisionRequest
from symbid.metrics import Metrics
from symbid.model import Job, JobStatus, RunStatus, Trigger, format_instant
from symbid.planner import approval_notice, audit_event, ended_with, job_end
from symbid.policy import RequireApproval
from symbid.records import Run
from symbid.store import Finish, JobStore

log = logging.getLogger(__name__)


def _only_approvers(job: Job, actor: str, refusal: Callable[[str], str]) -> None:
    """:class:`Forbidden` (``refusal`` of the approvers' names, and who ``actor`` is)
    unless ``actor`` is one of the job's approvers (anyone, when it lists none)."""
    approvers = job.policy.approvers
    if approvers and actor not in approvers:
        raise Forbidden(f"{refusal(', '.join(approvers))}; you are {actor}")


def _extra(job: Job, run: Run, event: str) -> dict[str, str]:
    return {"SYMBID_JOB": job.name, "SYMBID_RUN": run.id, "SYMBID_EVENT": event}


class ApprovalMoves:
    """Runs awaiting approval; the lifecycle's state they use is declared here."""

    _store: JobStore
    _lock: threading.Lock
    _awaiting: dict[str, tuple[Job, Run]]
    _decisions: list[DecisionRequest]
    _per_job: dict[str, list[str]]
    metrics: Metrics
    _enqueue: Callable[[Job, Run], None]  # the lifecycle's queueing
    _finish: Callable[[Sequence[Finish]], set[str]]  # the lifecycle's store-then-journal

    # --- pending -> awaiting approval -> pending / denied / cancelled --------------------
    def _hold(self, job: Job, run: Run, decision: RequireApproval, now: int,
              default_timeout: float) -> None:
        """``run`` waits for an approver: stored with its deadline (and the job's alert
        channels told how to approve it, in the same write), then held in memory, where
        it keeps its ``max_concurrent`` place."""
        deadline = now + int((job.policy.approval_timeout_seconds or default_timeout) * 1000)
        message, notice, record = approval_notice(job, run, decision.approvers, deadline)
        if not self._store.await_approval(run.id, deadline, notice, now, (record,)):
            return  # no longer pending (cancelled meanwhile): nothing to hold
        with self._lock:
            self._awaiting[run.id] = (job, run.replace(status=RunStatus.AWAITING_APPROVAL,
                                                       approval_deadline=deadline))
            self._per_job.setdefault(job.id, []).append(run.id)
        log.info("%s", message, extra=_extra(job, run, "approval_notice"))
        emit([record])

    def _release_hold(self, run_id: str) -> Optional[tuple[Job, Run]]:
        with self._lock:
            held = self._awaiting.pop(run_id, None)
            if held is not None and run_id in self._per_job.get(held[0].id, []):
                self._per_job[held[0].id].remove(run_id)
            return held

    def take_decisions(self, now: int) -> None:
        """Act on the approvers' decisions asked for since the last pass, answering each;
        then cancel the runs whose approval deadline has passed."""
        with self._lock:
            decisions, self._decisions = self._decisions, []
        for request in decisions:
            try:
                self._decide_approval(request, now)
            except Exception as exc:
                request.error = exc
            request.done.set()
        with self._lock:
            late = [(j, r) for j, r in self._awaiting.values()
                    if r.approval_deadline is not None and r.approval_deadline <= now]
        for held_job, run in late:
            try:
                job = self._store.find_job(held_job.id)
            except UnreadableRow:
                job = held_job
            if job is None:  # deleted: its rows went with it
                self._release_hold(run.id)
                continue
            by = format_instant(run.approval_deadline or now)
            why = f"no approver decided by {by} (its approval_timeout); cancelled"
            fin = job_end(job, run, RunStatus.CANCELLED, finished_at=now, error_message=why)
            self._finish([ended_with(fin, audit_event(job, fin.run, "ApprovalExpired",
                                                      reason=why))])
            self._release_hold(run.id)
            self.metrics.run_finished(job.name, RunStatus.CANCELLED.value, None)
            log.info("job %s: run %s: approval expired; cancelled", job.name, run.id,
                     extra=_extra(job, run, "approval_expired"))

    def _check_canceller(self, run_id: str, actor: str) -> None:
        """A run that awaits approval is ended by its approvers only: a cancel by anyone
        else would be a denial they may not give (:class:`Forbidden`, naming them)."""
        with self._lock:
            held = self._awaiting.get(run_id)
        if held is None:
            return
        try:
            job = self._store.find_job(held[0].id) or held[0]
        except UnreadableRow:
            job = held[0]
        _only_approvers(job, actor, lambda who: f"run {run_id} of job {job.name} awaits "
                        f"approval: only {who} may cancel it (or deny it)")

    def _decide_approval(self, request: DecisionRequest, now: int) -> None:
        with self._lock:
            held = self._awaiting.get(request.run_id)
        stored = held[1] if held is not None else self._store.get_run(request.run_id)
        if stored.status is not RunStatus.AWAITING_APPROVAL:
            raise Conflict(f"run {stored.id} is {stored.status.value}, not awaiting approval")
        job = self._store.find_job(stored.job_id) or (held[0] if held else None)
        if job is None:
            raise Conflict(f"run {stored.id}'s job was deleted")
        _only_approvers(job, request.by, lambda who: f"only {who} may approve or deny run "
                        f"{stored.id} of job {job.name}")
        note = request.note
        if request.approve:
            if job.status is not JobStatus.ACTIVE and stored.trigger is not Trigger.MANUAL:
                raise Conflict(f"job {job.name} is {job.status.value}: resume it first (or "
                               f"deny run {stored.id})")
            granted = audit_event(job, stored, "ApprovalGranted", request.by, comment=note)
            if not self._store.approve(stored.id, request.by, note, (granted,), now):
                raise Conflict(f"run {stored.id} is no longer awaiting approval")
            emit([granted])
            self._release_hold(stored.id)
            self._enqueue(job, stored.replace(status=RunStatus.PENDING,
                                              approved_by=request.by, approval_note=note))
        else:
            fin = job_end(job, stored, RunStatus.DENIED, finished_at=now, approved_by=request.by,
                          approval_note=note, error_message=f"denied by {request.by}"
                          + (f": {note}" if note else ""))
            self._finish([ended_with(fin, audit_event(job, fin.run, "ApprovalDenied",
                                                      request.by, reason=note))])
            self._release_hold(stored.id)
            self.metrics.run_finished(job.name, RunStatus.DENIED.value, None)
        verb = "approved" if request.approve else "denied"
        log.info("job %s: run %s %s by %s", job.name, stored.id, verb, request.by,
                 extra=_extra(job, stored, "approval_decided"))
        request.run = self._store.get_run(stored.id)
