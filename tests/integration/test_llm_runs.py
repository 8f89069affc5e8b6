"""LLM agents run through the daemon: the child in the run's sandbox, against a loopback
OpenAI-compatible server standing in for the remote model."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_helper import Daemon, start_run
from tests.integration.daemon_helper import final_run as finished
from tests.llm_server import LLMServer, error, hang, slow, text, tool_calls

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as s:
        yield s


def llm_daemon(tmp_path: Path, server: LLMServer, agents: str, llm: str = "") -> Daemon:
    """A daemon whose [llm] points at ``server``, with ``llm`` added to that section."""
    d = Daemon(tmp_path, {"a.symbi": agents}, tcp=False,
               config=f'\n[llm]\nendpoint = "{server.url}"\napi_key = "${{TEST_LLM_KEY}}"\n'
                      'model = "test-model"\n' + llm)
    d.start(env={"TEST_LLM_KEY": KEY})
    return d


def add(d: Daemon, name: str, agent: str, **extra: object) -> None:
    out = d.cli("cron", "add", "--json", json.dumps(
        {"name": name, "agent_id": agent, "cron_expr": "0 0 1 1 *", **extra}))
    assert out.returncode == 0, out.stderr


def test_an_llm_agent_answers_through_the_daemon_and_its_key_stays_out_of_the_record(
    tmp_path: Path, server: LLMServer,
) -> None:
    d = llm_daemon(tmp_path, server, 'agent thinker { model: "m-1" '
                                     'system_prompt: "You are terse." }\n')
    try:
        add(d, "think", "thinker")
        server.script(text("All systems nominal.", prompt_tokens=12, completion_tokens=4))
        out = d.cli("cron", "run", "think", "--input", "Check production", "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.splitlines()[1:] == ["All systems nominal."]
        [request] = server.requests
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.body["model"] == "m-1"
        assert request.messages[0] == {"role": "system", "content": "You are terse."}
        assert request.messages[-1] == {"role": "user", "content": "Check production"}
        [run] = d.history("think")
        assert run["usage"] == {"prompt_tokens": 12, "completion_tokens": 4,
                                "total_tokens": 16, "requests": 1}
        status, metrics = d.api("GET", "/metrics")
        assert status == 200
        assert 'symbiont_llm_tokens_total{agent="thinker",kind="prompt"} 12.0' in metrics
        assert 'symbiont_llm_tokens_total{agent="thinker",kind="completion"} 4.0' in metrics
        assert 'symbiont_llm_request_duration_seconds_count{agent="thinker"} 1.0' in metrics
        d.stop()
        for path in [d.log, *d.state.glob("symbid.db*")]:
            assert KEY.encode() not in path.read_bytes(), path
        assert "1 model request(s), 12 prompt and 4 completion token(s)" in d.log.read_text()
    finally:
        d.cleanup()


def test_the_previous_runs_summary_reaches_the_model(tmp_path: Path, server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, 'agent thinker { model: "m-1" }\n')
    try:
        add(d, "remember", "thinker")
        server.script(text("first answer"), text("second answer"))
        assert d.cli("cron", "run", "remember", "--wait").returncode == 0
        assert d.cli("cron", "run", "remember", "--wait").returncode == 0
        second = server.requests[1].messages
        assert any("first answer" in (m.get("content") or "") for m in second
                   if m["role"] == "system"), second
    finally:
        d.cleanup()


def test_a_tool_runs_in_the_runs_sandbox_without_the_key_and_is_listed_in_the_record(
        tmp_path: Path, server: LLMServer) -> None:
    probe = tmp_path / "probe.sh"
    probe.write_text('#!/bin/sh\necho "env has key: $(env | grep -c sk-test)"\n')
    probe.chmod(0o755)
    d = llm_daemon(tmp_path, server, f'''
agent operator {{
  model: "m-1"
  tools {{
    probe {{
      description: "Probe a target"
      parameters: {{ target: "string" }}
      command: ["{probe}"]
    }}
  }}
}}
''')
    try:
        add(d, "operate", "operator")
        server.script(tool_calls(("call_1", "probe", {"target": "web-1"})), text("web-1 up"))
        out = d.cli("cron", "run", "operate", "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
        tool_message = server.requests[1].messages[-1]
        assert tool_message == {"role": "tool", "tool_call_id": "call_1",
                                "content": "env has key: 0\n"}
        [row] = d.history("operate")
        assert row["tool_call_count"] == 1
        status, run = d.api("GET", f"/api/v1/runs/{row['id']}")
        assert status == 200
        [call] = run["tool_calls"]
        assert (call["id"], call["name"], call["arguments"], call["exit_status"],
                call["error"]) == ("call_1", "probe", '{"target": "web-1"}', 0, None)
        assert call["duration_ms"] >= 0
    finally:
        d.cleanup()


def test_an_llm_agent_without_an_endpoint_fails_saying_what_to_set(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent thinker { model: "m-1" }\n'}, tcp=False)
    try:
        d.start()
        add(d, "nowhere", "thinker")
        out = d.cli("cron", "run", "nowhere", "--wait")
        assert out.returncode == 1
        assert "no endpoint: set the agent's endpoint or [llm] endpoint" in out.stdout
    finally:
        d.cleanup()


def test_a_failing_endpoint_fails_the_run_with_the_reason(tmp_path: Path,
                                                          server: LLMServer) -> None:
    from tests.llm_server import error

    d = llm_daemon(tmp_path, server, 'agent thinker { model: "m-1" }\n')
    try:
        add(d, "broken", "thinker")
        server.script(*[error(400)] * 2)
        out = d.cli("cron", "run", "broken", "--wait")
        assert out.returncode == 1 and "400" in out.stdout, out.stdout
        assert os.path.exists(d.log)
    finally:
        d.cleanup()


def test_a_tool_with_a_full_json_schema_runs_through_the_daemon(tmp_path: Path,
                                                                server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, '''
agent operator {
  model: "m-1"
  tools {
    restart {
      description: "Restart a service"
      parameters_schema: """{"type": "object", "properties": {"service": {"type": "string"}},
                            "required": ["service"]}"""
      command: ["/bin/sh", "-c", "cat"]
    }
  }
}
''')
    try:
        add(d, "schema-tool", "operator")
        server.script(tool_calls(("c1", "restart", {"service": "nginx"})), text("restarted"))
        out = d.cli("cron", "run", "schema-tool", "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(server.requests[1].messages[-1]["content"]) == {"service": "nginx"}
        assert server.requests[0].body["tools"][0]["function"]["parameters"]["required"] == \
            ["service"]
    finally:
        d.cleanup()


def test_a_run_that_leaves_a_fifo_as_its_summary_does_not_hold_up_other_runs(
    tmp_path: Path,
) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent trap { command: ["/bin/sh", "-c", "rm -f '
                          '\\"$SYMBI_SUMMARY_FILE\\"; mkfifo \\"$SYMBI_SUMMARY_FILE\\"; '
                          'echo trapped"] }\n'
                          'agent fine { command: ["/bin/echo", "fine"] }\n'}, tcp=False)
    try:
        d.start()
        add(d, "trapper", "trap")
        add(d, "innocent", "fine")
        first = d.cli("cron", "run", "trapper", "--wait", "--timeout", "20")
        assert first.returncode == 0, first.stdout + first.stderr
        second = d.cli("cron", "run", "innocent", "--wait", "--timeout", "20")
        assert second.returncode == 0 and "fine" in second.stdout
    finally:
        d.cleanup()


def test_an_llm_agents_env_reaches_its_tools_but_the_key_does_not(
    tmp_path: Path, server: LLMServer,
) -> None:
    d = llm_daemon(tmp_path, server, '''
agent operator {
  model: "m-1"
  env: { REGION: "eu-1" }
  tools {
    where {
      description: "Say the region"
      parameters: {}
      command: ["/bin/sh", "-c", "echo region=$REGION key=${SYMBI_LLM_API_KEY:-none}"]
    }
  }
}
''')
    try:
        add(d, "env-tool", "operator")
        server.script(tool_calls(("c1", "where", {})), text("done"))
        out = d.cli("cron", "run", "env-tool", "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
        assert server.requests[1].messages[-1]["content"] == "region=eu-1 key=none\n"
    finally:
        d.cleanup()


def test_shared_mode_carries_the_whole_message_history_across_runs_and_a_restart(
        tmp_path: Path, server: LLMServer) -> None:
    probe = tmp_path / "probe.sh"
    probe.write_text("#!/bin/sh\necho probed\n")
    probe.chmod(0o755)
    d = llm_daemon(tmp_path, server, f'''
agent keeper {{
  model: "m-1"
  tools {{
    probe {{
      description: "Probe"
      parameters: {{ target: "string" }}
      command: ["{probe}"]
    }}
  }}
}}
''')
    try:
        add(d, "keep", "keeper", session_mode="shared_persistent")
        server.script(tool_calls(("c1", "probe", {"target": "db"})), text("db is fine"))
        assert d.cli("cron", "run", "keep", "--input", "check db", "--wait").returncode == 0
        d.stop()
        d.start(env={"TEST_LLM_KEY": KEY})
        server.script(text("still fine"))
        out = d.cli("cron", "run", "keep", "--input", "and now?", "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
        sent = server.requests[2].messages
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool",
                                             "assistant", "user"]
        assert sent[1] == {"role": "user", "content": "check db"}
        assert sent[2]["tool_calls"][0]["id"] == "c1"
        assert sent[3] == {"role": "tool", "tool_call_id": "c1", "content": "probed\n"}
        assert sent[4] == {"role": "assistant", "content": "db is fine"}
        assert sent[5] == {"role": "user", "content": "and now?"}
        status, ctx = d.api("GET", "/api/v1/schedule/keep/context")
        assert status == 200
        assert [len(t["messages"]) for t in ctx["history"]] == [4, 2]
    finally:
        d.cleanup()


def test_fully_ephemeral_carries_nothing_to_the_model(tmp_path: Path,
                                                     server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, 'agent forgetful { model: "m-1" }\n')
    try:
        add(d, "forget", "forgetful", session_mode="fully_ephemeral")
        server.script(text("first"), text("second"))
        assert d.cli("cron", "run", "forget", "--input", "one", "--wait").returncode == 0
        assert d.cli("cron", "run", "forget", "--input", "two", "--wait").returncode == 0
        assert server.requests[1].messages == [{"role": "user", "content": "two"}]
    finally:
        d.cleanup()


def test_a_hung_endpoint_is_cut_off_by_max_runtime(tmp_path: Path, server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, 'agent stuck { model: "m-1" }\n')
    try:
        add(d, "hung", "stuck", policy={"max_runtime": "2s"})
        server.script(hang())
        out = d.cli("cron", "run", "hung", "--wait")
        assert out.returncode != 0
        [run] = d.history("hung")
        assert run["status"] == "timed_out", run
        assert "exceeded max_runtime 2s" in run["error_message"]
        assert 1900 <= run["execution_time_ms"] < 15000
    finally:
        d.cleanup()


def test_max_tokens_per_run_stops_a_run_through_the_daemon(tmp_path: Path,
                                                         server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, 'agent spender { model: "m-1" max_tokens_per_run: 100 }\n')
    try:
        add(d, "spend", "spender")
        server.script(text("long answer", prompt_tokens=90, completion_tokens=30))
        assert d.cli("cron", "run", "spend", "--wait").returncode != 0
        [run] = d.history("spend")
        assert run["status"] == "failed"
        assert "max_tokens_per_run 100 exceeded (120 used)" in run["error_message"]
        assert run["usage"]["total_tokens"] == 120
    finally:
        d.cleanup()


def test_an_llm_heartbeat_stops_on_sleep_and_each_iteration_sees_the_previous_summary(
        tmp_path: Path, server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, 'agent monitor { model: "m-1" }\n')
    try:
        add(d, "watch", "monitor", input="check the fleet",
            heartbeat={"enabled": True, "context_mode": "ephemeral_with_summary",
                       "max_iterations": 10})
        server.script(text("restarted web-2", prompt_tokens=3, completion_tokens=1),
                      text("web-2 healthy\nsleep", prompt_tokens=5, completion_tokens=2))
        assert d.cli("cron", "run", "watch", "--wait").returncode == 0
        assert len(server.requests) == 2
        first, second = (r.messages for r in server.requests)
        assert first == [{"role": "user", "content": "check the fleet"}]
        assert second[0] == {"role": "system",
                             "content": "Summary of the previous run:\nrestarted web-2"}
        [run] = d.history("watch")
        assert run["stop_reason"] == "sleep"
        assert [i["summary"] for i in run["iterations"]] == ["restarted web-2",
                                                             "web-2 healthy\nsleep"]
        assert run["usage"] == {"prompt_tokens": 8, "completion_tokens": 3,
                                "total_tokens": 11, "requests": 2}
        shown = d.cli("cron", "history", "watch")
        assert shown.returncode == 0, shown.stderr
        assert "DETAIL" in shown.stdout and "2 iter (sleep), 11 tok" in shown.stdout
    finally:
        d.cleanup()


def two_at_once(d: Daemon) -> list[dict[str, Any]]:
    ids = [start_run(d, "one"), start_run(d, "two")]
    return [finished(d, rid) for rid in ids]


def test_max_concurrent_requests_bounds_the_requests_in_flight_across_runs_and_reloads(
    tmp_path: Path, server: LLMServer,
) -> None:
    server.default = slow(text("done"), 1.0)
    d = llm_daemon(tmp_path, server, 'agent thinker { model: "m-1" }\n',
                   "max_concurrent_requests = 1\n")
    try:
        slots = tmp_path / "runs" / "llm-slots"
        assert sorted(os.listdir(slots)) == ["slot-0"]
        add(d, "one", "thinker")
        add(d, "two", "thinker")
        runs = two_at_once(d)
        assert [r["status"] for r in runs] == ["succeeded"] * 2, runs
        assert len(server.requests) == 2 and server.max_in_flight == 1
        # A reload raises it: the slot files follow, and both runs' requests overlap.
        d.config.write_text(d.config.read_text().replace("max_concurrent_requests = 1",
                                                         "max_concurrent_requests = 2"))
        assert d.cli("reload").returncode == 0
        assert sorted(os.listdir(slots)) == ["slot-0", "slot-1"]
        runs = two_at_once(d)
        assert [r["status"] for r in runs] == ["succeeded"] * 2, runs
        assert len(server.requests) == 4 and server.max_in_flight == 2
    finally:
        d.cleanup()


def test_a_run_that_cannot_get_a_request_slot_before_its_deadline_fails_saying_why(
    tmp_path: Path, server: LLMServer,
) -> None:
    import fcntl

    d = llm_daemon(tmp_path, server, 'agent thinker { model: "m-1" }\n')
    try:
        add(d, "starved", "thinker", policy={"max_runtime": "3s"})
        held = []
        for slot in sorted((tmp_path / "runs" / "llm-slots").iterdir()):
            fd = os.open(slot, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)  # what a run holding it does
            held.append(fd)
        try:
            run = finished(d, start_run(d, "starved"))
        finally:
            for fd in held:
                os.close(fd)
        # Failed with the reason, before max_runtime's kill would have said less.
        assert run["status"] == "failed", run
        assert "no request slot came free before the run's deadline: " \
            "max_concurrent_requests (4) requests were in flight" in run["error_message"], run
        assert server.requests == []
    finally:
        d.cleanup()


def test_with_summarize_the_models_summary_is_stored_and_the_next_run_sees_it(
    tmp_path: Path, server: LLMServer,
) -> None:
    d = llm_daemon(tmp_path, server, 'agent thinker { model: "m-1" summarize: true }\n'
                                     'agent plain { model: "m-1" }\n')
    try:
        add(d, "remember", "thinker")
        server.script(text("first answer, long and detailed"), text("SUMMARY: web-2 slow"),
                      text("second answer"), text("SUMMARY: all fine"))
        first = finished(d, start_run(d, "remember"))
        assert (first["status"], first["summary"]) == ("succeeded", "SUMMARY: web-2 slow")
        assert first["output"].strip() == "first answer, long and detailed"
        second = finished(d, start_run(d, "remember"))
        assert second["summary"] == "SUMMARY: all fine"
        assert len(server.requests) == 4
        told = [m["content"] for m in server.requests[2].messages if m["role"] == "system"]
        assert told == ["Summary of the previous run:\nSUMMARY: web-2 slow"]
        # An agent without summarize makes one request a run; its summary is its reply.
        add(d, "forget", "plain")
        server.script(text("plain answer"))
        third = finished(d, start_run(d, "forget"))
        assert third["summary"] == "plain answer" and len(server.requests) == 5
        # A summary request that fails leaves the run succeeded, summarised by its reply,
        # and says why in the daemon's log.
        server.script(text("fourth answer"), error(400))
        fourth = finished(d, start_run(d, "remember"))
        assert (fourth["status"], fourth["summary"]) == ("succeeded", "fourth answer")
        assert "the summary request failed: the model endpoint answered 400" in \
            d.log.read_text()
    finally:
        d.cleanup()


def test_a_run_killed_by_max_runtime_keeps_the_usage_and_tool_calls_it_had(
        tmp_path: Path, server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, '''
agent operator {
  model: "m-1"
  tools {
    probe { description: "Probe" parameters: { target: "string" } command: ["cat"] }
  }
}
''')
    try:
        add(d, "slow-op", "operator", policy={"max_runtime": "3s"})
        server.script(tool_calls(("c1", "probe", {"target": "db"}), prompt_tokens=10,
                                 completion_tokens=2), hang())
        assert d.cli("cron", "run", "slow-op", "--wait").returncode != 0
        [row] = d.history("slow-op")
        assert row["status"] == "timed_out"
        assert row["usage"] == {"prompt_tokens": 10, "completion_tokens": 2,
                                "total_tokens": 12, "requests": 1}
        assert row["tool_call_count"] == 1
        _, metrics = d.api("GET", "/metrics")
        assert 'symbiont_llm_tokens_total{agent="operator",kind="prompt"} 10.0' in metrics
    finally:
        d.cleanup()


def test_the_daemon_warns_at_start_about_an_llm_agent_whose_key_is_not_set(
        tmp_path: Path, server: LLMServer) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent thinker { model: "m-1" }\n'}, tcp=False,
               config=f'\n[llm]\nendpoint = "{server.url}"\napi_key = "${{NOT_SET_KEY}}"\n')
    d.start()
    try:
        assert d.api("GET", "/api/v1/agents")[0] == 200  # its agents are loaded
        assert "agent 'thinker': [llm] api_key: ${NOT_SET_KEY} is not set in symbid's " \
            "environment" in d.log.read_text()
    finally:
        d.cleanup()


def test_a_summary_request_that_does_not_fit_in_max_runtime_leaves_the_run_succeeded(
        tmp_path: Path, server: LLMServer) -> None:
    d = llm_daemon(tmp_path, server, 'agent thinker { model: "m-1" summarize: true }\n')
    try:
        add(d, "brief", "thinker", policy={"max_runtime": "3s"})
        server.script(text("the real answer"), hang())
        run = finished(d, start_run(d, "brief"))
        assert (run["status"], run["output"], run["summary"]) == \
            ("succeeded", "the real answer\n", "the real answer")
        assert run["execution_time_ms"] < 3000
        assert "the summary request failed" in d.log.read_text()
    finally:
        d.cleanup()
