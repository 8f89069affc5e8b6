"""The policy gate in the run lifecycle, on a real SQLite store and a fake clock: a denied
run is recorded ``denied`` with its reason and never started; it is neither a failure nor
retried; a one-shot whose run is denied is ``failed``; manual runs are gated too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from symbid.agentdef import Agent
from symbid.agentpin import Pending
from symbid.model import AllowedHours, JobStatus, Policy, RunStatus
from tests.harness import Harness

NIGHT_ONLY = Policy(allowed_hours=AllowedHours("02:00", "04:00"))


def test_a_run_outside_its_window_is_denied_never_started_and_not_a_failure(
        tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=NIGHT_ONLY, max_retries=3)
    h.run_until("2026-03-01T12:00:30Z")

    [run] = h.history("deploy")
    assert run.status is RunStatus.DENIED
    assert run.error_message == "allowed_hours 02:00-04:00 UTC; now 12:00"
    assert h.started() == [] and run.started_at is None
    job = h.job("deploy")
    assert (job.status, job.failure_count, job.run_count) == (JobStatus.ACTIVE, 0, 0)
    assert run.retry_at is None


def test_the_same_job_runs_inside_its_window(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T02:59:00Z")
    h.add("deploy", cron="0 3 * * *", policy=NIGHT_ONLY)
    h.run_until("2026-03-01T03:00:30Z")
    assert [r.status for r in h.history("deploy")] == [RunStatus.SUCCEEDED]


def test_a_one_shot_whose_run_is_denied_is_failed_with_the_reason(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:00:00Z")
    h.environment = "staging"
    h.add("migrate", at="2026-03-01T11:30:00Z",
          policy=Policy(allowed_environments=("production",)))
    h.run_until("2026-03-01T11:31:00Z")
    [run] = h.history("migrate")
    assert run.status is RunStatus.DENIED
    assert run.error_message == ("allowed_environments production; this daemon's "
                                 "environment is staging")
    assert h.job("migrate").status is JobStatus.FAILED


def test_a_manual_run_is_gated_too_and_says_why(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T12:00:00Z")
    h.agents.replace({"agent": Agent(name="agent", command=("/bin/true",),
                                     capabilities=("read",))})
    h.add("deploy", cron="0 0 1 1 *",
          policy=Policy(require_capabilities=("read", "production_write")))
    run = h.sched.run_now("deploy", actor="test")
    h.run_until("2026-03-01T12:00:01Z")
    got = h.store.get_run(run.id)
    assert got.status is RunStatus.DENIED and h.started() == []
    assert got.error_message == ("require_capabilities read, production_write; agent agent "
                                 "lacks production_write (it declares read)")


def test_a_denied_run_alerts_with_its_reason(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("deploy", cron="0 12 * * *", policy=NIGHT_ONLY, alert=("stdout",))
    h.run_until("2026-03-01T12:00:30Z")
    [(event, message)] = [(json.loads(p)["event"], json.loads(p)["message"]) for (p,) in
                          h.store._query("SELECT payload FROM deliveries WHERE kind = 'alert'")]
    assert event == "run_denied"
    assert message.endswith("was denied: allowed_hours 02:00-04:00 UTC; now 12:00")


def test_require_agent_pin_without_a_verifier_fails_closed(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    h.add("pinned", cron="0 12 * * *", policy=Policy(require_agent_pin=True))
    h.run_until("2026-03-01T12:00:30Z")
    [run] = h.history("pinned")
    assert run.status is RunStatus.DENIED and h.started() == []
    assert run.error_message is not None and run.error_message.startswith(
        "require_agent_pin: AgentPin verification is not set up")



def test_a_run_whose_credential_is_still_being_fetched_waits_queued_then_is_decided(
        tmp_path: Path) -> None:
    """The well-known fetch runs off the loop (symbid.agentpin.Documents): until it has
    ended, the run is neither started nor denied, and the other jobs go on."""
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")
    fetched = False

    def verify(job: object, agent: object, now: int) -> Optional[str]:
        if not fetched:
            raise Pending("https://example.com/.well-known/agent-identity.json is being "
                          "fetched")
        return None

    h.gate.verify_pin = verify
    h.add("pinned", cron="0 12 * * *", policy=Policy(require_agent_pin=True))
    h.add("plain", cron="0 12 * * *")
    h.run_until("2026-03-01T12:00:30Z")
    [waiting] = h.history("pinned")
    assert waiting.status is RunStatus.PENDING and waiting.started_at is None
    assert [n for n, _, _ in h.started()] == ["plain"]

    fetched = True  # the fetch has ended: it woke the loop
    h.sched.wake()
    h.run_until("2026-03-01T12:00:40Z")
    [run] = h.history("pinned")
    assert run.id == waiting.id and run.status is RunStatus.SUCCEEDED


def test_a_verifier_that_breaks_denies_the_run_as_an_agentpin_failure(tmp_path: Path) -> None:
    h = Harness(tmp_path, start="2026-03-01T11:59:00Z")

    def broken(job: object, agent: object, now: int) -> Optional[str]:
        raise RuntimeError("the verifier's own bug")

    h.gate.verify_pin = broken
    h.add("pinned", cron="0 12 * * *", policy=Policy(require_agent_pin=True))
    h.run_until("2026-03-01T12:00:30Z")
    [run] = h.history("pinned")
    assert run.status is RunStatus.DENIED and h.started() == []
    assert run.error_message == ("require_agent_pin: the credential could not be verified "
                                 "(RuntimeError: the verifier's own bug)")
    events = {r.event.type: r.event.details for r in h.store.query_audit()}
    assert events["PolicyDenied"]["condition"] == "require_agent_pin"
    assert "AgentPinVerificationFailed" in events
