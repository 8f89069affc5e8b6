"""SqliteJobStore on real SQLite files: schema, jobs, claims, finishes, retention, threads."""

from __future__ import annotations

import ast
import json
import random
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symbid
from symbid.errors import Conflict, NotFound, SchemaTooNew, StoreError
from symbid.model import (
    CatchUp,
    DeliveryConfig,
    Job,
    JobStatus,
    Policy,
    RunStatus,
    SessionMode,
    Trigger,
    name_problem,
    new_id,
)
from symbid.records import Run
from symbid.store import SCHEMA_VERSION, Advance, Finish, RetryClaim, SqliteJobStore
from symbid.store.schema import SQLITE_MIGRATIONS, statements

T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z
MINUTE = 60_000


def make_job(name: str = "job", **kw: Any) -> Job:
    if "at" not in kw:
        kw.setdefault("cron_expr", "* * * * *")
    kw.setdefault("agent_id", "agent")
    kw.setdefault("next_run", T0 + MINUTE)
    kw.setdefault("created_at", T0)
    kw.setdefault("updated_at", T0)
    return Job(id=new_id(), name=name, **kw)


def make_run(job: Job, slot: int, attempt: int = 1, status: RunStatus = RunStatus.PENDING,
             trigger: Trigger = Trigger.SCHEDULE, **kw: Any) -> Run:
    return Run(id=new_id(), job_id=job.id, slot=slot, attempt=attempt, trigger=trigger,
               status=status, created_at=slot, **kw)


def done(run: Run, status: RunStatus = RunStatus.SUCCEEDED, ms: int = 10, **kw: Any) -> Run:
    """The final state of ``run``."""
    return run.replace(status=status, finished_at=run.slot + ms, execution_time_ms=ms,
                       exit_code=0 if status is RunStatus.SUCCEEDED else 1, **kw)


def claim_runs(store: SqliteJobStore, job: Job, *runs: Run,
               next_run: Optional[int] = None) -> list[Run]:
    """Claim ``runs`` for ``job`` at its current version, as the scheduler does."""
    current = store.get_job(job.id)
    spans = ((min(r.slot for r in runs), max(r.slot for r in runs)),) if runs else None
    return store.claim([Advance(job.id, current.version, next_run, spans, tuple(runs))], [])


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteJobStore]:
    s = SqliteJobStore(str(db_path))
    yield s
    s.close()


# --- connections and schema ----------------------------------------------------------------


def _pragmas(conn: Any) -> dict[str, Any]:
    names = ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
    return {n: conn.execute(f"PRAGMA {n}").fetchone()[0] for n in names}


def test_every_connection_uses_wal_foreign_keys_a_busy_timeout_and_full_sync(
    db_path: Path,
) -> None:
    store = SqliteJobStore(str(db_path), busy_timeout_ms=4321)
    try:
        expected = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 4321,
                    "synchronous": 2}  # 2 = FULL
        assert _pragmas(store._conn()) == expected
        # each thread gets its own connection; it must be set up the same way
        seen: list[dict[str, Any]] = []
        worker = threading.Thread(target=lambda: seen.append(_pragmas(store._conn())))
        worker.start()
        worker.join()
        assert seen == [expected]
    finally:
        store.close()


def test_a_new_database_is_stamped_with_the_current_schema_version(
    store: SqliteJobStore, db_path: Path
) -> None:
    assert SCHEMA_VERSION >= 1
    assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "runs"} <= tables


def test_reopening_a_current_database_changes_nothing(db_path: Path) -> None:
    first = SqliteJobStore(str(db_path))
    job = first.create_job(make_job("kept"))
    first.close()
    conn = raw(db_path)
    schema_sql = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    schema_before = conn.execute(schema_sql).fetchall()
    conn.close()

    second = SqliteJobStore(str(db_path))
    try:
        assert second._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert second.get_job("kept") == job
    finally:
        second.close()
    conn = raw(db_path)
    assert conn.execute(schema_sql).fetchall() == schema_before
    conn.close()


def test_a_version_1_database_is_migrated_keeping_its_slots_claimed(db_path: Path) -> None:
    from symbid.store.schema import SQLITE_MIGRATIONS

    conn = raw(db_path)
    for statement in SQLITE_MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO jobs (id, name, agent_id, cron_expr, timezone, status, definition, "
        "next_run, last_run, created_at, updated_at) VALUES ('j1', 'old', 'agent', "
        "'* * * * *', 'UTC', 'active', ?, ?, ?, ?, ?)",
        (json.dumps(make_job("x").definition()), T0 + 2 * MINUTE, T0 + MINUTE, T0, T0))
    conn.execute(  # a job whose last_run a sync had reset, with a slot on record
        "INSERT INTO jobs (id, name, agent_id, cron_expr, timezone, status, definition, "
        "next_run, created_at, updated_at) VALUES ('j2', 'reset', 'agent', '* * * * *', "
        "'UTC', 'active', ?, ?, ?, ?)",
        (json.dumps(make_job("x").definition()), T0 + 9 * MINUTE, T0, T0))
    conn.executemany(
        "INSERT INTO runs (id, job_id, slot, attempt, trigger_kind, status, created_at, "
        "started_at, finished_at) VALUES (?, ?, ?, 1, ?, 'succeeded', ?, ?, ?)",
        [("r1", "j1", T0 + MINUTE, "schedule", T0, T0 + MINUTE + 5, T0 + MINUTE + 7),
         ("r2", "j1", T0 + MINUTE + 1, "manual", T0, T0 + MINUTE + 9, T0 + MINUTE + 11),
         ("r3", "j2", T0 + 8 * MINUTE, "schedule", T0, None, None)])
    conn.close()

    store = SqliteJobStore(str(db_path))
    try:
        job = store.get_job("old")
        assert job.claimed == ((0, T0 + MINUTE),) and job.claimed_through == T0 + MINUTE
        assert job.last_run == T0 + MINUTE + 9  # now: the start of the last run that ran
        assert {r.id: r.key_space.value for r in store.history(job.id)} == \
            {"r1": "schedule", "r2": "manual"}
        assert store.get_job("reset").claimed_through == T0 + 8 * MINUTE
        # the dead man's switch's last success, kept apart from the prunable runs
        assert store._query("SELECT id, last_success_at FROM jobs ORDER BY id") == \
            [("j1", T0 + MINUTE + 11), ("j2", None)]
        # manual runs have their own keys now: one at the scheduled slot's instant fits
        again = store.insert_run(make_run(job, T0 + MINUTE, trigger=Trigger.MANUAL))
        assert again.slot == T0 + MINUTE
    finally:
        store.close()


