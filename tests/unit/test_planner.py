"""The planner's decisions, as pure functions: no store, no clock, no processes."""

from __future__ import annotations

import random

import pytest

from symbid.config import SchedulerConfig
from symbid.model import CatchUp, Job, JobStatus, RunStatus, Trigger, format_instant, new_id
from symbid.planner import (
    backoff_ms,
    due_slots,
    finish_decision,
    plan_job,
    plan_retry,
    recovered,
    start_gate,
)
from symbid.records import Run, RunOutcome
from symbid.spans import MAX_SPANS, add_span, claimed_span, first_free_slot
from symbid.timing import make_schedule, parse_instant

T = parse_instant("2026-03-01T00:00:00Z")
MIN = 60_000
CONFIG = SchedulerConfig(retry_backoff_seconds=10, misfire_grace_seconds=60)


def job(**kw: object) -> Job:
    kw.setdefault("cron_expr", None if "at" in kw else "* * * * *")
    kw.setdefault("next_run", T + MIN)
    return Job(id="j", name="j", agent_id="a", **kw)  # type: ignore[arg-type]


def run(slot: int, **kw: object) -> Run:
    kw.setdefault("trigger", Trigger.SCHEDULE)
    kw.setdefault("status", RunStatus.PENDING)
    kw.setdefault("attempt", 1)
    return Run(id=new_id(), job_id="j", slot=slot, created_at=slot, **kw)  # type: ignore[arg-type]


def times(slots: list[int]) -> list[str]:
    return [format_instant(s)[11:16] for s in slots]


# --- spans -------------------------------------------------------------------------------


def test_a_claim_above_every_span_extends_the_highest() -> None:
    spans = add_span((), T, T + MIN)
    assert add_span(spans, T + 2 * MIN, T + 3 * MIN) == ((T, T + 3 * MIN),)


def test_a_claim_below_the_spans_stands_apart_until_it_reaches_them() -> None:
    spans = add_span((), T + 10 * MIN, T + 10 * MIN)
    spans = add_span(spans, T, T + MIN)
    assert spans == ((T, T + MIN), (T + 10 * MIN, T + 10 * MIN))
    assert add_span(spans, T + 2 * MIN, T + 10 * MIN) == ((T, T + MIN), (T + 2 * MIN, T + 10 * MIN))
    assert add_span(spans, T + MIN, T + 11 * MIN) == ((T, T + 11 * MIN),)


def test_too_many_spans_merge_from_the_bottom_so_that_nothing_is_claimed_twice() -> None:
    spans: tuple[tuple[int, int], ...] = ((T + 100 * MIN, T + 100 * MIN),)
    for i in range(MAX_SPANS + 12, 0, -1):
        spans = add_span(spans, T + 2 * i * MIN, T + 2 * i * MIN)
    assert len(spans) == MAX_SPANS
    for i in range(1, MAX_SPANS + 13):  # every claimed instant is still inside a span
        assert claimed_span(spans, T + 2 * i * MIN) is not None


def test_consecutive_claims_below_the_spans_grow_one_span() -> None:
    schedule = make_schedule("* * * * *", None, "UTC")
    spans: tuple[tuple[int, int], ...] = ((T + 60 * MIN, T + 70 * MIN),)
    for m in range(0, 20):  # the clock went back: one slot claimed per pass
        spans = add_span(spans, T + m * MIN, T + m * MIN, schedule)
    assert spans == ((T, T + 19 * MIN), (T + 60 * MIN, T + 70 * MIN))
    # reaching the span above, with no slot between, joins it
    assert add_span(spans, T + 20 * MIN, T + 59 * MIN, schedule) == ((T, T + 70 * MIN),)


def test_the_first_free_slot_skips_claimed_spans() -> None:
    schedule = make_schedule("* * * * *", None, "UTC")
    spans = ((T + MIN, T + 5 * MIN),)
    assert first_free_slot(schedule, T, spans) == T + 6 * MIN
    assert first_free_slot(schedule, T + 6 * MIN, spans) == T + 7 * MIN


# --- due slots and plans -------------------------------------------------------------


