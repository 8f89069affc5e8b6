"""Commands that need no daemon: ``symbi cron next``, ``symbi dsl check|show``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from symbid.cli.common import print_json
from symbid.errors import EXIT_ERROR, EXIT_OK, SymbidError
from symbid.text import escape

_STATE_KEYS = ("id", "status", "next_run", "last_run", "run_count", "failure_count",
               "created_at", "updated_at")


class DslFailed(SymbidError):
    def __init__(self, diagnostics: list[Any]) -> None:
        super().__init__("\n".join(d.format() for d in diagnostics))


def cmd_next(args: argparse.Namespace) -> int:
    from symbid.clock import SystemClock
    from symbid.model import format_instant
    from symbid.timing import load_zone, make_schedule, next_slots, parse_instant

    zone = load_zone(args.tz)
    start = parse_instant(args.start, zone) if args.start else SystemClock().now()
    if not 1 <= args.count <= 1000:
        raise SymbidError("--count must be between 1 and 1000")
    schedule = make_schedule(args.expr, None, args.tz, now=start)
    slots = next_slots(schedule, start, args.count)
    if args.format == "json":
        print(json.dumps({"cron_expr": args.expr, "timezone": args.tz,
                          "from": format_instant(start),
                          "next_runs": [format_instant(s) for s in slots]}, indent=2))
        return EXIT_OK
    for slot in slots:
        if args.tz == "UTC":
            print(format_instant(slot))
        else:  # the local time beside the instant: what the expression was written in
            local = datetime.fromtimestamp(slot / 1000, timezone.utc).astimezone(zone)
            print(f"{format_instant(slot)}  {local:%Y-%m-%d %H:%M:%S} {local.tzname()}")
    return EXIT_OK


_NEED_NOTHING = frozenset({"stdout", "log_file"})  # the channels that need no setting


def cmd_dsl_check(args: argparse.Namespace) -> int:
    from symbid.clock import SystemClock
    from symbid.dsl import check_references, load_file

    files = [load_file(path, SystemClock().now()) for path in args.files]
    check_references(files, agents_complete=False)
    from symbid.config import DeliverySettings, load_config
    from symbid.delivery.router import job_problem
    from symbid.dsl import check_deliveries

    if args.config:
        settings = load_config(args.config).delivery
        check_deliveries(files, lambda job: job_problem(job, settings))
    else:  # what no setting changes (a log file's name) is checked all the same
        check_deliveries(files, lambda job: job_problem(replace(
            job, delivery=tuple(c for c in job.delivery if c in _NEED_NOTHING),
            alert=tuple(c for c in job.alert if c in _NEED_NOTHING)), DeliverySettings()))
        if any((set(job.delivery) | set(job.alert)) - _NEED_NOTHING for f in files
               for job in f.jobs):
            print("note: channels that need settings (webhook, slack, email, custom) were "
                  "not checked against the daemon's [scheduler.delivery]: add --config "
                  "/etc/symbid/symbid.toml", file=sys.stderr)
    failed = 0
    for f in files:
        for diag in f.errors + f.warnings:
            prefix = "" if diag in f.errors else "warning: "
            text = "\n".join(escape(line) for line in diag.format().split("\n"))
            print(text.replace(f"{diag.line}:{diag.col}: ", f"{diag.line}:{diag.col}: {prefix}",
                               1), file=sys.stderr)
        if f.ok:
            notes = f", {len(f.warnings)} warning(s)" if f.warnings else ""
            print(f"{escape(f.path)}: ok: {len(f.agents)} agent(s), {len(f.jobs)} "
                  f"schedule(s){notes}")
        else:
            failed += 1
            print(f"{escape(f.path)}: {len(f.errors)} error(s)")
    return EXIT_ERROR if failed else EXIT_OK


def cmd_dsl_show(args: argparse.Namespace) -> int:
    from symbid.dsl import load_file
    from symbid.wire import agent_to_wire, job_to_wire

    loaded = load_file(args.file)
    if not loaded.ok:
        raise DslFailed(loaded.errors)
    jobs = []
    for job in loaded.jobs:
        wire = job_to_wire(job)
        jobs.append({k: v for k, v in wire.items() if k not in _STATE_KEYS})
    agents = [agent_to_wire(a) for a in loaded.agents]
    if args.format == "json":
        print_json({"file": args.file, "agents": agents, "jobs": jobs})
        return EXIT_OK
    for agent in agents:
        what = " ".join(agent["command"]) if agent["kind"] == "command" else agent["model"]
        print(escape(f"agent {agent['name']}: {agent['kind']} ({what})"))
    for entry in jobs:
        when = f"cron {entry['cron_expr']}" if entry["cron_expr"] else f"at {entry['at']}"
        print(escape(f"schedule {entry['name']}: agent {entry['agent_id']}, {when} "
                     f"{entry['timezone']}"))
    return EXIT_OK
