"""The agent registry against a real daemon: /api/v1/agents, the client, agents_dir sync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbid.client import SymbiontClient
from symbid.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.integration.daemon_helper import Daemon, UnixHTTP

FILE_AGENTS = 'agent filer { command: ["/bin/sh", "-c", "echo from-file"] }\n'


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"agents.symbi": FILE_AGENTS}, tcp=False)
    d.start()
    yield d
    d.cleanup()


def client(daemon: Daemon) -> SymbiontClient:
    return SymbiontClient(socket_path=daemon.socket)


def post_text(daemon: Daemon, text: str, content_type: str = "text/x-symbi") -> tuple[int, Any]:
    import json

    conn = UnixHTTP(daemon.socket)
    try:
        conn.request("POST", "/api/v1/agents", body=text.encode(),
                     headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def echo(word: str) -> list[str]:
    return ["/bin/sh", "-c", f"echo {word}"]


def add_job(daemon: Daemon, name: str, agent: str) -> dict[str, Any]:
    status, job = daemon.api("POST", "/api/v1/schedule",
                             {"name": name, "agent_id": agent, "cron_expr": "0 3 * * *"})
    assert status == 201, job
    return dict(job)


def run_output(daemon: Daemon, job: str) -> str:
    status, run = daemon.api("POST", f"/api/v1/schedule/{job}/run", {})
    assert status == 202, run

    def finished() -> Any:
        _, got = daemon.api("GET", f"/api/v1/runs/{run['id']}")
        return got if got["status"] not in ("pending", "running") else None

    got = daemon.wait_for(finished)
    assert got["status"] == "succeeded", got
    return str(got["output"]).strip()


def test_an_agent_defined_by_json_is_listed_shown_and_runnable(daemon: Daemon) -> None:
    c = client(daemon)
    result = c.agents.create(name="echo", command=echo("hello"), env={"A": "b"})
    assert (result.created, result.updated) == (["echo"], [])
    [shown] = result.agents
    assert shown.source == "api" and shown.command == echo("hello") and shown.jobs == 0
    assert shown.kind == "command" and shown.env.to_dict() == {"A": "b"}
    assert shown.created_at.endswith("Z") and shown.shadowed_by is None
    add_job(daemon, "greeter", "echo")
    assert c.agents.get("echo").jobs == 1
    assert [a.name for a in c.agents.list()] == ["echo", "filer"]
    assert run_output(daemon, "greeter") == "hello"


def test_dsl_text_defines_every_agent_block_and_reposting_updates_them(daemon: Daemon) -> None:
    c = client(daemon)
    text = ('agent one { command: ["/bin/sh", "-c", "echo v1"] }\n'
            'agent two { model: "some-model" }\n')
    first = c.agents.create(dsl=text)
    assert (first.created, first.updated) == (["one", "two"], [])
    assert [a.kind for a in first.agents] == ["command", "llm"]
    add_job(daemon, "uses-one", "one")
    assert run_output(daemon, "uses-one") == "v1"
    second = c.agents.create(dsl=text.replace("v1", "v2"))
    assert (second.created, second.updated) == ([], ["one", "two"])
    assert run_output(daemon, "uses-one") == "v2"  # its next run uses the new definition
    assert c.agents.get("one").created_at == first.agents[0].created_at


def test_a_listed_agent_can_be_posted_back_as_it_is(daemon: Daemon) -> None:
    c = client(daemon)
    c.agents.create(name="llm", model="m", endpoint="http://127.0.0.1:9/v1")
    listed = c.agents.get("llm").to_dict()
    for key in ("source", "created_at", "updated_at", "jobs", "shadowed_by"):
        listed.pop(key)
    assert c.agents.create(**listed).updated == ["llm"]


def test_a_used_agent_cannot_be_deleted_and_the_message_lists_its_jobs(daemon: Daemon) -> None:
    c = client(daemon)
    c.agents.create(name="busy", command=echo("x"))
    for i in range(12):
        add_job(daemon, f"job-{i:02d}", "busy")
    with pytest.raises(Conflict) as refused:
        c.agents.delete("busy")
    message = refused.value.message
    assert "used by 12 job(s): job-00, job-01" in message and "job-09 and 2 more" in message
    assert "job-10" not in message
    for i in range(12):
        daemon.api("DELETE", f"/api/v1/schedule/job-{i:02d}")
    assert c.agents.delete("busy").to_dict() == {"name": "busy", "deleted": True}
    with pytest.raises(NotFound):
        c.agents.get("busy")
    with pytest.raises(NotFound):
        c.agents.delete("busy")


def test_a_file_agent_cannot_be_deleted_or_redefined_through_the_api(daemon: Daemon) -> None:
    path = str(daemon.agents_dir / "agents.symbi")
    status, body = daemon.api("DELETE", "/api/v1/agents/filer")
    assert status == 409 and path in body["error"]["message"]
    assert "edit that file and run `symbi reload`" in body["error"]["message"]
    status, body = daemon.api("POST", "/api/v1/agents", {"name": "filer", "command": ["/x"]})
    assert status == 409 and path in body["error"]["message"]
    assert body["error"]["field"] == "name"


def test_a_file_agent_shadows_an_api_agent_of_the_same_name_and_says_so(
        daemon: Daemon) -> None:
    c = client(daemon)
    c.agents.create(name="shared", command=echo("from-api"))
    add_job(daemon, "uses-shared", "shared")
    assert run_output(daemon, "uses-shared") == "from-api"
    daemon.write_agents("shared.symbi",
                        'agent shared { command: ["/bin/sh", "-c", "echo file-wins"] }\n')
    reloaded = c.reload()
    assert reloaded.agents_created == ["shared"]
    [warning] = [w for w in reloaded.warnings if "shadows" in w]
    assert "shared.symbi" in warning and "the file's definition is used" in warning
    rows = [a for a in c.agents.list() if a.name == "shared"]
    assert [(r.source.startswith("file:"), r.shadowed_by is not None, r.jobs)
            for r in rows] == [(True, False, 1), (False, True, 0)]
    assert c.agents.get("shared").source.startswith("file:")
    assert run_output(daemon, "uses-shared") == "file-wins"
    assert "shadows the agent" in daemon.log.read_text()
    # Deleting the name through the API removes the shadowed API row, never the file's.
    assert c.agents.delete("shared").deleted is True
    assert [r.source.startswith("file:") for r in c.agents.list() if r.name == "shared"] \
        == [True]


def test_when_the_file_drops_a_shadowing_agent_the_api_one_is_used_again(
        daemon: Daemon) -> None:
    c = client(daemon)
    c.agents.create(name="shared", command=echo("from-api"))
    daemon.write_agents("shared.symbi", 'agent shared { command: ["/bin/true"] }\n')
    c.reload()
    (daemon.agents_dir / "shared.symbi").unlink()
    assert c.reload().agents_removed == ["shared"]
    assert c.agents.get("shared").source == "api"


def test_api_agents_survive_a_restart(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": FILE_AGENTS}, tcp=False)
    d.start()
    try:
        client(d).agents.create(name="kept", command=echo("still-here"))
        add_job(d, "later", "kept")
        d.stop()
        d.start()
        assert [(a.name, a.source) for a in client(d).agents.list()] == \
            [("filer", "file:" + str(d.agents_dir / "agents.symbi")), ("kept", "api")]
        assert run_output(d, "later") == "still-here"
    finally:
        d.cleanup()


def test_a_file_that_fails_to_load_keeps_its_agents_across_reload_and_restart(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": FILE_AGENTS}, tcp=False)
    d.start()
    try:
        add_job(d, "filed", "filer")
        d.write_agents("agents.symbi", FILE_AGENTS + "agent broken {\n")
        result = client(d).reload()
        assert result.failed_files and result.agents_removed == []
        d.stop()
        d.start()
        assert client(d).agents.get("filer").command == ["/bin/sh", "-c", "echo from-file"]
        assert run_output(d, "filed") == "from-file"
    finally:
        d.cleanup()


def test_with_define_agents_off_post_is_refused_and_get_and_delete_work(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": FILE_AGENTS},
               config="", tcp=False)
    d.config.write_text(d.config.read_text().replace(
        "[scheduler]", "[api]\ndefine_agents = false\n\n[scheduler]"))
    d.start()
    try:
        c = client(d)
        with pytest.raises(Forbidden) as refused:
            c.agents.create(name="nope", command=["/bin/true"])
        assert refused.value.code == "forbidden"
        assert str(d.agents_dir) in refused.value.message
        assert "symbi reload" in refused.value.message
        status, body = post_text(d, 'agent nope { command: ["/bin/true"] }')
        assert status == 403 and body["error"]["code"] == "forbidden"
        status, body = d.api("DELETE", "/api/v1/agents/filer")  # the real reason, not 403
        assert status == 409 and "edit that file" in body["error"]["message"]
        assert [a.name for a in c.agents.list()] == ["filer"]
        status, body = d.api("POST", "/api/v1/schedule",
                             {"name": "j", "agent_id": "missing", "cron_expr": "* * * * *"})
        assert status == 400 and "POST /api/v1/agents" not in body["error"]["message"]
        assert str(d.agents_dir) in body["error"]["message"]
    finally:
        d.cleanup()


def test_schedule_blocks_in_dsl_text_are_refused_with_their_position(daemon: Daemon) -> None:
    text = ('agent ok { command: ["/bin/true"] }\n'
            'schedule nightly {\n  agent: "ok"\n  cron: "0 3 * * *"\n}\n')
    status, body = post_text(daemon, text, "text/plain")
    assert status == 400 and body["error"]["code"] == "invalid_dsl"
    message = body["error"]["message"]
    assert message.startswith("<request>:2:1: schedule blocks are not accepted here")
    assert "POST /api/v1/schedule" in message
    assert [a.name for a in client(daemon).agents.list()] == ["filer"]  # nothing defined


def test_dsl_errors_are_400_with_line_and_column(daemon: Daemon) -> None:
    status, body = post_text(daemon, 'agent a {\n  comand: ["/bin/true"]\n}\n')
    assert status == 400 and body["error"]["code"] == "invalid_dsl"
    assert body["error"]["message"].startswith("<request>:2:3: unknown key 'comand'")
    status, body = post_text(daemon, "agent {")
    assert status == 400 and body["error"]["message"].startswith("<request>:1:")


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": "a", "command": ["/bin/true"], "colour": "red"}, "colour", "unknown field"),
    ({"command": ["/bin/true"]}, "name", "is required"),
    ({"name": "bad name", "command": ["/bin/true"]}, "name", "names take letters"),
    ({"name": "a", "command": "/bin/true"}, "command", "expected a list of strings"),
    ({"name": "a", "command": []}, "command", "must not be empty"),
    ({"name": "a"}, "command", "needs command"),
    ({"name": "a", "command": ["/bin/true"], "model": "m"}, "model", "not both"),
    ({"name": "a", "command": ["/bin/true"], "kind": "llm"}, "kind", "a command agent"),
    ({"name": "a", "command": ["/bin/true"], "limits": {"memory": "lots"}}, "limits",
     "limits.memory"),
    ({"name": "a", "command": ["/bin/true"], "env": {"A": 1}}, "env", "env.A"),
])
def test_a_bad_json_agent_is_400_naming_the_field(daemon: Daemon, body: dict[str, Any],
                                                  field: str, words: str) -> None:
    status, got = daemon.api("POST", "/api/v1/agents", body)
    assert status == 400, got
    assert got["error"]["field"] == field and words in got["error"]["message"]


def test_a_body_that_is_neither_json_nor_dsl_text_is_415(daemon: Daemon) -> None:
    status, body = post_text(daemon, "name=a", "application/x-www-form-urlencoded")
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"


def test_the_client_refuses_dsl_and_fields_together(daemon: Daemon) -> None:
    with pytest.raises(InvalidInput):
        client(daemon).agents.create(dsl="agent a { command: [\"x\"] }", name="a")


def test_an_unknown_agent_message_lists_the_agents_and_where_to_define_them(
        daemon: Daemon) -> None:
    c = client(daemon)
    for i in range(11):
        c.agents.create(name=f"a{i:02d}", command=["/bin/true"])
    with pytest.raises(InvalidInput) as refused:
        c.schedule.create(name="j", agent_id="agent-123", cron_expr="0 * * * *")
    message = refused.value.message
    assert message.startswith("agent 'agent-123' is not defined (defined agents: a00, a01")
    assert "a09 and 2 more)" in message
    assert f"in a .symbi file in {daemon.agents_dir} and run `symbi reload`" in message
    assert "POST /api/v1/agents" in message and "symbi cron add --file" in message
    assert refused.value.field == "agent_id"


def test_agent_routes_are_in_the_openapi_document(daemon: Daemon) -> None:
    status, spec = daemon.api("GET", "/api/v1/openapi.json")
    assert status == 200
    assert set(spec["paths"]["/api/v1/agents"]) == {"get", "post"}
    assert set(spec["paths"]["/api/v1/agents/{name}"]) == {"get", "delete"}


def test_a_run_whose_agent_went_away_says_which_agents_there_are(daemon: Daemon) -> None:
    daemon.write_agents("gone.symbi", 'agent gone { command: ["/bin/true"] }\n'
                        'schedule uses-gone { agent: "gone"\n cron: "0 3 * * *" }\n')
    client(daemon).reload()
    daemon.write_agents("gone.symbi", 'schedule uses-gone { agent: "gone"\n'
                        ' cron: "0 3 * * *" }\n')
    client(daemon).reload()
    status, run = daemon.api("POST", "/api/v1/schedule/uses-gone/run", {})
    assert status == 202

    def finished() -> Any:
        _, got = daemon.api("GET", f"/api/v1/runs/{run['id']}")
        return got if got["status"] not in ("pending", "running") else None

    got = daemon.wait_for(finished)
    assert got["status"] == "failed"
    assert "agent 'gone' is not defined (defined agents: filer)" in got["error_message"]
