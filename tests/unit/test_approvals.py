"""Approvals in the run lifecycle, on a real SQLite store and a fake clock: a run that
needs approval waits ``awaiting_approval`` (holding its max_concurrent place), an approver
lets it start or denies it, anyone else is refused, an approval not given in time
cancels it, and the wait survives a restart."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import pytest

from symbid.errors import Conflict, Forbidden
from symbid.launch import DecisionRequest
from symbid.model import CatchUp, JobStatus, Policy, RunStatus
from symbid.records import Run
from symbid.timing import parse_instant
from tests.harness import Harness

GUARDED = Policy(require_approval=True, approvers=("alice", "bob"))


def decide(h: Harness, run_id: str, by: str, approve: bool = True,
           note: Optional[str] = None) -> DecisionRequest:
    """An approver's decision, taken by the loop's next pass (the harness has no thread)."""
    request = h.sched.runs.request_decision(DecisionRequest(run_id, by, approve, note))
    h.sched.tick(h.clock.now())
    assert request.done.is_set()
    return request


def waiting(h: Harness, name: str) -> Run:
    [run] = [r for r in h.history(name) if r.status is RunStatus.AWAITING_APPROVAL]
    return run


def test_a_run_awaits_approval_and_starts_when_an_approver_approves(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=GUARDED)
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    assert h.started() == []
    assert run.approval_deadline == parse_instant("2026-03-01T13:00:00Z")  # 1 h default

    answer = decide(h, run.id, "alice", note="ship it")
    assert answer.error is None and answer.run is not None
    h.run_until("2026-03-01T12:00:10Z")

    [done] = h.history("deploy")
    assert (done.status, done.approved_by, done.approval_note) == \
        (RunStatus.SUCCEEDED, "alice", "ship it")
    assert len(h.started()) == 1


def test_someone_not_listed_is_refused_naming_the_approvers(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=GUARDED)
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    answer = decide(h, run.id, "mallory")
    assert isinstance(answer.error, Forbidden)
    assert answer.error.message.startswith("only alice, bob may approve or deny run")
    assert waiting(h, "deploy").id == run.id and h.started() == []


def test_an_approver_denies_and_the_run_is_denied_with_the_reason(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", at="2026-03-01T12:00:00Z", policy=GUARDED)
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    assert decide(h, run.id, "bob", approve=False, note="freeze week").error is None
    [done] = h.history("deploy")
    assert (done.status, done.error_message, done.approved_by) == \
        (RunStatus.DENIED, "denied by bob: freeze week", "bob")
    assert h.job("deploy").status is JobStatus.FAILED  # a one-shot whose run is denied
    again = decide(h, run.id, "bob")
    assert isinstance(again.error, Conflict) and "denied, not awaiting approval" in \
        again.error.message


def test_an_approval_not_given_in_time_cancels_the_run(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *",
          policy=Policy(require_approval=True, approvers=("alice",),
                        approval_timeout_seconds=600))
    h.run_until("2026-03-01T12:09:59Z")
    assert waiting(h, "deploy")
    h.run_until("2026-03-01T12:10:01Z")
    [done] = h.history("deploy")
    assert done.status is RunStatus.CANCELLED and h.started() == []
    assert done.error_message == ("no approver decided by 2026-03-01T12:10:00Z (its "
                                  "approval_timeout); cancelled")
    assert h.job("deploy").failure_count == 0


def test_a_waiting_run_holds_its_place_and_the_next_slot_is_skipped_naming_it(
        tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="*/5 * * * *", policy=GUARDED)
    h.run_until("2026-03-01T12:05:05Z")
    runs = h.history("deploy")
    assert [r.status for r in runs] == [RunStatus.AWAITING_APPROVAL, RunStatus.SKIPPED]
    assert runs[1].error_message is not None and \
        f"{runs[0].id[:8]} awaiting approval" in runs[1].error_message


def test_a_waiting_run_survives_a_restart_and_is_approved_after_it(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=GUARDED)
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    report = h.restart()
    assert report.interrupted == 0
    assert waiting(h, "deploy").id == run.id
    assert decide(h, run.id, "alice").error is None
    h.run_until("2026-03-01T12:00:10Z")
    assert [r.status for r in h.history("deploy")] == [RunStatus.SUCCEEDED]


def test_the_alert_channels_hear_the_approve_command(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=GUARDED, alert=("stdout",))
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    [(event, message)] = [(json.loads(p)["event"], json.loads(p)["message"]) for (p,) in
                          h.store._query("SELECT payload FROM deliveries WHERE kind = 'alert'")]
    assert event == "awaiting_approval"
    assert f"symbi cron approve {run.id}" in message and "alice, bob" in message


def test_an_approvers_cancel_of_a_waiting_run_frees_its_place(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=GUARDED)
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    request = h.sched.runs.request_cancel(run.id, "token:alice")
    h.sched.tick(h.clock.now())
    assert request.outcome == "cancelled"
    assert h.sched.runs._per_job.get(h.job("deploy").id, []) == []


def test_anyone_else_may_not_cancel_a_waiting_run_for_it_would_be_a_denial(
        tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=GUARDED)
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    request = h.sched.runs.request_cancel(run.id, "token:mallory")
    h.sched.tick(h.clock.now())
    assert isinstance(request.error, Forbidden)
    assert "only alice, bob may cancel it" in request.error.message
    assert "you are mallory" in request.error.message
    assert h.store.get_run(run.id).status is RunStatus.AWAITING_APPROVAL
    assert decide(h, run.id, "bob", approve=True).error is None  # it still waits for them


@pytest.mark.parametrize("approve", [True, False])
def test_an_unknown_run_is_not_found(tmp_path: Path, approve: bool) -> None:
    from symbid.errors import NotFound

    h = Harness(tmp_path)
    answer = decide(h, "no-such-run", "alice", approve)
    assert isinstance(answer.error, NotFound)


def test_an_approved_run_not_started_before_a_restart_starts_after_it(tmp_path: Path) -> None:
    """Its lateness is the approver's wait, not a missed slot: catch_up does not skip it."""
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z", max_concurrent_jobs=1)
    h.add("deploy", cron="0 12 * * *", policy=GUARDED, catch_up=CatchUp.SKIP)
    h.add("busy", cron="0 12 * * *")
    h.launcher.behaviour = lambda job, run: None if job.name == "busy" else RunStatus.SUCCEEDED
    h.run_until("2026-03-01T12:00:05Z")  # busy holds the one global place
    run = waiting(h, "deploy")
    h.clock.set("2026-03-01T12:30:00Z")
    assert decide(h, run.id, "alice").error is None  # approved; waits for the global place
    h.restart()
    h.launcher.behaviour = lambda job, run: RunStatus.SUCCEEDED
    h.run_until("2026-03-01T12:30:10Z")
    [done] = h.history("deploy")
    assert (done.status, done.approved_by) == (RunStatus.SUCCEEDED, "alice")


