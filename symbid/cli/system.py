"""``symbi reload``, ``symbi health``: the daemon itself."""

from __future__ import annotations

import argparse
import json
import sys

from symbid.cli.common import UsageError, client_from, lines, print_json
from symbid.cli.output import colour, use_colour
from symbid.errors import EXIT_ERROR, EXIT_OK
from symbid.text import escape


def cmd_reload(args: argparse.Namespace) -> int:
    result = client_from(args).reload()
    if args.format == "json":
        print_json(result)
    else:
        for key in ("created", "updated", "removed"):
            names = list(result[key])
            print(f"{key}: {escape(', '.join(names)) if names else '-'}")
        print(f"unchanged: {result.unchanged}")
        if "config" in result:
            print(f"config: {escape(str(result.config))}")
        for key in ("agents_created", "agents_updated", "agents_removed"):
            if key in result and list(result[key]):
                print(f"{key.replace('_', ' ')}: {escape(', '.join(result[key]))}")
        for line in list(result.warnings):
            print(f"warning: {lines(line)}", file=sys.stderr)
        for line in list(result.errors):
            print(f"error: {lines(line)}", file=sys.stderr)
        if result.config_error:
            print(f"error: {lines(result.config_error)}", file=sys.stderr)
    return EXIT_ERROR if (list(result.errors) or result.config_error) else EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    health = client_from(args).schedule.health()
    if args.format == "json":
        print_json(health)
    else:
        m = health.metrics
        shade = "active" if health.status == "healthy" else "failed"
        print(f"status: {colour(health.status, shade, use_colour())}")
        if "error" in health and health.error:
            print(f"error: {lines(health.error)}")
        print(f"jobs: {health.active_jobs} active, {health.paused_jobs} paused; "
              f"{health.in_flight_jobs} running")
        print(f"runs: {m.runs_total} total, {m.runs_succeeded} succeeded, {m.runs_failed} "
              f"failed, {m.avg_execution_time_ms} ms average")
    return EXIT_OK if health.status == "healthy" else EXIT_ERROR


def cmd_backup(args: argparse.Namespace) -> int:
    try:
        size = client_from(args).backup(args.file)
    except OSError as exc:
        raise UsageError(f"cannot write {args.file}: {exc.strerror}") from None
    print(f"backup: {escape(args.file)} ({size} bytes)")
    return EXIT_OK


def cmd_audit_query(args: argparse.Namespace) -> int:
    from symbid.cli.output import table, to_csv

    events = list(client_from(args).audit.query(
        type=args.type, job=args.job, actor=args.actor, since=args.since, until=args.until,
        limit=args.limit))
    fields = ["time", "type", "actor", "job", "run_id", "details"]
    if args.format == "json":
        print_json(events)
    elif args.format == "csv":
        rows = [[e.to_dict().get(f) if f != "details" else json.dumps(e.to_dict()["details"])
                 for f in fields] for e in events]
        print(to_csv(fields, rows), end="")
    elif not events:
        print("no audit events match")
    else:
        table(["TIME", "TYPE", "ACTOR", "JOB", "RUN", "DETAILS"],
              [[e.time, e.type, e.actor, e.job or "-", (e.run_id or "-")[:8],
                _details(e.to_dict()["details"])] for e in events])
    return EXIT_OK


def _details(details: dict[str, object]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in details.items() if v not in (None, "", []))
    return text if len(text) <= 80 else text[:79] + "…"
