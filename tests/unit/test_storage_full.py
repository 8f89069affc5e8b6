"""A full disk under the state directory: the store's writes fail with ``storage_full``
(507) naming the directory, nothing committed is lost, the scheduler reports unhealthy and
keeps its slots, and all of it comes back by itself once there is room again."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbid.errors import StorageFull, is_disk_full
from symbid.model import Job, new_id
from symbid.store import SqliteJobStore
from tests import disks
from tests.harness import Harness


@pytest.fixture
def small_disk() -> Iterator[Path]:
    with disks.small_disk("4m") as where:
        yield where


def job(name: str) -> Job:
    return Job(id=new_id(), name=name, agent_id="agent", cron_expr="* * * * *", input="x" * 2000)


@pytest.mark.parametrize(("exc", "full"), [
    (sqlite3.OperationalError("database or disk is full"), True),
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (sqlite3.OperationalError("database is locked"), False),
    (ValueError("database or disk is full"), False),
])
def test_full_disks_are_told_from_other_failures(exc: BaseException, full: bool) -> None:
    assert is_disk_full(exc) is full


def test_a_full_disk_refuses_writes_with_storage_full_and_loses_nothing_committed(
        small_disk: Path) -> None:
    store = SqliteJobStore(str(small_disk / "symbid.db"))
    kept = store.create_job(job("kept"))
    assert store.storage_full() is None
    filler = disks.fill(small_disk)
    with pytest.raises(StorageFull) as refused:
        for i in range(1000):  # the WAL's room already taken runs out soon
            store.create_job(job(f"more-{i}"))
    assert (refused.value.code, refused.value.http_status) == ("storage_full", 507)
    assert str(small_disk) in refused.value.message and "recovers" in refused.value.message
    assert store.storage_full() == refused.value.message
    assert store.get_job(kept.id).name == "kept"  # committed: still there, still readable

    filler.unlink()
    store.create_job(job("after"))
    assert store.storage_full() is None
    assert store.get_job("after").name == "after"
    assert store.probe() is None
    store.close()
    conn = sqlite3.connect(small_disk / "symbid.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_the_scheduler_is_unhealthy_on_a_full_disk_and_runs_the_slot_once_room_returns(
        small_disk: Path) -> None:
    h = Harness(small_disk, start="2026-03-01T00:00:00Z")
    h.add("minutely", cron="* * * * *", input="x" * 2000)
    h.run_until("2026-03-01T00:01:00Z")
    assert [r.status.value for r in h.history("minutely")] == ["succeeded"]
    filler = disks.fill(small_disk)
    for minute in range(2, 30):  # claims fail: the slot is kept, not run, not doubled
        h.clock.set(f"2026-03-01T00:{minute:02d}:00Z")
        h.sched.pass_once(h.clock.now())  # the loop's pass: a failure is kept, not raised
        if h.store.storage_full() is not None:
            break
    status, error = h.sched.health(within=60)
    assert status == "unhealthy" and error is not None and error.startswith("storage full")
    code, body = h.api("POST", "/api/v1/schedule", {"name": "refused", "agent_id": "agent",
                                                    "cron_expr": "* * * * *"})
    assert code == 507 and body["error"]["code"] == "storage_full"
    assert h.api("GET", "/api/v1/health/scheduler")[1]["status"] == "unhealthy"
    recorded = len(h.history("minutely"))

    filler.unlink()
    h.run_until("2026-03-01T00:40:30Z")
    h.sched.pass_once(h.clock.now())
    assert h.sched.health(within=60) == ("healthy", None)
    slots = [r.slot for r in h.history("minutely")]
    assert len(slots) == len(set(slots)) and len(slots) > recorded
    assert h.history("minutely")[-1].status.value == "succeeded"
    code, body = h.api("POST", "/api/v1/schedule", {"name": "accepted", "agent_id": "agent",
                                                    "cron_expr": "* * * * *"})
    assert code == 201, body
    h.close()


def test_an_idle_daemon_sees_the_room_come_back_without_anything_else_writing(
        small_disk: Path) -> None:
    h = Harness(small_disk, start="2026-03-01T00:00:00Z")
    filler = disks.fill(small_disk)
    with pytest.raises(StorageFull):
        for i in range(1000):
            h.store.create_job(job(f"more-{i}"))
    assert h.sched.health(within=60)[0] == "unhealthy"
    filler.unlink()  # and nothing writes from now on: no job is due, nobody posts
    assert h.sched.health(within=60)[0] == "unhealthy"  # not tried again at once
    h.clock.advance(6)
    assert h.sched.health(within=60) == ("healthy", None)
    assert h.store.storage_full() is None
    h.close()


def test_a_run_whose_start_cannot_be_recorded_stays_pending_and_starts_when_room_returns(
        h: Harness) -> None:
    h.add("minutely", cron="* * * * *")
    h.launcher.no_room = True
    h.clock.set("2026-03-01T00:01:00Z")
    h.sched.pass_once(h.clock.now())
    (run,) = h.history("minutely")
    assert run.status.value == "pending" and h.launcher.started == []
    status, error = h.sched.health(within=60)
    assert status == "unhealthy" and "storage full" in (error or "")
    h.sched.pass_once(h.clock.now())  # and again: still waiting, not failed
    assert [r.status.value for r in h.history("minutely")] == ["pending"]

    h.launcher.no_room = False
    h.clock.set("2026-03-01T00:01:02Z")
    h.sched.pass_once(h.clock.now())
    h.sched.pass_once(h.clock.now())
    assert [(r.id, r.status.value) for r in h.history("minutely")] == [(run.id, "succeeded")]
    assert h.sched.health(within=60) == ("healthy", None)