def test_an_expiry_reads_the_job_as_it_is_now(tmp_path: Path) -> None:
    from dataclasses import replace

    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    job = h.add("deploy", at="2026-03-01T12:00:00Z", alert=("stdout",),
                policy=Policy(require_approval=True, approvers=("alice",),
                              approval_timeout_seconds=60))
    h.run_until("2026-03-01T12:00:05Z")
    # alerts removed meanwhile
    h.jobs.update("deploy", lambda j: replace(j, alert=()), actor="test")
    before = h.store._query("SELECT COUNT(*) FROM deliveries")[0][0]
    h.run_until("2026-03-01T12:01:10Z")
    assert [r.status for r in h.history("deploy")] == [RunStatus.CANCELLED]
    assert h.store._query("SELECT COUNT(*) FROM deliveries")[0][0] == before
    assert job.id == h.job("deploy").id


def test_a_deleted_jobs_waiting_run_goes_quietly(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=Policy(
        require_approval=True, approvers=("alice",), approval_timeout_seconds=60))
    h.run_until("2026-03-01T12:00:05Z")
    h.jobs.delete("deploy", actor="test")
    with caplog.at_level(logging.INFO, logger="symbid.lifecycle"):
        h.run_until("2026-03-01T12:01:10Z")
    assert h.sched.runs._awaiting == {} and h.sched.runs.next_start() is None
    assert "approval expired" not in caplog.text


def test_approving_a_run_of_a_paused_job_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=GUARDED)
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    h.jobs.pause("deploy", actor="test")
    answer = decide(h, run.id, "alice")
    assert isinstance(answer.error, Conflict) and "is paused: resume it first" in \
        answer.error.message
    assert waiting(h, "deploy").id == run.id


def test_an_approved_run_its_window_then_denies_is_recorded_policy_denied(
        tmp_path: Path) -> None:
    from dataclasses import replace

    from symbid.model import AllowedHours

    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *",
          policy=replace(GUARDED, allowed_hours=AllowedHours("12:00", "12:10")))
    h.run_until("2026-03-01T12:00:05Z")
    run = waiting(h, "deploy")
    h.clock.set("2026-03-01T12:30:00Z")
    assert decide(h, run.id, "alice", note="ship it").error is None
    h.run_until("2026-03-01T12:30:05Z")
    [done] = h.history("deploy")
    assert done.status is RunStatus.DENIED and "allowed_hours 12:00-12:10" in \
        (done.error_message or "")
    trail = [(r.event.type, r.event.actor) for r in reversed(h.store.query_audit())]
    assert trail == [("CronJobCreated", "test"), ("ApprovalRequested", "scheduler"),
                     ("ApprovalGranted", "alice"), ("PolicyDenied", "scheduler")]


def test_a_dead_letter_the_store_did_not_apply_is_not_on_the_record(tmp_path: Path) -> None:
    from dataclasses import replace

    h = Harness(tmp_path, start="2026-03-01T00:59:00Z")
    h.launcher.behaviour = lambda job, run: None  # it keeps running
    h.add("doomed", cron="0 1 * * *", max_retries=0)
    h.run_until("2026-03-01T01:00:05Z")
    [(_job, run)] = list(h.sched.runs._running.values())
    # changed meanwhile
    h.jobs.update("doomed", lambda j: replace(j, cron_expr="0 2 * * *"), actor="test")
    h.launcher.finish(run.id, RunStatus.FAILED)
    h.run_until("2026-03-01T01:00:10Z")
    assert h.job("doomed").status is JobStatus.ACTIVE
    types = [r.event.type for r in h.store.query_audit()]
    assert "CronJobFailed" in types and "CronJobDeadLettered" not in types
