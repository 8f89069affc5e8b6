"""Request slots: ``[llm] max_concurrent_requests`` across every run's child process.

Runs are separate processes, possibly of other users, so the bound lives in the file
system: the daemon keeps a directory (``<runs_dir>/llm-slots``, mode 0755) holding N
empty files ``slot-0`` .. ``slot-{N-1}`` (mode 0644), and a child holds one of them with
``flock(LOCK_EX | LOCK_NB)`` while a request is in flight. ``flock`` works on a read-only
descriptor, so a run user who cannot write the directory can still take a slot, and the
kernel drops the lock when its process dies: a killed run never leaks a slot.

The daemon side is :func:`prepare` (at start and on reload); the child side is
:class:`Slots`. Standard library only (``fcntl`` is imported where a slot is taken): the
child's start-up is measured by ``bench/llm_start.py``.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Callable

from symbid.errors import SymbidError

DIR_NAME = "llm-slots"
PREFIX = "slot-"
POLL_FIRST, POLL_MAX = 0.005, 0.05  # seconds between tries while every slot is taken
# A wait for a slot gives up this long before the run's deadline: the child's deadline
# is counted from its own start, a little after the sandbox's max_runtime clock started,
# and the child must still write why it failed before that kill comes.
MARGIN = 0.5


class SlotError(SymbidError):
    """No request slot could be taken (the reason names ``max_concurrent_requests``)."""

    code = "llm_error"


def slots_dir(runs_dir: str) -> str:
    """The slots directory of a runs' root."""
    return os.path.join(os.path.abspath(runs_dir), DIR_NAME)


def prepare(directory: str, count: int) -> None:
    """Make ``directory`` (0755) hold exactly ``slot-0`` .. ``slot-{count-1}`` (0644).

    Existing slot files are kept (a child may hold one), extra ones are removed: a child
    holding a removed one finishes its request; new requests see only ``count`` slots.
    Raises OSError when the directory cannot be made, or is not a directory.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    parent = os.path.dirname(directory)
    from symbid.runfiles import make_runs_dir  # the runs' root, 0711 like the sandbox's

    make_runs_dir(parent)
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        pass
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f"{directory} is not a directory")
    if stat.S_IMODE(st.st_mode) != 0o755:
        os.chmod(directory, 0o755)  # noqa: S103 - run users of any uid open the slots
    wanted = {f"{PREFIX}{i}" for i in range(count)}
    for name in os.listdir(directory):
        if name.startswith(PREFIX) and name not in wanted:
            os.unlink(os.path.join(directory, name))
    for name in sorted(wanted):
        fd = os.open(os.path.join(directory, name),
                     os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != 0o644:
                os.fchmod(fd, 0o644)
        finally:
            os.close(fd)


class Slots:
    """The child's side: :meth:`acquire` one of ``count`` slots in ``directory``."""

    def __init__(self, directory: str, count: int, *, margin: float = MARGIN,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.directory = directory
        self.count = count
        self.margin = margin
        self._monotonic = monotonic
        self._sleep = sleep

    def acquire(self, deadline: float) -> int:
        """A descriptor holding a free slot, to give to :meth:`release`.

        Tries every slot (starting at one picked by the pid, so that runs spread out),
        then again after a short wait, until ``margin`` seconds before ``deadline``
        (monotonic seconds); raises :class:`SlotError` then, or at once when no slot file
        exists at all. The slots tried are the files the directory holds on each try (the
        spec's ``count`` only until then), opened afresh, so that a reload's new count
        applies, raised or lowered, to a child that is already waiting.
        """
        import fcntl

        wait = POLL_FIRST
        names = [f"{PREFIX}{i}" for i in range(self.count)]
        while True:
            found = 0
            first = os.getpid() % max(1, len(names))
            for k in range(len(names)):
                path = os.path.join(self.directory, names[(first + k) % len(names)])
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise SlotError(f"cannot open the request slot {path}: {exc.strerror} "
                                    "(max_concurrent_requests)") from None
                found += 1
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise SlotError(f"cannot lock the request slot {path}: "
                                        f"{exc.strerror} (max_concurrent_requests)") from None
                    continue
                return fd
            if not found:
                raise SlotError(f"no request slots in {self.directory} "
                                "(max_concurrent_requests; symbid makes them at start)")
            left = deadline - self.margin - self._monotonic()
            if left <= 0:
                raise SlotError("no request slot came free before the run's deadline: "
                                f"max_concurrent_requests ({len(names)}) requests were in "
                                "flight across all runs")
            self._sleep(min(wait, left))
            wait = min(wait * 2, POLL_MAX)
            names = self._present() or names

    def _present(self) -> list[str]:
        """The slot files the directory holds now (the daemon's current count)."""
        try:
            return sorted((n for n in os.listdir(self.directory)
                           if n.startswith(PREFIX) and n[len(PREFIX):].isdigit()),
                          key=lambda n: int(n[len(PREFIX):]))
        except OSError:
            return []

    @staticmethod
    def release(fd: int) -> None:
        """Give the slot back (closing its descriptor drops the lock)."""
        os.close(fd)
