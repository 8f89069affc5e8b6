"""Delivery channel names and what a job's delivery definition must hold, checked when
the job is defined (API, DSL) without symbid's settings; what needs the settings (an SMTP
host, a Slack default channel, a custom channel's command) is the router's to check."""

from __future__ import annotations

import re
from typing import Optional

from symbid.model import DeliveryConfig

CHANNELS = ("stdout", "log_file", "webhook", "slack", "email")  # built in; and custom:NAME
CUSTOM_PREFIX = "custom:"
CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the NAME of custom:NAME
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def channel_problem(channel: str) -> Optional[str]:
    """Why ``channel`` is not a delivery channel's name, or None."""
    if channel in CHANNELS:
        return None
    if channel.startswith(CUSTOM_PREFIX):
        if CUSTOM_NAME.fullmatch(channel[len(CUSTOM_PREFIX):]):
            return None
        return (f"custom channel {channel[:80]!r}: NAME is 1 to 64 ASCII letters, digits, "
                "'.', '_' or '-'")
    return (f"unknown delivery channel {channel!r}: the channels are "
            f"{', '.join(CHANNELS)}, or custom:NAME")


def delivery_problem(delivery: tuple[str, ...], config: DeliveryConfig,
                     alert: tuple[str, ...] = (), watch: Optional[float] = None,
                     cooldown: Optional[float] = None) -> Optional[tuple[str, str]]:
    """(field, message) for what a job's delivery (and its alerts) lacks without looking
    at symbid's settings (those are checked where they are known): unknown channels, a
    webhook without webhook_url, email without recipients, a channel's field (webhook_url,
    webhook_headers, webhook_secret, slack_channel, email_recipients, alert_cooldown)
    given without its channel, a webhook_secret that is not a ${VAR} reference (a
    secret is never stored), a dead man's switch without alert channels."""
    for key, channels in (("delivery", delivery), ("alert", alert)):
        for channel in channels:
            problem = channel_problem(channel)
            if problem is not None:
                return key, problem
        if len(set(channels)) != len(channels):
            return key, "a channel is listed twice"
        if "webhook" in channels and not config.webhook_url:
            return "webhook_url", f"{key} 'webhook' needs webhook_url"
        if "email" in channels and not config.email_recipients:
            return "email_recipients", f"{key} 'email' needs email_recipients"
    used = (*delivery, *alert)
    for key, channel, given in (
            ("webhook_url", "webhook", config.webhook_url is not None),
            ("webhook_headers", "webhook", bool(config.webhook_headers)),
            ("webhook_secret", "webhook", config.webhook_secret is not None),
            ("slack_channel", "slack", config.slack_channel is not None),
            ("email_recipients", "email", bool(config.email_recipients))):
        if given and channel not in used:  # it would be kept and never used
            return key, (f"{key} is for the {channel} channel, which neither delivery nor "
                         f"alert lists: add {channel!r} to one of them, or remove {key}")
    slack = config.slack_channel
    if slack is not None and (not slack.strip() or any(
            c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in slack)):
        return "slack_channel", ("slack_channel must be a channel name or id without spaces "
                                 "(\"#ops\", \"C0123456\"); leave it out for "
                                 "[scheduler.delivery] slack_default_channel")
    if cooldown is not None and not alert:
        return "alert_cooldown", "alert_cooldown needs alert channels: add alert: [...]"
    if watch is not None and watch <= 0:
        return "alert_if_no_success_within", ("alert_if_no_success_within must be a positive "
                                              "duration, such as \"26h\"")
    if watch is not None and not alert:
        return "alert", ("alert_if_no_success_within needs alert channels to tell: "
                         'add alert: ["slack"] (or another channel)')
    if cooldown is not None and cooldown < 0:
        return "alert_cooldown", "alert_cooldown must not be negative"
    if config.webhook_secret is not None and not _REFERENCE.match(config.webhook_secret):
        return "webhook_secret", ("webhook_secret must be a ${VAR} reference to the secret "
                                  "in symbid's environment, so that it is never stored")
    return None
