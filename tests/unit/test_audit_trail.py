"""What a change puts on the audit trail: each event by the one who made the change (the
socket peer's user name, the token's name), written in the change's own transaction, so
that a change whose event cannot be stored is not made, and a change refused leaves no
event. On a real SQLite store and a fake clock."""

from __future__ import annotations

import pwd
import sqlite3
from pathlib import Path

import pytest

from symbid.agentdef import Agent
from symbid.dsl.loader import load_dir
from symbid.errors import Conflict, StoreError, UnreadableRow
from symbid.executor import Agents
from symbid.model import CatchUp, JobStatus, RunStatus
from symbid.registry import AgentService
from tests.harness import Harness

ROOT = pwd.getpwuid(0).pw_name  # the harness's API requests come from uid 0


def trail(h: Harness) -> list[tuple[str, str, str | None]]:
    """(type, actor, job name) of every event, oldest first."""
    return [(r.event.type, r.event.actor, r.event.job_name or r.event.details.get("agent"))
            for r in reversed(h.store.query_audit(limit=1000))]


def break_the_trail(h: Harness) -> None:
    """The audit table goes away (as a damaged or full database would refuse its rows):
    every write of an event fails from now on."""
    with sqlite3.connect(h.tmp_path / "state.db") as conn:
        conn.execute("ALTER TABLE audit RENAME TO audit_gone")


def test_each_change_made_through_the_api_is_on_the_trail_by_its_actor(h: Harness) -> None:
    assert h.api("POST", "/api/v1/agents", {"name": "worker", "command": ["/bin/true"]})[0] \
        == 201
    status, job = h.api("POST", "/api/v1/schedule",
                        {"name": "nightly", "agent_id": "worker", "cron_expr": "0 2 * * *"})
    assert status == 201
    for method, path, body in (
            ("PUT", f"/api/v1/schedule/{job['id']}", {"cron_expr": "0 3 * * *"}),
            ("POST", f"/api/v1/schedule/{job['id']}/pause", None),
            ("POST", f"/api/v1/schedule/{job['id']}/resume", None),
            ("POST", f"/api/v1/schedule/{job['id']}/run", None),
            ("DELETE", f"/api/v1/schedule/{job['id']}", None),
            ("DELETE", "/api/v1/agents/worker", None)):
        assert h.api(method, path, body)[0] in (200, 202), (method, path)
    assert trail(h) == [
        ("AgentDefined", ROOT, "worker"), ("CronJobCreated", ROOT, "nightly"),
        ("CronJobUpdated", ROOT, "nightly"), ("CronJobPaused", ROOT, "nightly"),
        ("CronJobResumed", ROOT, "nightly"), ("CronJobTriggered", ROOT, "nightly"),
        ("CronJobDeleted", ROOT, "nightly"), ("AgentRemoved", ROOT, "worker")]
    [triggered] = [r for r in h.store.query_audit(type="CronJobTriggered")]
    assert triggered.event.run_id is not None


def test_a_change_whose_event_cannot_be_stored_is_not_made(h: Harness) -> None:
    h.add("kept", cron="0 2 * * *")
    agents = AgentService(h.store, h.clock, Agents(), agents_dir=str(h.tmp_path / "a"))
    agents.define([Agent(name="helper", command=("/bin/true",))], actor="alice")
    break_the_trail(h)

    with pytest.raises(StoreError):
        h.jobs.pause("kept", actor="alice")
    assert h.job("kept").status is JobStatus.ACTIVE
    with pytest.raises(StoreError):
        h.jobs.update("kept", lambda j: j.replace(cron_expr="0 3 * * *"), actor="alice")
    assert h.job("kept").cron_expr == "0 2 * * *"
    with pytest.raises(StoreError):
        h.jobs.delete("kept", actor="alice")
    assert h.store.find_job("kept") is not None
    with pytest.raises(StoreError):
        h.sched.run_now("kept", actor="alice")
    assert h.history("kept") == []
    with pytest.raises(StoreError):
        h.add("new", cron="0 2 * * *")
    assert h.store.find_job("new") is None
    with pytest.raises(StoreError):
        agents.define([Agent(name="other", command=("/bin/true",))], actor="alice")
    with pytest.raises(StoreError):
        agents.remove("helper", actor="alice")
    assert [a.name for a in h.store.list_agents()] == ["helper"]


def test_a_load_of_agents_dir_whose_events_cannot_be_stored_changes_nothing(
        h: Harness) -> None:
    directory = h.tmp_path / "agents.d"
    directory.mkdir()
    (directory / "ops.symbi").write_text(
        'agent ops { command: ["/bin/true"] }\n'
        'schedule sweep { cron: "0 4 * * *" agent: "ops" }\n')
    files = load_dir(str(directory), h.clock.now(), known_agents={"ops"})
    agents = AgentService(h.store, h.clock, Agents(), agents_dir=str(directory))
    break_the_trail(h)
    with pytest.raises(StoreError):
        agents.sync_files(files)
    with pytest.raises(StoreError):
        h.jobs.sync_files(files)
    assert h.store.list_agents() == [] and h.store.find_job("sweep") is None


def test_a_refused_change_leaves_no_event(h: Harness) -> None:
    h.add("once", at="2026-03-01T00:10:00Z")
    h.run_until("2026-03-01T00:10:05Z")  # it ran: completed, it cannot be paused
    assert h.job("once").status is JobStatus.COMPLETED
    before = trail(h)
    with pytest.raises(Conflict):
        h.jobs.pause("once", actor="alice")
    assert trail(h) == before


