"""The wire form of the model: jobs, runs and agents as the API, the CLI's JSON and
`symbi dsl show` write them, and agents back from the form the store keeps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from symbid.agentdef import Agent, AgentKind, Limits, Tool
from symbid.model import OUTPUT_PREVIEW, Job, Policy, format_duration, format_instant
from symbid.records import Run


def _instant(ms: Optional[int]) -> Optional[str]:
    return None if ms is None else format_instant(ms)


def policy_to_wire(policy: Policy) -> dict[str, Any]:
    d = policy.to_dict()
    runtime = d.pop("max_runtime_seconds")
    d["max_runtime"] = None if runtime is None else format_duration(runtime)
    wait = d.pop("approval_timeout_seconds")
    d["approval_timeout"] = None if wait is None else format_duration(wait)
    return {k: d[k] for k in ("require_approval", "approvers", "max_runtime",
                              "require_capabilities", "allowed_hours",
                              "allowed_environments", "require_agent_pin",
                              "approval_timeout")}


def job_to_wire(job: Job) -> dict[str, Any]:
    """A job in the wire names of DESIGN §3 (instants as RFC 3339 UTC)."""
    return {
        "id": job.id,
        "name": job.name,
        "agent_id": job.agent_id,
        "cron_expr": job.cron_expr,
        "at": _instant(job.at),
        "timezone": job.timezone,
        "status": job.status.value,
        "session_mode": job.session_mode.value,
        "heartbeat": job.heartbeat.to_dict(),
        "delivery": list(job.delivery),
        "delivery_config": job.delivery_config.to_dict(),
        "alert": list(job.alert),
        "alert_cooldown": job.alert_cooldown_seconds,
        "alert_if_no_success_within": job.alert_if_no_success_within_seconds,
        "policy": policy_to_wire(job.policy),
        "max_concurrent": job.max_concurrent,
        "max_retries": job.max_retries,
        "jitter_seconds": job.jitter_seconds,
        "catch_up": job.catch_up.value,
        "catch_up_limit": job.catch_up_limit,
        "input": job.input,
        "agent_pin_jwt": job.agent_pin_jwt,
        "source": job.source,
        "next_run": _instant(job.next_run),
        "last_run": _instant(job.last_run),
        "run_count": job.run_count,
        "failure_count": job.failure_count,
        "created_at": _instant(job.created_at),
        "updated_at": _instant(job.updated_at),
    }


def run_to_wire(run: Run, *, preview: bool = False) -> dict[str, Any]:
    """A run in its wire form. With ``preview`` (history rows) it carries
    ``output_preview``, ``output_bytes``, ``input_preview`` and ``tool_call_count``
    instead of the whole ``output``, ``input`` and ``tool_calls``, which only
    ``GET /api/v1/runs/{id}`` returns."""
    out = _run_wire(run)
    text = run.output
    out["output_bytes"] = run.output_bytes if run.output_bytes or not text \
        else len(text.encode("utf-8", "replace"))
    out["output_preview"] = None if text is None else text[:OUTPUT_PREVIEW]
    if preview:  # a listing carries neither whole outputs nor whole inputs
        del out["output"]
        given = out.pop("input")
        out["input_preview"] = None if given is None else given[:OUTPUT_PREVIEW]
        del out["tool_calls"]
        out["tool_call_count"] = run.tool_call_count or len(run.tool_calls)
    return out


def _run_wire(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "job_id": run.job_id,
        "slot": format_instant(run.slot),
        "attempt": run.attempt,
        "trigger": run.trigger.value,
        "status": run.status.value,
        "created_at": format_instant(run.created_at),
        "started_at": _instant(run.started_at),
        "finished_at": _instant(run.finished_at),
        "execution_time_ms": run.execution_time_ms,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "error_message": run.error_message,
        "output": run.output,
        "output_truncated": run.output_truncated,
        "summary": run.summary,
        "input": run.input,
        "retry_at": _instant(run.retry_at),
        "iterations": [i.to_dict() for i in run.iterations],
        "stop_reason": run.stop_reason,
        "usage": None if run.usage is None else run.usage.to_dict(),
        "tool_calls": [c.to_dict() for c in run.tool_calls],
        "approval_deadline": _instant(run.approval_deadline),
        "approved_by": run.approved_by,
        "approval_note": run.approval_note,
    }


def agent_to_wire(agent: Agent) -> dict[str, Any]:
    limits = agent.limits
    return {
        "name": agent.name,
        "kind": agent.kind.value,
        "command": list(agent.command),
        "env": dict(agent.env),
        "working_dir": agent.working_dir,
        "user": agent.user,
        "group": agent.group,
        "limits": {
            "memory": limits.memory_bytes,
            "cpu_time": limits.cpu_seconds,
            "processes": limits.processes,
            "open_files": limits.open_files,
            "output": limits.output_bytes,
        },
        "capabilities": list(agent.capabilities),
        "model": agent.model,
        "system_prompt": agent.system_prompt,
        "endpoint": agent.endpoint,
        "agentpin_id": agent.agentpin_id,
        "temperature": agent.temperature,
        "max_tokens": agent.max_tokens,
        "max_tool_calls": agent.max_tool_calls,
        "max_context_bytes": agent.max_context_bytes,
        "max_tokens_per_run": agent.max_tokens_per_run,
        "summarize": agent.summarize,
        "tools": {t.name: tool_to_wire(t) for t in agent.tools},
    }


def agent_from_wire(d: Mapping[str, Any]) -> Agent:
    """The agent whose (already checked) wire form is ``d``, as the store keeps it; keys an
    older symbid did not write take their defaults."""
    lim = d["limits"]
    return Agent(
        name=d["name"],
        kind=AgentKind(d["kind"]),
        command=tuple(d["command"]),
        env=dict(d["env"]),
        working_dir=d["working_dir"],
        user=d["user"],
        group=d["group"],
        limits=Limits(memory_bytes=lim["memory"], cpu_seconds=lim["cpu_time"],
                      processes=lim["processes"], open_files=lim["open_files"],
                      output_bytes=lim["output"]),
        capabilities=tuple(d["capabilities"]),
        model=d["model"],
        system_prompt=d["system_prompt"],
        endpoint=d["endpoint"],
        agentpin_id=d["agentpin_id"],
        temperature=d.get("temperature"),
        max_tokens=d.get("max_tokens"),
        max_tool_calls=d.get("max_tool_calls"),
        max_context_bytes=d.get("max_context_bytes"),
        max_tokens_per_run=d.get("max_tokens_per_run"),
        summarize=bool(d.get("summarize", False)),
        tools=tuple(Tool(name=name, command=tuple(t["command"]),
                         description=t.get("description", ""),
                         parameters=dict(t.get("parameters", {})),
                         parameters_schema=t.get("parameters_schema"),
                         requires=tuple(t.get("requires", ())))
                    for name, t in (d.get("tools") or {}).items()),
    )


def tool_to_wire(tool: Tool) -> dict[str, Any]:
    """A tool as the API shows it (keys that are not set are left out)."""
    out: dict[str, Any] = {"description": tool.description, "command": list(tool.command)}
    if tool.parameters_schema is not None:
        out["parameters_schema"] = tool.parameters_schema
    else:
        out["parameters"] = dict(tool.parameters)
    if tool.requires:
        out["requires"] = list(tool.requires)
    return out
