"""`symbi run AGENT` against a real daemon: the agent runs once, outside the schedule, in
the same sandbox and sessions; its runs are recorded under a hidden per-agent ad hoc job
that never fires by itself; `--session JOB` runs in a job's own context."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbid.client import SymbiontClient
from symbid.control import MAX_FOLLOWERS
from tests.integration.daemon_helper import Daemon
from tests.integration.daemon_helper import add_job as add
from tests.llm_server import LLMServer, text

SHOW = 'cat "$SYMBI_CONTEXT_FILE"; echo; echo "got: $(cat)"'
AGENTS = "".join(
    f"agent {name} {{ command: {json.dumps(['/bin/sh', '-c', script])} }}\n"
    for name, script in {
        "echo": 'echo "got: $(cat)"',
        "show": SHOW,
        "other": "echo other",
        "fail": "echo half done; echo broken >&2; exit 3",
        "hang": "echo waiting; sleep 300 & wait",
    }.items())


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("adhoc"), {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def runs_of(d: Daemon, job: str) -> list[dict[str, Any]]:
    """The job's runs, newest first; none while it does not exist."""
    status, runs = d.api("GET", f"/api/v1/schedule/{job}/history")
    return list(runs) if status == 200 else []


def context_of(output: str) -> dict[str, Any]:
    """The context file an agent printed on its first line."""
    return dict(json.loads(output.splitlines()[0]))


def test_symbi_run_prints_the_output_of_a_command_agent(daemon: Daemon) -> None:
    out = daemon.cli("run", "echo", "--input", "test")
    assert (out.returncode, out.stdout, out.stderr) == (0, "got: test\n", "")


def test_the_run_is_recorded_under_the_agents_ad_hoc_job(daemon: Daemon) -> None:
    out = daemon.cli("run", "echo", "--input", "recorded", "--format", "json")
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert (run["status"], run["trigger"], run["input"]) == ("succeeded", "manual", "recorded")
    status, job = daemon.api("GET", "/api/v1/schedule/adhoc:echo")
    assert status == 200 and run["job_id"] == job["id"]
    assert (job["source"], job["status"], job["session_mode"], job["next_run"]) == \
        ("adhoc", "paused", "fully_ephemeral", None)
    status, stored = daemon.api("GET", f"/api/v1/runs/{run['id']}")
    assert status == 200 and stored["output"] == "got: recorded\n"
    history = daemon.cli("cron", "history", "adhoc:echo")
    assert history.returncode == 0 and run["id"][:8] in history.stdout
    assert "manual" in history.stdout and "succeeded" in history.stdout


def test_the_ad_hoc_job_is_hidden_from_listings_unless_all_is_asked_for(
        daemon: Daemon) -> None:
    assert daemon.cli("run", "echo").returncode == 0
    assert "adhoc:echo" not in daemon.cli("cron", "list").stdout
    listed = daemon.cli("cron", "list", "--all")
    assert listed.returncode == 0
    [row] = [line for line in listed.stdout.splitlines() if line.startswith("adhoc:echo")]
    assert "paused" in row and "ad hoc (symbi run)" in row
    _, jobs = daemon.api("GET", "/api/v1/schedule")
    _, every = daemon.api("GET", "/api/v1/schedule?all=true")
    assert "adhoc:echo" not in [j["name"] for j in jobs]
    assert "adhoc:echo" in [j["name"] for j in every]
    _, sdk = daemon.api("GET", "/symbiont/api/v1/schedules")
    assert "adhoc:echo" not in [j["name"] for j in sdk]
    _, agent = daemon.api("GET", "/api/v1/agents/echo")
    assert agent["jobs"] == 0
    _, health = daemon.api("GET", "/api/v1/health/scheduler")
    assert health["paused_jobs"] == 0
    status, bad = daemon.api("GET", "/api/v1/schedule?all=maybe")
    assert status == 400 and bad["error"]["field"] == "all"


def test_a_short_id_of_the_ad_hoc_job_is_found(daemon: Daemon) -> None:
    assert daemon.cli("run", "echo").returncode == 0
    _, job = daemon.api("GET", "/api/v1/schedule/adhoc:echo")
    out = daemon.cli("cron", "status", job["id"][:8])
    assert out.returncode == 0, out.stderr
    assert "ad hoc (symbi run)" in out.stdout and "adhoc" in out.stdout


