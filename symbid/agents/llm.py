"""An OpenAI-compatible chat-completions client on the standard library alone.

``POST {endpoint}/chat/completions`` with ``Authorization: Bearer KEY``. A 429, a 5xx or a
connection error is retried up to ``max_retries`` times with exponential backoff
(``backoff * 2**n`` seconds, capped at ``max_backoff``), waiting ``Retry-After`` seconds
instead when the server sends it. Every attempt and every wait is bounded by the run's
deadline (a monotonic instant): past it the call fails. Token usage from each reply's
``usage`` is added to :class:`Usage`. Nothing here logs the key, a prompt or a reply.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Optional

from symbid.errors import SymbidError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
ERROR_BODY = 300  # characters of an error reply quoted in a message


class LLMError(SymbidError):
    """A chat-completions call failed for good (after retries, or not retryable)."""

    code = "llm_error"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

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
                 sleep: Callable[[float], None] = time.sleep) -> None:
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
        self.usage = Usage()

    def complete(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        """The reply's JSON object. Raises :class:`LLMError` with the reason."""
        data = json.dumps(body).encode()
        attempt = 0
        while True:
            left = deadline - self._monotonic()
            if left <= 0:
                raise LLMError("the run's deadline passed before the model answered")
            try:
                reply = self._post(data, min(self.request_timeout, left))
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    raise LLMError(f"{exc.reason} (gave up after {attempt + 1} attempts)") \
                        from None
                wait = (exc.retry_after if exc.retry_after is not None
                        else min(self.backoff * 2 ** attempt, self.max_backoff))
                if self._monotonic() + wait >= deadline:
                    raise LLMError(f"{exc.reason}; the run's deadline leaves no time to retry") \
                        from None
                self._sleep(wait)
                attempt += 1
                continue
            self._count(reply)
            return reply

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
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = cls(url.hostname or "", url.port, timeout=timeout)
        path = url.path + (f"?{url.query}" if url.query else "")
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"Bearer {self._key}", "User-Agent": "symbid"}
        try:
            conn.request("POST", path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except socket.timeout:
            raise _Retryable(f"no answer from the model endpoint within {timeout:.1f}s") \
                from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(f"cannot reach the model endpoint: {exc}") from None
        finally:
            conn.close()
        if resp.status in RETRY_STATUSES:
            raise _Retryable(f"the model endpoint answered {resp.status}",
                             _retry_after(resp.getheader("Retry-After")))
        text = raw.decode("utf-8", "replace")
        if resp.status != 200:
            raise LLMError(f"the model endpoint answered {resp.status}: {text[:ERROR_BODY]}")
        try:
            reply = json.loads(text)
        except ValueError:
            raise LLMError("the model endpoint's reply is not JSON") from None
        if not isinstance(reply, dict):
            raise LLMError("the model endpoint's reply is not a JSON object")
        return reply


def _retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` as seconds (the delta-seconds form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
