"""The vocabulary every delivery channel shares: what is sent, where, and what came back.

- :class:`Payload`: one delivery of one run's output (the same ``delivery_id`` on every
  attempt of that delivery);
- :class:`Target`: what a job says about its channels (``delivery_config`` plus
  ``webhook_secret``), ``${VAR}`` references unresolved;
- :class:`Receipt`: the result of one attempt, with no secret in it;
- :func:`http_post`: a POST that never follows redirects, verifies TLS, has a deadline,
  caps the reply it reads and never raises for what the network does;
- :func:`secrets_of`: the values every channel masks (what ``${VAR}`` references, tokens
  and passwords resolve to).

Standard library only, plus symbid's vocabulary (clock, config, model, records, text,
errors), so each channel module, which imports nothing else of symbid's delivery, stays
blind to the others. docs/delivery.md is the operator's description.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Optional, Protocol, Union
from urllib.parse import urlsplit

from symbid.clock import SystemClock
from symbid.config import DeliverySettings, referenced_values, resolve_refs, url_problem
from symbid.errors import InvalidInput
from symbid.model import DeliveryConfig, Job, format_instant
from symbid.records import Run
from symbid.text import escape, mask, secret_parts, shorten

MAX_REPLY_BODY = 64 * 1024  # bytes of an HTTP reply read; the rest is never read
TEXT_LIMIT = 300  # characters of a server's reply or error kept in a receipt
USER_AGENT = "symbid"
DELIVERY_ID_HEADER = "X-Symbid-Delivery-Id"


@dataclass(frozen=True)
class Payload:
    """One delivery of one run: the same on every attempt of that delivery.

    ``attempt`` is the run's attempt at its slot (1, then 2 for the first retry...), not
    the delivery's; ``started_at``/``finished_at`` are RFC 3339 UTC.
    """

    delivery_id: str
    job: str  # the job's name
    job_id: str
    run_id: str
    status: str  # the run's final status (succeeded, failed, timed_out)
    output: str = ""
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    duration_ms: Optional[int] = None
    attempt: int = 1
    trigger: str = "schedule"

    def to_json(self) -> dict[str, Any]:
        """The webhook body (and a custom command's stdin), as a JSON object."""
        return {"job": self.job, "run": self.run_id, "status": self.status,
                "output": self.output, "started_at": self.started_at,
                "finished_at": self.finished_at, "duration_ms": self.duration_ms,
                "attempt": self.attempt, "trigger": self.trigger,
                "delivery_id": self.delivery_id}

    def body(self) -> bytes:
        """:meth:`to_json` as the exact bytes sent (UTF-8, compact): what is signed."""
        return json.dumps(self.to_json(), ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_run(cls, job: Job, run: Run, *, delivery_id: str,
                 output: Optional[str] = None) -> Payload:
        """The payload of ``run`` of ``job``; ``output`` defaults to the run's own."""
        return cls(
            delivery_id=delivery_id, job=job.name, job_id=job.id, run_id=run.id,
            status=run.status.value,
            output=(run.output or "") if output is None else output,
            started_at=None if run.started_at is None else format_instant(run.started_at),
            finished_at=None if run.finished_at is None else format_instant(run.finished_at),
            duration_ms=run.execution_time_ms, attempt=run.attempt,
            trigger=run.trigger.value)

    @property
    def is_alert(self) -> bool:
        """An alert about the job (its event is :attr:`status`), not a run's output."""
        return self.trigger == "alert"

    def headline(self) -> str:
        """``run ID STATUS`` for a run's output; ``alert EVENT``, with ``run ID`` when
        the alert is about one, for an alert. Escaped for a log line."""
        if self.is_alert:
            about = f" run {escape(self.run_id)}" if self.run_id else ""
            return f"alert {escape(self.status)}{about}"
        return f"run {escape(self.run_id)} {escape(self.status)}"

    def when(self) -> str:
        """The instant an entry about this run is stamped with: its end (or start, or
        now when it has neither), so every attempt writes the same stamp."""
        return self.finished_at or self.started_at or format_instant(SystemClock().now())


@dataclass(frozen=True)
class Target:
    """What a job says about its channels; ``${VAR}`` references stay unresolved."""

    webhook_url: Optional[str] = None
    webhook_headers: Mapping[str, str] = field(default_factory=dict)
    webhook_secret: Optional[str] = None  # a ${VAR} reference to the HMAC key
    slack_channel: Optional[str] = None
    email_recipients: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: DeliveryConfig, *,
                    webhook_secret: Optional[str] = None) -> Target:
        """A job's ``delivery_config`` as a target; ``webhook_secret`` defaults to its own."""
        secret = config.webhook_secret if webhook_secret is None else webhook_secret
        return cls(webhook_url=config.webhook_url, webhook_headers=dict(config.webhook_headers),
                   webhook_secret=secret, slack_channel=config.slack_channel,
                   email_recipients=tuple(config.email_recipients))

    def to_dict(self) -> dict[str, Any]:
        """As written (references unresolved): safe to show."""
        return {"webhook_url": self.webhook_url, "webhook_headers": dict(self.webhook_headers),
                "webhook_secret": self.webhook_secret, "slack_channel": self.slack_channel,
                "email_recipients": list(self.email_recipients)}


@dataclass(frozen=True)
class Receipt:
    """The result of one attempt at one delivery. Its text holds no secret value.

    ``reply``: what the other end said (an SMTP reply, Slack's error, a command's stdout
    tail, the file written); ``retry_after``: the wait the server asked for, in seconds;
    ``permanent``: retrying cannot help (a 4xx other than 408/425/429, a redirect, Slack's
    ``channel_not_found``, an SMTP 5xx, a missing setting or variable).
    """

    channel: str
    ok: bool
    status: Optional[int] = None  # the HTTP status, when there was one
    reply: Optional[str] = None
    error: Optional[str] = None
    retry_after: Optional[float] = None
    permanent: bool = False
    duration_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "ok": self.ok, "status": self.status,
                "reply": self.reply, "error": self.error, "retry_after": self.retry_after,
                "permanent": self.permanent, "duration_ms": self.duration_ms}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Receipt:
        return cls(channel=d["channel"], ok=bool(d["ok"]), status=d.get("status"),
                   reply=d.get("reply"), error=d.get("error"),
                   retry_after=d.get("retry_after"), permanent=bool(d.get("permanent")),
                   duration_ms=int(d.get("duration_ms") or 0))