def test_a_cancel_is_on_the_trail_by_name_with_the_end_it_caused(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_concurrent_jobs=1)
    h.launcher.behaviour = lambda job, run: None  # runs go on until finished by hand
    h.add("long", cron="0 1 * * *")
    h.add("queued", cron="0 1 * * *")
    h.run_until("2026-03-01T01:00:00Z")
    [going] = list(h.launcher.running)
    [waiting] = h.history("queued")

    for run_id in (going, waiting.id):
        request = h.sched.runs.request_cancel(run_id, "token:ops")
        h.sched.tick(h.clock.now())
        assert request.error is None
    # the queued run ended at once, with its event; the going one only once it has ended
    assert ("RunCancelled", "ops", "queued") in trail(h)
    assert ("RunCancelled", "ops", "long") not in trail(h)
    h.launcher.finish(going, RunStatus.CANCELLED, "cancelled by token:ops")
    h.run_until("2026-03-01T01:00:10Z")
    [cancelled] = h.store.query_audit(type="RunCancelled", job="long")
    assert (cancelled.event.actor, cancelled.event.run_id) == ("ops", going)
    assert cancelled.event.details["status"] == "cancelled"


def test_a_run_that_ends_by_itself_before_its_kill_is_not_recorded_cancelled(
        h: Harness) -> None:
    h.launcher.behaviour = lambda job, run: None
    h.add("quick", cron="0 1 * * *")
    h.run_until("2026-03-01T01:00:00Z")
    [going] = list(h.launcher.running)
    request = h.sched.runs.request_cancel(going, "token:ops")
    h.sched.tick(h.clock.now())
    assert request.outcome == "killing"
    h.launcher.finish(going, RunStatus.SUCCEEDED)  # it had ended before the kill landed
    h.run_until("2026-03-01T01:00:10Z")
    assert h.store.query_audit(type="RunCancelled") == []
    assert [e for e, _, _ in trail(h)][-1] == "CronJobExecuted"


def test_a_queued_run_whose_job_cannot_be_read_is_cancelled_on_the_record(
        h: Harness) -> None:
    job = h.add("doomed", cron="0 1 * * *")
    run = h.sched.run_now("doomed", actor="alice")
    with sqlite3.connect(h.tmp_path / "state.db") as conn:  # a row no one can read
        conn.execute("UPDATE jobs SET status = 'lost' WHERE id = ?", (job.id,))
    with pytest.raises(UnreadableRow):
        h.store.find_job(job.id)
    request = h.sched.runs.request_cancel(run.id, "token:ops")
    h.sched.tick(h.clock.now())
    assert h.store.get_run(run.id).status is RunStatus.CANCELLED
    [cancelled] = h.store.query_audit(type="RunCancelled")
    assert (cancelled.event.actor, cancelled.event.job_id, cancelled.event.run_id) == \
        ("ops", job.id, run.id)
    assert request.error is None



# --- a job that stops is on the record, whatever stopped it ------------------------------


def stops(h: Harness) -> list[tuple[str, str, str, str]]:
    return [(r.event.type, r.event.actor, r.event.details["status"],
             r.event.details["job_status"]) for r in reversed(h.store.query_audit())
            if "job_status" in r.event.details]


def test_a_job_whose_schedule_is_no_longer_valid_is_dead_lettered_on_the_record(
        h: Harness) -> None:
    h.add("broken", cron="*/10 * * * *")
    h.add("once", at="2026-03-01T00:10:00Z")
    with h.store._write() as conn:  # as if written by an older symbid with looser rules
        conn.execute("UPDATE jobs SET timezone = 'Mars/Olympus_Mons'")
    h.run_until("2026-03-01T00:10:30Z")
    assert sorted(stops(h)) == [("CronJobDeadLettered", "scheduler", "skipped", "dead_letter"),
                                ("CronJobFailed", "scheduler", "skipped", "failed")]
    [dead] = h.store.query_audit(type="CronJobDeadLettered")
    assert dead.event.job_name == "broken" and "schedule invalid" in dead.event.details[
        "reason"]


def test_a_one_shot_ended_by_a_skip_or_a_cancel_is_failed_on_the_record(h: Harness) -> None:
    h.add("missed", at="2026-03-01T00:10:00Z", catch_up=CatchUp.SKIP)
    h.clock.set("2026-03-01T02:00:00Z")  # symbid was down when it was due
    h.run_until("2026-03-01T02:00:01Z")
    h.launcher.behaviour = lambda job, run: None
    h.add("halted", at="2026-03-01T02:10:00Z", max_concurrent=1)
    h.run_until("2026-03-01T02:10:00Z")
    [going] = list(h.launcher.running)
    h.sched.runs.request_cancel(going, "token:ops")
    h.sched.tick(h.clock.now())
    h.launcher.finish(going, RunStatus.CANCELLED, "cancelled by token:ops")
    h.run_until("2026-03-01T02:10:10Z")
    assert h.job("missed").status is JobStatus.FAILED
    assert h.job("halted").status is JobStatus.FAILED
    assert stops(h) == [("CronJobFailed", "scheduler", "skipped", "failed"),
                        ("CronJobFailed", "scheduler", "cancelled", "failed")]


def test_pausing_a_paused_job_or_resuming_an_active_one_is_no_change_and_no_event(
        h: Harness) -> None:
    h.add("steady", cron="0 2 * * *")
    version = h.job("steady").version
    h.jobs.resume("steady", actor="alice")  # already active
    assert h.job("steady").version == version
    h.jobs.pause("steady", actor="alice")
    h.jobs.pause("steady", actor="bob")  # already paused
    assert h.job("steady").version == version + 1
    assert trail(h) == [("CronJobCreated", "test", "steady"),
                        ("CronJobPaused", "alice", "steady")]
