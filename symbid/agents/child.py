"""``python -m symbid.agents.child``: one LLM agent run, in the run's child process.

Protocol (also in ``docs/llm-agents.md``):

- **stdin**: the run spec, one JSON object (:mod:`symbid.agents.spec`).
- **The key**: read from the environment variable the spec names in ``api_key_env``
  (default ``SYMBI_LLM_API_KEY``), then scrubbed from the process's initial environment
  block and removed from ``os.environ`` before anything else happens; tools get an
  environment built from an allowlist, never holding it.
- **Non-dumpable**: the first thing the process does is ``prctl(PR_SET_DUMPABLE, 0)``, so a
  tool running as the same user cannot read its ``/proc/PID/environ`` or memory.
- **stdout**: the final reply (the run's output), nothing else.
- **The result record**: a JSON object written to the file named by the environment
  variable ``SYMBI_RESULT_FILE`` (chosen over fd 3: a path passes through the sandbox
  untouched, and the daemon reads it after the child exits); no record without it. It
  is rewritten whole (renamed over) after every request and tool call with ``status``
  ``running``, so a run killed by ``max_runtime`` or a cancel still leaves its usage and
  tool calls so far, and once more at the end.
  Fields: ``status`` (succeeded | failed), ``error``, ``summary`` (the model's summary
  when the agent has ``summarize`` and it was given, else the last reply; cut to 1 KiB),
  ``summary_error`` (why the summary request failed, or null), ``usage``
  {prompt_tokens, completion_tokens, total_tokens, requests}, ``tool_calls`` [{id, name,
  arguments, exit_status, duration_ms, error}], ``request_seconds`` (each HTTP attempt's
  duration), ``history`` (the run's own messages after the system ones: what shared mode
  carries).
- **Exit status**: 0 succeeded; 1 the run failed (the reason on stderr); 2 the spec or the
  key is unusable (the reason on stderr).

The child logs nothing: no key, prompt or reply reaches stderr, only a failure's reason.
Imports stay lean (standard library, no logging): ``bench/llm_start.py`` measures it.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any, Optional

PR_SET_DUMPABLE = 4
RESULT_VAR = "SYMBI_RESULT_FILE"
SUMMARY_BYTES = 1024
EXIT_OK, EXIT_FAILED, EXIT_SPEC = 0, 1, 2


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def make_undumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)``; raises OSError if the kernel refuses."""
    if _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def take_secret(name: str) -> Optional[str]:
    """The value of ``name``, overwritten in the initial environment block and unset.

    ``os.environ`` removal alone leaves the bytes in the block ``/proc/PID/environ``
    shows (to root, which bypasses non-dumpable), so they are zeroed in place first.
    """
    value = os.environ.get(name)
    if value is None:
        return None
    libc = _libc()
    prefix = name.encode() + b"="
    env = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    i = 0
    while env[i]:
        addr = env[i]
        entry = ctypes.string_at(addr)
        if entry.startswith(prefix):
            ctypes.memset(addr + len(prefix), 0, len(entry) - len(prefix))
        i += 1
    del os.environ[name]
    return value


def summary_of(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= SUMMARY_BYTES:
        return text
    return data[:SUMMARY_BYTES].decode("utf-8", "ignore")


def write_record(path: str, record: dict[str, Any]) -> None:
    """Replace the result record at ``path`` whole (a new file renamed over it), so a
    kill while it is written leaves the previous one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    os.replace(tmp, path)


def _fail(code: int, reason: str) -> int:
    sys.stderr.write(f"symbid llm agent: {reason}\n")
    return code


def main() -> int:
    try:
        make_undumpable()
    except OSError as exc:
        return _fail(EXIT_SPEC, f"cannot make the process non-dumpable: {exc}")
    result_path = os.environ.pop(RESULT_VAR, None)

    from symbid.agents.spec import DEFAULT_KEY_VAR, parse_spec
    from symbid.errors import SymbidError

    try:
        spec = parse_spec(sys.stdin.read())
    except SymbidError as exc:
        take_secret(DEFAULT_KEY_VAR)
        return _fail(EXIT_SPEC, exc.message)
    key = take_secret(spec.api_key_env)
    if not key:
        return _fail(EXIT_SPEC, f"no API key: the environment variable {spec.api_key_env} "
                                "is not set")

    import time

    from symbid.agents.conversation import Conversation, RunResult
    from symbid.agents.llm import ChatClient
    from symbid.agents.tools import tool_environment

    deadline = time.monotonic() + spec.timeout_seconds
    slots = None
    if spec.request_slots is not None:
        from symbid.agents.slots import Slots

        slots = Slots(*spec.request_slots)
    try:
        client = ChatClient(spec.endpoint, key, max_retries=spec.max_retries,
                            request_timeout=spec.request_timeout_seconds, slots=slots)
    except SymbidError as exc:
        return _fail(EXIT_SPEC, exc.message)
    del key
    def record(result: RunResult, status: str) -> dict[str, Any]:
        last = result.output or next(
            (m["content"] for m in reversed(result.history)
             if m.get("role") == "assistant" and isinstance(m.get("content"), str)), "")
        return {"status": status, "error": result.error,
                "summary": summary_of(result.summary or last),
                "summary_error": result.summary_error, "usage": result.usage.to_json(),
                "tool_calls": [c.to_json() for c in result.tool_calls],
                "request_seconds": [round(x, 6) for x in result.usage.seconds],
                "history": result.history}

    def answer(output: str) -> None:  # out before a summary is asked: a kill keeps it
        if output:
            sys.stdout.write(output if output.endswith("\n") else output + "\n")
            sys.stdout.flush()

    def progress(result: RunResult) -> None:  # a kill keeps what was used so far
        if result_path:
            try:
                write_record(result_path, record(result, "running"))
            except OSError:
                pass

    conv = Conversation(client=client, model=spec.model, tools={t.name: t for t in spec.tools},
                        capabilities=spec.capabilities, limits=spec.limits, deadline=deadline,
                        cwd=spec.cwd, tool_env=tool_environment(
                            os.environ, (spec.api_key_env,), keep=spec.tool_env),
                        temperature=spec.temperature, max_tokens=spec.max_tokens,
                        summarize=spec.summarize, progress=progress, answered=answer)
    result = conv.run(spec.input, system_prompt=spec.system_prompt,
                      previous_summary=spec.previous_summary, history=list(spec.history))
    if result_path:
        try:
            write_record(result_path, record(result, result.status))
        except OSError as exc:
            return _fail(EXIT_FAILED, f"cannot write the result file: {exc.strerror}")
    if result.status != "succeeded":
        return _fail(EXIT_FAILED, result.error or "the run failed")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
