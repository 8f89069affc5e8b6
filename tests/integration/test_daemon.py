"""The real daemon on a socket in a temp dir, driven only through the CLI and the HTTP API."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from symbid.client import SymbiontClient
from symbid.errors import Conflict, InvalidInput, NotFound, Unavailable
from symbid.model import format_instant
from tests.integration.daemon_helper import BIN, TOKEN, Daemon
from tests.integration.test_sandbox import alive, wait_gone

AGENTS = """
agent echo { command: ["/bin/sh", "-c", "echo started; cat"] }
agent fail { command: ["/bin/sh", "-c", "echo broken >&2; exit 3"] }
agent hang { command: ["/bin/sh", "-c", "echo $$ > \\"$PIDFILE\\"; exec sleep 300"],
             env: { PIDFILE: "PIDFILE_PATH" } }
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS.replace("PIDFILE_PATH",
                                                         str(tmp_path / "hang.pid"))})
    d.start()
    yield d
    d.cleanup()


def now_ms() -> int:
    return int(time.time() * 1000)


def test_the_full_job_lifecycle_through_the_cli(daemon: Daemon) -> None:
    added = daemon.cli("cron", "add", "--json",
                       json.dumps({"name": "hourly", "agent_id": "echo",
                                   "cron_expr": "0 * * * *", "input": "hi"}))
    assert added.returncode == 0, added.stderr
    job_id = added.stdout.strip()
    assert len(job_id) == 36

    listed = daemon.cli("cron", "list")
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "STATUS", "SCHEDULE", "TZ"]
    assert row.split()[:2] == ["hourly", "active"] and "in " in row
    as_json = json.loads(daemon.cli("cron", "list", "--format", "json").stdout)
    assert [j["id"] for j in as_json] == [job_id]
    assert json.loads(daemon.cli("cron", "list", "--status", "paused", "--format",
                                 "json").stdout) == []

    assert daemon.cli("cron", "pause", job_id).stdout.strip() == "hourly: paused"
    assert daemon.cli("cron", "list", "--status", "paused").stdout.count("hourly") == 1
    assert daemon.cli("cron", "resume", "--name", "hourly").stdout.startswith(
        "hourly: active, next run ")

    ran = daemon.cli("cron", "run", "hourly", "--input", "custom", "--wait")
    assert ran.returncode == 0, ran.stderr
    assert "succeeded" in ran.stdout and "started\ncustom" in ran.stdout

    status = daemon.cli("cron", "status", "hourly", "--history", "5")
    assert status.returncode == 0
    assert "status:    active" in status.stdout and "manual" in status.stdout

    history = daemon.cli("cron", "history", "hourly", "--format", "csv")
    lines = history.stdout.splitlines()
    assert lines[0].startswith("id,slot,attempt,trigger,status")
    assert ",manual,succeeded," in lines[1]
    runs = json.loads(daemon.cli("cron", "history", "hourly", "--format", "json").stdout)
    assert runs[0]["output_preview"] == "started\ncustom" and "output" not in runs[0]

    removed = daemon.cli("cron", "remove", "--name", "hourly", "--force")
    assert removed.returncode == 0 and removed.stdout.startswith("removed hourly")
    assert daemon.cli("cron", "status", "hourly").returncode == 3


def test_a_failing_job_dead_letters_and_reset_rearms_it(daemon: Daemon) -> None:
    status, _ = daemon.api("POST", "/api/v1/schedule", {
        "name": "flaky", "agent_id": "fail", "cron_expr": "* * * * * *", "max_retries": 1})
    assert status == 201
    daemon.wait_for(lambda: daemon.api("GET", "/api/v1/schedule/flaky")[1]["status"]
                    == "dead_letter")
    failed = daemon.cli("cron", "history", "flaky", "--status", "failed", "--format", "json")
    runs = json.loads(failed.stdout)
    assert [(r["attempt"], r["trigger"]) for r in runs[-2:]] == [(2, "retry"), (1, "schedule")]
    assert "exit status 3: broken" in runs[0]["error_message"]
    listed = daemon.cli("cron", "list", "--status", "dead_letter", "--format", "json")
    assert [j["name"] for j in json.loads(listed.stdout)] == ["flaky"]
    reset = daemon.cli("cron", "reset", "flaky")
    assert reset.returncode == 0 and "flaky: active" in reset.stdout
    assert daemon.cli("cron", "reset", "flaky").returncode == 1  # only dead-letter jobs


