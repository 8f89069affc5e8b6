"""An operator's cancel of a run, through the run lifecycle (store first), on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbid.errors import NotFound
from symbid.launch import CancelRequest
from symbid.model import JobStatus, RunStatus
from tests.harness import Harness


def cancel(h: Harness, run_id: str, by: str = "uid:1000") -> CancelRequest:
    """Ask, then let the loop make its pass (the harness runs no loop thread)."""
    request = h.sched.runs.request_cancel(run_id, by)
    h.sched.tick(h.clock.now())
    assert request.done.is_set()
    if request.error is not None:
        raise request.error
    return request


def test_a_run_waiting_for_a_place_is_cancelled_without_starting(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_concurrent_jobs=1)
    h.launcher.behaviour = lambda job, run: None
    h.add("a", cron="0 1 * * *")
    h.add("b", cron="0 1 * * *")
    h.run_until("2026-03-01T01:00:00Z")
    (waiting,) = h.history("b")
    assert waiting.status is RunStatus.PENDING

    answer = cancel(h, waiting.id)
    assert answer.outcome == "cancelled"
    assert answer.run is not None and answer.run.status is RunStatus.CANCELLED
    stored = h.store.get_run(waiting.id)
    assert stored.status is RunStatus.CANCELLED
    assert stored.error_message == "cancelled by uid:1000 before it started"
    (a_run,) = list(h.launcher.running)
    h.launcher.finish(a_run, RunStatus.SUCCEEDED)
    h.run_until("2026-03-01T01:00:30Z")
    assert [n for n, _, _ in h.started()] == ["a"]  # b never started
    assert h.job("b").status is JobStatus.ACTIVE and h.job("b").run_count == 0


def test_a_manual_run_not_yet_queued_is_cancelled_without_starting(h: Harness) -> None:
    h.add("job", cron="0 1 * * *")
    run = h.sched.run_now("job", actor="test")
    answer = cancel(h, run.id)
    assert answer.outcome == "cancelled"
    assert h.store.get_run(run.id).status is RunStatus.CANCELLED
    assert h.started() == []


def test_a_running_run_is_killed_and_recorded_cancelled_neither_retried_nor_failed(
        h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("job", cron="0 1 * * *", max_retries=3)
    h.run_until("2026-03-01T01:00:00Z")
    (run_id,) = list(h.launcher.running)

    answer = cancel(h, run_id)
    assert answer.outcome == "killing"
    assert answer.run is not None and answer.run.status is RunStatus.RUNNING
    assert h.launcher.cancelled == [(run_id, "uid:1000")]
    h.launcher.finish(run_id, RunStatus.CANCELLED, "cancelled by uid:1000; the run's "
                                                   "process group was killed")
    h.run_until("2026-03-01T01:30:00Z")  # well past every retry backoff
    assert [(r.trigger.value, r.status.value) for r in h.history("job")] == \
        [("schedule", "cancelled")]
    stored = h.store.get_run(run_id)
    assert stored.retry_at is None and stored.error_message is not None
    assert stored.error_message.startswith("cancelled by uid:1000")
    job = h.job("job")
    assert job.status is JobStatus.ACTIVE
    assert (job.run_count, job.failure_count) == (1, 0)  # it ran; it is not a failure
    assert run_id in h.launcher.released  # its live output goes once it is stored


def test_a_one_shot_whose_run_is_cancelled_ends_failed(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_concurrent_jobs=1)
    h.launcher.behaviour = lambda job, run: None
    h.add("hog", cron="0 1 * * *")
    h.add("once", at="2026-03-01T01:00:00Z")
    h.run_until("2026-03-01T01:00:00Z")
    (waiting,) = h.history("once")
    assert cancel(h, waiting.id).outcome == "cancelled"
    assert h.job("once").status is JobStatus.FAILED


def test_a_finished_run_is_answered_with_how_it_ended(h: Harness) -> None:
    h.add("job", cron="0 1 * * *")
    h.run_until("2026-03-01T01:00:00Z")
    (run,) = h.history("job")
    answer = cancel(h, run.id)
    assert answer.outcome == "ended"
    assert answer.run is not None and answer.run.status is RunStatus.SUCCEEDED
    assert h.launcher.cancelled == []


def test_a_run_whose_process_just_ended_is_answered_ended(h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("job", cron="0 1 * * *")
    h.run_until("2026-03-01T01:00:00Z")
    (run_id,) = list(h.launcher.running)
    h.launcher.running.clear()  # its process is gone; its outcome is not yet in
    assert cancel(h, run_id).outcome == "ended"


def test_cancelling_an_unknown_run_raises_not_found(h: Harness) -> None:
    with pytest.raises(NotFound):
        cancel(h, "00000000-0000-4000-8000-000000000000")
