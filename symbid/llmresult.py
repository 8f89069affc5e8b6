"""An llm run's result record, as the daemon reads it back (``docs/llm-agents.md``).

The child writes the record, but a tool runs as the same user and can overwrite the file,
so nothing in it is trusted: it is parsed with ``NaN`` and ``Infinity`` refused and deep
nesting caught, every field is type-checked, texts are capped and masked (a secret cut
in half at a cap is masked too), counts are clamped, and the messages a shared session
carries are rebuilt from a whitelist:

- roles ``user``, ``assistant`` and ``tool`` only, with only their known keys
  (``content``; an assistant's ``tool_calls`` as ``{id, type, function: {name,
  arguments}}``; a tool answer's ``tool_call_id``);
- the run's messages start with its user message, and every assistant turn that asks for
  tool calls is followed by an answer to each of them: at the first exchange that is not
  whole (a run that failed between a call and its answer) the rest is dropped, so the
  next run never sends the model a history it refuses.

A record that does not parse, or is not an object, counts as no record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from symbid.agents.child import summary_of
from symbid.records import LlmUsage, ToolCall
from symbid.text import mask

TEXT_CAP = 2048  # characters of a tool call's arguments, an error or a name/id part
MESSAGE_CAP = 64 * 1024  # characters of one carried message's content
TOOL_CALLS_KEPT = 1000  # tool calls a run record lists (the first ones)
REQUESTS_KEPT = 1000  # request durations taken from one record
MAX_COUNT = 2 ** 53 - 1  # a token count or duration above this is clamped
ID_CAP = 200
MARKER = " [cut by symbid]"


@dataclass(frozen=True)
class Result:
    summary: Optional[str]
    error: Optional[str]
    usage: LlmUsage
    tool_calls: tuple[ToolCall, ...]
    request_seconds: tuple[float, ...]
    messages: tuple[dict[str, Any], ...]  # the run's own, for a shared_persistent history
    summary_error: Optional[str] = None  # why a summarize request failed (then: last reply)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return min(value, MAX_COUNT)
    return 0


def _text(value: Any, cap: int, secrets: list[str]) -> Optional[str]:
    """``value`` when it is a string, cut to ``cap`` characters and masked."""
    if not isinstance(value, str):
        return None
    cut = len(value) > cap
    return mask(value[:cap], secrets, cut_end=cut) + (MARKER if cut else "")


def _tool_call(raw: Any, secrets: list[str], iteration: Optional[int]) -> Optional[ToolCall]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    exit_status = raw.get("exit_status")
    if not (isinstance(exit_status, int) and not isinstance(exit_status, bool)
            and -128 <= exit_status <= 255):
        exit_status = None
    return ToolCall(
        name=_text(raw["name"], ID_CAP, secrets) or "",
        arguments=_text(raw.get("arguments"), TEXT_CAP, secrets) or "",
        exit_status=exit_status,
        duration_ms=_count(raw.get("duration_ms")),
        error=_text(raw.get("error"), TEXT_CAP, secrets),
        id=_text(raw.get("id"), ID_CAP, secrets) or "", iteration=iteration)


def _call_of(raw: Any, secrets: list[str]) -> Optional[dict[str, Any]]:
    """An assistant's tool call as carried, or None when it is malformed."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        return None
    fn = raw.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        return None
    arguments = fn.get("arguments")
    if not isinstance(arguments, str):
        return None
    return {"id": _text(raw["id"], ID_CAP, secrets), "type": "function",
            "function": {"name": _text(fn["name"], ID_CAP, secrets),
                         "arguments": _text(arguments, MESSAGE_CAP, secrets)}}


def carried_messages(raw: Any, secrets: list[str]) -> tuple[dict[str, Any], ...]:
    """The whole exchanges of a run's messages, rebuilt (see the module's note)."""
    if not isinstance(raw, list):
        return ()
    out: list[dict[str, Any]] = []
    waiting: set[str] = set()  # tool call ids asked for and not answered yet
    whole = 0  # how many of ``out`` end on a whole exchange
    for m in raw:
        if not isinstance(m, dict):
            break
        role, content = m.get("role"), m.get("content")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not isinstance(content, str):
                break
            key = _text(call_id, ID_CAP, secrets) or ""
            if key not in waiting:
                break
            waiting.discard(key)
            out.append({"role": "tool", "tool_call_id": key,
                        "content": _text(content, MESSAGE_CAP, secrets)})
        elif waiting:  # a call was left unanswered
            break
        elif role == "user" and isinstance(content, str):
            out.append({"role": "user", "content": _text(content, MESSAGE_CAP, secrets)})
        elif role == "assistant" and out and (content is None or isinstance(content, str)):
            message: dict[str, Any] = {"role": "assistant",
                                       "content": _text(content, MESSAGE_CAP, secrets)}
            calls = m.get("tool_calls")
            if calls:
                kept = [_call_of(c, secrets) for c in calls] if isinstance(calls, list) \
                    else [None]
                if any(c is None for c in kept):
                    break
                message["tool_calls"] = kept
                waiting = {c["id"] for c in kept if c is not None}
            out.append(message)
        else:
            break
        if not waiting:
            whole = len(out)
    if not out or out[0]["role"] != "user":
        return ()
    return tuple(out[:whole])


def result_of(raw: Optional[bytes], secrets: list[str],
              iteration: Optional[int] = None) -> Optional[Result]:
    """The child's result record, checked (see the module's note), or None."""
    if not raw:
        return None
    try:
        record = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    usage, calls = record.get("usage"), record.get("tool_calls")
    usage = usage if isinstance(usage, dict) else {}
    calls = calls if isinstance(calls, list) else []
    seconds = record.get("request_seconds")
    seconds = seconds if isinstance(seconds, list) else []
    summary = record.get("summary")
    if isinstance(summary, str):
        cut = summary_of(summary)
        summary = mask(cut, secrets, cut_end=len(cut) < len(summary))
    return Result(
        summary=summary if isinstance(summary, str) else None,
        error=_text(record.get("error"), TEXT_CAP, secrets),
        usage=LlmUsage(_count(usage.get("prompt_tokens")),
                       _count(usage.get("completion_tokens")), _count(usage.get("requests"))),
        tool_calls=tuple(c for c in (_tool_call(x, secrets, iteration)
                                     for x in calls[:TOOL_CALLS_KEPT]) if c is not None),
        request_seconds=tuple(float(x) for x in seconds[:REQUESTS_KEPT]
                              if isinstance(x, (int, float)) and not isinstance(x, bool)
                              and 0 <= x < 1e7),
        messages=carried_messages(record.get("history"), secrets),
        summary_error=_text(record.get("summary_error"), TEXT_CAP, secrets))
