"""Agent definitions: what runs a job's work (a command, or an llm agent with tools), and
the limits its child process runs under. Wire names as in DESIGN §3."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Optional

from symbid.model import DEFAULT_OUTPUT_CAP


class AgentKind(str, Enum):
    COMMAND = "command"
    LLM = "llm"


@dataclass(frozen=True)
class Limits:
    """Resource limits for a run's child process; ``None`` means unlimited."""

    memory_bytes: Optional[int] = None  # RLIMIT_AS
    cpu_seconds: Optional[int] = None  # RLIMIT_CPU
    processes: Optional[int] = None  # RLIMIT_NPROC (per user; root is exempt)
    open_files: Optional[int] = None  # RLIMIT_NOFILE
    output_bytes: int = DEFAULT_OUTPUT_CAP


@dataclass(frozen=True)
class Tool:
    """A command an llm agent's model may call: sent as an OpenAI ``tools`` function whose
    JSON schema is built from ``parameters`` (every one required) or given whole as
    ``parameters_schema``; refused unless the agent has every capability in ``requires``."""

    name: str
    command: tuple[str, ...]
    description: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)  # name -> JSON type
    parameters_schema: Optional[str] = None  # JSON Schema text
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Agent:
    """An agent definition. A command agent runs ``command``; an llm agent calls ``endpoint``
    (its ``model``, with its tools); ``None`` settings take the ``[llm]`` defaults."""

    name: str
    kind: AgentKind = AgentKind.COMMAND
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: Optional[str] = None
    user: Optional[str] = None
    group: Optional[str] = None
    limits: Limits = Limits()
    capabilities: tuple[str, ...] = ()
    model: Optional[str] = None
    system_prompt: Optional[str] = None
    endpoint: Optional[str] = None
    agentpin_id: Optional[str] = None
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None  # per reply
    max_tool_calls: Optional[int] = None
    max_context_bytes: Optional[int] = None
    max_tokens_per_run: Optional[int] = None
    summarize: bool = False  # ask the model for the session summary
    tools: tuple[Tool, ...] = ()
