"""agents.d sync: a pure plan (create / update / remove / unchanged) applied in one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbid.dsl import load_dir
from symbid.dsl.sync import plan_sync
from symbid.errors import Conflict
from symbid.jobs import JobService, SyncResult
from symbid.model import Job, JobStatus, RunStatus, Trigger, format_instant, new_id
from symbid.records import Run
from symbid.store import Advance, SqliteJobStore
from tests.fakes import FakeClock

AGENTS = 'agent worker { command: ["/bin/true"] }\n'
Env = tuple[Path, SqliteJobStore, JobService, FakeClock]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    agents_dir = tmp_path / "agents.d"
    agents_dir.mkdir()
    (agents_dir / "agents.symbi").write_text(AGENTS)
    clock = FakeClock("2026-03-01T00:00:00Z")
    store = SqliteJobStore(str(tmp_path / "state.db"))
    return agents_dir, store, JobService(store, clock), clock


def schedule(name: str, cron: str = "0 9 * * *", extra: str = "") -> str:
    return f'schedule {{\n  name: "{name}"\n  agent: "worker"\n  cron: "{cron}"\n{extra}}}\n'


def sync(env: Env) -> SyncResult:
    agents_dir, _, service, clock = env
    return service.sync_files(load_dir(str(agents_dir), clock.now()))


def test_a_new_block_creates_a_job_with_its_next_run(env: Env) -> None:
    agents_dir, store, _, _ = env
    (agents_dir / "reports.symbi").write_text(schedule("daily-report"))
    result = sync(env)
    assert result.created == ["daily-report"]
    job = store.get_job("daily-report")
    assert job.source == "file:" + str(agents_dir / "reports.symbi")
    assert format_instant(job.next_run or 0) == "2026-03-01T09:00:00Z"


def test_loading_the_same_files_twice_changes_nothing(env: Env) -> None:
    agents_dir, store, _, _ = env
    (agents_dir / "reports.symbi").write_text(schedule("a") + schedule("b", "*/5 * * * *"))
    first = sync(env)
    before = {j.name: j for j in store.list_jobs()}
    second = sync(env)
    assert (first.created, second.created, second.updated, second.removed) == \
        (["a", "b"], [], [], [])
    assert second.unchanged == 2
    after = {j.name: j for j in store.list_jobs()}
    assert after == before  # same ids, same versions: nothing was written


def test_a_changed_block_updates_its_job_in_place(env: Env) -> None:
    agents_dir, store, service, clock = env
    path = agents_dir / "reports.symbi"
    path.write_text(schedule("daily-report"))
    sync(env)
    job = store.get_job("daily-report")
    # history, counters and the paused state must survive the update
    run = Run(id=new_id(), job_id=job.id, slot=job.next_run or 0, attempt=1,
              trigger=Trigger.SCHEDULE, status=RunStatus.SKIPPED, created_at=clock.now())
    store.claim([Advance(job.id, job.version, job.next_run, None, (run,))], ())
    service.pause("daily-report", actor="test")
    path.write_text(schedule("daily-report", "30 10 * * *", '  max_retries: 5\n'))
    result = sync(env)
    assert result.updated == ["daily-report"]
    new = store.get_job("daily-report")
    assert (new.id, new.cron_expr, new.max_retries, new.status) == \
        (job.id, "30 10 * * *", 5, JobStatus.PAUSED)
    assert format_instant(new.next_run or 0) == "2026-03-01T10:30:00Z"
    assert [r.id for r in store.history(job.id)] == [run.id]


def test_a_removed_block_removes_its_job(env: Env) -> None:
    agents_dir, store, _, _ = env
    path = agents_dir / "reports.symbi"
    path.write_text(schedule("a") + schedule("b"))
    sync(env)
    path.write_text(schedule("a"))
    result = sync(env)
    assert result.removed == ["b"]
    assert [j.name for j in store.list_jobs()] == ["a"]


def test_a_deleted_file_removes_its_jobs(env: Env) -> None:
    agents_dir, store, _, _ = env
    (agents_dir / "gone.symbi").write_text(schedule("gone"))
    sync(env)
    (agents_dir / "gone.symbi").unlink()
    assert sync(env).removed == ["gone"]
    assert store.find_job("gone") is None


def test_jobs_created_through_the_api_are_never_touched(env: Env) -> None:
    agents_dir, store, service, _ = env
    api_job = service.create(Job(id="", name="from-api", agent_id="worker", cron_expr="@daily"),
                             actor="test")
    (agents_dir / "reports.symbi").write_text(schedule("from-api") + schedule("mine"))
    result = sync(env)
    assert result.created == ["mine"]
    assert any("clashes with a job of the same name created through the API" in e
               for e in result.errors)
    assert store.get_job("from-api") == api_job
    (agents_dir / "reports.symbi").write_text("")
    assert sync(env).removed == ["mine"]
    assert store.get_job("from-api") == api_job


def test_a_broken_file_keeps_its_jobs_and_does_not_stop_the_others(env: Env) -> None:
    agents_dir, store, _, _ = env
    (agents_dir / "good.symbi").write_text(schedule("good"))
    (agents_dir / "fragile.symbi").write_text(schedule("fragile", "0 8 * * *"))
    sync(env)
    (agents_dir / "fragile.symbi").write_text(schedule("fragile", "0 7 * * *") + "schedule {")
    (agents_dir / "good.symbi").write_text(schedule("good", "0 6 * * *"))
    result = sync(env)
    assert result.updated == ["good"]
    assert result.failed_files == [str(agents_dir / "fragile.symbi")]
    assert any("fragile.symbi" in e and "never closed" in e for e in result.errors)
    assert store.get_job("fragile").cron_expr == "0 8 * * *"  # the last good definition
    assert store.get_job("good").cron_expr == "0 6 * * *"


def test_a_one_shot_whose_time_has_passed_is_not_created(env: Env) -> None:
    agents_dir, store, _, _ = env
    (agents_dir / "once.symbi").write_text(
        'schedule { name: "old", agent: "worker", at: "2026-02-15T14:30:00Z" }\n'
        'schedule { name: "new", agent: "worker", at: "2026-03-02T00:00:00Z" }\n')
    result = sync(env)
    assert result.created == ["new"]
    assert any("has passed" in w for w in result.warnings)
    assert store.find_job("old") is None


def test_an_update_planned_against_a_stale_version_writes_nothing(env: Env) -> None:
    agents_dir, store, service, clock = env
    path = agents_dir / "reports.symbi"
    path.write_text(schedule("a") + schedule("b"))
    sync(env)
    path.write_text(schedule("a", "0 1 * * *") + schedule("b", "0 2 * * *"))
    plan = plan_sync(load_dir(str(agents_dir), clock.now()), store.list_jobs(), clock.now())
    service.pause("b", actor="test")  # the job changes between planning and applying
    with pytest.raises(Conflict):
        store.apply_changes(plan.create, plan.update, [j.id for j in plan.remove])
    assert store.get_job("a").cron_expr == "0 9 * * *"  # all or nothing
    result = sync(env)  # the service plans again and succeeds
    assert sorted(result.updated) == ["a", "b"]


def test_a_file_job_that_cannot_be_shown_is_refused_and_the_stored_one_kept(env: Env) -> None:
    agents_dir, store, _, _ = env
    path = agents_dir / "far.symbi"
    path.write_text('schedule { name: "soon", agent: "worker", at: "2026-03-02T00:00:00Z" }\n')
    assert sync(env).created == ["soon"]
    path.write_text('schedule { name: "soon", agent: "worker", '
                    'at: "9999-12-31T23:00:00-05:00" }\n')
    result = sync(env)
    assert result.updated == [] and result.failed_files == [str(path)]
    assert any("far.symbi:1:" in e and "out of range" in e for e in result.errors)
    assert format_instant(store.get_job("soon").at or 0) == "2026-03-02T00:00:00Z"
