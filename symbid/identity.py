"""The daemon's identity towards its runs: capabilities it holds and passes on (none),
and the file identity it takes to touch a run's private files.

Packaged, the daemon runs as ``symbid`` with CAP_SETUID, CAP_SETGID and CAP_KILL given by
systemd as *ambient* capabilities (units/symbid.service). Ambient capabilities survive
``execve`` of ordinary programs, and a switch between two non-root users does not clear
them, so :func:`clear_ambient_capabilities` empties the ambient and the inheritable sets at
start: the daemon keeps them (permitted and effective) and no child it starts inherits any.

A run's directory is 0700 and owned by the run's user (``symbid-run``), in that user's own
root of the runs, so the daemon reaches into it under the *run's* file identity:
:func:`file_identity` sets the calling thread's fsuid/fsgid (setfsuid(2) is per thread: the
daemon's other threads keep theirs) to the run's uid and gid for the block, instead of
holding CAP_DAC_OVERRIDE or CAP_CHOWN. The identity is the one the run was given, never
read from a path the run could have replaced; the daemon has left its supplementary groups
(:func:`drop_supplementary_groups`, at start), and within the block the thread's effective
capabilities are CAP_SETUID and CAP_SETGID only (a root daemon's CAP_SYS_PTRACE would open
/proc/PID/cwd links the run's user may not follow). Whatever the run leaves there (a
symbolic link to the database, a directory moved away) the daemon then reads, creates and
removes with the run user's rights, never more.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import grp
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
    caps = effective_capabilities()
    if pw.pw_uid != os.geteuid() and os.geteuid() != 0 and not (
            caps >> CAP_SETUID & 1 and caps >> CAP_SETGID & 1):
        return (f"symbid (uid {os.geteuid()}) cannot switch to {name!r}: it needs root or "
                "CAP_SETUID and CAP_SETGID (units/symbid.service grants them)")
    return None


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _capget() -> Optional[tuple[_CapHeader, ctypes.Array[_CapData]]]:
    """This thread's capability sets (None when they cannot be read)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _c().capget(ctypes.byref(header), data) != 0:
        return None
    return header, data


def _clear_inheritable() -> bool:
    """Empty this thread's inheritable capability set (capget, then capset with it zero);
    True when done or nothing to do."""
    got = _capget()
    if got is None:
        return False
    header, data = got
    if not (data[0].inheritable or data[1].inheritable):
        return True
    data[0].inheritable = data[1].inheritable = 0
    return bool(_c().capset(ctypes.byref(header), data) == 0)


_SWITCHING = (1 << CAP_SETUID) | (1 << CAP_SETGID)


@contextmanager
def _only_switching_capabilities() -> Iterator[None]:
    """Within the block this thread's effective capabilities are at most CAP_SETUID and
    CAP_SETGID (capset is per thread): under a run's file identity a root daemon's
    CAP_SYS_PTRACE and the like would still open paths (/proc/PID/root) to it that the
    run's user cannot open. Those two stay, for the fsuid switch and for a child forked
    in the block to drop to the run's user."""
    got = _capget()
    if got is None:
        yield
        return
    header, data = got
    if not (data[0].effective & ~_SWITCHING or data[1].effective):
        yield  # nothing more than the two
        return
    saved = (data[0].effective, data[1].effective)
    data[0].effective &= _SWITCHING
    data[1].effective = 0
    if _c().capset(ctypes.byref(header), data) != 0:  # pragma: no cover - lowering
        raise PermissionError(errno.EPERM, "cannot lower the daemon's capabilities")
    try:
        yield
    finally:
        data[0].effective, data[1].effective = saved
        if _c().capset(ctypes.byref(header), data) != 0:  # pragma: no cover
            log.critical("cannot take back the daemon's capabilities")
            os.abort()


def drop_supplementary_groups() -> None:
    """Leave the supplementary groups the daemon was started with (systemd gives User=
    those of /etc/group), when it may: under a run's file identity only the run's uid and
    gid may count, and setfsgid leaves the groups as they are. Call it at start; the
    groups it left are named in the log."""
    extra = sorted(set(os.getgroups()) - {os.getegid()})
    if not os.getgroups() or not can_switch_groups():
        return
    os.setgroups([])
    if extra:
        names = []
        for gid in extra:
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                names.append(str(gid))
        log.warning("symbid left its supplementary groups %s: it reaches its runs' files "
                    "with their rights only; give it access through its own group %s "
                    "instead", ", ".join(names), os.getegid())


def clear_ambient_capabilities() -> bool:
    """Empty the ambient and the inheritable capability sets (the daemon keeps its
    effective ones); True when done or nothing to do. Call it in the main thread before
    any other thread or child is started: the sets are per thread, and inherited."""
    problems = []
    if _c().prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        problems.append(f"ambient: {os.strerror(ctypes.get_errno())}")
    if not _clear_inheritable():
        problems.append(f"inheritable: {os.strerror(ctypes.get_errno())}")
    if problems:
        log.warning("cannot clear the daemon's capabilities (%s): runs may inherit them",
                    "; ".join(problems))
        return False
    return True


def _set_fs(uid: int, gid: int) -> bool:
    """Set this thread's fsgid then fsuid; True when both took (the calls report the
    previous value only, so each is read back with an invalid argument)."""
    c = _c()
    c.setfsgid(gid)
    c.setfsuid(uid)
    return bool(c.setfsuid(-1) == uid and c.setfsgid(-1) == gid)


@contextmanager
def file_identity(uid: Optional[int], gid: Optional[int]) -> Iterator[None]:
    """File operations of this thread within the block run as ``uid``/``gid`` (None: the
    process's own), as a run with those ids would. Raises :class:`PermissionError` when
    this process may not take them (it needs root, or CAP_SETUID and CAP_SETGID)."""
    own_uid, own_gid = os.geteuid(), os.getegid()
    target = (own_uid if uid is None else uid, own_gid if gid is None else gid)
    if target == (own_uid, own_gid):
        yield
        return
    with _only_switching_capabilities():
        if not _set_fs(*target):
            _set_fs(own_uid, own_gid)  # a half-taken switch is undone
            raise PermissionError(
                errno.EPERM, f"symbid (uid {own_uid}) cannot act as uid {target[0]} gid "
                f"{target[1]}: it needs root, or CAP_SETUID and CAP_SETGID "
                "(units/symbid.service grants them)")
        try:
            yield
        finally:
            if not _set_fs(own_uid, own_gid):  # pragma: no cover - one's own ids back
                log.critical("cannot take back the daemon's file identity")
                os.abort()
