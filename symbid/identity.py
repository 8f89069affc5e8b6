"""The daemon's identity towards its runs: capabilities it holds and passes on (none),
and the file identity it takes to touch a run's private files.

Packaged, the daemon runs as ``symbid`` with CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_CHOWN
given by systemd as *ambient* capabilities (units/symbid.service). Ambient capabilities
survive ``execve`` of ordinary programs, and a switch between two non-root users does not
clear them, so :func:`clear_ambient_capabilities` empties the ambient set at start: the
daemon keeps them (permitted and effective) and no child it starts inherits any.

A run's directory is 0700 and owned by the run's user (``symbid-run``), so the daemon
reaches into it under the owner's file identity: :func:`owner_file_identity` sets the
calling thread's fsuid/fsgid (setfsuid(2) is per thread: the daemon's other threads keep
theirs) for the block, instead of holding CAP_DAC_OVERRIDE, which would open every file on
the system to the daemon. Files the run left are then read and removed with exactly the
run's rights, so a symbolic link or a mode it set cannot make the daemon touch more.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

log = logging.getLogger(__name__)

CAP_SETGID = 6
CAP_SETUID = 7
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4


@functools.lru_cache(maxsize=1)
def _c() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def effective_capabilities(status_path: str = "/proc/self/status") -> int:
    """The calling process's effective capability mask (0 when it cannot be read)."""
    try:
        with open(status_path, "rb") as fh:
            for line in fh:
                if line.startswith(b"CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def can_switch_groups() -> bool:
    """Whether this process may set a child's supplementary groups (root or CAP_SETGID)."""
    return os.geteuid() == 0 or bool(effective_capabilities() >> CAP_SETGID & 1)


def user_problem(name: Optional[str]) -> Optional[str]:
    """Why runs cannot execute as the user ``name`` (None: they can, or no user named)."""
    if name is None:
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return (f"there is no user {name!r} on this system; create it (the package's "
                "sysusers file makes symbid-run) or name another")
    if pw.pw_uid != os.geteuid() and os.geteuid() != 0 and not (
            effective_capabilities() >> CAP_SETUID & 1):
        return (f"symbid (uid {os.geteuid()}) cannot switch to {name!r}: it needs root or "
                "CAP_SETUID and CAP_SETGID (units/symbid.service grants them)")
    return None


def clear_ambient_capabilities() -> bool:
    """Empty the ambient capability set (the daemon keeps its effective ones); True when
    done or nothing to do. Call it before any child is started."""
    if _c().prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0:
        return True
    err = ctypes.get_errno()
    log.warning("cannot clear the ambient capabilities (%s): runs may inherit them",
                os.strerror(err))
    return False


def _set_fs(uid: int, gid: int) -> bool:
    """Set this thread's fsgid then fsuid; True when both took (the calls report the
    previous value only, so each is read back with an invalid argument)."""
    c = _c()
    c.setfsgid(gid)
    c.setfsuid(uid)
    return bool(c.setfsuid(-1) == uid and c.setfsgid(-1) == gid)


def _owner_stat(path: str) -> Optional[os.stat_result]:
    """The status of ``path``, or, when a directory on the way is closed to this process
    (a run user's own 0700 root), of the nearest one it can see: its owner is the owner of
    what lies in it."""
    current = os.path.abspath(path)
    while True:
        try:
            return os.stat(current)
        except PermissionError:
            parent = os.path.dirname(current)
            if parent == current:
                return None
            current = parent
        except OSError:
            return None


@contextmanager
def owner_file_identity(path: str) -> Iterator[None]:
    """File operations of this thread within the block run as the owner of ``path``
    (its uid and gid; that of the nearest directory above it this process can see, when
    one on the way is closed to it), when that is someone else and this process may switch (root or
    CAP_SETUID/CAP_SETGID); otherwise with the process's own identity, unchanged."""
    st = _owner_stat(path)
    if st is None:
        yield
        return
    uid, gid = os.geteuid(), os.getegid()
    if (st.st_uid, st.st_gid) == (uid, gid) or not _set_fs(st.st_uid, st.st_gid):
        _set_fs(uid, gid)  # a half-taken switch is undone
        yield
        return
    try:
        yield
    finally:
        if not _set_fs(uid, gid):  # pragma: no cover - setting one's own ids back
            log.critical("cannot take back the daemon's file identity")
            os.abort()