class DeliveryFailed(Exception):
    """What a custom channel's ``route`` raises to say how it failed (any other exception
    is a retryable failure with its type and message)."""

    def __init__(self, message: str, *, permanent: bool = False,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class DeliveryRouter(Protocol):
    """The seed's ``DeliveryRouter.route(channel, job, run, output)``: what a custom
    channel (an entry point in group ``symbid.delivery``) implements.

    ``channel`` is the whole name (``custom:NAME``); ``job`` is ``{"id", "name",
    "delivery_config"}`` (the job's delivery_config as written, references unresolved);
    ``run`` is the payload's JSON without ``output``: ``{"id", "status", "started_at",
    "finished_at", "duration_ms", "attempt", "trigger", "delivery_id"}``; ``output`` the
    run's output. Returning None is success; a :class:`Receipt` is taken as the result;
    raising :class:`DeliveryFailed` (or anything else) is a failure.
    """

    def route(self, channel: str, job: Mapping[str, Any], run: Mapping[str, Any],
              output: str) -> Optional[Receipt]: ...


# --- secrets ---------------------------------------------------------------------------------


def _resolved(value: str, environ: Mapping[str, str]) -> list[str]:
    """A secret setting's values to mask: the whole resolved value (a literal token is a
    secret too), what its references resolve to, and the credential after an
    Authorization scheme (``Bearer X``: X alone)."""
    try:
        whole = resolve_refs(value, environ, what="secret")
    except InvalidInput:
        return referenced_values(value, environ)
    _scheme, _, credential = whole.strip().partition(" ")
    return [whole, *referenced_values(value, environ), *([credential] if credential else [])]


def secrets_of(target: Target, settings: DeliverySettings,
               environ: Mapping[str, str]) -> list[str]:
    """What to mask in everything a delivery leaves (for :func:`symbid.text.mask`)."""
    values: list[str] = []
    commands_env = [v for channel in settings.custom.values() for v in channel.env.values()]
    for value in (*target.webhook_headers.values(), target.webhook_url,
                  settings.slack_webhook_url, settings.smtp_username, *commands_env):
        if value:
            values += referenced_values(value, environ)
    for value in (target.webhook_secret, settings.webhook_auth_header,
                  settings.slack_api_token, settings.smtp_password):
        if value:
            values += _resolved(value, environ)
    return secret_parts(values)


def clean(text: str, secrets: list[str], limit: int = TEXT_LIMIT) -> str:
    """A server's or a program's text made fit for a receipt: masked, cut, escaped."""
    return escape(shorten(mask(text, secrets), limit))


def elapsed_ms(started: float) -> int:
    """Milliseconds since ``started`` (a ``time.monotonic()`` reading)."""
    return max(0, int((time.monotonic() - started) * 1000))


def refused(channel: str, error: str, started: float, *, permanent: bool = True) -> Receipt:
    """A receipt for an attempt that failed before anything was sent."""
    return Receipt(channel, ok=False, error=error, permanent=permanent,
                   duration_ms=elapsed_ms(started))


def resolve(value: str, environ: Mapping[str, str], what: str) -> str:
    """``value`` with its references resolved; raises :class:`InvalidInput` naming the
    variable (and ``what`` it is for) when one is not set."""
    return resolve_refs(value, environ, what=what)


# --- HTTP ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_problem(name: str, value: str) -> Optional[str]:
    """Why ``name: value`` cannot be sent as an HTTP header (the value never quoted)."""
    if not _TOKEN.fullmatch(name):
        return f"header name {name!r} is not an HTTP token"
    if _BAD_VALUE.search(value):
        return f"header {name} has a control character (a line break?) in its value"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"header {name} has a character beyond Latin-1 in its value"
    return None


@contextlib.contextmanager
def deadline(seconds: float,
             sock_of: Callable[[], Optional[socket.socket]]) -> Iterator[threading.Event]:
    """A deadline for a whole exchange, where a socket timeout bounds only each read: when
    ``seconds`` pass, the socket ``sock_of()`` gives is shut down (the blocked call then
    fails) and the event yielded is set, so the caller can tell a timeout from an error."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = sock_of()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(seconds, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield expired
    finally:
        watchdog.cancel()


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes  # at most MAX_REPLY_BODY bytes of it


@functools.lru_cache(maxsize=8)
def _context(ca_bundle: Optional[str], _mtime: int) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)


def tls_context(ca_bundle: Optional[str]) -> ssl.SSLContext:
    """A verifying TLS client context: the system's CAs, or only those of ``ca_bundle``.

    Raises OSError or ssl.SSLError when the bundle cannot be read.
    """
    mtime = os.stat(ca_bundle).st_mtime_ns if ca_bundle else 0
    return _context(ca_bundle, mtime)


def retry_after_seconds(value: Optional[str], now_ms: int) -> Optional[float]:
    """``Retry-After`` (delta-seconds or an HTTP date) as seconds from ``now_ms``."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        then = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if then.tzinfo is None:
        return None
    return max(0.0, then.timestamp() - now_ms / 1000)


def where_of(url: str) -> str:
    """``scheme://host:port`` of ``url``: what an error may name (a path can hold a
    secret, as a Slack incoming-webhook URL does)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a bad host or port: name the scheme only
        return f"{url.partition('://')[0]}://?"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def http_post(channel: str, url: str, body: bytes, headers: Mapping[str, str], *,
              timeout: float, ca_bundle: Optional[str], secrets: list[str],
              started: float) -> Union[HttpReply, Receipt]:
    """POST ``body`` to ``url``: the reply, or a failed receipt when none came.

    Never follows a redirect (a 3xx is a reply like any other), verifies TLS (system
    store, or ``ca_bundle`` only), gives up after ``timeout`` seconds in all (connecting,
    sending and reading together), reads at most :data:`MAX_REPLY_BODY` bytes of the
    reply. Network, TLS and protocol errors come back as retryable receipts; a URL or
    header that cannot be sent as a permanent one. Never raises for any of them.
    """
    problem = url_problem(url, references=False)  # resolved by now
    problem = None if problem is None else f"the URL {problem}"
    for name, value in headers.items():
        problem = problem or header_problem(name, value)
    if problem is not None:
        return refused(channel, clean(f"cannot POST to {where_of(url)}: {problem}", secrets),
                       started)
    where = clean(where_of(url), secrets)
    parts = urlsplit(url)  # url_problem has parsed it: its host and port are sound
    port = parts.port
    host = parts.hostname or ""
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme.lower() == "https":
        try:
            context = tls_context(ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            return refused(channel, f"ca_bundle {ca_bundle!r} cannot be used: {exc}", started)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    with deadline(timeout, lambda: conn.sock) as expired:
        return _exchange(conn, channel, path, body, headers, where=where, timeout=timeout,
                         secrets=secrets, started=started, expired=expired)


def _exchange(conn: http.client.HTTPConnection, channel: str, path: str, body: bytes,
              headers: Mapping[str, str], *, where: str, timeout: float, secrets: list[str],
              started: float, expired: threading.Event) -> Union[HttpReply, Receipt]:
    try:
        conn.request("POST", path, body=body, headers=dict(headers))
        response = conn.getresponse()
        data = response.read(MAX_REPLY_BODY)
        reply = HttpReply(response.status,
                          {k.lower(): v for k, v in response.getheaders()}, data)
    except (OSError, http.client.HTTPException) as exc:
        return network_failure(channel, exc, where=where, timeout=timeout, expired=expired,
                               secrets=secrets, started=started)
    finally:
        conn.close()
    return reply


def network_failure(channel: str, exc: Exception, *, where: str, timeout: float,
                    expired: threading.Event, secrets: list[str], started: float) -> Receipt:
    """The retryable receipt of an exchange the network broke: a timeout (the deadline's
    or a read's), a TLS certificate not trusted, or any other error, named."""
    where = clean(where, secrets)
    if expired.is_set() or isinstance(exc, (TimeoutError, socket.timeout)):
        return refused(channel, f"{where} did not answer within {timeout:g}s", started,
                       permanent=False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return refused(channel, clean(f"{where}: TLS certificate not trusted "
                                      f"({exc.verify_message}); set [scheduler.delivery] "
                                      "ca_bundle for a private CA", secrets),
                       started, permanent=False)
    reason = str(exc) or type(exc).__name__
    return refused(channel, clean(f"cannot reach {where}: {reason}", secrets), started,
                   permanent=False)


_RETRYABLE_STATUS = frozenset({408, 425, 429})


def status_receipt(channel: str, reply: HttpReply, *, where: str, secrets: list[str],
                   started: float, reply_text: Optional[str] = None) -> Receipt:
    """The receipt an HTTP status makes: 2xx ok; 3xx a permanent failure (redirects are
    not followed); 408, 425, 429 and 5xx retryable, honouring ``Retry-After``; any other
    4xx permanent. The reply kept is ``reply_text`` when given, else the start of the
    body (masked), as the receiver's word on what it did."""
    where = clean(where, secrets)
    status = reply.status
    duration = elapsed_ms(started)
    snippet = clean(reply.body.decode("utf-8", "replace"), secrets, 200)
    if 200 <= status < 300:
        return Receipt(channel, ok=True, status=status, duration_ms=duration,
                       reply=reply_text if reply_text is not None else snippet or None)
    if 300 <= status < 400:
        # where only: a path or query (a token in a Slack-style URL) is never kept
        moved = reply.headers.get("location")
        location = "(none)" if moved is None else clean(
            where_of(moved) if "://" in moved else "a path on the same server", secrets, 200)
        return Receipt(channel, ok=False, status=status, permanent=True, duration_ms=duration,
                       error=f"{where} answered {status}, a redirect to {location}; "
                             "symbid does not follow redirects: set the final URL")
    retryable = status in _RETRYABLE_STATUS or status >= 500 or status < 200
    retry_after = retry_after_seconds(reply.headers.get("retry-after"), SystemClock().now())
    return Receipt(channel, ok=False, status=status, permanent=not retryable,
                   retry_after=retry_after if retryable else None, duration_ms=duration,
                   reply=snippet or None, error=f"{where} answered {status}"
                   + (f": {snippet}" if snippet else ""))


def base_headers(payload: Payload, content_type: str = "application/json") -> dict[str, str]:
    """The headers every HTTP delivery sends."""
    return {"Content-Type": content_type, "User-Agent": USER_AGENT,
            DELIVERY_ID_HEADER: payload.delivery_id}
