"""The delivery outbox and its workers, on a real SQLite store and a fake clock: rows
written with a run's final state, attempted until delivered or their attempts run out,
with a receipt per attempt, backoff between them, resumed by a new worker (a restart)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from symbid.model import DeliveryConfig, Job, RunStatus, Trigger, new_id
from symbid.outbox import DeliveryWorker
from symbid.records import Run
from symbid.store import Advance, Finish, SqliteJobStore
from symbid.store.deliveries import Delivery, delivery_status
from tests.fakes import FakeClock

T0 = 1_772_323_200_000


@dataclass
class FakeReceipt:
    ok: bool
    permanent: bool = False
    retry_after: Optional[float] = None
    error: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error}


@dataclass
class Channel:
    """Answers each attempt from ``answers`` (the last one repeats)."""

    answers: list[FakeReceipt]
    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, delivery: Delivery, job: Job, run: Run) -> FakeReceipt:
        self.sent.append((delivery.id, delivery.channel, run.id))
        return self.answers[min(len(self.sent), len(self.answers)) - 1]


def finished_run(store: SqliteJobStore, channels: tuple[str, ...],
                 status: RunStatus = RunStatus.SUCCEEDED, url: Optional[str] = None) -> Run:
    job = store.create_job(Job(id=new_id(), name=f"job-{new_id()[:8]}", agent_id="a",
                               cron_expr="* * * * *", next_run=T0, created_at=T0,
                               updated_at=T0, delivery=channels,
                               delivery_config=DeliveryConfig(webhook_url=url)))
    run = Run(id=new_id(), job_id=job.id, slot=T0, attempt=1, trigger=Trigger.SCHEDULE,
              status=RunStatus.PENDING, created_at=T0)
    [run] = store.claim([Advance(job.id, job.version, T0 + 60_000, ((T0, T0),), (run,))], [])
    store.finish([Finish(run=run.replace(status=status, finished_at=T0 + 5, output="hi"),
                         deliver=channels)])
    return run


def settle(worker: DeliveryWorker, clock: FakeClock) -> None:
    """One look at the outbox, and the attempts it started, done."""
    worker.tick(clock.now())
    deadline = time.monotonic() + 10
    while worker._in_flight and time.monotonic() < deadline:
        time.sleep(0.005)


def make(tmp_path: Path, answers: list[FakeReceipt], **kw: Any
         ) -> tuple[SqliteJobStore, FakeClock, Channel, DeliveryWorker]:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    clock = FakeClock(T0 + 10)
    channel = Channel(answers)
    worker = DeliveryWorker(store, clock, channel, rng=random.Random(1), **kw)
    return store, clock, channel, worker


def test_a_runs_deliveries_are_written_with_its_final_state_one_per_channel(
        tmp_path: Path) -> None:
    store, _, _, _ = make(tmp_path, [FakeReceipt(True)])
    run = finished_run(store, ("stdout", "webhook"))
    rows = store.deliveries_of([run.id])[run.id]
    assert [(d.channel, d.status, d.attempts) for d in rows] == [("stdout", "pending", 0),
                                                                 ("webhook", "pending", 0)]
    assert len({d.id for d in rows}) == 2  # each its own delivery id
    assert delivery_status(rows) == "pending"


def test_a_delivery_that_succeeds_is_delivered_with_its_receipt(tmp_path: Path) -> None:
    store, clock, channel, worker = make(tmp_path, [FakeReceipt(True)])
    run = finished_run(store, ("webhook",))
    settle(worker, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert (row.status, row.attempts) == ("delivered", 1)
    assert row.receipts[0]["ok"] is True and row.receipts[0]["attempt"] == 1
    assert delivery_status([row]) == "delivered"
    settle(worker, clock)
    assert len(channel.sent) == 1  # never again


def test_a_failing_delivery_backs_off_and_keeps_its_delivery_id_until_it_arrives(
        tmp_path: Path) -> None:
    store, clock, channel, worker = make(
        tmp_path, [FakeReceipt(False, error="500"), FakeReceipt(False, error="500"),
                   FakeReceipt(True)], backoff=2.0)
    run = finished_run(store, ("webhook",))
    settle(worker, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert (row.status, row.attempts) == ("pending", 1)
    assert 1600 <= row.next_at - clock.now() <= 2400  # 2 s, with jitter
    settle(worker, clock)
    assert len(channel.sent) == 1  # not due yet
    clock.advance(2.5)
    settle(worker, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert row.attempts == 2 and 3200 <= row.next_at - clock.now() <= 4800  # 4 s
    clock.advance(5)
    settle(worker, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert (row.status, row.attempts) == ("delivered", 3)
    assert len({d for d, _, _ in channel.sent}) == 1  # one delivery id on every attempt
    assert store.get_run(run.id).status is RunStatus.SUCCEEDED  # the run is untouched


def test_a_retry_after_is_honoured(tmp_path: Path) -> None:
    store, clock, _, worker = make(tmp_path, [FakeReceipt(False, retry_after=30)])
    run = finished_run(store, ("slack",))
    settle(worker, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert row.next_at - clock.now() == 30_000


def test_a_delivery_fails_when_its_attempts_run_out(tmp_path: Path) -> None:
    store, clock, _, worker = make(tmp_path, [FakeReceipt(False)], max_attempts=2,
                                   backoff=1.0)
    run = finished_run(store, ("webhook",))
    settle(worker, clock)
    clock.advance(2)
    settle(worker, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert (row.status, row.attempts, len(row.receipts)) == ("failed", 2, 2)
    assert delivery_status([row]) == "delivery_failed"


def test_a_delivery_that_retrying_cannot_help_fails_at_once(tmp_path: Path) -> None:
    store, clock, _, worker = make(tmp_path, [FakeReceipt(False, permanent=True)])
    run = finished_run(store, ("email",))
    settle(worker, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert (row.status, row.attempts) == ("failed", 1)


def test_a_new_worker_resumes_what_was_pending_when_the_daemon_stopped(
        tmp_path: Path) -> None:
    store, clock, _, worker = make(tmp_path, [FakeReceipt(False)], backoff=1.0)
    run = finished_run(store, ("webhook",))
    settle(worker, clock)
    worker.stop()  # the daemon stops; the row is pending
    again = Channel([FakeReceipt(True)])
    restarted = DeliveryWorker(SqliteJobStore(str(tmp_path / "s.db")), clock, again)
    clock.advance(5)
    settle(restarted, clock)
    [row] = store.deliveries_of([run.id])[run.id]
    assert (row.status, row.attempts) == ("delivered", 2)


def test_a_jobs_deliveries_go_with_it(tmp_path: Path) -> None:
    store, _, _, _ = make(tmp_path, [FakeReceipt(True)])
    run = finished_run(store, ("stdout",))
    store.delete_job(run.job_id)
    assert store.deliveries_of([run.id])[run.id] == []
    assert store.next_delivery_due() is None


def test_run_retention_keeps_a_run_whose_delivery_is_still_pending(tmp_path: Path) -> None:
    from tests.harness import Harness

    h = Harness(tmp_path, keep_runs=2)
    h.add("often", cron="* * * * *", delivery=("stdout",))  # no worker: all stay pending
    h.run_until("2026-03-01T00:01:01Z")
    [(first, _)] = h.store._query("SELECT id, run_id FROM deliveries")
    h.run_until("2026-03-01T00:05:01Z")  # four more runs, past keep_runs
    assert first in [d for (d,) in h.store._query("SELECT id FROM deliveries")]
    with h.store._write() as conn:  # once its deliveries have ended, retention takes it
        conn.execute("UPDATE deliveries SET status = 'delivered'")
    h.run_until("2026-03-01T00:06:01Z")
    assert len(h.store._query("SELECT id FROM runs")) == 2


def test_only_runs_that_executed_write_deliveries(tmp_path: Path) -> None:
    from tests.harness import Harness

    h = Harness(tmp_path)
    h.launcher.behaviour = lambda job, run: None  # runs stay going until told
    h.add("out", cron="0 1 * * *", delivery=("stdout", "log_file"))
    h.run_until("2026-03-01T01:00:00Z")
    (going,) = list(h.launcher.running)
    h.launcher.finish(going, RunStatus.FAILED)
    h.run_until("2026-03-01T01:00:01Z")
    run = h.store.get_run(going)
    assert [d.channel for d in h.store.deliveries_of([run.id])[run.id]] == \
        ["stdout", "log_file"]
    cancelled = h.sched.run_now("out", actor="test")
    h.sched.runs.request_cancel(cancelled.id, "uid:0")
    h.run_until("2026-03-01T01:00:02Z")
    assert h.store.get_run(cancelled.id).status is RunStatus.CANCELLED
    assert h.store.deliveries_of([cancelled.id])[cancelled.id] == []


def test_a_hung_endpoint_holds_one_worker_and_others_go_on(tmp_path: Path) -> None:
    import threading

    release = threading.Event()
    store = SqliteJobStore(str(tmp_path / "s.db"))
    clock = FakeClock(T0 + 10)
    sent: list[str] = []

    def send(delivery: Delivery, job: Job, run: Any) -> FakeReceipt:
        sent.append(job.name)
        if delivery.channel == "webhook":
            release.wait(10)  # the hung endpoint
        return FakeReceipt(True)

    worker = DeliveryWorker(store, clock, send, workers=2)
    hung = [finished_run(store, ("webhook",)) for _ in range(3)]  # three jobs' webhooks
    quick = finished_run(store, ("stdout",))
    try:
        due = worker.tick(clock.now())
        deadline = time.monotonic() + 5
        while store.deliveries_of([quick.id])[quick.id][0].status != "delivered":
            assert time.monotonic() < deadline, "the quick delivery waited behind the hung"
            worker.tick(clock.now())
            time.sleep(0.01)
        # the hung channel holds at most workers - 1; never more at once than the workers
        assert sum(c == "webhook" for _, c, _ in worker._in_flight.values()) == 1
        # all that is due is being attempted or held back: the thread waits, not spins
        assert due is not None and due > clock.now()
        assert [store.deliveries_of([r.id])[r.id][0].status for r in hung] == ["pending"] * 3
    finally:
        release.set()
        worker.stop()


def test_a_dead_host_many_jobs_share_leaves_a_worker_for_another_host(tmp_path: Path) -> None:
    import threading

    from symbid.dispatch import endpoint_of

    release = threading.Event()
    store = SqliteJobStore(str(tmp_path / "s.db"))
    clock = FakeClock(T0 + 10)

    def send(delivery: Delivery, job: Job, run: Any) -> FakeReceipt:
        if "dead.example" in (job.delivery_config.webhook_url or "").lower():
            release.wait(10)
        return FakeReceipt(True)

    worker = DeliveryWorker(store, clock, send, workers=4, endpoint=endpoint_of)
    hung = [finished_run(store, ("webhook",), url=f"https://DEAD.example/hook/{i}")
            for i in range(9)]  # nine jobs, one dead host
    fine = finished_run(store, ("webhook",), url="https://alive.example/hook")
    try:
        deadline = time.monotonic() + 5
        while store.deliveries_of([fine.id])[fine.id][0].status != "delivered":
            assert time.monotonic() < deadline, "the live host waited behind the dead one"
            worker.tick(clock.now())
            time.sleep(0.01)
        places = [e for _, _, e in worker._in_flight.values()]
        assert places == ["webhook https://dead.example"] * 3  # workers - 1, never all
        assert [store.deliveries_of([r.id])[r.id][0].status for r in hung] == ["pending"] * 9
    finally:
        release.set()
        worker.stop()


def test_a_job_row_that_cannot_be_read_holds_back_no_other_delivery(tmp_path: Path) -> None:
    store, clock, _, worker = make(tmp_path, [FakeReceipt(True)])
    broken = finished_run(store, ("stdout",))
    fine = finished_run(store, ("stdout",))
    with store._write() as conn:  # damaged by hand: the job cannot be read
        conn.execute("UPDATE jobs SET definition = '{}' WHERE id = ?", (broken.job_id,))
    try:
        settle(worker, clock)
        assert store.deliveries_of([fine.id])[fine.id][0].status == "delivered"
        assert store.deliveries_of([broken.id])[broken.id][0].status == "pending"
    finally:
        worker.stop()


def test_one_jobs_deliveries_to_one_channel_go_one_at_a_time(tmp_path: Path) -> None:
    store, clock, channel, worker = make(tmp_path, [FakeReceipt(True)])
    job = store.create_job(Job(id=new_id(), name="serial", agent_id="a",
                               cron_expr="* * * * *", next_run=T0, created_at=T0,
                               updated_at=T0, delivery=("webhook",)))
    runs = []
    for i in range(3):
        run = Run(id=new_id(), job_id=job.id, slot=T0 + i * 60_000, attempt=1,
                  trigger=Trigger.SCHEDULE, status=RunStatus.PENDING, created_at=T0)
        current = store.get_job(job.id)
        [run] = store.claim([Advance(job.id, current.version, T0 + (i + 1) * 60_000,
                                     ((T0, T0 + i * 60_000),), (run,))], [])
        store.finish([Finish(run=run.replace(status=RunStatus.SUCCEEDED,
                                              finished_at=T0 + i), deliver=("webhook",))])
        runs.append(run)
    worker.tick(clock.now())
    assert len(worker._in_flight) <= 1
    for _ in range(3):
        settle(worker, clock)
    assert [store.deliveries_of([r.id])[r.id][0].status for r in runs] == ["delivered"] * 3
    assert [r for _, _, r in channel.sent] == [r.id for r in runs]  # in order


def test_a_receipt_that_cannot_be_stored_does_not_resend_at_once(tmp_path: Path) -> None:
    store, clock, channel, worker = make(tmp_path, [FakeReceipt(True)], backoff=5.0)
    run = finished_run(store, ("webhook",))

    def broken(*args: Any) -> bool:
        raise RuntimeError("disk full")

    store.record_attempt = broken  # type: ignore[method-assign]
    for _ in range(20):
        settle(worker, clock)
    assert len(channel.sent) == 1  # once, not a flood
    clock.advance(10)  # after its backoff it is tried again
    settle(worker, clock)
    assert len(channel.sent) == 2
    assert store.deliveries_of([run.id])[run.id][0].status == "pending"


def test_stop_gives_attempts_going_their_time_and_then_writes_nothing(tmp_path: Path) -> None:
    import threading

    gate = threading.Event()
    store = SqliteJobStore(str(tmp_path / "s.db"))
    clock = FakeClock(T0 + 10)

    def slow(delivery: Delivery, job: Job, run: Any) -> FakeReceipt:
        gate.wait(5)
        return FakeReceipt(True)

    worker = DeliveryWorker(store, clock, slow)
    run = finished_run(store, ("webhook",))
    worker.tick(clock.now())
    started = time.monotonic()
    worker.stop(timeout=0.3)
    assert time.monotonic() - started < 2  # bounded
    gate.set()
    time.sleep(0.2)
    [row] = store.deliveries_of([run.id])[run.id]
    assert (row.status, row.attempts) == ("pending", 0)  # attempted again after a restart
