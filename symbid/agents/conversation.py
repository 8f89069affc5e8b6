"""The conversation loop of one LLM run, and its limits.

Messages sent: the system prompt, the previous run's summary (as a system message), the
carried history (shared mode), then the run's input as the user message. While the model
answers with ``tool_calls`` each call is checked and run (:mod:`.tools`) and its result
appended as a ``tool`` message with its ``tool_call_id``; the first answer without tool
calls is the run's output.

With ``summarize``, a run that succeeded makes one more request: the conversation (its
tool calls and results written as text, so that no endpoint sees tool messages without
tools) and :data:`SUMMARY_REQUEST` as a user message, with no tools offered; the reply's
text is the run's summary. When that request fails the run still succeeds, without a
model summary (``summary_error`` says why).

Limits: ``max_tool_calls`` (every call the model asks for counts, refused ones too; one
more fails the run), ``max_tokens_per_run`` (prompt + completion over all requests, the
summary's included; over it the run fails), ``max_context_bytes`` (the JSON size of the
messages; the oldest non-system turns are dropped and a marker message says so) and the
run's deadline.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional

from symbid.agents.llm import ChatClient, LLMError, Usage
from symbid.agents.tools import Tool, ToolCallRecord, check_call, run_tool

Message = dict[str, Any]
MARKER_PREFIX = "[symbid: "
SUMMARY_PREFIX = "Summary of the previous run:\n"
SUMMARY_RESERVE = 1.0  # seconds of the run a summary request leaves before its deadline
SUMMARY_REQUEST = ("Summarize this run for your next run, which will see only this "
                   "summary: what you were asked, what you found and did, and what is still "
                   "open. Plain text, at most 120 words.")


class Limits:
    """A run's limits (``max_tokens_per_run`` None: unlimited)."""

    __slots__ = ("max_context_bytes", "max_tokens_per_run", "max_tool_calls")

    def __init__(self, max_tool_calls: int = 16, max_tokens_per_run: Optional[int] = None,
                 max_context_bytes: int = 256 * 1024) -> None:
        self.max_tool_calls = max_tool_calls
        self.max_tokens_per_run = max_tokens_per_run
        self.max_context_bytes = max_context_bytes


class RunResult:
    """What a run produced: ``status`` is "succeeded" or "failed" (then ``error`` says
    why); ``history`` holds this run's messages, its user message onward (what shared
    mode carries to the next run), whatever was trimmed from the context sent."""

    __slots__ = ("error", "history", "output", "status", "summary", "summary_error",
                 "tool_calls", "usage")

    def __init__(self, output: str, status: str, error: Optional[str], usage: Usage) -> None:
        self.output = output
        self.status = status
        self.error = error
        self.usage = usage
        self.tool_calls: list[ToolCallRecord] = []
        self.history: list[Message] = []
        self.summary: Optional[str] = None  # the model's summary (summarize), uncut
        self.summary_error: Optional[str] = None  # why the summary request failed


def size_of(messages: list[Message]) -> int:
    return len(json.dumps(messages, separators=(",", ":")).encode())


def trim_context(messages: list[Message], max_bytes: int) -> tuple[list[Message], int]:
    """``messages`` within ``max_bytes`` and how many were dropped (marker included).

    The leading system messages and the last message are kept; the oldest others go
    first, with the ``tool`` answers left orphaned by a dropped assistant turn. A marker
    (a system message after the leading ones) says how many were dropped; an earlier
    marker is folded into the new count.
    """
    head = 0
    while head < len(messages) and messages[head].get("role") == "system":
        head += 1
    system, rest = list(messages[:head]), list(messages[head:])
    dropped = 0
    if system and str(system[-1].get("content", "")).startswith(MARKER_PREFIX):
        dropped = int(system[-1].get("_dropped", 0))
        system.pop()
    base = system
    trimmed = rest
    count = dropped

    def build() -> list[Message]:
        if count == 0:
            return base + trimmed
        marker = {"role": "system", "_dropped": count, "content":
                  f"{MARKER_PREFIX}{count} earlier messages were dropped to keep the context "
                  f"under {max_bytes} bytes]"}
        return base + [marker] + trimmed

    out = build()
    while size_of(out) > max_bytes and len(trimmed) > 1:
        trimmed = trimmed[1:]
        count += 1
        while len(trimmed) > 1 and trimmed[0].get("role") == "tool":
            trimmed = trimmed[1:]
            count += 1
        out = build()
    return out, count


