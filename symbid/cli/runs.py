"""``symbi cron run|history|output|cancel``: a job's runs; ``symbi run``: an agent's run
outside the schedule."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Optional

from symbid.cli.common import (
    TERMINAL_RUNS,
    UsageError,
    client_from,
    job_ref,
    lines,
    now_seconds,
    print_json,
    resolve_job,
    resolve_run,
)
from symbid.cli.output import relative, table, to_csv
from symbid.client import SymbiontClient
from symbid.errors import EXIT_ERROR, EXIT_OK, Unavailable
from symbid.text import escape

HISTORY_HEADERS = ["SLOT", "TRY", "TRIGGER", "STATUS", "STARTED", "TOOK", "ERROR", "RUN"]
_PREVIEW_WIDTH = 60


def _first_line(text: Any, width: int = _PREVIEW_WIDTH) -> str:
    first = str(text or "").strip().split("\n", 1)[0]
    return first if len(first) <= width else first[:width - 1] + "…"


def _detail(r: Any) -> str:
    """A heartbeat wake-up's iterations and why it stopped; an llm run's tokens and tools."""
    d = r.to_dict()
    parts = []
    if d.get("iterations"):
        stop = d.get("stop_reason")
        parts.append(f"{len(d['iterations'])} iter" + (f" ({stop})" if stop else ""))
    if d.get("usage"):
        parts.append(f"{d['usage'].get('total_tokens', 0)} tok")
    calls = d.get("tool_call_count", len(d.get("tool_calls") or []))
    if calls:
        parts.append(f"{calls} tool call" + ("s" if calls != 1 else ""))
    if d.get("delivery_status"):
        parts.append(str(d["delivery_status"]).replace("_", " "))
    return ", ".join(parts)


def delivery_lines(run: Any) -> list[str]:
    """A run's deliveries (its alerts labelled so), one line each with its last receipt:
    the error of a failure, else the HTTP status and the receiver's reply."""
    out = []
    for d in run.to_dict().get("deliveries") or []:
        last = (d.get("receipts") or [{}])[-1]
        reply = " ".join(str(p) for p in (
            f"HTTP {last['status']}" if last.get("status") else None, last.get("reply"))
            if p)
        how = last.get("error") or reply
        what = d["channel"] + (f" (alert {d.get('event')})" if d.get("kind") == "alert"
                               else "")
        out.append(f"  {escape(what)}: {d['status']}, {d['attempts']} attempt(s)"
                   + (f", last: {escape(str(how))}" if how else "")
                   + (f", next {d['next_at']}" if d.get("next_at") else ""))
    return out


def history_table(runs: list[Any], now: float, *, output: bool = False) -> \
        tuple[list[str], list[list[str]]]:
    """The headers and rows of a run listing; a DETAIL column when a run has iterations
    (heartbeat) or token usage (llm agent)."""
    details = [_detail(r) for r in runs]
    headers = HISTORY_HEADERS[:-2] + (["DETAIL"] if any(details) else []) + \
        HISTORY_HEADERS[-2:-1] + (["OUTPUT"] if output else []) + ["RUN"]
    rows = []
    for r, detail in zip(runs, details):
        took = f"{r.execution_time_ms} ms" if r.execution_time_ms is not None else "-"
        row = [r.slot, str(r.attempt), r.trigger, r.status, relative(r.started_at, now),
               took] + ([detail] if any(details) else []) + [_first_line(r.error_message)]
        if output:
            row.append(_first_line(r.output_preview if "output_preview" in r else r.output))
        rows.append(row + [r.id[:8]])
    return headers, rows


def cmd_history(args: argparse.Namespace) -> int:
    client = client_from(args)
    runs = client.schedule.get_history(resolve_job(client, job_ref(args)), status=args.status,
                                       limit=args.limit)
    if args.format == "json":
        print_json(runs)
    elif args.format == "csv":
        fields = ["id", "slot", "attempt", "trigger", "status", "started_at", "finished_at",
                  "execution_time_ms", "exit_code", "error_message", "delivery_status"]
        if args.output:
            fields.append("output_preview")
        print(to_csv(fields, [[r.to_dict().get(f) for f in fields] for r in runs]), end="")
    elif not runs:
        print(f"no {args.status} runs" if args.status else "no runs yet")
    else:
        headers, rows = history_table(list(runs), now_seconds(), output=args.output)
        table(headers, rows, [r.status for r in runs], 3)
    return EXIT_OK


