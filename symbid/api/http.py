"""Plain WSGI plumbing: requests, JSON responses, routing, errors as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qs

from symbid.errors import InvalidInput, SymbidError

MAX_BODY = 1024 * 1024

StartResponse = Callable[..., Any]


class HttpError(SymbidError):
    """An error with an explicit HTTP status (for protocol-level problems)."""

    def __init__(self, status: int, code: str, message: str,
                 field_name: Optional[str] = None) -> None:
        super().__init__(message, field=field_name)
        self.http_status = status
        self.code = code


@dataclass
class Request:
    environ: dict[str, Any]
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    actor: str = "unknown"

    @property
    def query(self) -> dict[str, str]:
        parsed = parse_qs(self.environ.get("QUERY_STRING", ""), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def body(self) -> Any:
        """The JSON body, or None when there is none."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(400, "bad_request", "Content-Length is not a number") from None
        if length > MAX_BODY:
            raise HttpError(413, "too_large", f"request body is larger than {MAX_BODY} bytes")
        raw = self.environ["wsgi.input"].read(length) if length else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "invalid_json", f"request body is not valid JSON: {exc}") \
                from None

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        body = self.body()
        if body is None:
            if required:
                raise HttpError(400, "invalid_json", "a JSON object body is required")
            return {}
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_json", "the request body must be a JSON object")
        return body

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        text = self.query.get(name)
        if text is None or text == "":
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
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
            400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


def json_response(data: Any, status: int = 200) -> Response:
    try:
        body = json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate stored by an older symbid: escape it
        body = json.dumps(data).encode()
    return Response(status, body + b"\n")


def error_response(exc: SymbidError) -> Response:
    return json_response(exc.to_wire(), exc.http_status)


def send(response: Response, start_response: StartResponse) -> Iterable[bytes]:
    reason = _REASONS.get(response.status, "Status")
    headers = [("Content-Type", response.content_type),
               ("Content-Length", str(len(response.body)))] + response.headers
    start_response(f"{response.status} {reason}", headers)
    return [response.body]


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
            raise HttpError(405, "method_not_allowed",
                            f"{method} is not allowed on {path}; use {', '.join(allowed)}")
        raise HttpError(404, "not_found", f"no such endpoint: {path}")
