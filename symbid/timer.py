"""Native waits for the scheduler loop.

The loop sleeps until an absolute wall-clock deadline (the earliest due slot).
On Linux this is a ``timerfd`` on ``CLOCK_REALTIME`` armed with
``TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET``: it fires at the deadline even
if the wall clock is stepped in between, and wakes at once with ``ECANCELED``
when someone sets the clock, so the loop can recompute (as systemd does). An
eventfd lets other threads wake the loop when jobs change. Where timerfd is
missing, a condition variable with a timeout computed from the injected clock
stands in; the ``cap`` bounds every sleep either way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import threading
from enum import Enum
from typing import Optional, Protocol

from symbid.clock import Clock


class Wake(str, Enum):
    DEADLINE = "deadline"  # the deadline (or the cap) was reached
    WOKEN = "woken"  # another thread called wake()
    CLOCK_SET = "clock_set"  # the wall clock was set discontinuously


class Waiter(Protocol):
    def wait_until(self, deadline_ms: Optional[int], cap_seconds: float) -> Wake:
        """Block until ``deadline_ms`` (epoch ms), a wake-up, or ``cap_seconds`` elapsed."""
        ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


_CLOCK_REALTIME = 0
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
_TFD_TIMER_ABSTIME = 1
_TFD_TIMER_CANCEL_ON_SET = 2
_FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        lib.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.timerfd_create.restype = ctypes.c_int
        lib.timerfd_settime.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p,
        ]
        lib.timerfd_settime.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return lib


class _WakeFd:
    """A readable fd other threads can poke: eventfd, or a pipe where that is missing."""

    def __init__(self) -> None:
        self._write_fd: int
        if hasattr(os, "eventfd"):
            self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._write_fd = self.fd
        else:  # pragma: no cover - Python < 3.10
            self.fd, self._write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def poke(self) -> None:
        try:
            os.write(self._write_fd, (1).to_bytes(8, "little"))
        except BlockingIOError:  # already pending
            pass

    def drain(self) -> None:
        try:
            while os.read(self.fd, 64):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)
        if self._write_fd != self.fd:
            os.close(self._write_fd)


class TimerfdWaiter:
    """The Linux waiter: timerfd (absolute, cancel-on-set) plus a wake fd."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        fd = lib.timerfd_create(_CLOCK_REALTIME, _TFD_CLOEXEC | _TFD_NONBLOCK)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self._tfd = fd
        self._wake = _WakeFd()
        self._poll = select.poll()
        self._poll.register(self._tfd, select.POLLIN)
        self._poll.register(self._wake.fd, select.POLLIN)

    def _arm(self, deadline_ms: int) -> None:
        spec = _Itimerspec()
        spec.it_value.tv_sec = deadline_ms // 1000
        spec.it_value.tv_nsec = (deadline_ms % 1000) * 1_000_000
        flags = _TFD_TIMER_ABSTIME | _TFD_TIMER_CANCEL_ON_SET
        if self._lib.timerfd_settime(self._tfd, flags, ctypes.byref(spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def _read_timer(self) -> Wake:
        try:
            os.read(self._tfd, 8)
        except BlockingIOError:
            return Wake.DEADLINE
        except OSError as exc:
            if exc.errno == errno.ECANCELED:
                return Wake.CLOCK_SET
            raise
        return Wake.DEADLINE

    def wait_until(self, deadline_ms: Optional[int], cap_seconds: float) -> Wake:
        # With nothing due the timer is still armed (far ahead), so that a clock
        # change is noticed while idle.
        self._arm(max(deadline_ms if deadline_ms is not None else _FAR_FUTURE_MS, 1))
        events = self._poll.poll(max(0, int(cap_seconds * 1000)))
        result = Wake.DEADLINE
        for fd, _ in events:
            if fd == self._wake.fd:
                self._wake.drain()
                if result is Wake.DEADLINE:
                    result = Wake.WOKEN
            elif fd == self._tfd:
                timer = self._read_timer()
                if timer is Wake.CLOCK_SET:
                    result = Wake.CLOCK_SET
        return result

    def wake(self) -> None:
        self._wake.poke()

    def close(self) -> None:
        os.close(self._tfd)
        self._wake.close()


class ConditionWaiter:
    """Portable fallback: a condition wait whose timeout comes from the injected clock.

    It cannot see the wall clock being set; the cap bounds how late that is noticed.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._poked = False

    def wait_until(self, deadline_ms: Optional[int], cap_seconds: float) -> Wake:
        timeout = cap_seconds
        if deadline_ms is not None:
            timeout = min(timeout, max(0.0, (deadline_ms - self._clock.now()) / 1000))
        with self._cond:
            if not self._poked:
                self._cond.wait(timeout)
            woken, self._poked = self._poked, False
        return Wake.WOKEN if woken else Wake.DEADLINE

    def wake(self) -> None:
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def close(self) -> None:
        pass


def make_waiter(clock: Clock, *, native: bool = True) -> Waiter:
    """The best waiter this system offers (timerfd on Linux)."""
    if native:
        lib = _libc()
        if lib is not None:
            try:
                return TimerfdWaiter(lib)
            except OSError:
                pass
    return ConditionWaiter(clock)
