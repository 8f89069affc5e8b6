"""Every slot runs exactly once: regressions for the sequences of issue 7, driven by a fake clock.

Each test here failed on the engine before the run lifecycle got one owner.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from symbid.config import Config
from symbid.daemon import Daemon
from symbid.errors import StoreError
from symbid.model import CatchUp, JobStatus, RunStatus, format_instant
from symbid.store import SqliteJobStore
from symbid.timer import ConditionWaiter, Wake
from symbid.timing import parse_instant
from tests.harness import Harness


def slots(h: Harness, name: str) -> list[tuple[str, str, str]]:
    return [(format_instant(r.slot), r.trigger.value, r.status.value) for r in h.history(name)]


# --- 1. a re-armed one-shot --------------------------------------------------------------


def test_a_one_shot_re_armed_while_its_run_is_going_fires_at_its_new_time(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("once", at="2026-03-01T00:10:00Z")
    h.run_until("2026-03-01T00:10:00Z")
    (first,) = list(h.launcher.running)
    h.jobs.update("once", lambda j: j.replace(at=parse_instant("2026-03-01T00:20:00Z")),
                  actor="test")
    h.launcher.finish(first, RunStatus.SUCCEEDED)
    h.run_until("2026-03-01T00:15:00Z")
    job = h.job("once")
    assert job.status is JobStatus.ACTIVE  # the old run does not complete the new schedule
    assert format_instant(job.next_run or 0) == "2026-03-01T00:20:00Z"
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.run_until("2026-03-01T00:21:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T00:10:00Z", "2026-03-01T00:20:00Z"]
    assert h.job("once").status is JobStatus.COMPLETED


def test_a_one_shot_switched_to_cron_while_its_run_is_going_stays_active(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("once", at="2026-03-01T00:10:00Z", max_retries=0)
    h.run_until("2026-03-01T00:10:00Z")
    (first,) = list(h.launcher.running)
    h.jobs.update("once", lambda j: j.replace(at=None, cron_expr="*/30 * * * *"), actor="test")
    h.launcher.finish(first, RunStatus.FAILED)  # its last attempt: a one-shot would fail
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.run_until("2026-03-01T00:31:00Z")
    assert h.job("once").status is JobStatus.ACTIVE
    assert [s for _, s, _ in h.started()] == ["2026-03-01T00:10:00Z", "2026-03-01T00:30:00Z"]


# --- 2. one store error must not wedge a job ---------------------------------------------


def test_a_store_error_while_runs_start_does_not_wedge_a_job(tmp_path: Path) -> None:
    h = Harness(tmp_path, busy_timeout_ms=50)
    h.add("broken", cron="0 * * * *", max_retries=1)
    h.add("gone", cron="0 * * * *")
    h.add("other", cron="0 * * * *")
    h.launcher.fail_to_start.add("broken")
    h.run_until("2026-03-01T00:59:59.950Z")  # all three slots claimed ahead
    h.jobs.pause("gone", actor="test")  # its claimed run must be dropped when it is due
    blocker = sqlite3.connect(str(tmp_path / "state.db"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    h.clock.set("2026-03-01T01:00:00Z")
    with pytest.raises(StoreError, match="locked"):
        h.sched.tick(h.clock.now())
    blocker.execute("ROLLBACK")
    blocker.close()
    h.launcher.fail_to_start.clear()
    h.run_until("2026-03-01T02:00:00Z")
    assert slots(h, "broken") == [
        ("2026-03-01T01:00:00Z", "schedule", "failed"),
        ("2026-03-01T01:00:00Z", "retry", "succeeded"),
        ("2026-03-01T02:00:00Z", "schedule", "succeeded"),
    ]
    assert "cannot start agent of broken" in (h.history("broken")[0].error_message or "")
    assert slots(h, "gone") == [("2026-03-01T01:00:00Z", "schedule", "cancelled")]
    assert [r.status.value for r in h.history("other")] == ["succeeded", "succeeded"]
    assert h.sched.in_flight() == 0


# --- 3. retention never re-opens a slot --------------------------------------------------


def test_retention_never_reopens_a_slot_when_the_clock_steps_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, keep_runs=5)
    h.add("minutely", cron="* * * * *")
    h.run_until("2026-03-01T00:10:00Z")
    assert len(h.launcher.started) == 10
    assert len(h.history("minutely")) == 5  # 00:01-00:05 were pruned
    h.clock.step(-9.5 * 60)  # 00:00:30
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T00:10:30Z")
    assert len(h.launcher.started) == 10  # nothing ran twice
    assert len(h.history("minutely")) == 5  # and no pruned slot was claimed again
    h.run_until("2026-03-01T00:11:00Z")
    assert [s for _, s, _ in h.started()][-1] == "2026-03-01T00:11:00Z"
    assert len(h.launcher.started) == 11


def test_a_clock_that_was_far_ahead_runs_the_slots_it_never_claimed(h: Harness) -> None:
    h.clock.set("2026-03-05T08:00:00Z")  # somebody set the clock days ahead
    h.add("daily", cron="0 9 * * *")
    h.run_until("2026-03-05T09:00:30Z")
    h.clock.step(-4 * 86400 - 3600)  # ... and fixed it: 03-01T08:00:30
    h.waiter.clock_set_next = True
    h.run_until("2026-03-06T09:00:00Z")
    assert [s for _, s, _ in h.started()] == [
        "2026-03-05T09:00:00Z", "2026-03-01T09:00:00Z", "2026-03-02T09:00:00Z",
        "2026-03-03T09:00:00Z", "2026-03-04T09:00:00Z", "2026-03-06T09:00:00Z",
    ]


def test_a_schedule_change_never_reclaims_a_slot_below_the_high_water_mark(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, keep_runs=2)
    h.add("minutely", cron="* * * * *")
    h.run_until("2026-03-01T00:10:00Z")
    h.clock.step(-9 * 60)  # 00:01
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T00:01:00Z")
    h.jobs.update("minutely", lambda j: j.replace(cron_expr="*/2 * * * *"), actor="test")
    h.run_until("2026-03-01T00:10:00Z")
    assert len(h.launcher.started) == 10
    h.run_until("2026-03-01T00:12:00Z")
    assert [s for _, s, _ in h.started()][10:] == ["2026-03-01T00:12:00Z"]


# --- 4. restarts start the runs that never started ---------------------------------------


@pytest.mark.parametrize("graceful", [False, True])
def test_a_run_waiting_out_its_jitter_starts_after_a_restart(
    h: Harness, graceful: bool
) -> None:
    h.add("once", at="2026-03-01T00:10:00Z", jitter_seconds=25)
    h.run_until("2026-03-01T00:10:01Z")
    (waiting,) = h.history("once")
    assert waiting.status is RunStatus.PENDING and h.launcher.started == []
    assert waiting.not_before is not None and waiting.not_before > waiting.slot + 1000
    h.restart(graceful=graceful)
    h.run_until("2026-03-01T00:11:00Z")
    (run,) = h.history("once")
    assert (run.id, run.slot, run.status) == (waiting.id, waiting.slot, RunStatus.SUCCEEDED)
    assert h.started() == [("once", "2026-03-01T00:10:00Z", format_instant(waiting.not_before))]
    assert h.job("once").status is JobStatus.COMPLETED


@pytest.mark.parametrize("graceful", [False, True])
def test_a_run_waiting_for_the_global_limit_starts_after_a_restart(
    tmp_path: Path, graceful: bool
) -> None:
    h = Harness(tmp_path, max_concurrent_jobs=1, shutdown_timeout_seconds=0)
    h.launcher.behaviour = lambda job, run: None
    h.add("a", cron="0 1 * * *")
    h.add("b", cron="0 1 * * *")
    h.run_until("2026-03-01T01:00:00Z")
    assert [n for n, _, _ in h.started()] == ["a"]
    assert h.history("b")[0].status is RunStatus.PENDING
    h.restart(graceful=graceful)
    h.launcher.behaviour = lambda job, run: None
    h.run_until("2026-03-01T01:00:10Z")
    assert h.history("a")[0].status is RunStatus.INTERRUPTED  # it had started
    assert h.history("b")[0].status is RunStatus.RUNNING  # it had not: it runs now
    assert [n for n, _, _ in h.started()] == ["b"]


def test_a_run_claimed_ahead_of_its_slot_starts_on_time_after_a_crash(h: Harness) -> None:
    h.add("daily", cron="0 9 * * *")
    h.run_until("2026-03-01T08:59:59.960Z")  # claimed 50 ms ahead, not started
    assert h.history("daily")[0].status is RunStatus.PENDING
    h.restart()
    h.run_until("2026-03-01T09:00:01Z")
    assert h.started() == [("daily", "2026-03-01T09:00:00Z", "2026-03-01T09:00:00Z")]
    assert [r.status for r in h.history("daily")] == [RunStatus.SUCCEEDED]


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [(CatchUp.LATEST, "succeeded"), (CatchUp.ALL, "succeeded"), (CatchUp.SKIP, "skipped")],
)
def test_a_never_started_run_found_late_after_a_restart_follows_catch_up(
    h: Harness, catch_up: CatchUp, expected: str
) -> None:
    h.add("once", at="2026-03-01T00:10:00Z", jitter_seconds=25, catch_up=catch_up)
    h.run_until("2026-03-01T00:10:01Z")
    h.clock.set("2026-03-01T01:00:00Z")  # down for an hour: past misfire_grace_seconds
    h.restart()
    h.run_until("2026-03-01T01:00:01Z")
    (run,) = h.history("once")
    assert run.status.value == expected
    if expected == "skipped":
        assert "catch_up=skip" in (run.error_message or "")
        assert h.job("once").status is JobStatus.FAILED
    else:
        assert h.job("once").status is JobStatus.COMPLETED


def test_only_a_run_that_may_have_started_is_recorded_interrupted(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("hourly", cron="0 * * * *")
    h.run_until("2026-03-01T01:00:00Z")
    (run,) = h.history("hourly")
    assert run.status is RunStatus.RUNNING
    report = h.restart()
    assert report.interrupted == 1
    (run,) = h.history("hourly")
    assert run.status is RunStatus.INTERRUPTED


# --- 5. manual runs have a key of their own ----------------------------------------------


def test_a_manual_run_at_the_instant_of_an_unclaimed_slot_does_not_swallow_it(
    h: Harness,
) -> None:
    h.add("daily", cron="0 9 * * *", max_concurrent=2)
    h.clock.set("2026-03-01T09:00:00Z")  # the loop is late: the slot is not claimed yet
    manual = h.sched.run_now("daily", actor="test")
    assert manual.slot == parse_instant("2026-03-01T09:00:00Z")
    h.run_until("2026-03-01T09:00:01Z")
    assert sorted((r.trigger.value, r.status.value) for r in h.history("daily")) == [
        ("manual", "succeeded"), ("schedule", "succeeded"),
    ]


# --- 6. health follows the passes --------------------------------------------------------


def test_health_is_degraded_while_passes_fail_and_the_watchdog_stays_fed(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, tick_interval_seconds=0.01)
    h.sched = h.new_scheduler(waiter=ConditionWaiter(h.clock))
    ctx = h.api_context()
    real = h.store.due_jobs

    def locked(*args: Any) -> Any:
        raise StoreError("database state.db: database is locked")

    h.store.due_jobs = locked  # type: ignore[method-assign]
    h.sched.start()
    try:
        deadline = time.monotonic() + 10
        while ctx.health()["status"] != "degraded" and time.monotonic() < deadline:
            time.sleep(0.01)
        health = ctx.health()
        assert health["status"] == "degraded"
        assert "database is locked" in health["error"]
        daemon = Daemon(Config(), clock=h.clock)
        daemon.engine = SimpleNamespace(scheduler=h.sched, store=h.store)  # type: ignore
        assert daemon.status_line().startswith("degraded: database state.db: database is")
        h.clock.advance(60)
        deadline = time.monotonic() + 10
        while not ctx.loop_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctx.loop_alive()  # the loop keeps making passes: systemd must not restart it
        h.store.due_jobs = real  # type: ignore[method-assign]
        deadline = time.monotonic() + 10
        while ctx.health()["status"] != "healthy" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctx.health()["status"] == "healthy"
        assert "error" not in ctx.health()
    finally:
        h.sched.stop()


def test_the_dialect_health_probes_the_store(h: Harness) -> None:
    status, body = h.api("GET", "/symbiont/api/v1/health/scheduler")
    assert (status, body["store_accessible"]) == (200, True)

    def broken(*args: Any) -> Any:
        raise StoreError("database state.db: disk I/O error")

    h.store.probe = broken  # type: ignore[method-assign]
    status, body = h.api("GET", "/symbiont/api/v1/health/scheduler")
    assert (status, body["store_accessible"]) == (200, False)
    status, body = h.api("GET", "/api/v1/health/scheduler")
    assert status == 200 and body["status"] == "degraded"
    assert "disk I/O error" in body["error"]


# --- 7. waits are durations --------------------------------------------------------------


def test_a_retry_backoff_lasts_its_duration_when_the_clock_steps_back(h: Harness) -> None:
    outcomes = iter([RunStatus.FAILED, RunStatus.SUCCEEDED])
    h.launcher.behaviour = lambda job, run: next(outcomes)
    h.add("flaky", cron="0 1 * * *", max_retries=1)  # retry 10 s after a failure
    h.run_until("2026-03-01T01:00:05Z")
    h.clock.step(-3600)  # 00:00:05: five seconds of the backoff are left
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T00:00:30Z")
    assert h.started() == [
        ("flaky", "2026-03-01T01:00:00Z", "2026-03-01T01:00:00Z"),
        ("flaky", "2026-03-01T01:00:00Z", "2026-03-01T00:00:10Z"),
    ]


def test_a_jitter_wait_lasts_its_duration_when_the_clock_steps(h: Harness) -> None:
    h.add("spread", cron="0 1 * * *", jitter_seconds=30)
    h.run_until("2026-03-01T01:00:00Z")
    (waiting,) = h.history("spread")
    assert waiting.not_before is not None
    left = waiting.not_before - parse_instant("2026-03-01T01:00:00Z")
    assert left > 1000
    h.clock.step(3600)  # forward an hour: the wait must not end at once
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T02:00:00Z")
    assert h.launcher.started == []
    h.run_until("2026-03-01T02:00:31Z")
    (_, run, started_at) = h.launcher.started[0]
    assert started_at == parse_instant("2026-03-01T02:00:00Z") + left
    assert h.store.get_run(run.id).not_before == started_at  # the stored deadline moved too


# --- 8. quiet shutdown, a reentrant signal handler ---------------------------------------


def test_closing_the_store_closes_every_threads_connection_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteJobStore(str(tmp_path / "state.db"))
    conns = []

    def use() -> None:
        store.list_jobs()
        conns.append(store._conn())

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with caplog.at_level(logging.DEBUG, logger="symbid.store"):
        store.close()
    assert caplog.records == []
    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


def test_signal_handlers_put_signals_on_a_reentrant_queue() -> None:
    import os
    import signal

    daemon = Daemon(Config())
    assert isinstance(daemon.events, queue.SimpleQueue)  # put() is reentrant
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                     signal.SIGHUP)}
    try:
        daemon.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGHUP)
        assert daemon.events.get(timeout=5) == ("signal", signal.SIGHUP)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


# --- 9. one far-future job breaks nothing ------------------------------------------------


def test_a_far_future_at_job_is_refused_and_nothing_is_stored(h: Harness) -> None:
    status, body = h.api("POST", "/api/v1/schedule", {
        "name": "far", "agent_id": "agent", "at": "9999-12-31T23:00:00-05:00"})
    assert status == 400, body
    assert body["error"]["field"] == "at"
    assert h.store.list_jobs() == []
    status, body = h.api("GET", "/api/v1/schedule")
    assert (status, body) == (200, [])


def test_one_row_that_cannot_be_shown_does_not_fail_a_listing(h: Harness) -> None:
    h.add("fine", cron="0 * * * *")
    bad = h.add("far", cron="0 * * * *")
    conn = sqlite3.connect(str(h.store.path))
    with conn:  # a row stored by an older symbid, before creates were checked
        conn.execute("UPDATE jobs SET cron_expr = NULL, at_ms = ?, next_run = ? WHERE id = ?",
                     (253402318800000 + 14_400_000, 253402318800000 + 14_400_000, bad.id))
    conn.close()
    status, body = h.api("GET", "/api/v1/schedule")
    assert status == 200, body
    assert [(row["name"], "error" in row) for row in body] == [("far", True), ("fine", False)]
    # the SDK parses every field of a row: there the row is left out (and logged)
    status, body = h.api("GET", "/symbiont/api/v1/schedules")
    assert status == 200, body
    assert [row["name"] for row in body] == ["fine"]
    status, body = h.api("GET", f"/api/v1/schedule/{bad.id}")
    assert status == 200 and "error" in body
    status, _ = h.api("DELETE", f"/api/v1/schedule/{bad.id}")
    assert status == 200


def test_two_backward_steps_never_swallow_slots_that_were_never_claimed(h: Harness) -> None:
    h.add("minutely", cron="* * * * *")
    h.run_until("2026-03-01T10:10:00Z")
    h.clock.step(-70 * 60)  # 09:00
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T09:20:00Z")
    h.clock.step(-80 * 60)  # 08:00
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T09:30:00Z")
    ran = [s for _, s, _ in h.started()]
    assert len(ran) == len(set(ran))  # nothing twice
    # 08:01-08:59 were never claimed: they run; 09:00-09:20 had run: they do not again
    assert ran.count("2026-03-01T08:30:00Z") == 1
    assert "2026-03-01T09:21:00Z" in ran and ran.count("2026-03-01T09:10:00Z") == 1


def test_an_outcome_whose_decision_fails_is_still_recorded_and_frees_the_job(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import symbid.lifecycle

    def broken(*args: Any) -> Any:
        raise OverflowError("int too large to convert to float")

    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("hourly", cron="0 * * * *")
    monkeypatch.setattr(symbid.lifecycle, "finish_decision", broken)
    h.run_until("2026-03-01T01:00:01Z")
    (run,) = h.history("hourly")
    assert run.status is RunStatus.FAILED and "could not decide" in (run.error_message or "")
    assert h.sched.in_flight() == 0
    monkeypatch.undo()
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.run_until("2026-03-01T02:00:00Z")
    assert h.history("hourly")[-1].status is RunStatus.SUCCEEDED


def test_a_one_shot_re_armed_while_its_old_run_still_goes_waits_for_it(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("once", at="2026-03-01T00:10:00Z")
    h.run_until("2026-03-01T00:10:00Z")
    (first,) = list(h.launcher.running)
    h.jobs.update("once", lambda j: j.replace(at=parse_instant("2026-03-01T00:20:00Z")),
                  actor="test")
    h.run_until("2026-03-01T00:21:00Z")  # the old run still goes at the new time
    assert [r.status for r in h.history("once")] == [RunStatus.RUNNING, RunStatus.PENDING]
    assert h.job("once").status is JobStatus.ACTIVE
    h.launcher.finish(first, RunStatus.SUCCEEDED)
    h.run_until("2026-03-01T00:22:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T00:10:00Z", "2026-03-01T00:20:00Z"]


def test_a_one_shot_re_armed_drops_the_retries_of_its_old_slot(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("once", at="2026-03-01T00:10:00Z", max_retries=3)
    h.run_until("2026-03-01T00:10:01Z")  # failed; a retry of 00:10 is pending
    assert h.history("once")[0].retry_at is not None
    h.jobs.update("once", lambda j: j.replace(at=parse_instant("2026-03-01T00:20:00Z")),
                  actor="test")
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.run_until("2026-03-01T00:21:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T00:10:00Z", "2026-03-01T00:20:00Z"]
    assert h.job("once").status is JobStatus.COMPLETED


def test_a_one_shot_re_armed_does_not_retry_its_old_run_failing_afterwards(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("once", at="2026-03-01T00:10:00Z", max_retries=3)
    h.run_until("2026-03-01T00:10:00Z")
    (first,) = list(h.launcher.running)
    h.jobs.update("once", lambda j: j.replace(at=parse_instant("2026-03-01T00:20:00Z")),
                  actor="test")
    h.launcher.finish(first, RunStatus.FAILED)  # fails after the re-arm
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.run_until("2026-03-01T00:21:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T00:10:00Z", "2026-03-01T00:20:00Z"]
    assert h.history("once")[0].retry_at is None


def test_a_one_shot_re_armed_while_its_run_waits_out_its_jitter_runs_once(h: Harness) -> None:
    h.add("once", at="2026-03-01T00:10:00Z", jitter_seconds=25)
    h.run_until("2026-03-01T00:10:01Z")  # claimed, waiting
    assert h.launcher.started == []
    h.jobs.update("once", lambda j: j.replace(at=parse_instant("2026-03-01T00:20:00Z"),
                                                jitter_seconds=0), actor="test")
    h.run_until("2026-03-01T00:21:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T00:20:00Z"]
    old = h.history("once")[0]
    assert old.status is RunStatus.CANCELLED and "re-armed" in (old.error_message or "")
    assert h.job("once").status is JobStatus.COMPLETED


def test_a_job_created_while_the_clock_was_ahead_runs_once_it_is_corrected(h: Harness) -> None:
    h.clock.set("2026-03-05T08:00:00Z")
    h.add("daily", cron="0 9 * * *")  # its first slot is 03-05 09:00; nothing claimed
    h.clock.step(-4 * 86400)  # 03-01 08:00
    h.waiter.clock_set_next = True
    h.run_until("2026-03-02T09:00:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T09:00:00Z", "2026-03-02T09:00:00Z"]


def _break_row(h: Harness, name: str) -> None:
    conn = sqlite3.connect(str(h.store.path))
    with conn:
        conn.execute("UPDATE jobs SET definition = '{}' WHERE name = ?", (name,))
    conn.close()


def test_an_unreadable_job_row_stops_neither_the_others_nor_a_restart(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None if job.name == "stuck" else RunStatus.FAILED
    h.add("flaky", cron="0 1 * * *", max_retries=2)  # a retry of it is pending
    h.add("stuck", cron="0 1 * * *")  # its run goes on
    h.run_until("2026-03-01T01:00:01Z")
    _break_row(h, "flaky")
    _break_row(h, "stuck")
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.add("other", cron="*/5 * * * *")
    h.run_until("2026-03-01T01:30:00Z")
    assert h.sched.last_error is None
    assert [r.status for r in h.history("other")] == [RunStatus.SUCCEEDED] * 6  # unhindered
    report = h.restart()  # stuck's run is open: the restart ends it and goes on
    assert report.interrupted >= 1
    assert h.api("DELETE", "/api/v1/schedule/flaky")[0] == 200
    assert h.api("DELETE", "/api/v1/schedule/stuck")[0] == 200
    h.run_until("2026-03-01T01:35:00Z")
    assert h.history("other")[-1].status is RunStatus.SUCCEEDED


def test_a_clock_step_whose_handling_fails_is_handled_at_the_next_wake(h: Harness) -> None:
    h.add("spread", cron="0 1 * * *", jitter_seconds=30)
    h.run_until("2026-03-01T01:00:00Z")
    (waiting,) = h.history("spread")
    real = h.store.shift_waits

    def locked(*args: Any) -> None:
        raise StoreError("database state.db: database is locked")

    h.store.shift_waits = locked  # type: ignore[method-assign]
    h.clock.step(0.5)  # small: it would pass for NTP slewing if it were forgotten
    h.sched.handle_wake(Wake.CLOCK_SET)
    assert h.sched.last_error is not None
    h.store.shift_waits = real  # type: ignore[method-assign]
    h.sched.handle_wake(Wake.DEADLINE)
    assert h.store.get_run(waiting.id).not_before == (waiting.not_before or 0) + 500


def test_a_stop_that_cannot_record_its_runs_still_ends(tmp_path: Path) -> None:
    h = Harness(tmp_path, shutdown_timeout_seconds=0, kill_grace_seconds=0)
    h.launcher.behaviour = lambda job, run: None
    h.add("long", cron="0 1 * * *")
    h.run_until("2026-03-01T01:00:00Z")

    def full(*args: Any) -> Any:
        raise StoreError("database state.db: database or disk is full")

    h.store.finish = full  # type: ignore[method-assign]
    advance = threading.Timer(0.2, lambda: h.clock.advance(10))
    advance.start()
    h.sched.stop()  # returns: the next start records the run interrupted
    assert h.store.history(h.job("long").id)[0].status is RunStatus.RUNNING


@pytest.mark.parametrize("max_concurrent, statuses", [
    (1, [("schedule", "running"), ("schedule", "skipped")]),
    (2, [("schedule", "running"), ("schedule", "running")]),
])
def test_a_heartbeat_wakeup_that_finds_the_last_one_still_iterating_follows_max_concurrent(
        h: Harness, max_concurrent: int, statuses: list[tuple[str, str]]) -> None:
    from symbid.model import Heartbeat

    h.launcher.behaviour = lambda job, run: None  # the first wake-up keeps iterating
    h.add("beat", cron="*/5 * * * *", max_concurrent=max_concurrent,
          heartbeat=Heartbeat(enabled=True, max_iterations=50))
    h.run_until("2026-03-01T00:05:00Z")
    h.run_until("2026-03-01T00:10:00Z")
    assert [(r.trigger.value, r.status.value) for r in h.history("beat")] == statuses
