"""Logging to journald's native protocol, or to stderr, and optionally to a file.

When ``$JOURNAL_STREAM`` says stderr is connected to the journal (systemd sets it for
services), records go to the journal socket as structured entries (journald's native
protocol: one datagram per entry, the length-prefixed form for values with a newline, a
sealed memfd passed over the socket for an entry too big for a datagram) carrying
``SYMBID_JOB``, ``SYMBID_RUN``, ``SYMBID_EVENT`` and a delivery's ``SYMBID_CHANNEL``
from the record's ``extra``, and ``SYMBID_COMPONENT`` (one of
:data:`symbid.components.LOG_COMPONENTS`) from the logger's module, so
``journalctl -u symbid SYMBID_JOB=daily-report`` shows one job's story.
Otherwise a line per record goes to stderr, with the ``<N>`` priority prefix of
sd-daemon(3). ``[daemon] log_file`` adds a file of JSON lines (:class:`JsonFileHandler`)
that ``symbi logs`` reads when the daemon is not under the journal.

Logging never blocks the scheduler: the journal socket is non-blocking, and an entry it
cannot take at once (journald busy, its queue full) is dropped and counted
(:attr:`JournalHandler.dropped`).
"""

from __future__ import annotations

import array
import errno
import json
import logging
import logging.handlers
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any, Optional

from symbid.text import escape

JOURNAL_SOCKET = "/run/systemd/journal/socket"
FIELDS = ("SYMBID_JOB", "SYMBID_RUN", "SYMBID_EVENT", "SYMBID_CHANNEL")
_MAX_VALUE = 1024 * 1024  # a value beyond this is cut (journald takes up to 64 MiB)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}
# Logger (module) name -> SYMBID_COMPONENT; the longest matching prefix wins, and what
# matches none (the daemon's wiring, the engine) is the scheduler's.
_COMPONENT_OF = {
    "symbid.executor": "executor", "symbid.sandbox": "executor", "symbid.agents": "executor",
    "symbid.llmrun": "executor", "symbid.heartbeat": "executor", "symbid.sessions": "executor",
    "symbid.runfiles": "executor", "symbid.identity": "executor", "symbid.live": "executor",
    "symbid.leftovers": "executor", "symbid.launch": "executor",
    "symbid.delivery": "delivery", "symbid.outbox": "delivery", "symbid.channels": "delivery",
    "symbid.policy": "policy", "symbid.approvals": "policy", "symbid.agentpin": "policy",
    "symbid.audit": "policy", "symbid.auth": "policy",
    "symbid.api": "api", "symbid.control": "api", "symbid.client": "api",
    "symbid.store": "store",
}
def component_of(logger_name: str) -> str:
    """The SYMBID_COMPONENT of a record logged by ``logger_name``."""
    name = logger_name
    while name:
        found = _COMPONENT_OF.get(name)
        if found is not None:
            return found
        name = name.rpartition(".")[0]
    return "scheduler"


def _priority(levelno: int) -> int:
    for level, prio in sorted(_PRIORITY.items(), reverse=True):
        if levelno >= level:
            return prio
    return 7


