"""Which runs may have started: the durable marker that makes a restart exact.

A run's id is appended here just before its child process is spawned, and is
only ever forgotten once the store records the run ``running`` (or final). So at start-up a
``pending`` run whose id is not here provably never started: it is started
after the restart (same row, slot and jitter deadline) instead of being written
off. Only a run that is here (or ``running`` in the store) may have started, and
is recorded ``interrupted``.

Cheap: one ``write(2)`` of 37 bytes per run, no fsync. The kernel keeps the
bytes across the daemon's own crash (SIGKILL, OOM kill), which is what the log
is for. A power loss can drop the last writes, so every file carries the boot
id it was written under: after a reboot the log is incomplete, and a pending run
counts as never started only if it was not due before the machine booted.

Two generation files take turns; a full one is emptied once every run it names
has been settled, so the log stays small however long the daemon runs.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from symbid.errors import SymbidError
from symbid.records import Run

log = logging.getLogger(__name__)


class StartLogError(SymbidError):
    code = "start_log"

_HEADER = "symbid start log 1 boot="
_FILES = ("starts-0.log", "starts-1.log")
_ROTATE_BYTES = 1 << 20


def boot_id() -> Optional[str]:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def boot_time_ms() -> Optional[int]:
    """When this boot began (wall clock, epoch ms), from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("btime "):
                    return int(line.split()[1]) * 1000
    except (OSError, ValueError):
        pass
    return None


@dataclass(frozen=True)
class StartRecord:
    """What the previous daemon left: the runs it may have started."""

    ids: frozenset[str]
    trusted: bool  # written in this boot: complete
    earlier_boot: bool  # written in an earlier boot: may lack the last writes
    boot_time_ms: Optional[int]  # when this boot began

    def clock_checked(self, latest_recorded: Optional[int]) -> StartRecord:
        """The record, distrusting this boot's start time if it lies before the latest
        instant the store recorded: the wall clock came up behind (no RTC), so it cannot
        tell which runs were due before the previous daemon died."""
        if self.earlier_boot and self.boot_time_ms is not None and \
                latest_recorded is not None and self.boot_time_ms < latest_recorded:
            return StartRecord(self.ids, self.trusted, self.earlier_boot, None)
        return self

    def may_have_started(self, run: Run) -> bool:
        if run.id in self.ids:
            return True
        if self.trusted:
            return False
        due = run.not_before if run.not_before is not None else run.slot
        # The daemon of an earlier boot died before this boot began: a run that was
        # not due by then cannot have started. Without a log at all, nothing is known.
        return not (self.earlier_boot and self.boot_time_ms is not None
                    and due > self.boot_time_ms)


class StartLog:
    """The start markers of one daemon, in ``directory`` (the state directory's)."""

    def __init__(self, directory: str, *, boot: Optional[str] = None,
                 rotate_bytes: int = _ROTATE_BYTES) -> None:
        self.directory = directory
        self._boot = boot if boot is not None else boot_id()
        self._rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._current = 0
        self._size = 0
        self._gen: dict[str, int] = {}  # marked, not yet settled: run id -> file
        self._unsettled = [0, 0]

    def _path(self, index: int) -> str:
        return os.path.join(self.directory, _FILES[index])

    def read(self) -> StartRecord:
        """The markers on disk (call before :meth:`reset`)."""
        ids: set[str] = set()
        boots: list[Optional[str]] = []
        for index in range(len(_FILES)):
            try:
                with open(self._path(index), encoding="ascii", errors="replace") as fh:
                    lines = fh.read().splitlines()
            except FileNotFoundError:
                continue
            if not lines or not lines[0].startswith(_HEADER):
                boots.append(None)
                continue
            boots.append(lines[0][len(_HEADER):].strip() or None)
            ids.update(line.strip() for line in lines[1:] if line.strip())
        known = bool(boots) and all(b is not None for b in boots)
        same = known and self._boot is not None and all(b == self._boot for b in boots)
        return StartRecord(frozenset(ids), trusted=same, earlier_boot=known and not same,
                           boot_time_ms=boot_time_ms())

    def reset(self) -> None:
        """Start afresh: every run of the previous daemon has been decided.

        Raises :class:`StartLogError` when the log cannot be written.
        """
        with self._lock:
            try:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                self._close_fd()
                self._open(0, truncate=True)
                try:
                    os.unlink(self._path(1))
                except FileNotFoundError:
                    pass
            except OSError as exc:
                raise StartLogError(f"start log {self.directory}: {exc.strerror or exc}; "
                                    "check the state directory's owner and free space") \
                    from None
            self._gen.clear()
            self._unsettled = [0, 0]

    def _open(self, index: int, *, truncate: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        if truncate:
            flags |= os.O_TRUNC
        fd = os.open(self._path(index), flags, 0o600)
        size = os.fstat(fd).st_size
        if size == 0:
            header = f"{_HEADER}{self._boot or ''}\n".encode()
            try:
                self._write_whole(fd, header, 0)
            except OSError:
                os.close(fd)
                raise
            size = len(header)
        self._fd, self._current, self._size = fd, index, size

    @staticmethod
    def _write_whole(fd: int, data: bytes, size: int) -> None:
        """Append ``data`` whole or not at all: a short write (a full disk) is cut back,
        so that the next marker is not glued onto a partial one."""
        try:
            written = os.write(fd, data)
        except OSError:
            os.ftruncate(fd, size)
            raise
        if written != len(data):  # the disk took part of it: it is full
            os.ftruncate(fd, size)
            raise OSError(errno.ENOSPC, f"short write to the start log ({written} of "
                          f"{len(data)} bytes)")

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def mark(self, run_id: str) -> None:
        """The run may start from now on. Raises OSError when that cannot be recorded
        (and then the run must not start)."""
        line = f"{run_id}\n".encode()
        with self._lock:
            if self._fd is None:
                # Not reset yet: append to what is there, which can only add markers.
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                self._open(self._current, truncate=False)
            assert self._fd is not None
            if self._size > self._rotate_bytes and self._unsettled[1 - self._current] == 0:
                self._close_fd()
                self._open(1 - self._current, truncate=True)
            try:
                self._write_whole(self._fd, line, self._size)
            except OSError as exc:  # the run must not start; say where
                raise OSError(exc.errno, f"{exc.strerror or exc} in {self.directory}") from exc
            self._size += len(line)
            if run_id not in self._gen:
                self._gen[run_id] = self._current
                self._unsettled[self._current] += 1

    def settle(self, run_ids: Iterable[str]) -> None:
        """These runs are recorded running or final in the store: the store itself now says
        they may have started, so their markers may go."""
        with self._lock:
            for run_id in run_ids:
                index = self._gen.pop(run_id, None)
                if index is not None:
                    self._unsettled[index] -= 1

    def close(self) -> None:
        with self._lock:
            self._close_fd()
