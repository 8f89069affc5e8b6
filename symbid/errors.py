"""Errors: one root, stable codes.

Every error symbid raises on purpose is a :class:`SymbidError`. Its ``code`` is
stable: it appears on the wire (``{"error": {"code": ..., "message": ...}}``),
in logs, and decides the CLI's exit status and the API's HTTP status. Messages
are written for the operator: they say what is wrong and, where it helps, what
to do about it.
"""

from __future__ import annotations

import errno
from typing import Optional

# CLI exit statuses (documented in `symbi --help`).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the daemon cannot be reached


class SymbidError(Exception):
    """Root of every deliberate symbid error.

    ``field`` names the offending input (a config key, a JSON field, a cron
    field) when there is one.
    """

    code = "error"
    http_status = 500
    exit_status = EXIT_ERROR

    def __init__(self, message: str, *, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_wire(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return {"error": body}


class InvalidInput(SymbidError):
    """Input that can never be accepted as written."""

    code = "invalid_input"
    http_status = 400


class InvalidCron(InvalidInput):
    code = "invalid_cron"


class InvalidTimezone(InvalidInput):
    code = "invalid_timezone"


class InvalidAt(InvalidInput):
    code = "invalid_at"


class InvalidDuration(InvalidInput):
    code = "invalid_duration"


class NotFound(SymbidError):
    code = "not_found"
    http_status = 404
    exit_status = EXIT_NOT_FOUND


class Conflict(SymbidError):
    """The request clashes with the current state (a duplicate name, a wrong status)."""

    code = "conflict"
    http_status = 409


class Forbidden(SymbidError):
    """The request is understood, but this daemon's configuration does not allow it."""

    code = "forbidden"
    http_status = 403


class StoreError(SymbidError):
    code = "store_error"


class UnreadableRow(StoreError):
    """A stored row that this symbid cannot read (written by hand, or damaged)."""

    code = "unreadable_row"
    http_status = 409


class StorageFull(StoreError):
    """The disk holding the state directory has no room for what was asked."""

    code = "storage_full"
    http_status = 507


_SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full: SQLITE_FULL from SQLite (its extended code
    from Python 3.11, its message before), ENOSPC or EDQUOT (a quota) from the system. The
    one test behind every :class:`StorageFull`. SQLite itself maps only ENOSPC to
    SQLITE_FULL: a quota reached by the database's own writes comes back as an I/O error
    (SQLITE_IOERR_WRITE), which stays a ``store_error``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_FULL
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return type(exc).__module__ == "sqlite3" and "database or disk is full" in str(exc)


class SchemaTooNew(StoreError):
    """The database was written by a newer symbid; refusing to touch it."""

    code = "schema_too_new"


class SandboxError(SymbidError):
    """A run's child process could not be started."""

    code = "spawn_failed"


class Unavailable(SymbidError):
    code = "unavailable"
    http_status = 503
    exit_status = EXIT_UNAVAILABLE


class BodyTooLarge(SymbidError):
    """A request body over its cap, refused before it is read (or while a chunked one
    arrives: its chunk framing counts); ``key`` is the setting of the cap."""

    code = "too_large"
    http_status = 413

    def __init__(self, cap: int, key: str, *, chunked: bool = False) -> None:
        framing = "; a chunked body counts its chunk framing" if chunked else ""
        super().__init__(f"request body is larger than {cap} bytes ({key}{framing})",
                         field=key.rsplit(maxsplit=1)[-1])


class BatchRefused(SymbidError):
    """Elements of a batch were refused, so nothing of the batch was done.

    ``problems`` are ``(index, error)`` in index order (at least one). The code and
    HTTP status are the first problem's; ``field`` is that problem's field under its
    index (``[3].cron_expr``, or ``[3]`` when it names none). On the wire the error also
    carries ``errors``: every problem with its ``index``, ``code``, ``field`` and
    ``message``.
    """

    SHOWN = 5  # problems spelled out in the message; ``errors`` has them all

    def __init__(self, problems: list[tuple[int, SymbidError]], total: int,
                 what: str = "job") -> None:
        first_index, first = problems[0]
        said = "; ".join(f"[{i}] {e.message}" for i, e in problems[:self.SHOWN])
        if len(problems) > self.SHOWN:
            said += f"; and {len(problems) - self.SHOWN} more (see errors)"
        super().__init__(f"{len(problems)} of the {total} {what}s of the batch refused, so "
                         f"none was created: {said}",
                         field=self.indexed(first_index, first.field))
        self.code = first.code
        self.http_status = first.http_status
        self.problems = problems
        self.total = total

    @staticmethod
    def indexed(index: int, field: Optional[str]) -> str:
        return f"[{index}].{field}" if field else f"[{index}]"

    def to_wire(self) -> dict[str, object]:
        wire = super().to_wire()
        body = wire["error"]
        assert isinstance(body, dict)
        body["errors"] = [{"index": i, "code": e.code, "field": self.indexed(i, e.field),
                           "message": e.message} for i, e in self.problems]
        return wire
