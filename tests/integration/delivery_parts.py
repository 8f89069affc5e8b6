"""Real parts for the delivery channels' tests: an HTTP server on loopback that answers as
scripted (a webhook receiver, Slack's Web API, an incoming webhook), an SMTP server
(aiosmtpd) with or without TLS and AUTH, a self-signed certificate to trust through
``ca_bundle``, executable scripts; and the payload and environment the tests send with."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from symbid.config import DeliverySettings
from symbid.delivery import router
from symbid.delivery.base import Payload, Receipt, Target


@dataclass(frozen=True)
class Certificate:
    cert: Path  # PEM: the certificate, also the ca_bundle that trusts it
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def make_certificate(directory: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "symbid test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Certificate(cert_path, key_path)


# --- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class HttpServer:
    """Answers POSTs to each path with its scripted replies in turn (the last repeats)."""

    def __init__(self, tls: Optional[ssl.SSLContext] = None) -> None:
        self.requests: list[Request] = []
        self._replies: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                reply = outer._record(Request(self.path, {k.lower(): v for k, v in
                                                          self.headers.items()}, body))
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                try:
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client read what it wanted (a capped reply) or gave up

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a slow reply's thread is not waited for
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _record(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._replies.get(request.path, [Reply()])
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}{path}"

    def answer(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._replies[path] = list(replies)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._replies.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TcpSink:
    """A TCP server on 127.0.0.1 for dead dependencies: it accepts every connection and
    then drops it at once (``drop=True``: an SMTP server that hangs up) or holds it open,
    never reading or answering (a webhook that accepts and never answers).
    ``accepted`` counts the connections."""

    def __init__(self, *, drop: bool) -> None:
        self.accepted = 0
        self._drop = drop
        self._held: list[socket.socket] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            if self._drop:
                conn.close()
            else:
                self._held.append(conn)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=5)
        self._server.close()
        for conn in self._held:
            conn.close()


# --- SMTP ------------------------------------------------------------------------------------

LOGIN, PASSWORD = "mailer", "s3cret-pass-word"


@dataclass
class Mailbox:
    """What an SMTP server received: messages, logins, and the recipients it refuses."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 2.0.0 Ok: queued as TEST1"

    def authenticate(self, server: SMTPServer, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, login, password))
        return AuthResult(success=(login, password) == (LOGIN, PASSWORD), handled=False)

    def reset(self) -> None:
        self.messages.clear()
        self.logins.clear()
        self.refuse.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def smtp_server(mailbox: Mailbox, **kwargs: Any) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 delivering to ``mailbox``; yields its port.
    ``kwargs``: aiosmtpd's (tls_context, require_starttls, ssl_context, ...)."""
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(),
                            authenticator=mailbox.authenticate, **kwargs)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


# --- what the tests send ----------------------------------------------------------------

PAYLOAD = Payload(delivery_id="3f1c-delivery", job="nightly", job_id="j-1", run_id="r-1",
                  status="failed", output="disk 91% full\nsecond line",
                  started_at="2026-03-08T07:00:00Z", finished_at="2026-03-08T07:00:02Z",
                  duration_ms=2000, attempt=1, trigger="schedule")
ENV = {"HOOK_TOKEN": "hook-token-1234", "TEAM_KEY": "team-key-5678",
       "HOOK_SECRET": "hmac-secret-9012", "SLACK_TOKEN": "xoxb-slack-3456",
       "SMTP_USER": LOGIN, "SMTP_PASS": PASSWORD, "DEFAULT_AUTH": "default-auth-7890"}
SECRETS = [v for k, v in ENV.items() if k != "SMTP_USER"]


def send(channel: str, target: Target, settings: DeliverySettings, *,
         payload: Payload = PAYLOAD, log_dir: str = "/nonexistent") -> Receipt:
    return router.send(channel, payload, target, settings, ENV, log_dir=log_dir)


FAST = DeliverySettings(webhook_timeout_seconds=5.0)


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(0o755)
    return str(path)
