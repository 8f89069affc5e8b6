"""``symbi agent list|remove``: the daemon's agent registry."""

from __future__ import annotations

import argparse
import sys

from symbid.cli.common import client_from, print_json
from symbid.cli.output import table
from symbid.errors import EXIT_ERROR, EXIT_OK
from symbid.text import escape


def cmd_list(args: argparse.Namespace) -> int:
    agents = client_from(args).agents.list()
    if args.format == "json":
        print_json(agents)
        return EXIT_OK
    if not agents:
        print("no agents: define them in a .symbi file in agents_dir (then `symbi reload`) "
              "or with `symbi cron add --file FILE`")
        return EXIT_OK
    rows = []
    for a in agents:
        what = " ".join(a.command) if a.kind == "command" and a.command else \
            f"model {a.model}" if a.model else "-"
        source = a.source if not ("shadowed_by" in a and a.shadowed_by) else \
            f"{a.source} (unused: shadowed by {a.shadowed_by})"
        rows.append([a.name, a.kind, what if len(what) <= 50 else what[:49] + "…",
                     str(a.jobs), source])
    table(["NAME", "KIND", "COMMAND", "JOBS", "SOURCE"], rows)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    client = client_from(args)
    if not args.force and sys.stdin.isatty():
        agent = client.agents.get(args.agent)
        answer = input(f"Remove agent {escape(agent.name)} ({escape(agent.source)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not removed")
            return EXIT_ERROR
    result = client.agents.delete(args.agent)
    print(f"removed agent {escape(result.name)}")
    return EXIT_OK
