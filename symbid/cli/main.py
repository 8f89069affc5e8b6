"""``symbi``: the operator's command line.

Commands that need the daemon talk to its API through :mod:`symbid.client`;
``symbi cron next`` needs no daemon. Heavy modules are imported by the command
that needs them, so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Optional, Sequence

from symbid.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, SymbidError

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
    if args.count < 1:
        raise SymbidError("--count must be at least 1")
    schedule = make_schedule(args.expr, None, args.tz, now=start)
    slots = [format_instant(s) for s in next_slots(schedule, start, args.count)]
    if args.format == "json":
        print(json.dumps({"cron_expr": args.expr, "timezone": args.tz,
                          "from": format_instant(start), "next_runs": slots}, indent=2))
    else:
        for slot in slots:
            print(slot)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symbi",
        description="Drive the symbid scheduler: jobs, runs, history.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    cron = sub.add_parser("cron", help="manage scheduled jobs", epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    cron_sub = cron.add_subparsers(dest="cron_command", metavar="SUBCOMMAND")
    cron_sub.required = True

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
        print(f"symbi: {exc.message}", file=sys.stderr)
        return exc.exit_status if exc.exit_status else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
