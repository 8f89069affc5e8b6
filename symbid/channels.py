"""Delivery channel names and what a job's delivery definition must hold, checked when
the job is defined (API, DSL) without symbid's settings; what needs the settings (an SMTP
host, a Slack default channel, a custom channel's command) is the router's to check."""

from __future__ import annotations

import re
from typing import Optional

from symbid.model import DeliveryConfig, name_problem

CHANNELS = ("stdout", "log_file", "webhook", "slack", "email")  # built in; and custom:NAME
CUSTOM_PREFIX = "custom:"
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def channel_problem(channel: str) -> Optional[str]:
    """Why ``channel`` is not a delivery channel's name, or None."""
    if channel in CHANNELS:
        return None
    if channel.startswith(CUSTOM_PREFIX):
        problem = name_problem(channel[len(CUSTOM_PREFIX):])
        return None if problem is None else f"custom channel name {problem}"
    return (f"unknown delivery channel {channel!r}: the channels are "
            f"{', '.join(CHANNELS)}, or custom:NAME")


def delivery_problem(delivery: tuple[str, ...], config: DeliveryConfig) -> \
        Optional[tuple[str, str]]:
    """(field, message) for what a job's delivery lacks without looking at symbid's
    settings (those are checked where they are known): unknown channels, a webhook
    without webhook_url, email without recipients, a webhook_secret that is not a
    ${VAR} reference (a secret is never stored)."""
    for channel in delivery:
        problem = channel_problem(channel)
        if problem is not None:
            return "delivery", problem
    if len(set(delivery)) != len(delivery):
        return "delivery", "a channel is listed twice"
    if "webhook" in delivery and not config.webhook_url:
        return "webhook_url", "delivery 'webhook' needs webhook_url"
    if "email" in delivery and not config.email_recipients:
        return "email_recipients", "delivery 'email' needs email_recipients"
    if config.webhook_secret is not None and not _REFERENCE.match(config.webhook_secret):
        return "webhook_secret", ("webhook_secret must be a ${VAR} reference to the secret "
                                  "in symbid's environment, so that it is never stored")
    return None
