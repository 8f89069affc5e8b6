"""``symbi cron list|add|update|remove|pause|resume|reset|status``: jobs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from typing import Any, Optional

from symbid.cli.common import (
    UsageError,
    client_from,
    job_ref,
    now_seconds,
    print_json,
    resolve_job,
)
from symbid.cli.output import colour, relative, table, use_colour
from symbid.client import Record, SymbiontClient
from symbid.errors import (
    EXIT_ERROR,
    EXIT_OK,
    BatchRefused,
    InvalidInput,
    NotFound,
    SymbidError,
)
from symbid.text import escape


def _schedule_text(job: Record) -> str:
    if job.source == "adhoc":  # an agent's ad hoc job: never scheduled
        return "ad hoc (symbi run)"
    return str(job.cron_expr) if job.cron_expr else f"at {job.at}"


def _next(job: Record, now: float) -> str:
    """A job that is not active has no upcoming run, whatever its stored slot."""
    return relative(job.next_run, now) if job.status == "active" else "-"


def cmd_list(args: argparse.Namespace) -> int:
    jobs = client_from(args).schedule.list(status=args.status, agent_id=args.agent,
                                           all=args.all)
    if args.format == "json":
        print_json(jobs)
        return EXIT_OK
    if not jobs:
        print("no jobs" + (f" with status {args.status}" if args.status else "")
              + (f" of agent {escape(args.agent)}" if args.agent else ""))
        return EXIT_OK
    now = now_seconds()
    rows = []
    for j in jobs:
        if "error" in j:  # the daemon could not show this row; the others still list
            rows.append([j.name, j.status, "(cannot be shown)"] + ["-"] * 6 + [j.id[:8]])
            print(f"symbi: job {escape(j.name)}: {escape(j.error)}", file=sys.stderr)
            continue
        rows.append([j.name, j.status, _schedule_text(j), j.timezone, _next(j, now),
                     relative(j.last_run, now), str(j.run_count), str(j.failure_count),
                     j.agent_id, j.id[:8]])
    table(["NAME", "STATUS", "SCHEDULE", "TZ", "NEXT", "LAST", "RUNS", "FAILS", "AGENT", "ID"],
          rows, [j.status for j in jobs], 1)
    return EXIT_OK


def _json_object(flag: str, text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"{flag} must be a JSON object")
    return body


def _json_body(flag: str, text: str) -> Any:
    """A JSON object, or an array of them (checked by the daemon, by index)."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(body, (dict, list)):
        raise InvalidInput(f"{flag} must be a JSON object, or an array of them")
    return body


_FILE_JOB_KEYS = ("name", "agent_id", "cron_expr", "at", "timezone", "session_mode",
                  "heartbeat", "delivery", "delivery_config", "policy", "max_concurrent",
                  "max_retries", "jitter_seconds", "catch_up", "catch_up_limit", "input",
                  "agent_pin_jwt")


def _known_agent(client: SymbiontClient, name: str) -> Any:
    """The agent the daemon uses under ``name``, or None."""
    try:
        return client.agents.get(name)
    except NotFound:
        return None


_Defined = list[tuple[str, Optional[dict[str, Any]]]]  # what _undefine undoes


def _define_agents(client: SymbiontClient, path: str, agents: list[Any],
                   done: _Defined) -> None:
    """Register the file's agents with the daemon (an agents_dir file of the same name
    wins, and is used; an unchanged one is left alone). ``done`` gets what undoes it:
    each agent defined (None) or updated (its definition before)."""
    from symbid.wire import agent_to_wire

    for agent in agents:
        wire = json.loads(json.dumps(agent_to_wire(agent)))  # as the API shows it
        have = _known_agent(client, agent.name)
        stored = have.to_dict() if have is not None else {}
        if stored.get("source") == "api" and {k: stored.get(k) for k in wire} == wire:
            print(f"agent {escape(agent.name)} unchanged", file=sys.stderr)
            continue
        try:
            result = client.agents.create(**wire)
        except SymbidError as exc:
            if exc.code == "conflict":  # defined in agents_dir: that definition is used
                print(f"symbi: agent {escape(agent.name)}: {escape(exc.message)}; using "
                      "that one", file=sys.stderr)
                continue
            if exc.code == "forbidden":  # define_agents is off: agents_dir must have it
                if str(stored.get("source", "")).startswith("file:"):
                    print(f"symbi: agent {escape(agent.name)}: defined in agents_dir; using "
                          "that one", file=sys.stderr)
                    continue
                raise SymbidError(f"{path}: agent {agent.name} must be defined in agents_dir "
                                  f"(then `symbi reload`): {exc.message}") from None
            raise
        updated = agent.name in list(result.updated)
        done.append((agent.name, {k: stored[k] for k in wire if k in stored} if updated
                     else None))
        print(f"agent {escape(agent.name)} {'updated' if updated else 'defined'}",
              file=sys.stderr)


