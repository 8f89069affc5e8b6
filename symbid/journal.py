"""Logging to journald's native protocol, or to stderr.

When ``$JOURNAL_STREAM`` says stderr is connected to the journal (systemd sets
it for services), records go to the journal socket as structured entries with
``SYMBID_JOB``, ``SYMBID_RUN``, ``SYMBID_EVENT`` (and a delivery's ``SYMBID_CHANNEL``)
fields from the record's ``extra``, so ``journalctl -u symbid SYMBID_JOB=daily-report`` shows
one job's story. Otherwise a plain line per record goes to stderr.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import traceback
from typing import Optional

from symbid.text import escape

JOURNAL_SOCKET = "/run/systemd/journal/socket"
FIELDS = ("SYMBID_JOB", "SYMBID_RUN", "SYMBID_EVENT", "SYMBID_CHANNEL")
_MAX_VALUE = 48 * 1024
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


def _priority(levelno: int) -> int:
    for level, prio in sorted(_PRIORITY.items(), reverse=True):
        if levelno >= level:
            return prio
    return 7


def encode_entry(fields: dict[str, str]) -> bytes:
    """The journal's native datagram: KEY=value lines, binary-safe for multi-line values."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")[:_MAX_VALUE]
        if b"\n" in data:
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    def __init__(self, socket_path: str = JOURNAL_SOCKET, identifier: str = "symbid") -> None:
        super().__init__()
        self.socket_path = socket_path
        self.identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            fields = {
                "MESSAGE": message,
                "PRIORITY": str(_priority(record.levelno)),
                "SYSLOG_IDENTIFIER": self.identifier,
                "LOGGER": record.name,
                "CODE_FILE": record.pathname,
                "CODE_LINE": str(record.lineno),
                "CODE_FUNC": record.funcName,
            }
            for name in FIELDS:
                value = getattr(record, name, None)
                if value is not None:
                    fields[name] = str(value)
            self._sock.sendto(encode_entry(fields), self.socket_path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        super().close()


class EscapeFilter(logging.Filter):
    """Escape user-provided text in every record (DESIGN §3): the %-arguments, a message
    logged without arguments, and the job/run fields. A name or an output with a newline
    or an ANSI escape in it can then neither forge a log line nor recolour a terminal.
    Tracebacks are the daemon's own text and keep their lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(a if isinstance(a, (int, float)) and not isinstance(a, bool)
                                else escape(str(a)) for a in args)
        elif isinstance(record.msg, str):
            record.msg = escape(record.msg)
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                setattr(record, name, escape(str(value)))
        return True


class FieldsFormatter(logging.Formatter):
    """Plain lines for stderr, with the job/run fields appended when present."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{name[7:].lower()}={getattr(record, name)}" for name in FIELDS[:2]
                  if getattr(record, name, None) is not None]
        return f"{text} [{' '.join(extras)}]" if extras else text


def stderr_is_journal(environ: Optional[dict[str, str]] = None) -> bool:
    """Whether ``$JOURNAL_STREAM`` names the file stderr is connected to."""
    value = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(level: int = logging.INFO, *, journal: Optional[bool] = None) -> None:
    """Route the root logger to the journal or to stderr (once)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    use_journal = stderr_is_journal() if journal is None else journal
    handler: logging.Handler
    if use_journal and os.path.exists(JOURNAL_SOCKET):
        handler = JournalHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(EscapeFilter())
    root.addHandler(handler)
    root.setLevel(level)
