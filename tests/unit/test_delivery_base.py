"""The delivery vocabulary: Payload and Receipt JSON, the Slack message and the email built
from a payload, the signature, Retry-After, and what is masked."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from symbid.config import DeliverySettings
from symbid.delivery import email, slack, webhook
from symbid.delivery.base import Payload, Receipt, Target, retry_after_seconds, secrets_of
from symbid.model import DeliveryConfig, Job, RunStatus, Trigger
from symbid.records import Run

PAYLOAD = Payload(delivery_id="d-1", job="nightly", job_id="j-1", run_id="r-1",
                  status="failed", output="line 1\nline 2", started_at="2026-03-08T07:00:00Z",
                  finished_at="2026-03-08T07:00:02.500Z", duration_ms=2500, attempt=2,
                  trigger="retry")


def test_the_payload_json_is_the_webhook_body_of_the_issue() -> None:
    assert PAYLOAD.to_json() == {
        "job": "nightly", "run": "r-1", "status": "failed", "output": "line 1\nline 2",
        "started_at": "2026-03-08T07:00:00Z", "finished_at": "2026-03-08T07:00:02.500Z",
        "duration_ms": 2500, "attempt": 2, "trigger": "retry", "delivery_id": "d-1",
    }
    assert json.loads(PAYLOAD.body()) == PAYLOAD.to_json()


def test_the_body_keeps_non_ascii_output_as_utf8() -> None:
    body = Payload("d", "j", "i", "r", "succeeded", output="café ☕").body()
    assert "café ☕".encode() in body


def test_a_payload_is_made_from_a_job_and_its_run() -> None:
    job = Job(id="j-1", name="nightly", agent_id="a")
    run = Run(id="r-1", job_id="j-1", slot=0, attempt=1, trigger=Trigger.SCHEDULE,
              status=RunStatus.SUCCEEDED, created_at=0, started_at=1_000, finished_at=3_500,
              execution_time_ms=2_500, output="ok")

    payload = Payload.from_run(job, run, delivery_id="d-9")

    assert payload == Payload(delivery_id="d-9", job="nightly", job_id="j-1", run_id="r-1",
                              status="succeeded", output="ok",
                              started_at="1970-01-01T00:00:01Z",
                              finished_at="1970-01-01T00:00:03.500Z", duration_ms=2_500,
                              attempt=1, trigger="schedule")
    assert Payload.from_run(job, run, delivery_id="d", output="whole").output == "whole"


def test_a_target_is_made_from_a_jobs_delivery_config() -> None:
    config = DeliveryConfig(webhook_url="https://x/", webhook_headers={"A": "${B}"},
                            slack_channel="#ops", email_recipients=("a@b.c",),
                            webhook_secret="${KEY}")
    assert Target.from_config(config) == Target(
        webhook_url="https://x/", webhook_headers={"A": "${B}"}, webhook_secret="${KEY}",
        slack_channel="#ops", email_recipients=("a@b.c",))


def test_a_receipt_round_trips_through_its_dict() -> None:
    receipt = Receipt("webhook", ok=False, status=503, reply="busy", error="answered 503",
                      retry_after=7.0, permanent=False, duration_ms=12)
    assert receipt.to_dict() == {"channel": "webhook", "ok": False, "status": 503,
                                 "reply": "busy", "error": "answered 503", "retry_after": 7.0,
                                 "permanent": False, "duration_ms": 12}
    assert Receipt.from_dict(json.loads(json.dumps(receipt.to_dict()))) == receipt


def test_the_signature_is_the_hex_hmac_sha256_of_the_exact_body() -> None:
    body = PAYLOAD.body()
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert webhook.signature(body, "k3y") == f"sha256={expected}"


def test_retry_after_takes_seconds_and_http_dates() -> None:
    now_ms = 1_700_000_000_000  # 2023-11-14T22:13:20Z
    assert retry_after_seconds("120", now_ms) == 120.0
    assert retry_after_seconds("Tue, 14 Nov 2023 22:14:20 GMT", now_ms) == 60.0
    assert retry_after_seconds("Tue, 14 Nov 2023 22:00:00 GMT", now_ms) == 0.0
    assert retry_after_seconds("soon", now_ms) is None
    assert retry_after_seconds(None, now_ms) is None


def test_the_secrets_are_every_resolved_reference_token_and_password() -> None:
    target = Target(webhook_url="https://x/${PATH_KEY}",
                    webhook_headers={"X-Key": "k=${HEADER_KEY}", "X-Plain": "visible"},
                    webhook_secret="${HMAC_KEY}")
    settings = DeliverySettings(webhook_auth_header="Bearer literal-token",
                                slack_api_token="${SLACK}", smtp_username="${USER}",
                                smtp_password="plain-password")
    environ = {"PATH_KEY": "path-secret", "HEADER_KEY": "header-secret", "HMAC_KEY": "hmac-key",
               "SLACK": "xoxb-slack", "USER": "smtp-user", "UNUSED": "not-a-secret"}

    found = set(secrets_of(target, settings, environ))

    assert found == {"path-secret", "header-secret", "hmac-key", "xoxb-slack", "smtp-user",
                     "plain-password", "Bearer literal-token", "literal-token"}


def test_the_slack_message_cuts_long_output_with_a_marker() -> None:
    long = Payload("d-1", "nightly", "j", "r", "succeeded", output="x" * 5_000,
                   duration_ms=61_000)

    message = slack.message(long)

    code = message["blocks"][1]["text"]["text"]
    assert code.startswith("```\n" + "x" * slack.OUTPUT_LIMIT + "\n```")
    assert code.endswith(f"[cut: {5_000 - slack.OUTPUT_LIMIT} more characters]")
    assert len(code) < 3_000 and len(message["text"]) < 40_000
    assert "in 1 min 1 s" in message["blocks"][0]["text"]["text"]
    assert message["blocks"][2]["elements"][0]["text"] == "symbid delivery d-1"


def test_the_slack_message_escapes_mrkdwn_and_keeps_its_code_block_closed() -> None:
    shown, left = slack.cut_output("<!channel> & ```done```")
    assert shown == "&lt;!channel&gt; &amp; `\u200b`\u200b`done`\u200b`\u200b`"
    assert left == 0
    assert slack.cut_output("&" * 1_000, limit=100) == ("&amp;" * 20, 980)


def test_the_email_names_the_job_and_status_and_carries_the_delivery_id() -> None:
    settings = DeliverySettings(smtp_host="h", email_from="symbid <symbid@example.com>")
    target = Target(email_recipients=("ops@example.com", "sec@example.com"))

    msg = email.build_message(PAYLOAD, target, settings)

    assert msg["Subject"] == "[symbid] nightly failed"
    assert msg["To"] == "ops@example.com, sec@example.com"
    assert msg["Message-ID"] == "<d-1.symbid@example.com>"
    assert msg["X-Symbid-Delivery-Id"] == "d-1"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content()
    assert "Status:    failed" in body and "Duration:  2.500 s" in body
    assert body.endswith("Output:\nline 1\nline 2\n")


def test_the_documented_verification_snippet_accepts_symbids_signature_only() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "delivery.md").read_text()
    [snippet] = re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)
    scope: dict[str, Any] = {}
    exec(snippet, scope)
    body = PAYLOAD.body()
    header = webhook.signature(body, "k3y")

    assert scope["verify"](body, header, "k3y")
    assert not scope["verify"](body, header, "other")
    assert not scope["verify"](body + b" ", header, "k3y")


def test_an_alert_about_no_run_says_alert_and_its_event_in_slack_and_email() -> None:
    alert = Payload("d-2", "nightly", "j", "", "dead_letter", output="schedule invalid",
                    finished_at="2026-03-08T07:00:00Z", trigger="alert")
    settings = DeliverySettings(smtp_host="h", email_from="symbid@example.com")

    head = slack.message(alert)["blocks"][0]["text"]["text"]
    about = slack.message(Payload("d-3", "nightly", "j", "r-4", "run_failed",
                                  trigger="alert"))["blocks"][0]["text"]["text"]
    msg = email.build_message(alert, Target(email_recipients=("ops@example.com",)), settings)

    assert head == "`nightly` alert *dead_letter*"
    assert about == "`nightly` alert *run_failed* (run `r-4`)"
    assert msg["Subject"] == "[symbid] nightly alert dead_letter"
    assert msg["X-Symbid-Run"] is None
    assert "Run:       - (alert)" in msg.get_content()


def test_a_2xx_receipt_keeps_the_start_of_the_receivers_reply_masked() -> None:
    from symbid.delivery.base import HttpReply, status_receipt

    reply = HttpReply(202, {}, b'{"queued": "job-7", "token": "s3cret"}' + b"x" * 500)
    receipt = status_receipt("webhook", reply, where="http://h", secrets=["s3cret"],
                             started=0.0)
    empty = status_receipt("webhook", HttpReply(204, {}, b""), where="http://h", secrets=[],
                           started=0.0)

    assert receipt.ok and receipt.status == 202
    assert receipt.reply is not None and receipt.reply.startswith('{"queued": "job-7"')
    assert "s3cret" not in receipt.reply and len(receipt.reply) < 250
    assert empty.ok and empty.reply is None


def test_an_alert_whose_run_is_gone_still_names_the_run_it_was_about() -> None:
    from symbid.dispatch import payload_of
    from symbid.store.deliveries import Delivery

    row = Delivery(id="d-9", run_id="r-9", job_id="j-1", channel="stdout", kind="alert",
                   status="pending", attempts=0, next_at=0, receipts=(), created_at=0,
                   payload={"event": "run_failed", "message": "exit status 3"})
    job = Job(id="j-1", name="nightly", agent_id="a")

    assert payload_of(row, job, None).run_id == "r-9"
    assert payload_of(replace(row, run_id=None), job, None).run_id == ""
