"""The watchdog is fed only while the scheduler loop makes progress."""

from __future__ import annotations

from types import SimpleNamespace

from symbid.config import Config
from symbid.daemon import Daemon
from tests.fakes import FakeClock


def test_a_hung_scheduler_loop_stops_feeding_the_watchdog() -> None:
    clock = FakeClock()
    daemon = Daemon(Config(), clock=clock)
    scheduler = SimpleNamespace(last_pass=clock.monotonic())
    daemon.engine = SimpleNamespace(scheduler=scheduler)  # type: ignore[assignment]
    assert daemon.loop_is_alive(within=10)
    clock.advance(9)
    assert daemon.loop_is_alive(within=10)
    clock.advance(2)  # the loop has not come round for 11 s
    assert not daemon.loop_is_alive(within=10)
    scheduler.last_pass = clock.monotonic()  # it came round again
    assert daemon.loop_is_alive(within=10)


def test_the_loop_sleeps_well_within_the_watchdog_even_after_a_reload() -> None:
    from dataclasses import replace

    from symbid.config import SchedulerConfig

    config = replace(Config(), scheduler=SchedulerConfig(tick_interval_seconds=60))
    daemon = Daemon(config, clock=FakeClock())
    daemon._watchdog = 5.0  # WatchdogSec=10
    assert daemon._scheduler_config().tick_interval_seconds == 2.5
    daemon._watchdog = None
    assert daemon._scheduler_config().tick_interval_seconds == 60