def _undo(client: SymbiontClient, created: list[Any], done: _Defined) -> str:
    """Take back what ``cron add --file`` did before a refusal: the schedules it
    ``created``, then the agents :func:`_define_agents` defined or updated (``done``).
    Never raises for the daemon (it may be gone): each step that fails is said, with
    what to do. Returns the account of it, for the error."""
    removed, left = [], []
    for job in created:
        try:
            client.schedule.delete(job.id)
        except SymbidError as exc:
            left.append(f"schedule {job.name} is left ({exc.message}): remove it with "
                        f"`symbi cron remove {job.name}`")
        else:
            removed.append(job.name)
    said = left + (["no schedule was added"] if not left else []) + \
        ([f"{', '.join(removed)} added before it was removed again"] if removed else [])
    for name, before in reversed(done):
        try:
            if before is None:
                client.agents.delete(name)
            else:
                client.agents.create(**before)
        except SymbidError as exc:
            said.append(f"agent {name} could not be removed ({exc.message}): remove it with "
                        f"`symbi agent remove {name}`" if before is None else
                        f"agent {name} could not be restored ({exc.message}): it has the "
                        "file's definition now; define the old one again to go back")
        else:
            said.append(f"agent {name} {'removed' if before is None else 'restored'}")
    return "; ".join(said)


