"""A job's ``policy`` as defined: what makes one unusable, checked when the job is defined
(API 400, DSL FILE:LINE:COL), so that nothing in it is accepted and then ignored. Its
enforcement, at each start, is :mod:`symbid.policy`."""

from __future__ import annotations

import re
from typing import Optional

from symbid.errors import InvalidTimezone
from symbid.model import Policy
from symbid.timing import load_zone

MAX_APPROVAL_TIMEOUT = 30 * 86400.0  # seconds: a run waits for an approver at most 30 days
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def pin_problem(agent_pin_jwt: Optional[str]) -> Optional[tuple[str, str]]:
    """A job's ``agent_pin_jwt`` must be a ``${VAR}`` reference: a credential written into
    the job would be stored and shown by the API."""
    if agent_pin_jwt is not None and not REFERENCE.fullmatch(agent_pin_jwt.strip()):
        return "agent_pin_jwt", ("agent_pin_jwt must be a ${VAR} reference to the credential "
                                 "in symbid's environment, so that it is never stored")
    return None


def policy_problem(policy: Policy) -> Optional[tuple[str, str]]:
    """(field, message) for what makes ``policy`` unusable, or None."""
    runtime = policy.max_runtime_seconds
    if runtime is not None and runtime <= 0:
        return "policy.max_runtime", "policy.max_runtime must be positive"
    if policy.approvers and not policy.require_approval:
        return "policy.approvers", ("policy.approvers is for require_approval, which is "
                                    "not set: add require_approval: true, or remove "
                                    "approvers")
    wait = policy.approval_timeout_seconds
    if wait is not None and not policy.require_approval:
        return "policy.approval_timeout", ("policy.approval_timeout is for require_approval, "
                                           "which is not set")
    if wait is not None and not 0 < wait <= MAX_APPROVAL_TIMEOUT:
        return "policy.approval_timeout", ("policy.approval_timeout must be more than 0 and "
                                           "at most 30 days")
    for name in (*policy.approvers, *policy.require_capabilities,
                 *policy.allowed_environments):
        if not name.strip() or any(c.isspace() or ord(c) < 0x20 for c in name):
            return _list_of(policy, name), (f"{_list_of(policy, name)}: {name!r} must be a "
                                            "name without spaces")
    hours = policy.allowed_hours
    if hours is not None:
        if hours.start == hours.end:
            return "policy.allowed_hours", (f"policy.allowed_hours {hours.start}-{hours.end} "
                                            "is empty: start and end are the same time")
        try:
            load_zone(hours.timezone)
        except InvalidTimezone as exc:
            return "policy.allowed_hours.timezone", f"policy.allowed_hours.timezone: " \
                f"{exc.message}"
    return None


def policy_warnings(policy: Policy, agent_pin_jwt: Optional[str] = None
                    ) -> list[tuple[str, str]]:
    """(field, message) for what a policy says that its author may not mean (the seed's
    example says both): approval without ``approvers``, which anyone who can reach the
    API may give; ``require_agent_pin`` without a credential, which denies every run."""
    out = []
    if policy.require_approval and not policy.approvers:
        out.append(("policy.require_approval", (
            "policy.require_approval without approvers: anyone who can reach the API (a "
            "member of the socket's group, a holder of a TCP token) may approve; list who "
            "may with approvers: [\"alice\"]")))
    if policy.require_agent_pin and agent_pin_jwt is None:
        out.append(("policy.require_agent_pin", (
            "policy.require_agent_pin without agent_pin_jwt: every run is denied until the "
            "job names its credential (agent_pin_jwt: \"${VAR}\")")))
    return out


def _list_of(policy: Policy, name: str) -> str:
    for key, names in (("approvers", policy.approvers),
                       ("require_capabilities", policy.require_capabilities),
                       ("allowed_environments", policy.allowed_environments)):
        if name in names:
            return f"policy.{key}"
    return "policy"
