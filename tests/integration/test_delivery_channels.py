"""Each delivery channel against real parts: HTTP and SMTP servers on loopback, files on
disk, processes, an installed entry point. Every attempt goes through the router, as the
delivery workers call it."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from symbid.config import CustomChannel, DeliverySettings
from symbid.delivery import router, stdout
from symbid.delivery.base import Payload, Receipt, Target
from tests.integration.delivery_servers import (
    LOGIN,
    PASSWORD,
    Certificate,
    HttpServer,
    Mailbox,
    Reply,
    make_certificate,
    smtp_server,
)

PAYLOAD = Payload(delivery_id="3f1c-delivery", job="nightly", job_id="j-1", run_id="r-1",
                  status="failed", output="disk 91% full\nsecond line",
                  started_at="2026-03-08T07:00:00Z", finished_at="2026-03-08T07:00:02Z",
                  duration_ms=2000, attempt=1, trigger="schedule")
ENV = {"HOOK_TOKEN": "hook-token-1234", "TEAM_KEY": "team-key-5678",
       "HOOK_SECRET": "hmac-secret-9012", "SLACK_TOKEN": "xoxb-slack-3456",
       "SMTP_USER": LOGIN, "SMTP_PASS": PASSWORD, "DEFAULT_AUTH": "default-auth-7890"}
SECRETS = [v for k, v in ENV.items() if k != "SMTP_USER"]


def send(channel: str, target: Target, settings: DeliverySettings, *,
         payload: Payload = PAYLOAD, log_dir: str = "/nonexistent") -> Receipt:
    return router.send(channel, payload, target, settings, ENV, log_dir=log_dir)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def http_module() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.close()


@pytest.fixture
def http(http_module: HttpServer) -> HttpServer:
    http_module.reset()
    return http_module


FAST = DeliverySettings(webhook_timeout_seconds=5.0)


# --- webhook ---------------------------------------------------------------------------------


def test_a_webhook_posts_the_payload_with_its_headers_resolved(http: HttpServer) -> None:
    target = Target(webhook_url=http.url(),
                    webhook_headers={"Authorization": "Bearer ${HOOK_TOKEN}",
                                     "X-Team": "team ${TEAM_KEY}"})

    receipt = send("webhook", target, FAST)

    assert (receipt.channel, receipt.ok, receipt.status) == ("webhook", True, 200)
    [request] = http.requests
    assert json.loads(request.body) == PAYLOAD.to_json()
    assert request.headers["authorization"] == "Bearer hook-token-1234"
    assert request.headers["x-team"] == "team team-key-5678"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "symbid"
    assert request.headers["x-symbid-delivery-id"] == "3f1c-delivery"
    assert "x-symbid-signature" not in request.headers


def test_the_default_authorization_applies_only_when_the_job_gives_none(
        http: HttpServer) -> None:
    settings = replace(FAST, webhook_auth_header="Bearer ${DEFAULT_AUTH}")

    send("webhook", Target(webhook_url=http.url()), settings)
    send("webhook", Target(webhook_url=http.url(),
                           webhook_headers={"authorization": "Token ${HOOK_TOKEN}"}), settings)

    assert [r.headers["authorization"] for r in http.requests] == [
        "Bearer default-auth-7890", "Token hook-token-1234"]


def test_the_signature_verifies_with_the_secret(http: HttpServer) -> None:
    target = Target(webhook_url=http.url(), webhook_secret="${HOOK_SECRET}")

    assert send("webhook", target, FAST).ok

    [request] = http.requests
    expected = hmac.new(b"hmac-secret-9012", request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-symbid-signature"], f"sha256={expected}")


def test_two_500s_are_retryable_and_the_third_attempt_arrives_with_the_same_id(
        http: HttpServer) -> None:
    http.answer("/hook", Reply(500, b"oops"), Reply(503, b"busy", {"Retry-After": "7"}),
                Reply(204, b""))
    target = Target(webhook_url=http.url())

    receipts = [send("webhook", target, FAST) for _ in range(3)]

    assert [(r.ok, r.status, r.permanent) for r in receipts] == [
        (False, 500, False), (False, 503, False), (True, 204, False)]
    assert receipts[0].error == f"{http.url('')} answered 500: oops"
    assert receipts[1].retry_after == 7.0
    assert {r.headers["x-symbid-delivery-id"] for r in http.requests} == {"3f1c-delivery"}
    assert len({r.body for r in http.requests}) == 1


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (408, False),
                                                   (429, False)])
def test_a_4xx_is_permanent_except_408_and_429(http: HttpServer, status: int,
                                               permanent: bool) -> None:
    http.answer("/hook", Reply(status, b"no"))
    receipt = send("webhook", Target(webhook_url=http.url()), FAST)
    assert (receipt.ok, receipt.status, receipt.permanent) == (False, status, permanent)


def test_a_slow_server_gives_a_retryable_timeout_receipt(http: HttpServer) -> None:
    http.answer("/slow", Reply(200, delay=3.0))
    settings = replace(FAST, webhook_timeout_seconds=0.5)
    began = time.monotonic()

    receipt = send("webhook", Target(webhook_url=http.url("/slow")), settings)

    assert time.monotonic() - began < 2.5
    assert (receipt.ok, receipt.permanent, receipt.status) == (False, False, None)
    assert receipt.error is not None and receipt.error.endswith("did not answer within 0.5s")


def test_a_redirect_is_not_followed(http: HttpServer) -> None:
    http.answer("/moved", Reply(302, b"", {"Location": http.url("/elsewhere")}))

    receipt = send("webhook", Target(webhook_url=http.url("/moved")), FAST)

    assert [r.path for r in http.requests] == ["/moved"]
    assert (receipt.ok, receipt.status, receipt.permanent) == (False, 302, True)
    assert receipt.error is not None
    assert f"a redirect to {http.url('/elsewhere')}" in receipt.error
    assert "does not follow redirects" in receipt.error


def test_a_missing_variable_is_a_permanent_failure_naming_it(http: HttpServer) -> None:
    target = Target(webhook_url=http.url(), webhook_headers={"X-Key": "${NOT_SET}"})

    receipt = send("webhook", target, FAST)

    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and "${NOT_SET} is not set" in receipt.error
    assert "webhook_headers X-Key" in receipt.error
    assert http.requests == []


def test_a_resolved_header_with_a_line_break_is_refused_without_quoting_it(
        http: HttpServer) -> None:
    target = Target(webhook_url=http.url(), webhook_headers={"X-Key": "${BROKEN}"})

    receipt = router.send("webhook", PAYLOAD, target, FAST,
                          {"BROKEN": "value-1234\r\nX-Injected: yes"}, log_dir="/nonexistent")

    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and "header X-Key has a control character" in receipt.error
    assert "value-1234" not in receipt.error and "Injected" not in receipt.error
    assert http.requests == []


def test_a_closed_port_is_a_retryable_failure() -> None:
    receipt = send("webhook", Target(webhook_url="http://127.0.0.1:1/hook"), FAST)
    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error is not None and receipt.error.startswith(
        "cannot reach http://127.0.0.1:1")


def test_a_large_reply_is_read_only_up_to_its_cap(http: HttpServer) -> None:
    http.answer("/big", Reply(500, b"x" * 2_000_000))
    receipt = send("webhook", Target(webhook_url=http.url("/big")), FAST)
    assert receipt.status == 500 and receipt.error is not None and len(receipt.error) < 400


def test_https_is_verified_with_the_ca_bundle(cert: Certificate) -> None:
    server = HttpServer(tls=cert.server_context())
    try:
        target = Target(webhook_url=server.url())
        trusted = send("webhook", target, replace(FAST, ca_bundle=str(cert.cert)))
        untrusted = send("webhook", target, FAST)
    finally:
        server.close()

    assert (trusted.ok, trusted.status) == (True, 200)
    assert (untrusted.ok, untrusted.permanent) == (False, False)
    assert untrusted.error is not None and "TLS certificate not trusted" in untrusted.error
    assert len(server.requests) == 1


# --- slack -----------------------------------------------------------------------------------


def slack_settings(http: HttpServer, **changes: Any) -> DeliverySettings:
    return replace(FAST, slack_api_token="${SLACK_TOKEN}", slack_api_base=http.url("/api"),
                   **changes)


def test_slack_posts_to_chat_post_message_with_the_bot_token(http: HttpServer) -> None:
    http.answer("/api/chat.postMessage", Reply(200, b'{"ok": true, "ts": "1700.01"}'))

    receipt = send("slack", Target(slack_channel="#ops"), slack_settings(http))

    assert (receipt.ok, receipt.status, receipt.reply) == (True, 200, "posted to #ops (ts 1700.01)")
    [request] = http.requests
    assert request.headers["authorization"] == "Bearer xoxb-slack-3456"
    assert request.headers["x-symbid-delivery-id"] == "3f1c-delivery"
    body = json.loads(request.body)
    assert body["channel"] == "#ops"
    assert body["metadata"]["event_payload"]["delivery_id"] == "3f1c-delivery"
    assert "`nightly` *failed* in 2.0 s" in body["text"]
    assert "```\ndisk 91% full\nsecond line\n```" in body["blocks"][1]["text"]["text"]


def test_slack_uses_the_default_channel_when_the_job_names_none(http: HttpServer) -> None:
    http.answer("/api/chat.postMessage", Reply(200, b'{"ok": true}'))
    assert send("slack", Target(), slack_settings(http, slack_default_channel="#all")).ok
    assert json.loads(http.requests[0].body)["channel"] == "#all"


@pytest.mark.parametrize(("error", "permanent"), [("channel_not_found", True),
                                                  ("invalid_auth", True),
                                                  ("ratelimited", False)])
def test_slacks_ok_false_is_a_failure_carrying_its_error(http: HttpServer, error: str,
                                                         permanent: bool) -> None:
    http.answer("/api/chat.postMessage",
                Reply(200, json.dumps({"ok": False, "error": error}).encode()))

    receipt = send("slack", Target(slack_channel="#nope"), slack_settings(http))

    assert (receipt.ok, receipt.reply, receipt.permanent) == (False, error, permanent)
    assert receipt.error == f"Slack refused chat.postMessage to #nope: {error}"


def test_a_slack_429_honours_retry_after(http: HttpServer) -> None:
    http.answer("/api/chat.postMessage", Reply(429, b"", {"Retry-After": "30"}))
    receipt = send("slack", Target(slack_channel="#ops"), slack_settings(http))
    assert (receipt.ok, receipt.status, receipt.permanent, receipt.retry_after) == (
        False, 429, False, 30.0)


def test_slack_without_a_token_posts_to_the_incoming_webhook(http: HttpServer) -> None:
    http.answer("/services/T/B/X", Reply(200, b"ok"))
    settings = replace(FAST, slack_webhook_url=http.url("/services/T/B/X"))

    receipt = send("slack", Target(), settings)

    assert (receipt.ok, receipt.reply) == (True, "ok")
    [request] = http.requests
    assert "authorization" not in request.headers
    assert request.headers["x-symbid-delivery-id"] == "3f1c-delivery"
    assert "symbid delivery 3f1c-delivery" in json.loads(request.body)["text"]


def test_an_incoming_webhooks_error_is_a_permanent_failure(http: HttpServer) -> None:
    http.answer("/services/gone", Reply(404, b"no_service"))
    receipt = send("slack", Target(), replace(FAST, slack_webhook_url=http.url("/services/gone")))
    assert (receipt.ok, receipt.status, receipt.reply, receipt.permanent) == (
        False, 404, "no_service", True)


# --- email -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture(scope="module")
def starttls_port(cert: Certificate, mailbox: Mailbox) -> Iterator[int]:
    with smtp_server(mailbox, tls_context=cert.server_context(), require_starttls=True,
                     auth_require_tls=True) as port:
        yield port


@pytest.fixture
def inbox(mailbox: Mailbox) -> Mailbox:
    mailbox.reset()
    return mailbox


def smtp_settings(port: int, cert: Certificate, **changes: Any) -> DeliverySettings:
    values: dict[str, Any] = dict(smtp_host="127.0.0.1", smtp_port=port,
                                  email_from="symbid@example.com", smtp_username="${SMTP_USER}",
                                  smtp_password="${SMTP_PASS}", ca_bundle=str(cert.cert))
    return replace(FAST, **{**values, **changes})


@pytest.fixture
def starttls(cert: Certificate, starttls_port: int) -> DeliverySettings:
    return smtp_settings(starttls_port, cert)


RECIPIENTS = Target(email_recipients=("ops@example.com", "sec@example.com"))


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_email_goes_by_starttls_with_the_login_to_every_recipient(
        cert: Certificate, mechanism: str) -> None:
    inbox = Mailbox()
    with smtp_server(inbox, tls_context=cert.server_context(), require_starttls=True,
                     auth_require_tls=True,
                     auth_exclude_mechanism={"PLAIN", "LOGIN"} - {mechanism}) as port:
        receipt = send("email", RECIPIENTS, smtp_settings(port, cert))

    assert (receipt.channel, receipt.ok) == ("email", True), receipt
    assert receipt.reply == "250 2.0.0 Ok: queued as TEST1"
    assert inbox.logins == [(mechanism, LOGIN, PASSWORD)]
    [(sender, to, content)] = inbox.messages
    assert (sender, to) == ("symbid@example.com", ["ops@example.com", "sec@example.com"])
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg["Subject"] == "[symbid] nightly failed"
    assert msg["X-Symbid-Delivery-Id"] == "3f1c-delivery"
    assert msg["Message-ID"] == "<3f1c-delivery.symbid@example.com>"
    assert "disk 91% full\nsecond line" in msg.get_content()  # type: ignore[attr-defined]


def test_a_wrong_smtp_password_is_a_permanent_failure(cert: Certificate, starttls_port: int,
                                                      inbox: Mailbox) -> None:
    settings = smtp_settings(starttls_port, cert, smtp_password="${HOOK_TOKEN}")

    receipt = send("email", RECIPIENTS, settings)

    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.reply is not None and receipt.reply.startswith("535")
    assert receipt.error is not None and "login (AUTH)" in receipt.error
    assert inbox.messages == []


def test_a_refused_recipient_is_named_and_4xx_is_retryable(cert: Certificate,
                                                           starttls_port: int,
                                                           inbox: Mailbox) -> None:
    inbox.refuse.update({"ops@example.com": "451 4.3.0 try later",
                         "sec@example.com": "450 4.2.1 busy"})
    every = send("email", RECIPIENTS, smtp_settings(starttls_port, cert))
    inbox.refuse.pop("sec@example.com")
    some = send("email", RECIPIENTS, smtp_settings(starttls_port, cert))

    assert (every.ok, every.permanent, every.reply) == (False, False, "450 4.2.1 busy")
    assert (some.ok, some.permanent) == (False, True)  # a retry would mail sec@ again
    assert some.error is not None and "ops@example.com: 451 4.3.0 try later" in some.error
    assert [to for _, to, _ in inbox.messages] == [["sec@example.com"]]


def test_an_untrusted_smtp_certificate_sends_nothing(cert: Certificate, starttls_port: int,
                                                     inbox: Mailbox) -> None:
    receipt = send("email", RECIPIENTS, smtp_settings(starttls_port, cert, ca_bundle=None))
    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error is not None and "TLS certificate not trusted" in receipt.error
    assert inbox.messages == [] and inbox.logins == []


def test_email_by_implicit_tls(cert: Certificate) -> None:
    box = Mailbox()
    # aiosmtpd counts only STARTTLS as TLS for AUTH: the connection is TLS from the start
    with smtp_server(box, ssl_context=cert.server_context(), auth_require_tls=False) as port:
        settings = smtp_settings(port, cert, smtp_ssl=True, smtp_starttls=False)
        receipt = send("email", RECIPIENTS, settings)
    assert receipt.ok, receipt
    assert [login[1:] for login in box.logins] == [(LOGIN, PASSWORD)]
    assert len(box.messages) == 1


def test_a_server_without_starttls_is_refused_and_gets_nothing(cert: Certificate) -> None:
    box = Mailbox()
    with smtp_server(box, auth_require_tls=False) as port:
        receipt = send("email", RECIPIENTS, smtp_settings(port, cert))
        in_clear = send("email", RECIPIENTS, smtp_settings(port, cert, smtp_starttls=False,
                                                          smtp_username=None,
                                                          smtp_password=None))
    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and "does not offer STARTTLS" in receipt.error
    assert box.logins == []
    assert in_clear.ok and len(box.messages) == 1  # only when smtp_starttls = false


# --- stdout ----------------------------------------------------------------------------------


def test_stdout_writes_a_block_and_logs_one_record_with_the_journal_fields(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    payload = replace(PAYLOAD, output="ok\n\x1b[31mred\x1b[0m")
    with caplog.at_level(logging.INFO, logger="symbid.delivery.stdout"):
        receipt = send("stdout", Target(), FAST, payload=payload)

    assert receipt.ok
    assert capsys.readouterr().out == (
        "2026-03-08T07:00:02Z job nightly run r-1 failed\nok\n\\x1b[31mred\\x1b[0m\n")
    [record] = caplog.records
    assert (record.SYMBID_JOB, record.SYMBID_RUN, record.SYMBID_EVENT,  # type: ignore[attr-defined]
            record.SYMBID_CHANNEL) == ("nightly", "r-1", "delivery", "stdout")  # type: ignore[attr-defined]
    assert record.getMessage() == "job nightly run r-1 failed: ok\\x0a\\x1b[31mred\\x1b[0m"


def test_under_the_journal_stdout_only_logs(capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="symbid.delivery.stdout"):
        receipt = stdout.send(PAYLOAD, Target(), FAST, ENV, journal=True)
    assert receipt.ok and capsys.readouterr().out == ""
    assert len(caplog.records) == 1


# --- log_file --------------------------------------------------------------------------------


def test_log_file_appends_entries_to_the_jobs_file_and_reopens_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    first = send("log_file", Target(), FAST, log_dir=str(logs))
    os.rename(logs / "nightly.log", logs / "nightly.log.1")  # logrotate's move
    second = send("log_file", Target(), FAST, log_dir=str(logs),
                  payload=replace(PAYLOAD, run_id="r-2", status="succeeded", output="fine"))
    third = send("log_file", Target(), FAST, log_dir=str(logs),
                 payload=replace(PAYLOAD, run_id="r-3", output="no newline at end"))

    assert first.ok and second.ok and third.ok
    assert first.reply == f"appended to {logs / 'nightly.log'}"
    assert (logs / "nightly.log.1").read_text() == (
        "2026-03-08T07:00:02Z run r-1 failed\ndisk 91% full\nsecond line\n\n")
    assert (logs / "nightly.log").read_text() == (
        "2026-03-08T07:00:02Z run r-2 succeeded\nfine\n\n"
        "2026-03-08T07:00:02Z run r-3 failed\nno newline at end\n\n")
    assert (logs / "nightly.log").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("job", ["../x", "/etc/passwd", "a/../../b", ".."])
def test_a_job_name_that_tries_traversal_writes_nothing(tmp_path: Path, job: str) -> None:
    logs = tmp_path / "deep" / "logs"
    logs.mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*"))

    receipt = send("log_file", Target(), FAST, log_dir=str(logs),
                   payload=replace(PAYLOAD, job=job))

    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and "cannot name a log file" in receipt.error
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_a_symlink_planted_at_the_log_file_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (logs / "nightly.log").symlink_to(outside)
    (logs / "other.log").symlink_to(tmp_path / "dangling")

    receipt = send("log_file", Target(), FAST, log_dir=str(logs))
    dangling = send("log_file", Target(), FAST, log_dir=str(logs),
                    payload=replace(PAYLOAD, job="other"))

    for r in (receipt, dangling):
        assert (r.ok, r.permanent) == (False, True)
        assert r.error is not None and "is a symbolic link, which symbid does not follow" in \
            r.error
    assert outside.read_text() == "precious\n"
    assert not (tmp_path / "dangling").exists()


def test_a_fifo_or_a_hard_link_at_the_log_file_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkfifo(logs / "nightly.log")
    (tmp_path / "target").write_text("")
    os.link(tmp_path / "target", logs / "other.log")

    fifo = send("log_file", Target(), FAST, log_dir=str(logs))
    linked = send("log_file", Target(), FAST, log_dir=str(logs),
                  payload=replace(PAYLOAD, job="other"))

    assert fifo.error is not None and "is not a regular file" in fifo.error
    assert linked.error is not None and "has 2 hard links" in linked.error
    assert (tmp_path / "target").read_text() == ""


# --- custom ----------------------------------------------------------------------------------


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_a_custom_command_gets_the_payload_on_stdin(tmp_path: Path) -> None:
    got = tmp_path / "got.json"
    program = script(tmp_path, "post", f"open({str(got)!r}, 'w').write(sys.stdin.read() + "
                                       "os.environ['SYMBID_CHANNEL'])\nprint('posted #42')")
    settings = replace(FAST, custom={"teams": CustomChannel(command=(program,))})

    receipt = send("custom:teams", Target(), settings)

    assert (receipt.channel, receipt.ok, receipt.reply) == ("custom:teams", True, "posted #42")
    text = got.read_text()
    assert text.endswith("custom:teams")
    assert json.loads(text[: -len("custom:teams")]) == PAYLOAD.to_json()


def test_a_custom_command_gets_only_its_own_environment(tmp_path: Path) -> None:
    got = tmp_path / "env.json"
    program = script(tmp_path, "env", f"import json; json.dump(dict(os.environ), "
                                      f"open({str(got)!r}, 'w'))")
    spec = CustomChannel(command=(program,), env={"TEAMS_TOKEN": "${HOOK_TOKEN}"})
    environ = {**ENV, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    receipt = router.send("custom:teams", PAYLOAD, Target(), replace(FAST, custom={
        "teams": spec}), environ, log_dir="/nonexistent")

    assert receipt.ok
    env = json.loads(got.read_text())
    env.pop("LC_CTYPE", None)  # Python's own locale coercion
    assert env == {"TEAMS_TOKEN": "hook-token-1234", "PATH": "/usr/bin:/bin",
                   "LANG": "C.UTF-8", "SYMBID_DELIVERY_ID": "3f1c-delivery",
                   "SYMBID_JOB": "nightly", "SYMBID_RUN": "r-1", "SYMBID_STATUS": "failed",
                   "SYMBID_CHANNEL": "custom:teams"}


def test_a_custom_commands_missing_variable_is_a_permanent_failure_naming_it(
        tmp_path: Path) -> None:
    spec = CustomChannel(command=("/bin/true",), env={"T": "${NOT_SET}"})
    receipt = send("custom:teams", Target(), replace(FAST, custom={"teams": spec}))
    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and receipt.error.startswith(
        "[scheduler.delivery.custom.teams] env T: ${NOT_SET} is not set")


def test_a_custom_commands_non_zero_exit_fails_with_its_stderr(tmp_path: Path) -> None:
    program = script(tmp_path, "fail", "sys.stderr.write('teams said no\\n'); sys.exit(3)")
    settings = replace(FAST, custom={"teams": CustomChannel(command=(program,))})

    receipt = send("custom:teams", Target(), settings)

    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error == f"command {program!r} exited with status 3: teams said no"


def test_a_custom_command_past_the_timeout_has_its_group_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    program = script(tmp_path, "hang", "import subprocess\n"
                     "child = subprocess.Popen(['sleep', '60'])\n"
                     f"open({str(pid_file)!r}, 'w').write(str(child.pid))\ntime.sleep(60)")
    settings = replace(FAST, webhook_timeout_seconds=1.0,
                       custom={"slow": CustomChannel(command=(program,))})

    receipt = send("custom:slow", Target(), settings)

    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error is not None and "its process group was killed" in receipt.error
    assert not alive(int(pid_file.read_text()))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs, within a second (a killed orphan is a zombie until reaped)."""
    for _ in range(20):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.05)
    return True