def _selected(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The loaded file and the schedules to add from it."""
    from symbid.cli.local import DslFailed
    from symbid.dsl import load_file

    loaded = load_file(args.file)
    if not loaded.ok:
        raise DslFailed(loaded.errors)
    jobs = list(loaded.jobs)
    if args.schedule:
        jobs = [j for j in jobs if j.name == args.schedule]
        if not jobs:
            names = ", ".join(j.name for j in loaded.jobs) or "none"
            raise InvalidInput(f"{args.file} defines no schedule {args.schedule!r} "
                               f"(it defines: {names})")
    elif not jobs and not loaded.agents:
        raise InvalidInput(f"{args.file} defines no agent and no schedule")
    return loaded, jobs


def _add_all(client: SymbiontClient, loaded: Any, jobs: list[Any],
             agents: _Defined) -> list[Any]:
    """Create the jobs in one batch (one request, one transaction: all or none). When the
    daemon refuses it, the file's agents are undone, and the error names each refused
    schedule at its place in the file (its field's, when the file has it) and by its
    index in the batch."""
    from symbid.wire import job_to_wire

    if not jobs:  # a file of agents only
        return []
    bodies = []
    for j in jobs:
        wire = job_to_wire(j)
        bodies.append({k: wire[k] for k in _FILE_JOB_KEYS if wire[k] is not None})
    try:
        return list(client.schedule.create_many(bodies))
    except BatchRefused as exc:
        faults = [loaded.schedule_fault(jobs[i].name, e.field, e.message,
                                        context=f" (element [{i}] of the batch)").format()
                  for i, e in exc.problems if 0 <= i < len(jobs)]
        exc.message = "\n".join(faults + [_undo(client, [], agents)])
        exc.field = None  # the positions say it
        raise
    except SymbidError as exc:
        exc.message = f"{loaded.path}: {exc.message}; {_undo(client, [], agents)}"
        exc.field = None
        raise


def cmd_add(args: argparse.Namespace) -> int:
    if bool(args.json) == bool(args.file):
        raise UsageError("give either --file FILE [--schedule NAME] or --json '{...}'")
    client = client_from(args)
    if args.json:
        if args.schedule:
            raise UsageError("--schedule goes with --file, not --json")
        body = _json_body("--json", args.json)
        if isinstance(body, list):  # a batch: all of them or none
            for job in client.schedule.create_many(body):
                print(f"{job.id}  {escape(job.name)}")
            return EXIT_OK
        job = client.schedule.create(**body)
        print(job.id)
        return EXIT_OK
    loaded, jobs = _selected(args)
    taken = sorted({j.name for j in jobs} & {j.name for j in client.schedule.list()})
    if taken:  # checked before anything changes
        raise InvalidInput(f"{args.file}: a job named {', '.join(taken)} already exists; "
                           "nothing was added (remove it, or use `symbi cron update`)")
    agents: _Defined = []
    try:
        _define_agents(client, args.file, list(loaded.agents), agents)
    except SymbidError as exc:
        if agents:
            exc.message += f"; {_undo(client, [], agents)}"
        raise
    for job in _add_all(client, loaded, jobs, agents):
        print(job.id if len(jobs) == 1 else f"{job.id}  {escape(job.name)}")
    return EXIT_OK


_UPDATE_FLAGS = (("cron", "cron_expr"), ("at", "at"), ("tz", "timezone"), ("input", "input"),
                 ("max_concurrent", "max_concurrent"), ("max_retries", "max_retries"))


def _update_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = _json_object("--json", args.json) if args.json else {}
    flags = {key: getattr(args, attr) for attr, key in _UPDATE_FLAGS
             if getattr(args, attr) is not None}
    if args.jitter is not None:
        from symbid.timing import parse_duration

        flags["jitter_seconds"] = parse_duration(args.jitter, field="--jitter")
    both = sorted(set(flags) & set(body))
    if both:
        raise UsageError(f"{', '.join(both)} is given both as a flag and in --json")
    body.update(flags)
    if not body:
        raise UsageError("nothing to change: give --cron, --at, --tz, --input, "
                         "--max-concurrent, --max-retries, --jitter or --json")
    return body


def cmd_update(args: argparse.Namespace) -> int:
    body = _update_body(args)
    client = client_from(args)
    job = client.schedule.update(resolve_job(client, job_ref(args)), **body)
    if args.format == "json":
        print_json(job)
        return EXIT_OK
    nxt = f", next run {job.next_run}" if job.next_run and job.status == "active" else ""
    print(f"{escape(job.name)}: updated ({escape(_schedule_text(job))} {escape(job.timezone)})"
          f"{nxt}")
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    client = client_from(args)
    ref = resolve_job(client, job_ref(args))
    if not args.force and sys.stdin.isatty():
        job = client.schedule.get(ref)
        answer = input(f"Remove job {escape(job.name)} ({job.id}) and its run history? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not removed")
            return EXIT_ERROR
    result = client.schedule.delete(ref)
    print(f"removed {escape(result.name)} ({result.id})")
    return EXIT_OK


def cmd_context(args: argparse.Namespace) -> int:
    client = client_from(args)
    ref = resolve_job(client, job_ref(args))
    context = client.schedule.clear_context(ref) if args.clear else \
        client.schedule.get_context(ref)
    print_json(context)
    return EXIT_OK


def cmd_action(args: argparse.Namespace) -> int:
    client = client_from(args)
    job = getattr(client.schedule, args.action)(resolve_job(client, job_ref(args)))
    if args.format == "json":
        print_json(job)
    else:
        nxt = f", next run {job.next_run}" if job.next_run and job.status == "active" else ""
        print(f"{escape(job.name)}: {job.status}{nxt}")
    return EXIT_OK


def _print_status(client: SymbiontClient, ref: str, args: argparse.Namespace) -> None:
    from symbid.cli.runs import delivery_lines, history_table

    job = client.schedule.get_status(ref, history=args.history)
    if args.format == "json":
        print_json(job)
        return
    now = now_seconds()
    on = use_colour()
    upcoming = job.next_run if job.status == "active" else None
    lines = [
        ("name", escape(job.name)), ("id", job.id),
        ("status", colour(job.status, job.status, on)), ("agent", escape(job.agent_id)),
        ("schedule", escape(f"{_schedule_text(job)} ({job.timezone})")),
        ("next run", f"{upcoming} ({relative(upcoming, now)})" if upcoming else
         f"- (the job is {job.status})" if job.status != "active" else "-"),
        ("last run", f"{job.last_run} ({relative(job.last_run, now)})" if job.last_run
         else "- (never ran)"),
        ("runs", f"{job.run_count} ({job.failure_count} failed)"),
        ("source", escape(job.source)),
    ]
    alerts = list(client.schedule.get_alerts(job.id, limit=max(10, len(job.alert)))) \
        if job.alert else []
    if alerts:
        a = alerts[0]  # the newest alert: one row per channel it went to
        sent = [x for x in alerts if (x.event, x.created_at) == (a.event, a.created_at)]
        state = job.to_dict().get("alert_state") or {}
        held = int(state.get("held_back") or 0)
        to = ", ".join(f"{x.channel} ({x.status})" for x in sent)
        lines.append(("last alert", f"{a.event} at {a.created_at} to {to}: "
                                    f"{escape(str(a.message))}"
                      + (f"; {held} more held back by alert_cooldown" if held else "")))
    for key, value in lines:
        print(f"{key + ':':<10} {value}")
    if args.history:
        print()
        runs = list(job.recent_runs)
        if runs:
            headers, rows = history_table(runs, now)
            table(headers, rows, [r.status for r in runs], 3)
            shown = next((r for r in runs if r.to_dict().get("deliveries")), None)
            if shown is not None:
                print(f"\ndeliveries of run {shown.id[:8]}:")
                print("\n".join(delivery_lines(shown)))
        else:
            print("no runs yet")


def cmd_status(args: argparse.Namespace) -> int:
    client = client_from(args)
    ref = resolve_job(client, job_ref(args))
    if not args.watch:
        _print_status(client, ref, args)
        return EXIT_OK
    try:
        while True:
            if sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")
            stamp = datetime.fromtimestamp(now_seconds()).astimezone()
            print(f"every {args.interval:g}s, refreshed {stamp:%Y-%m-%d %H:%M:%S %Z} "
                  "(Ctrl-C stops)\n")
            _print_status(client, ref, args)
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return EXIT_OK
