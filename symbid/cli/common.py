"""What every daemon command shares: the client, references to jobs and runs, output.

A job or run reference on the command line is resolved in this order: the exact id,
the exact name (jobs only), then a unique id prefix of at least 8 characters (the
short ids the tables show). An ambiguous prefix is an error that lists the matches.
The API itself takes only exact ids and names; prefixes are the CLI's convenience.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from typing import Any, Optional

from symbid.client import Record, SymbiontClient
from symbid.clock import SystemClock
from symbid.errors import EXIT_USAGE, NotFound, SymbidError
from symbid.text import escape, json_text

SHORT_ID = 8  # the length of the ids tables show, and the shortest prefix accepted
_PREFIX = re.compile(r"^[0-9a-fA-F-]{8,}$")
TERMINAL_RUNS = ("succeeded", "failed", "timed_out", "skipped", "denied", "cancelled",
                 "interrupted")


class UsageError(SymbidError):
    exit_status = EXIT_USAGE
    code = "usage"


class Ambiguous(SymbidError):
    code = "ambiguous"


def client_from(args: argparse.Namespace) -> SymbiontClient:
    """The daemon's client from --url/--socket, then $SYMBI_URL/$SYMBI_SOCKET."""
    url = args.url or os.environ.get("SYMBI_URL")
    if url:
        token = os.environ.get("SYMBI_API_KEY", "").strip()
        if args.token_file:
            try:
                with open(args.token_file, encoding="utf-8") as fh:
                    token = fh.read().strip()
            except OSError as exc:
                raise UsageError(f"--token-file {args.token_file}: {exc.strerror}") from None
        if not token:
            where = "--url" if args.url else "SYMBI_URL"
            raise UsageError(f"{where} talks to the TCP API, which needs its bearer token: "
                             "set SYMBI_API_KEY or give --token-file FILE (for `make run`, "
                             "--token-file .symbid/api-token)")
        try:
            return SymbiontClient(base_url=url, api_key=token)
        except ValueError as exc:
            raise UsageError(f"{url!r} is not a URL: {exc}") from None
    return SymbiontClient(socket_path=args.socket or os.environ.get("SYMBI_SOCKET") or None)


def now_seconds() -> float:
    return SystemClock().now() / 1000


def job_ref(args: argparse.Namespace) -> str:
    name, job = getattr(args, "name", None), getattr(args, "job", None)
    if name and job:
        raise UsageError(f"give the job once: {job!r} or --name {name!r}, not both")
    if not (name or job):
        raise UsageError("give a job (its id, name or short id) or --name NAME")
    return str(name or job)


def number(kind: type, *, low: float = 0, above: bool = True,
           high: Optional[float] = None) -> Any:
    """An argparse type: a finite number above ``low`` (or at least it, with
    ``above=False``), and at most ``high``; anything else is a usage error naming the
    flag."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        ok = math.isfinite(value) and (value > low if above else value >= low)
        if not ok:
            bound = f"above {low:g}" if above else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r} must be a number {bound}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text!r} must be at most {high:g}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _short_hint(ref: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F-]{1,7}", ref):
        return f" (a short id needs at least {SHORT_ID} characters)"
    return ""


def _pick(kind: str, ref: str, matches: list[Any]) -> str:
    if not matches:
        raise NotFound(f"no {kind} has the id, name or id prefix {ref!r}")
    if len(matches) > 1:
        shown = "\n".join(f"  {m.id}  {getattr(m, 'name', '') or ''}".rstrip()
                          for m in matches[:10])
        more = f"\n  ... and {len(matches) - 10} more" if len(matches) > 10 else ""
        raise Ambiguous(f"{kind} id prefix {ref!r} matches {len(matches)} {kind}s; give more "
                        f"of the id:\n{shown}{more}")
    return str(matches[0].id)


def resolve_job(client: SymbiontClient, ref: str) -> str:
    """The exact id or name a job reference means (the API resolves those two itself)."""
    try:
        return str(client.schedule.get(ref).id)
    except NotFound:
        if not _PREFIX.match(ref):
            raise NotFound(f"no job has the id or name {ref!r}{_short_hint(ref)}") from None
    return _pick("job", ref, list(client.schedule.list(id_prefix=ref.lower(), all=True)))


def resolve_run(client: SymbiontClient, ref: str) -> str:
    try:
        return str(client.schedule.get_run(ref).id)
    except NotFound:
        if not _PREFIX.match(ref):
            raise NotFound(f"no run has the id {ref!r}{_short_hint(ref)}") from None
    return _pick("run", ref, list(client.schedule.find_runs(ref.lower(), limit=11)))


def print_json(data: Any) -> None:
    if isinstance(data, Record):
        data = data.to_dict()
    elif isinstance(data, list):
        data = [d.to_dict() if isinstance(d, Record) else d for d in data]
    print(json_text(json.dumps(data, indent=2, ensure_ascii=False)))


def lines(text: str) -> str:
    """A multi-line message with each line escaped."""
    return "\n".join(escape(line) for line in str(text).split("\n"))
