"""Delivery through the real daemon: what a job may say about its channels when it is
defined, and (as the channels land) what reaches them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_helper import Daemon, final_run
from tests.integration.daemon_helper import start_run as run_once
from tests.integration.delivery_parts import HttpServer, Reply

AGENTS = ('agent echo { command: ["/bin/sh", "-c", "echo delivered-output"] }\n'
          'agent broken { command: ["/bin/sh", "-c", "echo nope >&2; exit 3"] }\n')


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("delivery"), {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def job(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "agent_id": "echo", "cron_expr": "0 0 1 1 *", **extra}


@pytest.mark.parametrize("extra, field, words", [
    ({"delivery": ["carrier-pigeon"]}, "delivery", "unknown delivery channel 'carrier-pigeon'"),
    ({"delivery": ["stdout", "stdout"]}, "delivery", "listed twice"),
    ({"delivery": ["webhook"]}, "webhook_url", "needs webhook_url"),
    ({"delivery": ["email"]}, "email_recipients", "needs email_recipients"),
    ({"delivery": ["webhook"], "webhook_url": "http://127.0.0.1:9/x",
      "webhook_secret": "hunter2"}, "webhook_secret", "${VAR} reference"),
    # what the daemon's [scheduler.delivery] settings lack (none are set here)
    ({"delivery": ["slack"]}, "delivery", "slack"),
    ({"delivery": ["email"], "email_recipients": ["ops@example.com"]}, "delivery",
     "smtp_host"),
    ({"delivery": ["custom:pager"]}, "delivery", "pager"),
    ({"alert": ["slack"]}, "alert", "slack"),
    ({"delivery": ["webhook"], "webhook_url": "ftp://example.com/x"}, "webhook_url",
     "http:// or https://"),
    ({"delivery": ["webhook"], "webhook_url": "http://example.com:99999/x"}, "webhook_url",
     "bad host or port"),
    # a channel's field without its channel would be kept and never used
    ({"delivery": ["stdout"], "webhook_url": "http://127.0.0.1:9/x"}, "webhook_url",
     "neither delivery nor alert lists"),
    ({"delivery": ["stdout"], "webhook_headers": {"X-A": "b"}}, "webhook_headers",
     "add 'webhook'"),
    ({"delivery": ["stdout"], "slack_channel": "#ops"}, "slack_channel", "add 'slack'"),
    ({"delivery": ["stdout"], "email_recipients": ["ops@example.com"]}, "email_recipients",
     "add 'email'"),
    ({"delivery": ["stdout"], "alert_cooldown": "1h"}, "alert_cooldown", "needs alert"),
    ({"delivery": ["stdout"], "alert_cooldown": 3600}, "alert_cooldown", "needs alert"),
])
def test_a_delivery_that_cannot_work_is_refused_when_the_job_is_defined(
        daemon: Daemon, extra: dict[str, object], field: str, words: str) -> None:
    status, body = daemon.api("POST", "/api/v1/schedule", job("bad-delivery", **extra))
    assert status == 400, body
    assert body["error"]["field"] == field and words in body["error"]["message"]
    assert daemon.api("GET", "/api/v1/schedule/bad-delivery")[0] == 404  # nothing written


def test_an_update_to_an_unknown_channel_is_refused_and_changes_nothing(
        daemon: Daemon) -> None:
    status, made = daemon.api("POST", "/api/v1/schedule", job("good-delivery",
                                                              delivery=["stdout"]))
    assert status == 201, made
    status, body = daemon.api("PUT", "/api/v1/schedule/good-delivery",
                              {"delivery": ["carrier-pigeon"]})
    assert status == 400 and body["error"]["field"] == "delivery"
    assert daemon.api("GET", "/api/v1/schedule/good-delivery")[1]["delivery"] == ["stdout"]


# --- through the daemon, to real receivers -------------------------------------------------


@pytest.fixture
def hooks() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.close()


def delivery_daemon(tmp_path: Path, **env: str) -> Daemon:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS},
               config="\n[scheduler.delivery]\nbackoff_seconds = 0.2\n"
                      "webhook_retry_attempts = 3\nwebhook_timeout_seconds = 2\n")
    d.start(env={"HOOK_SECRET": "hook-secret-value", "HOOK_TOKEN": "hook-token-value",
                 **env})
    return d


def delivered(d: Daemon, run_id: str, status: str = "delivered") -> dict[str, Any]:
    def done() -> Any:
        s, run = d.api("GET", f"/api/v1/runs/{run_id}")
        return run if s == 200 and run.get("delivery_status") == status else None
    return dict(d.wait_for(done, timeout=30))


def test_stdout_and_log_file_deliveries_arrive_with_a_receipt_each(tmp_path: Path) -> None:
    d = delivery_daemon(tmp_path)
    try:
        assert d.api("POST", "/api/v1/schedule", job(
            "report", delivery=["stdout", "log_file"]))[0] == 201
        run = delivered(d, run_once(d, "report"))
        assert [(x["channel"], x["status"], x["attempts"]) for x in run["deliveries"]] == \
            [("stdout", "delivered", 1), ("log_file", "delivered", 1)]
        assert all(x["receipts"][0]["ok"] for x in run["deliveries"])
        logged = (d.root / "logs" / "report.log").read_text()
        assert run["id"] in logged and "delivered-output" in logged
        assert "delivered-output" in d.log.read_text()  # stdout: the daemon's own output
        csv = d.cli("cron", "history", "report", "--format", "csv").stdout.splitlines()
        assert csv[0].endswith(",error_message,delivery_status") and \
            csv[1].endswith(",delivered")
    finally:
        d.cleanup()


def test_a_webhook_is_retried_after_two_500s_signed_and_with_one_delivery_id(
        tmp_path: Path, hooks: HttpServer) -> None:
    d = delivery_daemon(tmp_path)
    try:
        hooks.answer("/hook", Reply(500), Reply(500), Reply(200))
        assert d.api("POST", "/api/v1/schedule", job(
            "hooked", delivery=["webhook"], webhook_url=hooks.url("/hook"),
            webhook_headers={"Authorization": "Bearer ${HOOK_TOKEN}"},
            webhook_secret="${HOOK_SECRET}"))[0] == 201
        run = delivered(d, run_once(d, "hooked"))
        [hook] = run["deliveries"]
        assert hook["attempts"] == 3
        assert [r.get("status") for r in hook["receipts"]] == [500, 500, 200]
        assert len(hooks.requests) == 3
        ids = {r.headers["x-symbid-delivery-id"] for r in hooks.requests}
        assert ids == {hook["id"]}
        body = hooks.requests[-1].body
        assert json.loads(body)["run"] == run["id"]
        expected = hmac.new(b"hook-secret-value", body, hashlib.sha256).hexdigest()
        assert hooks.requests[-1].headers["x-symbid-signature"] == f"sha256={expected}"
        assert run["status"] == "succeeded"
        assert hooks.requests[-1].headers["authorization"] == "Bearer hook-token-value"
        # no secret value in the API's answers, the daemon's log or the database
        d.stop()
        seen = json.dumps(run).encode() + d.log.read_bytes() + b"".join(
            p.read_bytes() for p in d.state.glob("symbid.db*"))
        for secret in (b"hook-secret-value", b"hook-token-value"):
            assert secret not in seen, secret
    finally:
        d.cleanup()


def test_a_delivery_that_keeps_failing_fails_but_the_run_does_not(
        tmp_path: Path, hooks: HttpServer) -> None:
    d = delivery_daemon(tmp_path)
    try:
        hooks.answer("/down", Reply(503))
        assert d.api("POST", "/api/v1/schedule", job(
            "unlucky", delivery=["webhook"], webhook_url=hooks.url("/down")))[0] == 201
        run = delivered(d, run_once(d, "unlucky"), status="delivery_failed")
        assert run["status"] == "succeeded"
        assert run["deliveries"][0]["attempts"] == 4  # the first and 3 retries
        _, metrics = d.api("GET", "/metrics")
        assert 'symbiont_cron_delivery_total{channel="webhook",status="failed"} 1.0' in metrics
    finally:
        d.cleanup()


def test_a_delivery_pending_when_the_daemon_is_killed_arrives_after_the_restart(
        tmp_path: Path, hooks: HttpServer) -> None:
    d = delivery_daemon(tmp_path)
    try:
        hooks.answer("/later", Reply(500))
        assert d.api("POST", "/api/v1/schedule", job(
            "resumed", delivery=["webhook"], webhook_url=hooks.url("/later")))[0] == 201
        rid = run_once(d, "resumed")
        d.wait_for(lambda: hooks.requests)  # the first attempt failed
        d.kill()
        hooks.answer("/later", Reply(200))
        d.start()
        run = delivered(d, rid)
        ids = {r.headers["x-symbid-delivery-id"] for r in hooks.requests}
        assert ids == {run["deliveries"][0]["id"]}  # the same id before and after
        assert hooks.requests[-1].headers and run["deliveries"][0]["status"] == "delivered"
    finally:
        d.cleanup()


def test_a_file_schedule_whose_channel_lacks_settings_is_an_error_at_its_place(
        daemon: Daemon) -> None:
    daemon.write_agents("slacky.symbi", 'schedule {\n  name: "slacky"\n  agent: "echo"\n'
                                        '  cron: "0 0 1 1 *"\n  delivery: ["slack"]\n}\n')
    status, result = daemon.api("POST", "/api/v1/reload")
    assert status == 200
    said = json.dumps(result)
    assert "slacky.symbi:5:14: schedule 'slacky':" in said and "slack" in said
    assert daemon.api("GET", "/api/v1/schedule/slacky")[0] == 404
    (daemon.agents_dir / "slacky.symbi").unlink()


def test_a_reload_whose_delivery_settings_drop_a_jobs_channel_says_so_and_what_changed(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS},
               config='\n[scheduler.delivery]\nslack_webhook_url = "http://127.0.0.1:9/x"\n')
    d.start()
    try:
        assert d.api("POST", "/api/v1/schedule", job("to-slack", delivery=["slack"]))[0] == 201
        same = d.cli("reload")
        assert same.returncode == 0 and f"config: {d.config} reloaded: nothing changed" \
            in same.stdout
        assert "to-slack" not in same.stderr
        d.config.write_text(d.config.read_text().replace(
            'slack_webhook_url = "http://127.0.0.1:9/x"', "workers = 4"))

        out = d.cli("reload")

        assert out.returncode == 0, out.stderr
        assert f"config: {d.config} reloaded: changed [scheduler.delivery]" in out.stdout
        assert "warning: job to-slack: delivery 'slack' needs" in out.stderr
        assert "the job is kept, and those deliveries fail until the settings serve it" \
            in out.stderr
        assert d.api("GET", "/api/v1/schedule/to-slack")[0] == 200  # kept
        logged = d.log.read_text()  # a SIGHUP's reload says it in the log
        assert "reload: job to-slack: delivery 'slack' needs" in logged
        assert f"reload: configuration: {d.config} reloaded: changed [scheduler.delivery]" \
            in logged
        d.config.write_text(d.config.read_text() + "\n[scheduler\n")
        broken = d.cli("reload")
        assert broken.returncode == 1 and "not reloaded" in broken.stdout
    finally:
        d.cleanup()


def test_a_failed_run_alerts_its_alert_channel_the_alert_is_listed_and_the_next_held_back(
        tmp_path: Path) -> None:
    d = delivery_daemon(tmp_path)
    try:
        assert d.api("POST", "/api/v1/schedule", {
            "name": "fragile", "agent_id": "broken", "cron_expr": "0 0 1 1 *",
            "alert": ["log_file", "stdout"], "alert_cooldown": "1h"})[0] == 201
        rid = run_once(d, "fragile")

        def listed() -> Any:
            status, alerts = d.api("GET", "/api/v1/schedule/fragile/alerts")
            return alerts if status == 200 and len(alerts) == 2 and \
                all(a["status"] == "delivered" for a in alerts) else None
        [alert] = [a for a in d.wait_for(listed) if a["channel"] == "log_file"]
        assert (alert["event"], alert["channel"], alert["run_id"]) == \
            ("run_failed", "log_file", rid)
        assert "exit status 3" in alert["message"]
        assert "run_failed" in (d.root / "logs" / "fragile.log").read_text()
        _, metrics = d.api("GET", "/metrics")
        assert 'symbiont_cron_alerts_total{channel="log_file",status="delivered"} 1.0' \
            in metrics
        history = d.cli("cron", "status", "fragile", "--history", "5")
        assert "  log_file (alert run_failed): delivered, 1 attempt(s)" in history.stdout
        assert "  stdout (alert run_failed): delivered, 1 attempt(s)" in history.stdout
        assert 'symbiont_cron_delivery_total{channel="log_file"' not in metrics
        # fails again within alert_cooldown: held back, and shown
        final_run(d, run_once(d, "fragile"))
        _, job = d.api("GET", "/api/v1/schedule/fragile")
        assert job["alert_state"] == {"open": True, "last_event": "run_failed",
                                      "last_alert_at": alert["created_at"], "held_back": 1}
        shown = d.cli("cron", "status", "fragile")
        assert shown.returncode == 0 and "last alert: run_failed" in shown.stdout
        assert "to log_file (delivered), stdout (delivered)" in shown.stdout \
            or "to stdout (delivered), log_file (delivered)" in shown.stdout
        assert "1 more held back by alert_cooldown" in shown.stdout
        _, run = d.api("GET", f"/api/v1/runs/{rid}")
        assert run["delivery_status"] is None  # an alert is not the run's output
    finally:
        d.cleanup()


def test_a_kill_between_a_send_and_its_receipt_resends_once_with_the_same_id(
        tmp_path: Path, hooks: HttpServer) -> None:
    d = delivery_daemon(tmp_path)
    try:
        hooks.answer("/slow", Reply(200, delay=3.0))  # received, answered only later
        assert d.api("POST", "/api/v1/schedule", job(
            "dup", delivery=["webhook"], webhook_url=hooks.url("/slow")))[0] == 201
        rid = run_once(d, "dup")
        d.wait_for(lambda: hooks.requests)  # sent; the daemon dies before the receipt
        d.kill()
        hooks.answer("/slow", Reply(200))
        d.start()
        run = delivered(d, rid)
        [hook] = run["deliveries"]
        assert len(hooks.requests) == 2  # the one duplicate a kill may cause
        assert {r.headers["x-symbid-delivery-id"] for r in hooks.requests} == {hook["id"]}
        assert hook["attempts"] == 1  # the lost attempt left no receipt
        time.sleep(1.0)
        assert len(hooks.requests) == 2  # and nothing more once it is delivered
    finally:
        d.cleanup()