def test_a_newer_database_is_refused_with_a_clear_error(db_path: Path) -> None:
    conn = raw(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(SchemaTooNew) as excinfo:
        SqliteJobStore(str(db_path))

    message = str(excinfo.value)
    assert str(db_path) in message
    assert "upgrade" in message.lower()
    assert isinstance(excinfo.value, StoreError)
    # the file was left as it was: no tables created, version untouched
    conn = raw(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_a_file_that_is_not_a_database_raises_a_store_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is certainly not an SQLite file\x00\xff\xfe" * 200)

    with pytest.raises(StoreError) as excinfo:
        SqliteJobStore(str(db_path))

    assert type(excinfo.value) is StoreError
    assert str(db_path) in str(excinfo.value)


def test_a_path_inside_a_missing_directory_raises_a_store_error_naming_the_directory(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no" / "such" / "dir"

    with pytest.raises(StoreError) as excinfo:
        SqliteJobStore(str(missing / "state.db"))

    assert str(missing) in str(excinfo.value)
    assert not missing.exists()


# --- jobs ----------------------------------------------------------------------------------


def test_a_created_job_is_found_by_id_and_by_name_with_all_its_settings(
    store: SqliteJobStore,
) -> None:
    job = make_job(
        "nightly", timezone="Europe/Berlin", session_mode=SessionMode.FULLY_EPHEMERAL,
        delivery=("webhook",), policy=Policy(require_approval=True, approvers=("ops",)),
        delivery_config=DeliveryConfig(webhook_url="https://example.invalid/hook",
                                       webhook_headers={"X-Token": "${TOKEN}"}),
        max_retries=3, jitter_seconds=1.5, catch_up=CatchUp.ALL, input="hello",
        source="file", last_run=T0,
    )
    assert store.create_job(job) == job

    assert store.find_job(job.id) == job
    assert store.find_job("nightly") == job
    assert store.get_job("nightly") == job
    assert store.find_job("nope") is None


def test_get_job_of_an_unknown_reference_raises_not_found(store: SqliteJobStore) -> None:
    store.create_job(make_job("present"))

    with pytest.raises(NotFound) as excinfo:
        store.get_job("absent")
    assert "absent" in str(excinfo.value)


def test_a_duplicate_name_raises_a_conflict_on_the_name_field(store: SqliteJobStore) -> None:
    store.create_job(make_job("twin"))

    with pytest.raises(Conflict) as excinfo:
        store.create_job(make_job("twin"))

    assert excinfo.value.field == "name"
    assert "twin" in str(excinfo.value)
    assert len(store.list_jobs()) == 1


def test_list_jobs_filters_by_status_agent_and_source(store: SqliteJobStore) -> None:
    store.create_job(make_job("b", agent_id="x", source="api"))
    store.create_job(make_job("a", agent_id="y", source="file"))
    store.create_job(make_job("c", agent_id="x", source="file", status=JobStatus.PAUSED))
    store.create_job(make_job("d", agent_id="y", source="api", status=JobStatus.PAUSED))

    def names(**kw: Any) -> list[str]:
        return [j.name for j in store.list_jobs(**kw)]

    assert names() == ["a", "b", "c", "d"]
    assert names(status=JobStatus.ACTIVE) == ["a", "b"]
    assert names(status=JobStatus.PAUSED) == ["c", "d"]
    assert names(agent_id="x") == ["b", "c"]
    assert names(source="file") == ["a", "c"]
    assert names(status=JobStatus.PAUSED, agent_id="y", source="api") == ["d"]
    assert names(status=JobStatus.COMPLETED) == []


def test_modify_job_changes_fields_and_bumps_version_and_updated_at(
    store: SqliteJobStore,
) -> None:
    job = store.create_job(make_job("old"))

    new = store.modify_job(
        "old", lambda j: j.replace(name="new", cron_expr="0 * * * *", status=JobStatus.PAUSED,
                                   input="changed", version=99, updated_at=0),
        now=T0 + 5000,
    )

    assert new.version == job.version + 1
    assert new.updated_at == T0 + 5000
    assert store.get_job(job.id) == new
    assert store.find_job("old") is None
    stored = store.get_job("new")
    assert (stored.cron_expr, stored.status, stored.input) == ("0 * * * *", JobStatus.PAUSED,
                                                               "changed")
    assert stored.created_at == job.created_at


def test_modify_job_keeps_the_jobs_run_history(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("history"))
    first, second = make_run(job, T0), make_run(job, T0 + MINUTE)
    assert claim_runs(store, job, first, second, next_run=T0 + 2 * MINUTE) == [first, second]
    store.finish([Finish(done(first))])

    store.modify_job(job.id, lambda j: j.replace(input="new input"), now=T0 + 3 * MINUTE)

    assert [r.id for r in store.history(job.id)] == [second.id, first.id]
    assert store.get_run(first.id).status is RunStatus.SUCCEEDED
    assert store.get_job(job.id).run_count == 1
    assert [r.id for r in store.open_runs()] == [second.id]


def test_renaming_a_job_onto_another_jobs_name_raises_a_conflict(store: SqliteJobStore) -> None:
    store.create_job(make_job("one"))
    store.create_job(make_job("two"))

    with pytest.raises(Conflict) as excinfo:
        store.modify_job("two", lambda j: j.replace(name="one"), now=T0)

    assert excinfo.value.field == "name"
    assert store.find_job("two") is not None


def test_modifying_an_unknown_job_raises_not_found(store: SqliteJobStore) -> None:
    with pytest.raises(NotFound):
        store.modify_job("ghost", lambda j: j, now=T0)


_REPLACE_SQL = re.compile(
    r"\bOR\s+REPLACE\b|\bREPLACE\s+INTO\b|\bON\s+CONFLICT\s+REPLACE\b", re.IGNORECASE
)


def _replacing_sql(source: str) -> list[tuple[int, str]]:
    """String literals (not docstrings, not comments) that would replace rows.

    ``REPLACE INTO`` is SQLite's alias of ``INSERT OR REPLACE``; both delete the old row
    first, which cascades a job's run history away.
    """
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings and _REPLACE_SQL.search(node.value)
    ]


def test_the_replace_detector_finds_replacing_sql_but_not_prose() -> None:
    code = (
        '"""Never use INSERT OR REPLACE."""\n'
        '# INSERT OR REPLACE in a comment is fine\n'
        'A = "insert or replace into jobs (id) values (?)"\n'
        'B = f"REPLACE INTO runs ({COLS}) VALUES (?)"\n'
        'C = "SELECT replace(name, \'a\', \'b\') FROM jobs"\n'
    )
    assert [line for line, _ in _replacing_sql(code)] == [3, 4]


def test_no_symbid_module_writes_with_insert_or_replace() -> None:
    root = Path(symbid.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert any(f.parent.name == "store" and f.name == "sql.py" for f in files)
    offenders = [
        f"{path.relative_to(root.parent)}:{line}: {text.strip()[:80]}"
        for path in files
        for line, text in _replacing_sql(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "rows must be updated, never replaced:\n" + "\n".join(offenders)


# --- claims --------------------------------------------------------------------------------


def test_claim_inserts_pending_and_skipped_runs_and_moves_the_schedule_on(
    store: SqliteJobStore,
) -> None:
    job = store.create_job(make_job("claimed", next_run=T0))
    missed = make_run(job, T0, status=RunStatus.SKIPPED, trigger=Trigger.CATCH_UP)
    latest = make_run(job, T0 + MINUTE, trigger=Trigger.CATCH_UP)

    claimed = store.claim(
        [Advance(job.id, job.version, T0 + 2 * MINUTE, ((T0, T0 + MINUTE),), (missed, latest))],
        []
    )

    assert claimed == [latest]  # only pending runs are returned to be started
    assert store.history(job.id) == [latest, missed]
    after = store.get_job(job.id)
    assert (after.next_run, after.claimed, after.claimed_through) == \
        (T0 + 2 * MINUTE, ((T0, T0 + MINUTE),), T0 + MINUTE)
    assert after.version == job.version + 1


def test_a_claim_with_a_stale_version_is_dropped(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("stale", next_run=T0))
    store.modify_job(job.id, lambda j: j.replace(input="edited"), now=T0)  # version moves on

    claimed = store.claim(
        [Advance(job.id, job.version, T0 + MINUTE, ((T0, T0),), (make_run(job, T0),))], []
    )

    assert claimed == []
    assert store.history(job.id) == []
    after = store.get_job(job.id)
    assert (after.next_run, after.claimed, after.version) == (T0, (), job.version + 1)


def test_a_claim_on_a_paused_job_is_dropped(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("paused", next_run=T0, status=JobStatus.PAUSED))

    claimed = store.claim([Advance(job.id, job.version, T0 + MINUTE, ((T0, T0),),
                                   (make_run(job, T0),))], [])

    assert claimed == []
    assert store.history(job.id) == []
    assert store.get_job(job.id).next_run == T0


def test_claiming_the_same_slot_and_attempt_twice_inserts_one_run(
    store: SqliteJobStore,
) -> None:
    job = store.create_job(make_job("once", next_run=T0))
    first = make_run(job, T0)
    assert claim_runs(store, job, first, next_run=T0 + MINUTE) == [first]

    # another claimer (say, after a restart) decides the same slot again, with a new run id
    again = make_run(job, T0)
    assert claim_runs(store, job, again, next_run=T0 + MINUTE) == []
    # and twice within a single claim
    assert claim_runs(store, job, make_run(job, T0), make_run(job, T0)) == []

    assert [r.id for r in store.history(job.id)] == [first.id]


def _failed_with_retry(store: SqliteJobStore, name: str, retry_at: int) -> tuple[Job, Run]:
    job = store.create_job(make_job(name, next_run=T0))
    run = make_run(job, T0)
    claim_runs(store, job, run, next_run=T0 + 10 * MINUTE)
    store.mark_started([(run.id, T0, 4242, 4242, 77)])
    store.finish([Finish(done(run, RunStatus.FAILED, retry_at=retry_at))])
    return store.get_job(job.id), store.get_run(run.id)


def test_a_retry_claim_clears_retry_at_and_inserts_the_next_attempt_only_once(
    store: SqliteJobStore,
) -> None:
    retry_at = T0 + 30_000
    job, failed = _failed_with_retry(store, "flaky", retry_at)
    assert failed.retry_at == retry_at
    assert [r.id for r in store.due_retries(retry_at, 10)] == [failed.id]

    nxt = make_run(job, T0, attempt=2, trigger=Trigger.RETRY)
    retry = RetryClaim(failed.id, retry_at, nxt)
    assert store.claim([], [retry]) == [nxt]

    assert store.get_run(failed.id).retry_at is None
    assert store.due_retries(retry_at, 10) == []
    # applying the same claim again, or a rival claim for the same attempt, inserts nothing
    assert store.claim([], [retry]) == []
    rival = RetryClaim(failed.id, retry_at, make_run(job, T0, attempt=2, trigger=Trigger.RETRY))
    assert store.claim([], [rival]) == []
    assert [(r.id, r.attempt) for r in store.history(job.id)] == [(nxt.id, 2), (failed.id, 1)]


def test_a_retry_claim_applied_twice_in_one_batch_inserts_once(store: SqliteJobStore) -> None:
    retry_at = T0 + 30_000
    job, failed = _failed_with_retry(store, "flaky", retry_at)
    nxt = make_run(job, T0, attempt=2, trigger=Trigger.RETRY)
    twin = make_run(job, T0, attempt=2, trigger=Trigger.RETRY)

    claimed = store.claim([], [RetryClaim(failed.id, retry_at, nxt),
                               RetryClaim(failed.id, retry_at, twin)])

    assert claimed == [nxt]
    assert len(store.history(job.id)) == 2


# --- due jobs ------------------------------------------------------------------------------


def test_due_jobs_are_the_active_jobs_due_by_now_in_next_run_order_up_to_the_limit(
    store: SqliteJobStore,
) -> None:
    store.create_job(make_job("third", next_run=T0 + 3000))
    store.create_job(make_job("first", next_run=T0 + 1000))
    store.create_job(make_job("second", next_run=T0 + 2000))
    store.create_job(make_job("later", next_run=T0 + 3001))
    store.create_job(make_job("paused", next_run=T0, status=JobStatus.PAUSED))
    store.create_job(make_job("done", at=T0, next_run=None, status=JobStatus.COMPLETED))
    store.create_job(make_job("unscheduled", next_run=None))

    assert [j.name for j in store.due_jobs(T0 + 3000, 10)] == ["first", "second", "third"]
    assert [j.name for j in store.due_jobs(T0 + 3000, 2)] == ["first", "second"]
    assert store.due_jobs(T0 + 999, 10) == []


def test_paused_jobs_are_not_due(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("sleepy", next_run=T0))
    assert [j.id for j in store.due_jobs(T0, 10)] == [job.id]
    assert store.next_due() == T0

    store.modify_job(job.id, lambda j: j.replace(status=JobStatus.PAUSED), now=T0)

    assert store.due_jobs(T0 + MINUTE, 10) == []
    assert store.next_due() is None


def test_next_due_is_the_earliest_active_next_run_or_retry_of_an_active_job(
    store: SqliteJobStore,
) -> None:
    assert store.next_due() is None
    store.create_job(make_job("active", next_run=T0 + 10 * MINUTE))
    store.create_job(make_job("paused", next_run=T0, status=JobStatus.PAUSED))
    assert store.next_due() == T0 + 10 * MINUTE

    # a retry of an active job that is due sooner than any slot wins
    _, failed = _failed_with_retry(store, "retrying", retry_at=T0 + 2 * MINUTE)
    assert store.next_due() == T0 + 2 * MINUTE

    # a retry of a paused job does not count, nor does that job's next_run
    _, paused_failed = _failed_with_retry(store, "paused-retry", retry_at=T0 + MINUTE)
    store.modify_job(paused_failed.job_id, lambda j: j.replace(status=JobStatus.PAUSED), now=T0)
    assert store.next_due() == T0 + 2 * MINUTE

    store.modify_job(failed.job_id, lambda j: j.replace(), now=T0, clear_retries=True)
    assert store.next_due() == T0 + 10 * MINUTE


def test_the_due_jobs_query_is_served_by_the_jobs_due_index(store: SqliteJobStore) -> None:
    for i in range(50):
        store.create_job(make_job(f"job{i}", next_run=T0 + i * 1000,
                                  status=JobStatus.ACTIVE if i % 3 else JobStatus.PAUSED))
    conn = store._conn()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        store.due_jobs(T0 + 10_000, 5)
    finally:
        conn.set_trace_callback(None)
    [sql] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    params = (T0 + 10_000, 5) if "?" in sql else ()  # older Pythons trace unexpanded SQL

    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]

    text = "\n".join(plan)
    assert "jobs_due" in text, f"due_jobs is not using the jobs_due index:\n{text}"
    assert not any(step.startswith("SCAN jobs") for step in plan), text
    assert "TEMP B-TREE" not in text, text


# --- starting and finishing ----------------------------------------------------------------


def _commits(store: SqliteJobStore, write: Any) -> list[str]:
    """The synchronous setting ("FULL", "NORMAL") each commit of ``write()`` ran under."""
    conn = store._conn()
    names = {1: "NORMAL", 2: "FULL"}
    current = [names[conn.execute("PRAGMA synchronous").fetchone()[0]]]
    seen: list[str] = []

    def trace(statement: str) -> None:
        text = statement.strip().upper()
        if text.startswith("PRAGMA SYNCHRONOUS ="):
            current[0] = text.split("=")[1].strip()
        elif text == "COMMIT":
            seen.append(current[0])

    conn.set_trace_callback(trace)
    try:
        write()
    finally:
        conn.set_trace_callback(None)
    return seen


def test_only_the_running_marks_of_spawned_runs_commit_without_waiting_for_the_disk(
        store: SqliteJobStore) -> None:
    job = store.create_job(make_job("durable", next_run=T0))
    run = make_run(job, T0)
    assert _commits(store, lambda: claim_runs(store, job, run)) == ["FULL"]
    assert _commits(store, lambda: store.mark_started([(run.id, T0, 7, 7, None)])) == ["NORMAL"]
    assert _commits(store, lambda: store.mark_process([(run.id, 8, 8, None)])) == ["NORMAL"]
    # and the connection is back to waiting for the disk for everything else
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2
    assert _commits(store, lambda: store.finish([Finish(done(store.get_run(run.id)))])) \
        == ["FULL"]


def test_mark_started_records_the_process_of_pending_runs_only(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("started", next_run=T0))
    run, finished = make_run(job, T0), make_run(job, T0 + MINUTE)
    claim_runs(store, job, run, finished)
    store.finish([Finish(done(finished))])

    store.mark_started([(run.id, T0 + 5, 100, 101, None), (finished.id, T0 + 5, 200, 201, None)])

    got = store.get_run(run.id)
    assert (got.status, got.started_at, got.pid, got.pgid) == (RunStatus.RUNNING, T0 + 5, 100, 101)
    untouched = store.get_run(finished.id)
    assert (untouched.status, untouched.pid) == (RunStatus.SUCCEEDED, None)


def test_finishing_runs_updates_the_job_counters(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("counted", next_run=T0))
    good, bad, timed_out = (make_run(job, T0 + i * MINUTE) for i in range(3))
    claim_runs(store, job, good, bad, timed_out)
    store.mark_started([(r.id, r.slot, 10, 10, None) for r in (good, bad, timed_out)])

    store.finish([Finish(done(good, ms=100)), Finish(done(bad, RunStatus.FAILED, ms=20)),
                  Finish(done(timed_out, RunStatus.TIMED_OUT, ms=3))])

    after = store.get_job(job.id)
    assert (after.run_count, after.failure_count) == (3, 2)
    assert store.get_run(good.id).status is RunStatus.SUCCEEDED
    assert store.get_run(good.id).finished_at == T0 + 100
    totals = store.totals()
    assert (totals.runs_total, totals.runs_succeeded, totals.runs_failed,
            totals.execution_ms_total) == (3, 1, 2, 123)


def test_a_finish_that_does_not_count_leaves_the_counters_alone(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("uncounted", next_run=T0))
    run = make_run(job, T0)
    claim_runs(store, job, run)

    store.finish([Finish(done(run, RunStatus.CANCELLED), counts=False)])

    assert store.get_run(run.id).status is RunStatus.CANCELLED
    after = store.get_job(job.id)
    assert (after.run_count, after.failure_count) == (0, 0)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (JobStatus.ACTIVE, JobStatus.COMPLETED),
        (JobStatus.PAUSED, JobStatus.COMPLETED),
        (JobStatus.COMPLETED, JobStatus.COMPLETED),
        (JobStatus.FAILED, JobStatus.FAILED),
        (JobStatus.DEAD_LETTER, JobStatus.DEAD_LETTER),
    ],
)
def test_a_finish_changes_the_job_status_only_from_active_or_paused(
    store: SqliteJobStore, before: JobStatus, after: JobStatus
) -> None:
    job = store.create_job(make_job("one-shot", at=T0, next_run=None, status=before))
    run = store.insert_run(make_run(job, T0, trigger=Trigger.MANUAL))

    store.finish([Finish(done(run), job_status=JobStatus.COMPLETED, belongs_to=(None, T0))])

    final = store.get_job(job.id)
    assert final.status is after
    assert final.version == job.version + (1 if after is not before else 0)


def test_a_finish_leaves_the_job_alone_once_its_schedule_has_changed(
    store: SqliteJobStore,
) -> None:
    job = store.create_job(make_job("re-armed", at=T0, next_run=None))
    run = make_run(job, T0)
    claim_runs(store, job, run)
    store.modify_job(job.id, lambda j: j.replace(at=T0 + MINUTE, next_run=T0 + MINUTE), T0)

    ended = store.finish([Finish(done(run), job_status=JobStatus.COMPLETED,
                                 belongs_to=(None, T0))])

    assert ended == set()
    assert store.get_run(run.id).status is RunStatus.SUCCEEDED
    assert (store.get_job(job.id).status, store.get_job(job.id).next_run) == \
        (JobStatus.ACTIVE, T0 + MINUTE)


def test_a_finish_that_clears_retries_drops_only_that_jobs_pending_retries(
    store: SqliteJobStore,
) -> None:
    job, failed = _failed_with_retry(store, "exhausted", retry_at=T0 + MINUTE)
    _, other_failed = _failed_with_retry(store, "other", retry_at=T0 + MINUTE)
    manual = store.insert_run(make_run(job, T0 + 5 * MINUTE, trigger=Trigger.MANUAL))

    store.finish([Finish(done(manual, RunStatus.FAILED), job_status=JobStatus.DEAD_LETTER,
                         belongs_to=(job.cron_expr, None), clear_retries=True)])

    assert store.get_run(failed.id).retry_at is None
    assert store.get_run(other_failed.id).retry_at == T0 + MINUTE
    assert store.get_job(job.id).status is JobStatus.DEAD_LETTER
    assert [r.id for r in store.due_retries(T0 + MINUTE, 10)] == [other_failed.id]


def test_finishing_an_already_final_run_changes_nothing(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("final", next_run=T0))
    run = make_run(job, T0)
    claim_runs(store, job, run)
    store.finish([Finish(done(run, RunStatus.SUCCEEDED, output="first"))])
    before_run, before_job = store.get_run(run.id), store.get_job(job.id)

    store.finish([Finish(done(run, RunStatus.FAILED, output="second", retry_at=T0 + MINUTE),
                         job_status=JobStatus.PAUSED, clear_retries=True)])

    assert store.get_run(run.id) == before_run
    assert store.get_job(job.id) == before_job


def test_open_runs_lists_pending_and_running_runs_in_slot_order(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("open", next_run=T0))
    running, finished, pending = (make_run(job, T0 + i * MINUTE) for i in range(3))
    claim_runs(store, job, running, finished, pending)
    store.mark_started([(running.id, T0, 1, 1, None), (finished.id, T0, 2, 2, None)])
    store.finish([Finish(done(finished))])

    opened = store.open_runs()

    assert [(r.id, r.status) for r in opened] == [
        (running.id, RunStatus.RUNNING), (pending.id, RunStatus.PENDING),
    ]
    assert store.open_runs_by_job() == {job.id: [(running.id, "running"), (pending.id, "pending")]}


def test_history_is_newest_first_and_honours_limit_and_status(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("hist", next_run=T0))
    runs = [make_run(job, T0 + i * MINUTE) for i in range(5)]
    claim_runs(store, job, *runs)
    retry = RetryClaim(runs[0].id, T0 + 10 * MINUTE,
                       make_run(job, T0, attempt=2, trigger=Trigger.RETRY))
    store.finish([Finish(done(r, RunStatus.FAILED if i % 2 == 0 else RunStatus.SUCCEEDED,
                              retry_at=T0 + 10 * MINUTE if i == 0 else None))
                  for i, r in enumerate(runs)])
    store.claim([], [retry])

    assert [(r.slot, r.attempt) for r in store.history(job.id)] == [
        (T0 + 4 * MINUTE, 1), (T0 + 3 * MINUTE, 1), (T0 + 2 * MINUTE, 1), (T0 + MINUTE, 1),
        (T0, 2), (T0, 1),
    ]
    assert [r.id for r in store.history(job.id, limit=2)] == [runs[4].id, runs[3].id]
    assert [r.id for r in store.history(job.id, status=RunStatus.SUCCEEDED)] == [
        runs[3].id, runs[1].id,
    ]
    assert [r.id for r in store.history(job.id, limit=1, status=RunStatus.FAILED)] == [
        runs[4].id
    ]
    assert [r.id for r in store.history(job.id, status=RunStatus.PENDING)] == [
        retry.run.id
    ]


def test_totals_sum_jobs_and_runs_by_status(store: SqliteJobStore) -> None:
    assert store.totals().by_status == {}
    a = store.create_job(make_job("a", next_run=T0))
    store.create_job(make_job("b", next_run=T0))
    store.create_job(make_job("c", status=JobStatus.PAUSED))
    store.create_job(make_job("d", at=T0, next_run=None, status=JobStatus.COMPLETED))
    runs = [make_run(a, T0), make_run(a, T0 + MINUTE)]
    claim_runs(store, a, *runs)
    store.finish([Finish(done(runs[0], ms=7)), Finish(done(runs[1], RunStatus.FAILED, ms=5))])

    totals = store.totals()

    assert totals.by_status == {"active": 2, "paused": 1, "completed": 1}
    assert (totals.runs_total, totals.runs_succeeded, totals.runs_failed,
            totals.execution_ms_total) == (2, 1, 1, 12)


# --- retention -----------------------------------------------------------------------------


def test_only_the_newest_runs_of_a_job_are_kept(db_path: Path) -> None:
    store = SqliteJobStore(str(db_path), keep_runs=3)
    try:
        job = store.create_job(make_job("busy", next_run=T0))
        runs = [make_run(job, T0 + i * MINUTE) for i in range(6)]
        claim_runs(store, job, *runs)

        for run in runs:
            store.finish([Finish(done(run))])

        assert [r.id for r in store.history(job.id, limit=100)] == [
            runs[5].id, runs[4].id, runs[3].id,
        ]
        assert store.get_job(job.id).run_count == 6  # counters are not pruned
    finally:
        store.close()


def test_open_runs_and_pending_retries_are_never_pruned(db_path: Path) -> None:
    store = SqliteJobStore(str(db_path), keep_runs=3)
    try:
        job = store.create_job(make_job("busy", next_run=T0))
        running = make_run(job, T0)
        awaiting = make_run(job, T0 + MINUTE)
        runs = [make_run(job, T0 + (2 + i) * MINUTE) for i in range(6)]
        claim_runs(store, job, running, awaiting, *runs)
        store.mark_started([(running.id, T0, 9, 9, None)])
        store.finish([Finish(done(runs[0], RunStatus.FAILED, retry_at=T0 + 60 * MINUTE))])

        for run in runs[1:]:
            store.finish([Finish(done(run))])

        kept = {r.id for r in store.history(job.id, limit=100)}
        assert kept == {running.id, awaiting.id, runs[0].id, runs[5].id, runs[4].id,
                        runs[3].id}
        assert store.get_run(runs[0].id).retry_at == T0 + 60 * MINUTE
    finally:
        store.close()


# --- manual runs ---------------------------------------------------------------------------


def test_manual_runs_have_a_key_space_of_their_own(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("manual", next_run=T0))
    first = store.insert_run(make_run(job, T0, trigger=Trigger.MANUAL))
    second = store.insert_run(make_run(job, T0, trigger=Trigger.MANUAL))
    scheduled = make_run(job, T0)  # the scheduled slot at the same instant
    assert claim_runs(store, job, scheduled, next_run=T0 + MINUTE) == [scheduled]

    assert (first.slot, second.slot) == (T0, T0 + 1)  # manual ones move on by a ms
    assert {(r.id, r.slot) for r in store.history(job.id)} == {
        (scheduled.id, T0), (first.id, T0), (second.id, T0 + 1),
    }


def test_a_manual_run_on_a_free_slot_keeps_it(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("manual"))
    run = make_run(job, T0 + 123, trigger=Trigger.MANUAL)

    assert store.insert_run(run) == run
    assert store.get_run(run.id) == run


def test_a_manual_run_of_an_unknown_job_raises_not_found(store: SqliteJobStore) -> None:
    ghost = make_job("ghost")

    with pytest.raises(NotFound):
        store.insert_run(make_run(ghost, T0, trigger=Trigger.MANUAL))


# --- threads -------------------------------------------------------------------------------


def test_two_threads_creating_jobs_at_once_through_one_store_both_succeed(
    store: SqliteJobStore,
) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def create(prefix: str) -> None:
        try:
            start.wait(timeout=10)
            for i in range(50):
                store.create_job(make_job(f"{prefix}-{i:02d}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(p,)) for p in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not any(t.is_alive() for t in threads)
    assert errors == []
    names = [j.name for j in store.list_jobs()]
    assert len(names) == 100
    assert sum(n.startswith("left-") for n in names) == 50


# --- deleting ------------------------------------------------------------------------------


def test_delete_job_removes_the_job_and_its_runs(store: SqliteJobStore, db_path: Path) -> None:
    job = store.create_job(make_job("doomed", next_run=T0))
    keep = store.create_job(make_job("kept", next_run=T0))
    runs = [make_run(job, T0), make_run(job, T0 + MINUTE)]
    claim_runs(store, job, *runs)
    kept_run = make_run(keep, T0)
    claim_runs(store, keep, kept_run)

    deleted = store.delete_job("doomed")

    assert (deleted.id, deleted.name) == (job.id, "doomed")
    assert store.find_job(job.id) is None
    with pytest.raises(NotFound):
        store.get_run(runs[0].id)
    conn = raw(db_path)
    assert conn.execute("SELECT COUNT(*) FROM runs WHERE job_id = ?", (job.id,)).fetchone()[0] == 0
    conn.close()
    assert [r.id for r in store.history(keep.id)] == [kept_run.id]


def test_delete_job_returns_the_deleted_job(store: SqliteJobStore) -> None:
    job = store.create_job(make_job("doomed"))

    assert store.delete_job(job.id) == job
    assert store.list_jobs() == []


def test_deleting_an_unknown_job_raises_not_found(store: SqliteJobStore) -> None:
    store.create_job(make_job("present"))

    with pytest.raises(NotFound):
        store.delete_job("absent")
    assert len(store.list_jobs()) == 1


def test_the_latest_recorded_instant(store: SqliteJobStore) -> None:
    assert store.latest_instant() is None
    job = store.create_job(make_job("seen", next_run=T0))
    run = make_run(job, T0)
    claim_runs(store, job, run)
    store.mark_started([(run.id, T0 + 5 * MINUTE, 1, 1, None)])
    assert store.latest_instant() == T0 + 5 * MINUTE


# --- id prefixes -----------------------------------------------------------------------


def _plan(store: SqliteJobStore, call: Any) -> str:
    conn = store._conn()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    [sql] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    params = ["a"] * sql.count("?")  # older Pythons trace unexpanded SQL
    return "\n".join(row[3] for row in
                     conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())


def test_jobs_and_runs_are_found_by_an_id_prefix_through_the_primary_key(
        store: SqliteJobStore) -> None:
    jobs = [store.create_job(make_job(f"job{i}").replace(id=f"3f2a9c1d-000{i}-4000-8000-"
                                                                f"00000000000{i}"))
            for i in range(3)]
    other = store.create_job(make_job("other").replace(id="3f2a9c1e-0000-4000-8000-"
                                                          "000000000000"))
    assert [j.name for j in store.list_jobs(id_prefix="3f2a9c1d")] == ["job0", "job1", "job2"]
    assert [j.name for j in store.list_jobs(id_prefix="3f2a9c1d-0001")] == ["job1"]
    assert [j.name for j in store.list_jobs(id_prefix="3f2a9c1e")] == ["other"]
    assert store.list_jobs(id_prefix="3f2a9c1f") == []

    older = make_run(jobs[0], T0, output="x" * 500).replace(id="aaaaaaaa-0001-4000-8000-0")
    newer = make_run(jobs[1], T0 + MINUTE).replace(id="aaaaaaaa-0002-4000-8000-0")
    claim_runs(store, jobs[0], older)
    claim_runs(store, jobs[1], newer)
    claim_runs(store, other, make_run(other, T0).replace(id="aaaaaaab-0000-4000-8000-0"))
    found = store.find_runs("aaaaaaaa")
    assert [r.id for r in found] == [newer.id, older.id]  # newest first
    assert [r.id for r in store.find_runs("aaaaaaaa", limit=1)] == [newer.id]
    assert len(found[1].output or "") == 200  # a preview, as in history
    assert [r.id for r in store.find_runs("aaaaaaaa-0001")] == [older.id]

    for plan in (_plan(store, lambda: store.list_jobs(id_prefix="3f2a9c1d")),
                 _plan(store, lambda: store.find_runs("aaaaaaaa"))):
        assert "USING INDEX sqlite_autoindex" in plan, plan
        assert not any(step.startswith("SCAN") for step in plan.splitlines()), plan


def test_a_running_runs_new_process_is_recorded_and_a_finished_run_is_left_alone(
    store: SqliteJobStore,
) -> None:
    job = store.create_job(make_job("beat", next_run=T0))
    run, ended = make_run(job, T0), make_run(job, T0 + MINUTE)
    claim_runs(store, job, run, ended, next_run=T0 + 10 * MINUTE)
    store.mark_started([(run.id, T0, 10, 10, 500), (ended.id, T0, 20, 20, 600)])
    store.finish([Finish(done(ended, RunStatus.SUCCEEDED))])
    store.mark_process([(run.id, 11, 11, 700), (ended.id, 21, 21, 800)])
    got = store.get_run(run.id)
    assert (got.pid, got.pgid, got.pid_start) == (11, 11, 700)
    left = store.get_run(ended.id)
    assert (left.pid, left.pid_start) == (20, 600)


# --- reading few jobs where a million may be stored (issue 15) -------------------------
def test_sync_candidates_are_the_file_jobs_and_the_jobs_named_and_no_others(
    store: SqliteJobStore,
) -> None:
    store.create_job(make_job("from-file", source="file:/etc/symbid/agents.d/a.symbi"))
    store.create_job(make_job("other-file", source="file:/x.symbi"))
    store.create_job(make_job("clash", source="api"))
    store.create_job(make_job("api-job", source="api"))
    store.create_job(make_job("adhoc:agent", source="adhoc"))
    store.create_job(make_job("filed", source="filed"))  # "file" without its ':'

    names = [j.name for j in store.sync_candidates({"clash", "from-file", "missing"})]

    assert names == ["clash", "from-file", "other-file"]
    assert [j.name for j in store.sync_candidates(set())] == ["from-file", "other-file"]


def test_sync_candidates_take_more_names_than_one_statement_binds(
    store: SqliteJobStore,
) -> None:
    for i in range(1200):
        store.create_job(make_job(f"job-{i}"))

    wanted = {f"job-{i}" for i in range(0, 1200, 2)} | {f"job-{i}" for i in range(1100, 1200)}
    found = store.sync_candidates(wanted)

    assert sorted(j.name for j in found) == sorted(wanted)
    assert len(found) == len(wanted)


def test_file_jobs_are_read_through_an_index_on_their_source(store: SqliteJobStore) -> None:
    plan = store._conn().execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE source >= 'file:' AND source < 'file;'"
    ).fetchall()

    assert any("jobs_source" in str(row[-1]) for row in plan), plan


def test_a_name_is_in_use_as_a_job_or_as_an_agent_a_job_names_but_not_as_an_adhoc_job(
    store: SqliteJobStore,
) -> None:
    store.create_job(make_job("Old Name", agent_id="old agent"))
    store.create_job(make_job("adhoc:x", agent_id="x", source="adhoc"))

    assert store.name_in_use("Old Name")
    assert store.name_in_use("old agent")
    assert store.name_in_use("x")  # the agent of its ad hoc job
    assert not store.name_in_use("adhoc:x")
    assert not store.name_in_use("old")


@pytest.mark.parametrize("name", [
    "", "a" * 129, "nul\x00", "0\x00", "-dash", ".dot", "spaces here", "café", "naïve-job",
    "deadbeef",
    "0123-4567-89ab", "a" * 128, "tab\there", "semi;colon", "Ünïcode", "x/y", "*star", "[bracket]",
])
def test_every_name_that_breaks_the_rule_is_among_the_unusual_names(
    store: SqliteJobStore, name: str,
) -> None:
    store.create_job(make_job(name))
    store.create_job(make_job("ordinary-job.1_a"))

    unusual = store.unusual_job_names()

    assert name in unusual
    assert "ordinary-job.1_a" not in unusual


def test_names_that_keep_the_rule_in_ascii_are_not_unusual_and_adhoc_jobs_never_are(
    store: SqliteJobStore,
) -> None:
    for name in ("a", "job-1", "Z.y_x-9", "g" * 128, "deadbeeg", "1a", "dead-be"):
        store.create_job(make_job(name))
    store.create_job(make_job("adhoc:agent", source="adhoc"))

    assert store.unusual_job_names() == []


@pytest.fixture(scope="module")
def names_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteJobStore]:
    """One store for every example of a property test; each example leaves it empty."""
    store = SqliteJobStore(str(tmp_path_factory.mktemp("names") / "state.db"))
    yield store
    store.close()


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=140))
def test_no_name_that_breaks_the_rule_escapes_the_unusual_names(
    names_store: SqliteJobStore, name: str,
) -> None:
    job = names_store.create_job(make_job(name))
    try:
        if name_problem(name) is not None:
            assert names_store.unusual_job_names() == [name]
    finally:
        names_store.delete_job(job.id)