def test_an_at_job_two_seconds_ahead_runs_and_its_output_is_in_history(daemon: Daemon) -> None:
    at = format_instant(now_ms() + 2000)
    status, job = daemon.api("POST", "/api/v1/schedule", {
        "name": "soon", "agent_id": "echo", "at": at, "input": "payload"})
    assert status == 201 and job["next_run"] == at
    run = daemon.wait_for(lambda: next((r for r in daemon.history("soon")
                                        if r["status"] == "succeeded"), None))
    assert run["output_preview"] == "started\npayload" and run["output_bytes"] == 15
    assert run["slot"] == at
    assert daemon.api("GET", "/api/v1/schedule/soon")[1]["status"] == "completed"


def test_jobs_and_history_persist_across_a_stop_and_restart(daemon: Daemon) -> None:
    daemon.api("POST", "/api/v1/schedule", {"name": "keep", "agent_id": "echo",
                                            "cron_expr": "0 9 * * *"})
    assert daemon.cli("cron", "run", "keep", "--wait").returncode == 0
    assert daemon.stop() == 0
    assert not os.path.exists(daemon.socket)  # a clean stop removes the socket
    daemon.start()
    status, job = daemon.api("GET", "/api/v1/schedule/keep")
    assert status == 200 and job["run_count"] == 1
    assert [r["status"] for r in daemon.history("keep")] == ["succeeded"]


def test_a_run_killed_with_the_daemon_is_interrupted_after_restart_and_never_rerun(
    daemon: Daemon, tmp_path: Path
) -> None:
    at = format_instant(now_ms() + 1000)
    daemon.api("POST", "/api/v1/schedule", {"name": "long", "agent_id": "hang", "at": at})
    pidfile = tmp_path / "hang.pid"
    pid = int(daemon.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
    daemon.kill()
    assert alive(pid)
    daemon.start()
    assert wait_gone(pid)
    time.sleep(1.5)
    (run,) = daemon.history("long")
    assert (run["slot"], run["status"]) == (at, "interrupted")
    assert daemon.api("GET", "/api/v1/schedule/long")[1]["status"] == "failed"


def test_sighup_reload_adds_updates_and_removes_file_jobs_without_duplicates(
    daemon: Daemon,
) -> None:
    jobs = 'schedule {{ name: "{n}", agent: "echo", cron: "{c}" }}\n'
    daemon.write_agents("jobs.symbi", jobs.format(n="a", c="0 1 * * *")
                        + jobs.format(n="b", c="0 2 * * *"))
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: len(daemon.api("GET", "/api/v1/schedule")[1]) == 2)
    first = {j["name"]: j for j in daemon.api("GET", "/api/v1/schedule")[1]}
    daemon.write_agents("jobs.symbi", jobs.format(n="a", c="0 3 * * *")
                        + jobs.format(n="c", c="0 4 * * *"))
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: {j["name"] for j in daemon.api("GET", "/api/v1/schedule")[1]}
                    == {"a", "c"})
    now = {j["name"]: j for j in daemon.api("GET", "/api/v1/schedule")[1]}
    assert now["a"]["id"] == first["a"]["id"] and now["a"]["cron_expr"] == "0 3 * * *"
    reloaded = daemon.cli("reload", "--format", "json")
    assert reloaded.returncode == 0, reloaded.stderr
    result = json.loads(reloaded.stdout)
    assert (result["created"], result["updated"], result["removed"], result["unchanged"]) == \
        ([], [], [], 2)
    daemon.write_agents("broken.symbi", "schedule {")
    broken = daemon.cli("reload")
    assert broken.returncode == 1 and "never closed" in broken.stderr
    assert len(daemon.api("GET", "/api/v1/schedule")[1]) == 2


