"""The data model: jobs, runs, agents, and their enums.

Field names are the wire names of DESIGN §3. Instants are epoch milliseconds
(UTC); conversion to RFC 3339 happens at the edges (API, CLI). Secrets written
as ``${NAME}`` are kept exactly as written here; they are resolved only when a
run uses them.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Mapping, Optional


class JobStatus(str, Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"  # a one-shot that succeeded
    FAILED = "failed"  # a one-shot whose last retry failed (or that was missed and skipped)
    DEAD_LETTER = "dead_letter"  # a recurring job whose retries ran out; waits for reset


class RunStatus(str, Enum):
    """A run's state. The states, their transitions and what each one means for
    concurrency, retries, one-shot jobs, delivery and alerts are one table:
    ``docs/run-states.md`` (kept true by ``tests/unit/test_docs.py``)."""

    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    DENIED = "denied"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_open(self) -> bool:
        """Not terminal: the run still has a state to move to."""
        return self in OPEN_RUN_STATUSES

    @property
    def counts_toward_max_concurrent(self) -> bool:
        """Whether a run in this state takes one of its job's ``max_concurrent`` places."""
        return self in OPEN_RUN_STATUSES

    @property
    def is_failure(self) -> bool:
        """A finished run that counts against the job (and may be retried)."""
        return self in (RunStatus.FAILED, RunStatus.TIMED_OUT)

    @property
    def executed(self) -> bool:
        """The run's agent ran to an end of its own: only these runs' output is delivered."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)

    @property
    def one_shot_end(self) -> Optional[JobStatus]:
        """What a one-shot job becomes when its run ends here for good (after its retries)."""
        if self.is_open:
            return None
        return JobStatus.COMPLETED if self is RunStatus.SUCCEEDED else JobStatus.FAILED

    @property
    def alerts(self) -> bool:
        """Whether reaching this state raises an alert (failures only after their retries)."""
        return self in (RunStatus.AWAITING_APPROVAL, RunStatus.FAILED, RunStatus.TIMED_OUT,
                        RunStatus.DENIED)


OPEN_RUN_STATUSES = frozenset(
    {RunStatus.PENDING, RunStatus.AWAITING_APPROVAL, RunStatus.RUNNING}
)


class KeySpace(str, Enum):
    """Which key a run is unique under: ``(job, key space, slot, attempt)``.

    Scheduled slots (with their catch-up runs and retries) share one space; a
    manual run, or a heartbeat iteration, can never take a scheduled slot's key.
    """

    SCHEDULE = "schedule"
    MANUAL = "manual"
    HEARTBEAT = "heartbeat"


class Trigger(str, Enum):
    SCHEDULE = "schedule"
    CATCH_UP = "catch_up"
    RETRY = "retry"
    MANUAL = "manual"
    HEARTBEAT = "heartbeat"


SPACE_OF_TRIGGER = {"manual": KeySpace.MANUAL, "heartbeat": KeySpace.HEARTBEAT}


class SessionMode(str, Enum):
    EPHEMERAL_WITH_SUMMARY = "ephemeral_with_summary"
    SHARED_PERSISTENT = "shared_persistent"
    FULLY_EPHEMERAL = "fully_ephemeral"


class CatchUp(str, Enum):
    LATEST = "latest"  # run the most recent missed slot once (systemd Persistent=)
    SKIP = "skip"  # run none; record them skipped
    ALL = "all"  # run every missed slot, at most catch_up_limit of them


DEFAULT_OUTPUT_CAP = 1024 * 1024  # bytes of a run's output kept in its record
OUTPUT_PREVIEW = 200  # characters of a run's output that history rows carry

# The largest values a job definition may hold (API, DSL and CLI alike).
NAME_MAX = 128
MAXIMUMS: dict[str, int] = {
    "max_retries": 100,
    "max_concurrent": 10_000,
    "jitter_seconds": 86_400,  # a day
    "catch_up_limit": 10_000,
    "heartbeat.max_iterations": 100_000,
    "cron_expr": 1_024,  # characters
    "timezone": 64,  # characters
}
_ID_LIKE = re.compile(r"^[0-9A-Fa-f-]{8,}$")
_NAME_SAFE = "._-"


def name_problem(name: str) -> Optional[str]:
    """Why ``name`` is not a valid job or agent name, or None when it is.

    Names are Unicode letters and digits, ``.``, ``_`` and ``-``, start with a letter
    or digit, are at most 128 characters, and never look like an id (8 or more hex
    digits and dashes), so ids, id prefixes and names never shadow each other.
    """
    if not name:
        return "must not be empty"
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long; at most {NAME_MAX} are allowed"
    if not name[0].isalnum():
        return "must start with a letter or a digit"
    bad = next((c for c in name if not (c.isalnum() or c in _NAME_SAFE)), None)
    if bad is not None:
        shown = repr(bad) if bad.isprintable() else f"U+{ord(bad):04X}"
        return (f"contains {shown}; names take letters, digits, '.', '_' and '-' only")
    if _ID_LIKE.match(name):
        return "looks like an id (only hex digits and dashes); add a letter such as 'job-'"
    return None


# An agent's ad hoc job (``symbi run AGENT``): the job its runs outside the schedule are
# recorded under. Its name holds a ':', which no name given by a user may (name_problem),
# so it never collides with one; its source says what it is.
ADHOC_SOURCE = "adhoc"
# A job defined in a file of agents_dir: its source is this prefix and the file's path.
FILE_SOURCE_PREFIX = "file:"
ADHOC_PREFIX = "adhoc:"


def adhoc_name(agent: str) -> str:
    """The name of ``agent``'s ad hoc job: ``adhoc:AGENT``."""
    return ADHOC_PREFIX + agent


