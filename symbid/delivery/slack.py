"""The ``slack`` channel: a formatted message through the Web API or an incoming webhook.

With a bot token (``[scheduler.delivery] slack_api_token`` / ``SYMBI_SLACK_TOKEN``) the
message goes to ``{slack_api_base}/chat.postMessage`` in the job's ``slack_channel`` or
``slack_default_channel``; Slack's ``ok: false`` is a failure carrying its ``error``.
Without a token it goes to ``slack_webhook_url``, whose channel the webhook fixes.

The message: the job, its status and duration, the output in a code block cut to
:data:`OUTPUT_LIMIT` characters with a ``[cut: N more characters]`` marker (a block's
text holds at most 3,000), and the delivery id in a footer, in ``metadata`` (Web API)
and in the ``X-Symbid-Delivery-Id`` header.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Optional

from symbid.config import DeliverySettings
from symbid.delivery.base import (
    Payload,
    Receipt,
    Target,
    base_headers,
    clean,
    elapsed_ms,
    http_post,
    refused,
    resolve,
    secrets_of,
    status_receipt,
    where_of,
)
from symbid.errors import InvalidInput

CHANNEL = "slack"
OUTPUT_LIMIT = 2_800  # characters of output in the message's code block (Slack: 3,000)
# Slack errors a retry can cure; every other error (channel_not_found, not_in_channel,
# invalid_auth, ...) needs the operator.
RETRYABLE_ERRORS = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
    "request_timeout", "team_added_to_org",
})


def problem(target: Target, settings: DeliverySettings) -> Optional[str]:
    """What keeps the job's Slack message from being sent, or None."""
    if settings.slack_api_token:
        if not (target.slack_channel or settings.slack_default_channel):
            return ("delivery 'slack' needs the job's slack_channel or [scheduler.delivery] "
                    "slack_default_channel")
        return None
    if settings.slack_webhook_url:
        for key, value in (("the job's slack_channel", target.slack_channel),
                           ("[scheduler.delivery] slack_default_channel",
                            settings.slack_default_channel)):
            if value:
                return (f"{key} is set, but without [scheduler.delivery] slack_api_token "
                        "(or SYMBI_SLACK_TOKEN) symbid posts to slack_webhook_url, whose "
                        "channel the webhook fixes: set slack_api_token, or remove it")
        return None
    return ("delivery 'slack' needs [scheduler.delivery] slack_api_token (or "
            "SYMBI_SLACK_TOKEN) and a channel, or slack_webhook_url")


