"""The watchdog is fed only while the scheduler loop makes progress."""

from __future__ import annotations

from pathlib import Path
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



def test_a_running_daemon_prunes_its_audit_trail_every_hour(tmp_path: Path) -> None:
    from symbid.daemon import AUDIT_PRUNE_EVERY
    from symbid.store import SqliteJobStore
    from symbid.store.audit import AuditEvent, insert_audit

    clock = FakeClock("2027-03-01T00:00:00Z")
    daemon = Daemon(Config(), clock=clock)  # [audit] retention_days = 365
    store = SqliteJobStore(str(tmp_path / "state.db"))
    daemon.engine = SimpleNamespace(store=store)  # type: ignore[assignment]
    daemon.housekeep()  # as at start: pruned, nothing to drop
    day = 86_400_000
    with store._write() as conn:
        # 365 days old in half an hour
        insert_audit(conn, [AuditEvent("CronJobCreated", "alice")],
                     clock.now() - 365 * day + 1_800_000)
    clock.advance(AUDIT_PRUNE_EVERY - 1)
    daemon.housekeep()
    assert len(store.query_audit()) == 1  # past retention, but not yet an hour on
    clock.advance(1)
    daemon.housekeep()
    assert store.query_audit() == []
