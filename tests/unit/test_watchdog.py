"""The watchdog is fed only while the scheduler loop makes progress."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

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


def test_a_tcp_token_that_is_not_printable_ascii_is_refused_at_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-ASCII tokens would be compared as '?'s: refused, naming where it comes from."""
    from symbid.config import ApiConfig
    from symbid.errors import SymbidError

    monkeypatch.setenv("OPS_TOKEN", "пароль-0123456789")
    monkeypatch.delenv("SYMBI_API_KEY", raising=False)
    daemon = Daemon(Config(api=ApiConfig(tokens={"ops": "${OPS_TOKEN}"})))
    with pytest.raises(SymbidError, match=r"api\.tokens\.ops: a token must be printable ASCII"):
        daemon._read_tokens()
