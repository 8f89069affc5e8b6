"""The run spec the daemon hands an LLM child on stdin, checked field by field.

Every field is named in ``docs/llm-agents.md``. An unknown field, or one of the wrong
type, is refused with an error naming it (nothing is accepted and ignored).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from symbid.agents.conversation import Limits, Message
from symbid.agents.tools import Tool, make_tool
from symbid.errors import InvalidInput

DEFAULT_KEY_VAR = "SYMBI_LLM_API_KEY"
TOP = frozenset({"agent", "endpoint", "model", "api_key_env", "input", "previous_summary",
                 "history", "limits", "timeout_seconds", "cwd", "tool_env",
                 "request_slots"})
AGENT = frozenset({"name", "system_prompt", "temperature", "max_tokens", "capabilities",
                   "tools", "summarize"})
LIMITS = frozenset({"max_tool_calls", "max_tokens_per_run", "max_context_bytes",
                    "max_retries", "request_timeout_seconds", "max_concurrent_requests"})
TOOL = frozenset({"name", "description", "parameters", "parameters_schema", "command",
                  "requires"})


class RunSpec:
    """A checked run spec (see :func:`parse_spec`)."""

    __slots__ = ("agent_name", "api_key_env", "capabilities", "cwd", "endpoint", "history",
                 "input", "limits", "max_retries", "max_tokens", "model", "previous_summary",
                 "request_slots", "request_timeout_seconds", "summarize", "system_prompt",
                 "temperature", "timeout_seconds", "tool_env", "tools")

    def __init__(self, *, endpoint: str, model: str,
                 input: str,
                 timeout_seconds: float,
                 agent_name: str = "agent",
                 system_prompt: Optional[str] = None,
                 temperature: Optional[float] = None,
                 max_tokens: Optional[int] = None,
                 capabilities: frozenset[str] = frozenset(),
                 tools: tuple[Tool, ...] = (),
                 api_key_env: str = DEFAULT_KEY_VAR,
                 previous_summary: Optional[str] = None,
                 history: tuple[Message, ...] = (),
                 limits: Optional[Limits] = None,
                 max_retries: int = 3,
                 request_timeout_seconds: float = 60.0,
                 cwd: Optional[str] = None,
                 tool_env: tuple[str, ...] = (),
                 request_slots: Optional[tuple[str, int]] = None,
                 summarize: bool = False) -> None:
        self.endpoint = endpoint
        self.model = model
        self.input = input
        self.timeout_seconds = timeout_seconds
        self.agent_name = agent_name
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.capabilities = capabilities
        self.tools = tools
        self.api_key_env = api_key_env
        self.previous_summary = previous_summary
        self.history = history
        self.limits = limits or Limits()
        self.max_retries = max_retries
        self.request_timeout_seconds = request_timeout_seconds
        self.cwd = cwd
        self.tool_env = tool_env  # names passed on to tools, besides the allowlist
        self.request_slots = request_slots  # (directory, max_concurrent_requests) or None
        self.summarize = summarize  # ask the model for the run's summary


def _only(obj: object, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidInput(f"{where or 'the spec'} must be a JSON object", field=where or None)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise InvalidInput(f"unknown field {name!r} in the run spec", field=name)
    return obj


def _get(obj: dict[str, Any], key: str, kind: Any, where: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    name = f"{where}.{key}" if where else key
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise InvalidInput(f"{name} must be {names}", field=name)
    return value


def _need(obj: dict[str, Any], key: str, kind: Any, where: str = "") -> Any:
    value = _get(obj, key, kind, where)
    if value is None:
        name = f"{where}.{key}" if where else key
        raise InvalidInput(f"{name} is required in the run spec", field=name)
    return value


def _strings(obj: dict[str, Any], key: str, where: str) -> list[str]:
    value = _get(obj, key, list, where) or []
    if not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{where}.{key} must be a list of strings", field=f"{where}.{key}")
    return list(value)


def _positive(value: Any, name: str) -> Any:
    if value is not None and value <= 0:
        raise InvalidInput(f"{name} must be positive", field=name)
    return value


def _tool(obj: object, i: int) -> Tool:
    where = f"agent.tools[{i}]"
    t = _only(obj, TOOL, where)
    params = _get(t, "parameters", dict, where)
    if params is not None and not all(isinstance(v, str) for v in params.values()):
        raise InvalidInput(f"{where}.parameters values are type names",
                           field=f"{where}.parameters")
    return make_tool(_need(t, "name", str, where), command=_strings(t, "command", where),
                     description=_get(t, "description", str, where) or "",
                     parameters=params,
                     parameters_schema=_get(t, "parameters_schema", str, where),
                     requires=_strings(t, "requires", where))


def _slots(top: dict[str, Any], limits: dict[str, Any]) -> Optional[tuple[str, int]]:
    directory = _get(top, "request_slots", str, "")
    count = _positive(_get(limits, "max_concurrent_requests", int, "limits"),
                      "limits.max_concurrent_requests")
    if (directory is None) != (count is None):
        given, missing = (("request_slots", "limits.max_concurrent_requests")
                          if count is None else
                          ("limits.max_concurrent_requests", "request_slots"))
        raise InvalidInput(f"{given} needs {missing} in the run spec", field=missing)
    return None if directory is None else (directory, count)


def parse_spec(text: str) -> RunSpec:
    """The spec in ``text``. Raises :class:`InvalidInput` naming the bad field."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"the run spec is not valid JSON: {exc}") from None
    top = _only(raw, TOP, "")
    agent = _only(top.get("agent", {}), AGENT, "agent")
    limits = _only(top.get("limits", {}), LIMITS, "limits")
    tools = [_tool(t, i) for i, t in enumerate(_get(agent, "tools", list, "agent") or [])]
    names = [t.name for t in tools]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InvalidInput(f"tool {dup[0]!r} is declared twice", field="agent.tools")
    history = _get(top, "history", list, "") or []
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in history):
        raise InvalidInput("history must be a list of messages with a role", field="history")
    num = (int, float)
    lim = Limits(
        max_tool_calls=_get(limits, "max_tool_calls", int, "limits", 16),
        max_tokens_per_run=_positive(_get(limits, "max_tokens_per_run", int, "limits"),
                                     "limits.max_tokens_per_run"),
        max_context_bytes=_positive(_get(limits, "max_context_bytes", int, "limits",
                                         256 * 1024), "limits.max_context_bytes"))
    if lim.max_tool_calls < 0:
        raise InvalidInput("limits.max_tool_calls must be 0 or more",
                           field="limits.max_tool_calls")
    retries = _get(limits, "max_retries", int, "limits", 3)
    if retries < 0:
        raise InvalidInput("limits.max_retries must be 0 or more", field="limits.max_retries")
    return RunSpec(
        request_slots=_slots(top, limits),
        endpoint=_need(top, "endpoint", str), model=_need(top, "model", str),
        input=_need(top, "input", str),
        timeout_seconds=_positive(_need(top, "timeout_seconds", num), "timeout_seconds"),
        agent_name=_get(agent, "name", str, "agent") or "agent",
        system_prompt=_get(agent, "system_prompt", str, "agent"),
        temperature=_get(agent, "temperature", num, "agent"),
        max_tokens=_positive(_get(agent, "max_tokens", int, "agent"), "agent.max_tokens"),
        summarize=bool(_get(agent, "summarize", bool, "agent")),
        capabilities=frozenset(_strings(agent, "capabilities", "agent")),
        tools=tuple(tools),
        api_key_env=_get(top, "api_key_env", str, "") or DEFAULT_KEY_VAR,
        previous_summary=_get(top, "previous_summary", str, ""),
        history=tuple(history), limits=lim, max_retries=retries,
        request_timeout_seconds=_positive(
            _get(limits, "request_timeout_seconds", num, "limits", 60.0),
            "limits.request_timeout_seconds"),
        cwd=_get(top, "cwd", str, ""),
        tool_env=tuple(_strings(top, "tool_env", "")))
