"""The ``log_file`` channel: an entry appended to ``<log_dir>/<job name>.log``.

The file name is the job's name, which the name rule keeps to letters, digits, ``.``,
``_`` and ``-`` starting with a letter or digit: no separator, no ``..``, never absolute.
The file is opened anew for every entry (so logrotate's move-and-create works) with
``O_APPEND|O_CREAT|O_NOFOLLOW|O_CLOEXEC``, mode 0600 whatever the umask (output can hold
what the database holds, and is as private), relative to the log directory: a symbolic
link planted at its place is refused, and so is anything but a regular file with one
link. An entry: ``TIMESTAMP run ID STATUS`` (``TIMESTAMP alert EVENT`` for an alert), the
output's lines (each escaped), a blank line; written with one ``write`` where the system allows.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Mapping
from typing import Optional

from symbid.config import DeliverySettings
from symbid.delivery.base import Payload, Receipt, Target, elapsed_ms, refused
from symbid.model import ADHOC_PREFIX, name_problem
from symbid.text import escape

CHANNEL = "log_file"
MODE = 0o600
DIR_MODE = 0o700  # the log directory, when symbid has to make it
_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
          | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO planted there fails instead of hanging
DAEMON_LOG = "symbid.log"  # the daemon's own log in the log directory (--daemonize)
# What a retry can cure; any other error (a permission, a directory in the way) needs
# the operator.
_PASSING = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EMFILE, errno.ENFILE,
                      errno.EINTR, errno.EAGAIN, errno.ENOMEM})


def file_name_problem(job: str) -> Optional[str]:
    """Why ``job``'s name cannot name its log file, or None."""
    rest = job[len(ADHOC_PREFIX):] if job.startswith(ADHOC_PREFIX) else job
    bad = name_problem(rest)
    if bad is not None:
        return f"job name {escape(job)!r} {bad}, so it cannot name a log file"
    if f"{job}.log" == DAEMON_LOG:
        return f"job name {job!r} would write to {DAEMON_LOG}, the daemon's own log file"
    return None


def problem(target: Target, settings: DeliverySettings, *,
            job: Optional[str] = None) -> Optional[str]:
    """What keeps entries from being written: only the job's name can (when given)."""
    return None if job is None else file_name_problem(job)


def entry(payload: Payload) -> bytes:
    """The bytes one delivery appends."""
    lines = [f"{payload.when()} {payload.headline()}"]
    lines += [escape(line) for line in payload.output.splitlines()]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _open(log_dir: str, name: str) -> int:
    """The log file's descriptor, opened relative to the log directory; raises OSError."""
    os.makedirs(log_dir, mode=DIR_MODE, exist_ok=True)
    dir_fd = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return os.open(name, _FLAGS, MODE, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def send(payload: Payload, target: Target, settings: DeliverySettings,
         environ: Mapping[str, str], *, log_dir: str) -> Receipt:
    """Append the delivery's entry to the job's file under ``log_dir``. Never raises for
    the file system."""
    started = time.monotonic()
    bad = file_name_problem(payload.job)
    if bad is not None:
        return refused(CHANNEL, bad, started)
    name = f"{payload.job}.log"
    path = os.path.join(log_dir, name)
    try:
        fd = _open(log_dir, name)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = "is a symbolic link, which symbid does not follow"
        elif exc.errno == errno.ENXIO:
            reason = "is not a regular file"
        else:
            reason = f"cannot be opened: {exc.strerror}"
        return refused(CHANNEL, f"{path} {reason}", started,
                       permanent=exc.errno not in _PASSING)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return refused(CHANNEL, f"{path} is not a regular file", started)
        if st.st_nlink != 1:
            return refused(CHANNEL, f"{path} has {st.st_nlink} hard links; symbid writes "
                                    "only to a file with one", started)
        data = memoryview(entry(payload))
        while data:
            data = data[os.write(fd, data):]
    except OSError as exc:
        return refused(CHANNEL, f"cannot write {path}: {exc.strerror}", started,
                       permanent=exc.errno not in _PASSING)
    finally:
        os.close(fd)
    return Receipt(CHANNEL, ok=True, reply=f"appended to {path}",
                   duration_ms=elapsed_ms(started))