def _wait(client: SymbiontClient, run: Any, timeout: Optional[float]) -> Any:
    """Poll until the run ends; on a terminal, show how long it has taken so far."""
    shown = sys.stderr.isatty()
    start = time.monotonic()
    try:
        while run.status not in TERMINAL_RUNS:
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed >= timeout:
                if shown:
                    print("\r\x1b[K", end="", file=sys.stderr)
                return run
            if shown:
                print(f"\rrun {run.id[:8]}: {run.status}, {elapsed:.1f}s", end="",
                      file=sys.stderr, flush=True)
            time.sleep(0.2)
            run = client.schedule.get_run(run.id)
    finally:
        if shown:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)
    return run


def cmd_run(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    client = client_from(args)
    run = client.schedule.run_now(resolve_job(client, job_ref(args)), input=args.input)
    if not args.wait:
        print(run.id)
        return EXIT_OK
    run = _wait(client, run, args.timeout)
    if _still_going(run, args.timeout):
        return EXIT_ERROR
    if args.format == "json":
        print_json(run)
    else:
        print(f"run {run.id}: {run.status}"
              + (f" ({lines(run.error_message)})" if run.error_message else ""))
        if run.output:
            print(run.output, end="" if run.output.endswith("\n") else "\n")
    return EXIT_OK if run.status == "succeeded" else EXIT_ERROR


def _still_going(run: Any, timeout: Optional[float]) -> bool:
    """Whether the waited-for run is still open (then the message says how to go on)."""
    if run.status in TERMINAL_RUNS:
        return False
    print(f"symbi: run {run.id} is still {run.status} after {timeout:g}s; it goes on "
          f"(`symbi cron output --follow {run.id[:8]}` shows it, `symbi cron cancel "
          f"{run.id[:8]}` stops it)", file=sys.stderr)
    return True


def cmd_agent_run(args: argparse.Namespace) -> int:
    """``symbi run AGENT``: the run's output on stdout as the agent printed it; when it
    did not succeed, its status and error on stderr, and exit 1."""
    client = client_from(args)
    session = resolve_job(client, args.session) if args.session else None
    run = client.agents.run(args.agent, input=args.input, session=session, wait=False)
    run = _wait(client, run, args.timeout)
    if _still_going(run, args.timeout):
        return EXIT_ERROR
    if args.format == "json":
        print_json(run)
    elif run.output:
        print(run.output, end="" if run.output.endswith("\n") else "\n")
    if run.status == "succeeded":
        return EXIT_OK
    if args.format != "json":
        print(f"symbi: run {run.id} {run.status}"
              + (f": {lines(run.error_message)}" if run.error_message else ""),
              file=sys.stderr)
    return EXIT_ERROR


def cmd_output(args: argparse.Namespace) -> int:
    """The run's output as it was printed: content, like cat(1), so it is not escaped."""
    client = client_from(args)
    run_id = resolve_run(client, args.run)
    if not args.follow:
        text = client.schedule.get_output(run_id)
        sys.stdout.write(text)
        return EXIT_OK
    try:
        for chunk in client.schedule.follow_output(run_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except Unavailable:
        raise Unavailable(f"symbid went away while following run {run_id}; the run may go "
                          f"on: `symbi cron output {run_id[:8]}` shows its output once "
                          "symbid is back") from None
    run = client.schedule.get_run(run_id)
    if run.status not in TERMINAL_RUNS:
        return EXIT_ERROR  # the stream ended before the run did (the daemon stopped)
    return EXIT_OK


def _decided(args: argparse.Namespace, run: Any) -> int:
    if args.format == "json":
        print_json(run)
    else:
        by = f" by {escape(str(run.approved_by))}" if run.approved_by else ""
        print(f"run {run.id}: {run.status}{by}")
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    client = client_from(args)
    return _decided(args, client.runs.approve(resolve_run(client, args.run), args.comment))


def cmd_deny(args: argparse.Namespace) -> int:
    client = client_from(args)
    return _decided(args, client.runs.deny(resolve_run(client, args.run), args.reason))


def cmd_pending(args: argparse.Namespace) -> int:
    runs = list(client_from(args).runs.pending())
    if args.format == "json":
        print_json(runs)
    elif not runs:
        print("no runs await approval")
    else:
        rows = [[r.id[:8], str(r.job_name), r.slot, r.trigger,
                 ", ".join(r.approvers) or "anyone", r.approval_deadline or "-"]
                for r in runs]
        table(["RUN", "JOB", "SLOT", "TRIGGER", "APPROVERS", "UNTIL"], rows)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    client = client_from(args)
    run = client.schedule.cancel_run(resolve_run(client, args.run))
    if args.format == "json":
        print_json(run)
    else:
        going = "" if run.status == "cancelled" else " (its processes are being stopped)"
        print(f"run {run.id}: {run.status}{going}")
    return EXIT_OK

