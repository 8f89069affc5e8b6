"""An OpenAI-compatible chat-completions client on the standard library alone.

``POST {endpoint}/chat/completions`` with ``Authorization: Bearer KEY``. A 429, a 5xx or a
connection error is retried up to ``max_retries`` times with exponential backoff
(``backoff * 2**n`` seconds, capped at ``max_backoff``), waiting ``Retry-After`` seconds
instead when the server sends it. Every attempt and every wait is bounded by the run's
deadline (a monotonic instant): past it the call fails. Token usage from each reply's
``usage`` is added to :class:`Usage`. Nothing here logs the key, a prompt or a reply.

HTTP/1.1 is spoken over a plain socket (``ssl`` is imported only for ``https``) rather
than through ``http.client``, whose imports (``email``, ``ssl``) cost the child about 40
ms of start-up. One request per connection (``Connection: close``); the response body is
read by chunked encoding, ``Content-Length`` or to the close, at most 16 MiB. The
per-request timeout bounds each socket operation; the sandbox's ``max_runtime`` kill is
the hard bound on the whole run.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Optional

from symbid.errors import SymbidError

if TYPE_CHECKING:
    from symbid.agents.slots import Slots

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
ERROR_BODY = 300  # characters of an error reply quoted in a message
MAX_BODY = 16 * 1024 * 1024  # a reply larger than this is refused
MAX_LINE = 64 * 1024
MAX_HEADERS = 200


class LLMError(SymbidError):
    """A chat-completions call failed for good (after retries, or not retryable)."""

    code = "llm_error"


class Usage:
    """Token counts summed over a run's requests."""

    __slots__ = ("completion_tokens", "prompt_tokens", "requests", "seconds")

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.requests = 0
        self.seconds: list[float] = []  # each HTTP attempt's duration, failed ones too

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total, "requests": self.requests}


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ChatClient:
    """Calls one endpoint with one key; ``deadline`` and ``clock`` are monotonic seconds."""

    def __init__(self, endpoint: str, api_key: str, *, max_retries: int = 3,
                 request_timeout: float = 60.0, backoff: float = 0.5,
                 max_backoff: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 slots: Optional[Slots] = None) -> None:
        url = urllib.parse.urlsplit(endpoint.rstrip("/") + "/chat/completions")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise LLMError(f"endpoint must be an http(s) URL, not {endpoint[:80]!r}",
                           field="endpoint")
        self._url = url
        self._key = api_key
        self.max_retries = max_retries
        self.request_timeout = request_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._monotonic = monotonic
        self._sleep = sleep
        self._slots = slots
        self.usage = Usage()

    def complete(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        """The reply's JSON object. Raises :class:`LLMError` with the reason."""
        data = json.dumps(body).encode()
        attempt = 0
        while True:
            left = deadline - self._monotonic()
            if left <= 0:
                raise LLMError("the run's deadline passed before the model answered")
            retry: Optional[_Retryable] = None
            try:
                reply = self._attempt(data, deadline)
            except _Retryable as exc:
                retry = exc
            if retry is not None:
                if attempt >= self.max_retries:
                    raise LLMError(f"{retry.reason} (gave up after {attempt + 1} attempts)")
                wait = (retry.retry_after if retry.retry_after is not None
                        else min(self.backoff * 2 ** attempt, self.max_backoff))
                if self._monotonic() + wait >= deadline:
                    raise LLMError(f"{retry.reason}; the run's deadline leaves no time to "
                                   "retry")
                self._sleep(wait)
                attempt += 1
                continue
            self._count(reply)
            return reply

    def _attempt(self, data: bytes, deadline: float) -> dict[str, Any]:
        """One request, holding a slot (when there are slots) only while it is in flight."""
        slots, held = self._slots, None
        if slots is not None:
            from symbid.agents.slots import SlotError

            try:
                held = slots.acquire(deadline)
            except SlotError as exc:
                raise LLMError(exc.message) from None
        try:
            left = deadline - self._monotonic()  # the wait for a slot took some of it
            if left <= 0:
                raise LLMError("the run's deadline passed before the model answered")
            began = self._monotonic()  # the request's own duration, not the slot's wait
            try:
                return self._post(data, min(self.request_timeout, left))
            finally:
                self.usage.seconds.append(self._monotonic() - began)
        finally:
            if slots is not None and held is not None:
                slots.release(held)

    def _count(self, reply: dict[str, Any]) -> None:
        self.usage.requests += 1
        usage = reply.get("usage")
        if isinstance(usage, dict):
            for name in ("prompt_tokens", "completion_tokens"):
                value = usage.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    setattr(self.usage, name, getattr(self.usage, name) + value)

    def _post(self, data: bytes, timeout: float) -> dict[str, Any]:
        url = self._url
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        authority = host if url.port is None else f"{host}:{url.port}"
        head = (f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n"
                "Content-Type: application/json\r\nAccept: application/json\r\n"
                f"Authorization: Bearer {self._key}\r\nUser-Agent: symbid\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        sock: Optional[socket.socket] = None
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            if url.scheme == "https":
                import ssl  # only when needed: it is the heaviest import here

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.sendall(head.encode("latin-1") + data)
            with sock.makefile("rb") as stream:
                status, headers, raw = read_response(stream)
        except (socket.timeout, TimeoutError):  # socket.timeout: Python 3.9
            raise _Retryable(f"no answer from the model endpoint within {timeout:.1f}s") \
                from None
        except (OSError, BadResponse) as exc:
            raise _Retryable(f"cannot reach the model endpoint: {exc}") from None
        finally:
            if sock is not None:
                sock.close()
        if status in RETRY_STATUSES:
            raise _Retryable(f"the model endpoint answered {status}",
                             _retry_after(headers.get("retry-after")))
        text = raw.decode("utf-8", "replace")
        if status != 200:
            raise LLMError(f"the model endpoint answered {status}: {text[:ERROR_BODY]}")
        try:
            reply = json.loads(text)
        except ValueError:
            raise LLMError("the model endpoint's reply is not JSON") from None
        if not isinstance(reply, dict):
            raise LLMError("the model endpoint's reply is not a JSON object")
        return reply


class BadResponse(Exception):
    """The bytes from the endpoint are not an HTTP/1.x response within our limits."""


def _line(stream: BinaryIO) -> bytes:
    line = stream.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadResponse("a response line is too long")
    if not line:
        raise BadResponse("the connection closed before the response ended")
    return line


def read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.x response.

    The body is read by ``Transfer-Encoding: chunked``, ``Content-Length`` or to the end
    of the connection, and refused beyond :data:`MAX_BODY` bytes.
    """
    parts = _line(stream).decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadResponse("the endpoint did not answer with HTTP/1.x")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = _line(stream)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise BadResponse("too many response headers")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_text = _line(stream).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse("a bad chunk size") from None
            if size == 0:
                break
            if len(body) + size > MAX_BODY:
                raise BadResponse(f"the response is over {MAX_BODY} bytes")
            body += _exactly(stream, size)
            _line(stream)
        return status, headers, bytes(body)
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise BadResponse("a bad Content-Length") from None
        if length > MAX_BODY:
            raise BadResponse(f"the response is over {MAX_BODY} bytes")
        return status, headers, _exactly(stream, length)
    body_all = stream.read(MAX_BODY + 1)
    if len(body_all) > MAX_BODY:
        raise BadResponse(f"the response is over {MAX_BODY} bytes")
    return status, headers, body_all


def _exactly(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise BadResponse("the connection closed before the response ended")
    return data


def _retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` as seconds (the delta-seconds form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
