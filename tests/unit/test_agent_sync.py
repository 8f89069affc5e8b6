"""agents_dir agents into the registry: a pure plan, applied store first, memory derived."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbid.agentdef import Agent
from symbid.dsl import load_dir
from symbid.errors import Conflict, Forbidden, NotFound
from symbid.executor import Agents, unknown_agent
from symbid.registry import AgentService, plan_agent_sync
from symbid.store import SqliteJobStore, StoredAgent
from tests.fakes import FakeClock

Env = tuple[Path, SqliteJobStore, AgentService, FakeClock]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    agents_dir = tmp_path / "agents.d"
    agents_dir.mkdir()
    clock = FakeClock("2026-03-01T00:00:00Z")
    store = SqliteJobStore(str(tmp_path / "state.db"))
    return agents_dir, store, AgentService(store, clock, Agents(),
                                           agents_dir=str(agents_dir)), clock


def agent_block(name: str, command: str = "/bin/true") -> str:
    return f'agent {name} {{ command: ["{command}"] }}\n'


def sync(env: Env) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], int]:
    agents_dir, _, service, clock = env
    plan = service.sync_files(load_dir(str(agents_dir), clock.now()))
    return plan.created, plan.updated, plan.remove, plan.unchanged


def test_blocks_create_update_and_remove_rows_and_a_second_load_is_a_no_op(env: Env) -> None:
    agents_dir, store, service, clock = env
    (agents_dir / "a.symbi").write_text(agent_block("one") + agent_block("two"))
    assert sync(env) == (("one", "two"), (), (), 0)
    assert sync(env) == ((), (), (), 2)
    clock.advance(60)
    (agents_dir / "a.symbi").write_text(agent_block("one", "/bin/false"))
    assert sync(env) == ((), ("one",), ("two",), 0)
    [row] = store.list_agents()
    assert row.agent.command == ("/bin/false",) and row.updated_at > row.created_at
    assert service.agents.names() == ["one"]


def test_a_file_that_fails_to_load_keeps_its_stored_agents(env: Env) -> None:
    agents_dir, store, service, _ = env
    (agents_dir / "a.symbi").write_text(agent_block("kept"))
    sync(env)
    (agents_dir / "a.symbi").write_text(agent_block("kept", "/bin/false") + "agent x {")
    assert sync(env) == ((), (), (), 1)
    assert store.list_agents()[0].agent.command == ("/bin/true",)
    assert service.agents.get("kept") is not None


def test_an_agent_moved_to_another_file_is_updated_with_its_new_source(env: Env) -> None:
    agents_dir, store, _, _ = env
    (agents_dir / "a.symbi").write_text(agent_block("mover"))
    sync(env)
    (agents_dir / "a.symbi").unlink()
    (agents_dir / "b.symbi").write_text(agent_block("mover"))
    assert sync(env) == ((), ("mover",), (), 0)
    assert store.list_agents()[0].source.endswith("b.symbi")


def test_a_file_agent_shadows_an_api_agent_with_a_warning_and_wins_in_memory(env: Env) -> None:
    agents_dir, _, service, clock = env
    service.define([Agent(name="shared", command=("/bin/api",))], actor="test")
    (agents_dir / "s.symbi").write_text(agent_block("shared", "/bin/file"))
    plan = service.sync_files(load_dir(str(agents_dir), clock.now()))
    [warning] = plan.warnings
    assert "s.symbi shadows the agent of the same name defined through the API" in warning
    memory = service.agents.get("shared")
    assert memory is not None and memory.command == ("/bin/file",)
    rows = service.listing()
    assert [(r.stored.source, r.shadowed_by) for r in rows] == [
        ("file:" + str(agents_dir / "s.symbi"), None),
        ("api", "file:" + str(agents_dir / "s.symbi"))]


def test_the_plan_is_pure_and_reads_only_what_it_is_given(env: Env) -> None:
    agents_dir, _, _, clock = env
    (agents_dir / "a.symbi").write_text(agent_block("x"))
    files = load_dir(str(agents_dir), clock.now())
    stored = [StoredAgent(Agent(name="x", command=("/bin/true",)),
                          "file:" + str(agents_dir / "a.symbi"), 1, 1)]
    assert plan_agent_sync(files, stored, clock.now()).unchanged == 1
    assert plan_agent_sync(files, [], clock.now()).created == ("x",)


def test_defining_a_file_agents_name_through_the_api_is_refused_naming_the_file(
        env: Env) -> None:
    agents_dir, store, service, _ = env
    (agents_dir / "a.symbi").write_text(agent_block("filed"))
    sync(env)
    with pytest.raises(Conflict, match=r"a\.symbi; to change it, edit that file"):
        service.define([Agent(name="new", command=("/x",)),
                        Agent(name="filed", command=("/x",))], actor="test")
    assert [r.name for r in store.list_agents()] == ["filed"]  # all or nothing


def test_an_agent_given_twice_in_one_request_is_refused(env: Env) -> None:
    _, _, service, _ = env
    with pytest.raises(Conflict, match="given twice"):
        service.define([Agent(name="a", command=("/x",)), Agent(name="a", command=("/y",))],
                       actor="test")


def test_with_the_api_turned_off_define_is_forbidden_and_remove_still_clears_out(
    env: Env,
) -> None:
    agents_dir, store, _, clock = env
    before = AgentService(store, clock, Agents(), agents_dir=str(agents_dir))
    # defined while the API was on
    before.define([Agent(name="old", command=("/x",))], actor="test")
    service = AgentService(store, clock, Agents(), agents_dir=str(agents_dir),
                           api_enabled=False)
    with pytest.raises(Forbidden, match=str(agents_dir)):
        service.define([Agent(name="a", command=("/x",))], actor="test")
    assert service.remove("old", actor="test").name == "old"
    with pytest.raises(NotFound):
        service.remove("a", actor="test")
    assert "POST /api/v1/agents" not in service.agents.hint


def test_removing_a_name_nobody_defined_is_not_found(env: Env) -> None:
    with pytest.raises(NotFound):
        env[2].remove("ghost", actor="test")


def test_the_unknown_agent_message_names_ten_agents_then_counts_the_rest() -> None:
    names = [f"agent-{i:02d}" for i in range(13)]
    message = unknown_agent("missing", names, "define it somewhere")
    assert message == ("agent 'missing' is not defined (defined agents: "
                       + ", ".join(names[:10]) + " and 3 more); define it somewhere")
    assert unknown_agent("x\x1b", [], "hint") == \
        "agent 'x\\x1b' is not defined (no agent is defined); hint"
