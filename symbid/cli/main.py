"""``symbi``: the operator's command line.

Commands that need the daemon talk to its API through :mod:`symbid.client`;
``symbi cron next`` needs no daemon. Heavy modules are imported by the command
that needs them, so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Optional, Sequence

from symbid.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, SymbidError
from symbid.text import escape, json_text

EPILOG = """\
exit status:
  0   success
  1   error (the message says what went wrong)
  2   usage error (bad command line)
  3   not found (no such job or run)
  69  the daemon cannot be reached (the message names the socket it tried)
"""


def _cmd_cron_next(args: argparse.Namespace) -> int:
    from symbid.clock import SystemClock
    from symbid.model import format_instant
    from symbid.timing import load_zone, make_schedule, next_slots, parse_instant

    zone = load_zone(args.tz)
    start = parse_instant(args.start, zone) if args.start else SystemClock().now()
    if not 1 <= args.count <= 1000:
        raise SymbidError("--count must be between 1 and 1000")
    schedule = make_schedule(args.expr, None, args.tz, now=start)
    slots = [format_instant(s) for s in next_slots(schedule, start, args.count)]
    if args.format == "json":
        print(json.dumps({"cron_expr": args.expr, "timezone": args.tz,
                          "from": format_instant(start), "next_runs": slots}, indent=2))
    else:
        for slot in slots:
            print(slot)
    return EXIT_OK


_STATE_KEYS = ("id", "status", "next_run", "last_run", "run_count", "failure_count",
               "created_at", "updated_at")


def _cmd_dsl_check(args: argparse.Namespace) -> int:
    from symbid.clock import SystemClock
    from symbid.dsl import check_references, load_file

    files = [load_file(path, SystemClock().now()) for path in args.files]
    check_references(files, agents_complete=False)
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


def _cmd_dsl_show(args: argparse.Namespace) -> int:
    from symbid.dsl import load_file
    from symbid.model import agent_to_wire, job_to_wire

    loaded = load_file(args.file)
    if not loaded.ok:
        raise DslFailed(loaded.errors)
    jobs = []
    for job in loaded.jobs:
        wire = job_to_wire(job)
        jobs.append({k: v for k, v in wire.items() if k not in _STATE_KEYS})
    agents = [agent_to_wire(a) for a in loaded.agents]
    if args.format == "json":
        print(json_text(json.dumps({"file": args.file, "agents": agents, "jobs": jobs},
                                   indent=2, ensure_ascii=False)))
        return EXIT_OK
    for agent in agents:
        what = " ".join(agent["command"]) if agent["kind"] == "command" else agent["model"]
        print(escape(f"agent {agent['name']}: {agent['kind']} ({what})"))
    for entry in jobs:
        when = f"cron {entry['cron_expr']}" if entry["cron_expr"] else f"at {entry['at']}"
        print(escape(f"schedule {entry['name']}: agent {entry['agent_id']}, {when} "
                     f"{entry['timezone']}"))
    return EXIT_OK


class DslFailed(SymbidError):
    def __init__(self, diagnostics: list[Any]) -> None:
        super().__init__("\n".join(d.format() for d in diagnostics))


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", metavar="PATH",
                        help="control socket (default $SYMBI_SOCKET, else "
                        "/run/symbid/control.sock)")
    common.add_argument("--url", metavar="URL",
                        help="talk HTTP to URL instead (default $SYMBI_URL); the bearer token "
                        "comes from $SYMBI_API_KEY")
    return common


def build_parser() -> argparse.ArgumentParser:
    from symbid.cli import cron as c

    conn = _connection_options()
    parser = argparse.ArgumentParser(
        prog="symbi",
        description="Drive the symbid scheduler: jobs, runs, history.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(group: Any, name: str, help_text: str, handler: Any, *,
                uses_daemon: bool = True, description: str = "") -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(
            name, help=help_text, description=description or help_text, epilog=EPILOG,
            parents=[conn] if uses_daemon else [],
            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    def job_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("job", metavar="ID", nargs="?", help="job id or name")
        p.add_argument("--name", metavar="NAME", help="the job's name (instead of ID)")

    def fmt(p: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json")) -> None:
        p.add_argument("--format", choices=choices, default=choices[0])

    cron = sub.add_parser("cron", help="manage scheduled jobs", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    cron_sub = cron.add_subparsers(dest="cron_command", metavar="SUBCOMMAND")
    cron_sub.required = True

    p = command(cron_sub, "list", "list jobs", c.cmd_list)
    p.add_argument("--status", choices=("active", "paused", "completed", "failed",
                                        "dead_letter"))
    p.add_argument("--agent", metavar="AGENT", help="only jobs of this agent")
    fmt(p)
    p = command(cron_sub, "add", "add a job from a .symbi file or from JSON", c.cmd_add,
                description="Add a job through the API and print its id. --file F --schedule "
                "NAME takes a schedule block from a .symbi file; --json takes the API's JSON "
                "(name, agent_id, cron_expr or at, ...).")
    p.add_argument("--file", metavar="FILE")
    p.add_argument("--schedule", metavar="NAME", help="the schedule block in --file")
    p.add_argument("--json", metavar="JSON")
    p = command(cron_sub, "remove", "remove a job and its history", c.cmd_remove,
                description="Remove a job. On a terminal it asks first unless --force.")
    job_arg(p)
    p.add_argument("--force", action="store_true", help="do not ask for confirmation")
    for action, text in (("pause", "pause a job (keeps its state)"),
                         ("resume", "resume a paused job at its next slot"),
                         ("reset", "re-arm a dead-letter job")):
        p = command(cron_sub, action, text, c.cmd_action)
        p.set_defaults(action=action)
        job_arg(p)
        fmt(p)
    p = command(cron_sub, "status", "show a job and its recent runs", c.cmd_status)
    job_arg(p)
    p.add_argument("--history", type=int, default=0, metavar="N",
                   help="also show the N most recent runs")
    p.add_argument("--watch", action="store_true", help="refresh every 5 seconds")
    p.add_argument("--interval", type=float, default=5.0, help=argparse.SUPPRESS)
    fmt(p)
    p = command(cron_sub, "run", "run a job now (outside its schedule)", c.cmd_run,
                description="Queue a run now and print its id; with --wait, wait for it, "
                "print its output and exit 0 only if it succeeded.")
    job_arg(p)
    p.add_argument("--input", metavar="TEXT", help="input for this run (on its stdin)")
    p.add_argument("--wait", action="store_true", help="wait for the run to finish")
    fmt(p)
    p = command(cron_sub, "history", "show a job's runs, newest first", c.cmd_history)
    job_arg(p)
    p.add_argument("--limit", type=int, default=20, metavar="N")
    p.add_argument("--status", choices=("pending", "awaiting_approval", "running",
                                        "succeeded", "failed", "timed_out", "skipped",
                                        "denied", "cancelled", "interrupted"))
    fmt(p, ("table", "json", "csv"))

    p = command(sub, "reload", "re-read agents_dir and the configuration", c.cmd_reload)
    fmt(p, ("text", "json"))
    p = command(sub, "health", "show the scheduler's health", c.cmd_health)
    fmt(p, ("text", "json"))

    nxt = cron_sub.add_parser(
        "next",
        help="print the next slots of a cron expression (no daemon needed)",
        description="Print the next N slots of EXPR, one RFC 3339 UTC instant per line. "
        "EXPR is 5-field Vixie cron (min hour dom month dow) or the 6/7-field form "
        "(sec min hour dom month dow [year], day-of-week 1-7 with 1 = Sunday).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nxt.add_argument("expr", metavar="EXPR", help='cron expression, e.g. "30 2 * * *"')
    nxt.add_argument("--tz", default="UTC", metavar="ZONE",
                     help="IANA time zone the expression is read in (default UTC)")
    nxt.add_argument("--from", dest="start", metavar="RFC3339",
                     help="start after this instant (default: now); without an offset it is "
                     "read in --tz")
    nxt.add_argument("--count", type=int, default=5, metavar="N",
                     help="how many slots (default 5)")
    nxt.add_argument("--format", choices=("text", "json"), default="text")
    nxt.set_defaults(handler=_cmd_cron_next)

    dsl = sub.add_parser("dsl", help="check and inspect .symbi files (no daemon needed)",
                         epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    dsl_sub = dsl.add_subparsers(dest="dsl_command", metavar="SUBCOMMAND")
    dsl_sub.required = True
    check = dsl_sub.add_parser(
        "check", help="validate .symbi files",
        description="Validate each FILE: exit 0 with a one-line summary per file when all "
        "are valid; otherwise print FILE:LINE:COL diagnostics and exit 1. A schedule naming "
        "an agent that none of the given files defines is a warning here (the daemon "
        "checks the whole agents directory).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("files", metavar="FILE", nargs="+")
    check.set_defaults(handler=_cmd_dsl_check)
    show = dsl_sub.add_parser(
        "show", help="print the jobs and agents a file defines",
        description="Print what FILE defines; --format json uses the API's wire names.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("file", metavar="FILE")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(handler=_cmd_dsl_show)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SymbidError as exc:
        # each line escaped: a message quoting a name or an output cannot drive the terminal
        print("symbi: " + "\n".join(escape(line) for line in exc.message.split("\n")),
              file=sys.stderr)
        return exc.exit_status if exc.exit_status else EXIT_ERROR
    except EOFError:
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
