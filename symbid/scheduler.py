"""CronScheduler: the loop that turns due slots into runs (DESIGN §5).

One thread. Each pass (:meth:`CronScheduler.tick`, public so tests can drive it
with an injected clock):

1. record runs that finished (retries, dead letters, one-shot ends);
2. claim every due slot and retry, as the planner decides (one transaction);
3. start queued runs whose start time has come, in slot order, while the global
   ``max_concurrent_jobs`` allows; the rest wait, never dropped;
4. return when the next thing is due.

Between passes the thread sleeps on a native timer until that instant (capped
by ``tick_interval_seconds``); job changes, finished runs and wall-clock steps
wake it early. Run state itself is owned by :class:`symbid.lifecycle.RunLifecycle`
and every decision is made by :mod:`symbid.planner`; this module only sequences
them, keeps time, and reports its health.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Callable, Optional

from symbid.audit import emit
from symbid.clock import Clock
from symbid.config import SchedulerConfig
from symbid.errors import StorageFull, SymbidError, Unavailable, UnreadableRow
from symbid.launch import CancelRequest, DecisionRequest, Launcher, RecoveryReport
from symbid.lifecycle import RunLifecycle
from symbid.metrics import Metrics
from symbid.model import Job, RunStatus, Trigger, format_instant, new_id
from symbid.planner import CLAIM_AHEAD_MS, backoff_ms, plan_job, plan_retry
from symbid.policy import PolicyGate
from symbid.records import Run, RunOutcome
from symbid.sandbox import Spawned
from symbid.spans import first_free_slot
from symbid.startlog import StartLog
from symbid.store import Advance, JobStore, RetryClaim
from symbid.store.audit import Act
from symbid.timer import Waiter, Wake, make_waiter
from symbid.timing import make_schedule

log = logging.getLogger(__name__)

_BATCH = 1000  # due jobs claimed per transaction
ROOM_RECHECK_S = 5.0  # on a full disk, how often health tries a write again
_STEP_NOISE_MS = 10  # wall/monotonic offset changes smaller than this are not steps
# An offset change this large between two wakes is a step even if the timer did not
# report it (NTP slews at most 0.5 ms/s, and waits are capped by tick_interval_seconds).
_UNSEEN_STEP_MS = 1000
_REPEAT_LOG_SECONDS = 60.0  # a pass failing the same way is logged again after this
_STOP_RECORD_SECONDS = 5.0  # after the kill grace: how long a stop tries to record outcomes
_CANCEL_ANSWER_SECONDS = 10.0  # how long a cancel waits for the loop's answer

__all__ = ["CLAIM_AHEAD_MS", "CancelRequest", "CronScheduler", "Launcher", "RecoveryReport"]


class CronScheduler:
    """The scheduling loop. Thread-safe entry points: wake, run_now, run_finished, stop,
    in_flight, queued, health."""

    def __init__(
        self,
        store: JobStore,
        launcher: Launcher,
        clock: Clock,
        config: SchedulerConfig,
        *,
        start_log: StartLog,
        waiter: Optional[Waiter] = None,
        rng: Optional[random.Random] = None,
        metrics: Optional[Metrics] = None,
        gate: PolicyGate,
    ) -> None:
        self._store = store
        self._clock = clock
        self.config = config
        self._waiter = waiter if waiter is not None else make_waiter(clock)
        self._rng = rng or random.Random()
        self.metrics = metrics if metrics is not None else Metrics(enabled=False)
        self.runs = RunLifecycle(store, launcher, start_log, clock, self.metrics, gate=gate)
        self._more_due = False
        self.on_recorded: Optional[Callable[[], None]] = None  # runs' final states stored
        self._stop_requested = False
        self._stop_deadline: Optional[float] = None
        self._killed_for_stop = False
        self._thread: Optional[threading.Thread] = None
        # The watchdog follows passes (any outcome); health follows their results.
        self.last_pass = clock.monotonic()
        self.last_error: Optional[str] = None
        self._last_pass_full = False  # the last pass failed for want of room on disk
        self._room_checked = clock.monotonic()  # when a full disk was last tried again
        self._logged_error: tuple[Optional[str], float] = (None, 0.0)
        self._offset = self._wall_offset()
        self._clock_pending = False
        self.metrics.track_in_flight(self.in_flight)
        launcher.bind(self)

    # --- thread-safe entry points ----------------------------------------------------
    def wake(self) -> None:
        """Make the loop look at the store again now (a job was added or changed)."""
        self._waiter.wake()

    def run_finished(self, outcome: RunOutcome) -> None:
        self.runs.report(outcome)
        self._waiter.wake()

    def process_started(self, run_id: str, spawned: Spawned) -> None:
        self.runs.moved(run_id, spawned)  # stored at the next pass

    def run_now(self, job_ref: str, input_text: Optional[str] = None, *,
                actor: str, event: str = "CronJobTriggered") -> Run:
        """Queue a manual run of a job (any status) for ``actor``; returns its pending
        record.

        It is stored first, in the manual key space: it can never take the key of a
        scheduled slot, and a restart before it starts still runs it. The same
        transaction puts ``event`` (CronJobTriggered, or AgentRunAdHoc for ``symbi
        run``) on the audit trail.
        """
        job = self._store.get_job(job_ref)
        now = self._clock.now()
        act = Act(event, actor, now)
        run = self._store.insert_run(
            Run(
                id=new_id(), job_id=job.id, slot=now, attempt=1, trigger=Trigger.MANUAL,
                status=RunStatus.PENDING, created_at=now, not_before=now,
                input=input_text if input_text is not None else job.input,
            ), act)
        emit([act.about(job.id, job.name, run.id)])
        self.runs.add_manual(job, run)
        self._waiter.wake()
        return run

    def cancel_run(self, run_id: str, by: str, timeout: float = _CANCEL_ANSWER_SECONDS
                   ) -> CancelRequest:
        """Cancel a run for ``by`` (see RunLifecycle._cancel); the loop thread acts on it
        and answers. Raises Unavailable when it does not answer within ``timeout``
        seconds (the cancel stays asked for), NotFound for an unknown run."""
        request = self.runs.request_cancel(run_id, by)
        self._answered(request.done, lambda: request.error, f"the cancel of run {run_id}",
                       timeout)
        return request

    def _answered(self, done: threading.Event, error: Callable[[], Optional[Exception]],
                  what: str, timeout: float) -> None:
        """Wake the loop for a request it answers, wait for the answer, raise its error
        (Unavailable when the loop does not answer within ``timeout``)."""
        self._waiter.wake()
        if not done.wait(timeout):
            raise Unavailable(f"the scheduler loop did not take {what} within {timeout:g} s; "
                              "it is still asked for, and acted on when the loop gets to it")
        failed = error()
        if failed is not None:
            raise failed

    def decide_run(self, run_id: str, by: str, *, approve: bool, note: Optional[str] = None,
                   timeout: float = _CANCEL_ANSWER_SECONDS) -> Run:
        """Approve or deny a run awaiting approval for ``by``; the loop thread decides and
        answers (Forbidden for one who is not an approver, Conflict for a run that does
        not await approval, NotFound for an unknown run; Unavailable past ``timeout``)."""
        request = self.runs.request_decision(DecisionRequest(run_id, by, approve, note))
        self._answered(request.done, lambda: request.error, f"the decision on run {run_id}",
                       timeout)
        assert request.run is not None
        return request.run

    def in_flight(self) -> int:
        """Runs started and not yet finished."""
        return self.runs.in_flight()

    def queued(self) -> int:
        """Runs claimed but not started (jitter, the claim-ahead, or the global limit)."""
        return self.runs.queued()

    def health(self, within: float) -> tuple[str, Optional[str]]:
        """("healthy" | "degraded" | "unhealthy", the error). Unhealthy: no pass for
        ``within`` seconds, or the disk of the state directory is full (the last pass
        or the last write failed for want of room: nothing new can be recorded).
        Degraded: the last pass failed otherwise."""
        age = self._clock.monotonic() - self.last_pass
        if age > within:
            return "unhealthy", f"the scheduler loop has made no pass for {age:.0f} s"
        error = self.last_error
        full = self._store.storage_full()
        if full is not None and self._clock.monotonic() - self._room_checked >= ROOM_RECHECK_S:
            # Nothing else may write for a while (hourly jobs, an operator's POST that got
            # 507): try once more now and then, so that health follows the disk.
            self._room_checked = self._clock.monotonic()
            full = self._store.recheck_room()
        if full is not None or (self._last_pass_full and error is not None):
            return "unhealthy", full or error
        if error is not None:
            return "degraded", error
        return "healthy", None

    # --- lifecycle -------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Start-up: rebuild the run queue from the store (see RunLifecycle.recover), then
        re-aim jobs whose claimed slots lie ahead of the wall clock."""
        now = self._clock.now()
        report = self.runs.recover(now, self.config)
        self._rewind(now)
        self._offset = self._wall_offset()
        return report

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="symbid-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Graceful stop: claim and start nothing more, let running runs finish for up to
        ``shutdown_timeout_seconds``, then kill their process groups (recorded
        ``interrupted``). Runs claimed but not started stay pending: the next start
        runs them."""
        grace = self.config.shutdown_timeout_seconds if timeout is None else timeout
        self._stop_deadline = self._clock.monotonic() + grace
        self._stop_requested = True
        self._waiter.wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        else:
            self._drain_stop()

    def _loop(self) -> None:
        while True:
            now = self._clock.now()
            wake_at = self.pass_once(now)
            if self._stop_requested and self._stop_step():
                return
            if wake_at is not None and wake_at <= now:
                self.check_clock()  # a busy loop does not wait, so it looks for steps here
                continue
            cap = self.config.tick_interval_seconds
            if self._stop_requested:
                cap = min(cap, 0.05)
            self.handle_wake(self._waiter.wait_until(wake_at, cap))

    def pass_once(self, now: int) -> Optional[int]:
        """One pass with its health kept: a failing pass degrades health (and is retried
        a second later); it never stops the loop."""
        try:
            wake_at = self.tick(now)
        except Exception as exc:
            self._pass_failed(exc)
            wake_at = now + 1000
        else:
            self.last_error = None
            self._last_pass_full = False
        self.last_pass = self._clock.monotonic()
        return wake_at

    def _pass_failed(self, exc: Exception) -> None:
        text = exc.message if isinstance(exc, SymbidError) else f"{type(exc).__name__}: {exc}"
        self.last_error = text
        self._last_pass_full = isinstance(exc, StorageFull)
        last, when = self._logged_error
        mono = self._clock.monotonic()
        if text != last or mono - when >= _REPEAT_LOG_SECONDS:
            self._logged_error = (text, mono)
            if isinstance(exc, SymbidError):
                log.error("scheduler pass failed: %s; retrying every second", text)
            else:
                log.exception("scheduler pass failed; retrying every second")

    def handle_wake(self, reason: Wake) -> None:
        """React to why the wait ended (the timer's cancel path reports clock steps)."""
        if reason is Wake.CLOCK_SET:
            self._clock_pending = True
        self.check_clock()

    def check_clock(self) -> None:
        """Handle a clock step: one the timer reported, one whose handling failed before,
        or one it could not see (made while no wait was armed), which shows as a jump in
        the wall clock's offset from the monotonic clock."""
        drift = self._wall_offset() - self._offset
        if self._clock_pending or abs(drift) >= _UNSEEN_STEP_MS:
            self._clock_pending = True
            try:
                self.clock_was_set()
            except Exception as exc:  # still pending: handled again at the next wake
                self._pass_failed(exc)
        else:
            self._offset += drift  # slewing (NTP) is not a step

    def _stop_step(self) -> bool:
        """One step of a graceful stop; True when nothing is left running (or when what is
        left cannot be recorded: the next start records those runs interrupted)."""
        self.runs.release()
        if self.runs.in_flight() == 0 and not self.runs.has_news():
            return True
        deadline = self._stop_deadline or 0.0
        mono = self._clock.monotonic()
        if not self._killed_for_stop and mono >= deadline:
            self._killed_for_stop = True
            n = self.runs.kill_all("shutdown")
            log.warning("shutdown timeout reached: killing %d running run(s)", n)
        if self._killed_for_stop and mono >= deadline + self.config.kill_grace_seconds + \
                _STOP_RECORD_SECONDS:
            log.error("stopping without recording %d run(s) (%s): the next start records "
                      "them interrupted", self.runs.in_flight(),
                      self.last_error or "their processes did not end")
            return True
        return False

    def _drain_stop(self) -> None:
        while True:
            self.pass_once(self._clock.now())
            if self._stop_step():
                return
            self._waiter.wait_until(None, 0.05)

    # --- the wall clock ---------------------------------------------------------------
    def _wall_offset(self) -> int:
        return self._clock.now() - round(self._clock.monotonic() * 1000)

    def clock_was_set(self) -> None:
        """The wall clock was stepped: waits keep their length, slots stay wall-clock
        instants, and jobs whose claimed slots now lie ahead are re-aimed."""
        now = self._clock.now()
        offset = self._wall_offset()
        step = offset - self._offset
        log.info("wall clock was set (now %s, a step of %+.3f s); recomputing the schedule",
                 format_instant(now), step / 1000)
        if abs(step) >= _STEP_NOISE_MS:
            self.runs.shift_waits(step, now - step)
        self._offset = offset  # only once the waits have moved: the step is consumed
        self._rewind(now)
        self._clock_pending = False  # a failed rewind is tried again at the next wake

    def _rewind(self, now: int) -> int:
        """Re-aim active jobs whose high-water mark is after ``now`` at their first slot
        from ``now`` on that no claimed span holds (a claimed slot is never claimed
        again)."""
        advances = []
        for job in self._store.jobs_claimed_after(now):
            try:
                schedule = make_schedule(job.cron_expr, job.at, job.timezone)
            except SymbidError:
                continue
            nxt = first_free_slot(schedule, now - 1, job.claimed)
            if nxt is not None and (job.next_run is None or nxt < job.next_run):
                advances.append(Advance(job.id, job.version, nxt))
                log.warning(
                    "job %s: wall clock is before its last claimed slot %s; next slot now %s",
                    job.name, format_instant(job.claimed_through or 0), format_instant(nxt),
                    extra={"SYMBID_JOB": job.name},
                )
            elif (job.claimed_through or 0) - now > self.config.misfire_grace_seconds * 1000:
                # The slots up to its high-water mark were claimed while the clock was
                # ahead; they are never claimed again, so the job waits for the clock.
                log.warning(
                    "job %s: its slots up to %s were claimed while the wall clock was ahead "
                    "(now %s); they are not claimed again, so it next runs at %s",
                    job.name, format_instant(job.claimed_through or 0), format_instant(now),
                    format_instant(job.next_run) if job.next_run is not None else "never",
                    extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "clock_behind_claims"},
                )
        self._store.claim(advances, ())
        return len(advances)

    # --- one pass ----------------------------------------------------------------------
    def tick(self, now: int) -> Optional[int]:
        """Do everything due at ``now``; return when the next thing is due (None: nothing)."""
        if self.runs.record_outcomes(now, self.config) and self.on_recorded is not None:
            self.on_recorded()  # outbox rows may have been written with them
        self.runs.take_cancels(now)
        self.runs.take_decisions(now)
        self._more_due = False
        if self._stop_requested:
            self.runs.release()
            self.runs.flush_starts()
            return self._next_wake(now)
        self.runs.take_manual()
        self._claim_due(now, now + CLAIM_AHEAD_MS)
        try:
            self.runs.start_due(now, self.config.max_concurrent_jobs,
                                self.config.approval_timeout_seconds)
        finally:
            self.runs.flush_starts()
        return self._next_wake(now)

    def _next_wake(self, now: int) -> Optional[int]:
        if self.runs.has_news() or self._more_due:
            return now
        candidates = []
        if not self._stop_requested:
            due = self._store.next_due()
            if due is not None:
                candidates.append(due - CLAIM_AHEAD_MS)
            start = self.runs.next_start()
            if start is not None:
                candidates.append(start)
        return min(candidates) if candidates else None

    def _claim_due(self, now: int, horizon: int) -> None:
        """Claim slots and retries up to ``horizon`` (a little after ``now``)."""
        jobs = self._store.due_jobs(horizon, _BATCH)
        retries = self._store.due_retries(horizon, _BATCH)
        if not jobs and not retries:
            return
        self._more_due = len(jobs) == _BATCH or len(retries) == _BATCH
        holding = self._store.open_runs_by_job()
        snapshots: dict[str, Job] = {j.id: j for j in jobs}
        advances = []
        for job in jobs:
            adv = plan_job(job, now, horizon, holding.get(job.id, ()), config=self.config,
                           rng=self._rng)
            holding.setdefault(job.id, []).extend(
                (r.id, r.status.value) for r in adv.runs if r.status is RunStatus.PENDING)
            advances.append(adv)
        retry_claims = []
        for failed in retries:
            try:
                found = snapshots.get(failed.job_id) or self._store.find_job(failed.job_id)
            except UnreadableRow as exc:  # it can never be retried; the other jobs go on
                log.error("%s; the retry of run %s is dropped", exc.message, failed.id)
                self.runs.postpone_retry(failed, None)
                continue
            if found is None:
                continue
            snapshots[found.id] = found
            run = plan_retry(failed, found, len(holding.get(found.id, ())), now)
            if run is None:  # at the per-job limit: try again after one backoff step
                self.runs.postpone_retry(failed, now + backoff_ms(1, self.config))
                continue
            holding.setdefault(found.id, []).append((run.id, run.status.value))
            assert failed.retry_at is not None
            retry_claims.append(RetryClaim(failed.id, failed.retry_at, run))
        self.runs.claim(advances, retry_claims, snapshots)
        for adv in advances:
            for r in adv.runs:
                if r.status is RunStatus.SKIPPED:
                    self.metrics.run_finished(snapshots[adv.job_id].name, "skipped", None)
