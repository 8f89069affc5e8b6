"""The ``email`` channel: one message per delivery, by SMTP, to the job's recipients.

TLS: ``smtp_ssl`` connects with implicit TLS (SMTPS, port 465); otherwise
``smtp_starttls`` (default true) requires STARTTLS, and a server that does not offer it
gets nothing, credentials least of all. Certificates are verified against the system
store or ``ca_bundle``. ``smtp_username``/``smtp_password`` (``${VAR}`` references) log
in. Subject ``[symbid] JOB STATUS``; a plain-text body; ``Message-ID`` and
``X-Symbid-Delivery-Id`` come from the delivery id, the same on every attempt, so a
receiver can drop a duplicate. An SMTP 4xx is retryable, a 5xx permanent.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Optional, Union

from symbid.clock import SystemClock
from symbid.config import DeliverySettings
from symbid.delivery.base import (
    DELIVERY_ID_HEADER,
    Payload,
    Receipt,
    Target,
    clean,
    deadline,
    elapsed_ms,
    network_failure,
    refused,
    resolve,
    secrets_of,
    tls_context,
)
from symbid.errors import InvalidInput

CHANNEL = "email"
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")
_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _address_problem(address: str, *, display_name: bool) -> Optional[str]:
    if any(c in address for c in "\r\n\0"):
        return "has a line break in it"
    name, addr = parseaddr(address)
    if "@" not in addr or " " in addr or ("," in address and not display_name):
        return "is not an email address"
    if name and not display_name:
        return "must be a bare address (user@example.com)"
    return None


def problem(target: Target, settings: DeliverySettings) -> Optional[str]:
    """What keeps the job's email from being sent, or None."""
    if not target.email_recipients:
        return "delivery 'email' needs email_recipients (the addresses to send the run to)"
    for key in ("smtp_host", "email_from"):
        if not getattr(settings, key):
            return f"delivery 'email' needs [scheduler.delivery] {key}"
    if settings.smtp_starttls and settings.smtp_ssl:
        return ("[scheduler.delivery] smtp_starttls and smtp_ssl are both true; choose one "
                "(smtp_ssl: implicit TLS; smtp_starttls: STARTTLS)")
    if bool(settings.smtp_username) != bool(settings.smtp_password):
        given, missing = (("smtp_username", "smtp_password") if settings.smtp_username
                          else ("smtp_password", "smtp_username"))
        return f"[scheduler.delivery] {given} is set without {missing}"
    assert settings.email_from is not None
    bad = _address_problem(settings.email_from, display_name=True)
    if bad is not None:
        return f"[scheduler.delivery] email_from {bad}"
    for address in target.email_recipients:
        bad = _address_problem(address, display_name=False)
        if bad is not None:
            return f"email_recipients: {address!r} {bad}"
    return None


def _duration(ms: Optional[int]) -> str:
    return "-" if ms is None else f"{ms / 1000:.3f} s"


def build_message(payload: Payload, target: Target, settings: DeliverySettings) -> EmailMessage:
    """The message of one delivery (its Date is the attempt's; all else is the same on
    every attempt)."""
    assert settings.email_from is not None
    domain = parseaddr(settings.email_from)[1].rpartition("@")[2]
    if not _DOMAIN.fullmatch(domain):
        domain = "symbid.invalid"
    msg = EmailMessage()
    kind = "alert " if payload.is_alert else ""
    msg["Subject"] = f"[symbid] {payload.job} {kind}{payload.status}"
    msg["From"] = settings.email_from
    msg["To"] = ", ".join(target.email_recipients)
    msg["Date"] = formatdate(SystemClock().now() / 1000, usegmt=True)  # the one clock
    msg["Message-ID"] = f"<{_ID_SAFE.sub('_', payload.delivery_id)}.symbid@{domain}>"
    msg[DELIVERY_ID_HEADER] = payload.delivery_id
    msg["X-Symbid-Job"] = payload.job
    if payload.run_id:
        msg["X-Symbid-Run"] = payload.run_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    lines = [
        f"Job:       {payload.job}",
        f"Status:    {payload.status}",
        f"Run:       {payload.run_id} (attempt {payload.attempt}, {payload.trigger})"
        if payload.run_id else f"Run:       - ({payload.trigger})",
        f"Started:   {payload.started_at or '-'}",
        f"Finished:  {payload.finished_at or '-'}",
        f"Duration:  {_duration(payload.duration_ms)}",
        f"Delivery:  {payload.delivery_id}",
        "",
        "Output:" if payload.output else "(no output)",
        payload.output,
    ]
    msg.set_content("\n".join(lines).rstrip("\n") + "\n", charset="utf-8")
    return msg


def _smtp_failure(exc: smtplib.SMTPResponseException, what: str, secrets: list[str],
                  started: float) -> Receipt:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
        else str(exc.smtp_error)
    reply = clean(f"{exc.smtp_code} {text}", secrets)
    return Receipt(CHANNEL, ok=False, reply=reply, permanent=exc.smtp_code >= 500,
                   error=f"the SMTP server refused {what}: {reply}",
                   duration_ms=elapsed_ms(started))


