"""A loopback OpenAI-compatible chat-completions server for tests (issue 10).

It stands in for the remote model: replies are scripted (a queue; ``default`` answers
when it is empty), and every request is recorded with its headers, JSON body and the
monotonic instants its connection was accepted and its request was read (CLOCK_MONOTONIC
is system-wide on Linux, so those compare with another process's ``time.monotonic()``).

    with LLMServer() as server:
        server.script(error(500), text("hello", prompt_tokens=5, completion_tokens=2))
        ... point a client at server.url ...
        server.requests[0].body["messages"]

A reply may hang (it answers only when the server closes), wait ``delay`` seconds before
answering (:func:`slow`) or carry ``Retry-After``. ``in_flight`` counts the requests read
and not yet answered; ``max_in_flight`` is the most there ever were at once.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    delay: float = 0.0  # seconds between reading the request and answering it


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    connected_at: float
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


def completion(message: dict[str, Any], prompt_tokens: int = 0,
               completion_tokens: int = 0) -> dict[str, Any]:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {"id": "chatcmpl-test", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def text(content: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> Reply:
    """A final assistant answer."""
    return Reply(body=completion({"role": "assistant", "content": content},
                                 prompt_tokens, completion_tokens))


def tool_calls(*calls: tuple[str, str, Any], prompt_tokens: int = 0,
               completion_tokens: int = 0) -> Reply:
    """An answer asking for tools: each call is (id, name, arguments); arguments that are
    not a string are sent as their JSON text."""
    wire = [{"id": cid, "type": "function",
             "function": {"name": name,
                          "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for cid, name, args in calls]
    return Reply(body=completion({"role": "assistant", "content": None, "tool_calls": wire},
                                 prompt_tokens, completion_tokens))


def error(status: int, retry_after: Optional[str] = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status=status, body={"error": {"message": f"scripted {status}"}},
                 headers=headers)


def hang() -> Reply:
    return Reply(hang=True)


def slow(reply: Reply, seconds: float) -> Reply:
    """``reply``, answered ``seconds`` after its request was read."""
    return dataclasses.replace(reply, delay=seconds)


class LLMServer:
    """The server, on 127.0.0.1 and a free port; a context manager that closes it."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default: Reply = text("(no scripted reply)")
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._received = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                self.connected_at = time.monotonic()
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                received = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with server._lock:
                    server.requests.append(Recorded(
                        "POST", self.path, dict(self.headers.items()), body,
                        self.connected_at, received))
                    reply = server.replies.popleft() if server.replies else server.default
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server._received.notify_all()
                if reply.hang:
                    server._closing.wait()
                elif not (reply.delay and server._closing.wait(reply.delay)):
                    self._answer(reply)
                    return
                server._answered()

            def _answer(self, reply: Reply) -> None:
                # Answered just before the reply's bytes go out: a client that has them
                # and sends its next request is never counted twice.
                server._answered()
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _answered(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def wait_for_requests(self, n: int, timeout: float = 30.0) -> bool:
        with self._received:
            return self._received.wait_for(lambda: len(self.requests) >= n, timeout)

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
