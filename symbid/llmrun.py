"""An llm agent's run, from the daemon's side: what its child is started with (see
``docs/llm-agents.md`` for the child's protocol; :mod:`symbid.llmresult` reads back what
it leaves).

The child is ``python -S -m symbid.agents.child`` inside the run's sandbox (limits,
user, process group, kill), the run spec on its stdin, the API key in one environment
variable that the child scrubs before anything else. An agent's own ``endpoint``,
``model``, ``max_tool_calls``, ``max_context_bytes`` and ``max_tokens_per_run`` win over
``[llm]``. A session's summary and (shared mode) its turns reach the model: each turn as
the run's messages (its input, replies, tool calls and results), or for a turn without
them the user's input and the assistant's summarised reply.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from symbid.agentdef import Agent
from symbid.agents import child_argv, child_pythonpath
from symbid.agents.child import RESULT_VAR
from symbid.agents.slots import slots_dir
from symbid.agents.spec import DEFAULT_KEY_VAR
from symbid.config import LlmConfig, referenced_values, resolve_refs
from symbid.errors import SandboxError, SymbidError
from symbid.runfiles import RunFile
from symbid.sessions import Session
from symbid.text import secret_parts

RESULT_NAME = "symbi-llm-result.json"
RESULT_CAP = 4 * 1024 * 1024  # the record holds the conversation's history
_NO_DEADLINE = 7 * 86400.0  # without max_runtime: the sandbox kills nothing, a week bounds it


@dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    env: dict[str, str]
    stdin: bytes
    secrets: list[str]
    files: tuple[RunFile, ...]


def _history(view: Optional[Session]) -> list[dict[str, Any]]:
    if view is None or not view.shared:
        return []
    messages: list[dict[str, Any]] = []
    for turn in view.history:
        if turn.messages:  # an llm run's own messages
            messages.extend(dict(m) for m in turn.messages)
            continue
        if turn.input:  # a command agent's run (the job's agent changed) or an older record
            messages.append({"role": "user", "content": turn.input})
        if turn.output:
            messages.append({"role": "assistant", "content": turn.output})
    return messages


def not_ready(agent: Agent, llm: LlmConfig,
              environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """What an llm agent's runs lack to start (endpoint, model, key; with ``environ``,
    the key's ``${VAR}`` set there), or None."""
    if not (agent.endpoint or llm.endpoint):
        return (f"agent {agent.name!r}: no endpoint: set the agent's endpoint or "
                "[llm] endpoint (an OpenAI-compatible base URL)")
    if not (agent.model or llm.model):
        return f"agent {agent.name!r}: no model: set the agent's model or [llm] model"
    if not llm.api_key:
        return (f"agent {agent.name!r}: [llm] api_key is not set: give a ${{VAR}} reference "
                "to the key (any value, for a local server that needs none)")
    if environ is not None:
        try:
            resolve_refs(llm.api_key, environ, what="[llm] api_key")
        except SymbidError as exc:
            return f"agent {agent.name!r}: {exc.message}"
    return None


def launch(agent: Agent, llm: LlmConfig, environ: Mapping[str, str], *, text: Optional[str],
           view: Optional[Session], timeout: Optional[float],
           runs_dir: Optional[str] = None) -> Launch:
    """How to start ``agent``'s child; :class:`SandboxError` naming what is missing.

    With ``runs_dir``, the child takes a request slot in its slots directory (which the
    daemon keeps, :func:`symbid.agents.slots.prepare`) around each request, so that at
    most ``[llm] max_concurrent_requests`` are in flight across all runs."""
    problem = not_ready(agent, llm)
    if problem is not None or llm.api_key is None:
        raise SandboxError(problem or "[llm] api_key is not set")
    endpoint, model = agent.endpoint or llm.endpoint, agent.model or llm.model
    key = resolve_refs(llm.api_key, environ, what="[llm] api_key")
    secrets = secret_parts([key, *referenced_values(llm.api_key, environ)])
    spec: dict[str, Any] = {
        "endpoint": endpoint, "model": model, "input": text or "",
        "timeout_seconds": timeout or _NO_DEADLINE, "api_key_env": DEFAULT_KEY_VAR,
        "agent": {
            "name": agent.name, "system_prompt": agent.system_prompt,
            "temperature": agent.temperature, "max_tokens": agent.max_tokens,
            "capabilities": list(agent.capabilities),
            "summarize": agent.summarize or None,
            "tools": [{"name": t.name, "description": t.description,
                       "command": list(t.command), "requires": list(t.requires),
                       **({"parameters_schema": t.parameters_schema}
                          if t.parameters_schema is not None
                          else {"parameters": dict(t.parameters)})}
                      for t in agent.tools],
        },
        "limits": {
            "max_tool_calls": agent.max_tool_calls if agent.max_tool_calls is not None
            else llm.max_tool_calls,
            "max_context_bytes": agent.max_context_bytes if agent.max_context_bytes
            is not None else llm.max_context_bytes,
            "max_tokens_per_run": agent.max_tokens_per_run,
            "max_retries": llm.max_retries,
            "request_timeout_seconds": llm.timeout_seconds,
            "max_concurrent_requests": llm.max_concurrent_requests if runs_dir else None,
        },
        "history": _history(view),
        # the agent's env and state directory reach its tools; the key never does
        "tool_env": sorted({*agent.env, "SYMBI_STATE_DIR"} - {DEFAULT_KEY_VAR}),
    }
    if runs_dir:
        spec["request_slots"] = slots_dir(runs_dir)
    if view is not None and view.summary:
        spec["previous_summary"] = view.summary
    spec["agent"] = {k: v for k, v in spec["agent"].items() if v is not None}
    spec["limits"] = {k: v for k, v in spec["limits"].items() if v is not None}
    env = {DEFAULT_KEY_VAR: key, "PYTHONPATH": child_pythonpath()}
    return Launch(argv=tuple(child_argv(sys.executable)), env=env,
                  stdin=json.dumps(spec, ensure_ascii=False).encode(), secrets=secrets,
                  files=(RunFile(RESULT_VAR, RESULT_NAME, read_back=RESULT_CAP),))
