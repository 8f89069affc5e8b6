"""Session contexts in the store: one per job, written with a run's final state, removed
with the job, surviving a reopen, never brought back by a run that was going during a
clear; a run's llm usage and tool calls; a schema-4 store migrates forward."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from symbid.model import Job, RunStatus, SessionMode, Trigger, new_id
from symbid.records import Iteration, LlmUsage, Run, SessionContext, ToolCall, Turn
from symbid.store import SCHEMA_VERSION, Advance, Finish, SqliteJobStore
from symbid.store.schema import SQLITE_MIGRATIONS

T0 = 1_772_323_200_000


def make_job(store: SqliteJobStore, name: str = "job") -> Job:
    return store.create_job(Job(id=new_id(), name=name, agent_id="a", cron_expr="* * * * *",
                                next_run=T0, created_at=T0, updated_at=T0))


def claimed_run(store: SqliteJobStore, job: Job) -> Run:
    run = Run(id=new_id(), job_id=job.id, slot=T0, attempt=1, trigger=Trigger.SCHEDULE,
              status=RunStatus.PENDING, created_at=T0)
    current = store.get_job(job.id)
    return store.claim([Advance(job.id, current.version, T0 + 60_000, ((T0, T0),),
                                (run,))], [])[0]


def shared(job: Job, run_id: str = "r1") -> SessionContext:
    return SessionContext(job_id=job.id, mode=SessionMode.SHARED_PERSISTENT, summary="s1",
                          history=(Turn("in", "out", run_id, T0),), dropped=2,
                          run_id=run_id, updated_at=T0)


def test_a_context_written_with_a_runs_final_state_is_read_back(tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    job = make_job(store)
    run = claimed_run(store, job)
    ctx = shared(job, run.id)
    final = run.replace(status=RunStatus.SUCCEEDED, finished_at=T0 + 5, summary="s1",
                        iterations=(Iteration(1, RunStatus.SUCCEEDED, "w", 3),),
                        stop_reason="sleep", usage=LlmUsage(12, 5, 2),
                        tool_calls=(ToolCall("probe", '{"t": 1}', 0, 7, None, "c1", 1),
                                    ToolCall("nope", "{}", None, 0, "not declared", "c2")))
    store.finish([Finish(run=final, context=ctx)])
    assert store.get_context(job.id) == ctx
    got = store.get_run(run.id)
    assert got.usage == LlmUsage(12, 5, 2)
    assert got.tool_calls == final.tool_calls
    assert got.summary == "s1"
    assert got.iterations == (Iteration(1, RunStatus.SUCCEEDED, "w", 3),)
    assert got.stop_reason == "sleep"


def test_a_context_survives_reopening_the_store(tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    job = make_job(store)
    assert store.put_context(shared(job))
    store.close()
    assert SqliteJobStore(str(tmp_path / "s.db")).get_context(job.id) == shared(job)


def test_a_context_goes_with_its_job(tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    job = make_job(store)
    store.put_context(shared(job))
    store.delete_job(job.id)
    assert store.get_context(job.id) is None
    other = make_job(store, "other")
    store.put_context(shared(other))
    store.apply_changes([], [], [other.id])
    assert store._query("SELECT COUNT(*) FROM contexts")[0][0] == 0


def test_a_context_for_a_deleted_job_is_not_written(tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    job = make_job(store)
    store.delete_job(job.id)
    assert not store.put_context(shared(job))


def test_clearing_a_context_empties_it_and_says_whether_there_was_one(tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    job = make_job(store)
    store.put_context(shared(job))
    assert store.clear_context(job.id, T0 + 9)
    cleared = store.get_context(job.id)
    assert cleared is not None
    assert (cleared.summary, cleared.history, cleared.run_id, cleared.generation) == \
        (None, (), None, 1)
    assert not store.clear_context(job.id, T0 + 10)


def test_a_run_that_was_going_during_a_clear_does_not_bring_the_context_back(
        tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    job = make_job(store)
    store.put_context(shared(job))
    started_from = store.get_context(job.id)
    assert started_from is not None and started_from.generation == 0
    run = claimed_run(store, job)
    store.clear_context(job.id, T0 + 1)  # while the run goes
    final = run.replace(status=RunStatus.SUCCEEDED, finished_at=T0 + 5, summary="s2")
    store.finish([Finish(run=final, context=shared(job, run.id))])  # generation 0
    after = store.get_context(job.id)
    assert after is not None and (after.summary, after.history) == (None, ())
    assert store.get_run(run.id).status is RunStatus.SUCCEEDED  # the run itself is kept
    # the next run starts from generation 1 and its context is written
    nxt = dataclasses.replace(shared(job, "r2"), generation=1)
    assert store.put_context(nxt)
    assert store.get_context(job.id) == nxt


def test_clearing_a_context_no_run_left_yet_still_wins_over_a_run_going(
        tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "s.db"))
    job = make_job(store)
    run = claimed_run(store, job)
    assert not store.clear_context(job.id, T0 + 1)
    final = run.replace(status=RunStatus.SUCCEEDED, finished_at=T0 + 5, summary="s2")
    store.finish([Finish(run=final, context=shared(job, run.id))])
    after = store.get_context(job.id)
    assert after is not None and after.summary is None


def test_a_store_from_schema_4_gains_contexts_iterations_and_llm_records(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number in range(4):
        for statement in SQLITE_MIGRATIONS[number].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO jobs (id, name, agent_id, cron_expr, timezone, status, "
                 "definition, created_at, updated_at) VALUES ('j', 'n', 'a', '* * * * *', "
                 "'UTC', 'active', '{}', 0, 0)")
    conn.execute("INSERT INTO runs (id, job_id, slot, attempt, trigger_kind, status, "
                 "created_at) VALUES ('r', 'j', 0, 1, 'schedule', 'succeeded', 0)")
    conn.close()
    store = SqliteJobStore(path)
    assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 12
    assert store.get_context("j") is None
    got = store.get_run("r")
    assert (got.iterations, got.usage, got.tool_calls) == ((), None, ())
