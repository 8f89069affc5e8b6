"""Alerts, through the run lifecycle and the outbox on a real SQLite store and a fake
clock: a run that failed after its retries, a job gone to dead_letter, the cooldown and
the "recovered" that follows, and the dead man's switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from symbid.delivery.base import Receipt
from symbid.model import CatchUp, DeliveryConfig, JobStatus, RunStatus
from symbid.outbox import DeliveryWorker
from symbid.records import Run
from symbid.store.deliveries import AlertState, Delivery
from symbid.timing import parse_instant
from tests.harness import Harness


def alerts(h: Harness) -> list[tuple[str, str, str]]:
    """(channel, event, message) of every alert row, oldest first."""
    rows = h.store._query("SELECT channel, payload FROM deliveries WHERE kind = 'alert' "
                          "ORDER BY created_at, rowid")
    return [(c, json.loads(p)["event"], json.loads(p)["message"]) for c, p in rows]


def test_a_failed_run_alerts_the_cooldown_holds_the_next_back_and_a_success_recovers(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    outcome = iter([RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.SUCCEEDED,
                    RunStatus.SUCCEEDED])
    h.launcher.behaviour = lambda job, run: next(outcome)
    h.add("flaky", cron="0 0 1 1 *", alert=("slack", "email"),
          delivery_config=DeliveryConfig(email_recipients=("ops@example.com",)))
    h.sched.run_now("flaky", actor="test")  # manual runs are not retried: a failure is final
    h.run_until("2026-03-01T00:00:01Z")
    assert [(c, e) for c, e, _ in alerts(h)] == [("slack", "run_failed"),
                                                 ("email", "run_failed")]
    assert "not retried" in alerts(h)[0][2]
    # times out 10 minutes later: held back by the 1 h cooldown
    h.sched.run_now("flaky", actor="test")
    h.run_until("2026-03-01T00:10:00Z")
    assert len(alerts(h)) == 2
    assert h.store._query("SELECT suppressed FROM alert_state")[0][0] == 1
    h.sched.run_now("flaky", actor="test")  # succeeds: recovered, whatever the cooldown
    h.run_until("2026-03-01T00:20:00Z")
    assert [e for _, e, _ in alerts(h)][2:] == ["recovered", "recovered"]
    h.sched.run_now("flaky", actor="test")  # another success says nothing more
    h.run_until("2026-03-01T00:30:00Z")
    assert len(alerts(h)) == 4


def test_a_job_whose_slot_fails_every_attempt_says_it_went_to_dead_letter(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("doomed", cron="0 1 * * *", max_retries=1, alert=("stdout",))
    h.run_until("2026-03-01T01:01:00Z")
    assert h.job("doomed").status.value == "dead_letter"
    [(channel, event, message)] = alerts(h)
    assert (channel, event) == ("stdout", "dead_letter")
    assert "symbi cron reset doomed" in message


class Sent:
    def __init__(self) -> None:
        self.got: list[Delivery] = []

    def __call__(self, delivery: Delivery, job: Any, run: Run | None) -> Any:
        self.got.append(delivery)
        return Receipt(delivery.channel, ok=True)


def test_the_dead_mans_switch_alerts_an_active_job_that_has_not_succeeded_in_time(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.add("nightly", cron="0 0 1 1 *", alert=("stdout",),  # it never gets to run
          alert_if_no_success_within_seconds=26 * 3600)
    h.add("paused", cron="0 3 * * *", alert=("stdout",),
          alert_if_no_success_within_seconds=3600)
    h.jobs.pause("paused", actor="test")
    sent = Sent()
    worker = DeliveryWorker(h.store, h.clock, sent)
    worker.check_dead_man(h.clock.now())
    assert [e for _, e, _ in alerts(h)] == []  # created just now
    h.clock.set("2026-03-02T01:59:00Z")  # 25 h 59 m: not yet
    worker.check_dead_man(h.clock.now())
    assert [e for _, e, _ in alerts(h) if e == "no_success"] == []
    h.clock.set("2026-03-02T02:01:00Z")  # past 26 h
    worker.check_dead_man(h.clock.now())
    no_success = [m for _, e, m in alerts(h) if e == "no_success"]
    assert len(no_success) == 1 and "nightly has not succeeded within 1d2h" in no_success[0]
    worker.check_dead_man(h.clock.now())  # the cooldown holds a second one back
    assert len([e for _, e, _ in alerts(h) if e == "no_success"]) == 1
    assert all("paused" not in m for _, _, m in alerts(h))  # never while paused


def test_the_dead_mans_switch_counts_from_a_success_that_retention_has_pruned(
        tmp_path: Path) -> None:
    h = Harness(tmp_path, keep_runs=3)
    h.add("minutely", cron="* * * * *", alert=("stdout",),
          alert_if_no_success_within_seconds=3600)
    h.run_until("2026-03-01T00:50:01Z")  # fifty successes
    h.launcher.behaviour = lambda job, run: None  # the next run hangs; slots are skipped
    h.run_until("2026-03-01T01:10:01Z")  # the last success's row is pruned long since
    assert all(r.status is not RunStatus.SUCCEEDED for r in h.history("minutely"))
    worker = DeliveryWorker(h.store, h.clock, Sent())
    worker.check_dead_man(h.clock.now())
    assert alerts(h) == []  # 20 minutes since the last success: within the hour
    h.clock.set("2026-03-01T01:50:01Z")
    worker.check_dead_man(h.clock.now())
    [(_, event, message)] = alerts(h)
    assert event == "no_success" and "its last success was 2026-03-01T00:50:00Z" in message


def test_a_job_that_flaps_says_one_problem_and_one_recovery_per_cooldown(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    outcome = iter([RunStatus.FAILED, RunStatus.SUCCEEDED] * 3 + [RunStatus.FAILED])
    h.launcher.behaviour = lambda job, run: next(outcome)
    h.add("wobbly", cron="0 0 1 1 *", alert=("stdout",))  # alert_cooldown 1h
    for minute in range(1, 7):
        h.sched.run_now("wobbly", actor="test")
        h.run_until(f"2026-03-01T00:{minute:02d}:00Z")
    assert [e for _, e, _ in alerts(h)] == ["run_failed", "recovered"]
    assert h.store.alert_state(h.job("wobbly").id) == AlertState(
        open=False, last_event="recovered", last_alert_at=parse_instant(
            "2026-03-01T00:00:00Z"), held_back=2)
    h.clock.set("2026-03-01T01:00:01Z")  # the cooldown is over: the next one is told
    h.sched.run_now("wobbly", actor="test")
    h.run_until("2026-03-01T01:01:00Z")
    (_, event, message) = alerts(h)[-1]
    assert event == "run_failed"
    assert message.endswith("(2 more held back by alert_cooldown since 2026-03-01T00:00:00Z)")


def test_different_events_share_the_jobs_cooldown(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("flaky", cron="0 0 1 1 *", alert=("stdout",),
          alert_if_no_success_within_seconds=600)
    worker = DeliveryWorker(h.store, h.clock, Sent())
    for minute in range(5, 60, 5):  # a failure every 5 minutes, overdue from 00:10 on
        h.sched.run_now("flaky", actor="test")
        h.run_until(f"2026-03-01T00:{minute:02d}:00Z")
        worker.check_dead_man(h.clock.now())
    assert [e for _, e, _ in alerts(h)] == ["run_failed"]  # one alert in the hour


def test_every_dead_letter_is_told_even_within_the_cooldown(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("doomed", cron="*/10 * * * *", max_retries=0, alert=("stdout",))
    h.run_until("2026-03-01T00:10:30Z")
    h.jobs.reset("doomed", actor="test")  # the operator re-arms it; it fails again 10 minutes later
    h.run_until("2026-03-01T00:20:30Z")
    assert [e for _, e, _ in alerts(h)] == ["dead_letter", "dead_letter"]


def test_a_jobs_alerts_of_no_run_are_pruned_to_the_latest(tmp_path: Path) -> None:
    from symbid.store.deliveries import ALERTS_KEPT, AlertRequest

    h = Harness(tmp_path)
    job = h.add("watched", cron="0 0 1 1 *", alert=("stdout",))
    for i in range(ALERTS_KEPT + 20):
        assert h.store.raise_alert(AlertRequest(job_id=job.id, channels=("stdout",),
                                                event="no_success", message=f"m{i}",
                                                cooldown_ms=0), 1000 + i)
        with h.store._write() as conn:  # as if delivered
            conn.execute("UPDATE deliveries SET status = 'delivered'")
    kept = h.store.alerts_of(job.id, 1000)
    assert len(kept) == ALERTS_KEPT and kept[0].payload["message"] == f"m{ALERTS_KEPT + 19}"


# --- every way a job stops, or a failure goes unretried, alerts ------------------------


def test_a_job_whose_schedule_is_no_longer_valid_says_it_went_to_dead_letter(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.add("broken", cron="*/10 * * * *", alert=("stdout",))
    with h.store._write() as conn:  # as if written by an older symbid with looser rules
        conn.execute("UPDATE jobs SET timezone = 'Mars/Olympus_Mons'")
    h.run_until("2026-03-01T00:10:30Z")
    assert h.job("broken").status.value == "dead_letter"
    [(_, event, message)] = alerts(h)
    assert event == "dead_letter" and "schedule invalid" in message
    assert "symbi cron reset broken" in message


def test_a_one_shot_whose_only_slot_was_missed_says_it_is_now_failed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.add("once", at="2026-03-01T00:10:00Z", catch_up=CatchUp.SKIP, alert=("stdout",))
    h.clock.set("2026-03-01T02:00:00Z")  # symbid was down when it was due
    h.run_until("2026-03-01T02:00:01Z")
    assert h.job("once").status is JobStatus.FAILED
    [(_, event, message)] = alerts(h)
    assert event == "job_failed" and "skipped" in message and "catch_up=skip" in message


def test_a_one_shot_interrupted_by_a_crash_says_it_is_now_failed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.launcher.behaviour = lambda job, run: None  # still running when symbid dies
    h.add("once", at="2026-03-01T00:10:00Z", alert=("stdout",))
    h.run_until("2026-03-01T00:10:01Z")
    h.restart()
    assert h.job("once").status is JobStatus.FAILED
    [(_, event, message)] = alerts(h)
    assert event == "job_failed" and "interrupted" in message


def test_a_failure_whose_retry_is_dropped_by_a_re_arm_alerts_as_not_retried(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.launcher.behaviour = lambda job, run: None
    h.add("once", at="2026-03-01T00:10:00Z", max_retries=3, alert=("stdout",))
    h.run_until("2026-03-01T00:10:00Z")
    (first,) = list(h.launcher.running)
    h.jobs.update("once", lambda j: j.replace(at=parse_instant("2026-03-01T00:20:00Z")),
                  actor="test")
    h.launcher.finish(first, RunStatus.FAILED)  # fails after the re-arm: not retried
    h.run_until("2026-03-01T00:11:00Z")
    assert h.history("once")[0].retry_at is None
    [(_, event, message)] = alerts(h)
    assert event == "run_failed" and "re-armed" in message


def test_a_one_shot_re_armed_before_its_run_started_is_not_told_as_failed(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.add("once", at="2026-03-01T00:10:00Z", jitter_seconds=25, alert=("stdout",))
    h.run_until("2026-03-01T00:10:01Z")  # claimed, waiting out its jitter
    h.jobs.update("once", lambda j: j.replace(at=parse_instant("2026-03-01T00:20:00Z"),
                                                jitter_seconds=0), actor="test")
    h.run_until("2026-03-01T00:21:00Z")
    assert h.history("once")[0].status is RunStatus.CANCELLED
    assert h.job("once").status is JobStatus.COMPLETED
    assert alerts(h) == []  # the cancel did not end the job: nothing stopped


def test_an_alerts_attempts_are_logged_as_an_alert_not_as_a_runs_delivery(
        tmp_path: Path, caplog: Any) -> None:
    h = Harness(tmp_path)
    h.add("nightly", cron="0 0 1 1 *", alert=("stdout",),
          alert_if_no_success_within_seconds=60)
    worker = DeliveryWorker(h.store, h.clock, Sent(), workers=1)
    h.clock.set("2026-03-01T00:02:00Z")
    worker.check_dead_man(h.clock.now())
    caplog.set_level("INFO", logger="symbid.outbox")
    worker.tick(h.clock.now())
    worker.stop()  # waits for the attempt handed out to write its receipt
    [said] = [r for r in caplog.records if "delivered" in r.getMessage()]
    assert said.getMessage() == "job nightly: no_success alert to stdout: delivered (attempt 1)"
    assert said.__dict__["SYMBID_EVENT"] == "alert_delivered"
