"""``symbi``: the operator's command line.

Commands that need the daemon talk to its API through :mod:`symbid.client`;
``symbi cron next`` and ``symbi dsl`` need no daemon. Heavy modules are imported by
the command that needs them, so the CLI starts fast. The global options
(``--socket``, ``--url``, ``--token-file``, ``--format``, ``--no-color``) work before
or after the command, as kubectl's and systemctl's do.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import shutil
import sys
from typing import Any, Callable, Optional, Sequence

from symbid import __version__
from symbid.cli.common import UsageError, number
from symbid.errors import EXIT_ERROR, EXIT_USAGE, SymbidError
from symbid.text import escape

EPILOG = """\
exit status:
  0   success
  1   error (the message says what went wrong)
  2   usage error (bad command line)
  3   not found (no such job, run or agent)
  69  the daemon cannot be reached (the message names the socket it tried)
"""

RUN_STATUSES = ("pending", "awaiting_approval", "running", "succeeded", "failed",
                "timed_out", "skipped", "denied", "cancelled", "interrupted")
JOB_STATUSES = ("active", "paused", "completed", "failed", "dead_letter")
_CONNECTION = ("socket", "url", "token_file")


@functools.lru_cache(maxsize=4)
def _width_for(columns: Optional[str]) -> int:
    return shutil.get_terminal_size().columns - 2  # as argparse.HelpFormatter does


def _terminal_width() -> int:
    return _width_for(os.environ.get("COLUMNS"))


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped, the exit status table kept as written, and every flag's help
    ending with its default, where it has one."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None) -> None:
        # argparse makes a formatter for each add_argument (to check its metavar): ask the
        # terminal's width once, not a few hundred times per command line
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_width() if width is None else width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit status:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and "default" not in text and default is not None
                and default is not argparse.SUPPRESS and default is not False
                and action.option_strings):
            text += " (default: %(default)s)"
        return text


def _global_options(p: argparse.ArgumentParser, *, daemon: bool, formats: tuple[str, ...],
                    top: bool = False) -> None:
    """The options every command takes (defaults are filled in after parsing, so a value
    given before the command is not overwritten by the subcommand's default)."""
    hide = argparse.SUPPRESS
    if daemon or top:
        p.add_argument("--socket", metavar="PATH", default=hide,
                       help="control socket (default: $SYMBI_SOCKET, else "
                       "/run/symbid/control.sock)")
        p.add_argument("--url", metavar="URL", default=hide,
                       help="talk HTTP to URL instead (default: $SYMBI_URL, else the socket)")
        p.add_argument("--token-file", metavar="FILE", default=hide,
                       help="the bearer token for --url, read from FILE (default: "
                       "$SYMBI_API_KEY)")
    if top:
        p.add_argument("--format", metavar="FORMAT", default=hide,
                       help="output format; each command lists its own (default: the "
                       "command's first)")
    elif formats:
        p.add_argument("--format", choices=formats, default=hide,
                       help=f"output format (default: {formats[0]})")
    p.add_argument("--no-color", action="store_true", default=hide,
                   help="no colour, even on a terminal (default: colour on a terminal "
                   "unless $NO_COLOR is set)")


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``symbid.cli.MODULE.NAME``, imported only when its command runs: building
    the parser imports no command's module (``symbi cron status`` loads neither the DSL
    nor the log reader)."""

    def handler(args: argparse.Namespace) -> int:
        function: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(f"symbid.cli.{module}"), name)
        return function(args)

    handler.__name__ = handler.__qualname__ = name
    return handler


def build_parser() -> argparse.ArgumentParser:
    from symbid.cli import logs

    parser = argparse.ArgumentParser(
        prog="symbi", description="Drive the symbid scheduler: jobs, runs, agents, history.",
        epilog=EPILOG, formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"symbi {__version__}",
                        help="print the version and exit")
    _global_options(parser, daemon=True, formats=(), top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def group(name: str, help_text: str) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=_Formatter)
        _global_options(p, daemon=True, formats=())
        s = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        s.required = True
        return s

    def command(where: Any, name: str, help_text: str, handler: Callable[..., int], *,
                formats: tuple[str, ...] = (), daemon: bool = True,
                description: str = "") -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = where.add_parser(
            name, help=help_text, description=description or help_text, epilog=EPILOG,
            formatter_class=_Formatter)
        _global_options(p, daemon=daemon, formats=formats)
        p.set_defaults(handler=handler, formats=formats, uses_daemon=daemon)
        return p

    def job_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("job", metavar="JOB", nargs="?",
                       help="the job: its id, its name or a unique id prefix of 8 or more "
                       "characters (the ID column)")
        p.add_argument("--name", metavar="NAME", help="the job's name (instead of JOB)")

    def run_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("run", metavar="RUN",
                       help="the run: its id or a unique id prefix of 8 or more characters "
                       "(the RUN column of history)")

    cron = group("cron", "manage scheduled jobs and their runs")
    p = command(cron, "list", "list jobs", _lazy("cron", "cmd_list"), formats=("table", "json"))
    p.add_argument("--status", choices=JOB_STATUSES, help="only jobs with this status")
    p.add_argument("--agent", metavar="AGENT", help="only jobs of this agent")
    p.add_argument("--all", action="store_true",
                   help="also the agents' ad hoc jobs (adhoc:AGENT), which hold the runs "
                   "of `symbi run` (default: hidden)")
    p = command(cron, "add", "add jobs from a .symbi file or from JSON", _lazy("cron", "cmd_add"),
                description="Add jobs through the API and print their ids. --file FILE "
                "defines the file's agents with the daemon and adds its schedules: all of "
                "them, one line each (id and name), or only --schedule NAME, in one batch "
                "(one transaction: all or none; a refusal names each schedule at its place "
                "in the file and its index in the batch, and the agents are undone). "
                "--json takes the API's JSON object (name, agent_id, cron_expr or at, ...) "
                "and prints the id, or an array of them, added as one batch.")
    p.add_argument("--file", metavar="FILE", help="a .symbi file of agents and schedules")
    p.add_argument("--schedule", metavar="NAME",
                   help="only this schedule block of --file (default: all of them)")
    p.add_argument("--json", metavar="JSON", help="the job as the API's JSON object, or "
                   "an array of them (one batch)")
    p = command(cron, "update", "change a job's schedule or settings", _lazy("cron", "cmd_update"),
                formats=("table", "json"),
                description="Change a job through the API's PUT: its state and history stay; "
                "a changed schedule re-aims it at its next free slot. Flags and --json "
                "combine; a key may be given only once. Jobs from agents_dir files are "
                "changed by editing the file.")
    job_arg(p)
    p.add_argument("--cron", metavar="EXPR", help="a new cron expression (replaces --at)")
    p.add_argument("--at", metavar="TIME", help="a new one-shot time, RFC 3339 (replaces "
                   "--cron); without an offset it is read in the job's time zone")
    p.add_argument("--tz", metavar="ZONE", help="a new IANA time zone")
    p.add_argument("--input", metavar="TEXT", help="new input for its runs (on stdin)")
    p.add_argument("--max-concurrent", type=int, metavar="N",
                   help="how many of its runs may go at once")
    p.add_argument("--max-retries", type=int, metavar="N",
                   help="retries of a failed scheduled run")
    p.add_argument("--jitter", metavar="DURATION",
                   help='random delay before each scheduled run, e.g. "30s" or "2m"')
    p.add_argument("--json", metavar="PATCH", help="other fields, as the API's JSON")
    p = command(cron, "remove", "remove a job and its history", _lazy("cron", "cmd_remove"),
                description="Remove a job. On a terminal it asks first unless --force.")
    job_arg(p)
    p.add_argument("--force", action="store_true", help="do not ask for confirmation")
    for action, text in (("pause", "pause a job (keeps its state)"),
                         ("resume", "resume a paused job at its next slot"),
                         ("reset", "re-arm a dead-letter job")):
        p = command(cron, action, text, _lazy("cron", "cmd_action"), formats=("table", "json"))
        p.set_defaults(action=action)
        job_arg(p)
    p = command(cron, "context", "show or reset a job's session context",
                _lazy("cron", "cmd_context"),
                description="Print the job's stored session context as JSON: its mode, the "
                "last summary, the history (shared_persistent) and its state directory. "
                "With --clear, reset it: the stored context is dropped and the state "
                "directory emptied.")
    job_arg(p)
    p.add_argument("--clear", action="store_true",
                   help="reset the context (default: show it)")
    p = command(cron, "status", "show a job and its recent runs", _lazy("cron", "cmd_status"),
                formats=("table", "json"))
    job_arg(p)
    p.add_argument("--history", type=number(int, above=False), default=0, metavar="N",
                   help="also show the N most recent runs")
    p.add_argument("--watch", action="store_true",
                   help="refresh every --interval seconds until Ctrl-C")
    p.add_argument("--interval", type=number(float), default=5.0, metavar="SECONDS",
                   help="how often --watch refreshes")
    p = command(cron, "run", "run a job now (outside its schedule)", _lazy("runs", "cmd_run"),
                formats=("table", "json"),
                description="Queue a run now and print its id; with --wait, wait for it "
                "(showing the time taken on a terminal), print its output and exit 0 only "
                "if it succeeded. With --timeout, stop waiting (exit 1) after SECONDS; the "
                "run goes on.")
    job_arg(p)
    p.add_argument("--input", metavar="TEXT", help="input for this run (on its stdin)")
    p.add_argument("--wait", action="store_true", help="wait for the run to finish")
    p.add_argument("--timeout", type=number(float), metavar="SECONDS",
                   help="with --wait: wait at most this long (default: no limit)")
    p = command(cron, "history", "show a job's runs, newest first", _lazy("runs", "cmd_history"),
                formats=("table", "json", "csv"))
    job_arg(p)
    p.add_argument("--limit", type=number(int), default=20, metavar="N", help="how many runs")
    p.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    p.add_argument("--output", action="store_true",
                   help="add the start of each run's output (output_preview)")
    p = command(cron, "output", "print a run's output", _lazy("runs", "cmd_output"),
                description="Print the output a run has stored, or, while it is going, what "
                "it has printed so far; --follow streams it until the run ends. The output "
                "is printed as the run wrote it (like cat).")
    run_arg(p)
    p.add_argument("--follow", "-f", action="store_true",
                   help="stream the output while the run is going")
    p = command(cron, "cancel", "stop a run and record it cancelled", _lazy("runs", "cmd_cancel"),
                formats=("table", "json"),
                description="Stop a going run (its whole process group is killed) or a run "
                "that has not started, and record it cancelled. It is not retried.")
    run_arg(p)
    p = command(cron, "approve", "let a run awaiting approval start", _lazy("runs", "cmd_approve"),
                formats=("table", "json"),
                description="Approve a run awaiting approval (see `symbi cron pending`): it "
                "is pending again and starts under the normal rules. Only one of its job's "
                "approvers may: your user name on the socket, the token's name over TCP.")
    run_arg(p)
    p.add_argument("--comment", help="said with the approval (kept with the run)")
    p = command(cron, "deny", "refuse a run awaiting approval", _lazy("runs", "cmd_deny"),
                formats=("table", "json"),
                description="Deny a run awaiting approval: it is recorded denied, with your "
                "name and --reason, and never starts. Only one of its job's approvers may.")
    run_arg(p)
    p.add_argument("--reason", help="why (kept with the run, and in its error)")
    command(cron, "pending", "list the runs awaiting approval", _lazy("runs", "cmd_pending"),
            formats=("table", "json"),
            description="The runs awaiting approval, with their job, who may approve them "
            "and until when; approve with `symbi cron approve RUN`.")
    nxt = command(cron, "next", "print the next slots of a cron expression (no daemon needed)",
                  _lazy("local", "cmd_next"), formats=("text", "json"), daemon=False,
                  description="Print the next N slots of EXPR, one RFC 3339 UTC instant per "
                  "line (with --tz, the local time beside it). EXPR is 5-field Vixie cron "
                  "(min hour dom month dow) or the 6/7-field form (sec min hour dom month dow "
                  "[year], day-of-week 1-7 with 1 = Sunday).")
    nxt.add_argument("expr", metavar="EXPR", help='cron expression, e.g. "30 2 * * *"')
    nxt.add_argument("--tz", default="UTC", metavar="ZONE",
                     help="IANA time zone the expression is read in")
    nxt.add_argument("--from", dest="start", metavar="RFC3339",
                     help="start after this instant (default: now); without an offset it is "
                     "read in --tz")
    nxt.add_argument("--count", type=int, default=5, metavar="N",
                     help="how many slots (at most 1000)")

    agent = group("agent", "list and remove the daemon's agents")
    command(agent, "list", "list agents: from agents_dir files and defined through the API",
            _lazy("agents", "cmd_list"), formats=("table", "json"))
    p = command(agent, "remove", "remove an agent defined through the API",
                _lazy("agents", "cmd_remove"),
                description="Remove an agent defined through the API (symbi cron add --file "
                "or POST /api/v1/agents). Refused while jobs use it; an agent from an "
                "agents_dir file is removed by editing the file. On a terminal it asks "
                "first unless --force.")
    p.add_argument("agent", metavar="AGENT", help="the agent's name")
    p.add_argument("--force", action="store_true", help="do not ask for confirmation")

    p = command(sub, "run", "run an agent once, outside the schedule, and print its output",
                _lazy("runs", "cmd_agent_run"), formats=("text", "json"),
                description="Run AGENT once through the daemon, in the same sandbox as its "
                "scheduled runs, wait for it (showing the time taken on a terminal) and "
                "print its output. The run is recorded under the agent's ad hoc job, "
                "adhoc:AGENT (`symbi cron history adhoc:AGENT`), whose session is fully "
                "ephemeral; with --session JOB it is a manual run of JOB instead, in JOB's "
                "session context. Exits 0 only if the run succeeded; otherwise its status "
                "and error go to stderr.")
    p.add_argument("agent", metavar="AGENT", help="the agent's name")
    p.add_argument("--input", metavar="TEXT",
                   help="input for the run: a command agent's stdin, an llm agent's user "
                   "message (default: none; with --session, the job's own input)")
    p.add_argument("--session", metavar="JOB",
                   help="run as a manual run of JOB (id, name or short id), a job of AGENT, "
                   "in its session context (default: the agent's ad hoc job)")
    p.add_argument("--timeout", type=number(float), metavar="SECONDS",
                   help="wait at most this long, then exit 1; the run goes on (default: no "
                   "limit)")

    command(sub, "reload", "re-read agents_dir and the configuration",
            _lazy("system", "cmd_reload"),
            formats=("text", "json"))
    command(sub, "health", "show the scheduler's health", _lazy("system", "cmd_health"),
            formats=("text", "json"))
    logs.add_parser(sub, command)
    p = command(sub, "backup", "copy the database while the daemon runs",
                _lazy("system", "cmd_backup"),
                description="Write a consistent copy of the daemon's database to FILE "
                "(SQLite's online backup, taken by the daemon and sent over the API; FILE "
                "is written 0600 and appears only once complete). Restoring: symbid(8).")
    p.add_argument("file", metavar="FILE", help="where the copy goes (replaced if it exists)")

    audit = group("audit", "query the audit trail")
    q = command(audit, "query", "list audit events, newest first",
                _lazy("system", "cmd_audit_query"),
                formats=("table", "json", "csv"),
                description="The daemon's audit trail: who did what to which job and run, "
                "and what the scheduler decided (denials, approvals, failures). Filters "
                "combine; --since and --until take a date (2026-02-01) or an RFC 3339 "
                "instant.")
    q.add_argument("--type", help="an event type, such as CronJobFailed or PolicyDenied")
    q.add_argument("--job", help="a job's name or id")
    q.add_argument("--actor", help="who: a user name, a token's name, or scheduler")
    q.add_argument("--since", help="from this date or instant (in)")
    q.add_argument("--until", help="up to this date or instant (out)")
    q.add_argument("--limit", type=number(int, low=1, above=False, high=1000), default=100,
                   help="at most this many (1-1000; 100)")

    dsl = group("dsl", "check and inspect .symbi files (no daemon needed)")
    check = command(
        dsl, "check", "validate .symbi files", _lazy("local", "cmd_dsl_check"), daemon=False,
        description="Validate each FILE: exit 0 with a one-line summary per file when all "
        "are valid; otherwise print FILE:LINE:COL diagnostics and exit 1. A schedule naming "
        "an agent that none of the given files defines is a warning here (the daemon "
        "checks the whole agents directory). With --config, each schedule's delivery and "
        "alert channels are checked against that file's [scheduler.delivery], as the "
        "daemon does; without it, channels that need settings are not checked, and a note "
        "says so.")
    check.add_argument("files", metavar="FILE", nargs="+", help="the files to check")
    check.add_argument("--config", metavar="TOML",
                       help="the daemon's configuration file, to check the channels against "
                            "its delivery settings (e.g. /etc/symbid/symbid.toml)")
    show = command(dsl, "show", "print the jobs and agents a file defines",
                   _lazy("local", "cmd_dsl_show"),
                   formats=("text", "json"), daemon=False,
                   description="Print what FILE defines; --format json uses the API's wire "
                   "names.")
    show.add_argument("file", metavar="FILE", help="the file to show")

    comp = command(sub, "completion", "print a shell completion script",
                   _lazy("complete", "cmd_completion"),
                   daemon=False,
                   description="Print the completion script for SHELL: commands, flags and, "
                   "when the daemon is reachable, job and agent names. Load it with `source "
                   "<(symbi completion bash)`, or install it (the packages do).")
    comp.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    return parser


def _settle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill the global options' defaults; refuse those the command does not take."""
    from symbid.cli.output import disable_colour

    given = [name for name in _CONNECTION if hasattr(args, name)]
    if given and not args.uses_daemon:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag}: this command needs no daemon")
    for name in _CONNECTION:
        if not hasattr(args, name):
            setattr(args, name, None)
    formats: tuple[str, ...] = args.formats
    if hasattr(args, "format"):
        if args.format not in formats:
            raise UsageError(f"--format {args.format}: this command prints "
                             + (f"{' or '.join(formats)}" if formats else "one form only"))
    else:
        args.format = formats[0] if formats else None
    if getattr(args, "no_color", False):
        disable_colour()


def main(argv: Optional[Sequence[str]] = None) -> int:
    from symbid.cli.complete import complete_main, run

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    words = complete_main(argv)
    if words is not None:
        return run(parser, words)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        _settle(args, parser)
        return handler(args)
    except SymbidError as exc:
        # each line escaped: a message quoting a name or an output cannot drive the terminal
        message = exc.message
        if exc.field and not re.search(rf"(?<![\w.]){re.escape(exc.field)}(?![\w])", message):
            message += f" (field {exc.field})"  # the API named the field at fault
        print("symbi: " + "\n".join(escape(line) for line in message.split("\n")),
              file=sys.stderr)
        return exc.exit_status if exc.exit_status else EXIT_ERROR
    except EOFError:
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