PLUGIN = '''
from symbid.delivery.base import DeliveryFailed
calls = []

class Recorder:
    def route(self, channel, job, run, output):
        calls.append((channel, job, run, output))

def refuse(channel, job, run, output):
    raise DeliveryFailed("pager says no", permanent=True)

class Refusing:
    route = staticmethod(refuse)

class Odd:
    def route(self, channel, job, run, output):
        return 42
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real installed distribution (a dist-info with entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    dist = site / "symbid_test_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: symbid-test-plugin\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[symbid.delivery]\nrecorder = symbid_test_plugin:Recorder\n"
        "refusing = symbid_test_plugin:Refusing\nodd = symbid_test_plugin:Odd\n")
    (site / "symbid_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    yield __import__("symbid_test_plugin")
    sys.modules.pop("symbid_test_plugin", None)
    router.custom._loaded.clear()


def test_a_custom_entry_point_is_routed_to_with_the_job_and_run(plugin: Any) -> None:
    target = Target(webhook_url="https://x/", webhook_secret="${HOOK_SECRET}")
    command = DeliverySettings(custom={"recorder": CustomChannel(command=("/bin/false",))})

    assert router.problem("custom:recorder", Target(), DeliverySettings()) is None
    receipt = send("custom:recorder", target, command)  # the entry point comes first

    assert (receipt.ok, receipt.channel) == (True, "custom:recorder")
    [(channel, job, run, output)] = plugin.calls
    assert channel == "custom:recorder" and output == PAYLOAD.output
    assert job == {"id": "j-1", "name": "nightly", "delivery_config": {
        "webhook_url": "https://x/", "webhook_headers": {}, "slack_channel": None,
        "email_recipients": []}}
    assert run == {"id": "r-1", "status": "failed", "started_at": "2026-03-08T07:00:00Z",
                   "finished_at": "2026-03-08T07:00:02Z", "duration_ms": 2000, "attempt": 1,
                   "trigger": "schedule", "delivery_id": "3f1c-delivery"}


def test_a_custom_entry_points_failures_are_receipts(plugin: Any) -> None:
    refusing = send("custom:refusing", Target(), FAST)
    odd = send("custom:odd", Target(), FAST)

    assert (refusing.ok, refusing.permanent) == (False, True)
    assert refusing.error is not None and refusing.error.endswith("pager says no")
    assert odd.error is not None and "route() returned a int" in odd.error


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_value_reaches_a_receipt_or_a_log_record(
        tmp_path: Path, http: HttpServer, starttls: DeliverySettings, inbox: Mailbox,
        caplog: pytest.LogCaptureFixture) -> None:
    echo = json.dumps({"ok": False, "error": "invalid_auth xoxb-slack-3456"}).encode()
    http.answer("/hook", Reply(400, b"bad token hook-token-1234 / default-auth-7890 "
                                    b"team-key-5678",
                               {"Location": "x"}))
    http.answer("/api/chat.postMessage", Reply(200, echo))
    leak = script(tmp_path, "leak", "sys.stderr.write(os.environ['A'] + os.environ['B']); "
                                    "print(os.environ['C']); sys.exit(1)")
    command = CustomChannel(command=(leak,), env={"A": "${HOOK_SECRET}", "B": "${SMTP_PASS}",
                                                  "C": "token=${HOOK_TOKEN}"})
    settings = replace(starttls, webhook_auth_header="${DEFAULT_AUTH}",
                       slack_api_token="${SLACK_TOKEN}", slack_api_base=http.url("/api"),
                       custom={"leak": command})
    target = Target(webhook_url=http.url(),
                    webhook_headers={"X-Team": "${TEAM_KEY}", "X-Token": "${HOOK_TOKEN}"},
                    webhook_secret="${HOOK_SECRET}", slack_channel="#ops",
                    email_recipients=("ops@example.com",))
    inbox.refuse["ops@example.com"] = f"550 no such user {PASSWORD}"

    with caplog.at_level(logging.DEBUG):
        receipts = [send(channel, target, settings, log_dir=str(tmp_path / "logs"))
                    for channel in ("webhook", "slack", "email", "custom:leak", "stdout",
                                    "log_file")]

    assert [r.ok for r in receipts] == [False, False, False, False, True, True]
    seen = json.dumps([r.to_dict() for r in receipts]) + "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("symbid"))
    assert "***" in seen  # the servers did echo them back
    for secret in SECRETS:
        assert secret not in seen, secret