def _converse(smtp: smtplib.SMTP, payload: Payload, target: Target,
              settings: DeliverySettings, *, login: Optional[tuple[str, str]],
              context: Optional[ssl.SSLContext], secrets: list[str],
              started: float) -> Receipt:
    """EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA: the receipt of the whole conversation."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    step = "EHLO"
    try:
        smtp.ehlo()
        if settings.smtp_starttls:
            if not smtp.has_extn("starttls"):
                return refused(CHANNEL, f"{where} does not offer STARTTLS, which "
                                        "smtp_starttls = true requires (use smtp_ssl for "
                                        "implicit TLS); nothing was sent", started)
            step = "STARTTLS"
            smtp.starttls(context=context)
            smtp.ehlo()
        if login is not None:
            step = "the login (AUTH)"
            smtp.login(*login)
        assert settings.email_from is not None
        step = "the sender (MAIL FROM)"
        code, text = smtp.mail(parseaddr(settings.email_from)[1])
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, text, settings.email_from)
        step = "the recipients (RCPT TO)"
        refused_to: list[str] = []
        last: Optional[smtplib.SMTPResponseException] = None
        for address in target.email_recipients:
            code, text = smtp.rcpt(address)
            if code not in (250, 251):
                refused_to.append(f"{address}: {code} {text.decode('utf-8', 'replace')}")
                last = smtplib.SMTPResponseException(code, text)
        if last is not None and len(refused_to) == len(target.email_recipients):
            smtp.rset()
            raise last
        step = "the message (DATA)"
        code, text = smtp.data(build_message(payload, target, settings).as_bytes())
        if code != 250:
            raise smtplib.SMTPDataError(code, text)
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass  # the message was accepted; a lost goodbye changes nothing
    except smtplib.SMTPServerDisconnected:
        raise  # the network's doing (or the deadline's): send() names it
    except smtplib.SMTPNotSupportedError as exc:
        return refused(CHANNEL, clean(f"{where}: {step} failed: {exc}", secrets), started)
    except smtplib.SMTPResponseException as exc:
        return _smtp_failure(exc, step, secrets, started)
    except smtplib.SMTPException as exc:  # no auth method in common, a dropped connection
        permanent = "authentication" in str(exc).lower()
        return refused(CHANNEL, clean(f"{where}: {step} failed: {exc}", secrets), started,
                       permanent=permanent)
    reply = clean(f"{code} {text.decode('utf-8', 'replace')}", secrets)
    if refused_to:  # some got it: a retry would send it to them again
        return Receipt(CHANNEL, ok=False, permanent=True, reply=reply,
                       duration_ms=elapsed_ms(started),
                       error=clean("sent, but the SMTP server refused "
                                   + "; ".join(refused_to), secrets))
    return Receipt(CHANNEL, ok=True, reply=reply, duration_ms=elapsed_ms(started))


def send(payload: Payload, target: Target, settings: DeliverySettings,
         environ: Mapping[str, str]) -> Receipt:
    """Send the message once. Never raises for the network, the server or a missing
    variable."""
    started = time.monotonic()
    bad = problem(target, settings)
    if bad is not None:
        return refused(CHANNEL, bad, started)
    secrets = secrets_of(target, settings, environ)
    login: Optional[tuple[str, str]] = None
    try:
        if settings.smtp_username and settings.smtp_password:
            login = (resolve(settings.smtp_username, environ,
                             "[scheduler.delivery] smtp_username"),
                     resolve(settings.smtp_password, environ,
                             "[scheduler.delivery] smtp_password"))
    except InvalidInput as exc:
        return refused(CHANNEL, exc.message, started)
    context: Optional[ssl.SSLContext] = None
    if settings.smtp_ssl or settings.smtp_starttls:
        try:
            context = tls_context(settings.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            return refused(CHANNEL, f"ca_bundle {settings.ca_bundle!r} cannot be used: {exc}",
                           started)
    assert settings.smtp_host is not None
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.webhook_timeout_seconds
    smtp: Union[smtplib.SMTP, None] = None
    with deadline(timeout, lambda: getattr(smtp, "sock", None)) as expired:
        try:
            # connecting and the greeting: each read bounded by the timeout (the deadline
            # can reach the socket only once the object exists)
            if settings.smtp_ssl:
                smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            return _converse(smtp, payload, target, settings, login=login, context=context,
                             secrets=secrets, started=started)
        except smtplib.SMTPResponseException as exc:  # the greeting
            return _smtp_failure(exc, "the connection", secrets, started)
        except (OSError, smtplib.SMTPException) as exc:
            return network_failure(CHANNEL, exc, where=f"smtp://{host}:{port}",
                                   timeout=timeout, expired=expired, secrets=secrets,
                                   started=started)
        finally:
            if smtp is not None:
                smtp.close()
