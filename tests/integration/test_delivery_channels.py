"""The delivery channels that leave the machine, against real servers on loopback: webhooks
and Slack on an HTTP server (plain, and TLS trusted through ca_bundle), email on aiosmtpd
(STARTTLS, implicit TLS, AUTH); and no secret in any receipt or log record. Every attempt
goes through the router, as the delivery workers call it (test_delivery_local.py has the
channels that stay on the machine)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from symbid.config import CustomChannel, DeliverySettings
from symbid.delivery import router
from symbid.delivery.base import Target
from tests.integration.delivery_parts import (
    ENV,
    FAST,
    LOGIN,
    PASSWORD,
    PAYLOAD,
    SECRETS,
    Certificate,
    HttpServer,
    Mailbox,
    Reply,
    make_certificate,
    script,
    send,
    smtp_server,
)


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
    http.answer("/moved", Reply(302, b"", {"Location": http.url("/elsewhere?token=s3cr3t")}))

    receipt = send("webhook", Target(webhook_url=http.url("/moved")), FAST)

    assert [r.path for r in http.requests] == ["/moved"]
    assert (receipt.ok, receipt.status, receipt.permanent) == (False, 302, True)
    assert receipt.error is not None
    assert f"a redirect to {http.url('')};" in receipt.error  # scheme://host:port only
    assert "s3cr3t" not in receipt.error and "/elsewhere" not in receipt.error
    assert "does not follow redirects" in receipt.error


def test_a_url_whose_resolved_host_is_bad_is_a_permanent_failure(http: HttpServer) -> None:
    from symbid.delivery import router

    target = Target(webhook_url="http://${BAD_HOST}/hook")
    receipt = router.send("webhook", PAYLOAD, target, FAST, {**ENV, "BAD_HOST": "[::1"},
                          log_dir="/nonexistent")

    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and "has a bad host or port" in receipt.error


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
