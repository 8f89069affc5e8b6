"""Secrets never leak. Known values go into ``${VAR}`` references of the config (an API
token, the webhook's default Authorization, a Slack bot token, the SMTP password, a custom
channel's env, the LLM key) and of jobs and agents (a webhook URL path, header and
signing key, an agent's env), and every channel runs against loopback servers, an llm
agent against a loopback model: succeeding and failing, with receivers, a model and
programs that echo the secrets back in their error replies, and an agent that prints its
own. Then no secret is in the database (every byte of the state directory, WAL
included), the daemon's logs (its output, its JSON log file, the log_file channel's
files), any GET of the API (every route of the OpenAPI document, for every job and run),
the audit events, the receipts, or an error message; and each secret was used, so the
test could have seen it."""

from __future__ import annotations

import json
import os
import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_helper import (
    Daemon,
    UnixHTTP,
    add_job,
    final_run,
    free_port,
    start_run,
)
from tests.integration.delivery_parts import HttpServer, Mailbox, Reply, smtp_server
from tests.llm_server import LLMServer, text
from tests.llm_server import Reply as LLMReply


def secret(name: str) -> str:
    return f"Sx{name}{secrets.token_hex(6)}"


SECRETS = {name: secret(name) for name in (
    "CiToken", "HookPath", "HookKey", "HookHmac", "WebhookToken", "SlackToken", "SmtpPass",
    "PagerToken", "LlmKey", "AgentSecret")}
ENV = {f"T_{name.upper()}": value for name, value in SECRETS.items()}


def ref(name: str) -> str:
    return "${T_" + name.upper() + "}"


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.hooks = HttpServer()
        self.slack = HttpServer()
        self.llm = LLMServer()
        self.mailbox = Mailbox()
        self.proof = root / "proof"
        self.proof.mkdir()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.hooks.close()
    w.slack.close()
    w.llm.close()


def agents(proof: Path) -> str:
    leak = (f'echo agent-saw ${{AGENT_SECRET}} > {proof}/agent; '
            'echo out ${AGENT_SECRET}; echo err ${AGENT_SECRET} >&2; '
            'test -n "$FAIL" && exit 2; exit 0')
    return (f'agent leaky {{ command: ["/bin/sh", "-c", {json.dumps(leak)}], '
            f'env: {{ AGENT_SECRET: "{ref("AgentSecret")}" }} }}\n'
            f'agent failing {{ command: ["/bin/sh", "-c", {json.dumps(leak)}], '
            f'env: {{ AGENT_SECRET: "{ref("AgentSecret")}", FAIL: "1" }} }}\n'
            'agent thinker { model: "m-1" }\n')


def pager(root: Path, proof: Path) -> Path:
    path = root / "pager"
    path.write_text("#!/bin/sh\n"
                    f'echo "pager-saw $PAGER_TOKEN" > {proof}/pager\n'
                    'echo "stdout echoes $PAGER_TOKEN"\n'
                    'echo "stderr echoes $PAGER_TOKEN" >&2\nexit 1\n')
    path.chmod(0o755)
    return path


def config(w: World, smtp_port: int) -> str:
    return (
        f'\n[api.tokens]\nci = "{ref("CiToken")}"\n'
        f'\n[llm]\nendpoint = "{w.llm.url}"\napi_key = "{ref("LlmKey")}"\nmodel = "m"\n'
        "max_retries = 0\n"
        "\n[scheduler.delivery]\nbackoff_seconds = 0.1\nwebhook_retry_attempts = 2\n"
        "webhook_timeout_seconds = 3\n"
        f'webhook_auth_header = "Bearer {ref("WebhookToken")}"\n'
        f'slack_api_token = "{ref("SlackToken")}"\n'
        f'slack_api_base = "{w.slack.url("/api")}"\n'
        f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nsmtp_username = "mailer"\n'
        f'smtp_password = "{ref("SmtpPass")}"\nsmtp_starttls = false\n'
        'email_from = "symbid@example.com"\n'
        f'\n[scheduler.delivery.custom.pager]\ncommand = ["{pager(w.root, w.proof)}"]\n'
        f'env = {{ PAGER_TOKEN = "{ref("PagerToken")}" }}\n')


