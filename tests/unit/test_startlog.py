"""The start log: which runs may have started, across a crash of the daemon."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from symbid.model import RunStatus, Trigger
from symbid.records import Run
from symbid.startlog import StartLog, StartRecord, boot_id, boot_time_ms


def pending(run_id: str, due: int = 0) -> Run:
    return Run(id=run_id, job_id="j", slot=due, attempt=1, trigger=Trigger.SCHEDULE,
               status=RunStatus.PENDING, created_at=due, not_before=due)


def test_marks_survive_the_process_and_are_trusted_in_the_same_boot(tmp_path: Path) -> None:
    log = StartLog(str(tmp_path))
    log.reset()
    log.mark("run-a")
    # the daemon dies here: nothing is closed or flushed
    record = StartLog(str(tmp_path)).read()
    assert record.trusted and record.ids == {"run-a"}
    assert record.may_have_started(pending("run-a"))
    assert not record.may_have_started(pending("run-b"))


def test_a_reset_forgets_the_previous_daemons_marks(tmp_path: Path) -> None:
    log = StartLog(str(tmp_path))
    log.reset()
    log.mark("run-a")
    log.reset()
    assert StartLog(str(tmp_path)).read().ids == frozenset()


def test_without_any_log_nothing_is_known(tmp_path: Path) -> None:
    record = StartLog(str(tmp_path / "never-written")).read()
    assert not record.trusted and not record.earlier_boot
    assert record.may_have_started(pending("run-a"))


def test_after_a_reboot_only_runs_due_after_the_boot_provably_never_started(
    tmp_path: Path,
) -> None:
    before = StartLog(str(tmp_path), boot="an-earlier-boot")
    before.reset()
    before.mark("run-a")
    record = StartLog(str(tmp_path), boot="this-boot").read()
    assert not record.trusted and record.earlier_boot
    booted = 1_800_000_000_000
    record = StartRecord(record.ids, record.trusted, record.earlier_boot, booted)
    assert record.may_have_started(pending("run-a", due=booted + 60_000))  # it is marked
    assert record.may_have_started(pending("run-b", due=booted - 1))  # it may have been lost
    assert not record.may_have_started(pending("run-c", due=booted + 1))


def test_the_log_rotates_once_every_run_of_the_older_file_is_settled(tmp_path: Path) -> None:
    log = StartLog(str(tmp_path), boot="boot", rotate_bytes=200)
    log.reset()
    ids = [f"run-{i:03d}-{'x' * 30}" for i in range(60)]
    for run_id in ids[:10]:
        log.mark(run_id)
    log.settle(ids[:9])  # ids[9] is still starting
    for run_id in ids[10:30]:
        log.mark(run_id)
        log.settle([run_id])
    assert ids[9] in StartLog(str(tmp_path), boot="boot").read().ids  # kept while open
    log.settle([ids[9]])
    for run_id in ids[30:]:
        log.mark(run_id)
        log.settle([run_id])
    sizes = [p.stat().st_size for p in tmp_path.glob("starts-*.log")]
    assert max(sizes) < 200 + 3 * 40  # turned over: 60 markers of 40 bytes are not all kept


def test_the_machine_facts_are_read() -> None:
    assert boot_id()
    assert (boot_time_ms() or 0) > 1_000_000_000_000


def test_a_start_log_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    from symbid.startlog import StartLogError

    blocker = tmp_path / "start-log"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(StartLogError, match=r"start log .*start-log"):
        StartLog(str(blocker)).reset()


def test_a_long_run_does_not_keep_the_log_from_turning_over(tmp_path: Path) -> None:
    from tests.harness import Harness

    h = Harness(tmp_path, start="2026-12-31T23:59:30Z")
    h.sched.runs._start_log._rotate_bytes = 300
    h.launcher.behaviour = lambda job, run: None  # runs stay running
    h.add("long", cron="0 0 1 1 *")
    h.add("short", cron="* * * * *")
    h.run_until("2027-01-01T00:00:00Z")  # "long" starts and never ends
    for minute in range(1, 40):
        for rid in list(h.launcher.running):
            if h.launcher.running[rid][0].name == "short":
                h.launcher.finish(rid, RunStatus.SUCCEEDED)
        h.run_until(f"2027-01-01T00:{minute:02d}:00Z")
    sizes = [p.stat().st_size for p in (tmp_path / "start-log").glob("starts-*.log")]
    assert max(sizes) < 1000  # 40 markers of 37 bytes would not fit without turning over


def test_a_boot_time_before_what_the_store_recorded_proves_nothing(tmp_path: Path) -> None:
    record = StartRecord(frozenset(), trusted=False, earlier_boot=True,
                         boot_time_ms=1_700_000_000_000)
    late = pending("run-a", due=1_700_000_100_000)
    assert not record.may_have_started(late)
    # the store saw the previous daemon alive after that "boot": the clock came up behind
    assert record.clock_checked(1_700_000_200_000).may_have_started(late)
    assert not record.clock_checked(1_699_000_000_000).may_have_started(late)


def test_a_short_write_is_cut_back_so_the_next_marker_stays_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    log = StartLog(str(tmp_path))
    log.reset()
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, data[:10]))  # a full disk
    with pytest.raises(OSError, match="short write") as refused:
        log.mark("a" * 36)
    # a full disk, said as one (storage_full, the run waits), naming where
    assert refused.value.errno == errno.ENOSPC and str(tmp_path) in str(refused.value)
    monkeypatch.setattr(os, "write", real)
    log.mark("b" * 36)
    assert StartLog(str(tmp_path)).read().ids == {"b" * 36}
