"""The agent registry's rows in a real SQLite file: schema 4, file and API rows side by side."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from symbid.agentdef import Agent, AgentKind, Limits
from symbid.errors import Conflict
from symbid.model import Job, new_id
from symbid.store import SCHEMA_VERSION, SqliteJobStore, StoredAgent
from symbid.store.schema import SQLITE_MIGRATIONS

T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z


def agent(name: str, *command: str) -> Agent:
    return Agent(name=name, command=command or ("/bin/true",))


def from_file(a: Agent, path: str = "/etc/a.symbi", at: int = T0) -> StoredAgent:
    return StoredAgent(a, f"file:{path}", at, at)


def no_objection(rows: list[StoredAgent]) -> None:
    return None


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(str(tmp_path / "state.db"))


def test_a_store_from_schema_3_gains_an_empty_agents_table(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for number in range(3):
        for statement in SQLITE_MIGRATIONS[number].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    store = SqliteJobStore(path)
    assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.list_agents() == []


def test_every_field_of_an_agent_survives_the_round_trip(store: SqliteJobStore) -> None:
    full = Agent(name="full", kind=AgentKind.COMMAND, command=("/bin/sh", "-c", "echo"),
                 env={"TOKEN": "${TOKEN}"}, working_dir="/srv", user="nobody", group="nogroup",
                 limits=Limits(memory_bytes=1 << 20, cpu_seconds=5, processes=3, open_files=9,
                               output_bytes=4096),
                 capabilities=("net",), system_prompt="be brief", agentpin_id="pin-1")
    llm = Agent(name="llm", kind=AgentKind.LLM, model="m", endpoint="http://127.0.0.1:1")
    store.sync_file_agents([from_file(full)], [])
    store.define_agents([llm], T0 + 5, no_objection)
    got = {s.name: s for s in store.list_agents()}
    assert got["full"].agent == full and got["full"].source == "file:/etc/a.symbi"
    assert got["llm"].agent == llm and got["llm"].source == "api"
    assert (got["llm"].created_at, got["llm"].updated_at) == (T0 + 5, T0 + 5)


def test_a_name_holds_a_file_row_and_an_api_row_the_files_listed_first(
        store: SqliteJobStore) -> None:
    store.define_agents([agent("shared", "/bin/api")], T0, no_objection)
    store.sync_file_agents([from_file(agent("shared", "/bin/file"))], [])
    rows = store.list_agents("shared")
    assert [r.source for r in rows] == ["file:/etc/a.symbi", "api"]


def test_redefining_an_api_agent_keeps_its_creation_time(store: SqliteJobStore) -> None:
    assert store.define_agents([agent("a")], T0, no_objection) == (["a"], [])
    assert store.define_agents([agent("a", "/bin/false"), agent("b")], T0 + 9,
                               no_objection) == (["b"], ["a"])
    row = store.list_agents("a")[0]
    assert (row.created_at, row.updated_at, row.agent.command) == (T0, T0 + 9, ("/bin/false",))


def test_a_guard_that_refuses_writes_nothing(store: SqliteJobStore) -> None:
    def refuse(rows: list[StoredAgent]) -> None:
        raise Conflict("no")

    with pytest.raises(Conflict):
        store.define_agents([agent("a"), agent("b")], T0, refuse)
    assert store.list_agents() == []


def test_file_sync_never_touches_api_rows(store: SqliteJobStore) -> None:
    store.define_agents([agent("shared")], T0, no_objection)
    store.sync_file_agents([from_file(agent("shared"))], [])
    store.sync_file_agents([], ["shared"])
    assert [r.source for r in store.list_agents()] == ["api"]


def test_remove_sees_the_jobs_that_name_the_agent(store: SqliteJobStore) -> None:
    store.define_agents([agent("worker")], T0, no_objection)
    for name in ("b-job", "a-job"):
        store.create_job(Job(id=new_id(), name=name, agent_id="worker", cron_expr="* * * * *",
                             created_at=T0, updated_at=T0))
    seen: list[list[str]] = []

    def guard(rows: list[StoredAgent], jobs: list[str]) -> StoredAgent:
        seen.append(jobs)
        return rows[0]

    assert store.agent_use() == {"worker": 2}
    assert store.remove_agent("worker", guard).name == "worker"
    assert seen == [["a-job", "b-job"]] and store.list_agents() == []


def test_an_unreadable_agent_row_is_left_out(store: SqliteJobStore) -> None:
    store.define_agents([agent("good")], T0, no_objection)
    store._conn().execute("INSERT INTO agents VALUES ('bad', 'api', 'api', '{}', 0, 0)")
    assert [r.name for r in store.list_agents()] == ["good"]