def echo_back(prefix: str, *names: str) -> str:
    """An error reply quoting what its server was sent (all a receiver could know)."""
    return prefix + " " + " ".join(SECRETS[n] for n in names)


def backup(d: Daemon) -> bytes:
    conn = UnixHTTP(d.socket)
    try:
        conn.request("GET", "/api/v1/backup")
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert response.status == 200 and data.startswith(b"SQLite format 3"), response.status
    return data


def every_get(d: Daemon, jobs: list[dict[str, Any]], runs: list[str]) -> dict[str, str]:
    """The answer to every GET of the OpenAPI document, for each job and run."""
    status, doc = d.api("GET", "/api/v1/openapi.json", tcp=True)
    assert status == 200
    seen: dict[str, str] = {}
    for path, ops in doc["paths"].items():
        if "get" not in ops:
            continue
        queries = {"/api/v1/runs": [f"id_prefix={r[:8]}" for r in runs],
                   "/api/v1/schedule": ["all=true"]}.get(path, [""])
        fills: list[dict[str, str]] = [{}]
        if "{job_id}" in path:
            fills = [{"job_id": j["id"]} for j in jobs]
        elif "{run_id}" in path:
            fills = [{"run_id": r} for r in runs]
        elif "{name}" in path:
            fills = [{"name": n} for n in ("leaky", "failing", "thinker")]
        if path == "/api/v1/backup":  # the database itself, copied: bytes
            seen["unix /api/v1/backup"] = backup(d).decode("latin-1")
            continue
        for fill in fills:
            url = path.format(**fill)
            for query in queries:
                target = url + (f"?{query}" if query else "")
                for tcp in (True, False):
                    status, body = d.api("GET", target, tcp=tcp)
                    assert status == 200, (target, body)
                    seen[f"{'tcp' if tcp else 'unix'} {target}"] = \
                        body if isinstance(body, str) else json.dumps(body)
    return seen


def found_in(blob: bytes) -> list[str]:
    """The secrets in ``blob``, as they are or URL-quoted (letters and digits only, so
    JSON and the log escape nothing in them)."""
    return [name for name, value in SECRETS.items()
            if value.encode() in blob or urllib.parse.quote(value).encode() in blob]


