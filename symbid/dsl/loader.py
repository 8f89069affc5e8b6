"""Syntax tree -> jobs and agents of the model, with every check the DSL promises.

Unknown keys are errors with a did-you-mean; wrong types name the key and the
type expected; a schedule's cron/at/timezone are validated by
:mod:`symbid.timing`. ``${NAME}`` references are kept exactly as written.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from symbid.dsl.parser import (
    Diagnostic,
    Document,
    DslError,
    Entry,
    Pos,
    Value,
    make_diagnostic,
    parse_file,
)
from symbid.errors import InvalidInput
from symbid.model import (
    MAXIMUMS,
    Agent,
    AgentKind,
    AllowedHours,
    CatchUp,
    DeliveryConfig,
    Heartbeat,
    Job,
    Limits,
    Policy,
    SessionMode,
    name_problem,
)
from symbid.text import escape, shorten
from symbid.timing import load_zone, parse_cron, parse_duration, parse_instant

log = logging.getLogger(__name__)

KNOWN_CHANNELS = ("stdout", "log_file", "webhook", "slack", "email")


class _Invalid(Exception):
    """A value failed its check (internal: turned into a diagnostic)."""

    def __init__(self, pos: Pos, message: str, *, key: Optional[str] = None) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message
        self.key = key  # the key at fault, when the check knows it


# --- value checkers -----------------------------------------------------------------------

Checker = Callable[[str, Value], Any]


def _kind_name(v: Value) -> str:
    return {"string": "a string", "number": "a number", "duration": "a duration",
            "bool": "a boolean", "ident": f"the name {v.value!r}", "array": "a list",
            "map": "a block"}[v.kind]


def _expect(key: str, v: Value, what: str) -> _Invalid:
    return _Invalid(v.pos, f"{key}: expected {what}, got {_kind_name(v)}")


def string(key: str, v: Value) -> str:
    if v.kind in ("string", "ident"):
        return str(v.value)
    raise _expect(key, v, "a string")


def nonempty_string(key: str, v: Value) -> str:
    text = string(key, v)
    if not text.strip():
        raise _Invalid(v.pos, f"{key}: must not be empty")
    return text


def boolean(key: str, v: Value) -> bool:
    if v.kind == "bool":
        return bool(v.value)
    raise _expect(key, v, "true or false")


def integer(minimum: int, maximum: Optional[int] = None) -> Checker:
    def check(key: str, v: Value) -> int:
        if v.kind != "number" or not isinstance(v.value, int):
            raise _expect(key, v, "a whole number")
        if v.value < minimum:
            raise _Invalid(v.pos, f"{key}: must be at least {minimum}, got {v.value}")
        if maximum is not None and v.value > maximum:
            raise _Invalid(v.pos, f"{key}: must be at most {maximum}, got {v.value}")
        return int(v.value)
    return check


def bounded(checker: Checker, maximum: float, unit: str = "") -> Checker:
    """``checker``, then at most ``maximum`` (a length for strings)."""
    def check(key: str, v: Value) -> Any:
        value = checker(key, v)
        size = len(value) if isinstance(value, str) else value
        if size > maximum:
            what = f"{int(maximum)}{unit}"
            raise _Invalid(v.pos, f"{key}: must be at most {what}")
        return value
    return check


def duration(key: str, v: Value) -> float:
    if v.kind in ("duration", "number"):
        if float(v.value) < 0:
            raise _Invalid(v.pos, f"{key}: must not be negative")
        try:
            seconds = parse_duration(float(v.value), field=key)
        except (InvalidInput, OverflowError) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else f"{key}: too large"
            raise _Invalid(v.pos, message) from None
    elif v.kind == "string":
        try:
            seconds = parse_duration(str(v.value), field=key)
        except InvalidInput as exc:
            raise _Invalid(v.pos, exc.message) from None
    else:
        raise _expect(key, v, 'a duration (such as 30s, 5m, "2h")')
    if seconds < 0:
        raise _Invalid(v.pos, f"{key}: must not be negative")
    return seconds


_MAX_SIZE = float(2**50)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)


def size(key: str, v: Value) -> int:
    """Bytes: a number, or a string such as "512M", "1G", "64KiB"."""
    if v.kind == "number" and isinstance(v.value, int) and 0 <= v.value <= _MAX_SIZE:
        return int(v.value)
    if v.kind == "string":
        m = _SIZE.match(str(v.value))
        if m:
            factor = 1024 ** " KMGT".index((m.group(2) or " ").upper())
            amount = float(m.group(1)) * factor
            if amount > _MAX_SIZE:
                raise _Invalid(v.pos, f"{key}: {v.value!r} is larger than 1 PiB")
            return int(amount)
    raise _Invalid(v.pos, f'{key}: expected a size such as "512M", "1G" or a number of bytes')


def string_list(key: str, v: Value) -> list[str]:
    if v.kind != "array":
        raise _expect(key, v, "a list of strings")
    return [string(key, item) for item in v.value]


def string_map(key: str, v: Value) -> dict[str, str]:
    if v.kind != "map":
        raise _expect(key, v, "a block of name: value pairs")
    out: dict[str, str] = {}
    for entry in v.value:
        if entry.key in out:
            raise _Invalid(entry.key_pos, f"{key}: {entry.key!r} given twice")
        out[entry.key] = string(f"{key}.{entry.key}", entry.value)
    return out


def enum(choices: Collection[str]) -> Checker:
    def check(key: str, v: Value) -> str:
        text = string(key, v)
        if text not in choices:
            hint = difflib.get_close_matches(text, list(choices), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise _Invalid(v.pos, f"{key}: {text!r} is not one of "
                                  f"{', '.join(sorted(choices))}{extra}")
        return text
    return check


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def hhmm(key: str, v: Value) -> str:
    text = string(key, v)
    if not _HHMM.match(text):
        raise _Invalid(v.pos, f'{key}: expected a time of day "HH:MM", got {text!r}')
    return text


def block(schema: Mapping[str, Checker], required: Collection[str] = ()) -> Checker:
    def check(key: str, v: Value) -> dict[str, Any]:
        if v.kind != "map":
            raise _expect(key, v, "a block { ... }")
        return _read_entries(v.value, schema, prefix=f"{key}.", required=required, pos=v.pos)
    return check


def _read_entries(
    entries: list[Entry], schema: Mapping[str, Checker], *, prefix: str = "",
    required: Collection[str] = (), pos: Optional[Pos] = None,
) -> dict[str, Any]:
    """Check entries against a schema; collects every problem into an _Invalids."""
    out: dict[str, Any] = {}
    seen: dict[str, Pos] = {}
    problems: list[_Invalid] = []
    for entry in entries:
        name = prefix + entry.key
        if entry.key in seen:
            first = seen[entry.key]
            problems.append(_Invalid(entry.key_pos, f"{name} given twice "
                                                    f"(first at line {first.line})"))
            continue
        seen[entry.key] = entry.key_pos
        checker = schema.get(entry.key)
        if checker is None:
            hint = difflib.get_close_matches(entry.key, list(schema), n=1, cutoff=0.6)
            extra = f"; did you mean {hint[0]!r}?" if hint else \
                f"; known keys: {', '.join(sorted(schema))}"
            problems.append(_Invalid(entry.key_pos, f"unknown key {shorten(name)!r}{extra}"))
            continue
        try:
            out[entry.key] = checker(name, entry.value)
        except _Invalids as many:
            problems.extend(many.problems)
        except _Invalid as exc:
            problems.append(exc)
    for key in required:
        if key not in out and key not in seen:
            problems.append(_Invalid(pos or Pos(1, 1), f"missing required key {prefix + key!r}"))
    if problems:
        raise _Invalids(problems)
    return out


class _Invalids(_Invalid):
    def __init__(self, problems: list[_Invalid]) -> None:
        super().__init__(problems[0].pos, problems[0].message)
        self.problems = problems


SESSION_MODES = [m.value for m in SessionMode]
POLICY = {
    "require_approval": boolean,
    "approvers": string_list,
    "max_runtime": duration,
    "require_capabilities": string_list,
    "allowed_hours": block({"start": hhmm, "end": hhmm}, required=("start", "end")),
    "allowed_environments": string_list,
    "require_agent_pin": boolean,
}
SCHEDULE = {
    "name": nonempty_string,
    "agent": nonempty_string,
    "cron": bounded(nonempty_string, MAXIMUMS["cron_expr"], " characters"),
    "at": nonempty_string,
    "timezone": bounded(nonempty_string, MAXIMUMS["timezone"], " characters"),
    "session_mode": enum(SESSION_MODES),
    "heartbeat": block({"enabled": boolean, "context_mode": enum(SESSION_MODES),
                        "max_iterations": integer(1, MAXIMUMS["heartbeat.max_iterations"])}),
    "delivery": string_list,
    "webhook_url": nonempty_string,
    "webhook_headers": string_map,
    "slack_channel": nonempty_string,
    "email_recipients": string_list,
    "policy": block(POLICY),
    "max_concurrent": integer(1, MAXIMUMS["max_concurrent"]),
    "max_retries": integer(0, MAXIMUMS["max_retries"]),
    "jitter": bounded(duration, MAXIMUMS["jitter_seconds"], " seconds (a day)"),
    "catch_up": enum([c.value for c in CatchUp]),
    "catch_up_limit": integer(0, MAXIMUMS["catch_up_limit"]),
    "agent_pin_jwt": nonempty_string,
    "input": string,
}
LIMITS = {
    "memory": size,
    "cpu_time": duration,
    "processes": integer(1),
    "open_files": integer(1),
    "output": size,
}
AGENT = {
    "model": nonempty_string,
    "system_prompt": string,
    "endpoint": nonempty_string,
    "command": string_list,
    "capabilities": string_list,
    "env": string_map,
    "working_dir": nonempty_string,
    "user": nonempty_string,
    "group": nonempty_string,
    "limits": block(LIMITS),
    "agentpin_id": nonempty_string,
}


# --- blocks -> model ----------------------------------------------------------------------


@dataclass
class LoadedFile:
    """What one file defines, or why it could not be used."""

    path: str
    jobs: list[Job] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    positions: dict[tuple[str, str], Pos] = field(default_factory=dict)  # (kind, name) -> pos
    text: str = ""

    def problem(self, kind: str, name: str, message: str) -> None:
        pos = self.positions.get((kind, name), Pos(1, 1))
        self.errors.append(make_diagnostic(self.path, self.text, pos, message))

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def source(self) -> str:
        return source_of(self.path)


def source_of(path: str) -> str:
    """The ``source`` recorded on jobs defined in a file."""
    return "file:" + os.path.abspath(path)


def _entry_pos(entries: list[Entry], key: str) -> Optional[Pos]:
    for e in entries:
        if e.key == key:
            return e.value.pos
    return None


def _schedule(doc: Document, blk: Any, now: Optional[int], out: LoadedFile) -> None:
    try:
        d = _read_entries(blk.entries, SCHEDULE, pos=blk.pos)
    except _Invalids as many:
        out.errors.extend(doc.diagnostic(p.pos, p.message) for p in many.problems)
        return
    problems: list[tuple[Optional[Pos], str]] = []
    name = d.get("name")
    if blk.name is not None and name is not None and name != blk.name:
        problems.append((_entry_pos(blk.entries, "name"),
                         f"name {name!r} differs from the block's name {blk.name!r}"))
    name = name or blk.name
    if name is None:
        problems.append((blk.pos, "schedule has no name: add name: \"...\" "
                                  "or write schedule NAME { ... }"))
    if "agent" not in d:
        problems.append((blk.pos, "schedule has no agent: add agent: \"...\""))
    if ("cron" in d) == ("at" in d):
        where = _entry_pos(blk.entries, "at") if "at" in d else blk.pos
        problems.append((where, "give exactly one of cron and at"))
    tz = d.get("timezone", "UTC")
    try:
        zone = load_zone(tz)
    except InvalidInput as exc:
        problems.append((_entry_pos(blk.entries, "timezone"), exc.message))
        zone = None
    if "cron" in d:
        try:
            parse_cron(d["cron"])
        except InvalidInput as exc:
            problems.append((_entry_pos(blk.entries, "cron"), exc.message))
    at_ms: Optional[int] = None
    if "at" in d and zone is not None:
        try:
            at_ms = parse_instant(d["at"], zone)
        except InvalidInput as exc:
            problems.append((_entry_pos(blk.entries, "at"), exc.message))
        else:
            if now is not None and at_ms <= now:
                out.warnings.append(doc.diagnostic(
                    _entry_pos(blk.entries, "at") or blk.pos,
                    f"schedule {name}: at time {d['at']} has passed; "
                    "a new job is not created for it"))
    delivery = d.get("delivery", [])
    needs = {"webhook": ("webhook_url", "a webhook_url"),
             "email": ("email_recipients", "email_recipients")}
    for channel in delivery:
        if channel in needs and needs[channel][0] not in d:
            problems.append((_entry_pos(blk.entries, "delivery"),
                             f"delivery {channel!r} needs {needs[channel][1]}"))
        elif channel not in KNOWN_CHANNELS and not channel.startswith("custom:"):
            out.warnings.append(doc.diagnostic(
                _entry_pos(blk.entries, "delivery") or blk.pos,
                f"delivery channel {channel!r} is not built in "
                f"({', '.join(KNOWN_CHANNELS)}); it must be a custom channel"))
    if problems:
        out.errors.extend(doc.diagnostic(p or blk.pos, m) for p, m in problems)
        return
    agent_pos = _entry_pos(blk.entries, "agent")
    if agent_pos is not None:
        out.positions[("agent-ref", name)] = agent_pos
    pol = d.get("policy", {})
    hours = pol.get("allowed_hours")
    hb = d.get("heartbeat", {})
    assert name is not None
    out.jobs.append(Job(
        id="",
        name=name,
        agent_id=d["agent"],
        cron_expr=d.get("cron"),
        at=at_ms,
        timezone=tz,
        session_mode=SessionMode(d.get("session_mode", SessionMode.EPHEMERAL_WITH_SUMMARY)),
        heartbeat=Heartbeat(
            enabled=hb.get("enabled", False),
            context_mode=SessionMode(hb.get("context_mode",
                                            SessionMode.EPHEMERAL_WITH_SUMMARY)),
            max_iterations=hb.get("max_iterations", 100),
        ),
        delivery=tuple(delivery),
        delivery_config=DeliveryConfig(
            webhook_url=d.get("webhook_url"),
            webhook_headers=d.get("webhook_headers", {}),
            slack_channel=d.get("slack_channel"),
            email_recipients=tuple(d.get("email_recipients", ())),
        ),
        policy=Policy(
            require_approval=pol.get("require_approval", False),
            approvers=tuple(pol.get("approvers", ())),
            max_runtime_seconds=pol.get("max_runtime"),
            require_capabilities=tuple(pol.get("require_capabilities", ())),
            allowed_hours=AllowedHours(hours["start"], hours["end"]) if hours else None,
            allowed_environments=tuple(pol.get("allowed_environments", ())),
            require_agent_pin=pol.get("require_agent_pin", False),
        ),
        max_concurrent=d.get("max_concurrent", 1),
        max_retries=d.get("max_retries"),
        jitter_seconds=d.get("jitter"),
        catch_up=CatchUp(d.get("catch_up", CatchUp.LATEST)),
        catch_up_limit=d.get("catch_up_limit", 100),
        input=d.get("input"),
        agent_pin_jwt=d.get("agent_pin_jwt"),
        source=out.source,
    ))


def build_agent(name: str, d: Mapping[str, Any], pos_of: Callable[[str], Pos]) -> Agent:
    """The agent that checked entries ``d`` (the AGENT schema's values) define; raises
    :class:`_Invalid`, with the key at fault and its position from ``pos_of``, when they
    do not make one. The DSL and the API (JSON) define agents through this alone."""

    def bad(key: str, message: str) -> _Invalid:
        return _Invalid(pos_of(key), message, key=key)

    if "command" in d and "model" in d:
        raise bad("model", f"agent {name}: give command (a command agent) or model (an llm "
                           "agent), not both")
    if "command" not in d and "model" not in d:
        raise bad("command", f"agent {name}: needs command: [...] (a command agent) "
                             "or model: \"...\" (an llm agent)")
    if "command" in d and not d["command"]:
        raise bad("command", f"agent {name}: command must not be empty")
    if "endpoint" in d and "command" in d:
        raise bad("endpoint", f"agent {name}: endpoint is for llm agents")
    lim = d.get("limits", {})
    cpu = lim.get("cpu_time")
    return Agent(
        name=name,
        kind=AgentKind.COMMAND if "command" in d else AgentKind.LLM,
        command=tuple(d.get("command", ())),
        env=d.get("env", {}),
        working_dir=d.get("working_dir"),
        user=d.get("user"),
        group=d.get("group"),
        limits=Limits(
            memory_bytes=lim.get("memory"),
            cpu_seconds=None if cpu is None else max(1, int(cpu + 0.999)),
            processes=lim.get("processes"),
            open_files=lim.get("open_files"),
            output_bytes=lim.get("output", Limits().output_bytes),
        ),
        capabilities=tuple(d.get("capabilities", ())),
        model=d.get("model"),
        system_prompt=d.get("system_prompt"),
        endpoint=d.get("endpoint"),
        agentpin_id=d.get("agentpin_id"),
    )


def _agent(doc: Document, blk: Any, out: LoadedFile) -> None:
    try:
        d = _read_entries(blk.entries, AGENT, pos=blk.pos)
    except _Invalids as many:
        out.errors.extend(doc.diagnostic(p.pos, p.message) for p in many.problems)
        return
    assert blk.name is not None
    try:
        out.agents.append(build_agent(blk.name, d,
                                      lambda key: _entry_pos(blk.entries, key) or blk.pos))
    except _Invalid as exc:
        out.errors.append(doc.diagnostic(exc.pos, exc.message))


def load_document(doc: Document, now: Optional[int] = None,
                  legacy_names: Collection[str] = ()) -> LoadedFile:
    """Turn a parsed document into jobs and agents; problems go into ``errors``.

    A name that breaks the name rule is an error, unless it is in ``legacy_names``
    (already stored by an older symbid): then it keeps working, with a warning.
    """
    out = LoadedFile(doc.path, text=doc.text)
    for skipped in doc.skipped:
        hint = difflib.get_close_matches(skipped.keyword, ["schedule", "agent"], n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        out.warnings.append(doc.diagnostic(
            skipped.pos, f"{skipped.keyword!r} block skipped: symbid reads only schedule "
                         f"and agent blocks{extra}"))
    for blk in doc.blocks:
        name = blk.name
        if name is not None and not name.strip():
            out.errors.append(doc.diagnostic(blk.name_pos or blk.pos,
                                             f"{blk.kind} name must not be empty"))
            continue
        if blk.kind == "schedule":
            for entry in blk.entries:
                if entry.key == "name" and entry.value.kind in ("string", "ident"):
                    name = str(entry.value.value)
        if name:
            problem = name_problem(name)
            if problem is not None:
                value_pos = next((e.value.pos for e in blk.entries if e.key == "name"), None)
                where = (value_pos if blk.kind == "schedule" else None) or blk.name_pos \
                    or blk.pos
                if name in legacy_names:
                    out.warnings.append(doc.diagnostic(
                        where, f"{blk.kind} name '{escape(name)}' {problem}; it keeps working "
                               "because it is already in use, but rename it"))
                else:
                    out.errors.append(doc.diagnostic(
                        where, f"{blk.kind} name '{escape(name)}' {problem}"))
                    continue
            first = out.positions.get((blk.kind, name))
            if first is not None:
                out.errors.append(doc.diagnostic(
                    blk.name_pos or blk.pos,
                    f"{blk.kind} {name!r} is defined twice (first at line {first.line})"))
                continue
            out.positions[(blk.kind, name)] = blk.name_pos or blk.pos
        if blk.kind == "agent":
            _agent(doc, blk, out)
        else:
            _schedule(doc, blk, now, out)
    return out


def load_file(path: str, now: Optional[int] = None,
              legacy_names: Collection[str] = ()) -> LoadedFile:
    """Parse and load one file; never raises for bad content (see ``errors``)."""
    try:
        doc = parse_file(path)
    except DslError as exc:
        return LoadedFile(path, errors=list(exc.diagnostics))
    return load_document(doc, now, legacy_names)


def check_references(files: list[LoadedFile], known_agents: Collection[str] = (),
                     *, agents_complete: bool = True) -> None:
    """Cross-file checks: agent and job names unique, schedules naming defined agents.

    Problems are added to the ``errors`` of the file at fault. With
    ``agents_complete=False`` (checking a few files, not a whole agents.d), a
    schedule naming an agent defined nowhere is only a warning.
    """
    owners: dict[tuple[str, str], str] = {}
    for f in files:
        if not f.ok:
            continue
        for kind, names in (("agent", [a.name for a in f.agents]),
                            ("schedule", [j.name for j in f.jobs])):
            for name in names:
                other = owners.setdefault((kind, name), f.path)
                if other != f.path:
                    f.problem(kind, name, f"{kind} {name!r} is also defined in {other}")
    defined = {name for kind, name in owners if kind == "agent"} | set(known_agents)
    for f in files:
        if not f.ok:
            continue
        for job in f.jobs:
            if job.agent_id not in defined:
                message = (f"schedule {job.name!r} uses agent {job.agent_id!r}, "
                           "which no file defines")
                kind = "agent-ref" if ("agent-ref", job.name) in f.positions else "schedule"
                f.problem(kind, job.name, message)
                if not agents_complete:
                    f.warnings.append(f.errors.pop())


def load_dir(directory: str, now: Optional[int] = None,
             known_agents: Collection[str] = (),
             legacy_names: Collection[str] = ()) -> list[LoadedFile]:
    """Every ``*.symbi`` file of a directory, in name order, cross-checked."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".symbi"))
    except OSError as exc:
        raise DslError([Diagnostic(directory, 1, 1, f"cannot read directory: "
                                                     f"{exc.strerror}")]) from None
    files = [load_file(os.path.join(directory, n), now, legacy_names) for n in names]
    check_references(files, known_agents)
    for f in files:
        for d in f.errors:
            log.error("%s", d.headline())
        for d in f.warnings:
            log.warning("%s", d.headline())
    return files
