"""CronScheduler: the loop that turns due slots into runs (DESIGN §5).

One thread. Each pass (:meth:`CronScheduler.tick`, public so tests can drive it
with an injected clock):

1. record runs that finished (one transaction), deciding retries, dead letters
   and one-shot completion;
2. claim every due slot (one transaction: insert the run rows, move
   ``next_run`` on), applying catch-up, per-job ``max_concurrent`` and jitter;
3. start claimed runs whose start time has come, in slot order, while the
   global ``max_concurrent_jobs`` allows; the rest wait, never dropped;
4. return when the next thing is due.

Between passes the thread sleeps on a native timer until that instant (capped
by ``tick_interval_seconds``); job changes, finished runs and wall-clock steps
wake it early.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Optional, Protocol

from symbid.clock import Clock
from symbid.config import SchedulerConfig
from symbid.errors import SymbidError
from symbid.metrics import Metrics
from symbid.model import (
    CatchUp,
    Job,
    JobStatus,
    Run,
    RunOutcome,
    RunStatus,
    Trigger,
    format_duration,
    format_instant,
    new_id,
)
from symbid.sandbox import Spawned, find_run_processes, kill_process_groups
from symbid.store import Advance, Finish, JobStore, RetryClaim
from symbid.timer import Waiter, Wake, make_waiter
from symbid.timing import Schedule, make_schedule

log = logging.getLogger(__name__)

_BATCH = 1000  # due jobs claimed per transaction
# Slots are claimed this long before they are due, so the claim's fsync is off
# the start path: the run then starts on a timer at its exact instant.
CLAIM_AHEAD_MS = 50
_ENUMERATION_FACTOR = 20  # missed slots walked before jumping ahead


class Launcher(Protocol):
    """What the loop needs from the executor."""

    def bind(self, sink: _Sink) -> None: ...

    def start(self, job: Job, run: Run) -> Spawned: ...

    def kill_all(self, reason: str) -> int: ...


class _Sink(Protocol):
    def run_finished(self, outcome: RunOutcome) -> None: ...


@dataclass(order=True)
class _Queued:
    key: tuple[int, int, int]
    job: Job = field(compare=False)
    run: Run = field(compare=False)


@dataclass(frozen=True)
class RecoveryReport:
    interrupted: int
    killed_groups: int
    rewound_jobs: int


class CronScheduler:
    """The scheduling loop. Thread-safe entry points: wake, run_now, run_finished, stop."""

    def __init__(
        self,
        store: JobStore,
        launcher: Launcher,
        clock: Clock,
        config: SchedulerConfig,
        *,
        waiter: Optional[Waiter] = None,
        rng: Optional[random.Random] = None,
        metrics: Optional[Metrics] = None,
    ) -> None:
        self._store = store
        self._launcher = launcher
        self._clock = clock
        self.config = config
        self._waiter = waiter if waiter is not None else make_waiter(clock)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._finished: list[RunOutcome] = []
        self._manual: list[tuple[Job, Run]] = []
        self._waiting: list[_Queued] = []  # claimed, start time not yet reached
        self._ready: list[_Queued] = []  # start time reached, waiting for capacity
        self._running: dict[str, tuple[Job, Run]] = {}
        self._per_job: dict[str, int] = {}  # started, unfinished runs per job id
        # Runs claimed ahead of their slot while their job was at max_concurrent:
        # whether they run is decided when they are due.
        self._check_at_start: set[str] = set()
        self._seq = 0
        self._more_due = False
        self._stop_requested = False
        self._stop_deadline: Optional[float] = None
        self._killed_for_stop = False
        self._thread: Optional[threading.Thread] = None
        self.last_progress = clock.monotonic()
        self.metrics = metrics if metrics is not None else Metrics(enabled=False)
        self.metrics.track_in_flight(self.in_flight)
        launcher.bind(self)

    # --- thread-safe entry points ----------------------------------------------------
    def wake(self) -> None:
        """Make the loop look at the store again now (a job was added or changed)."""
        self._waiter.wake()

    def run_finished(self, outcome: RunOutcome) -> None:
        with self._lock:
            self._finished.append(outcome)
        self._waiter.wake()

    def run_now(self, job_ref: str, input_text: Optional[str] = None) -> Run:
        """Queue a manual run of a job (any status); returns its pending record."""
        job = self._store.get_job(job_ref)
        now = self._clock.now()
        run = self._store.insert_run(
            Run(
                id=new_id(), job_id=job.id, slot=now, attempt=1, trigger=Trigger.MANUAL,
                status=RunStatus.PENDING, created_at=now, not_before=now,
                input=input_text if input_text is not None else job.input,
            )
        )
        with self._lock:
            self._manual.append((job, run))
        self._waiter.wake()
        return run

    def in_flight(self) -> int:
        """Runs started and not yet finished."""
        with self._lock:
            return len(self._running)

    def queued(self) -> int:
        """Runs claimed but not started (jitter, or the global limit)."""
        with self._lock:
            return len(self._waiting) + len(self._ready)

    # --- lifecycle -------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Start-up: runs a crash left open become ``interrupted`` (never re-run).

        Their leftover process groups, found by the run id in the processes'
        environment, are terminated first. Jobs whose last claimed slot lies in
        the future (the wall clock went back) are re-aimed.
        """
        now = self._clock.now()
        open_runs = self._store.open_runs()
        killed = 0
        if open_runs:
            groups = find_run_processes({r.id for r in open_runs})
            pgids = {g for gs in groups.values() for g in gs}
            if pgids:
                log.warning("terminating %d leftover process group(s) of interrupted runs",
                            len(pgids))
                kill_process_groups(pgids, self.config.kill_grace_seconds)
            killed = len(pgids)
            finishes = []
            for run in open_runs:
                job = self._store.find_job(run.job_id)
                was = run.status.value
                finishes.append(
                    Finish(
                        run=run.replace(
                            status=RunStatus.INTERRUPTED,
                            finished_at=now,
                            error_message=f"symbid stopped while this run was {was}; "
                            "it is not re-run",
                        ),
                        counts=run.status is RunStatus.RUNNING,
                        job_status=self._one_shot_end(job, run, RunStatus.INTERRUPTED),
                    )
                )
                log.warning(
                    "run %s of job %s was %s when symbid stopped: recorded interrupted",
                    run.id, job.name if job else run.job_id, was,
                    extra={"SYMBID_RUN": run.id, "SYMBID_EVENT": "run_interrupted"},
                )
            self._store.finish(finishes)
        rewound = self._rewind(now)
        return RecoveryReport(len(open_runs), killed, rewound)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="symbid-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Graceful stop: claim nothing more, let running runs finish for up to
        ``shutdown_timeout_seconds``, then kill their process groups (recorded
        ``interrupted``). Claimed runs that never started are recorded
        ``interrupted`` too."""
        grace = self.config.shutdown_timeout_seconds if timeout is None else timeout
        with self._lock:
            self._stop_requested = True
            self._stop_deadline = self._clock.monotonic() + grace
        self._waiter.wake()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        else:
            self._drain_stop()

    def _loop(self) -> None:
        while True:
            now = self._clock.now()
            try:
                wake_at = self.tick(now)
            except Exception:
                log.exception("scheduler pass failed; retrying in a second")
                wake_at = now + 1000
            self.last_progress = self._clock.monotonic()
            if self._stop_requested and self._stop_step():
                return
            if wake_at is not None and wake_at <= now:
                continue
            cap = self.config.tick_interval_seconds
            if self._stop_requested:
                cap = min(cap, 0.05)
            self.handle_wake(self._waiter.wait_until(wake_at, cap))

    def handle_wake(self, reason: Wake) -> None:
        """React to why the wait ended (the loop's cancel path for clock steps)."""
        if reason is Wake.CLOCK_SET:
            self.clock_was_set()

    def _stop_step(self) -> bool:
        """One step of a graceful stop; True when nothing is left running."""
        self._abandon_queued()
        with self._lock:
            running = len(self._running)
            finished = bool(self._finished)
        if running == 0 and not finished:
            return True
        deadline = self._stop_deadline or 0.0
        if not self._killed_for_stop and self._clock.monotonic() >= deadline:
            self._killed_for_stop = True
            n = self._launcher.kill_all("shutdown")
            log.warning("shutdown timeout reached: killing %d running run(s)", n)
        return False

    def _drain_stop(self) -> None:
        while True:
            self.tick(self._clock.now())
            if self._stop_step():
                return
            self._waiter.wait_until(None, 0.05)

    def clock_was_set(self) -> None:
        """The wall clock was stepped: re-aim jobs whose claimed slots now lie ahead."""
        now = self._clock.now()
        log.info("wall clock was set (now %s); recomputing the schedule", format_instant(now))
        self._rewind(now)

    # --- one pass ----------------------------------------------------------------------
    def tick(self, now: int) -> Optional[int]:
        """Do everything due at ``now``; return when the next thing is due (None: nothing)."""
        self._record_finished(now)
        with self._lock:
            stopping = self._stop_requested
        self._more_due = False
        if stopping:
            self._abandon_queued()
            return self._next_wake(now)
        with self._lock:
            manual, self._manual = self._manual, []
        for job, run in manual:
            self._enqueue(job, run)
        self._claim_due(now, now + CLAIM_AHEAD_MS)
        self._start_ready(now)
        return self._next_wake(now)

    def _next_wake(self, now: int) -> Optional[int]:
        with self._lock:
            if self._finished or self._manual or self._more_due:
                return now
        candidates = []
        if not self._stop_requested:
            due = self._store.next_due()
            if due is not None:
                candidates.append(due - CLAIM_AHEAD_MS)
        if self._waiting:
            candidates.append(self._waiting[0].key[0])
        return min(candidates) if candidates else None

    # --- finished runs ---------------------------------------------------------------
    def _one_shot_end(
        self, job: Optional[Job], run: Run, status: RunStatus
    ) -> Optional[JobStatus]:
        if job is None or not job.one_shot or run.trigger is Trigger.MANUAL:
            return None
        if status is RunStatus.SUCCEEDED:
            return JobStatus.COMPLETED
        return JobStatus.FAILED

    def _max_retries(self, job: Job) -> int:
        return job.max_retries if job.max_retries is not None else self.config.default_max_retries

    def _backoff_ms(self, attempt: int) -> int:
        base = self.config.retry_backoff_seconds * (2 ** max(0, attempt - 1))
        return int(min(base, self.config.retry_backoff_max_seconds) * 1000)

    def _record_finished(self, now: int) -> None:
        with self._lock:
            done, self._finished = self._finished, []
            entries = [(o, self._running.pop(o.run_id, None)) for o in done]
        decided: list[tuple[Job, Finish]] = []
        for outcome, entry in entries:
            if entry is None:
                log.warning("outcome for unknown run %s ignored", outcome.run_id)
                continue
            job, run = entry
            decided.append((job, self._decide(job, run, outcome, now)))
        try:
            self._store.finish([fin for _, fin in decided])
        except Exception:
            # Keep the outcomes: the next pass records them (a locked or full
            # database must not leave runs "running" for ever).
            with self._lock:
                self._finished = done + self._finished
                for outcome, entry in entries:
                    if entry is not None:
                        self._running[outcome.run_id] = entry
            raise
        with self._lock:
            for _, entry in entries:
                if entry is not None:
                    left = self._per_job.get(entry[0].id, 1) - 1
                    if left > 0:
                        self._per_job[entry[0].id] = left
                    else:
                        self._per_job.pop(entry[0].id, None)
        for job, fin in decided:
            seconds = fin.run.execution_time_ms
            self.metrics.run_finished(job.name, fin.run.status.value,
                                      None if seconds is None else seconds / 1000)
            if fin.job_status is JobStatus.DEAD_LETTER:
                self.metrics.dead_lettered(job.name)

    def _decide(self, job: Job, run: Run, outcome: RunOutcome, now: int) -> Finish:
        final = run.replace(
            status=outcome.status,
            finished_at=outcome.finished_at,
            execution_time_ms=outcome.execution_time_ms,
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            error_message=outcome.error_message,
            output=outcome.output,
            output_truncated=outcome.output_truncated,
        )
        extra = {"SYMBID_JOB": job.name, "SYMBID_RUN": run.id}
        job_status: Optional[JobStatus] = None
        clear = False
        if outcome.status.is_failure and run.trigger is not Trigger.MANUAL:
            if run.attempt <= self._max_retries(job):
                delay = self._backoff_ms(run.attempt)
                final = final.replace(retry_at=now + delay)
                log.info("job %s: attempt %d failed; retry in %s", job.name, run.attempt,
                         format_duration(delay / 1000), extra=extra)
            else:
                job_status = JobStatus.FAILED if job.one_shot else JobStatus.DEAD_LETTER
                clear = True
                log.error(
                    "job %s: %d attempt(s) of slot %s failed; job is now %s "
                    "(fix it, then `symbi cron reset %s`)",
                    job.name, run.attempt, format_instant(run.slot), job_status.value, job.name,
                    extra={**extra, "SYMBID_EVENT": "job_" + job_status.value},
                )
        elif outcome.status is RunStatus.SUCCEEDED or outcome.status is RunStatus.INTERRUPTED:
            job_status = self._one_shot_end(job, run, outcome.status)
        return Finish(run=final, counts=True, job_status=job_status, clear_retries=clear)

    # --- claiming --------------------------------------------------------------------
    def _claim_due(self, now: int, horizon: int) -> None:
        """Claim slots up to ``horizon`` (a little after ``now``)."""
        jobs = self._store.due_jobs(horizon, _BATCH)
        retries = self._store.due_retries(horizon, _BATCH)
        if not jobs and not retries:
            return
        self._more_due = len(jobs) == _BATCH or len(retries) == _BATCH
        open_counts = self._store.open_run_counts()
        snapshots: dict[str, Job] = {j.id: j for j in jobs}
        advances = [self._plan(job, now, horizon, open_counts) for job in jobs]
        retry_claims = []
        for failed in retries:
            job = snapshots.get(failed.job_id) or self._store.find_job(failed.job_id)
            if job is None:
                continue
            snapshots[job.id] = job
            if open_counts.get(job.id, 0) >= job.max_concurrent:
                # At the per-job limit: try again after one backoff step.
                self._store.postpone_retry(failed.id, now + self._backoff_ms(1))
                continue
            open_counts[job.id] = open_counts.get(job.id, 0) + 1
            assert failed.retry_at is not None
            retry_claims.append(
                RetryClaim(
                    failed_run_id=failed.id,
                    expect_retry_at=failed.retry_at,
                    run=Run(
                        id=new_id(), job_id=job.id, slot=failed.slot,
                        attempt=failed.attempt + 1, trigger=Trigger.RETRY,
                        status=RunStatus.PENDING, created_at=now,
                        not_before=max(now, failed.retry_at),
                        input=failed.input,
                    ),
                )
            )
        for run in self._store.claim(advances, retry_claims):
            self._enqueue(snapshots[run.job_id], run)
        for adv in advances:
            for run in adv.runs:
                if run.status is RunStatus.SKIPPED:
                    self.metrics.run_finished(snapshots[adv.job_id].name, "skipped", None)

    def _jitter_ms(self, job: Job) -> int:
        span = job.jitter_seconds if job.jitter_seconds is not None else \
            self.config.max_jitter_seconds
        return int(self._rng.uniform(0, span) * 1000) if span > 0 else 0

    def _plan(self, job: Job, now: int, horizon: int, open_counts: dict[str, int]) -> Advance:
        """Decide what happens to every slot of ``job`` up to ``horizon``."""
        assert job.next_run is not None
        try:
            schedule = make_schedule(job.cron_expr, job.at, job.timezone)
        except SymbidError as exc:
            log.error("job %s: schedule no longer valid (%s); moved to dead_letter",
                      job.name, exc.message, extra={"SYMBID_JOB": job.name})
            skipped = self._skipped(job, job.next_run, now, f"schedule invalid: {exc.message}")
            return Advance(job.id, job.version, None, job.next_run, (skipped,),
                           JobStatus.FAILED if job.one_shot else JobStatus.DEAD_LETTER)
        slots, omitted, next_run = self._due_slots(schedule, job.next_run, horizon)
        grace = int(self.config.misfire_grace_seconds * 1000)
        late = [s for s in slots if now - s > grace]
        timely = [s for s in slots if now - s <= grace]
        to_run: list[tuple[int, Trigger]] = [(s, Trigger.SCHEDULE) for s in timely]
        skips: list[tuple[int, str]] = []

        def missed(slot: int, why: str) -> str:
            late_by = format_duration(max(0, now - slot) // 1000)
            return f"missed by {late_by} ({why})"

        if job.catch_up is CatchUp.ALL:
            keep = late[-job.catch_up_limit:] if job.catch_up_limit > 0 else []
            skips += [(s, missed(s, f"beyond catch_up_limit={job.catch_up_limit}"))
                      for s in late[: len(late) - len(keep)]]
            to_run = [(s, Trigger.CATCH_UP) for s in keep] + to_run
        elif job.catch_up is CatchUp.LATEST:
            if timely:
                skips += [(s, missed(s, "catch_up=latest; a newer slot ran")) for s in late]
            elif late:
                to_run.insert(0, (late[-1], Trigger.CATCH_UP))
                skips += [(s, missed(s, "catch_up=latest; only the latest missed slot ran"))
                          for s in late[:-1]]
        else:
            skips += [(s, missed(s, "catch_up=skip")) for s in late]
        if omitted:
            log.warning(
                "job %s: %d+ further missed slots before %s are not recorded individually",
                job.name, omitted, format_instant(slots[0]), extra={"SYMBID_JOB": job.name},
            )

        runs: list[Run] = [self._skipped(job, s, now, why) for s, why in skips]
        open_now = open_counts.get(job.id, 0)
        started = 0
        for slot, trigger in sorted(to_run):
            # Catch-up runs queue behind each other (the start gate keeps them within
            # max_concurrent); a regular slot that finds the job at its limit is skipped,
            # or, when claimed ahead of its time, checked again when it is due.
            deferred = False
            if trigger is Trigger.SCHEDULE and open_now >= job.max_concurrent:
                if slot <= now:
                    runs.append(self._skipped(
                        job, slot, now,
                        f"max_concurrent reached ({open_now} of {job.max_concurrent} runs open)",
                    ))
                    continue
                deferred = True
            open_now += 1
            started += 1
            base = slot if trigger is Trigger.SCHEDULE else now
            run = Run(
                id=new_id(), job_id=job.id, slot=slot, attempt=1, trigger=trigger,
                status=RunStatus.PENDING, created_at=now,
                not_before=base + self._jitter_ms(job), input=job.input,
            )
            if deferred:
                self._check_at_start.add(run.id)
            runs.append(run)
        open_counts[job.id] = open_now
        status = None
        if job.one_shot and started == 0:
            status = JobStatus.FAILED
            log.warning("job %s: one-shot slot skipped; job is now failed", job.name,
                        extra={"SYMBID_JOB": job.name})
        last = slots[-1] if slots else job.last_run
        return Advance(job.id, job.version, next_run, last, tuple(runs), status)

    def _due_slots(
        self, schedule: Schedule, first: int, until: int
    ) -> tuple[list[int], int, Optional[int]]:
        """Slots from ``first`` up to ``until``: (newest ones kept, count omitted, next slot).

        At most ``keep_runs`` are returned; a very long outage is walked for a
        bounded number of steps and then jumped over.
        """
        cap = max(1, self.config.keep_runs)
        kept: deque[int] = deque(maxlen=cap)
        walked = 0
        omitted = 0
        slot: Optional[int] = first
        while slot is not None and slot <= until:
            kept.append(slot)
            walked += 1
            if walked >= cap * _ENUMERATION_FACTOR and len(kept) == cap:
                span = kept[-1] - kept[0]
                jump = schedule.next_after(until - span - 1)
                if jump is not None and jump > slot:
                    omitted += walked
                    walked = 0
                    kept.clear()
                    slot = jump
                    continue
            slot = schedule.next_after(slot)
        return list(kept), omitted, slot

    def _skipped(self, job: Job, slot: int, now: int, reason: str) -> Run:
        return Run(
            id=new_id(), job_id=job.id, slot=slot, attempt=1, trigger=Trigger.SCHEDULE,
            status=RunStatus.SKIPPED, created_at=now, finished_at=now, error_message=reason,
        )

    # --- starting ----------------------------------------------------------------------
    def _enqueue(self, job: Job, run: Run) -> None:
        self._seq += 1
        start = run.not_before if run.not_before is not None else run.slot
        with self._lock:
            heapq.heappush(self._waiting, _Queued((start, run.slot, self._seq), job, run))

    def _abandon_queued(self) -> None:
        with self._lock:
            queued = [(q.job, q.run) for q in self._waiting + self._ready]
            queued += self._manual
            self._waiting, self._ready, self._manual = [], [], []
        if not queued:
            return
        now = self._clock.now()
        self._store.finish([
            Finish(
                run=run.replace(status=RunStatus.INTERRUPTED, finished_at=now,
                                error_message="symbid stopped before the run started"),
                counts=False,
                job_status=self._one_shot_end(job, run, RunStatus.INTERRUPTED),
            )
            for job, run in queued
        ])

    def _start_ready(self, now: int) -> None:
        """Start ready runs in slot order while the global limit allows.

        A catch-up run also waits while its job has ``max_concurrent`` runs
        going, so ``catch_up = "all"`` works through missed slots in turn.
        """
        with self._lock:
            while self._waiting and self._waiting[0].key[0] <= now:
                q = heapq.heappop(self._waiting)
                q.key = (q.run.slot, q.key[2], 0)
                heapq.heappush(self._ready, q)
        started: list[tuple[str, int, int, int]] = []
        failed: list[RunOutcome] = []
        blocked: list[_Queued] = []
        limit = self.config.max_concurrent_jobs
        dropped: list[Finish] = []
        while True:
            with self._lock:
                if not self._ready or len(self._running) >= limit:
                    break
                q = heapq.heappop(self._ready)
                busy = self._per_job.get(q.job.id, 0) >= q.job.max_concurrent
                if q.run.trigger is Trigger.CATCH_UP and busy:
                    blocked.append(q)
                    continue
            check_busy = q.run.id in self._check_at_start
            self._check_at_start.discard(q.run.id)
            # The job may have changed while its run waited (jitter, the global limit).
            job = self._store.find_job(q.job.id)
            if job is None:
                log.info("run %s dropped: its job was deleted", q.run.id,
                         extra={"SYMBID_RUN": q.run.id})
                continue
            reason, status = None, RunStatus.CANCELLED
            if job.status is not JobStatus.ACTIVE and q.run.trigger is not Trigger.MANUAL:
                reason = f"job became {job.status.value} before the run started"
            elif check_busy and busy:
                reason = (f"max_concurrent reached ({self._per_job.get(job.id, 0)} of "
                          f"{job.max_concurrent} runs going)")
                status = RunStatus.SKIPPED
            if reason is not None:
                dropped.append(Finish(
                    run=q.run.replace(status=status, finished_at=now, error_message=reason),
                    counts=False, job_status=self._one_shot_end(job, q.run, status)))
                continue
            with self._lock:
                self._running[q.run.id] = (job, q.run)
                self._per_job[job.id] = self._per_job.get(job.id, 0) + 1
            try:
                spawned = self._launcher.start(job, q.run)
            except Exception as exc:
                message = exc.message if isinstance(exc, SymbidError) else \
                    f"internal error starting the run: {exc!r}"
                if not isinstance(exc, SymbidError):
                    log.exception("job %s: run %s failed to start", job.name, q.run.id)
                log.error("job %s: run %s could not start: %s", job.name, q.run.id,
                          message, extra={"SYMBID_JOB": job.name, "SYMBID_RUN": q.run.id})
                failed.append(RunOutcome(
                    run_id=q.run.id, job_id=job.id, status=RunStatus.FAILED,
                    finished_at=self._clock.now(), error_message=message,
                ))
                continue
            started_at = self._clock.now()
            started.append((q.run.id, started_at, spawned.pid, spawned.pgid))
            due = q.run.not_before if q.run.not_before is not None else q.run.slot
            self.metrics.run_started((started_at - due) / 1000)
        if dropped:
            self._store.finish(dropped)
        with self._lock:
            for q in blocked:
                heapq.heappush(self._ready, q)
            self._finished.extend(failed)
        self._store.mark_started(started)

    # --- clock steps -------------------------------------------------------------------
    def _rewind(self, now: int) -> int:
        """Re-aim active jobs whose last claimed slot is after ``now``.

        Their next slot becomes the first one from ``now`` on; slots already
        claimed are never claimed twice (the store's unique slot key).
        """
        advances = []
        for job in self._store.jobs_claimed_after(now):
            try:
                schedule = make_schedule(job.cron_expr, job.at, job.timezone)
            except SymbidError:
                continue
            nxt = schedule.next_after(now - 1)
            if nxt is not None and (job.next_run is None or nxt < job.next_run):
                advances.append(Advance(job.id, job.version, nxt, None))
                log.warning(
                    "job %s: wall clock is before its last slot %s; next slot now %s",
                    job.name, format_instant(job.last_run or 0), format_instant(nxt),
                    extra={"SYMBID_JOB": job.name},
                )
        self._store.claim(advances, ())
        return len(advances)

