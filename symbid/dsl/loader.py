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
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from symbid.agentdef import Agent, AgentKind, Limits, Tool
from symbid.channels import delivery_problem
from symbid.cronexpr import parse_cron
from symbid.dsl.checks import (
    _Invalid,
    _Invalids,
    _read_entries,
    block,
    boolean,
    bounded,
    duration,
    enum,
    hhmm,
    integer,
    json_object_text,
    named_blocks,
    nonempty_string,
    parameter_types,
    real,
    size,
    string,
    string_list,
    string_map,
)
from symbid.dsl.parser import (
    Diagnostic,
    Document,
    DslError,
    Entry,
    Pos,
    make_diagnostic,
    parse_file,
)
from symbid.errors import InvalidInput
from symbid.model import (
    FILE_SOURCE_PREFIX,
    MAXIMUMS,
    AllowedHours,
    CatchUp,
    DeliveryConfig,
    Heartbeat,
    Job,
    Policy,
    SessionMode,
    name_problem,
)
from symbid.policydef import pin_problem, policy_problem, policy_warnings
from symbid.text import escape
from symbid.timing import load_zone, parse_instant

log = logging.getLogger(__name__)



SESSION_MODES = [m.value for m in SessionMode]
POLICY = {
    "require_approval": boolean,
    "approvers": string_list,
    "max_runtime": duration,
    "require_capabilities": string_list,
    "allowed_hours": block({"start": hhmm, "end": hhmm, "timezone": nonempty_string},
                           required=("start", "end")),
    "allowed_environments": string_list,
    "require_agent_pin": boolean,
    "approval_timeout": duration,
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
    "webhook_secret": nonempty_string,
    "alert": string_list,
    "alert_cooldown": duration,
    "alert_if_no_success_within": duration,
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
TOOL = {
    "description": string,
    "parameters": parameter_types,
    "parameters_schema": json_object_text,
    "command": string_list,
    "requires": string_list,
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
    "temperature": real(0, 2),
    "max_tokens": integer(1, 1_000_000),
    "max_tool_calls": integer(0, 1000),
    "max_context_bytes": size,
    "max_tokens_per_run": integer(1, 1_000_000_000),
    "summarize": boolean,
    "tools": named_blocks(TOOL, required=("command",)),
}
LLM_ONLY = ("system_prompt", "endpoint", "temperature", "max_tokens", "max_tool_calls",
            "max_context_bytes", "max_tokens_per_run", "summarize", "tools")


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

    def schedule_fault(self, name: str, field: Optional[str], problem: str, *,
                       context: str = "") -> Diagnostic:
        """``schedule 'NAME': PROBLEM CONTEXT``, a problem found after loading (the
        daemon's settings or its API refusing the schedule), placed at: ``field``'s entry
        when it is not a channel list and the file has it (agent_id: the agent
        reference); else, for a delivery field, the channel that ``problem`` quotes, in
        ``field``'s list, then in delivery's and alert's; else ``field``'s entry; else the
        schedule."""
        field = "agent-ref" if field == "agent_id" else field or "schedule"
        lists = ("delivery", "alert")
        pos = self.positions.get((field, name)) if field not in lists else None
        search = pos is None and field in _DELIVERY_ENTRIES
        for key in (field, *lists) if search else ():
            pos = next((p for (k, n), p in self.positions.items() if n == name
                        and k.startswith(f"{key} '") and k[len(key) + 1:] in problem), None)
            if pos is not None:
                break
        pos = pos or self.positions.get((field, name)) or \
            self.positions.get(("schedule", name), Pos(1, 1))
        return make_diagnostic(self.path, self.text, pos,
                               f"schedule {name!r}: {problem}{context}")

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def source(self) -> str:
        return source_of(self.path)



def _delivery_config(d: dict[str, Any]) -> DeliveryConfig:
    return DeliveryConfig(webhook_url=d.get("webhook_url"),
                          webhook_headers=d.get("webhook_headers", {}),
                          slack_channel=d.get("slack_channel"),
                          email_recipients=tuple(d.get("email_recipients", ())),
                          webhook_secret=d.get("webhook_secret"))

def source_of(path: str) -> str:
    """The ``source`` recorded on jobs defined in a file."""
    return FILE_SOURCE_PREFIX + os.path.abspath(path)


def _entry_pos(entries: list[Entry], key: str) -> Optional[Pos]:
    for e in entries:
        if e.key == key:
            return e.value.pos
    return None


# The entries a delivery problem can be about, the field's own first.
_DELIVERY_ENTRIES = ("delivery", "alert", "webhook_url", "webhook_headers", "webhook_secret",
                     "slack_channel", "email_recipients", "alert_cooldown",
                     "alert_if_no_success_within")


def _entry_at_fault(d: Mapping[str, Any], field: str, message: str) -> str:
    """The entry a delivery problem is shown at: its field when written, else the entry
    its message names (alert_if_no_success_within needs alert), else delivery."""
    named = [k for k in _DELIVERY_ENTRIES if k in d and re.search(rf"\b{k}\b", message)]
    return field if field in d else named[0] if named else \
        "alert" if "alert" in d and field != "delivery" else "delivery"


def _policy_of(pol: Mapping[str, Any]) -> Policy:
    hours = pol.get("allowed_hours")
    return Policy(
        require_approval=pol.get("require_approval", False),
        approvers=tuple(pol.get("approvers", ())),
        max_runtime_seconds=pol.get("max_runtime"),
        require_capabilities=tuple(pol.get("require_capabilities", ())),
        allowed_hours=AllowedHours(hours["start"], hours["end"], hours.get("timezone", "UTC"))
        if hours else None,
        allowed_environments=tuple(pol.get("allowed_environments", ())),
        require_agent_pin=pol.get("require_agent_pin", False),
        approval_timeout_seconds=pol.get("approval_timeout"),
    )


def _nested_pos(entries: list[Entry], dotted: str) -> Optional[Pos]:
    """The value's position of a nested entry (``policy.allowed_hours.timezone``), or of
    the deepest of its parents written."""
    found: Optional[Pos] = None
    for key in dotted.split("."):
        entry = next((e for e in entries if e.key == key), None)
        if entry is None:
            return found
        found = entry.value.pos
        if entry.value.kind != "map":
            return found
        entries = entry.value.value
    return found


def _channel_items(entries: list[Entry], key: str) -> list[tuple[str, Pos]]:
    """The strings of ``key``'s array entry (a channel list) with their positions."""
    entry = next((e for e in entries if e.key == key), None)
    if entry is None or entry.value.kind != "array":
        return []
    return [(v.value, v.pos) for v in entry.value.value if v.kind == "string"]


def _fault_pos(entries: list[Entry], key: str, message: str) -> Optional[Pos]:
    """Where a problem with ``key`` is shown: at the list element its message quotes (the
    channel at fault), else at the entry's value."""
    for item, pos in _channel_items(entries, key):
        if repr(item) in message:
            return pos
    return _entry_pos(entries, key)


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
    lacking = delivery_problem(tuple(delivery), _delivery_config(d), tuple(d.get("alert", ())),
                               d.get("alert_if_no_success_within"),
                               d.get("alert_cooldown"))
    if lacking is not None:
        problems.append((_fault_pos(blk.entries, _entry_at_fault(d, *lacking), lacking[1]),
                         lacking[1]))
    if not problems:
        policy = _policy_of(d.get("policy", {}))
        bad_policy = policy_problem(policy) or pin_problem(d.get("agent_pin_jwt"))
        if bad_policy is not None:
            problems.append((_nested_pos(blk.entries, bad_policy[0]), bad_policy[1]))
        for field_name, said in policy_warnings(policy, d.get("agent_pin_jwt")):
            out.warnings.append(doc.diagnostic(
                _nested_pos(blk.entries, field_name) or blk.pos, f"schedule {name}: {said}"))
    if problems:
        out.errors.extend(doc.diagnostic(p or blk.pos, m) for p, m in problems)
        return
    agent_pos = _entry_pos(blk.entries, "agent")
    if agent_pos is not None:
        out.positions[("agent-ref", name)] = agent_pos
    for key in _DELIVERY_ENTRIES:  # where what the settings lack is reported
        at = _entry_pos(blk.entries, key)
        if at is not None:
            out.positions[(key, name)] = at
        for item, pos in _channel_items(blk.entries, key):
            out.positions[(f"{key} {item!r}", name)] = pos
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
        delivery_config=_delivery_config(d),
        alert=tuple(d.get("alert", ())),
        alert_cooldown_seconds=None if d.get("alert_cooldown") is None
        else float(d["alert_cooldown"]),
        alert_if_no_success_within_seconds=d.get("alert_if_no_success_within"),
        policy=_policy_of(d.get("policy", {})),
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
    for key in LLM_ONLY:
        if key in d and "command" in d:
            raise bad(key, f"agent {name}: {key} is for llm agents (with model)")
    if d.get("max_context_bytes") is not None and d["max_context_bytes"] < 1024:
        raise bad("max_context_bytes", f"agent {name}: max_context_bytes must be at least "
                                       "1024 bytes")
    tools = []
    for tool_name, t in d.get("tools", {}).items():
        where = f"tools.{tool_name}"
        if not t.get("command"):
            raise bad("tools", f"agent {name}: {where}.command must not be empty")
        if "parameters" in t and "parameters_schema" in t:
            raise bad("tools", f"agent {name}: {where}: give parameters or "
                               "parameters_schema, not both")
        missing = [c for c in t.get("requires", ()) if c not in d.get("capabilities", ())]
        if missing:
            raise bad("tools", f"agent {name}: {where} requires {', '.join(missing)}, which "
                               "the agent does not declare in capabilities")
        tools.append(Tool(name=tool_name, command=tuple(t["command"]),
                          description=t.get("description", ""),
                          parameters=t.get("parameters", {}),
                          parameters_schema=t.get("parameters_schema"),
                          requires=tuple(t.get("requires", ()))))
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
        temperature=d.get("temperature"),
        max_tokens=d.get("max_tokens"),
        max_tool_calls=d.get("max_tool_calls"),
        max_context_bytes=d.get("max_context_bytes"),
        max_tokens_per_run=d.get("max_tokens_per_run"),
        summarize=d.get("summarize", False),
        tools=tuple(tools),
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
                  legacy_names: Container[str] = ()) -> LoadedFile:
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
              legacy_names: Container[str] = ()) -> LoadedFile:
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