def _escaped(text: str) -> str:
    """Text for Slack's mrkdwn: its three control characters escaped, and no run of
    backticks that would close the code block."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("```", "`\u200b`\u200b`")


def cut_output(output: str, limit: int = OUTPUT_LIMIT) -> tuple[str, int]:
    """The output escaped for mrkdwn in at most ``limit`` characters, and how many of
    the output's characters were left out."""
    keep = min(len(output), limit)
    while True:
        shown = _escaped(output[:keep])
        if len(shown) <= limit:
            return shown, len(output) - keep
        keep = min(keep - 1, keep * limit // len(shown))  # escapes made it longer


def _duration(ms: Optional[int]) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f" in {ms} ms"
    if ms < 60_000:
        return f" in {ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f" in {minutes} min {seconds} s"


def message(payload: Payload) -> dict[str, Any]:
    """The message's ``text`` (the notification and fallback) and ``blocks``."""
    if payload.is_alert:
        about = f" (run `{payload.run_id}`)" if payload.run_id else ""
        head = f"`{payload.job}` alert *{payload.status}*{about}"
    else:
        head = (f"`{payload.job}` *{payload.status}*{_duration(payload.duration_ms)} "
                f"(run `{payload.run_id}`, attempt {payload.attempt}, {payload.trigger})")
    shown, left = cut_output(payload.output)
    code = f"```\n{shown}\n```" if shown else "_(no output)_"
    if left:
        code += f"\n[cut: {left} more characters]"
    footer = f"symbid delivery {payload.delivery_id}"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": head}},
        {"type": "section", "text": {"type": "mrkdwn", "text": code}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
    ]
    return {"text": f"{head}\n{code}\n{footer}", "blocks": blocks}


def _via_api(payload: Payload, target: Target, settings: DeliverySettings,
             environ: Mapping[str, str], *, secrets: list[str], started: float) -> Receipt:
    assert settings.slack_api_token is not None
    channel = target.slack_channel or settings.slack_default_channel
    try:
        token = resolve(settings.slack_api_token, environ,
                        "[scheduler.delivery] slack_api_token")
    except InvalidInput as exc:
        return refused(CHANNEL, exc.message, started)
    url = settings.slack_api_base.rstrip("/") + "/chat.postMessage"
    body = {"channel": channel, **message(payload), "unfurl_links": False,
            "unfurl_media": False,
            "metadata": {"event_type": "symbid_delivery",
                         "event_payload": {"delivery_id": payload.delivery_id,
                                           "job": payload.job, "run": payload.run_id,
                                           "status": payload.status}}}
    headers = base_headers(payload, "application/json; charset=utf-8")
    headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    result = http_post(CHANNEL, url, data, headers, timeout=settings.webhook_timeout_seconds,
                       ca_bundle=settings.ca_bundle, secrets=secrets, started=started)
    if isinstance(result, Receipt):
        return result
    where = where_of(url)
    if result.status != 200:
        return status_receipt(CHANNEL, result, where=where, secrets=secrets, started=started)
    try:
        answer = json.loads(result.body.decode("utf-8"))
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        return Receipt(CHANNEL, ok=False, status=200, duration_ms=elapsed_ms(started),
                       error=f"{where}: chat.postMessage's reply is not Slack's JSON "
                             "({\"ok\": ...})")
    if answer["ok"]:
        return Receipt(CHANNEL, ok=True, status=200, duration_ms=elapsed_ms(started),
                       reply=clean(f"posted to {channel} (ts {answer.get('ts', '?')})",
                                   secrets))
    error = clean(str(answer.get("error") or "unknown_error"), secrets, 100)
    return Receipt(CHANNEL, ok=False, status=200, reply=error,
                   permanent=error not in RETRYABLE_ERRORS, duration_ms=elapsed_ms(started),
                   error=f"Slack refused chat.postMessage to {clean(channel or '', secrets)}: "
                         f"{error}")


def _via_webhook(payload: Payload, settings: DeliverySettings, environ: Mapping[str, str],
                 secrets: list[str], started: float) -> Receipt:
    assert settings.slack_webhook_url is not None
    try:
        url = resolve(settings.slack_webhook_url, environ,
                      "[scheduler.delivery] slack_webhook_url")
    except InvalidInput as exc:
        return refused(CHANNEL, exc.message, started)
    data = json.dumps(message(payload), ensure_ascii=False).encode("utf-8")
    result = http_post(CHANNEL, url, data,
                       base_headers(payload, "application/json; charset=utf-8"),
                       timeout=settings.webhook_timeout_seconds, ca_bundle=settings.ca_bundle,
                       secrets=secrets, started=started)
    if isinstance(result, Receipt):
        return result
    text = clean(result.body.decode("utf-8", "replace"), secrets, 100)
    return status_receipt(CHANNEL, result, where=where_of(url), secrets=secrets,
                          started=started, reply_text=text or None)


def send(payload: Payload, target: Target, settings: DeliverySettings,
         environ: Mapping[str, str]) -> Receipt:
    """Post the message once. Never raises for the network or a missing variable."""
    started = time.monotonic()
    bad = problem(target, settings)
    if bad is not None:
        return refused(CHANNEL, bad, started)
    secrets = secrets_of(target, settings, environ)
    if settings.slack_api_token:
        return _via_api(payload, target, settings, environ, secrets=secrets, started=started)
    return _via_webhook(payload, settings, environ, secrets, started)