def new_id() -> str:
    """A fresh job or run id."""
    return str(uuid.uuid4())


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_INSTANT = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: RFC 3339 ends there


def to_datetime(ms: int) -> datetime:
    """The aware UTC datetime of an instant (epoch milliseconds)."""
    return _EPOCH + timedelta(milliseconds=ms)


def format_instant(ms: int) -> str:
    """RFC 3339 in UTC: ``2026-03-08T07:00:00Z`` (milliseconds only when non-zero)."""
    dt = to_datetime(ms)
    base = (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}")  # strftime("%Y") does not pad years before 1000
    if ms % 1000:
        base += f".{ms % 1000:03d}"
    return base + "Z"


def format_duration(seconds: float) -> str:
    """A compact duration such as ``5m`` or ``1h30m`` (read back by timing.parse_duration)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    if rest == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


@dataclass(frozen=True)
class Heartbeat:
    enabled: bool = False
    context_mode: SessionMode = SessionMode.EPHEMERAL_WITH_SUMMARY
    max_iterations: int = 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "context_mode": self.context_mode.value,
            "max_iterations": self.max_iterations,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Heartbeat:
        return cls(
            enabled=bool(d.get("enabled", False)),
            context_mode=SessionMode(d.get("context_mode", SessionMode.EPHEMERAL_WITH_SUMMARY)),
            max_iterations=int(d.get("max_iterations", 100)),
        )


@dataclass(frozen=True)
class AllowedHours:
    """A daily window ``start``-``end`` (``HH:MM``) in ``timezone`` (an IANA name, UTC by
    default); an end before the start wraps midnight; ``start`` is in, ``end`` is out."""

    start: str
    end: str
    timezone: str = "UTC"

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "timezone": self.timezone}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AllowedHours:
        return cls(d["start"], d["end"], d.get("timezone") or "UTC")


@dataclass(frozen=True)
class Policy:
    require_approval: bool = False
    approvers: tuple[str, ...] = ()
    max_runtime_seconds: Optional[float] = None
    require_capabilities: tuple[str, ...] = ()
    allowed_hours: Optional[AllowedHours] = None
    allowed_environments: tuple[str, ...] = ()
    require_agent_pin: bool = False
    # how long a run waits for an approver ([scheduler] approval_timeout_seconds if None)
    approval_timeout_seconds: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "require_approval": self.require_approval,
            "approvers": list(self.approvers),
            "max_runtime_seconds": self.max_runtime_seconds,
            "require_capabilities": list(self.require_capabilities),
            "allowed_hours": self.allowed_hours.to_dict() if self.allowed_hours else None,
            "allowed_environments": list(self.allowed_environments),
            "require_agent_pin": self.require_agent_pin,
            "approval_timeout_seconds": self.approval_timeout_seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Policy:
        hours = d.get("allowed_hours")
        runtime = d.get("max_runtime_seconds")
        wait = d.get("approval_timeout_seconds")
        return cls(
            require_approval=bool(d.get("require_approval", False)),
            approvers=tuple(d.get("approvers", ())),
            max_runtime_seconds=None if runtime is None else float(runtime),
            require_capabilities=tuple(d.get("require_capabilities", ())),
            allowed_hours=AllowedHours.from_dict(hours) if hours else None,
            allowed_environments=tuple(d.get("allowed_environments", ())),
            require_agent_pin=bool(d.get("require_agent_pin", False)),
            approval_timeout_seconds=None if wait is None else float(wait),
        )


DEFAULT_ALERT_COOLDOWN = 3600.0  # seconds: a job's alert_cooldown when it gives none


@dataclass(frozen=True)
class DeliveryConfig:
    webhook_url: Optional[str] = None
    webhook_headers: Mapping[str, str] = field(default_factory=dict)
    slack_channel: Optional[str] = None
    email_recipients: tuple[str, ...] = ()
    webhook_secret: Optional[str] = None  # a ${VAR} reference: the HMAC key of a webhook

    def to_dict(self) -> dict[str, Any]:
        return {
            "webhook_url": self.webhook_url,
            "webhook_headers": dict(self.webhook_headers),
            "slack_channel": self.slack_channel,
            "email_recipients": list(self.email_recipients),
            "webhook_secret": self.webhook_secret,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeliveryConfig:
        return cls(
            webhook_url=d.get("webhook_url"),
            webhook_headers=dict(d.get("webhook_headers") or {}),
            slack_channel=d.get("slack_channel"),
            email_recipients=tuple(d.get("email_recipients", ())),
            webhook_secret=d.get("webhook_secret"),
        )


@dataclass(frozen=True)
class Job:
    """A scheduled job. Exactly one of ``cron_expr`` and ``at`` is set.

    ``max_retries`` and ``jitter_seconds`` of ``None`` mean "the daemon's
    default" (``default_max_retries``, ``max_jitter_seconds``).

    ``last_run`` is when the job's last run started (manual runs included).
    ``claimed`` holds the spans of wall-clock instants whose scheduled slots the
    job has claimed, sorted and disjoint: normally one span, from its first slot
    to its high-water mark. A slot inside a span is never claimed again, whatever
    retention deletes, a definition changes or the wall clock does.
    """

    id: str
    name: str
    agent_id: str
    cron_expr: Optional[str] = None
    at: Optional[int] = None
    timezone: str = "UTC"
    status: JobStatus = JobStatus.ACTIVE
    session_mode: SessionMode = SessionMode.EPHEMERAL_WITH_SUMMARY
    heartbeat: Heartbeat = Heartbeat()
    delivery: tuple[str, ...] = ()
    delivery_config: DeliveryConfig = DeliveryConfig()
    alert: tuple[str, ...] = ()  # channels for short alerts (failures, dead man's switch)
    alert_cooldown_seconds: Optional[float] = None  # as given (None: the default, 1 h)
    alert_if_no_success_within_seconds: Optional[float] = None  # the dead man's switch
    policy: Policy = Policy()
    max_concurrent: int = 1
    max_retries: Optional[int] = None
    jitter_seconds: Optional[float] = None
    catch_up: CatchUp = CatchUp.LATEST
    catch_up_limit: int = 100
    input: Optional[str] = None
    agent_pin_jwt: Optional[str] = None
    source: str = "api"
    next_run: Optional[int] = None
    last_run: Optional[int] = None
    claimed: tuple[tuple[int, int], ...] = ()
    run_count: int = 0
    failure_count: int = 0
    created_at: int = 0
    updated_at: int = 0
    version: int = 1

    @property
    def one_shot(self) -> bool:
        return self.at is not None

    @property
    def adhoc(self) -> bool:
        """Whether this is an agent's ad hoc job (``symbi run``): never scheduled."""
        return self.source == ADHOC_SOURCE

    @property
    def claimed_through(self) -> Optional[int]:
        """The high-water mark: the latest scheduled slot ever claimed."""
        return self.claimed[-1][1] if self.claimed else None

    def replace(self, **changes: Any) -> Job:
        return dataclasses.replace(self, **changes)

    @property
    def alert_cooldown(self) -> float:
        """At most one problem alert per this many seconds (``alert_cooldown``, 1 h)."""
        return DEFAULT_ALERT_COOLDOWN if self.alert_cooldown_seconds is None \
            else self.alert_cooldown_seconds

    def definition(self) -> dict[str, Any]:
        """The settings that are neither identity, schedule nor state (stored as one document)."""
        return {
            "session_mode": self.session_mode.value,
            "heartbeat": self.heartbeat.to_dict(),
            "delivery": list(self.delivery),
            "delivery_config": self.delivery_config.to_dict(),
            "alert": list(self.alert),
            "alert_cooldown_seconds": self.alert_cooldown_seconds,
            "alert_if_no_success_within_seconds": self.alert_if_no_success_within_seconds,
            "policy": self.policy.to_dict(),
            "max_concurrent": self.max_concurrent,
            "max_retries": self.max_retries,
            "jitter_seconds": self.jitter_seconds,
            "catch_up": self.catch_up.value,
            "catch_up_limit": self.catch_up_limit,
            "input": self.input,
            "agent_pin_jwt": self.agent_pin_jwt,
        }

    @staticmethod
    def definition_fields(d: Mapping[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`definition`: keyword arguments for :class:`Job`."""
        return {
            "session_mode": SessionMode(d["session_mode"]),
            "heartbeat": Heartbeat.from_dict(d["heartbeat"]),
            "delivery": tuple(d["delivery"]),
            "delivery_config": DeliveryConfig.from_dict(d["delivery_config"]),
            "alert": tuple(d.get("alert", ())),
            # rows written before it was optional hold the default even without alert
            "alert_cooldown_seconds": None if not d.get("alert") or
            d.get("alert_cooldown_seconds") is None else float(d["alert_cooldown_seconds"]),
            "alert_if_no_success_within_seconds": d.get("alert_if_no_success_within_seconds"),
            "policy": Policy.from_dict(d["policy"]),
            "max_concurrent": int(d["max_concurrent"]),
            "max_retries": d["max_retries"],
            "jitter_seconds": d["jitter_seconds"],
            "catch_up": CatchUp(d["catch_up"]),
            "catch_up_limit": int(d["catch_up_limit"]),
            "input": d["input"],
            "agent_pin_jwt": d["agent_pin_jwt"],
        }