def as_text(messages: list[Message]) -> list[Message]:
    """``messages`` with tool traffic written as text, for a request that offers no tools:
    an assistant turn's calls as ``[called NAME (id ID) with ARGUMENTS]`` lines, a
    ``tool`` answer as a user message ``[NAME (id ID) answered]`` and its content. An
    assistant's empty content becomes ``""``, and user messages that end up next to each
    other are joined into one (some chat templates require the roles to alternate)."""
    names: dict[str, str] = {}
    out: list[Message] = []

    def add(m: Message) -> None:
        if out and m.get("role") == "user" and out[-1].get("role") == "user":
            out[-1] = {"role": "user", "content": f"{out[-1]['content']}\n\n{m['content']}"}
        else:
            out.append(m)

    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            lines = [m["content"]] if isinstance(m.get("content"), str) and m["content"] \
                else []
            for call in m["tool_calls"]:
                fn = call.get("function") if isinstance(call, dict) else None
                name = str(fn.get("name", "")) if isinstance(fn, dict) else ""
                args = fn.get("arguments", "") if isinstance(fn, dict) else ""
                call_id = str(call.get("id", "")) if isinstance(call, dict) else ""
                names[call_id] = name
                lines.append(f"[called {name} (id {call_id}) with "
                             f"{args if isinstance(args, str) else json.dumps(args)}]")
            add({"role": "assistant", "content": "\n".join(lines)})
        elif m.get("role") == "tool":
            call_id = str(m.get("tool_call_id", ""))
            add({"role": "user", "content": f"[{names.get(call_id, 'a tool')} (id {call_id}) "
                                            f"answered]\n{m.get('content')}"})
        elif m.get("role") == "assistant" and not isinstance(m.get("content"), str):
            add({**m, "content": ""})
        else:
            add(m)
    return out


def wire(messages: list[Message]) -> list[Message]:
    """The messages as sent: private keys (``_dropped``) removed."""
    return [{k: v for k, v in m.items() if not k.startswith("_")} for m in messages]


