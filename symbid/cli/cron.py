"""`symbi cron ...`, `symbi reload`, `symbi health`: talk to the daemon's API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from symbid.cli.output import colour, relative, table, to_csv, use_colour
from symbid.client import Record, SymbiontClient
from symbid.clock import SystemClock
from symbid.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, InvalidInput, SymbidError
from symbid.text import escape, json_text

TERMINAL_RUNS = ("succeeded", "failed", "timed_out", "skipped", "denied", "cancelled",
                 "interrupted")


def client_from(args: argparse.Namespace) -> SymbiontClient:
    url = args.url or os.environ.get("SYMBI_URL")
    if url:
        return SymbiontClient(base_url=url, api_key=os.environ.get("SYMBI_API_KEY"))
    return SymbiontClient(socket_path=args.socket or os.environ.get("SYMBI_SOCKET") or None)


def _now() -> float:
    return SystemClock().now() / 1000


def _job_ref(args: argparse.Namespace) -> str:
    ref = getattr(args, "name", None) or getattr(args, "job", None)
    if not ref:
        raise UsageError("give a job id or --name NAME")
    return str(ref)


class UsageError(SymbidError):
    exit_status = EXIT_USAGE
    code = "usage"


def _print_json(data: Any) -> None:
    if isinstance(data, Record):
        data = data.to_dict()
    elif isinstance(data, list):
        data = [d.to_dict() if isinstance(d, Record) else d for d in data]
    print(json_text(json.dumps(data, indent=2, ensure_ascii=False)))


def _lines(text: str) -> str:
    """A multi-line message with each line escaped."""
    return "\n".join(escape(line) for line in str(text).split("\n"))


def _schedule_text(job: Record) -> str:
    return job.cron_expr if job.cron_expr else f"at {job.at}"


def cmd_list(args: argparse.Namespace) -> int:
    jobs = client_from(args).schedule.list(status=args.status, agent_id=args.agent)
    if args.format == "json":
        _print_json(jobs)
        return EXIT_OK
    now = _now()
    rows = []
    for j in jobs:
        if "error" in j:  # the daemon could not show this row; the others still list
            rows.append([j.name, j.status, "(cannot be shown)"] + ["-"] * 6 + [j.id[:8]])
            print(f"symbi: job {escape(j.name)}: {escape(j.error)}", file=sys.stderr)
            continue
        rows.append([j.name, j.status, _schedule_text(j), j.timezone, relative(j.next_run, now),
                     relative(j.last_run, now), str(j.run_count), str(j.failure_count),
                     j.agent_id, j.id[:8]])
    table(["NAME", "STATUS", "SCHEDULE", "TZ", "NEXT", "LAST", "RUNS", "FAILS", "AGENT", "ID"],
          rows, [j.status for j in jobs], 1)
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    if bool(args.json) == bool(args.file):
        raise UsageError("give either --file FILE --schedule NAME or --json '{...}'")
    if args.json:
        try:
            body = json.loads(args.json)
        except ValueError as exc:
            raise InvalidInput(f"--json is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidInput("--json must be a JSON object")
    else:
        if not args.schedule:
            raise UsageError("--file needs --schedule NAME")
        from symbid.cli.main import DslFailed
        from symbid.dsl import load_file
        from symbid.model import job_to_wire

        loaded = load_file(args.file)
        if not loaded.ok:
            raise DslFailed(loaded.errors)
        found = [j for j in loaded.jobs if j.name == args.schedule]
        if not found:
            names = ", ".join(j.name for j in loaded.jobs) or "none"
            raise InvalidInput(f"{args.file} defines no schedule {args.schedule!r} "
                               f"(it defines: {names})")
        wire = job_to_wire(found[0])
        keep = ("name", "agent_id", "cron_expr", "at", "timezone", "session_mode", "heartbeat",
                "delivery", "delivery_config", "policy", "max_concurrent", "max_retries",
                "jitter_seconds", "catch_up", "catch_up_limit", "input", "agent_pin_jwt")
        body = {k: wire[k] for k in keep if wire[k] is not None}
    job = client_from(args).schedule.create(**body)
    print(job.id)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    client = client_from(args)
    ref = _job_ref(args)
    if not args.force and sys.stdin.isatty():
        job = client.schedule.get(ref)
        answer = input(f"Remove job {job.name} ({job.id}) and its run history? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not removed")
            return EXIT_ERROR
    result = client.schedule.delete(ref)
    print(f"removed {escape(result.name)} ({result.id})")
    return EXIT_OK


def cmd_action(args: argparse.Namespace) -> int:
    job = getattr(client_from(args).schedule, args.action)(_job_ref(args))
    if args.format == "json":
        _print_json(job)
    else:
        nxt = f", next run {job.next_run}" if job.next_run and job.status == "active" else ""
        print(f"{escape(job.name)}: {job.status}{nxt}")
    return EXIT_OK


def _history_rows(runs: list[Any], now: float) -> list[list[str]]:
    rows = []
    for r in runs:
        took = f"{r.execution_time_ms} ms" if r.execution_time_ms is not None else "-"
        rows.append([r.slot, str(r.attempt), r.trigger, r.status, relative(r.started_at, now),
                     took, (r.error_message or "").splitlines()[0][:60]
                     if r.error_message else "", r.id[:8]])
    return rows


_HISTORY_HEADERS = ["SLOT", "TRY", "TRIGGER", "STATUS", "STARTED", "TOOK", "ERROR", "RUN"]


def _print_status(client: SymbiontClient, args: argparse.Namespace) -> None:
    job = client.schedule.get_status(_job_ref(args), history=args.history)
    if args.format == "json":
        _print_json(job)
        return
    now = _now()
    on = use_colour()
    lines = [
        ("name", escape(job.name)), ("id", job.id),
        ("status", colour(job.status, job.status, on)), ("agent", escape(job.agent_id)),
        ("schedule", escape(f"{_schedule_text(job)} ({job.timezone})")),
        ("next run", f"{job.next_run or '-'} ({relative(job.next_run, now)})"),
        ("last run", f"{job.last_run or '-'} ({relative(job.last_run, now)})"),
        ("runs", f"{job.run_count} ({job.failure_count} failed)"),
        ("source", escape(job.source)),
    ]
    for key, value in lines:
        print(f"{key + ':':<10} {value}")
    if args.history:
        print()
        runs = list(job.recent_runs)
        table(_HISTORY_HEADERS, _history_rows(runs, now), [r.status for r in runs], 3)


def cmd_status(args: argparse.Namespace) -> int:
    client = client_from(args)
    if not args.watch:
        _print_status(client, args)
        return EXIT_OK
    try:
        while True:
            if sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")
            _print_status(client, args)
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    client = client_from(args)
    run = client.schedule.run_now(_job_ref(args), input=args.input)
    if not args.wait:
        print(run.id)
        return EXIT_OK
    while run.status not in TERMINAL_RUNS:
        time.sleep(0.2)
        run = client.schedule.get_run(run.id)
    if args.format == "json":
        _print_json(run)
    else:
        print(f"run {run.id}: {run.status}"
              + (f" ({escape(run.error_message)})" if run.error_message else ""))
        if run.output:
            print(run.output, end="" if run.output.endswith("\n") else "\n")
    return EXIT_OK if run.status == "succeeded" else EXIT_ERROR


def cmd_history(args: argparse.Namespace) -> int:
    runs = client_from(args).schedule.get_history(_job_ref(args), status=args.status,
                                                  limit=args.limit)
    if args.format == "json":
        _print_json(runs)
    elif args.format == "csv":
        fields = ["id", "slot", "attempt", "trigger", "status", "started_at", "finished_at",
                  "execution_time_ms", "exit_code", "error_message"]
        print(to_csv(fields, [[r.to_dict().get(f) for f in fields] for r in runs]), end="")
    else:
        table(_HISTORY_HEADERS, _history_rows(runs, _now()), [r.status for r in runs], 3)
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    result = client_from(args).reload()
    if args.format == "json":
        _print_json(result)
    else:
        for key in ("created", "updated", "removed"):
            names = list(result[key])
            print(f"{key}: {escape(', '.join(names)) if names else '-'}")
        print(f"unchanged: {result.unchanged}")
        for line in list(result.warnings):
            print(f"warning: {_lines(line)}", file=sys.stderr)
        for line in list(result.errors):
            print(f"error: {_lines(line)}", file=sys.stderr)
        if result.config_error:
            print(f"error: {_lines(result.config_error)}", file=sys.stderr)
    return EXIT_ERROR if (list(result.errors) or result.config_error) else EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    health = client_from(args).schedule.health()
    if args.format == "json":
        _print_json(health)
    else:
        m = health.metrics
        shade = "active" if health.status == "healthy" else "failed"
        print(f"status: {colour(health.status, shade, use_colour())}")
        print(f"jobs: {health.active_jobs} active, {health.paused_jobs} paused; "
              f"{health.in_flight_jobs} running")
        print(f"runs: {m.runs_total} total, {m.runs_succeeded} succeeded, {m.runs_failed} "
              f"failed, {m.avg_execution_time_ms} ms average")
    return EXIT_OK if health.status == "healthy" else EXIT_ERROR
