"""Tools an LLM agent declares, and running one of them.

A tool is a command (argv) the model may call by name. Its arguments are checked against
its schema (:mod:`.schema`) before anything runs; they reach the command as one JSON
object on stdin. The command runs in the child's own process group (so the sandbox's
limits and kill cover it), in the run's working directory, with an environment built
from an allowlist (:func:`tool_environment`) that never holds the API key. Its stdout is
capped at :data:`OUTPUT_CAP` bytes (the cut is said), its stderr tail is kept for errors,
and its time is bounded by what is left of the run.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional

from symbid import toolschema as schemas
from symbid.errors import InvalidInput

if TYPE_CHECKING:
    import subprocess

OUTPUT_CAP = 64 * 1024
STDERR_TAIL = 2 * 1024
# Variables a tool inherits from the child; everything else is left out on purpose.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
             "SYMBI_RUN_ID", "SYMBI_JOB_ID", "SYMBI_JOB_NAME", "SYMBI_SLOT", "SYMBI_ATTEMPT",
             "SYMBI_TRIGGER")


class Tool:
    """A declared tool; build one with :func:`make_tool` so its schema is checked."""

    __slots__ = ("command", "description", "name", "requires", "schema")

    def __init__(self, name: str, description: str, command: tuple[str, ...],
                 schema: dict[str, Any], requires: tuple[str, ...] = ()) -> None:
        self.name = name
        self.description = description
        self.command = command
        self.schema = schema
        self.requires = requires

    def function(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.schema}}


class ToolCallRecord:
    """One tool call the model asked for, as listed in the run record.

    ``arguments`` are as the model sent them (possibly not JSON); ``exit_status`` is None
    when the call was refused and nothing ran.
    """

    __slots__ = ("arguments", "duration_ms", "error", "exit_status", "id", "name")

    def __init__(self, id: str, name: str, arguments: str) -> None:
        self.id = id
        self.name = name
        self.arguments = arguments
        self.exit_status: Optional[int] = None
        self.duration_ms = 0
        self.error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments,
                "exit_status": self.exit_status, "duration_ms": self.duration_ms,
                "error": self.error}


class ToolOutcome:
    """A tool run's exit status, the content that goes back to the model, and its error."""

    __slots__ = ("content", "error", "exit_status")

    def __init__(self, exit_status: Optional[int], content: str,
                 error: Optional[str] = None) -> None:
        self.exit_status = exit_status
        self.content = content
        self.error = error


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


def make_tool(name: str, *, command: list[str], description: str = "",
              parameters: Optional[Mapping[str, str]] = None,
              parameters_schema: Optional[str] = None,
              requires: Optional[list[str]] = None) -> Tool:
    """A checked tool. Raises :class:`InvalidInput` naming the field that is wrong."""
    where = f"tools.{name}"
    if not _valid_name(name):
        raise InvalidInput(f"{where}: a tool name is 1-64 of letters, digits, '_' and '-'",
                           field=where)
    if not command or not all(isinstance(a, str) for a in command):
        raise InvalidInput(f"{where}.command must be a non-empty list of strings",
                           field=f"{where}.command")
    if parameters is not None and parameters_schema is not None:
        raise InvalidInput(f"{where}: give parameters or parameters_schema, not both",
                           field=f"{where}.parameters_schema")
    try:
        if parameters_schema is not None:
            schema = schemas.parse_schema(parameters_schema)
        else:
            schema = schemas.short_schema(dict(parameters or {}))
    except schemas.SchemaError as exc:
        raise schemas.SchemaError(f"{where}.{exc.message}", field=f"{where}.{exc.field}") from None
    return Tool(name, description, tuple(command), schema, tuple(requires or ()))


def tool_environment(environ: Mapping[str, str], drop: tuple[str, ...] = (),
                     keep: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment a tool gets: :data:`INHERITED` names and ``keep`` (the agent's own
    env, its state directory), never ``drop`` (the key)."""
    return {k: environ[k] for k in (*INHERITED, *keep) if k in environ and k not in drop}


def check_call(tool: Optional[Tool], name: str, arguments: str,
               capabilities: frozenset[str]) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """The parsed arguments, or why the call is refused (then nothing may run)."""
    if tool is None:
        return None, f"unknown tool {name!r}: it is not declared for this agent"
    missing = [c for c in tool.requires if c not in capabilities]
    if missing:
        return None, (f"tool {name!r} requires capabilities {', '.join(missing)} that this "
                      "agent does not have")
    try:
        args = json.loads(arguments or "{}")
    except ValueError as exc:
        return None, f"arguments for {name!r} are not valid JSON: {exc}"
    problems = schemas.errors(args, tool.schema)
    if problems:
        return None, f"arguments for {name!r} do not fit its schema: " + "; ".join(problems[:10])
    return args, None


def run_tool(tool: Tool, args: dict[str, Any], *, cwd: Optional[str], env: dict[str, str],
             timeout: float) -> ToolOutcome:
    """Run ``tool`` with ``args`` on stdin; its outcome as the model will see it.

    Never raises for the tool's own failures: a command that cannot start, exits non-zero
    or outlives ``timeout`` (then it is killed) is an outcome with an error.
    """
    import subprocess  # here, not at the top: a run without tool calls never needs it
    try:
        proc = subprocess.Popen(list(tool.command), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                                close_fds=True)
    except OSError as exc:
        msg = f"tool {tool.name!r} could not start: {exc.strerror or exc}"
        return ToolOutcome(None, "error: " + msg, msg)
    out, err, cut, timed_out = _communicate(proc, json.dumps(args).encode(), timeout)
    text = out.decode("utf-8", "replace")
    if cut:
        text += f"\n[output cut at {OUTPUT_CAP} bytes]"
    if timed_out:
        msg = f"tool {tool.name!r} timed out after {timeout:.1f}s and was killed"
        return ToolOutcome(proc.returncode, f"error: {msg}\n{text}", msg)
    if proc.returncode != 0:
        tail = err[-STDERR_TAIL:].decode("utf-8", "replace")
        msg = f"tool {tool.name!r} exited with status {proc.returncode}"
        return ToolOutcome(proc.returncode, f"error: {msg}\nstderr:\n{tail}\nstdout:\n{text}",
                           msg)
    return ToolOutcome(0, text)


def _communicate(proc: subprocess.Popen[bytes], data: bytes,
                 timeout: float) -> tuple[bytes, bytes, bool, bool]:
    """stdout (capped, the rest drained), stderr tail, whether cut, whether timed out."""
    import selectors
    assert proc.stdin and proc.stdout and proc.stderr
    deadline = time.monotonic() + max(timeout, 0.0)
    out, err = bytearray(), bytearray()
    cut = timed_out = False
    sel = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    if data:
        sel.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    view = memoryview(data)
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(left):
            if key.fileobj is proc.stdin:
                try:
                    n = os.write(proc.stdin.fileno(), view[:65536])
                except BrokenPipeError:
                    n = len(view)
                view = view[n:]
                if not view:
                    sel.unregister(proc.stdin)
                    proc.stdin.close()
                continue
            fd = key.fileobj.fileno()  # type: ignore[union-attr]
            chunk = os.read(fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            if key.fileobj is proc.stdout:
                room = OUTPUT_CAP - len(out)
                if len(chunk) > room:
                    cut = True
                out += chunk[:max(room, 0)]
            else:
                err += chunk
                del err[:-STDERR_TAIL]
    sel.close()
    if timed_out:
        proc.kill()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if not f.closed:
            f.close()
    proc.wait()
    return bytes(out), bytes(err), cut, timed_out