def check_deliveries(files: list[LoadedFile],
                     delivery_problem: Callable[[Job], Optional[tuple[str, str]]]) -> None:
    """A schedule whose channels the delivery settings cannot serve: an error at its
    ``delivery`` (or ``alert``) entry."""
    for f in files:  # every schedule that loaded, so all errors show at once
        for job in list(f.jobs):
            lacking = delivery_problem(job)
            if lacking is not None:
                f.errors.append(f.schedule_fault(job.name, *lacking))


def load_dir(directory: str, now: Optional[int] = None,
             known_agents: Collection[str] = (),
             legacy_names: Container[str] = (),
             delivery_problem: Optional[Callable[[Job], Optional[tuple[str, str]]]] = None,
             ) -> list[LoadedFile]:
    """Every ``*.symbi`` file of a directory, in name order, cross-checked; with
    ``delivery_problem`` (the daemon's delivery settings), a schedule whose channels
    cannot be served is an error at its ``delivery`` (or ``alert``) entry."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".symbi"))
    except OSError as exc:
        raise DslError([Diagnostic(directory, 1, 1, f"cannot read directory: "
                                                     f"{exc.strerror}")]) from None
    files = [load_file(os.path.join(directory, n), now, legacy_names) for n in names]
    check_references(files, known_agents)
    if delivery_problem is not None:
        check_deliveries(files, delivery_problem)
    for f in files:
        for d in f.errors:
            log.error("%s", d.headline())
        for d in f.warnings:
            log.warning("%s", d.headline())
    return files
