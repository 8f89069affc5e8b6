"""The delivery workers (DESIGN §6 step 5): they take the outbox's due rows off the
scheduler's thread and attempt each channel, leaving a receipt per attempt.

- A thread waits for the next due row (or a wake-up after a pass that finished runs)
  and hands due rows to a pool of ``workers`` threads; the scheduler loop never waits
  on a network call.
- Each attempt's receipt is stored with the row. A row is ``delivered`` on success,
  ``failed`` when the channel says retrying cannot help or its attempts
  (``1 + [scheduler.delivery] webhook_retry_attempts``) run out, else due again after an
  exponential backoff with jitter (or the ``Retry-After`` the receiver asked for).
- Delivery is at least once: a row attempted when the daemon dies is attempted again
  after the restart, with the same delivery id.
- A failed delivery never fails its run; the run's ``delivery_status`` shows it.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Mapping
from typing import Any, Callable, Optional, Protocol

from symbid.clock import Clock
from symbid.config import DeliverySettings
from symbid.errors import NotFound
from symbid.metrics import Metrics
from symbid.model import Job, format_duration, format_instant
from symbid.records import Run
from symbid.store import JobStore
from symbid.store.deliveries import DELIVERED, FAILED, PENDING, AlertRequest, Delivery
from symbid.text import escape

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # the longest the thread sleeps without looking at the outbox
BATCH = 100  # rows taken per look
MAX_BACKOFF_SECONDS = 3600.0


class Receipt(Protocol):
    """What an attempt answers (:class:`symbid.delivery.base.Receipt`)."""

    @property
    def ok(self) -> bool: ...

    @property
    def permanent(self) -> bool: ...

    @property
    def retry_after(self) -> Optional[float]: ...

    def to_dict(self) -> dict[str, Any]: ...


Send = Callable[[Delivery, Job, Optional[Run]], Receipt]  # no run: an alert about the job
# Where a delivery goes, for the cap on attempts at one place at once: a webhook's host,
# else its channel (one Slack API, one SMTP server, one command).
Endpoint = Callable[[Delivery, Job], str]
DEAD_MAN_SECONDS = 10.0  # how often the dead man's switch looks (by the injected clock)


def by_channel(delivery: Delivery, job: Job) -> str:
    """The endpoint of a delivery when nothing finer is known: its channel."""
    return delivery.channel


def backoff_ms(attempts: int, base: float, rng: random.Random) -> int:
    """The wait after ``attempts`` failed attempts: base * 2**(attempts-1), capped at an
    hour, with ±20 % jitter so that many rows failing together do not retry together."""
    seconds = min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempts - 1))
    return int(seconds * 1000 * rng.uniform(0.8, 1.2))


class DeliveryWorker:
    """Attempts the outbox's rows; ``max_attempts`` and ``backoff`` may change on reload."""

    def __init__(self, store: JobStore, clock: Clock, send: Send, *, workers: int = 4,
                 max_attempts: int = 4, backoff: float = 2.0,
                 metrics: Optional[Metrics] = None,
                 rng: Optional[random.Random] = None, endpoint: Endpoint = by_channel) -> None:
        self._store = store
        self._clock = clock
        self._send = send
        self._endpoint = endpoint
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._metrics = metrics if metrics is not None else Metrics(enabled=False)
        self._rng = rng or random.Random()
        self._lock = threading.Condition()
        self.workers = workers  # threads attempting deliveries (fixed at start)
        self._queue: queue.SimpleQueue[Optional[Delivery]] = queue.SimpleQueue()
        self._closed = False  # stopped: an attempt that ends now writes nothing
        # a row whose attempt failed unexpectedly (its receipt could not be written):
        # delivery id -> not before (epoch ms), so it is not sent again at once
        self._cooling: dict[str, int] = {}
        for i in range(workers):  # daemon threads: a hung attempt never holds up exit
            threading.Thread(target=self._work, name=f"delivery-{i}", daemon=True).start()
        # attempts handed to the pool: delivery id -> (job id, channel, endpoint)
        self._in_flight: dict[str, tuple[str, str, str]] = {}
        self._woken = False
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._dead_man_at = 0  # when the dead man's switch looks next (epoch ms)

    def configure(self, settings: DeliverySettings) -> None:
        """``[scheduler.delivery]``'s attempts and backoff (at start and on reload)."""
        self.max_attempts = 1 + settings.webhook_retry_attempts
        self.backoff = settings.backoff_seconds

    # --- the thread ------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Rows may have been written (a pass finished runs): look now."""
        with self._lock:
            self._woken = True
            self._lock.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """No new attempts; those going get ``timeout`` seconds to write their receipts.
        One that ends later writes nothing: its row stays pending and is attempted again
        after the restart (at least once)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        for _ in range(self.workers):
            self._queue.put(None)
        with self._lock:
            self._lock.wait_for(lambda: not self._in_flight, timeout)
            self._closed = True

    def _work(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            self._attempt(delivery)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            try:
                due = self.tick(self._clock.now())
            except Exception:
                log.exception("the delivery outbox could not be read; trying again")
                due = None
            wait = POLL_SECONDS if due is None else \
                max(0.0, min(POLL_SECONDS, (due - self._clock.now()) / 1000))
            with self._lock:
                if not self._woken and not self._stopping:
                    self._lock.wait(wait)
                self._woken = False

    # --- one look ---------------------------------------------------------------------
    def tick(self, now: int) -> Optional[int]:
        """Hand every due row to the pool; the next due time (epoch ms) or None."""
        if now >= self._dead_man_at:
            self._dead_man_at = now + int(DEAD_MAN_SECONDS * 1000)
            self.check_dead_man(now)
        with self._lock:
            self._cooling = {k: v for k, v in self._cooling.items() if v > now}
            skip = [*self._in_flight, *self._cooling]
        held_back = False
        places: dict[tuple[str, str], str] = {}  # (job id, channel): its endpoint
        for delivery in self._store.due_deliveries(now, BATCH, skip):
            key = (delivery.job_id, delivery.channel)
            if key not in places:
                places[key] = self._place(delivery)
            place = places[key]
            with self._lock:
                if self._stopping or delivery.id in self._in_flight:
                    continue
                # One attempt at a time per job and channel (a hung endpoint holds one
                # worker, and a job's deliveries keep their order); no endpoint takes
                # every worker (one that hangs, shared by many jobs, leaves room for the
                # others); and no more at once than there are workers (nothing waits in
                # the pool).
                going = list(self._in_flight.values())
                if any((j, c) == (delivery.job_id, delivery.channel) for j, c, _ in going) \
                        or len(going) >= self.workers or \
                        sum(e == place for _, _, e in going) >= max(1, self.workers - 1):
                    held_back = True
                    continue
                self._in_flight[delivery.id] = (delivery.job_id, delivery.channel, place)
            self._queue.put(delivery)
        if held_back:  # an attempt's end wakes the thread; look again then
            return min(now + int(POLL_SECONDS * 1000), self._dead_man_at)
        due = self._store.next_delivery_due()
        if due is not None and due <= now:  # all that is due is being attempted
            due = now + int(POLL_SECONDS * 1000)
        return self._dead_man_at if due is None else min(due, self._dead_man_at)

    def _place(self, delivery: Delivery) -> str:
        """The endpoint of ``delivery``; its channel when its job cannot be read (the
        attempt then says why, as it would for any job)."""
        try:
            job = self._store.find_job(delivery.job_id)
        except Exception:
            return delivery.channel
        return delivery.channel if job is None else self._endpoint(delivery, job)

    def check_dead_man(self, now: int) -> None:
        """An alert for each active job with ``alert_if_no_success_within`` that has not
        succeeded for that long, whatever the reason (its cooldown rate-limits them)."""
        for job_id, seconds, last in self._store.overdue_jobs(now):
            job = self._store.find_job(job_id)
            if job is None or not job.alert:
                continue
            since = f"its last success was {format_instant(last)}" if last else \
                "it has not succeeded yet"
            message = (f"job {job.name} has not succeeded within "
                       f"{format_duration(seconds)}; {since}")
            if self._store.raise_alert(AlertRequest.about(job, "no_success", message), now):
                log.warning("job %s: %s; alerting %s", job.name, message,
                            ", ".join(job.alert),
                            extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "alert_no_success"})

    def _attempt(self, delivery: Delivery) -> None:
        try:
            self._attempt_one(delivery)
        except Exception:
            log.exception("%s %s to %s (job %s, run %s): the attempt failed unexpectedly; "
                          "it stays pending", delivery.kind, delivery.id, delivery.channel,
                          delivery.job_id, delivery.run_id)
            with self._lock:  # not again at once: a store that cannot take the receipt
                self._cooling[delivery.id] = self._clock.now() + backoff_ms(
                    delivery.attempts + 1, self.backoff, self._rng)
        finally:
            with self._lock:
                self._in_flight.pop(delivery.id, None)
                self._woken = True
                self._lock.notify_all()

    def _attempt_one(self, delivery: Delivery) -> None:
        job = self._store.find_job(delivery.job_id)
        run: Optional[Run] = None
        if delivery.run_id:
            try:
                run = self._store.get_run(delivery.run_id)
            except NotFound:
                return  # gone with its run: the row went with it
        if job is None:
            return  # gone with its job: the row went with it
        started = self._clock.now()
        receipt = self._send(delivery, job, run)
        if self._closed:
            return  # stopped meanwhile: the row stays pending for the next start
        now = self._clock.now()
        attempts = delivery.attempts + 1
        record: dict[str, Any] = {**receipt.to_dict(), "at": format_instant(started),
                                  "attempt": attempts}
        if receipt.ok:
            status, next_at = DELIVERED, None
        elif receipt.permanent or attempts >= self.max_attempts:
            status, next_at = FAILED, None
        else:
            status = PENDING
            wait = backoff_ms(attempts, self.backoff, self._rng)
            if receipt.retry_after is not None:
                wait = int(min(MAX_BACKOFF_SECONDS, max(0.0, receipt.retry_after)) * 1000)
            next_at = now + wait
        if not self._store.record_attempt(delivery.id, record, status, next_at):
            return
        self._observe(delivery, job, status, record, now)

    def _observe(self, delivery: Delivery, job: Job, status: str,
                 record: Mapping[str, Any], now: int) -> None:
        alert = delivery.kind == "alert"
        extra = {"SYMBID_JOB": job.name, "SYMBID_RUN": delivery.run_id,
                 "SYMBID_EVENT": f"{'alert' if alert else 'delivery'}_{status}",
                 "SYMBID_CHANNEL": delivery.channel}
        # "job nightly: run 3f2a…: delivery" / "job nightly: run_failed alert"
        what = f"job {job.name}: " + (
            f"{(delivery.payload or {}).get('event', '')} alert" if alert
            else f"run {delivery.run_id}: delivery")
        why = escape(str(record.get("error") or record.get("status")))
        if status == PENDING:
            log.warning("%s to %s: attempt %d failed (%s); trying again", what,
                        delivery.channel, record["attempt"], why, extra=extra)
            return
        self._metrics.delivery_ended(delivery.channel, status,
                                     max(0.0, (now - delivery.created_at) / 1000), alert=alert)
        if status == DELIVERED:
            log.info("%s to %s: delivered (attempt %d)", what, delivery.channel,
                     record["attempt"], extra=extra)
        else:
            log.error("%s to %s: failed after %d attempt(s): %s", what, delivery.channel,
                      record["attempt"], why, extra=extra)
