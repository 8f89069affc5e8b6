"""The policy gate's decisions, one condition at a time: each failure names its condition
and the values that failed it; windows cross midnight and follow their time zone."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import pytest

from symbid.agentdef import Agent
from symbid.model import AllowedHours, Job, Policy
from symbid.policy import (
    ALLOW,
    Deny,
    PolicyContext,
    PolicyGate,
    RequireApproval,
    in_window,
    no_verifier,
)
from symbid.timing import parse_instant

AGENT = Agent(name="deployer", command=("/bin/true",), capabilities=("deployment",))
NOON = parse_instant("2026-03-02T12:03:00Z")


def job(**policy: object) -> Job:
    return Job(id="j-1", name="deploy", agent_id="deployer", cron_expr="* * * * *",
               policy=Policy(**policy))  # type: ignore[arg-type]


def decide(j: Job, *, at: int = NOON, env: str = "production", agent: Optional[Agent] = AGENT,
           approved: bool = False, pin_required: bool = False,
           gate: Optional[PolicyGate] = None) -> object:
    gate = gate or PolicyGate({}, environment=lambda: env)  # type: ignore[arg-type]
    return gate.evaluate(j, agent, PolicyContext(now=at, environment=env, approved=approved,
                                                 pin_required=pin_required))


def test_a_job_without_policy_is_allowed() -> None:
    assert decide(job()) is ALLOW


def test_an_environment_not_listed_is_denied_naming_both() -> None:
    assert decide(job(allowed_environments=("staging", "production")), env="dev") == Deny(
        "allowed_environments staging, production; this daemon's environment is dev",
        "allowed_environments")
    assert decide(job(allowed_environments=("staging", "production"))) is ALLOW


def test_outside_allowed_hours_is_denied_with_the_window_and_the_time() -> None:
    assert decide(job(allowed_hours=AllowedHours("02:00", "04:00"))) == Deny(
        "allowed_hours 02:00-04:00 UTC; now 12:03", "allowed_hours")


@pytest.mark.parametrize(("now", "inside"), [
    ("22:00", True), ("23:59", True), ("00:00", True), ("05:59", True), ("06:00", False),
    ("12:00", False), ("21:59", False)])
def test_a_window_that_crosses_midnight(now: str, inside: bool) -> None:
    assert in_window(now, "22:00", "06:00") is inside
    at = parse_instant(f"2026-03-02T{now}:30Z")
    decision = decide(job(allowed_hours=AllowedHours("22:00", "06:00")), at=at)
    assert (decision is ALLOW) is inside


def test_the_start_is_in_and_the_end_is_out() -> None:
    assert in_window("00:00", "00:00", "00:01") and not in_window("00:01", "00:00", "00:01")


def test_a_window_in_a_time_zone_follows_its_local_time_across_daylight_saving() -> None:
    hours = AllowedHours("09:00", "17:00", "Europe/Berlin")
    winter = parse_instant("2026-03-02T07:30:00Z")  # 08:30 CET: before the window
    summer = parse_instant("2026-07-02T07:30:00Z")  # 09:30 CEST: inside it
    assert decide(job(allowed_hours=hours), at=winter) == Deny(
        "allowed_hours 09:00-17:00 Europe/Berlin; now 08:30", "allowed_hours")
    assert decide(job(allowed_hours=hours), at=summer) is ALLOW


def test_missing_capabilities_are_named_with_what_the_agent_declares() -> None:
    assert decide(job(require_capabilities=("deployment", "production_write"))) == Deny(
        "require_capabilities deployment, production_write; agent deployer lacks "
        "production_write (it declares deployment)", "require_capabilities")
    assert decide(job(require_capabilities=("deployment",))) is ALLOW
    bare = replace(AGENT, capabilities=())
    assert decide(job(require_capabilities=("deployment",)), agent=bare) == Deny(
        "require_capabilities deployment; agent deployer lacks deployment (it declares "
        "none)", "require_capabilities")


def test_an_agent_pin_that_cannot_be_verified_denies_and_one_that_verifies_allows() -> None:
    assert decide(job(require_agent_pin=True)) == Deny(
        f"require_agent_pin: {no_verifier(job(), AGENT, 0)}", "require_agent_pin")
    verified = PolicyGate({}, environment=lambda: "production",  # type: ignore[arg-type]
                          verify_pin=lambda j, a, now: None)
    assert decide(job(require_agent_pin=True), gate=verified) is ALLOW
    refused = PolicyGate({}, environment=lambda: "production",  # type: ignore[arg-type]
                         verify_pin=lambda j, a, now: "the credential expired at T")
    assert decide(job(), pin_required=True, gate=refused) == Deny(
        "[agentpin] required: the credential expired at T", "require_agent_pin")


def test_approval_is_asked_of_the_approvers_once_the_rest_allows() -> None:
    wants = job(require_approval=True, approvers=("alice", "bob"))
    assert decide(wants) == RequireApproval(("alice", "bob"))
    assert decide(wants, approved=True) is ALLOW
    late = replace(wants, policy=replace(wants.policy,
                                         allowed_hours=AllowedHours("02:00", "04:00")))
    assert isinstance(decide(late), Deny)  # denied first: no approver is bothered
    assert isinstance(decide(late, approved=True), Deny)  # approval does not widen a window


def test_admit_reads_the_agent_and_the_settings_as_they_are_now() -> None:
    env = ["production"]
    gate = PolicyGate({"deployer": AGENT}, environment=lambda: env[0])  # type: ignore[arg-type]
    j = job(allowed_environments=("production",), require_capabilities=("deployment",))
    assert gate.admit(j, NOON) is ALLOW
    env[0] = "staging"  # a reload changed [daemon] environment
    assert isinstance(gate.admit(j, NOON), Deny)
    gone = replace(j, agent_id="nobody")
    assert gate.admit(replace(gone, policy=Policy(require_capabilities=("x",))), NOON) == Deny(
        "require_capabilities x; agent nobody (not defined) lacks x (it declares none)",
        "require_capabilities")


def test_a_policy_that_cannot_be_evaluated_denies_and_says_why() -> None:
    broken = job(allowed_hours=AllowedHours("01:00", "02:00", "Gone/Zone"))  # tzdata changed
    gate = PolicyGate({}, environment=lambda: "production")  # type: ignore[arg-type]
    decision = gate.admit(broken, NOON)
    assert isinstance(decision, Deny) and decision.condition == "policy"
    assert decision.reason.startswith("the policy could not be evaluated (InvalidTimezone")
