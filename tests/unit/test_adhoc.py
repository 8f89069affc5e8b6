"""An agent's ad hoc job (``symbi run``): created on first use, never scheduled by the loop
(whatever the clock or a restart does), refused to every change but removal, and not
counted as a job that uses its agent."""

from __future__ import annotations

import pytest

from symbid.agentdef import Agent
from symbid.errors import Conflict
from symbid.model import Job, JobStatus, RunStatus, SessionMode, Trigger
from tests.harness import Harness


def test_the_ad_hoc_job_is_created_once_paused_fully_ephemeral_and_unscheduled(
        h: Harness) -> None:
    job = h.jobs.adhoc_job("agent", actor="test")
    assert (job.name, job.source, job.agent_id) == ("adhoc:agent", "adhoc", "agent")
    assert job.adhoc and job.status is JobStatus.PAUSED and job.next_run is None
    assert job.session_mode is SessionMode.FULLY_EPHEMERAL
    assert h.jobs.adhoc_job("agent", actor="test").id == job.id
    assert [j.name for j in h.store.list_jobs()] == ["adhoc:agent"]
    # its creation is on the audit trail, once
    assert [(r.event.type, r.event.job_name) for r in h.store.query_audit()] == \
        [("CronJobCreated", "adhoc:agent")]


def test_its_manual_runs_run_and_the_loop_never_starts_one_by_itself(h: Harness) -> None:
    job = h.jobs.adhoc_job("agent", actor="test")
    h.sched.run_now(job.id, "test", actor="test")
    h.run_until("2026-03-01T00:01:00Z")
    h.restart()
    h.run_until("2027-03-01T00:00:00Z")  # a year, across a restart
    h.clock.set("2030-01-01T00:00:00Z")  # and a clock step forward
    h.run_until("2030-01-02T00:00:00Z")
    runs = h.history("adhoc:agent")
    assert [(r.trigger, r.status, r.input) for r in runs] == [
        (Trigger.MANUAL, RunStatus.SUCCEEDED, "test")]
    assert h.job("adhoc:agent").status is JobStatus.PAUSED


@pytest.mark.parametrize("verb", ["pause", "resume", "reset", "update"])
def test_it_cannot_be_paused_resumed_reset_or_changed(h: Harness, verb: str) -> None:
    job = h.jobs.adhoc_job("agent", actor="test")
    with pytest.raises(Conflict) as caught:
        if verb == "update":
            h.jobs.update(job.id, lambda have: have.replace(cron_expr="* * * * *", at=None),
                          actor="test")
        else:
            getattr(h.jobs, verb)(job.id, actor="test")
    assert "ad hoc job of agent 'agent'" in caught.value.message
    assert "symbi run" in caught.value.message
    assert h.job("adhoc:agent") == job


def test_it_can_be_removed_and_comes_back_on_the_next_use(h: Harness) -> None:
    job = h.jobs.adhoc_job("agent", actor="test")
    h.sched.run_now(job.id, actor="test")
    h.run_until("2026-03-01T00:01:00Z")
    h.jobs.delete("adhoc:agent", actor="test")
    again = h.jobs.adhoc_job("agent", actor="test")
    assert again.id != job.id and h.history("adhoc:agent") == []


def test_a_job_of_that_name_from_before_the_name_rule_is_not_taken_for_it(h: Harness) -> None:
    h.store.create_job(Job(id="old-job-id", name="adhoc:agent", agent_id="agent",
                           cron_expr="0 0 1 1 *"))
    with pytest.raises(Conflict, match="is not the ad hoc job of agent 'agent'"):
        h.jobs.adhoc_job("agent", actor="test")


def test_it_is_not_counted_as_a_job_and_does_not_hold_its_agent(h: Harness) -> None:
    h.store.define_agents([Agent(name="agent", command=("/bin/true",))], 0, lambda rows: None)
    h.add("hourly", cron="0 * * * *")
    h.jobs.adhoc_job("agent", actor="test")
    assert h.store.agent_use() == {"agent": 1}
    assert h.store.totals().by_status == {"active": 1}
    h.jobs.delete("hourly", actor="test")
    removed = h.store.remove_agent("agent", lambda rows, jobs: (
        rows[0] if not jobs else pytest.fail(f"held by {jobs}")))
    assert removed.name == "agent"
    assert [j.name for j in h.store.list_jobs()] == ["adhoc:agent"]  # its history stays