def test_totals_follow_every_write_through_the_store_and_by_another_connection(
    store: SqliteJobStore, db_path: Path,
) -> None:
    assert store.totals().by_status == {}
    job = store.create_job(make_job("one"))
    assert store.totals().by_status == {"active": 1}
    store.modify_job(job.id, lambda j: j.replace(status=JobStatus.PAUSED), T0)
    assert store.totals().by_status == {"paused": 1}

    other = sqlite3.connect(str(db_path))
    with other:
        other.execute("UPDATE jobs SET status = 'active'")
    other.close()

    assert store.totals().by_status == {"active": 1}


def _recount(db_path: Path) -> tuple[dict[str, int], int, int, int, int, int]:
    """The totals counted from every job row, as totals() once did."""
    conn = sqlite3.connect(str(db_path))
    rows = conn.execute(
        "SELECT status, SUM(source <> 'adhoc'), SUM(run_count), SUM(success_count), "
        "SUM(failure_count), SUM(total_execution_ms), MAX(longest_execution_ms) FROM jobs "
        "GROUP BY status").fetchall()
    conn.close()
    return ({r[0]: r[1] for r in rows if r[1]}, sum(r[2] for r in rows),
            sum(r[3] for r in rows), sum(r[4] for r in rows), sum(r[5] for r in rows),
            max((r[6] for r in rows), default=0))