def test_no_secret_reaches_the_database_logs_api_audit_receipts_or_errors(
    world: World,
) -> None:
    w = world
    # Receivers that quote what they were sent in their error replies.
    w.hooks.answer(f"/hook/{SECRETS['HookPath']}", Reply(500, echo_back(
        "hook refused", "HookPath", "HookKey", "WebhookToken").encode()))
    w.slack.answer("/api/chat.postMessage", Reply(200, json.dumps(
        {"ok": False, "error": echo_back("invalid_auth", "SlackToken")}).encode()))
    w.llm.script(LLMReply(status=401, body={"error": {"message": "bad key " + SECRETS[
        "LlmKey"]}}), text("the key is " + SECRETS["LlmKey"]))
    with smtp_server(w.mailbox, auth_require_tls=False) as smtp_port:
        d = Daemon(w.root, {"agents.symbi": agents(w.proof)},
                   daemon=f'log_file = "{w.root}/logs/symbid.json"',
                   config=config(w, smtp_port))
        try:
            d.start(env=ENV)
            hook = {"delivery": ["webhook", "slack", "email", "custom:pager", "log_file",
                                 "stdout"],
                    "webhook_url": w.hooks.url("/hook/" + ref("HookPath")),
                    "webhook_headers": {"X-Key": ref("HookKey")},
                    "webhook_secret": ref("HookHmac"), "slack_channel": "#ops",
                    "email_recipients": ["ops@example.com"], "max_retries": 0}
            jobs = [add_job(d, "leaks", "leaky", **hook),
                    add_job(d, "fails", "failing", alert=["custom:pager", "webhook"],
                            **hook),
                    add_job(d, "thinks", "thinker", **hook)]
            status, body = d.api("POST", "/api/v1/schedule", {
                "name": "unset", "agent_id": "leaky", "cron_expr": "0 0 1 1 *",
                "webhook_url": w.hooks.url("/hook/${T_NOT_SET}"), "delivery": ["webhook"]},
                tcp=True, token=SECRETS["CiToken"])
            assert status == 201, body  # the ci token acts, named, never shown
            jobs.append(body)
            dead = free_port()  # nothing listens there: the connection is refused
            jobs.append(add_job(d, "refused", "leaky", delivery=["webhook"], max_retries=0,
                                webhook_url=f"http://127.0.0.1:{dead}/x/{ref('HookPath')}",
                                webhook_headers={"X-Key": ref("HookKey")}))
            runs = [start_run(d, j["name"]) for j in jobs]
            runs.append(start_run(d, "thinks"))  # the model's second reply: it succeeds
            for run_id in runs:
                final_run(d, run_id, timeout=60)

            def settled() -> bool:
                return all(d.api("GET", f"/api/v1/runs/{r}")[1]["delivery_status"]
                           not in ("pending", None) for r in runs)
            d.wait_for(settled, timeout=90)
            views = [d.api("GET", f"/api/v1/runs/{r}")[1] for r in runs]
            # Every channel was tried, and the failing paths were taken.
            channels = {x["channel"]: x["status"] for v in views for x in v["deliveries"]}
            assert set(channels) == {"webhook", "slack", "email", "custom:pager", "log_file",
                                     "stdout"}, channels
            assert channels["webhook"] == channels["slack"] == channels["email"] == "failed"
            assert "refused" in json.dumps(views[4]["deliveries"]), views[4]["deliveries"]
            assert [v["status"] for v in views[:2]] == ["succeeded", "failed"], views[:2]
            assert sorted(v["status"] for v in (views[2], views[5])) == \
                ["failed", "succeeded"], (views[2], views[5])  # the model's 401, then its answer
            assert views[3]["deliveries"][0]["status"] == "failed"  # ${T_NOT_SET}

            shown = every_get(d, jobs, runs)
            shown["cli audit"] = d.cli("audit", "--limit", "1000").stdout
            shown["cli history"] = "".join(d.cli("cron", "history", j["name"]).stdout
                                           for j in jobs)
            leaks = {where: found_in(text.encode()) for where, text in shown.items()}
            assert {k: v for k, v in leaks.items() if v} == {}
            assert any("invalid_auth" in t for t in shown.values())  # receipts are shown
            assert any("T_NOT_SET" in t for t in shown.values())  # errors name the variable
            audit = json.loads(shown["tcp /api/v1/audit"])
            assert any(e["job"] == "unset" and e["actor"] == "ci" for e in audit), \
                sorted({(e["actor"], e["job"]) for e in audit})
        finally:
            d.cleanup()

    # Each secret was used, so it could have leaked.
    sent = [r.headers for r in w.hooks.requests]
    assert any(h.get("x-key") == SECRETS["HookKey"] and
               h.get("authorization") == f"Bearer {SECRETS['WebhookToken']}" for h in sent)
    assert any(SECRETS["HookPath"] in r.path for r in w.hooks.requests)
    assert any("x-symbid-signature" in h for h in sent)
    assert any(r.headers.get("authorization") == f"Bearer {SECRETS['SlackToken']}"
               for r in w.slack.requests)
    assert any(login[2] == SECRETS["SmtpPass"] for login in w.mailbox.logins)
    assert any(r.headers.get("Authorization") == f"Bearer {SECRETS['LlmKey']}"
               for r in w.llm.requests)
    assert (w.proof / "pager").read_text() == f"pager-saw {SECRETS['PagerToken']}\n"
    assert (w.proof / "agent").read_text() == f"agent-saw {SECRETS['AgentSecret']}\n"

    stored = {str(p): p.read_bytes() for p in d.state.rglob("*") if p.is_file()}
    assert any(p.endswith("symbid.db") for p in stored)
    logs = {str(p): p.read_bytes() for p in (w.root / "logs").rglob("*") if p.is_file()}
    assert any(p.endswith("symbid.json") for p in logs) and len(logs) >= 4, list(logs)
    logs[str(d.log)] = d.log.read_bytes()
    leaked = {where: found_in(blob) for where, blob in {**stored, **logs}.items()}
    assert {k: v for k, v in leaked.items() if v} == {}
    assert b"***" in logs[str(d.log)]  # the agent's output, masked where it is shown
    assert os.path.getsize(d.state / "symbid.db") > 0
