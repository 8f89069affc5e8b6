"""Plain WSGI plumbing: requests, JSON responses, routing, errors as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

from symbid.auth import actor_name
from symbid.errors import BodyTooLarge, InvalidInput, SymbidError
from symbid.text import shorten

MAX_BODY = 1024 * 1024  # the default of [api] max_body_bytes
MAX_BATCH = 16 * 1024 * 1024  # the default of [api] max_batch_bytes
BATCH_ROUTE = ("POST", "/api/v1/schedule")  # the one route that takes an array (a batch)
MAX_DEPTH = 64  # arrays and objects nested deeper than this are refused

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_depth(text: str) -> None:
    depth = 0
    for m in _BRACKETS.finditer(_STRINGS.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise HttpError(400, "too_deep", f"the JSON body nests deeper than {MAX_DEPTH} "
                                             "levels")


def _check_text(value: Any, path: str) -> None:
    """Every string of the body is valid Unicode (no lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            where = path or "body"
            raise InvalidInput(f"{where}: contains a lone surrogate (\\ud800-\\udfff), "
                               "which is not text", field=path or None) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_text(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{path}[{i}]")


def parse_json(raw: bytes) -> Any:
    """A request body: UTF-8 JSON, at most MAX_DEPTH deep, no duplicate keys, only text.

    Raises HttpError (400) or InvalidInput naming what is wrong.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, "invalid_json", f"request body is not UTF-8: {exc}") from None
    _check_depth(text)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Duplicate as dup:
        raise InvalidInput(f"{dup.key}: given twice in the JSON body", field=dup.key) from None
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, "invalid_json", f"request body is not valid JSON: {exc}") \
            from None
    _check_text(data, "")
    return data

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class BodyCaps:
    """How large a request body may be: ``max_body`` bytes ([api] max_body_bytes), but
    an array body on the batch route (:data:`BATCH_ROUTE`) ``max_batch`` bytes ([api]
    max_batch_bytes). One rule for the server, which refuses from the request's head
    what no body of its route may be, and for :class:`Request`, which knows the kind of
    body from its first byte."""

    max_body: int = MAX_BODY
    max_batch: int = MAX_BATCH

    def of_route(self, method: str, path: str) -> tuple[int, str]:
        """The largest body the route takes, and the key that sets it."""
        if (method, path) == BATCH_ROUTE and self.max_batch > self.max_body:
            return self.max_batch, "[api] max_batch_bytes"
        return self.max_body, "[api] max_body_bytes"

    def of_body(self, method: str, path: str, array: bool) -> tuple[int, str]:
        """The cap of a body of this route that is (or is not) a JSON array."""
        if (method, path) == BATCH_ROUTE and array:
            return self.max_batch, "[api] max_batch_bytes"
        return self.max_body, "[api] max_body_bytes"


class HttpError(SymbidError):
    """An error with an explicit HTTP status (for protocol-level problems)."""

    def __init__(self, status: int, code: str, message: str,
                 field_name: Optional[str] = None,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message, field=field_name)
        self.http_status = status
        self.code = code
        self.headers = headers  # sent with the error (a 405's Allow)


@dataclass
class Request:
    environ: dict[str, Any]
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    actor: str = "unknown"  # uid:N for the socket's peer, token:NAME over TCP
    caps: BodyCaps = field(default_factory=BodyCaps)

    @property
    def who(self) -> str:
        """The actor by name, as the audit trail records it and approvers are listed."""
        return actor_name(self.actor)

    @property
    def query(self) -> dict[str, str]:
        parsed = parse_qs(self.environ.get("QUERY_STRING", ""), keep_blank_values=True)
        for key, values in parsed.items():
            if len(values) > 1:  # which one would count is a guess: refused
                raise InvalidInput(f"{shorten(key)}: query parameter given {len(values)} "
                                   "times; give it once", field=shorten(key))
        return {k: v[0] for k, v in parsed.items()}

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters ("" when none)."""
        return str(self.environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()

    def _length(self) -> int:
        try:
            return int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(400, "bad_request", "Content-Length is not a number") from None

    def raw(self) -> bytes:
        """The body's bytes; larger than its cap (:class:`BodyCaps`) is 413, decided
        before the body is read: a JSON array's cap on the batch route, from its first
        byte, any other body's from its length alone."""
        length = self._length()
        if not length:
            return b""
        cap, key = self.caps.of_route(self.method, self.path)
        if length > cap:
            raise BodyTooLarge(cap, key)
        stream = self.environ["wsgi.input"]
        start = b""
        if (self.method, self.path) == BATCH_ROUTE:
            start = bytes(stream.read(min(length, 4096)))
            cap, key = self.caps.of_body(self.method, self.path,
                                         start.lstrip()[:1] == b"[")
            if length > cap:
                raise BodyTooLarge(cap, key)
        return start + bytes(stream.read(length - len(start)))

    def text(self) -> str:
        """The body as UTF-8 text."""
        try:
            return self.raw().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(400, "bad_request", f"request body is not UTF-8: {exc}") from None

    def body(self) -> Any:
        """The JSON body, or None when there is none."""
        raw = self.raw()
        if not raw.strip():
            return None
        return parse_json(raw)

    def json_batch(self) -> Any:
        """The JSON body of the batch route: an object, or a non-empty array (whose
        elements the route checks, by index)."""
        body = self.body()
        if body is None:
            raise HttpError(400, "invalid_json", "a JSON object (or an array of them) body "
                                                 "is required")
        if isinstance(body, list):
            if not body:
                raise InvalidInput("the request body is an empty array: give at least one "
                                   "job")
            return body
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_json", "the request body must be a JSON object or "
                                                 "an array of them")
        return body

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        raw = self.raw()
        if not raw.strip():  # no body; a JSON null is a body, and not an object
            if required:
                raise HttpError(400, "invalid_json", "a JSON object body is required")
            return {}
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_json", "the request body must be a JSON object")
        return body

    def only_params(self, *allowed: str) -> None:
        """Refuse a query parameter the route does not take, naming it."""
        for key in self.query:
            if key not in allowed:
                takes = f"takes only {', '.join(allowed)}" if allowed else "takes none"
                raise InvalidInput(f"{shorten(key)}: unknown query parameter; {self.path} "
                                   f"{takes}", field=shorten(key))

    def flag_param(self, name: str) -> bool:
        """A true/false query parameter (``true``/``1``, ``false``/``0``; absent: false)."""
        text = self.query.get(name)
        if text is None:
            return False
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise InvalidInput(f"{name}: expected true or false, got {shorten(text)!r}",
                           field=name)

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        text = self.query.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise InvalidInput(f"{name} must be a whole number, got {text!r}",
                               field=name) from None
        if not low <= value <= high:
            raise InvalidInput(f"{name} must be between {low} and {high}", field=name)
        return value


@dataclass
class Response:
    """A whole body, or with ``stream`` a body sent as it is produced (HTTP/1.1 chunked;
    the iterable's ``close`` is called when the response ends, however it ends)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Optional[Iterable[bytes]] = None


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
            400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
            415: "Unsupported Media Type",
            500: "Internal Server Error", 503: "Service Unavailable",
            507: "Insufficient Storage"}


def json_response(data: Any, status: int = 200) -> Response:
    try:
        body = json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate stored by an older symbid: escape it
        body = json.dumps(data).encode()
    return Response(status, body + b"\n")


def error_response(exc: SymbidError) -> Response:
    response = json_response(exc.to_wire(), exc.http_status)
    if isinstance(exc, HttpError):
        response.headers.extend(exc.headers)
    return response


def send(response: Response, start_response: StartResponse, *,
         head: bool = False) -> Iterable[bytes]:
    """Start the response; a HEAD request gets GET's headers and no body.

    A stream goes without a Content-Length, so the server sends it chunked; its headers
    are written at once (a server would otherwise hold them until the first piece), so
    a client knows the answer even while nothing is printed. Routes answer HEAD with a
    whole response, never a stream: a stream given for HEAD is closed unread.
    """
    reason = _REASONS.get(response.status, "Status")
    status = f"{response.status} {reason}"
    if response.stream is not None:
        stream = response.stream
        if head:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            start_response(status, [("Content-Type", response.content_type),
                                    ("Content-Length", "0")] + response.headers)
            return []
        write = start_response(status, [("Content-Type", response.content_type)]
                               + response.headers)
        if callable(write):
            try:
                write(b"")  # waitress: the headers go out now
            except BaseException:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
                raise
        return stream
    headers = [("Content-Type", response.content_type),
               ("Content-Length", str(len(response.body)))] + response.headers
    start_response(status, headers)
    return [] if head else [response.body]


Handler = Callable[[Request], Response]


class Router:
    """Method + path pattern (``{name}`` segments) to handler."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self._routes.append((method, re.compile(regex), handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        if method == "HEAD":
            method = "GET"  # the server sends the headers only
        allowed = []
        for route_method, regex, handler in self._routes:
            m = regex.match(path)
            if m:
                if route_method == method:
                    return handler, m.groupdict()
                allowed.append(route_method)
        if allowed:
            allow = allowed + (["HEAD"] if "GET" in allowed else [])  # RFC 9110: 405 has Allow
            raise HttpError(405, "method_not_allowed",
                            f"{method} is not allowed on {path}; use {', '.join(allowed)}",
                            headers=(("Allow", ", ".join(allow)),))
        raise HttpError(404, "not_found", f"no such endpoint: {path}")