def test_due_slots_walk_around_claimed_spans() -> None:
    schedule = make_schedule("* * * * *", None, "UTC")
    due = due_slots(schedule, T + MIN, T + 8 * MIN, 100, ((T + 3 * MIN, T + 5 * MIN),))
    assert times(due.slots) == ["00:01", "00:02", "00:06", "00:07", "00:08"]
    assert due.next_slot == T + 9 * MIN


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        (CatchUp.LATEST, [("00:01", "skipped"), ("00:02", "skipped"), ("00:03", "catch_up")]),
        (CatchUp.SKIP, [("00:01", "skipped"), ("00:02", "skipped"), ("00:03", "skipped")]),
        (CatchUp.ALL, [("00:01", "catch_up"), ("00:02", "catch_up"), ("00:03", "catch_up")]),
    ],
)
def test_missed_slots_follow_catch_up(catch_up: CatchUp, expected: list[tuple[str, str]]) -> None:
    adv = plan_job(job(catch_up=catch_up, max_concurrent=10), T + 5 * MIN, T + 5 * MIN, (),
                   config=CONFIG,
                   rng=random.Random(1))
    got = sorted((format_instant(r.slot)[11:16],
                  "skipped" if r.status is RunStatus.SKIPPED else r.trigger.value)
                 for r in adv.runs)
    # 00:04 and 00:05 are within the grace and later than 00:03: with latest, the newer ran
    if catch_up is CatchUp.LATEST:
        expected = [(t, "skipped") for t, _ in expected] + [("00:04", "schedule"),
                                                           ("00:05", "schedule")]
    else:
        expected = expected + [("00:04", "schedule"), ("00:05", "schedule")]
    assert got == expected
    assert adv.claimed == ((T + MIN, T + 5 * MIN),)
    assert adv.next_run == T + 6 * MIN


def test_a_slot_due_at_the_limit_is_skipped_and_one_claimed_ahead_is_left_to_the_gate() -> None:
    now = T + MIN
    going = [("3f2a9c1d-0000", "running")]
    adv = plan_job(job(), now, now + 50, going, config=CONFIG, rng=random.Random(1))
    assert [(r.status, r.error_message) for r in adv.runs] == [
        (RunStatus.SKIPPED, "max_concurrent reached (1 of 1 runs open: 3f2a9c1d running)")]
    ahead = plan_job(job(), now - 20, now + 30, going, config=CONFIG, rng=random.Random(1))
    assert [r.status for r in ahead.runs] == [RunStatus.PENDING]


def test_a_one_shot_whose_slot_is_skipped_fails() -> None:
    adv = plan_job(job(at=T + MIN, catch_up=CatchUp.SKIP), T + 10 * MIN, T + 10 * MIN, (),
                   config=CONFIG, rng=random.Random(1))
    assert adv.status is JobStatus.FAILED and adv.next_run is None
    assert adv.claimed == ((T + MIN, T + MIN),)


def test_a_retry_waits_while_its_job_is_at_its_limit() -> None:
    failed = run(T, status=RunStatus.FAILED, retry_at=T + 10_000)
    assert plan_retry(failed, job(), 1, T + 20_000) is None
    nxt = plan_retry(failed, job(), 0, T + 20_000)
    assert nxt is not None and (nxt.attempt, nxt.trigger, nxt.not_before) == \
        (2, Trigger.RETRY, T + 20_000)


# --- the start gate ------------------------------------------------------------------


def test_the_start_gate() -> None:
    active = job(max_concurrent=1)
    one = ["3f2a9c1d-0000"]
    assert start_gate(active, run(T), []).action == "start"
    busy = start_gate(active, run(T), one)
    assert (busy.action, busy.status) == ("drop", RunStatus.SKIPPED)
    assert "3f2a9c1d running" in (busy.reason or "")  # the skip names the run that holds it
    assert start_gate(active, run(T, trigger=Trigger.CATCH_UP), one).action == "wait"
    assert start_gate(active, run(T, trigger=Trigger.RETRY, attempt=2), one).action == "wait"
    assert start_gate(active, run(T, trigger=Trigger.MANUAL), one * 5).action == "start"
    assert start_gate(job(at=T), run(T), one).action == "wait"  # a one-shot's only slot
    paused = start_gate(job(status=JobStatus.PAUSED), run(T), [])
    assert (paused.action, paused.status) == ("drop", RunStatus.CANCELLED)
    assert start_gate(job(status=JobStatus.PAUSED), run(T, trigger=Trigger.MANUAL),
                      []).action == "start"
    assert start_gate(None, run(T), []).action == "drop"


