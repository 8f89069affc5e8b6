"""``symbi logs``: the daemon's log, filtered by job, run, level, time and component.

Under systemd the daemon logs to the journal, so this runs ``journalctl -u symbid`` with
the matching fields (SYMBID_JOB, SYMBID_RUN, SYMBID_COMPONENT, ``-p``, ``--since``,
``-f``). Otherwise it reads the JSON lines of the file ``[daemon] log_file`` names. The
daemon says which over the API; when it cannot be reached (the moment one needs its log
most) on a systemd machine the journal is read, and ``--file`` reads a given file.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import socket
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, TextIO

from symbid.cli.common import UsageError, client_from, number
from symbid.components import LOG_COMPONENTS
from symbid.errors import EXIT_ERROR, EXIT_OK, Unavailable

LEVELS = ("debug", "info", "warning", "error", "critical")
_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
_JOURNAL_LEVEL = {"debug": "debug", "info": "info", "warning": "warning", "error": "err",
                  "critical": "crit"}
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
UNIT = "symbid.service"
FOLLOW_POLL = 0.5  # seconds between two looks at a followed file


def since_instant(text: str, now: datetime) -> datetime:
    """``--since``: a date (2026-12-01) or time (2026-12-01 10:00, 2026-12-01T10:00:00)
    in local time as journalctl takes it, an instant with its offset
    (2026-12-01T10:00:00Z), or an age (90s, 10m, 2h, 1d)."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        local = None
    if local is not None and local.tzinfo is None:
        return local.astimezone()  # a wall time here
    if local is not None:
        return local
    from symbid.timing import parse_instant  # croniter and dateutil: only when needed

    try:
        ms = parse_instant(text)
    except Exception:
        raise UsageError(f"--since {text!r}: give a date (2026-12-01) or a local time "
                         "(2026-12-01 10:00), an instant (2026-12-01T10:00:00Z) or an age "
                         "(90s, 10m, 2h, 1d)") from None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def journal_argv(args: argparse.Namespace, since: Optional[datetime]) -> list[str]:
    """The journalctl command line for ``args`` (the journal's own filters)."""
    argv = ["journalctl", "-u", UNIT, "--no-pager", "-o", "short-iso-precise"]
    if args.level:
        argv += ["-p", _JOURNAL_LEVEL[args.level]]
    if since is not None:
        argv += ["--since", since.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")]
    if args.lines is not None:
        argv += ["-n", str(args.lines)]
    if args.follow:
        argv.append("-f")
    for field, value in (("SYMBID_JOB", args.job), ("SYMBID_RUN", args.run),
                         ("SYMBID_COMPONENT", args.filter)):
        if value:
            argv.append(f"{field}={value}")
    return argv


def matches(entry: dict[str, Any], args: argparse.Namespace, since: Optional[datetime]) -> bool:
    """Whether one log file entry passes the filters."""
    if args.job and entry.get("job") != args.job:
        return False
    if args.run and entry.get("run") != args.run:
        return False
    if args.filter and entry.get("component") != args.filter:
        return False
    if args.level and int(entry.get("priority", 6)) > _PRIORITY[args.level]:
        return False
    if since is not None:
        from symbid.timing import parse_instant

        try:
            at = datetime.fromtimestamp(parse_instant(str(entry.get("time"))) / 1000,
                                        tz=timezone.utc)
        except Exception:
            return False
        if at < since:
            return False
    return True


def render(entry: dict[str, Any]) -> str:
    fields = " ".join(f"{k}={entry[k]}" for k in ("job", "run", "event", "channel")
                      if entry.get(k))
    text = (f"{entry.get('time', '?')} {str(entry.get('level', '?')).upper():<8} "
            f"{entry.get('component', '?')}: {entry.get('message', '')}")
    return f"{text} [{fields}]" if fields else text


class _Lines:
    """The entries of a log file as they are appended: a last line not yet ended (the
    daemon is writing it) is kept and read whole once its end arrives, or, ``final``,
    taken as it is (a file no longer written, the end of a read without --follow)."""

    def __init__(self, fh: TextIO) -> None:
        self.fh, self._partial = fh, ""

    def entries(self, *, final: bool = False) -> Iterator[dict[str, Any]]:
        while True:
            line = self.fh.readline()
            if line.endswith("\n"):
                text, self._partial = self._partial + line, ""
            else:  # the end of what is there: perhaps a line still being written
                self._partial += line
                if not final or not self._partial:
                    return
                text, self._partial = self._partial, ""
            try:
                entry = json.loads(text)
            except ValueError:
                continue  # a line cut by a crash, or not the daemon's
            if isinstance(entry, dict):
                yield entry

    def close(self) -> None:
        self.fh.close()


def _open_log(path: str) -> _Lines:
    return _Lines(open(path, encoding="utf-8", errors="replace"))


def read_file(path: str, args: argparse.Namespace, since: Optional[datetime]) -> int:
    """Print the matching entries of a log file; with --follow, then those appended
    (reopening it when logrotate moved it: the moved file is read to its end first)."""
    try:
        lines = _open_log(path)
    except OSError as exc:
        raise UsageError(f"cannot read the log file {path}: {exc.strerror}") from None
    moved: Optional[_Lines] = None  # the file logrotate moved, read once more to its end

    def show(source: _Lines, final: bool = False) -> None:
        for entry in source.entries(final=final):
            if matches(entry, args, since):
                print(render(entry), flush=True)

    try:
        shown = [render(e) for e in lines.entries(final=not args.follow)
                 if matches(e, args, since)]
        for line in shown[-args.lines:] if args.lines is not None else shown:
            print(line)
        sys.stdout.flush()
        while args.follow:
            time.sleep(FOLLOW_POLL)
            if moved is not None:  # what the daemon wrote there before it moved on
                show(moved, final=True)
                moved.close()
                moved = None
            show(lines)
            try:
                rotated = os.stat(path).st_ino != os.fstat(lines.fh.fileno()).st_ino
            except FileNotFoundError:
                continue  # between logrotate's move and the daemon's new file
            if rotated:
                moved, lines = lines, _open_log(path)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        lines.close()
        if moved is not None:
            moved.close()
    return EXIT_OK


def _remote_host(base_url: Optional[str]) -> Optional[str]:
    """The host of a daemon reached over TCP on another machine (None: this one: a
    loopback or unspecified address, this host's name, or an address bound here)."""
    if base_url is None:
        return None
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host in ("", "localhost", socket.gethostname(), socket.getfqdn()):
        return None
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return host
    for family, _, _, _, address in found:
        ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        if ip.is_loopback or ip.is_unspecified or _bound_here(family, str(address[0])):
            return None
    return host


def _bound_here(family: int, address: str) -> bool:
    """Whether ``address`` is one of this machine's (a socket can be bound to it)."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def _under_systemd() -> bool:
    import shutil

    return os.path.isdir("/run/systemd/system") and shutil.which("journalctl") is not None


def cmd_logs(args: argparse.Namespace) -> int:
    since = since_instant(args.since, datetime.now(timezone.utc)) if args.since else None
    if args.file:
        return read_file(args.file, args, since)
    client = client_from(args)
    remote = _remote_host(client.transport.base_url)
    if remote is not None:
        raise UsageError(f"symbi logs reads the daemon's log on this machine, and {remote} "
                         "is another: run symbi logs there (or give --file PATH for a copy "
                         "of its log file)")
    try:
        target = client.log_target()
        journal, log_file = bool(target.journal), target.log_file
    except Unavailable as exc:
        if not _under_systemd():
            raise Unavailable(f"{exc.message}; give --file PATH to read a log file without "
                              "the daemon") from None
        print(f"symbi: {exc.message}; reading the journal", file=sys.stderr)
        journal, log_file = True, None
    if log_file and not journal:
        return read_file(str(log_file), args, since)
    if not journal:
        raise UsageError("symbid logs to its stderr only (no journal, no [daemon] log_file): "
                         "set log_file in its configuration to read its log here")
    import shutil
    import subprocess

    if shutil.which("journalctl") is None:
        raise UsageError("symbid logs to the journal, but journalctl is not installed here")
    try:
        return subprocess.call(journal_argv(args, since))
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        print(f"symbi: cannot run journalctl: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR


def add_parser(sub: Any, command: Any) -> None:
    """``symbi logs`` on the top-level subparsers (``command`` is main's helper)."""
    p = command(sub, "logs", "show the daemon's log, filtered", cmd_logs,
                description="The daemon's log: the journal under systemd (journalctl -u "
                "symbid with the matching fields), else the file [daemon] log_file names. "
                "Filters combine.")
    p.add_argument("--job", metavar="NAME", help="one job's entries (its name)")
    p.add_argument("--run", metavar="ID", help="one run's entries (its full id)")
    p.add_argument("--level", choices=LEVELS,
                   help="this level and more severe ones (default: all)")
    p.add_argument("--since", metavar="T",
                   help="from this local date or time (2026-12-01, '2026-12-01 10:00'), "
                   "instant (2026-12-01T10:00:00Z) or age (90s, 10m, 2h, 1d) on")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new entries (Ctrl-C stops)")
    p.add_argument("--filter", metavar="COMPONENT", choices=LOG_COMPONENTS,
                   help=f"one component's entries: {', '.join(LOG_COMPONENTS)}")
    p.add_argument("--lines", "-n", metavar="N", type=number(int, low=1, above=False),
                   help="only the last N matching entries (then new ones with --follow)")
    p.add_argument("--file", metavar="PATH",
                   help="read this log file (JSON lines, [daemon] log_file) instead of "
                   "asking the daemon where its log is")
