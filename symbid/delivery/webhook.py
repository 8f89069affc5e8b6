"""The ``webhook`` channel: the run's payload POSTed as JSON to the job's ``webhook_url``.

Headers: ``Content-Type: application/json``, ``User-Agent: symbid``,
``X-Symbid-Delivery-Id`` (the same on every attempt), the job's ``webhook_headers`` with
``${VAR}`` resolved at send time (they may replace Content-Type, User-Agent and
Authorization), ``Authorization`` from ``[scheduler.delivery] webhook_auth_header`` /
``SYMBI_WEBHOOK_AUTH_HEADER`` unless the job's headers give one, and
``X-Symbid-Signature: sha256=<hex HMAC-SHA256 of the exact body>`` when the job has a
``webhook_secret``. Success is a 2xx; see :func:`symbid.delivery.base.status_receipt`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import Optional

from symbid.config import DeliverySettings, url_problem
from symbid.delivery.base import (
    DELIVERY_ID_HEADER,
    Payload,
    Receipt,
    Target,
    base_headers,
    header_problem,
    http_post,
    refused,
    resolve,
    secrets_of,
    status_receipt,
    where_of,
)
from symbid.errors import InvalidInput

CHANNEL = "webhook"
SIGNATURE_HEADER = "X-Symbid-Signature"
# Headers symbid sets itself or that frame the request: a job cannot give them.
RESERVED = frozenset(name.lower() for name in (
    DELIVERY_ID_HEADER, SIGNATURE_HEADER, "Content-Length", "Host", "Transfer-Encoding",
    "Connection", "Expect", "TE", "Trailer", "Upgrade", "Keep-Alive",
))
_ONE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def problem(target: Target, settings: DeliverySettings) -> Optional[str]:
    """What keeps the job's webhook from being sent, or None (checked when a job is
    defined; references are not resolved here)."""
    if not target.webhook_url:
        return "delivery 'webhook' needs webhook_url (the URL to POST the run to)"
    bad = url_problem(target.webhook_url)
    if bad is not None:
        return f"webhook_url {bad}"
    for name, value in target.webhook_headers.items():
        if name.lower() in RESERVED:
            return f"webhook_headers: {name} is set by symbid; a job cannot give it"
        bad = header_problem(name, value)
        if bad is not None:
            return f"webhook_headers: {bad}"
    if target.webhook_secret is not None and not _ONE_REFERENCE.fullmatch(
            target.webhook_secret):
        return ("webhook_secret must be a ${VAR} reference to a variable in symbid's "
                "environment (the key itself is never stored)")
    return None


def signature(body: bytes, key: str) -> str:
    """The ``X-Symbid-Signature`` value of ``body`` under ``key``."""
    return "sha256=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _headers(payload: Payload, target: Target, settings: DeliverySettings,
             environ: Mapping[str, str], body: bytes) -> dict[str, str]:
    """Every header of the request, references resolved (raises InvalidInput naming a
    variable that is not set)."""
    headers = base_headers(payload)
    given = {name: resolve(value, environ, f"webhook_headers {name}")
             for name, value in target.webhook_headers.items()}
    if settings.webhook_auth_header and not any(n.lower() == "authorization" for n in given):
        headers["Authorization"] = resolve(settings.webhook_auth_header, environ,
                                           "[scheduler.delivery] webhook_auth_header")
    for name, value in given.items():  # the job's own replace ours, whatever their case
        for ours in [n for n in headers if n.lower() == name.lower()]:
            del headers[ours]
        headers[name] = value
    if target.webhook_secret is not None:
        key = resolve(target.webhook_secret, environ, "webhook_secret")
        if not key:
            raise InvalidInput(f"webhook_secret: {target.webhook_secret} is empty in "
                               "symbid's environment", field="webhook_secret")
        headers[SIGNATURE_HEADER] = signature(body, key)
    return headers


def send(payload: Payload, target: Target, settings: DeliverySettings,
         environ: Mapping[str, str]) -> Receipt:
    """POST the payload once; the receipt says whether it arrived (2xx) and whether a
    retry could help. Never raises for the network or a missing variable."""
    started = time.monotonic()
    bad = problem(target, settings)
    if bad is not None:
        return refused(CHANNEL, bad, started)
    assert target.webhook_url is not None  # problem() says so
    secrets = secrets_of(target, settings, environ)
    body = payload.body()
    try:
        url = resolve(target.webhook_url, environ, "webhook_url")
        headers = _headers(payload, target, settings, environ, body)
    except InvalidInput as exc:
        return refused(CHANNEL, exc.message, started)
    result = http_post(CHANNEL, url, body, headers, timeout=settings.webhook_timeout_seconds,
                       ca_bundle=settings.ca_bundle, secrets=secrets, started=started)
    if isinstance(result, Receipt):
        return result
    return status_receipt(CHANNEL, result, where=where_of(url), secrets=secrets,
                          started=started)