def test_a_failed_run_prints_its_output_and_its_error_and_exits_1(daemon: Daemon) -> None:
    out = daemon.cli("run", "fail")
    assert out.returncode == 1
    assert out.stdout == "half done\n"
    assert out.stderr.startswith("symbi: run ") and " failed: " in out.stderr
    assert "exit" in out.stderr and "3" in out.stderr


def test_without_a_session_nothing_is_carried_from_one_run_to_the_next(
        daemon: Daemon) -> None:
    first = daemon.cli("run", "show", "--input", "one")
    second = daemon.cli("run", "show", "--input", "two")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    for out in (first, second):
        context = context_of(out.stdout)
        assert context["session_mode"] == "fully_ephemeral" and context["summary"] is None
    assert second.stdout.splitlines()[-1] == "got: two"


def test_with_a_session_the_run_reads_and_leaves_that_jobs_context(daemon: Daemon) -> None:
    job = add(daemon, "remember", "show")
    first = daemon.cli("run", "show", "--session", "remember", "--input", "first")
    assert first.returncode == 0, first.stderr
    assert context_of(first.stdout)["summary"] is None
    second = daemon.cli("run", "show", "--session", job["id"][:8], "--input", "second")
    assert second.returncode == 0, second.stderr
    context = context_of(second.stdout)
    assert context["session_mode"] == "ephemeral_with_summary"
    assert "got: first" in context["summary"]
    runs = daemon.history("remember")
    assert [(r["trigger"], r["input_preview"]) for r in runs] == \
        [("manual", "second"), ("manual", "first")]


def test_with_a_session_and_no_input_the_job_gets_its_own_input(daemon: Daemon) -> None:
    add(daemon, "with-input", "echo", input="its own")
    out = daemon.cli("run", "echo", "--session", "with-input")
    assert (out.returncode, out.stdout) == (0, "got: its own\n")


def test_a_session_of_another_agents_job_is_400_naming_both_agents(daemon: Daemon) -> None:
    add(daemon, "others-job", "other")
    status, body = daemon.api("POST", "/api/v1/agents/echo/run", {"session": "others-job"})
    assert status == 400 and body["error"]["field"] == "session"
    message = body["error"]["message"]
    assert "'other'" in message and "'echo'" in message and "others-job" in message
    out = daemon.cli("run", "echo", "--session", "others-job")
    assert out.returncode == 1 and "runs agent 'other', not 'echo'" in out.stderr
    assert daemon.history("others-job") == []


def test_an_unknown_session_job_is_404(daemon: Daemon) -> None:
    status, body = daemon.api("POST", "/api/v1/agents/echo/run", {"session": "no-such-job"})
    assert status == 404 and "no-such-job" in body["error"]["message"]
    assert body["error"]["field"] == "session"
    assert daemon.cli("run", "echo", "--session", "no-such-job").returncode == 3


def test_an_unknown_agent_is_404_naming_the_defined_ones(daemon: Daemon) -> None:
    status, body = daemon.api("POST", "/api/v1/agents/nobody/run", {"input": "x"})
    assert status == 404
    message = body["error"]["message"]
    assert "agent 'nobody' is not defined" in message and "echo" in message
    out = daemon.cli("run", "nobody")
    assert out.returncode == 3 and "agent 'nobody' is not defined" in out.stderr
    _, every = daemon.api("GET", "/api/v1/schedule?all=true")
    assert "adhoc:nobody" not in [j["name"] for j in every]
    status, body = daemon.api("POST", f"/api/v1/agents/{'x' * 5000}/run")
    assert status == 404 and "(5000 characters)" in body["error"]["message"]
    assert len(body["error"]["message"]) < 1000


@pytest.mark.parametrize(("body", "field"), [
    ({"inputs": "x"}, "inputs"),
    ({"input": 5}, "input"),
    ({"session": ""}, "session"),
    ({"session": 7}, "session"),
    ({"wait": "yes"}, "wait"),
])
def test_a_bad_body_is_400_naming_the_field(daemon: Daemon, body: dict[str, Any],
                                            field: str) -> None:
    status, answer = daemon.api("POST", "/api/v1/agents/echo/run", body)
    assert status == 400 and answer["error"]["field"] == field, answer
    assert field in answer["error"]["message"]


