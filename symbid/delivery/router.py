"""The router: a channel's name to its module; a job's channels checked; a send that
never raises.

``CHANNELS`` are the built-in channels; ``custom:NAME`` names a custom one (an entry
point in group ``symbid.delivery``, or ``[scheduler.delivery.custom.NAME]``).
:func:`problem` says, when a job is defined, why one of its channels could not deliver
(unknown, or a setting missing); :func:`send` makes one attempt and returns its
:class:`Receipt`, whatever happens in the channel. The delivery contract (payload,
headers, signature, at-least-once) is in docs/delivery.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Optional

from symbid import channels as names
from symbid.config import DeliverySettings
from symbid.delivery import custom, email, log_file, slack, stdout, webhook
from symbid.delivery.base import (
    DeliveryRouter,
    Payload,
    Receipt,
    Target,
    clean,
    secrets_of,
)
from symbid.journal import stderr_is_journal
from symbid.model import Job

__all__ = ["CHANNELS", "CUSTOM_PREFIX", "DeliveryRouter", "Payload", "Receipt", "Target",
           "job_problem", "problem", "problems", "send"]

CHANNELS: tuple[str, ...] = names.CHANNELS  # one list: the job checks' and the router's
CUSTOM_PREFIX = custom.PREFIX
log = logging.getLogger(__name__)


def problem(channel: str, target: Target, settings: DeliverySettings, *,
            job: Optional[str] = None) -> Optional[str]:
    """Why ``channel`` cannot deliver for a job with ``target``, or None.

    Unknown channels name the known ones; a channel whose settings are missing names
    the key to set. ``job``, the job's name, lets ``log_file`` check it names a file.
    References (``${VAR}``) are not resolved: a variable missing at send time is a
    permanent failure of that attempt.
    """
    if channel.startswith(CUSTOM_PREFIX):
        return custom.problem(target, settings, name=channel[len(CUSTOM_PREFIX):])
    if channel == "stdout":
        return stdout.problem(target, settings)
    if channel == "log_file":
        return log_file.problem(target, settings, job=job)
    if channel == "webhook":
        return webhook.problem(target, settings)
    if channel == "slack":
        return slack.problem(target, settings)
    if channel == "email":
        return email.problem(target, settings)
    return (f"unknown delivery channel {clean(channel, [], 80)!r}; channels are "
            f"{', '.join(CHANNELS)} and {CUSTOM_PREFIX}NAME")


def problems(channels: tuple[str, ...], target: Target, settings: DeliverySettings, *,
             job: Optional[str] = None) -> list[tuple[int, str]]:
    """Each of a job's ``delivery`` entries that cannot deliver: (its index, why),
    including a channel named twice (it would deliver twice)."""
    found = []
    for i, channel in enumerate(channels):
        if channel in channels[:i]:
            found.append((i, f"delivery channel {clean(channel, [], 80)!r} is named twice"))
            continue
        why = problem(channel, target, settings, job=job)
        if why is not None:
            found.append((i, why))
    return found


def job_problem(job: Job, settings: DeliverySettings) -> Optional[tuple[str, str]]:
    """(field, message) for what ``settings`` lack to deliver to ``job``'s channels (its
    ``delivery`` and ``alert``): checked when the job is defined, on a reload of the
    settings, and by ``symbi dsl check --config``."""
    target = Target.from_config(job.delivery_config,
                                webhook_secret=job.delivery_config.webhook_secret)
    for key, channels in (("delivery", job.delivery), ("alert", job.alert)):
        found = problems(tuple(channels), target, settings, job=job.name)
        if found:
            message = found[0][1]
            if key == "alert" and message.startswith("delivery "):  # the channels' words
                message = "alert " + message[len("delivery "):]
            # a job field the message names (a bad webhook_url) is the field at fault
            named = [f for f in _JOB_FIELDS if re.search(rf"\b{f}\b", message)]
            return (named[0] if named else key), message
    return None


_JOB_FIELDS = ("webhook_url", "webhook_headers", "webhook_secret", "slack_channel",
               "email_recipients")


def _send(channel: str, payload: Payload, target: Target, settings: DeliverySettings,
          environ: Mapping[str, str], *, log_dir: str) -> Receipt:
    if channel.startswith(CUSTOM_PREFIX):
        return custom.send(payload, target, settings, environ,
                           name=channel[len(CUSTOM_PREFIX):])
    if channel == "stdout":
        return stdout.send(payload, target, settings, environ,
                           journal=stderr_is_journal(dict(environ)))
    if channel == "log_file":
        return log_file.send(payload, target, settings, environ, log_dir=log_dir)
    if channel == "webhook":
        return webhook.send(payload, target, settings, environ)
    if channel == "slack":
        return slack.send(payload, target, settings, environ)
    return email.send(payload, target, settings, environ)


def send(channel: str, payload: Payload, target: Target, settings: DeliverySettings,
         environ: Mapping[str, str], *, log_dir: str) -> Receipt:
    """One attempt at delivering ``payload`` to ``channel``. Never raises (an Exception);
    a channel that cannot deliver now (unknown, a setting removed since the job was
    defined) gives a permanent failure; an exception inside a channel becomes a failed,
    retryable receipt with its type and message, masked."""
    why = problem(channel, target, settings, job=payload.job)
    if why is not None:
        return Receipt(clean(channel, [], 80), ok=False, error=why, permanent=True)
    try:
        return _send(channel, payload, target, settings, environ, log_dir=log_dir)
    except Exception as exc:
        # No traceback: its text could quote a secret; the masked message says enough.
        error = clean(f"{type(exc).__name__}: {exc}", secrets_of(target, settings, environ))
        log.warning("delivery channel %s failed (%s): %s", channel, payload.headline(),
                    error, extra={"SYMBID_JOB": payload.job, "SYMBID_RUN": payload.run_id,
                                  "SYMBID_EVENT": "delivery", "SYMBID_CHANNEL": channel})
        return Receipt(channel, ok=False, permanent=False, error=error)
