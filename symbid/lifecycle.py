"""The one owner of run state (DESIGN §5, ``docs/run-states.md``).

Every move of a run from one state to another goes through :class:`RunLifecycle`,
and always in the same order: the store first, then what the loop holds in
memory. If the store refuses (a locked or full database), memory is left as it
was and the move is tried again at the next pass, so nothing is lost and no job
is left counting a run that is not going.

What is held in memory is derived from the store's open rows: the runs waiting
for their start time (jitter, backoff, the claim-ahead), those waiting for a
place under the global limit, and those going. :meth:`RunLifecycle.recover`
rebuilds it from the store at start-up: that rebuild is the recovery.

The decisions themselves (what a finished run does to its job, whether a queued
run may start, what a restart does with a run that never started) are pure
functions in :mod:`symbid.planner`.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from symbid.approvals import ApprovalMoves
from symbid.audit import emit
from symbid.auth import actor_name
from symbid.clock import Clock
from symbid.config import SchedulerConfig
from symbid.errors import StorageFull, SymbidError, UnreadableRow
from symbid.launch import CancelRequest, DecisionRequest, Launcher, RecoveryReport
from symbid.metrics import Metrics
from symbid.model import Job, JobStatus, RunStatus, format_duration, format_instant
from symbid.planner import (
    audit_event,
    ended_with,
    finish_decision,
    job_end,
    policy_denied,
    start_due,
    start_gate,
)
from symbid.policy import Defer, Deny, PolicyGate, RequireApproval
from symbid.records import Run, RunOutcome, SessionContext
from symbid.recovery import plan_recovery
from symbid.sandbox import Spawned
from symbid.sessions import rebased
from symbid.startlog import StartLog
from symbid.store import Advance, Finish, Finished, JobStore, RetryClaim
from symbid.store.audit import AuditEvent

log = logging.getLogger(__name__)


@dataclass(order=True)
class _Queued:
    key: tuple[int, int, int]
    job: Job = field(compare=False)
    run: Run = field(compare=False)


def _extra(job: Job, run: Run, event: Optional[str] = None) -> dict[str, str]:
    extra = {"SYMBID_JOB": job.name, "SYMBID_RUN": run.id}
    if event:
        extra["SYMBID_EVENT"] = event
    return extra


class RunLifecycle(ApprovalMoves):
    """Run state: the store first, memory derived from it.

    Loop thread: everything but :meth:`report`, :meth:`add_manual`,
    :meth:`request_cancel`, :meth:`in_flight` and :meth:`queued`, which any thread may
    call.
    """

    def __init__(self, store: JobStore, launcher: Launcher, start_log: StartLog,
                 clock: Clock, metrics: Metrics, *, gate: PolicyGate) -> None:
        self._store = store
        self._launcher = launcher
        self._gate = gate
        self._start_log = start_log
        self._clock = clock
        self.metrics = metrics
        self._lock = threading.Lock()
        self._outcomes: list[RunOutcome] = []  # reported, not yet recorded
        self._manual: list[tuple[Job, Run]] = []  # stored, not yet queued
        self._waiting: list[_Queued] = []  # keyed by start time: not due yet
        self._ready: list[_Queued] = []  # keyed by slot: due, waiting for a place
        self._running: dict[str, tuple[Job, Run]] = {}
        self._per_job: dict[str, list[str]] = {}  # ids of the runs going, per job id
        # going, not yet stored running: started_at, pid, pgid, pid_start
        self._unmarked: dict[str, tuple[int, int, int, Optional[int]]] = {}
        self._moved: dict[str, tuple[int, int, Optional[int]]] = {}  # new process, to store
        self._cancels: list[CancelRequest] = []  # asked for, not yet acted on
        # going runs whose kill a cancel asked for, and by whom (the loop thread's own)
        self._cancelling: dict[str, str] = {}
        self._awaiting: dict[str, tuple[Job, Run]] = {}  # awaiting approval (in _per_job)
        self._decisions: list[DecisionRequest] = []  # approvers' decisions, not yet taken
        self._seq = 0

    # --- any thread ------------------------------------------------------------------
    def report(self, outcome: RunOutcome) -> None:
        """A started run ended (called by the executor, from its thread)."""
        with self._lock:
            self._outcomes.append(outcome)

    def moved(self, run_id: str, spawned: Spawned) -> None:
        """A running run has a new process (a heartbeat's next iteration; the executor's
        thread): recorded at the next pass."""
        with self._lock:
            if run_id in self._running:
                self._moved[run_id] = (spawned.pid, spawned.pgid, spawned.start_ticks)

    def add_manual(self, job: Job, run: Run) -> None:
        """A manual run is in the store: queue it."""
        with self._lock:
            self._manual.append((job, run))

    def has_news(self) -> bool:
        """Whether outcomes, manual runs or start records wait for the next pass."""
        with self._lock:
            return bool(self._outcomes or self._manual or self._unmarked or self._cancels
                        or self._moved or self._decisions)

    def request_cancel(self, run_id: str, by: str) -> CancelRequest:
        """Ask the loop to cancel a run; its answer sets the request's ``done``."""
        request = CancelRequest(run_id, by)
        with self._lock:
            self._cancels.append(request)
        return request

    def request_decision(self, request: DecisionRequest) -> DecisionRequest:
        """Ask the loop to approve or deny a run; its answer sets the request's ``done``."""
        with self._lock:
            self._decisions.append(request)
        return request

    def in_flight(self) -> int:
        with self._lock:
            return len(self._running)

    def queued(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._ready) + len(self._manual)

    # --- queueing ----------------------------------------------------------------------
    def _enqueue(self, job: Job, run: Run) -> None:
        with self._lock:
            self._seq += 1
            heapq.heappush(self._waiting, _Queued((start_due(run), run.slot, self._seq), job, run))

    def next_start(self) -> Optional[int]:
        """When the earliest queued run's start time (or approval deadline) comes."""
        with self._lock:
            times = [self._waiting[0].key[0]] if self._waiting else []
            times += [r.approval_deadline for _, r in self._awaiting.values()
                      if r.approval_deadline is not None]
            return min(times) if times else None

    def take_manual(self) -> None:
        with self._lock:
            manual, self._manual = self._manual, []
        for job, run in manual:
            self._enqueue(job, run)

    # --- pending: claims -----------------------------------------------------------------
    def claim(self, advances: Sequence[Advance], retries: Sequence[RetryClaim],
              jobs: dict[str, Job]) -> list[Run]:
        """Claim slots and retries (one transaction); the runs inserted pending are queued,
        and what the claim stored on the audit trail (a job stopped) is journaled."""
        claimed = self._store.claim(advances, retries)
        emit(claimed.audit)
        for run in claimed:
            self._enqueue(jobs[run.job_id], run)
        return claimed

    def postpone_retry(self, failed: Run, retry_at: Optional[int]) -> None:
        """Move a failed run's retry to ``retry_at`` (None: drop it)."""
        self._store.postpone_retry(failed.id, retry_at)

    # --- pending -> running, or dropped ------------------------------------------------
    def start_due(self, now: int, limit: int, approval_timeout: float) -> None:
        """Start queued runs whose time has come, in slot order, while fewer than
        ``limit`` runs are going, as the policy gate allows (``approval_timeout``: the
        default wait for an approver). A store error leaves every run where it was."""
        with self._lock:
            while self._waiting and self._waiting[0].key[0] <= now:
                q = heapq.heappop(self._waiting)
                q.key = (q.run.slot, q.key[2], 0)
                heapq.heappush(self._ready, q)
        blocked: list[_Queued] = []
        drops: list[tuple[_Queued, Optional[Job], Finish]] = []
        error: Optional[Exception] = None
        while True:
            with self._lock:
                if not self._ready or len(self._running) >= limit:
                    break
                q = heapq.heappop(self._ready)
            try:
                job = self._store.find_job(q.run.job_id)  # it may have changed while queued
            except UnreadableRow as exc:  # it can never start: end it, do not block the queue
                drops.append((q, None, Finish(run=q.run.replace(
                    status=RunStatus.CANCELLED, finished_at=now, error_message=exc.message),
                    counts=False)))
                continue
            except Exception as exc:
                with self._lock:
                    heapq.heappush(self._ready, q)
                error = exc
                break
            gate = start_gate(job, q.run, self._per_job.get(q.run.job_id, ()), q.job,
                              awaiting=self._awaiting)
            if gate.action == "wait":
                blocked.append(q)
            elif gate.action == "drop":
                if job is None:
                    log.info("run %s dropped: its job was deleted", q.run.id,
                             extra={"SYMBID_RUN": q.run.id})
                    continue
                assert gate.status is not None
                drops.append((q, job, job_end(job, q.run, gate.status, finished_at=now,
                                              error_message=gate.reason)))
            else:
                assert job is not None
                decision = self._gate.admit(job, now, approved=q.run.approved_by is not None)
                if isinstance(decision, Defer):  # decided at a later pass (it wakes the loop)
                    log.debug("job %s: run %s waits: %s", job.name, q.run.id, decision.reason)
                    blocked.append(q)
                elif isinstance(decision, Deny):
                    drops.append((q, job, policy_denied(job, q.run, now, decision.reason,
                                                        decision.condition)))
                elif isinstance(decision, RequireApproval):
                    try:
                        self._hold(job, q.run, decision, now, approval_timeout)
                    except Exception as exc:
                        with self._lock:
                            heapq.heappush(self._ready, q)
                        error = exc
                        break
                else:
                    try:
                        self._spawn(job, q.run)
                    except StorageFull as exc:  # not started: it waits for room
                        with self._lock:
                            heapq.heappush(self._ready, q)
                        error = exc
                        break
        with self._lock:
            for q in blocked:
                heapq.heappush(self._ready, q)
        if drops:
            try:
                self._finish([fin for _, _, fin in drops])
            except Exception as exc:
                with self._lock:
                    for q, _, _ in drops:
                        heapq.heappush(self._ready, q)
                error = error or exc
            else:
                for q, dropped, fin in drops:
                    name = dropped.name if dropped is not None else q.job.name
                    log.info("job %s: run %s %s: %s", name, q.run.id, fin.run.status.value,
                             fin.run.error_message,
                             extra={"SYMBID_JOB": name, "SYMBID_RUN": q.run.id})
                    if fin.run.status in (RunStatus.SKIPPED, RunStatus.DENIED):
                        self.metrics.run_finished(name, fin.run.status.value, None)
        if error is not None:
            raise error

    def _spawn(self, job: Job, run: Run) -> None:
        with self._lock:
            self._running[run.id] = (job, run)
            self._per_job.setdefault(job.id, []).append(run.id)
        try:
            spawned = self._launcher.start(job, run, lambda: self._start_log.mark(run.id))
        except StorageFull:
            # Its start could not be recorded, so nothing was spawned: it stays pending,
            # and starts when the disk has room again.
            with self._lock:
                self._running.pop(run.id, None)
                self._not_going(job.id, run.id)
            raise
        except Exception as exc:
            message = exc.message if isinstance(exc, SymbidError) else \
                f"internal error starting the run: {exc!r}"
            if not isinstance(exc, SymbidError):
                log.exception("job %s: run %s failed to start", job.name, run.id)
            log.error("job %s: run %s could not start: %s", job.name, run.id, message,
                      extra=_extra(job, run))
            # Recorded at the next pass like any outcome, so a store error cannot lose it.
            self.report(RunOutcome(run_id=run.id, job_id=job.id, status=RunStatus.FAILED,
                                   finished_at=self._clock.now(), error_message=message))
            return
        started_at = self._clock.now()
        with self._lock:
            if run.id in self._running:
                self._running[run.id] = (job, run.replace(
                    status=RunStatus.RUNNING, started_at=started_at, pid=spawned.pid,
                    pgid=spawned.pgid, pid_start=spawned.start_ticks))
                self._unmarked[run.id] = (started_at, spawned.pid, spawned.pgid,
                                          spawned.start_ticks)
        self.metrics.run_started((started_at - start_due(run)) / 1000)

    def _not_going(self, job_id: str, run_id: str) -> None:
        """The run no longer counts against its job's limit (under the lock)."""
        going = self._per_job.get(job_id, [])
        if run_id in going:
            going.remove(run_id)
        if not going:
            self._per_job.pop(job_id, None)

    def flush_starts(self) -> None:
        """Record the runs spawned this pass as running (one transaction); kept on error."""
        with self._lock:
            batch = [(rid, *marks) for rid, marks in self._unmarked.items()]
            moved = [(rid, *p) for rid, p in self._moved.items() if rid not in self._unmarked]
        if moved:  # a heartbeat's next iteration: the process recovery should look for
            self._store.mark_process(moved)
            with self._lock:
                for rid, *process in moved:
                    if tuple(process) == self._moved.get(rid):
                        del self._moved[rid]
        if not batch:
            return
        self._store.mark_started(batch)
        with self._lock:
            for rid, *_ in batch:
                self._unmarked.pop(rid, None)
        # Stored "running" says "may have started" from now on: the markers may go, so
        # a run that goes on for days does not keep the start log from turning over.
        self._start_log.settle(rid for rid, *_ in batch)

    def _finish(self, fins: Sequence[Finish]) -> Finished:
        """Store final states (their audit events in the same write), then journal the
        events the store recorded."""
        ended = self._store.finish(fins)
        emit(ended.audit)
        return ended

    # --- running -> final ----------------------------------------------------------------
    def record_outcomes(self, now: int, config: SchedulerConfig) -> int:
        """Record every reported outcome (one transaction); kept for the next pass on error.
        Returns how many were recorded."""
        with self._lock:
            done, self._outcomes = self._outcomes, []
            entries = [(o, self._running.get(o.run_id)) for o in done]
        decided: list[tuple[Job, Finish]] = []
        left: dict[str, SessionContext] = {}  # contexts this batch stores, by job
        try:
            for outcome, entry in entries:
                if entry is None:
                    log.warning("outcome for unknown run %s ignored", outcome.run_id)
                    continue
                job, run = entry
                fin = self._decide(job, run, outcome, now, config)
                by = self._cancelling.get(run.id)
                if by is not None and fin.run.status is RunStatus.CANCELLED:
                    fin = ended_with(fin, audit_event(job, fin.run, "RunCancelled", by))
                if outcome.context is not None:  # stored with the run's final state
                    left[job.id] = ctx = rebased(outcome.context, left.get(job.id) or
                                                 self._store.get_context(job.id))
                    fin = dataclasses.replace(fin, context=ctx)
                decided.append((job, fin))
            if not decided:
                return 0
            ended = self._finish([fin for _, fin in decided])
        except Exception:
            with self._lock:
                self._outcomes = done + self._outcomes
            raise
        with self._lock:
            for job, fin in decided:
                self._cancelling.pop(fin.run.id, None)
                self._running.pop(fin.run.id, None)
                self._unmarked.pop(fin.run.id, None)
                self._not_going(job.id, fin.run.id)
        self._start_log.settle(fin.run.id for _, fin in decided)
        for outcome in done:  # stored: a reader of the live output may now see the end
            self._launcher.release_output(outcome.run_id)
        for job, fin in decided:
            self._after_finish(job, fin, fin.run.id in ended, ended.names.get(fin.run.id))
            if fin.run.usage is not None:
                self.metrics.llm_used(job.agent_id, fin.run.usage)
        return len(decided)

    @staticmethod
    def _decide(job: Job, run: Run, outcome: RunOutcome, now: int,
                config: SchedulerConfig) -> Finish:
        """The planner's decision; if deciding fails (a bug, a value out of range), the
        run is still recorded, failed for good, instead of staying open for ever."""
        try:
            return finish_decision(job, run, outcome, now, config)
        except Exception as exc:
            log.exception("job %s: run %s: deciding its end failed", job.name, run.id)
            return job_end(job, run, RunStatus.FAILED, **{
                **outcome.run_fields(),
                "error_message": f"{outcome.status.value}; symbid could not decide what "
                f"follows ({type(exc).__name__}: {exc}); not retried"})

    def _after_finish(self, job: Job, fin: Finish, job_ended: bool,
                      name: Optional[str]) -> None:
        """``name``: the job's name now (None: the run was not recorded, its job deleted
        meanwhile): its series are counted under it, so a deleted or renamed job's
        series, gone with it, do not come back when a run of it ends."""
        run = fin.run
        seconds = run.execution_time_ms
        if name is not None:
            self.metrics.run_finished(name, run.status.value,
                                      None if seconds is None else seconds / 1000)
        extra = _extra(job, run)
        if run.retry_at is not None:
            log.info("job %s: attempt %d failed; retry in %s", job.name, run.attempt,
                     format_duration(max(0, run.retry_at - (run.finished_at or 0)) / 1000),
                     extra=extra)
        if job_ended and fin.job_status in (JobStatus.DEAD_LETTER, JobStatus.FAILED) \
                and run.status.is_failure:
            log.error(
                "job %s: %d attempt(s) of slot %s failed; job is now %s "
                "(fix it, then `symbi cron reset %s`)",
                job.name, run.attempt, format_instant(run.slot), fin.job_status.value, job.name,
                extra={**extra, "SYMBID_EVENT": "job_" + fin.job_status.value},
            )
            if fin.job_status is JobStatus.DEAD_LETTER:
                self.metrics.dead_lettered(job.name)

    # --- cancelled by an operator --------------------------------------------------------
    def take_cancels(self, now: int) -> None:
        """Act on the cancels asked for since the last pass, answering each."""
        with self._lock:
            cancels, self._cancels = self._cancels, []
        for request in cancels:
            try:
                self._cancel(request, now)
            except Exception as exc:
                request.error = exc
            request.done.set()

    def _unqueue(self, run_id: str) -> Optional[tuple[Job, Run]]:
        """Take a run that waits to start (or for approval) out of the queue (None: it is
        not queued)."""
        held = self._release_hold(run_id)
        if held is not None:
            return held
        with self._lock:
            for i, (job, run) in enumerate(self._manual):
                if run.id == run_id:
                    del self._manual[i]
                    return job, run
            for heap in (self._waiting, self._ready):
                for i, q in enumerate(heap):
                    if q.run.id == run_id:
                        heap[i] = heap[-1]
                        heap.pop()
                        heapq.heapify(heap)
                        return q.job, q.run
        return None

    def _cancel(self, request: CancelRequest, now: int) -> None:
        """A queued run is recorded cancelled without starting (store first: on a store
        error it is queued again); a going one has its process group killed; a pending
        run the loop does not hold (a graceful stop released it) is recorded cancelled."""
        run_id, by = request.run_id, request.by
        actor = actor_name(by)  # the audit trail's RunCancelled is by name
        with self._lock:
            going = self._running.get(run_id)
        if going is not None:
            request.outcome = "killing" if self._launcher.cancel(run_id, by) else "ended"
            request.run = going[1]
            if request.outcome == "killing":  # RunCancelled goes with its end's record
                self._cancelling[run_id] = actor
            log.info("job %s: run %s cancelled by %s; killing its process group",
                     going[0].name, run_id, by, extra=_extra(going[0], going[1],
                                                             "run_cancelled"))
            return
        self._check_canceller(run_id, actor)
        queued = self._unqueue(run_id)
        held = queued is not None
        if queued is None:
            stored = self._store.get_run(run_id)
            if not stored.status.is_open:
                request.outcome, request.run = "ended", stored
                return
            try:
                found = self._store.find_job(stored.job_id)
            except UnreadableRow:
                found = None
            if found is None:  # its job is gone, or cannot be read: the run still ends
                ended = stored.replace(status=RunStatus.CANCELLED, finished_at=now,
                                       error_message=f"cancelled by {by} before it started")
                self._finish([Finish(run=ended, counts=False, audit=(AuditEvent(
                    "RunCancelled", actor, stored.job_id, None, run_id,
                    {"status": ended.status.value, "trigger": ended.trigger.value}),))])
                request.outcome, request.run = "cancelled", self._store.get_run(run_id)
                return
            queued = (found, stored)
        job, run = queued
        try:
            current = self._store.find_job(job.id) or job
        except UnreadableRow:
            current = job
        fin = job_end(current, run, RunStatus.CANCELLED, finished_at=now,
                      error_message=f"cancelled by {by} before it started")
        fin = ended_with(fin, audit_event(current, fin.run, "RunCancelled", actor))
        try:
            self._finish([fin])
        except Exception:
            if held:
                self._enqueue(job, run)
            raise
        log.info("job %s: run %s cancelled by %s before it started", current.name, run_id, by,
                 extra=_extra(current, run, "run_cancelled"))
        request.outcome, request.run = "cancelled", self._store.get_run(run_id)

    # --- waits and the wall clock ------------------------------------------------------
    def shift_waits(self, step_ms: int, since: int) -> None:
        """The wall clock was stepped by ``step_ms`` (it read ``since`` before): waits still
        running keep their length. Stored deadlines first, then the queue."""
        self._store.shift_waits(step_ms, since)
        with self._lock:
            for q in self._waiting:
                nb = q.run.not_before
                if nb is not None and nb > since and q.run.slot <= since:
                    q.run = q.run.replace(not_before=nb + step_ms)
                    q.key = (nb + step_ms, q.key[1], q.key[2])
            heapq.heapify(self._waiting)
            for rid, (job, run) in self._awaiting.items():
                due = run.approval_deadline
                if due is not None and due > since:
                    self._awaiting[rid] = (job, run.replace(approval_deadline=due + step_ms))

    # --- stop and restart ----------------------------------------------------------------
    def release(self) -> int:
        """A graceful stop: forget the queued runs. They stay pending in the store, with no
        start marker, so the next start runs them."""
        with self._lock:
            count = len(self._waiting) + len(self._ready) + len(self._manual)
            self._waiting, self._ready, self._manual = [], [], []
        return count

    def kill_all(self, reason: str) -> int:
        return self._launcher.kill_all(reason)

    def recover(self, now: int, config: SchedulerConfig) -> RecoveryReport:
        """Start-up: rebuild the queue from the store's open rows (what becomes of each:
        :func:`symbid.recovery.plan_recovery`). The store first: the runs that end are
        recorded, then those that never started are queued again."""
        plan = plan_recovery(self._store, self._start_log, now, config,
                             run_uids=self._launcher.run_uids())
        if plan.finishes:
            self._finish(plan.finishes)
        with self._lock:
            for job, run in plan.awaiting:  # never started: they wait on, deadline and all
                self._awaiting[run.id] = (job, run)
                self._per_job.setdefault(job.id, []).append(run.id)
        for job, run in plan.resume:
            self._enqueue(job, run)
            log.info("job %s: run %s (slot %s) had not started when symbid stopped; it "
                     "starts now", job.name, run.id, format_instant(run.slot),
                     extra=_extra(job, run, "run_resumed"))
        self._start_log.reset()
        return plan.report
