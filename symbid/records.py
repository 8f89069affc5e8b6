"""Run records: a run, how it ended, and what it carries (an llm run's usage and tool
calls, a heartbeat's iterations, the session context it leaves). Wire names as in
DESIGN §3."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from symbid.model import (
    SPACE_OF_TRIGGER,
    KeySpace,
    RunStatus,
    SessionMode,
    Trigger,
    format_instant,
)


@dataclass(frozen=True)
class Run:
    """One attempt at one slot of a job (or a manual run)."""

    id: str
    job_id: str
    slot: int
    attempt: int
    trigger: Trigger
    status: RunStatus
    created_at: int
    not_before: Optional[int] = None  # the slot plus jitter: when the run may start
    started_at: Optional[int] = None
    finished_at: Optional[int] = None
    execution_time_ms: Optional[int] = None
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    error_message: Optional[str] = None
    output: Optional[str] = None  # in history listings: the first OUTPUT_PREVIEW characters
    output_truncated: bool = False
    summary: Optional[str] = None
    input: Optional[str] = None
    retry_at: Optional[int] = None  # on a failed run: when its next attempt is due
    output_bytes: int = 0  # the size of the whole stored output (UTF-8)
    pid: Optional[int] = None
    pgid: Optional[int] = None
    pid_start: Optional[int] = None  # the process's start in clock ticks since boot
    iterations: tuple[Iteration, ...] = ()  # a heartbeat wake-up's iterations
    stop_reason: Optional[str] = None  # why a heartbeat wake-up stopped iterating
    usage: Optional[LlmUsage] = None  # an llm agent's token usage (all its iterations)
    tool_calls: tuple[ToolCall, ...] = ()  # the tool calls an llm agent's model asked for
    tool_call_count: int = 0  # len(tool_calls); history rows carry only this
    approval_deadline: Optional[int] = None  # awaiting approval: cancelled when it passes
    approved_by: Optional[str] = None  # who approved it (or denied it, with approval_note)
    approval_note: Optional[str] = None  # the approver's comment, or the denier's reason

    @property
    def key_space(self) -> KeySpace:
        return SPACE_OF_TRIGGER.get(self.trigger.value, KeySpace.SCHEDULE)

    def replace(self, **changes: Any) -> Run:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RunOutcome:
    """How a started run ended, as its executor reports it."""

    run_id: str
    job_id: str
    status: RunStatus
    finished_at: int
    execution_time_ms: Optional[int] = None
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    error_message: Optional[str] = None
    output: Optional[str] = None
    output_truncated: bool = False
    summary: Optional[str] = None
    context: Optional[ContextLeft] = None  # what the run leaves for the next (sessions)
    iterations: tuple[Iteration, ...] = ()  # a heartbeat wake-up's iterations
    stop_reason: Optional[str] = None  # why a heartbeat wake-up stopped iterating
    usage: Optional[LlmUsage] = None
    tool_calls: tuple[ToolCall, ...] = ()

    def run_fields(self) -> dict[str, Any]:
        """What the run's record takes from this outcome (its status aside)."""
        return dict(
            finished_at=self.finished_at, execution_time_ms=self.execution_time_ms,
            exit_code=self.exit_code, signal=self.signal, error_message=self.error_message,
            output=self.output, output_truncated=self.output_truncated, summary=self.summary,
            iterations=self.iterations, stop_reason=self.stop_reason, usage=self.usage,
            tool_calls=self.tool_calls,
        )


@dataclass(frozen=True)
class LlmUsage:
    """An llm agent run's token usage, summed over its model requests."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: LlmUsage) -> LlmUsage:
        return LlmUsage(self.prompt_tokens + other.prompt_tokens,
                        self.completion_tokens + other.completion_tokens,
                        self.requests + other.requests)

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "requests": self.requests}


@dataclass(frozen=True)
class ToolCall:
    """One tool call an llm agent's model asked for: ``exit_status`` None when it was
    refused and nothing ran (``error`` says why); ``iteration`` in a heartbeat wake-up."""

    name: str
    arguments: str
    exit_status: Optional[int]
    duration_ms: int
    error: Optional[str] = None
    id: str = ""
    iteration: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments,
                               "exit_status": self.exit_status,
                               "duration_ms": self.duration_ms, "error": self.error}
        if self.iteration is not None:
            out["iteration"] = self.iteration
        return out


@dataclass(frozen=True)
class Turn:
    """One run's turn in a shared_persistent history."""

    input: Optional[str]
    output: Optional[str]  # the run's summary
    run_id: str
    at: int  # when it finished (epoch ms)
    messages: tuple[Mapping[str, Any], ...] = ()  # an llm run's messages, its input onward

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input, "output": self.output,
                               "run_id": self.run_id, "at": format_instant(self.at)}
        if self.messages:
            out["messages"] = [dict(m) for m in self.messages]
        return out


@dataclass(frozen=True)
class SessionContext:
    """What a job's runs carry over (sessions): the last summary and, in
    shared_persistent mode, the bounded history (``dropped``: turns trimmed so far)."""

    job_id: str
    mode: SessionMode
    summary: Optional[str] = None
    history: tuple[Turn, ...] = ()
    dropped: int = 0
    run_id: Optional[str] = None  # the run that left it
    updated_at: int = 0
    generation: int = 0  # how many times it was cleared (a run's write needs a match)


@dataclass(frozen=True)
class ContextLeft:
    """What a run leaves: the context to store, built on the stored one whose run was
    ``based_on``, with the turns the run added (``budget``: the history's bytes), so
    that it can be rebuilt on a context another run left meanwhile."""

    context: SessionContext
    based_on: Optional[str] = None
    turns: tuple[Turn, ...] = ()
    budget: int = 256 * 1024


@dataclass(frozen=True)
class Iteration:
    """One iteration of a heartbeat wake-up."""

    number: int
    status: RunStatus
    summary: Optional[str]
    duration_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "status": self.status.value, "summary": self.summary,
                "duration_ms": self.duration_ms}