def test_an_unknown_query_parameter_is_400(daemon: Daemon) -> None:
    status, answer = daemon.api("POST", "/api/v1/agents/echo/run?wait=true", {})
    assert status == 400 and answer["error"]["field"] == "wait"


def test_the_route_queues_the_run_or_with_wait_answers_once_it_has_ended(
        daemon: Daemon) -> None:
    status, queued = daemon.api("POST", "/api/v1/agents/echo/run", {"input": "later"})
    assert status == 202 and queued["status"] == "pending"
    status, done = daemon.api("POST", "/api/v1/agents/echo/run",
                              {"input": "now", "wait": True})
    assert status == 200 and done["status"] == "succeeded"
    assert done["output"] == "got: now\n"
    status, empty = daemon.api("POST", "/api/v1/agents/echo/run")  # no body at all
    assert status == 202 and empty["input"] is None


def _wait_raw(d: Daemon, agent: str) -> socket.socket:
    """A client asking for a run with wait, which then reads nothing."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(d.socket)
    body = b'{"wait": true}'
    sock.sendall(f"POST /api/v1/agents/{agent}/run HTTP/1.1\r\nHost: localhost\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    return sock


def test_waiting_clients_take_the_followers_places_and_one_that_goes_away_frees_it(
        daemon: Daemon) -> None:
    assert daemon.cli("run", "echo").returncode == 0
    before = len(daemon.history("adhoc:echo"))
    waiting = []
    try:
        for n in range(1, MAX_FOLLOWERS + 1):
            waiting.append(_wait_raw(daemon, "hang"))
            daemon.wait_for(lambda n=n: len(runs_of(daemon, "adhoc:hang")) == n)
        status, body = daemon.api("POST", "/api/v1/agents/echo/run", {"wait": True})
        assert status == 503 and body["error"]["code"] == "too_many_followers"
        assert len(daemon.history("adhoc:echo")) == before  # a refused wait queued nothing
        waiting.pop().close()  # it goes away while its run prints nothing

        def waited() -> Any:
            status, run = daemon.api("POST", "/api/v1/agents/other/run", {"wait": True})
            return run if status == 200 else None  # 503 until the place is free again
        assert daemon.wait_for(waited)["output"] == "other\n"
    finally:
        for sock in waiting:
            sock.close()
        for run in runs_of(daemon, "adhoc:hang"):
            if run["status"] in ("pending", "running"):
                daemon.api("POST", f"/api/v1/runs/{run['id']}/cancel")
        daemon.wait_for(lambda: all(r["status"] == "cancelled"
                                    for r in runs_of(daemon, "adhoc:hang")))


def test_the_python_client_runs_an_agent_and_waits_for_it(daemon: Daemon) -> None:
    client = SymbiontClient(socket_path=daemon.socket)
    run = client.agents.run("echo", input="from python")
    assert (run.status, run.output) == ("succeeded", "got: from python\n")
    queued = client.agents.run("echo", wait=False)
    assert queued.status == "pending"
    ids = [j.id for j in client.schedule.list(all=True)]
    assert queued.job_id in ids and queued.job_id not in [j.id for j in
                                                            client.schedule.list()]


@pytest.mark.parametrize("action", ["pause", "resume", "reset"])
def test_pausing_resuming_or_resetting_the_ad_hoc_job_is_refused_naming_symbi_run(
        daemon: Daemon, action: str) -> None:
    assert daemon.cli("run", "echo").returncode == 0
    out = daemon.cli("cron", action, "adhoc:echo")
    assert out.returncode == 1 and "ad hoc job of agent 'echo'" in out.stderr
    assert "symbi run" in out.stderr
    status, body = daemon.api("POST", f"/api/v1/schedule/adhoc:echo/{action}")
    assert status == 409 and body["error"]["code"] == "conflict"


def test_changing_the_ad_hoc_job_is_refused(daemon: Daemon) -> None:
    assert daemon.cli("run", "echo").returncode == 0
    out = daemon.cli("cron", "update", "adhoc:echo", "--cron", "* * * * *")
    assert out.returncode == 1 and "cannot be changed" in out.stderr
    status, _ = daemon.api("POST", "/symbiont/api/v1/schedules/adhoc:echo/resume")
    assert status == 409
    _, job = daemon.api("GET", "/api/v1/schedule/adhoc:echo")
    assert (job["status"], job["cron_expr"], job["next_run"]) == ("paused", None, None)


def test_removing_the_ad_hoc_job_takes_its_runs_and_the_next_run_makes_a_new_one(
        daemon: Daemon) -> None:
    assert daemon.cli("run", "other").returncode == 0
    _, old = daemon.api("GET", "/api/v1/schedule/adhoc:other")
    out = daemon.cli("cron", "remove", "adhoc:other", "--force")
    assert out.returncode == 0, out.stderr
    assert daemon.cli("run", "other").returncode == 0
    _, new = daemon.api("GET", "/api/v1/schedule/adhoc:other")
    assert new["id"] != old["id"] and len(daemon.history("adhoc:other")) == 1


def test_an_agent_is_removed_despite_its_ad_hoc_job_which_stays_with_its_runs(
        daemon: Daemon) -> None:
    status, _ = daemon.api("POST", "/api/v1/agents",
                           {"name": "passing", "command": ["/bin/echo", "passing by"]})
    assert status == 201
    assert daemon.cli("run", "passing").stdout == "passing by\n"
    out = daemon.cli("agent", "remove", "passing", "--force")
    assert out.returncode == 0, out.stderr
    assert len(daemon.history("adhoc:passing")) == 1
    assert daemon.cli("run", "passing").returncode == 3  # the agent is gone
    status, _ = daemon.api("POST", "/api/v1/agents",
                           {"name": "passing", "command": ["/bin/echo", "back again"]})
    assert status == 201
    assert daemon.cli("run", "passing").stdout == "back again\n"
    assert len(daemon.history("adhoc:passing")) == 2


def test_symbi_run_completes_agent_names_and_session_jobs(daemon: Daemon) -> None:
    add(daemon, "completed-job", "echo")
    agents = daemon.cli("__complete", "run", "").stdout.split()
    assert {"echo", "show", "fail"} <= set(agents)
    jobs = daemon.cli("__complete", "run", "echo", "--session", "").stdout.split()
    assert "completed-job" in jobs and not any(j.startswith("adhoc:") for j in jobs)


def test_the_openapi_document_lists_the_agent_run_route(daemon: Daemon) -> None:
    _, spec = daemon.api("GET", "/api/v1/openapi.json")
    route = spec["paths"]["/api/v1/agents/{name}/run"]["post"]
    assert set(route["requestBody"]["content"]["application/json"]["schema"]
               ["properties"]) == {"input", "session", "wait"}
    assert {"200", "202", "400", "404"} <= set(route["responses"])
    listing = spec["paths"]["/api/v1/schedule"]["get"]["parameters"]
    assert "all" in [p["name"] for p in listing]


def test_the_ad_hoc_job_never_fires_by_itself_across_a_restart(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS}, tcp=False,
               config="tick_interval_seconds = 0.2\n")
    try:
        d.start()
        assert d.cli("run", "echo", "--input", "once").returncode == 0
        d.stop()
        d.start()
        # passes of the loop that would claim the (past) one-shot slot of an active job
        time.sleep(2)
        runs = d.history("adhoc:echo")
        assert [(r["trigger"], r["input_preview"]) for r in runs] == [("manual", "once")]
        _, job = d.api("GET", "/api/v1/schedule/adhoc:echo")
        assert (job["status"], job["next_run"]) == ("paused", None)
        assert "job name 'adhoc:echo'" not in d.log.read_text()  # not an old name
    finally:
        d.cleanup()


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as s:
        yield s


def test_an_llm_agent_runs_through_symbi_run(tmp_path: Path, server: LLMServer) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent thinker { model: "m-1" '
                                      'system_prompt: "You troubleshoot." }\n'}, tcp=False,
               config=f'\n[llm]\nendpoint = "{server.url}"\napi_key = "${{TEST_LLM_KEY}}"\n'
                      'model = "test-model"\n')
    try:
        d.start(env={"TEST_LLM_KEY": "sk-test-0123456789abcdef"})
        server.script(text("The disk is full."), text("Still full."))
        out = d.cli("run", "thinker", "--input", "Why is the site down?")
        assert (out.returncode, out.stdout) == (0, "The disk is full.\n"), out.stderr
        [request] = server.requests
        assert request.messages[0] == {"role": "system", "content": "You troubleshoot."}
        assert request.messages[-1] == {"role": "user", "content": "Why is the site down?"}
        out = d.cli("run", "thinker", "--input", "And now?")
        assert out.stdout == "Still full.\n"
        second = server.requests[1].messages
        assert not any("disk is full" in (m.get("content") or "") for m in second), second
        assert [r["status"] for r in d.history("adhoc:thinker")] == ["succeeded"] * 2
    finally:
        d.cleanup()


def test_waiting_on_a_heartbeat_session_run_waits_for_the_whole_wakeup(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent beat { command: ["/bin/sh", "-c", '
                          '"sleep 0.3; if [ $SYMBI_ITERATION -ge 3 ]; then echo sleep; '
                          'else echo working $SYMBI_ITERATION; fi"] }\n'})
    d.start()
    try:
        status, _ = d.api("POST", "/api/v1/schedule", {
            "name": "hb", "agent_id": "beat", "cron_expr": "0 0 1 1 *",
            "heartbeat": {"enabled": True, "max_iterations": 5}})
        assert status == 201
        status, run = d.api("POST", "/api/v1/agents/beat/run", {"session": "hb", "wait": True})
        assert status == 200, run
        assert run["status"] == "succeeded" and run["stop_reason"] == "sleep"
        assert len(run["iterations"]) == 3
        # a follower of a wake-up in progress sees every iteration's output, to its end
        status, again = d.api("POST", "/api/v1/schedule/hb/run")
        assert status == 202
        pieces = SymbiontClient(socket_path=d.socket).schedule.follow_output(again["id"])
        assert "".join(pieces) == "working 1\nworking 2\nsleep\n"
    finally:
        d.cleanup()


def test_overlapping_session_runs_of_a_shared_job_both_keep_their_turns(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent slow { command: ["/bin/sh", "-c", '
                          '"echo did $(cat); sleep 1"] }\n'})
    d.start()
    try:
        status, _ = d.api("POST", "/api/v1/schedule", {
            "name": "s", "agent_id": "slow", "cron_expr": "0 0 1 1 *",
            "session_mode": "shared_persistent"})
        assert status == 201
        ids = []
        for given in ("A", "B"):  # the second starts while the first goes
            status, run = d.api("POST", "/api/v1/agents/slow/run",
                                {"session": "s", "input": given})
            assert status == 202, run
            ids.append(run["id"])
        for rid in ids:
            d.wait_for(lambda rid=rid: d.api("GET", f"/api/v1/runs/{rid}")[1]["status"]
                       not in ("pending", "running"))
        runs = [d.api("GET", f"/api/v1/runs/{rid}")[1] for rid in ids]
        assert runs[1]["started_at"] < runs[0]["finished_at"]  # they overlapped
        _, ctx = d.api("GET", "/api/v1/schedule/s/context")
        assert sorted(t["input"] for t in ctx["history"]) == ["A", "B"]
    finally:
        d.cleanup()


def test_a_file_schedule_named_like_an_ad_hoc_job_is_refused_by_the_name_rule(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent echo { command: ["/bin/cat"] }\n'})
    d.start()
    try:
        assert d.cli("run", "echo", "--input", "x").returncode == 0  # makes adhoc:echo
        d.write_agents("b.symbi", 'schedule { name: "adhoc:echo" agent: "echo" '
                                  'cron: "0 0 1 1 *" }\n')
        status, result = d.api("POST", "/api/v1/reload")
        assert status == 200
        said = json.dumps(result)
        assert "adhoc:echo" in said and "keeps working" not in said
        assert "created through the API" not in said
    finally:
        d.cleanup()
