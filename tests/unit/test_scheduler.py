"""The scheduling loop, driven by an injected clock: no sleeping, no patching."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbid.config import SchedulerConfig
from symbid.errors import Conflict
from symbid.model import CatchUp, JobStatus, Policy, RunStatus, Trigger, format_instant
from symbid.records import Run
from symbid.store import Advance
from tests.harness import Harness


def statuses(runs: list[Run]) -> list[tuple[str, str, str]]:
    return [(format_instant(r.slot), r.trigger.value, r.status.value) for r in runs]


def test_a_recurring_job_starts_on_each_slot(h: Harness) -> None:
    h.add("five", cron="*/5 * * * *")
    h.run_until("2026-03-01T00:20:00Z")
    assert h.started() == [
        ("five", f"2026-03-01T00:{m:02d}:00Z", f"2026-03-01T00:{m:02d}:00Z")
        for m in (5, 10, 15, 20)
    ]
    assert [r.status for r in h.history("five")] == [RunStatus.SUCCEEDED] * 4
    job = h.job("five")
    assert job.run_count == 4
    assert format_instant(job.next_run or 0) == "2026-03-01T00:25:00Z"


def test_the_loop_sleeps_until_just_before_the_next_slot_and_starts_it_on_time(
    h: Harness,
) -> None:
    h.add("daily", cron="0 9 * * *")
    wake = h.sched.tick(h.clock.now())
    # it wakes a moment early to claim the slot, then starts the run at the slot itself
    assert format_instant(wake or 0) == "2026-03-01T08:59:59.950Z"
    h.clock.set(wake or 0)
    assert format_instant(h.sched.tick(h.clock.now()) or 0) == "2026-03-01T09:00:00Z"
    assert h.history("daily")[0].status is RunStatus.PENDING
    assert h.launcher.started == []
    h.clock.set("2026-03-01T09:00:00Z")
    h.sched.tick(h.clock.now())
    assert h.started() == [("daily", "2026-03-01T09:00:00Z", "2026-03-01T09:00:00Z")]


def test_a_late_pass_keeps_the_schedule_anchored_to_slots(h: Harness) -> None:
    h.add("daily", cron="0 9 * * *")
    h.clock.set("2026-03-01T09:00:40Z")  # the loop woke 40 s late (within grace)
    h.sched.tick(h.clock.now())
    (run,) = h.history("daily")
    assert (format_instant(run.slot), run.trigger) == ("2026-03-01T09:00:00Z", Trigger.SCHEDULE)
    assert format_instant(h.job("daily").next_run or 0) == "2026-03-02T09:00:00Z"


def test_catch_up_latest_runs_the_newest_missed_slot_once(h: Harness) -> None:
    h.add("hourly", cron="0 * * * *")
    h.clock.set("2026-03-01T03:30:00Z")  # down since midnight
    h.run_until("2026-03-01T03:30:00Z")
    assert statuses(h.history("hourly")) == [
        ("2026-03-01T01:00:00Z", "schedule", "skipped"),
        ("2026-03-01T02:00:00Z", "schedule", "skipped"),
        ("2026-03-01T03:00:00Z", "catch_up", "succeeded"),
    ]
    assert "catch_up=latest" in (h.history("hourly")[0].error_message or "")
    assert format_instant(h.job("hourly").next_run or 0) == "2026-03-01T04:00:00Z"


def test_catch_up_latest_prefers_a_slot_that_is_due_now(h: Harness) -> None:
    h.add("hourly", cron="0 * * * *")
    h.clock.set("2026-03-01T03:00:10Z")
    h.run_until("2026-03-01T03:00:10Z")
    assert statuses(h.history("hourly")) == [
        ("2026-03-01T01:00:00Z", "schedule", "skipped"),
        ("2026-03-01T02:00:00Z", "schedule", "skipped"),
        ("2026-03-01T03:00:00Z", "schedule", "succeeded"),
    ]


def test_catch_up_skip_runs_nothing_and_records_every_missed_slot(h: Harness) -> None:
    h.add("hourly", cron="0 * * * *", catch_up=CatchUp.SKIP)
    h.clock.set("2026-03-01T03:30:00Z")
    h.run_until("2026-03-01T03:30:00Z")
    runs = h.history("hourly")
    assert [r.status for r in runs] == [RunStatus.SKIPPED] * 3
    assert all("missed by" in (r.error_message or "") and "catch_up=skip" in (r.error_message or "")
               for r in runs)
    assert h.launcher.started == []


def test_catch_up_all_works_through_missed_slots_in_turn_up_to_the_limit(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None  # runs stay running until finished
    h.add("hourly", cron="0 * * * *", catch_up=CatchUp.ALL, catch_up_limit=3)
    h.clock.set("2026-03-01T05:30:00Z")
    h.run_until("2026-03-01T05:30:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T03:00:00Z"]  # one at a time
    for _ in range(3):
        (run_id,) = list(h.launcher.running)
        h.launcher.finish(run_id, RunStatus.SUCCEEDED)
        h.run_until("2026-03-01T05:30:00Z")
    assert statuses(h.history("hourly")) == [
        ("2026-03-01T01:00:00Z", "schedule", "skipped"),
        ("2026-03-01T02:00:00Z", "schedule", "skipped"),
        ("2026-03-01T03:00:00Z", "catch_up", "succeeded"),
        ("2026-03-01T04:00:00Z", "catch_up", "succeeded"),
        ("2026-03-01T05:00:00Z", "catch_up", "succeeded"),
    ]
    assert "catch_up_limit=3" in (h.history("hourly")[0].error_message or "")


def test_a_very_long_outage_is_bounded_and_records_the_newest_slots(tmp_path: Path) -> None:
    h = Harness(tmp_path, keep_runs=50)
    h.add("every-minute", cron="* * * * *", catch_up=CatchUp.SKIP)
    h.clock.set("2026-04-01T00:00:30Z")  # a month of minutes missed
    h.run_until("2026-04-01T00:00:30Z")
    runs = h.history("every-minute")
    assert len(runs) == 50
    assert format_instant(runs[-1].slot) == "2026-04-01T00:00:00Z"
    assert format_instant(h.job("every-minute").next_run or 0) == "2026-04-01T00:01:00Z"


def test_a_slot_due_at_the_per_job_limit_is_skipped_and_the_schedule_moves_on(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("sync", cron="* * * * *", max_concurrent=1)
    h.run_until("2026-03-01T00:03:00Z")
    assert statuses(h.history("sync")) == [
        ("2026-03-01T00:01:00Z", "schedule", "running"),
        ("2026-03-01T00:02:00Z", "schedule", "skipped"),
        ("2026-03-01T00:03:00Z", "schedule", "skipped"),
    ]
    assert "max_concurrent reached (1 of 1" in (h.history("sync")[1].error_message or "")
    (run_id,) = list(h.launcher.running)
    h.launcher.finish(run_id, RunStatus.SUCCEEDED)
    h.run_until("2026-03-01T00:04:00Z")
    assert h.history("sync")[-1].status is RunStatus.RUNNING
    assert format_instant(h.history("sync")[-1].slot) == "2026-03-01T00:04:00Z"


def test_max_concurrent_two_allows_overlap(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("sync", cron="* * * * *", max_concurrent=2)
    h.run_until("2026-03-01T00:03:00Z")
    assert [r.status.value for r in h.history("sync")] == ["running", "running", "skipped"]


def test_due_runs_wait_for_the_global_limit_in_slot_order(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_concurrent_jobs=2)
    h.launcher.behaviour = lambda job, run: None
    for minute, name in [(4, "d"), (1, "a"), (3, "c"), (2, "b")]:
        h.add(name, cron=f"{minute} 0 * * *")
    h.clock.set("2026-03-01T00:04:00Z")
    h.run_until("2026-03-01T00:04:00Z")
    assert [n for n, _, _ in h.started()] == ["a", "b"]
    assert h.sched.queued() == 2
    # nothing is dropped: the waiting runs are on record as pending
    assert h.history("c")[0].status is RunStatus.PENDING
    first = next(rid for rid, (j, _) in h.launcher.running.items() if j.name == "b")
    h.launcher.finish(first, RunStatus.SUCCEEDED)
    h.run_until("2026-03-01T00:04:00Z")
    assert [n for n, _, _ in h.started()] == ["a", "b", "c"]
    for rid in list(h.launcher.running):
        h.launcher.finish(rid, RunStatus.SUCCEEDED)
    h.run_until("2026-03-01T00:04:00Z")
    assert [n for n, _, _ in h.started()] == ["a", "b", "c", "d"]
    assert h.sched.queued() == 0


def test_jitter_delays_the_start_but_keeps_the_slot(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_jitter_seconds=30)
    h.add("spread", cron="0 * * * *")
    h.run_until("2026-03-01T03:00:00Z")
    starts = h.launcher.started
    assert len(starts) == 2  # 01:00 and 02:00; the 03:00 start is still jittered ahead
    for _, run, started_at in starts:
        assert run.slot <= started_at <= run.slot + 30_000
    assert len({started_at - run.slot for _, run, started_at in starts}) > 1


def test_a_per_job_jitter_overrides_the_global_one(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_jitter_seconds=30)
    h.add("exact", cron="0 * * * *", jitter_seconds=0)
    h.run_until("2026-03-01T03:00:00Z")
    assert all(t == r.slot for _, r, t in h.launcher.started)


def test_failed_runs_retry_with_backoff_then_dead_letter(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("flaky", cron="0 * * * *", max_retries=3)
    h.run_until("2026-03-01T01:30:00Z")
    runs = h.history("flaky")
    assert [(r.attempt, r.trigger.value, r.status.value) for r in runs] == [
        (1, "schedule", "failed"), (2, "retry", "failed"), (3, "retry", "failed"),
        (4, "retry", "failed"),
    ]
    assert {format_instant(r.slot) for r in runs} == {"2026-03-01T01:00:00Z"}
    # backoff 10 s, 20 s, 40 s after each failure
    starts = [t - runs[0].slot for _, _, t in h.launcher.started]
    assert starts == [0, 10_000, 30_000, 70_000]
    assert h.job("flaky").status is JobStatus.DEAD_LETTER
    assert h.job("flaky").failure_count == 4
    h.run_until("2026-03-01T05:00:00Z")
    assert len(h.launcher.started) == 4  # a dead-letter job stops


def test_reset_re_arms_a_dead_letter_job_at_its_next_slot(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("flaky", cron="0 * * * *", max_retries=0)
    h.run_until("2026-03-01T01:00:00Z")
    assert h.job("flaky").status is JobStatus.DEAD_LETTER
    h.clock.set("2026-03-01T04:20:00Z")
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    job = h.jobs.reset("flaky", actor="test")
    assert job.status is JobStatus.ACTIVE
    assert format_instant(job.next_run or 0) == "2026-03-01T05:00:00Z"
    h.run_until("2026-03-01T05:00:00Z")
    assert [r.status.value for r in h.history("flaky")] == ["failed", "succeeded"]
    with pytest.raises(Conflict):
        h.jobs.reset("flaky", actor="test")


def test_a_newer_slot_still_runs_while_an_older_one_waits_for_its_retry(h: Harness) -> None:
    outcomes = iter([RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED])
    h.launcher.behaviour = lambda job, run: next(outcomes)
    h.config = SchedulerConfig(retry_backoff_seconds=90)
    h.sched = h.new_scheduler()
    h.add("minutely", cron="* * * * *")
    h.run_until("2026-03-01T00:02:30Z")
    assert statuses(h.history("minutely")) == [
        ("2026-03-01T00:01:00Z", "schedule", "failed"),
        ("2026-03-01T00:01:00Z", "retry", "succeeded"),
        ("2026-03-01T00:02:00Z", "schedule", "succeeded"),
    ]
    assert [t for _, _, t in h.started()] == [
        "2026-03-01T00:01:00Z", "2026-03-01T00:02:00Z", "2026-03-01T00:02:30Z",
    ]


def test_a_one_shot_completes_after_success(h: Harness) -> None:
    h.add("once", at="2026-03-01T00:00:02Z")
    h.run_until("2026-03-01T00:10:00Z")
    assert h.started() == [("once", "2026-03-01T00:00:02Z", "2026-03-01T00:00:02Z")]
    job = h.job("once")
    assert job.status is JobStatus.COMPLETED
    assert job.next_run is None


def test_a_one_shot_fails_after_its_retries(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    h.add("once", at="2026-03-01T00:00:02Z", max_retries=1)
    h.run_until("2026-03-01T00:10:00Z")
    assert [r.attempt for r in h.history("once")] == [1, 2]
    assert h.job("once").status is JobStatus.FAILED
    with pytest.raises(Conflict, match="cron run"):
        h.jobs.reset("once", actor="test")


def test_a_missed_one_shot_follows_its_catch_up_policy(h: Harness) -> None:
    h.add("late", at="2026-03-01T01:00:00Z")
    h.add("dropped", at="2026-03-01T01:00:00Z", catch_up=CatchUp.SKIP)
    h.clock.set("2026-03-01T05:00:00Z")
    h.run_until("2026-03-01T05:00:00Z")
    assert statuses(h.history("late")) == [("2026-03-01T01:00:00Z", "catch_up", "succeeded")]
    assert h.job("late").status is JobStatus.COMPLETED
    assert statuses(h.history("dropped")) == [("2026-03-01T01:00:00Z", "schedule", "skipped")]
    assert h.job("dropped").status is JobStatus.FAILED


def test_a_manual_run_starts_at_once_and_is_not_retried(h: Harness) -> None:
    h.add("report", cron="0 9 * * *")
    h.launcher.behaviour = lambda job, run: RunStatus.FAILED
    run = h.sched.run_now("report", "custom input", actor="test")
    assert run.trigger is Trigger.MANUAL and run.input == "custom input"
    h.run_until("2026-03-01T00:05:00Z")
    (only,) = h.history("report")
    assert only.status is RunStatus.FAILED and only.retry_at is None
    assert h.job("report").status is JobStatus.ACTIVE


def test_a_run_that_cannot_start_is_recorded_failed_and_retried(h: Harness) -> None:
    h.launcher.fail_to_start.add("broken")
    h.add("broken", cron="0 * * * *", max_retries=1)
    h.run_until("2026-03-01T01:05:00Z")
    runs = h.history("broken")
    assert [(r.attempt, r.status.value) for r in runs] == [(1, "failed"), (2, "failed")]
    assert "cannot start agent of broken" in (runs[0].error_message or "")
    assert h.job("broken").status is JobStatus.DEAD_LETTER


def test_a_paused_job_does_not_run_and_resumes_at_its_next_slot(h: Harness) -> None:
    h.add("hourly", cron="0 * * * *")
    h.jobs.pause("hourly", actor="test")
    h.run_until("2026-03-01T03:30:00Z")
    assert h.launcher.started == []
    job = h.jobs.resume("hourly", actor="test")
    assert format_instant(job.next_run or 0) == "2026-03-01T04:00:00Z"
    h.run_until("2026-03-01T04:00:00Z")
    assert statuses(h.history("hourly")) == [("2026-03-01T04:00:00Z", "schedule", "succeeded")]


@pytest.mark.parametrize(
    ("zone", "expr", "start", "end", "expected"),
    [
        ("America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z",
         ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z",
         ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
        ("America/New_York", "*/30 1 * * *", "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z",
         ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z",
          "2026-11-01T06:30:00Z"]),
        ("Australia/Lord_Howe", "15 2 * * *", "2026-10-02T12:00:00Z", "2026-10-04T16:00:00Z",
         ["2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]),
        ("America/Santiago", "0 0 * * *", "2026-09-05T12:00:00Z", "2026-09-07T12:00:00Z",
         ["2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"]),
    ],
)
def test_a_fixed_time_job_runs_once_on_dst_days(  # noqa: PLR0917
    tmp_path: Path, zone: str, expr: str, start: str, end: str, expected: list[str]
) -> None:
    h = Harness(tmp_path, start=start)
    h.add("dst", cron=expr, tz=zone)
    h.run_until(end)
    assert [s for _, s, _ in h.started()] == expected
    assert [t for _, _, t in h.started()] == expected


def test_a_forward_clock_jump_is_caught_up_by_policy(h: Harness) -> None:
    h.add("hourly", cron="0 * * * *")
    h.run_until("2026-03-01T01:00:00Z")
    h.clock.set("2026-03-01T06:15:00Z")  # the wall clock is stepped forward
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T06:15:00Z")
    assert statuses(h.history("hourly"))[-1] == ("2026-03-01T06:00:00Z", "catch_up", "succeeded")
    assert len(h.launcher.started) == 2


def test_a_backward_clock_step_never_fires_a_slot_twice(h: Harness) -> None:
    h.add("minutely", cron="*/10 * * * *")
    h.run_until("2026-03-01T01:00:00Z")
    ran = len(h.launcher.started)
    h.clock.set("2026-03-01T00:15:00Z")  # stepped back 45 minutes
    h.sched.clock_was_set()
    h.run_until("2026-03-01T01:00:00Z")
    assert len(h.launcher.started) == ran  # 00:20 .. 01:00 already ran: nothing twice
    h.run_until("2026-03-01T01:10:00Z")
    assert len(h.launcher.started) == ran + 1
    slots = [r.slot for r in h.history("minutely")]
    assert len(slots) == len(set(slots))


def test_a_clock_that_was_far_ahead_is_recovered_from(h: Harness) -> None:
    h.clock.set("2026-03-05T08:00:00Z")  # somebody set the clock days ahead
    h.add("daily", cron="0 9 * * *")
    h.run_until("2026-03-05T09:00:30Z")
    h.clock.set("2026-03-01T08:00:00Z")  # ... and fixed it
    h.waiter.clock_set_next = True
    h.run_until("2026-03-01T09:00:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-05T09:00:00Z", "2026-03-01T09:00:00Z"]


def test_stopping_interrupts_running_runs_after_the_timeout(tmp_path: Path) -> None:
    h = Harness(tmp_path, shutdown_timeout_seconds=0, max_concurrent_jobs=1)
    h.launcher.behaviour = lambda job, run: None
    h.add("long", cron="0 * * * *")
    h.add("queued", cron="0 * * * *")
    h.run_until("2026-03-01T01:00:00Z")
    h.sched.stop()
    # the running run is killed; the queued one never started: it stays pending for the
    # next start (tests/unit/test_run_lifecycle.py runs it after a restart)
    assert [r.status.value for r in h.history("long") + h.history("queued")] == \
        ["interrupted", "pending"]
    assert "shutdown" in (h.history("long")[0].error_message or "")
    h.run_until("2026-03-01T03:00:00Z")  # nothing more is claimed or started
    assert len(h.launcher.started) == 1


def test_start_up_recovery_interrupts_open_runs_and_never_re_runs_them(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("hourly", cron="0 * * * *")
    h.add("once", at="2026-03-01T01:00:00Z")
    h.run_until("2026-03-01T01:00:00Z")
    assert {r.status for r in h.history("hourly")} == {RunStatus.RUNNING}
    # the process dies here; a new scheduler starts on the same store
    assert h.restart().interrupted == 2
    h.run_until("2026-03-01T01:30:00Z")
    assert h.launcher.started == []
    (run,) = h.history("hourly")
    assert run.status is RunStatus.INTERRUPTED
    assert "not re-run" in (run.error_message or "")
    assert h.job("once").status is JobStatus.FAILED
    h.run_until("2026-03-01T02:00:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T02:00:00Z"]


def test_a_claim_for_a_job_changed_meanwhile_is_dropped(h: Harness) -> None:
    job = h.add("hourly", cron="0 * * * *")
    assert h.store.claim([Advance(job.id, job.version + 5, None, None)], ()) == []
    assert h.job("hourly").next_run == job.next_run


def test_retention_keeps_the_newest_runs_per_job(tmp_path: Path) -> None:
    h = Harness(tmp_path, keep_runs=5)
    h.add("minutely", cron="* * * * *")
    h.run_until("2026-03-01T00:12:00Z")
    runs = h.history("minutely")
    assert len(runs) == 5
    assert format_instant(runs[-1].slot) == "2026-03-01T00:12:00Z"
    assert h.job("minutely").run_count == 12


def test_max_runtime_must_be_positive(h: Harness) -> None:
    from symbid.errors import InvalidInput

    with pytest.raises(InvalidInput, match="max_runtime"):
        h.add("bad", cron="* * * * *", policy=Policy(max_runtime_seconds=0))


def test_outcomes_are_kept_when_the_store_cannot_record_them(h: Harness) -> None:
    from symbid.errors import StoreError

    h.launcher.behaviour = lambda job, run: None
    h.add("hourly", cron="0 * * * *")
    h.run_until("2026-03-01T01:00:00Z")
    (run_id,) = list(h.launcher.running)
    h.launcher.finish(run_id, RunStatus.SUCCEEDED)
    real_finish = h.store.finish
    calls = []

    def failing_once(finishes):  # type: ignore[no-untyped-def]
        calls.append(len(finishes))
        if len(calls) == 1:
            raise StoreError("database is locked")
        return real_finish(finishes)

    h.store.finish = failing_once  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        h.sched.tick(h.clock.now())
    assert h.history("hourly")[0].status is RunStatus.RUNNING
    h.sched.tick(h.clock.now())  # the next pass records it
    assert h.history("hourly")[0].status is RunStatus.SUCCEEDED
    assert h.sched.in_flight() == 0
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.run_until("2026-03-01T02:00:00Z")
    assert h.history("hourly")[-1].status is RunStatus.SUCCEEDED  # not skipped as "busy"


def test_a_one_shot_stopped_before_its_run_started_stays_active_and_pending(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, max_jitter_seconds=30, shutdown_timeout_seconds=0)
    h.add("once", at="2026-03-01T00:10:00Z")
    h.run_until("2026-03-01T00:10:00Z")  # claimed; waiting out its jitter
    assert h.launcher.started == []
    h.sched.stop()
    assert h.history("once")[0].status is RunStatus.PENDING
    assert h.job("once").status is JobStatus.ACTIVE


def test_queued_runs_of_deleted_or_paused_jobs_do_not_start(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_jitter_seconds=30)
    h.add("gone", cron="0 * * * *")
    h.add("paused", cron="0 * * * *")
    h.run_until("2026-03-01T01:00:00Z")  # both claimed, waiting out their jitter
    h.jobs.delete("gone", actor="test")
    h.jobs.pause("paused", actor="test")
    h.run_until("2026-03-01T01:01:00Z")
    assert h.launcher.started == []
    (run,) = h.history("paused")
    assert run.status is RunStatus.CANCELLED and "paused" in (run.error_message or "")
    h.sched.run_now("paused", actor="test")  # a manual run of a paused job still runs
    h.run_until("2026-03-01T01:02:00Z")
    assert [n for n, _, _ in h.started()] == ["paused"]


def test_skipped_slots_are_pruned_even_while_a_run_hangs(tmp_path: Path) -> None:
    h = Harness(tmp_path, keep_runs=10)
    h.launcher.behaviour = lambda job, run: None
    h.add("stuck", cron="* * * * *")
    h.run_until("2026-03-01T01:00:00Z")
    runs = h.history("stuck")
    assert len(runs) <= 11
    assert RunStatus.RUNNING in {r.status for r in runs}  # the open run is never pruned


def test_a_slot_claimed_ahead_runs_if_the_job_became_idle_before_it(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("sync", cron="* * * * *")
    h.run_until("2026-03-01T00:01:00Z")
    (first,) = list(h.launcher.running)
    h.clock.set("2026-03-01T00:01:59.950Z")
    h.sched.tick(h.clock.now())  # 00:02 is claimed while 00:01 still runs
    h.clock.set("2026-03-01T00:01:59.980Z")
    h.launcher.finish(first, RunStatus.SUCCEEDED)  # ...which ends before 00:02
    h.run_until("2026-03-01T00:02:00Z")
    assert [s for _, s, _ in h.started()] == ["2026-03-01T00:01:00Z", "2026-03-01T00:02:00Z"]


def test_a_slot_claimed_ahead_is_skipped_if_the_job_is_still_busy_when_due(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("sync", cron="* * * * *")
    h.run_until("2026-03-01T00:02:00Z")
    assert [r.status.value for r in h.history("sync")] == ["running", "skipped"]
    assert "max_concurrent reached" in (h.history("sync")[1].error_message or "")