def test_the_tcp_api_needs_the_bearer_token(daemon: Daemon) -> None:
    status, body = daemon.api("GET", "/api/v1/schedule", tcp=True, token=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert daemon.api("GET", "/api/v1/schedule", tcp=True, token="wrong")[0] == 401
    assert daemon.api("GET", "/metrics", tcp=True, token=None)[0] == 401
    assert daemon.api("GET", "/api/v1/schedule", tcp=True)[0] == 200


@pytest.mark.parametrize(
    ("body", "status", "field", "fragment"),
    [
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *", "colour": "red"},
         400, "colour", "unknown field"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *", "max_retries": "3"},
         400, "max_retries", "whole number"),
        ({"name": "x", "agent_id": "nobody", "cron_expr": "* * * * *"},
         400, "agent_id", "not defined"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "61 * * * *"},
         400, "cron_expr", "minute field"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "0 0 31 2 *"},
         400, "cron_expr", "never fire"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *", "timezone": "Mars/Base"},
         400, "timezone", "unknown time zone"),
        ({"name": "x", "agent_id": "echo", "at": "tomorrow"}, 400, "at", "ISO 8601"),
        ({"name": "x", "agent_id": "echo", "at": "2020-01-01T00:00:00Z"},
         400, "at", "in the past"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "at": "2030-01-01T00:00:00Z"}, 400, "at", "exactly one"),
        ({"name": "x", "agent_id": "echo"}, 400, "cron_expr", "exactly one"),
        ({"agent_id": "echo", "cron_expr": "* * * * *"}, 400, "name", "required"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *", "status": "paused"},
         400, "status", "read-only"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "policy": {"max_runtime": "soon"}}, 400, "policy.max_runtime", "not a duration"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "policy": {"approvers": ["alice"]}}, 400, "policy.approvers", "require_approval"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "agent_pin_jwt": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"}, 400, "agent_pin_jwt",
         "${VAR} reference"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "policy": {"allowed_hours": {"start": "01:00", "end": "02:00",
                                       "timezone": "Mars/Base"}}},
         400, "policy.allowed_hours.timezone", "unknown time zone"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "policy": {"require_approval": True, "approval_timeout": "0s"}},
         400, "policy.approval_timeout", "more than 0"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "policy": {"allowed_hours": {"start": "01:00", "end": "02:00", "tz": "UTC"}}},
         400, "policy.allowed_hours.tz", "unknown"),
        ({"name": "x", "agent_id": "echo", "cron_expr": "* * * * *",
          "delivery": ["webhook"]}, 400, "webhook_url", "needs webhook_url"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field_and_write_nothing(
    daemon: Daemon, body: dict[str, object], status: int, field: str, fragment: str
) -> None:
    got, data = daemon.api("POST", "/api/v1/schedule", body)
    assert got == status, data
    assert data["error"]["field"] == field
    assert fragment in data["error"]["message"]
    assert daemon.api("GET", "/api/v1/schedule")[1] == []


def test_protocol_errors_are_json_too(daemon: Daemon) -> None:
    status, data = daemon.api("POST", "/api/v1/schedule", raw=b"{not json")
    assert (status, data["error"]["code"]) == (400, "invalid_json")
    status, data = daemon.api("GET", "/api/v1/schedule/nope")
    assert (status, data["error"]["code"]) == (404, "not_found")
    status, data = daemon.api("DELETE", "/api/v1/schedule")
    assert (status, data["error"]["code"]) == (405, "method_not_allowed")
    status, data = daemon.api("GET", "/api/v1/schedule/nope/history?limit=abc")
    assert status == 404
    daemon.api("POST", "/api/v1/schedule", {"name": "dup", "agent_id": "echo",
                                            "cron_expr": "@daily"})
    status, data = daemon.api("POST", "/api/v1/schedule", {"name": "dup", "agent_id": "echo",
                                                           "cron_expr": "@daily"})
    assert (status, data["error"]["field"]) == (409, "name")
    status, data = daemon.api("GET", "/api/v1/schedule/dup/history?limit=abc")
    assert (status, data["error"]["field"]) == (400, "limit")


def test_every_native_route_answers(daemon: Daemon) -> None:
    status, job = daemon.api("POST", "/api/v1/schedule", {
        "name": "hourly-report", "agent_id": "echo", "cron_expr": "0 * * * *",
        "session_mode": "ephemeral_with_summary", "delivery": ["stdout"],
        "policy": {"max_runtime": "5m", "allowed_hours": {"start": "00:00", "end": "04:00"}}})
    assert status == 201
    assert job["policy"]["max_runtime"] == "5m"
    jid = job["id"]
    assert daemon.api("GET", "/api/v1/schedule?status=active&agent_id=echo")[1][0]["id"] == jid
    assert daemon.api("GET", "/api/v1/schedule?agent_id=other")[1] == []
    assert daemon.api("GET", "/api/v1/schedule?status=bogus")[0] == 400
    status, updated = daemon.api("PUT", f"/api/v1/schedule/{jid}", {
        "cron_expr": "0 */2 * * *", "policy": {"allowed_hours": None}})  # runs at any hour
    assert status == 200 and updated["cron_expr"] == "0 */2 * * *" and updated["id"] == jid
    assert updated["policy"]["allowed_hours"] is None and updated["policy"]["max_runtime"] == "5m"
    status, nxt = daemon.api("GET", f"/api/v1/schedule/{jid}/next_run?count=3")
    assert status == 200 and len(nxt["next_runs"]) == 3 and nxt["next_run"] == updated["next_run"]
    assert daemon.api("POST", f"/api/v1/schedule/{jid}/pause")[1]["status"] == "paused"
    assert daemon.api("POST", f"/api/v1/schedule/{jid}/resume")[1]["status"] == "active"
    status, run = daemon.api("POST", f"/api/v1/schedule/{jid}/run", {"input": "Run with input"})
    assert status == 202 and run["trigger"] == "manual"
    daemon.wait_for(lambda: daemon.api("GET", f"/api/v1/runs/{run['id']}")[1]["status"]
                    == "succeeded")
    status, runs = daemon.api("GET", f"/api/v1/schedule/{jid}/history?limit=20&status=succeeded")
    assert status == 200 and runs[0]["output_preview"] == "started\nRun with input"
    status, health = daemon.api("GET", "/api/v1/health/scheduler")
    assert status == 200 and set(health) == {"status", "active_jobs", "paused_jobs",
                                             "in_flight_jobs", "metrics"}
    assert health["status"] == "healthy" and health["active_jobs"] == 1
    assert set(health["metrics"]) == {"runs_total", "runs_succeeded", "runs_failed",
                                      "avg_execution_time_ms"}
    assert health["metrics"]["runs_succeeded"] == 1
    status, spec = daemon.api("GET", "/api/v1/openapi.json")
    assert status == 200 and "/api/v1/schedule/{job_id}/history" in spec["paths"]
    status, text = daemon.api("GET", "/metrics")
    assert status == 200
    for family in ("symbiont_cron_runs_total{job_name=\"hourly-report\",status=\"succeeded\"}",
                   "symbiont_cron_execution_duration_seconds_bucket",
                   "symbiont_cron_in_flight_jobs", "symbiont_cron_start_lateness_seconds"):
        assert family in text
    status, deleted = daemon.api("DELETE", f"/api/v1/schedule/{jid}")
    assert status == 200 and deleted["deleted"] is True


def test_file_jobs_are_changed_by_editing_their_file(daemon: Daemon) -> None:
    daemon.write_agents("jobs.symbi", 'schedule { name: "filed", agent: "echo", '
                                      'cron: "0 5 * * *" }\n')
    assert daemon.cli("reload").returncode == 0
    status, data = daemon.api("PUT", "/api/v1/schedule/filed", {"cron_expr": "0 6 * * *"})
    assert status == 409 and "edit that file" in data["error"]["message"]
    assert daemon.api("DELETE", "/api/v1/schedule/filed")[0] == 409
    assert daemon.api("POST", "/api/v1/schedule/filed/pause")[0] == 200


def test_curl_works_on_the_unix_socket_which_is_mode_0660(daemon: Daemon) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o660
    out = subprocess.run(["curl", "-s", "--unix-socket", daemon.socket,
                          "http://localhost/api/v1/schedule"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_python_client_over_the_socket_and_over_tcp(daemon: Daemon) -> None:
    for client in (SymbiontClient(socket_path=daemon.socket),
                   SymbiontClient(base_url=f"http://127.0.0.1:{daemon.port}", api_key=TOKEN)):
        job = client.schedule.create(name="hourly-metrics", agent_id="echo",
                                     cron_expr="0 * * * *",
                                     session_mode="ephemeral_with_summary",
                                     delivery=["stdout", "webhook"],
                                     webhook_url="http://127.0.0.1:9/metrics")
        assert job.delivery_config.webhook_url == "http://127.0.0.1:9/metrics"
        assert len(client.schedule.list(agent_id="echo")) == 1
        details = client.schedule.get(job.id)
        assert details.cron_expr == "0 * * * *" and details.next_run
        client.schedule.update(job.id, cron_expr="*/30 * * * *")
        assert client.schedule.get_status(job.id).cron_expr == "*/30 * * * *"
        run = client.schedule.run_now(job.id, input="Generate metrics report")
        assert run.id
        client.schedule.pause(job.id)
        client.schedule.resume(job.id)
        history = client.schedule.get_history(job.id, status="failed", limit=5)
        assert history == []
        health = client.schedule.health()
        assert health.status == "healthy" and health.active_jobs == 1
        with pytest.raises(NotFound):
            client.schedule.get("no-such-job")
        with pytest.raises(InvalidInput) as bad:
            client.schedule.create(name="x", agent_id="echo", cron_expr="nope")
        assert bad.value.field == "cron_expr"
        with pytest.raises(Conflict):
            client.schedule.reset(job.id)
        client.schedule.delete(job.id)
    with pytest.raises(Unavailable, match="is symbid running"):
        SymbiontClient(socket_path=daemon.socket + ".missing").schedule.list()


def test_the_official_symbiont_sdk_works_against_the_dialect(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    import symbiont as sdk
    from symbiont.schedules import CreateScheduleRequest, UpdateScheduleRequest

    # The SDK insists on a local JWT secret for its own token handling even when it
    # authenticates with an API key; it never leaves the client.
    monkeypatch.setenv("SYMBIONT_AUTH_JWT_SECRET_KEY", "client-side-only-secret")
    monkeypatch.setenv("SYMBIONT_AUTH_ENABLE_REFRESH_TOKENS", "false")
    client = sdk.Client(api_key=TOKEN,
                        base_url=f"http://127.0.0.1:{daemon.port}/symbiont/api/v1")
    created = client.schedules.create_schedule(CreateScheduleRequest(
        name="sdk-job", cron_expression="0 9 * * *", agent_name="echo",
        timezone="Europe/Berlin"))
    assert created.status == "active" and created.next_run
    (summary,) = client.schedules.list_schedules()
    assert (summary.job_id, summary.enabled, summary.run_count) == (created.job_id, True, 0)
    detail = client.schedules.get_schedule(created.job_id)
    assert (detail.cron_expression, detail.timezone, detail.one_shot) == \
        ("0 9 * * *", "Europe/Berlin", False)
    updated = client.schedules.update_schedule(created.job_id,
                                               UpdateScheduleRequest(cron_expression="0 10 * * *"))
    assert updated.cron_expression == "0 10 * * *"
    assert client.schedules.pause_schedule(created.job_id).status == "paused"
    assert client.schedules.resume_schedule(created.job_id).action == "resume"
    assert client.schedules.trigger_schedule(created.job_id).action == "trigger"
    daemon.wait_for(lambda: client.schedules.get_schedule_history(created.job_id).history
                    and client.schedules.get_schedule_history(created.job_id)
                    .history[0].status == "succeeded")
    entry = client.schedules.get_schedule_history(created.job_id, limit=5).history[0]
    assert entry.completed_at and entry.execution_time_ms is not None
    assert len(client.schedules.get_schedule_next_runs(created.job_id, count=4).next_runs) == 4
    health = client.schedules.get_scheduler_health()
    assert health.is_running and health.jobs_total == 1 and health.runs_succeeded == 1
    one_shot = client.schedules.create_schedule(CreateScheduleRequest(
        name="sdk-once", cron_expression="0 9 * * *", agent_name="echo", one_shot=True))
    assert client.schedules.get_schedule(one_shot.job_id).one_shot is True
    assert client.schedules.delete_schedule(created.job_id).deleted is True


def test_sd_notify_reports_ready_reloading_status_and_stopping(tmp_path: Path) -> None:
    notify_path = os.path.join(Daemon(tmp_path / "x", tcp=False).sockdir, "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(notify_path)
    receiver.settimeout(20)
    d = Daemon(tmp_path, {"a.symbi": AGENTS.replace("PIDFILE_PATH", "/dev/null")}, tcp=False)
    try:
        d.start(env={"NOTIFY_SOCKET": notify_path})
        messages: list[str] = []

        def collect(until: str) -> None:
            while not any(until in m for m in messages):
                messages.append(receiver.recv(4096).decode())

        collect("READY=1")
        assert any("STATUS=" in m and "active" in m for m in messages)
        d.send_signal(signal.SIGHUP)
        collect("RELOADING=1")
        reloading = next(m for m in messages if "RELOADING=1" in m)
        assert "MONOTONIC_USEC=" in reloading
        messages.clear()
        collect("READY=1")
        d.stop()
        collect("STOPPING=1")
    finally:
        receiver.close()
        d.cleanup()


def test_start_up_problems_fail_fast_with_one_clear_line(tmp_path: Path) -> None:
    d = Daemon(tmp_path, tcp=False)
    try:
        d.config.write_text(d.config.read_text() + "max_jiter_seconds = 5\n")
        out = subprocess.run([str(BIN / "symbid"), "--config", str(d.config)],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 1
        assert out.stderr.strip().count("\n") == 0
        assert "unknown key 'scheduler.max_jiter_seconds'" in out.stderr
        assert "did you mean 'max_jitter_seconds'" in out.stderr
    finally:
        d.cleanup()


def test_a_second_daemon_refuses_to_steal_a_live_socket(daemon: Daemon, tmp_path: Path) -> None:
    out = subprocess.run([str(BIN / "symbid"), "--config", str(daemon.config),
                          "--state-dir", str(tmp_path / "other-state"),
                          "--listen", "127.0.0.1:1"], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 1
    assert f"another symbid is already listening on {daemon.socket}" in out.stderr
    assert daemon.api("GET", "/api/v1/health/scheduler")[0] == 200


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    d = Daemon(tmp_path, tcp=False)
    try:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(d.socket)
        stale.close()  # bound, never listening, nobody behind it
        d.start()
        assert d.api("GET", "/api/v1/schedule")[0] == 200
    finally:
        d.cleanup()


def test_a_database_from_a_newer_symbid_is_refused(tmp_path: Path) -> None:
    d = Daemon(tmp_path, tcp=False)
    try:
        d.state.mkdir()
        conn = sqlite3.connect(d.state / "symbid.db")
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        out = subprocess.run([str(BIN / "symbid"), "--config", str(d.config)],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 1
        assert "newer than this symbid knows" in out.stderr
    finally:
        d.cleanup()


def test_cli_exit_statuses(daemon: Daemon) -> None:
    assert daemon.cli("cron", "status", "nope").returncode == 3
    assert daemon.cli("cron", "frobnicate").returncode == 2
    assert daemon.cli("cron", "pause").returncode == 2
    missing = daemon.cli("cron", "list", env={"SYMBI_SOCKET": "/tmp/none/symbid.sock"})
    assert missing.returncode == 69
    assert "/tmp/none/symbid.sock" in missing.stderr
    bad = daemon.cli("cron", "add", "--json", '{"name": "x"}')
    assert bad.returncode == 1 and "agent_id" in bad.stderr


def test_cron_add_from_a_dsl_file(daemon: Daemon, tmp_path: Path) -> None:
    src = tmp_path / "extra.symbi"
    src.write_text('schedule {\n  name: "from-file"\n  agent: "echo"\n  cron: "0 9 * * 1-5"\n'
                   '  policy { max_runtime: "5m" }\n}\n')
    out = daemon.cli("cron", "add", "--file", str(src), "--schedule", "from-file")
    assert out.returncode == 0, out.stderr
    job = daemon.api("GET", f"/api/v1/schedule/{out.stdout.strip()}")[1]
    assert (job["name"], job["source"], job["policy"]["max_runtime"]) == \
        ("from-file", "api", "5m")
    missing = daemon.cli("cron", "add", "--file", str(src), "--schedule", "other")
    assert missing.returncode == 1 and "defines no schedule 'other'" in missing.stderr


def test_remove_asks_for_confirmation_on_a_terminal(daemon: Daemon) -> None:
    import pty

    daemon.api("POST", "/api/v1/schedule", {"name": "keepme", "agent_id": "echo",
                                            "cron_expr": "@daily"})
    pid, fd = pty.fork()
    if pid == 0:  # the child: symbi on a terminal
        os.environ.update(SYMBI_SOCKET=daemon.socket, NO_COLOR="1")
        os.execv(str(BIN / "symbi"), [str(BIN / "symbi"), "cron", "remove", "keepme"])
    output = b""
    while b"[y/N]" not in output:
        output += os.read(fd, 1024)
    os.write(fd, b"n\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 1
    assert daemon.api("GET", "/api/v1/schedule/keepme")[0] == 200


def test_an_unusable_state_directory_fails_fast(tmp_path: Path) -> None:
    d = Daemon(tmp_path, tcp=False)
    try:
        (tmp_path / "file").write_text("not a directory")
        out = subprocess.run([str(BIN / "symbid"), "--config", str(d.config),
                              "--state-dir", str(tmp_path / "file" / "state")],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 1
        assert out.stderr.startswith(f"symbid: state directory {tmp_path / 'file' / 'state'}")
        assert out.stderr.count("\n") == 1
        assert not os.path.exists(d.socket)  # the socket it had bound is gone again
    finally:
        d.cleanup()


def test_the_daemon_adopts_a_socket_passed_by_systemd(tmp_path: Path) -> None:
    d = Daemon(tmp_path, tcp=False)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(d.socket)
        listener.listen()
        fd = listener.fileno()
        # What systemd does: the socket at fd 3, LISTEN_PID = the daemon's own pid.
        script = ("import os, sys\n"
                  f"os.dup2({fd}, 3)\n"
                  "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1',\n"
                  "                  LISTEN_FDNAMES='control')\n"
                  "os.execv(sys.argv[1], sys.argv[1:])\n")
        d._log_fh = open(d.log, "a")  # noqa: SIM115
        d.proc = subprocess.Popen(
            [sys.executable, "-c", script, str(BIN / "symbid"), "--config", str(d.config),
             "--socket", d.socket + ".unused"],
            pass_fds=[fd], stdout=d._log_fh, stderr=subprocess.STDOUT, text=True)
        listener.close()
        d.wait_ready()
        assert d.api("GET", "/api/v1/schedule")[0] == 200
        assert not os.path.exists(d.socket + ".unused")
        assert d.stop() == 0
    finally:
        listener.close()
        d.cleanup()


def test_daemonize_detaches_writes_the_pidfile_and_keeps_its_sockets(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"a.symbi": 'agent echo { command: ["/bin/true"] }\n'})
    pidfile = tmp_path / "symbid.pid"
    try:
        out = subprocess.run([str(BIN / "symbid"), "--config", str(d.config), "--daemonize",
                              "--pidfile", str(pidfile)],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr  # the launching process returns at once
        pid = int(d.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
        d.wait_for(lambda: d.api("GET", "/api/v1/health/scheduler")[0] == 200)
        assert d.api("GET", "/api/v1/schedule", tcp=True)[0] == 200
        os.kill(pid, signal.SIGTERM)
        assert wait_gone(pid, timeout=20)
        assert not pidfile.exists()
    finally:
        d.cleanup()


def test_the_watchdog_is_fed_while_the_loop_runs(tmp_path: Path) -> None:
    notify_dir = Daemon(tmp_path / "n", tcp=False).sockdir
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(os.path.join(notify_dir, "notify"))
    receiver.settimeout(20)
    d = Daemon(tmp_path, tcp=False)
    try:
        d.start(env={"NOTIFY_SOCKET": os.path.join(notify_dir, "notify"),
                     "WATCHDOG_USEC": "1000000"})
        seen = []
        while sum("WATCHDOG=1" in m for m in seen) < 2:
            seen.append(receiver.recv(4096).decode())
    finally:
        receiver.close()
        d.cleanup()


def test_a_second_daemon_on_the_same_state_directory_is_refused(daemon: Daemon) -> None:
    out = subprocess.run([str(BIN / "symbid"), "--config", str(daemon.config),
                          "--socket", daemon.socket + "2"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 1
    assert "another symbid is using the state directory" in out.stderr
    assert not os.path.exists(daemon.socket + "2")


def test_head_requests_get_the_headers_of_get(daemon: Daemon) -> None:
    out = subprocess.run(["curl", "-sI", "--unix-socket", daemon.socket,
                          "http://localhost/api/v1/health/scheduler"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("HTTP/1.1 200")