def encode_entry(fields: dict[str, str]) -> bytes:
    """The journal's native datagram: KEY=value lines, binary-safe for multi-line values."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if len(data) > _MAX_VALUE:  # cut on a character's boundary
            data = data[:_MAX_VALUE].decode("utf-8", "ignore").encode("utf-8")
        if b"\n" in data:
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def record_fields(record: logging.LogRecord, identifier: str = "symbid") -> dict[str, str]:
    """The journal fields of a record (also what a log file line holds)."""
    message = record.getMessage()
    if record.exc_info:
        message += "\n" + "".join(traceback.format_exception(*record.exc_info))
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(_priority(record.levelno)),
        "SYSLOG_IDENTIFIER": identifier,
        "SYMBID_COMPONENT": str(getattr(record, "SYMBID_COMPONENT", None)
                                or component_of(record.name)),
        "LOGGER": record.name,
        "CODE_FILE": record.pathname,
        "CODE_LINE": str(record.lineno),
        "CODE_FUNC": record.funcName,
    }
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = str(value)
    return fields


class JournalHandler(logging.Handler):
    def __init__(self, socket_path: str = JOURNAL_SOCKET, identifier: str = "symbid") -> None:
        super().__init__()
        self.socket_path = socket_path
        self.identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self.dropped = 0  # entries the journal could not take at once
        self._drops = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send(encode_entry(record_fields(record, self.identifier)))
        except Exception:
            self.handleError(record)

    def send(self, data: bytes) -> None:
        """One entry: a datagram, or a sealed memfd when it is too big for one; dropped
        (and counted) when the journal cannot take it now."""
        try:
            self._sock.sendto(data, self.socket_path)
        except BlockingIOError:
            self._count_drop()
        except OSError as exc:
            if exc.errno in (errno.EMSGSIZE, errno.ENOBUFS):  # too big for a datagram
                self._send_memfd(data)
            else:  # no journal there now (ENOENT, ECONNREFUSED while it restarts): as
                self._count_drop()  # sd_journal_send does, the entry is dropped

    def _send_memfd(self, data: bytes) -> None:
        try:
            fd = os.memfd_create("symbid-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        except OSError:  # out of descriptors or memory: dropped, as a busy journal's
            self._count_drop()
            return
        try:
            import fcntl  # the seals journald requires before it reads the memfd

            try:
                os.write(fd, data)
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                            | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            except OSError:
                self._count_drop()
                return
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            try:
                self._sock.sendmsg([], rights, 0, self.socket_path)
            except OSError:  # busy (EAGAIN), or no journal there now
                self._count_drop()
        finally:
            os.close(fd)

    def _count_drop(self) -> None:
        with self._drops:
            self.dropped += 1

    def close(self) -> None:
        self._sock.close()
        super().close()


class JsonFileHandler(logging.handlers.WatchedFileHandler):
    """``[daemon] log_file``: one JSON object per line (time, level, priority, component,
    logger, message and the SYMBID_* fields), created 0600 and reopened after logrotate
    moves it."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        super().__init__(path, encoding="utf-8")

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "priority": int(fields["PRIORITY"]),
            "component": fields["SYMBID_COMPONENT"],
            "logger": record.name,
            "message": fields["MESSAGE"],
        }
        for name in FIELDS:
            if name in fields:
                line[name[7:].lower()] = fields[name]
        return json.dumps(line, ensure_ascii=False)


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
    """Plain lines for stderr: the ``<N>`` priority prefix (sd-daemon(3)), and the
    job/run fields appended when present."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"{name[7:].lower()}={getattr(record, name)}" for name in FIELDS[:2]
                  if getattr(record, name, None) is not None]
        text = f"{text} [{' '.join(extras)}]" if extras else text
        prefix = f"<{_priority(record.levelno)}>"  # on every line: each is an entry
        return "\n".join(prefix + line for line in text.split("\n"))


def stderr_is_journal(environ: Optional[dict[str, str]] = None) -> bool:
    """Whether ``$JOURNAL_STREAM`` names the file stderr is connected to."""
    value = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(level: int = logging.INFO, *, journal: Optional[bool] = None) -> bool:
    """Route the root logger to the journal or to stderr (once); True for the journal."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    use_journal = stderr_is_journal() if journal is None else journal
    handler: logging.Handler
    if use_journal and os.path.exists(JOURNAL_SOCKET):
        handler = JournalHandler()
    else:
        use_journal = False
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(EscapeFilter())
    root.addHandler(handler)
    root.setLevel(level)
    return use_journal


def journal_drops() -> int:
    """Entries the root logger's journal handlers dropped so far."""
    return sum(h.dropped for h in logging.getLogger().handlers if isinstance(h, JournalHandler))


def add_log_file(path: str) -> logging.Handler:
    """Also write the log to ``path`` (JSON lines); raises OSError when it cannot be opened."""
    handler = JsonFileHandler(path)
    handler.addFilter(EscapeFilter())
    logging.getLogger().addHandler(handler)
    return handler
