"""How jobs and runs map to rows: the column lists and the conversions both ways."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

from symbid.model import OPEN_RUN_STATUSES, OUTPUT_PREVIEW, Job, JobStatus, RunStatus, Trigger
from symbid.records import Iteration, LlmUsage, Run, ToolCall
from symbid.spans import Spans

OPEN_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(OPEN_RUN_STATUSES)) + ")"

JOB_COLUMNS = (
    "id, name, agent_id, cron_expr, at_ms, timezone, status, source, definition, next_run, "
    "last_run, claimed, claimed_through, run_count, success_count, failure_count, "
    "total_execution_ms, longest_execution_ms, created_at, updated_at, version"
)
JOB_PLACEHOLDERS = ", ".join("?" * len(JOB_COLUMNS.split(",")))
RUN_COLUMNS = (
    "id, job_id, space, slot, attempt, trigger_kind, status, created_at, not_before, "
    "started_at, finished_at, execution_time_ms, exit_code, signal, error_message, output, "
    "output_truncated, summary, input, retry_at, pid, pgid, output_bytes, iterations, stop_reason, "
    "usage, tool_calls, pid_start, approval_deadline, approved_by, approval_note"
)
RUN_PLACEHOLDERS = ", ".join("?" * len(RUN_COLUMNS.split(",")))


def spans_text(spans: Spans) -> str:
    return json.dumps([list(s) for s in spans], separators=(",", ":"))


def _spans(text: str) -> Spans:
    return tuple((int(lo), int(hi)) for lo, hi in json.loads(text or "[]"))


def job_from_row(row: Sequence[Any]) -> Job:
    (jid, name, agent_id, cron_expr, at_ms, tz, status, source, definition, next_run,
     last_run, claimed, _through, run_count, _success, failure_count, _exec_ms, _longest,
     created_at, updated_at, version) = row
    return Job(
        id=jid,
        name=name,
        agent_id=agent_id,
        cron_expr=cron_expr,
        at=at_ms,
        timezone=tz,
        status=JobStatus(status),
        source=source,
        next_run=next_run,
        last_run=last_run,
        claimed=_spans(claimed),
        run_count=run_count,
        failure_count=failure_count,
        created_at=created_at,
        updated_at=updated_at,
        version=version,
        **Job.definition_fields(json.loads(definition)),
    )


def job_params(job: Job) -> tuple[Any, ...]:
    """The values of :data:`JOB_COLUMNS` for a new row."""
    return (
        job.id, job.name, job.agent_id, job.cron_expr, job.at, job.timezone,
        job.status.value, job.source, json.dumps(job.definition(), sort_keys=True),
        job.next_run, job.last_run, spans_text(job.claimed), job.claimed_through,
        job.run_count, 0, job.failure_count, 0, 0, job.created_at, job.updated_at, job.version,
    )


def run_from_row(row: Sequence[Any]) -> Run:
    (rid, job_id, _space, slot, attempt, trigger, status, created_at, not_before, started_at,
     finished_at, execution_time_ms, exit_code, sig, error_message, output, truncated,
     summary, input_text, retry_at, pid, pgid, output_bytes, iterations, stop_reason, usage,
     tool_calls, pid_start, approval_deadline, approved_by, approval_note) = row
    # a history row's query gives the number of tool calls, not the list
    count = tool_calls if isinstance(tool_calls, int) else None
    calls = () if count is not None else tool_calls_from_text(tool_calls)
    return Run(
        id=rid, job_id=job_id, slot=slot, attempt=attempt, trigger=Trigger(trigger),
        status=RunStatus(status), created_at=created_at, not_before=not_before,
        started_at=started_at, finished_at=finished_at, execution_time_ms=execution_time_ms,
        exit_code=exit_code, signal=sig, error_message=error_message, output=output,
        output_truncated=bool(truncated), summary=summary, input=input_text,
        retry_at=retry_at, pid=pid, pgid=pgid, output_bytes=output_bytes or 0,
        iterations=iterations_from_text(iterations), stop_reason=stop_reason,
        usage=usage_from_text(usage),
        tool_calls=calls, tool_call_count=len(calls) if count is None else count,
        pid_start=pid_start, approval_deadline=approval_deadline, approved_by=approved_by,
        approval_note=approval_note,
    )


def run_params(run: Run) -> tuple[Any, ...]:
    """The values of :data:`RUN_COLUMNS` for a new row."""
    return (
        run.id, run.job_id, run.key_space.value, run.slot, run.attempt, run.trigger.value,
        run.status.value, run.created_at, run.not_before, run.started_at, run.finished_at,
        run.execution_time_ms, run.exit_code, run.signal, run.error_message, run.output,
        int(run.output_truncated), run.summary, run.input, run.retry_at, run.pid, run.pgid,
        output_size(run.output), iterations_text(run.iterations), run.stop_reason,
        usage_text(run.usage), tool_calls_text(run.tool_calls), run.pid_start,
        run.approval_deadline, run.approved_by, run.approval_note,
    )


def iterations_text(iterations: Sequence[Iteration]) -> str:
    return json.dumps([[i.number, i.status.value, i.summary, i.duration_ms]
                       for i in iterations], separators=(",", ":"))


def iterations_from_text(text: Optional[str]) -> tuple[Iteration, ...]:
    return tuple(Iteration(number=int(n), status=RunStatus(st), summary=summ,
                           duration_ms=int(ms))
                 for n, st, summ, ms in json.loads(text or "[]"))


def usage_text(usage: Optional[LlmUsage]) -> Optional[str]:
    if usage is None:
        return None
    return json.dumps([usage.prompt_tokens, usage.completion_tokens, usage.requests])


def usage_from_text(text: Optional[str]) -> Optional[LlmUsage]:
    if not text:
        return None
    prompt, completion, requests = json.loads(text)
    return LlmUsage(int(prompt), int(completion), int(requests))


def tool_calls_text(calls: Sequence[ToolCall]) -> str:
    return json.dumps([[c.name, c.arguments, c.exit_status, c.duration_ms, c.error, c.id,
                        c.iteration] for c in calls], separators=(",", ":"))


def tool_calls_from_text(text: Optional[str]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(name=n, arguments=a, exit_status=x, duration_ms=int(ms), error=e,
                          id=i, iteration=it)
                 for n, a, x, ms, e, i, it in json.loads(text or "[]"))


def output_size(text: Optional[str]) -> int:
    return 0 if text is None else len(text.encode("utf-8", "replace"))


PREVIEW_RUN_COLUMNS = ", ".join(f"substr({c.strip()}, 1, {OUTPUT_PREVIEW})"
                                if c.strip() in ("output", "input") else
                                "json_array_length(tool_calls)" if c.strip() == "tool_calls"
                                else c.strip() for c in RUN_COLUMNS.split(","))


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """(low, high): ``low <= id < high`` holds exactly for the ids that start with
    ``prefix`` (binary collation), a range the primary key's index answers."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