class Conversation:
    """One run's conversation with ``client``; ``deadline`` is in monotonic seconds."""

    def __init__(self, *, client: ChatClient, model: str, tools: dict[str, Tool],
                 capabilities: frozenset[str], limits: Limits, deadline: float,
                 cwd: Optional[str] = None, tool_env: Optional[dict[str, str]] = None,
                 temperature: Optional[float] = None, max_tokens: Optional[int] = None,
                 summarize: bool = False,
                 progress: Optional[Callable[[RunResult], None]] = None,
                 answered: Optional[Callable[[str], None]] = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.model = model
        self.tools = tools
        self.capabilities = capabilities
        self.limits = limits
        self.deadline = deadline
        self.cwd = cwd
        self.tool_env = tool_env or {}
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.summarize = summarize
        self.progress = progress  # called after each request and tool call (the record so far)
        self.answered = answered  # called with the final reply, before a summary is asked
        self.monotonic = monotonic

    def run(self, user_input: str, *, system_prompt: Optional[str] = None,
            previous_summary: Optional[str] = None,
            history: Optional[list[Message]] = None) -> RunResult:
        """One run's conversation. Never raises for the model's or a tool's failures."""
        head: list[Message] = []
        if system_prompt:
            head.append({"role": "system", "content": system_prompt})
        if previous_summary:
            head.append({"role": "system", "content": SUMMARY_PREFIX + previous_summary})
        asked: Message = {"role": "user", "content": user_input}
        turns: list[Message] = [*(history or []), asked]
        result = RunResult("", "failed", None, self.client.usage)
        result.history.append(asked)
        try:
            result.output = self._loop(head, turns, result)
            if self.answered is not None:
                self.answered(result.output)
            if self.summarize:
                self._summarize(head, turns, result)
            result.status = "succeeded"
        except _Stop as stop:
            result.error = stop.reason
        except LLMError as exc:
            result.error = exc.message
        return result

    def _report(self, result: RunResult) -> None:
        if self.progress is not None:
            self.progress(result)

    def _body(self, messages: list[Message], tools: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": wire(messages)}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.tools and tools:
            body["tools"] = [t.function() for t in self.tools.values()]
        return body

    def _summarize(self, head: list[Message], turns: list[Message], result: RunResult) -> None:
        """Ask for the run's summary; a failed request only sets ``summary_error``.
        Raises :class:`_Stop` when its tokens take the run over ``max_tokens_per_run``."""
        ask: Message = {"role": "user", "content": SUMMARY_REQUEST}
        messages, _ = trim_context(as_text(head + turns + [ask]), self.limits.max_context_bytes)
        try:
            # it must end before the sandbox's max_runtime kill, which started a little
            # before this process did: a summary that does not fit is only not given
            reply = self.client.complete(self._body(messages, tools=False),
                                         self.deadline - SUMMARY_RESERVE)
            self._report(result)
            self._check_tokens(" by the summary request")
            content = _message_of(reply).get("content")
        except LLMError as exc:
            result.summary_error = f"the summary request failed: {exc.message}"
            return
        if not isinstance(content, str) or not content.strip():
            result.summary_error = "the summary request failed: the reply has no text"
            return
        result.summary = content.strip()

    def _loop(self, head: list[Message], turns: list[Message], result: RunResult) -> str:
        calls = 0
        while True:
            messages, _ = trim_context(head + turns, self.limits.max_context_bytes)
            turns[:] = messages[len(head):]  # the head is always kept as it is
            reply = self.client.complete(self._body(messages), self.deadline)
            self._report(result)
            self._check_tokens()
            message = _message_of(reply)
            tool_calls = message.get("tool_calls") or []
            assistant: Message = {"role": "assistant", "content": message.get("content")}
            if tool_calls:
                assistant["tool_calls"] = tool_calls
            turns.append(assistant)
            result.history.append(assistant)
            if not tool_calls:
                content = message.get("content")
                return content if isinstance(content, str) else ""
            for call in tool_calls:
                calls += 1
                if calls > self.limits.max_tool_calls:
                    raise _Stop(f"max_tool_calls {self.limits.max_tool_calls} exceeded: the "
                                "model asked for another tool call")
                record, content = self._call(call)
                result.tool_calls.append(record)
                answer = {"role": "tool", "tool_call_id": record.id, "content": content}
                turns.append(answer)
                result.history.append(answer)
                self._report(result)

    def _check_tokens(self, by: str = "") -> None:
        cap, used = self.limits.max_tokens_per_run, self.client.usage.total
        if cap is not None and used > cap:
            raise _Stop(f"max_tokens_per_run {cap} exceeded{by} ({used} used)")

    def _call(self, call: Any) -> tuple[ToolCallRecord, str]:
        fn = call.get("function") if isinstance(call, dict) else None
        call_id = str(call.get("id", "")) if isinstance(call, dict) else ""
        name = str(fn.get("name", "")) if isinstance(fn, dict) else ""
        arguments = fn.get("arguments", "") if isinstance(fn, dict) else ""
        if not isinstance(arguments, str):  # some servers send an object
            arguments = json.dumps(arguments)
        record = ToolCallRecord(call_id, name, arguments)
        args, refusal = check_call(self.tools.get(name), name, arguments, self.capabilities)
        if refusal is not None or args is None:
            record.error = refusal
            return record, f"error: {refusal}; nothing was run"
        left = self.deadline - self.monotonic()
        if left <= 0:
            raise _Stop("the run's deadline passed before a tool could run")
        started = self.monotonic()
        outcome = run_tool(self.tools[name], args, cwd=self.cwd, env=self.tool_env, timeout=left)
        record.duration_ms = int((self.monotonic() - started) * 1000)
        record.exit_status = outcome.exit_status
        record.error = outcome.error
        return record, outcome.content


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _message_of(reply: dict[str, Any]) -> dict[str, Any]:
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMError("the model's reply has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise LLMError("the model's reply has no message")
    return message
