"""Native waits: timerfd + eventfd on Linux, a condition variable elsewhere.

These use real time, but only short waits; timing bounds are generous and only ever say
"it returned" or "it did not return early". The system clock is never changed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from symbid.clock import SystemClock
from symbid.timer import ConditionWaiter, TimerfdWaiter, Waiter, Wake, make_waiter
from tests.fakes import FakeClock

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux")

# Far enough to notice if it were waited for, short enough never to hang the suite for long.
FAR_MS = 60_000
CAP_S = 5.0
QUICK_S = 1.0  # what "returned at once" means here: well under the cap


@pytest.fixture
def native() -> Iterator[Waiter]:
    waiter = make_waiter(SystemClock())
    yield waiter
    waiter.close()


def _elapsed(start: float) -> float:
    return time.monotonic() - start


@linux_only
def test_make_waiter_picks_the_timerfd_waiter_on_linux(native: Waiter) -> None:
    assert isinstance(native, TimerfdWaiter)


@linux_only
def test_a_deadline_100_ms_ahead_returns_deadline_no_sooner(native: Waiter) -> None:
    clock = SystemClock()
    start = clock.now()

    result = native.wait_until(start + 100, CAP_S)

    assert result is Wake.DEADLINE
    assert clock.now() - start >= 90  # it waited for the deadline, give or take a few ms


@linux_only
def test_a_deadline_in_the_past_returns_deadline_at_once(native: Waiter) -> None:
    start = time.monotonic()

    assert native.wait_until(SystemClock().now() - 5_000, CAP_S) is Wake.DEADLINE
    assert native.wait_until(0, CAP_S) is Wake.DEADLINE  # the epoch, not "disarm the timer"
    assert _elapsed(start) < QUICK_S


@linux_only
def test_wake_from_another_thread_interrupts_a_far_deadline(native: Waiter) -> None:
    waker = threading.Timer(0.05, native.wake)
    start = time.monotonic()
    waker.start()
    try:
        result = native.wait_until(SystemClock().now() + FAR_MS, CAP_S)
    finally:
        waker.cancel()
        waker.join()

    assert result is Wake.WOKEN
    assert _elapsed(start) < QUICK_S


@linux_only
def test_a_wake_before_the_wait_makes_the_next_wait_return_at_once(native: Waiter) -> None:
    native.wake()
    native.wake()  # wakes coalesce
    start = time.monotonic()

    assert native.wait_until(SystemClock().now() + FAR_MS, CAP_S) is Wake.WOKEN
    assert _elapsed(start) < QUICK_S
    # the wake was consumed: the next wait runs to its deadline
    assert native.wait_until(SystemClock().now() + 20, CAP_S) is Wake.DEADLINE


@linux_only
def test_no_deadline_waits_for_the_cap_and_returns_deadline(native: Waiter) -> None:
    start = time.monotonic()

    result = native.wait_until(None, 0.1)

    assert result is Wake.DEADLINE
    assert 0.09 <= _elapsed(start) < CAP_S


def test_make_waiter_without_native_gives_the_condition_waiter() -> None:
    waiter = make_waiter(FakeClock(), native=False)
    try:
        assert isinstance(waiter, ConditionWaiter)
    finally:
        waiter.close()


def test_the_condition_waiter_does_not_wait_for_a_deadline_equal_to_the_injected_now() -> None:
    # The fake clock is far in the future: measured on the real clock this deadline would be
    # decades away and the wait would last the whole cap.
    clock = FakeClock("2100-06-01T00:00:00Z")
    waiter = make_waiter(clock, native=False)
    start = time.monotonic()

    assert waiter.wait_until(clock.now(), CAP_S) is Wake.DEADLINE
    assert _elapsed(start) < QUICK_S


def test_the_condition_waiter_measures_a_future_deadline_on_the_injected_clock() -> None:
    # The fake clock is far in the past: on the real clock this deadline would be long gone
    # and the wait would return at once; on the injected clock it is a minute away, so the
    # wait lasts the cap.
    clock = FakeClock("1990-01-01T00:00:00Z")
    waiter = make_waiter(clock, native=False)
    start = time.monotonic()

    assert waiter.wait_until(clock.now() + FAR_MS, 0.15) is Wake.DEADLINE
    assert 0.1 <= _elapsed(start) < CAP_S


def test_the_condition_waiter_is_woken_from_another_thread() -> None:
    clock = FakeClock()
    waiter = make_waiter(clock, native=False)
    waker = threading.Timer(0.05, waiter.wake)
    start = time.monotonic()
    waker.start()
    try:
        result = waiter.wait_until(clock.now() + FAR_MS, CAP_S)
    finally:
        waker.cancel()
        waker.join()

    assert result is Wake.WOKEN
    assert _elapsed(start) < QUICK_S


def test_a_wake_before_a_condition_wait_makes_it_return_at_once() -> None:
    clock = FakeClock()
    waiter = make_waiter(clock, native=False)
    waiter.wake()
    start = time.monotonic()

    assert waiter.wait_until(clock.now() + FAR_MS, CAP_S) is Wake.WOKEN
    assert _elapsed(start) < QUICK_S
    assert waiter.wait_until(clock.now(), CAP_S) is Wake.DEADLINE  # consumed


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@linux_only
def _anon_fds() -> dict[str, int]:
    """How many timerfds and eventfds this process holds (other tests' threads may
    open and close ordinary files meanwhile, so only these kinds are counted)."""
    kinds = {"anon_inode:[timerfd]": 0, "anon_inode:[eventfd]": 0}
    for fd in _open_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target in kinds:
            kinds[target] += 1
    return kinds


def test_close_releases_the_waiters_file_descriptors() -> None:
    before = _anon_fds()

    waiter = make_waiter(SystemClock())
    during = _anon_fds()
    waiter.close()
    after = _anon_fds()

    assert during["anon_inode:[timerfd]"] == before["anon_inode:[timerfd]"] + 1
    assert during["anon_inode:[eventfd]"] == before["anon_inode:[eventfd]"] + 1
    assert after == before