# --- finishing -----------------------------------------------------------------------


def outcome(r: Run, status: RunStatus) -> RunOutcome:
    return RunOutcome(run_id=r.id, job_id="j", status=status, finished_at=T + 5)


def test_a_failure_is_retried_after_its_backoff_then_dead_letters() -> None:
    j = job(max_retries=2)
    first = finish_decision(j, run(T), outcome(run(T), RunStatus.FAILED), T + 5, CONFIG)
    assert (first.run.retry_at, first.job_status) == (T + 5 + backoff_ms(1, CONFIG), None)
    last = run(T, attempt=3, trigger=Trigger.RETRY)
    final = finish_decision(j, last, outcome(last, RunStatus.TIMED_OUT), T + 5, CONFIG)
    assert (final.job_status, final.belongs_to, final.clear_retries) == \
        (JobStatus.DEAD_LETTER, ("* * * * *", None), True)


@pytest.mark.parametrize(
    ("status", "end"),
    [(RunStatus.SUCCEEDED, JobStatus.COMPLETED), (RunStatus.INTERRUPTED, JobStatus.FAILED),
     (RunStatus.CANCELLED, JobStatus.FAILED)],
)
def test_a_one_shot_ends_with_its_run_while_it_still_has_that_slot(
    status: RunStatus, end: JobStatus
) -> None:
    j = job(at=T, max_retries=0)
    fin = finish_decision(j, run(T), outcome(run(T), status), T + 5, CONFIG)
    assert (fin.job_status, fin.belongs_to) == (end, (None, T))


def test_a_manual_run_never_changes_its_job() -> None:
    m = run(T, trigger=Trigger.MANUAL)
    fin = finish_decision(job(at=T), m, outcome(m, RunStatus.FAILED), T + 5, CONFIG)
    assert (fin.job_status, fin.run.retry_at) == (None, None)


# --- restarts --------------------------------------------------------------------------


def test_never_started_runs_found_in_time_start_as_they_were() -> None:
    waiting = run(T, not_before=T + 20_000)
    start, ended = recovered(job(), [waiting], T + 30_000, CONFIG, newer_due=False)
    assert (start, ended) == ([waiting], [])


@pytest.mark.parametrize(
    ("catch_up", "newer_due", "started"),
    [(CatchUp.LATEST, False, 1), (CatchUp.LATEST, True, 0), (CatchUp.ALL, True, 2),
     (CatchUp.SKIP, False, 0)],
)
def test_never_started_runs_found_late_follow_catch_up(
    catch_up: CatchUp, newer_due: bool, started: int
) -> None:
    late = [run(T), run(T + MIN)]
    start, ended = recovered(job(catch_up=catch_up), late, T + 10 * MIN, CONFIG, newer_due)
    assert len(start) == started and len(ended) == 2 - started
    for fin in ended:
        assert fin.run.status is RunStatus.SKIPPED
        assert "symbid was down" in (fin.run.error_message or "")
    if catch_up is CatchUp.LATEST and started:
        assert start == [late[-1]]


def test_retries_and_manual_runs_found_after_a_restart_always_start() -> None:
    retry = run(T, attempt=2, trigger=Trigger.RETRY, not_before=T)
    manual = run(T, trigger=Trigger.MANUAL)
    start, ended = recovered(job(catch_up=CatchUp.SKIP), [retry, manual], T + 60 * MIN,
                             CONFIG, newer_due=True)
    assert sorted(r.id for r in start) == sorted([retry.id, manual.id]) and ended == []


def test_the_backoff_of_a_very_late_attempt_is_at_its_cap() -> None:
    assert backoff_ms(10_000, CONFIG) == int(CONFIG.retry_backoff_max_seconds * 1000)