def _totals(store: SqliteJobStore) -> tuple[dict[str, int], int, int, int, int, int]:
    t = store.totals()
    return (t.by_status, t.runs_total, t.runs_succeeded, t.runs_failed, t.execution_ms_total,
            t.longest_execution_ms)


def test_totals_kept_by_the_store_match_a_count_of_the_jobs_after_every_kind_of_change(
    store: SqliteJobStore, db_path: Path,
) -> None:
    rng = random.Random(15)
    jobs: list[Job] = []
    slot = T0
    for step in range(300):
        action = rng.choice(["create", "create", "adhoc", "finish", "finish", "status",
                             "delete", "edit"])
        if action in ("create", "adhoc") or not jobs:
            adhoc = action == "adhoc"
            job = store.create_job(make_job(
                f"adhoc:a{step}" if adhoc else f"job-{step}", next_run=T0,
                source="adhoc" if adhoc else "api",
                status=rng.choice([JobStatus.ACTIVE, JobStatus.PAUSED])))
            jobs.append(job)
        elif action == "finish":
            job = rng.choice(jobs)
            store.modify_job(job.id, lambda j: j.replace(status=JobStatus.ACTIVE), T0)
            slot += MINUTE
            run = make_run(store.get_job(job.id), slot)
            claim_runs(store, store.get_job(job.id), run)
            status = rng.choice([RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT])
            store.finish([Finish(done(run, status, ms=rng.randrange(1, 500)))])
        elif action == "status":
            job = rng.choice(jobs)
            new = rng.choice(list(JobStatus))
            store.modify_job(job.id, lambda j, new=new: j.replace(status=new), T0)
        elif action == "edit":
            job = rng.choice(jobs)
            store.modify_job(job.id, lambda j, step=step: j.replace(input=f"input {step}"), T0)
        else:
            job = jobs.pop(rng.randrange(len(jobs)))
            store.delete_job(job.id)
        assert _totals(store) == _recount(db_path), (step, action)


