"""Agents defined through the API: a JSON object or ``.symbi`` text, through the loader's
checks (the AGENT schema and :func:`build_agent`), so that an agent is valid the same way
whichever way it arrives.

JSON takes the field names of ``wire.agent_to_wire``; ``null`` (and ``command: []`` beside
a ``model``) means "not given", so a listed agent can be posted back as it is. ``kind``,
when given, must agree with what the agent is (``command`` or ``model``). Text defines every
``agent`` block it holds and refuses ``schedule`` blocks: schedules are jobs, added through
POST /api/v1/schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from symbid.agentdef import Agent, AgentKind
from symbid.dsl.checks import _Invalid
from symbid.dsl.loader import AGENT, build_agent, load_document
from symbid.dsl.parser import DslError, Entry, Pos, Value, parse_text
from symbid.errors import InvalidInput
from symbid.model import name_problem
from symbid.text import escape, shorten

WIRE_FIELDS = ("name", "kind", *AGENT)
_POS = Pos(1, 1)


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", field=field)


def _value(path: str, v: Any, *, nulls_absent: bool = False) -> Value:
    """A JSON value as the DSL's syntax tree holds it."""
    if isinstance(v, bool):
        return Value("bool", v, _POS)
    if isinstance(v, (int, float)):
        return Value("number", v, _POS)
    if isinstance(v, str):
        return Value("string", v, _POS)
    if isinstance(v, list):
        return Value("array", [_value(f"{path}[{i}]", x) for i, x in enumerate(v)], _POS)
    if isinstance(v, dict):
        return Value("map", [Entry(k, _POS, _value(f"{path}.{k}", x))
                             for k, x in v.items() if not (nulls_absent and x is None)], _POS)
    raise _bad(path, "null is not allowed here")


def agent_from_json(data: Mapping[str, Any]) -> Agent:
    """The agent a JSON object defines; raises :class:`InvalidInput` naming the field."""
    for key in data:
        if key not in WIRE_FIELDS:
            raise _bad(shorten(key), f"unknown field; an agent takes {', '.join(WIRE_FIELDS)}")
    name = data.get("name")
    if name is None:
        raise _bad("name", "is required")
    if not isinstance(name, str):
        raise _bad("name", f"expected a string, got {type(name).__name__}")
    problem = name_problem(name)
    if problem is not None:
        raise InvalidInput(f"name '{escape(name)}' {problem}", field="name")
    kind = data.get("kind")
    if kind is not None and kind not in [k.value for k in AgentKind]:
        raise _bad("kind", f"must be one of {', '.join(k.value for k in AgentKind)}")
    checked: dict[str, Any] = {}
    for key, checker in AGENT.items():
        raw = data.get(key)
        if raw is None or (key == "command" and raw == [] and data.get("model") is not None):
            continue
        if (key == "summarize" and raw is False) or \
                (key == "tools" and isinstance(raw, (list, dict)) and not raw):
            continue  # the default (false, no tools), as every listed agent shows it
        try:
            checked[key] = checker(key, _value(key, raw, nulls_absent=key == "limits"))
        except _Invalid as exc:
            raise InvalidInput(exc.message, field=key) from None
    try:
        agent = build_agent(name, checked, lambda key: _POS)
    except _Invalid as exc:
        raise InvalidInput(exc.message, field=exc.key) from None
    if kind is not None and kind != agent.kind.value:
        what = "a command" if agent.kind is AgentKind.COMMAND else "a model"
        raise _bad("kind", f"is {kind!r}, but the agent has {what} (a {agent.kind.value} "
                           "agent)")
    return agent


def agents_from_text(text: str, path: str = "<request>") -> tuple[list[Agent], list[str]]:
    """The agents of ``.symbi`` text and the loader's warnings about it; raises
    :class:`DslError` (``FILE:LINE:COL`` diagnostics) for bad text, for a ``schedule``
    block, and for text that defines no agent."""
    doc = parse_text(text, path)
    schedules = [b for b in doc.blocks if b.kind == "schedule"]
    if schedules:
        raise DslError([doc.diagnostic(
            b.pos, "schedule blocks are not accepted here: POST /api/v1/agents defines "
                   "agents only; add schedules through POST /api/v1/schedule (symbi cron add "
                   "--file does that)") for b in schedules])
    loaded = load_document(doc)
    if not loaded.ok:
        raise DslError(loaded.errors)
    if not loaded.agents:
        raise DslError([doc.diagnostic(_POS, "the text defines no agent: write "
                                             "agent NAME { command: [...] }")])
    return loaded.agents, [d.format() for d in loaded.warnings]
