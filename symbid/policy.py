"""The policy gate (DESIGN §6 step 3): before a run starts, whether its job's policy lets
it, every decision with its reason.

:meth:`PolicyGate.evaluate` is pure: ``evaluate(job, agent, context) -> Allow |
Deny(reason) | RequireApproval(approvers) | Defer(reason)`` (Defer: an AgentPin domain's
documents are being fetched, off the loop). The conditions, in the order they are
checked (the first that fails decides):

- ``allowed_environments``: the daemon's ``[daemon] environment`` is one of them;
- ``allowed_hours``: the run's start, in the window's time zone, is within ``start``
  (in) and ``end`` (out); a window whose end is before its start crosses midnight;
- ``require_capabilities``: the agent declares every one of them;
- ``require_agent_pin`` (or ``[agentpin] required``): the job's credential verifies
  (:mod:`symbid.agentpin`); the reason never holds the token;
- ``require_approval``: a run not yet approved waits for one of ``approvers``.

``max_runtime`` is not decided here: the executor bounds each run by it. What a policy
may say is checked when the job is defined (:mod:`symbid.policydef`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional, Protocol, Union

from symbid.agentdef import Agent
from symbid.agentpin import Pending
from symbid.model import Job
from symbid.text import shorten
from symbid.timing import load_zone


@dataclass(frozen=True)
class Allow:
    """The run may start."""


@dataclass(frozen=True)
class Deny:
    """The run is recorded ``denied`` and never started; ``reason`` names the failing
    condition and the values that failed it."""

    reason: str
    condition: str  # allowed_environments, allowed_hours, require_capabilities, ...


@dataclass(frozen=True)
class RequireApproval:
    """The run waits, ``awaiting_approval``, for one of ``approvers`` (anyone who can
    reach the API when the tuple is empty)."""

    approvers: tuple[str, ...]


@dataclass(frozen=True)
class Defer:
    """Not decidable yet: what the decision needs is being fetched, off the loop (an
    AgentPin domain's documents). The run stays queued, and is decided at the pass after
    the fetch ends (which wakes the loop)."""

    reason: str


Decision = Union[Allow, Deny, RequireApproval, Defer]
ALLOW = Allow()


@dataclass(frozen=True)
class PolicyContext:
    """What a decision depends on beyond the job and its agent."""

    now: int  # epoch ms: the run's start
    environment: str  # [daemon] environment
    approved: bool = False  # an approver has let this run go already
    pin_required: bool = False  # [agentpin] required: every run needs its credential


class PinVerifier(Protocol):
    def __call__(self, job: Job, agent: Agent, now: int) -> Optional[str]:
        """None when ``job``'s AgentPin credential verifies for ``agent`` at ``now``;
        else why not (never the token itself). Raises :class:`~symbid.agentpin.Pending`
        while what it needs is being fetched."""


def no_verifier(job: Job, agent: Agent, now: int) -> Optional[str]:
    """Until a verifier is configured, a credential cannot be verified: fail closed."""
    return ("AgentPin verification is not set up in this daemon ([agentpin] "
            "trust_bundle or discovery), so no credential can be verified")


class AgentLookup(Protocol):
    def get(self, name: str) -> Optional[Agent]: ...


class PolicyGate:
    """Evaluates a job's policy (:meth:`evaluate`, pure), and decides for a run about to
    start (:meth:`admit`) with the agents, the daemon's settings as they are now (a
    reload changes them) and ``verify_pin`` for AgentPin credentials."""

    def __init__(self, agents: AgentLookup, *, environment: Callable[[], str],
                 pin_required: Callable[[], bool] = lambda: False,
                 verify_pin: PinVerifier = no_verifier) -> None:
        self._agents = agents
        self._environment = environment
        self._pin_required = pin_required
        self.verify_pin = verify_pin

    def admit(self, job: Job, now: int, *, approved: bool = False) -> Decision:
        """The decision for a run of ``job`` starting at ``now``. A policy that cannot be
        evaluated (a time zone gone from the system's tzdata, a verifier's fault) denies
        the run, saying why: the gate fails closed and never loses a run."""
        try:
            return self.evaluate(job, self._agents.get(job.agent_id), PolicyContext(
                now=now, environment=self._environment(), approved=approved,
                pin_required=self._pin_required()))
        except Exception as exc:
            return Deny(f"the policy could not be evaluated ({type(exc).__name__}: "
                        f"{shorten(str(exc), 200)}), so the run may not start", "policy")

    def evaluate(self, job: Job, agent: Optional[Agent], context: PolicyContext) -> Decision:
        policy = job.policy
        envs = policy.allowed_environments
        if envs and context.environment not in envs:
            return Deny(f"allowed_environments {', '.join(envs)}; this daemon's environment "
                        f"is {context.environment}", "allowed_environments")
        hours = policy.allowed_hours
        if hours is not None:
            local = datetime.fromtimestamp(context.now / 1000, timezone.utc).astimezone(
                load_zone(hours.timezone))
            now_hhmm = f"{local.hour:02d}:{local.minute:02d}"
            if not in_window(now_hhmm, hours.start, hours.end):
                return Deny(f"allowed_hours {hours.start}-{hours.end} {hours.timezone}; now "
                            f"{now_hhmm}", "allowed_hours")
        needed = policy.require_capabilities
        if needed:
            have = agent.capabilities if agent is not None else ()
            missing = [c for c in needed if c not in have]
            if missing:
                who = f"agent {job.agent_id}" if agent is not None else \
                    f"agent {job.agent_id} (not defined)"
                return Deny(f"require_capabilities {', '.join(needed)}; {who} lacks "
                            f"{', '.join(missing)} (it declares "
                            f"{', '.join(have) if have else 'none'})", "require_capabilities")
        if policy.require_agent_pin or context.pin_required:
            why = "[agentpin] required" if not policy.require_agent_pin else "require_agent_pin"
            if agent is None:
                return Deny(f"{why}: agent {job.agent_id} is not defined", "require_agent_pin")
            try:
                failed = self.verify_pin(job, agent, context.now)
            except Pending as wait:
                return Defer(f"{why}: {wait}")
            except Exception as exc:  # the verifier's own fault: the credential failed
                failed = (f"the credential could not be verified ({type(exc).__name__}: "
                          f"{shorten(str(exc), 200)})")
            if failed is not None:
                return Deny(f"{why}: {failed}", "require_agent_pin")
        if policy.require_approval and not context.approved:
            return RequireApproval(policy.approvers)
        return ALLOW


def in_window(now: str, start: str, end: str) -> bool:
    """``HH:MM`` ``now`` within ``start`` (in) and ``end`` (out); crossing midnight when
    ``end`` is before ``start``."""
    if start <= end:
        return start <= now < end
    return now >= start or now < end