def test_a_store_from_schema_11_gains_the_totals_of_the_jobs_it_holds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(str(path), isolation_level=None)
    for number in range(11):
        for statement in statements(SQLITE_MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 11")
    for i, (status, source, runs, ok) in enumerate([
            ("active", "api", 5, 4), ("active", "adhoc", 3, 3), ("paused", "file:/a", 2, 0)]):
        conn.execute(
            "INSERT INTO jobs (id, name, agent_id, cron_expr, timezone, status, source, "
            "definition, created_at, updated_at, run_count, success_count, failure_count, "
            "total_execution_ms, longest_execution_ms) VALUES "
            "(?, ?, 'a', '* * * * *', 'UTC', ?, ?, '{}', 0, 0, ?, ?, ?, ?, ?)",
            (f"id-{i}", f"job-{i}", status, source, runs, ok, runs - ok, 10 * runs, 7 + i))
    conn.close()

    store = SqliteJobStore(str(path))
    try:
        assert _totals(store) == ({"active": 1, "paused": 1}, 10, 7, 3, 100, 9)
        assert _totals(store) == _recount(path)
    finally:
        store.close()


def test_totals_and_the_look_for_claims_ahead_of_the_clock_read_no_job_row_by_row(
    store: SqliteJobStore,
) -> None:
    statements_run: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(statements_run.append)
    try:
        store.totals()
        store.jobs_claimed_after(T0)
    finally:
        conn.set_trace_callback(None)
    plans = [str(conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
             for sql in statements_run if sql.lstrip().upper().startswith("SELECT")]

    assert len(plans) == 3, statements_run
    assert not [p for p in plans if "SCAN jobs" in p and "COVERING" not in p], plans
    assert any("jobs_high_water" in p for p in plans), plans
    assert any("jobs_longest" in p for p in plans), plans


def test_jobs_with_channels_are_walked_page_by_page_and_jobs_without_any_are_left_out(
    store: SqliteJobStore, db_path: Path,
) -> None:
    for i in range(7):
        store.create_job(make_job(f"mail-{i}", delivery=("email",), source="api"))
    store.create_job(make_job("alerting", alert=("webhook",), source="api"))
    store.create_job(make_job("silent", source="api"))
    store.create_job(make_job("filed", delivery=("email",), source="file:/a.symbi"))
    store.create_job(make_job("broken", delivery=("email",), source="api"))
    conn = sqlite3.connect(str(db_path))
    with conn:  # a row written by hand that cannot be read: the walk goes on past it
        conn.execute("UPDATE jobs SET status = 'no-such-status' WHERE name = 'broken'")
    conn.close()

    pages, after = [], ""
    while after is not None:
        page, after = store.jobs_with_channels("api", after, 3)
        pages.append([j.name for j in page])

    assert [n for p in pages for n in p] == ["alerting"] + [f"mail-{i}" for i in range(7)]
    assert pages[0] == ["alerting", "mail-0"]  # "broken" was read too, and left out


def test_the_jobs_of_an_agent_are_counted_and_the_first_names_given_without_its_adhoc_job(
    store: SqliteJobStore,
) -> None:
    for i in (3, 1, 12, 2, 11):
        store.create_job(make_job(f"uses-{i:02d}", agent_id="going"))
    store.create_job(make_job("adhoc:going", agent_id="going", source="adhoc"))
    store.create_job(make_job("other", agent_id="staying"))

    assert store.jobs_of_agent("going", 3) == (5, ["uses-01", "uses-02", "uses-03"])
    assert store.jobs_of_agent("going", 10) == (
        5, ["uses-01", "uses-02", "uses-03", "uses-11", "uses-12"])
    assert store.jobs_of_agent("nobody", 10) == (0, [])
