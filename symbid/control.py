"""Listeners for the control plane: the Unix socket (always) and TCP (when configured).

Sockets are adopted from systemd socket activation (``LISTEN_FDS``, names
``control`` and ``http``) or bound here. Binding the Unix socket is careful: a
live daemon's socket is never taken over, a stale one is replaced, and the
socket gets its mode and group under a temporary name before it is renamed into
place, so it is never visible with looser permissions. Each listener is served
by waitress; on the Unix socket the peer's uid (SO_PEERCRED) reaches the app as
``REMOTE_USER = "uid:N"``.
"""

from __future__ import annotations

import errno
import grp
import json
import logging
import os
import resource
import socket
import stat
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer, UnixWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import Error

from symbid.auth import bearer_name
from symbid.errors import BodyTooLarge, SymbidError

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
# Worker threads per listener. A client following run output holds one for as long as it
# streams, so at most half of them may follow at once: the rest always serve the others.
WORKER_THREADS = 8
MAX_FOLLOWERS = WORKER_THREADS // 2
_STOP_GRACE_SECONDS = 3.0  # a stop waits this long for requests in progress
_LINGER_SECONDS = 2.0  # how long a refused client may go on sending before its socket closes
_SD_LISTEN_FDS_START = 3


class ListenerError(SymbidError):
    code = "listener_error"


@dataclass
class Listener:
    sock: socket.socket
    kind: str  # "unix" or "tcp"
    path: Optional[str] = None  # the Unix socket's path when we bound it
    inode: Optional[int] = None

    @property
    def description(self) -> str:
        """Where clients reach it: ``unix:PATH`` or the API's ``http://HOST:PORT`` URL."""
        if self.kind == "unix":
            return f"unix:{self.path or self.sock.getsockname()}"
        host, port = self.sock.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/api/v1"

    def close(self) -> None:
        self.sock.close()
        if self.path and self.inode is not None:
            try:
                if os.lstat(self.path).st_ino == self.inode:
                    os.unlink(self.path)  # only our own socket, never a successor's
            except OSError:
                pass


def systemd_listeners(environ: Mapping[str, str]) -> dict[str, Listener]:
    """Sockets passed by systemd (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES), by name."""
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    try:
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return {}
    names = environ.get("LISTEN_FDNAMES", "").split(":")
    found: dict[str, Listener] = {}
    for i in range(count):
        fd = _SD_LISTEN_FDS_START + i
        sock = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)
        kind = "unix" if sock.family == socket.AF_UNIX else "tcp"
        name = names[i] if i < len(names) and names[i] else ("control" if kind == "unix"
                                                             else "http")
        found[name] = Listener(sock, kind)
    return found


def bind_unix(path: str, group: Optional[str] = None) -> Listener:
    """Bind the control socket at ``path`` with mode 0660 (and ``group``), safely."""
    if len(path.encode()) > 100:
        raise ListenerError(f"socket path {path} is too long for a Unix socket "
                            "(over 100 bytes); choose a shorter one")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    gid = -1
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ListenerError(f"socket group {group!r} does not exist") from None
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ListenerError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("replacing stale socket %s", path)
            os.unlink(path)
        except OSError as exc:
            raise ListenerError(f"cannot check socket {path}: {exc.strerror}") from None
        else:
            raise ListenerError(f"another symbid is already listening on {path}")
        finally:
            probe.close()
    tmp = f"{path}.{os.getpid()}.new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp)
        os.chmod(tmp, SOCKET_MODE)
        if gid != -1:
            os.chown(tmp, -1, gid)
        sock.listen(1024)
        os.rename(tmp, path)
    except OSError as exc:
        sock.close()
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise ListenerError(f"cannot bind {path}: {exc.strerror}") from None
    return Listener(sock, "unix", path=path, inode=os.lstat(path).st_ino)


def bind_tcp(listen: str) -> Listener:
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ListenerError(f"cannot listen on {listen!r}: give HOST:PORT with a port "
                            "from 1 to 65535, e.g. 127.0.0.1:8080")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port_text)))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ListenerError(f"cannot listen on {listen}: {reason}") from None
    return Listener(sock, "tcp")


@dataclass(frozen=True)
class Limits:
    """How much one listener takes from its clients (each listener has its own)."""

    max_body_bytes: int = 1024 * 1024
    # A request's largest body by its method and path, with the key that sets it (the
    # API's BodyCaps.of_route); None: max_body_bytes for every request
    body_cap: Optional[Callable[[str, str], tuple[int, str]]] = None
    max_connections: int = 2048
    head_timeout_seconds: float = 10.0  # to send a complete request head
    idle_timeout_seconds: float = 60.0  # an open connection with nothing going on


class _Unauthorized(Error):  # type: ignore[misc]
    code = 401
    reason = "Unauthorized"


class _CappedAdjustments:
    """The listener's adjustments, with one request's own body cap (its route's)."""

    def __init__(self, adj: Any, cap: int, key: str) -> None:
        self._adj = adj
        self.max_request_body_size = cap + 1  # waitress refuses a body of this or more
        self.cap_key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adj, name)


class _StrictParser(HTTPRequestParser):  # type: ignore[misc]
    """Refuses, from the head alone: a request with both Content-Length and
    Transfer-Encoding (RFC 9112 §6.1: the way requests are smuggled past a proxy), and on
    TCP one without the bearer token, whose body is then never read. waitress answers
    and closes the connection; nothing after such a request is answered."""

    def __init__(self, adj: Any, on_head: Callable[[], None] = lambda: None) -> None:
        super().__init__(adj)
        self._on_head = on_head

    def parse_header(self, header_plus: bytes) -> None:
        self._on_head()  # a whole head has arrived (blank lines between requests are not one)
        names = {line.split(b":", 1)[0].strip().lower()
                 for line in header_plus.split(b"\n")[1:] if b":" in line}
        if b"content-length" in names and b"transfer-encoding" in names:
            raise ParsingError("Content-Length and Transfer-Encoding must not both be given")
        super().parse_header(header_plus)
        adj: Any = getattr(self, "adj")  # noqa: B009 - waitress sets it untyped
        cap_of = getattr(adj, "body_cap", None)
        if cap_of is not None:  # waitress checks the body against this request's cap
            self.adj = _CappedAdjustments(adj, *cap_of(self.command, self.path))
        tokens = getattr(adj, "bearer_tokens", None)
        if tokens is not None and \
                bearer_name(self.headers.get("AUTHORIZATION", ""), tokens) is None:
            self.error = _Unauthorized("a valid Authorization: Bearer token is required")
            self.body_rcv = None  # the body is not read

    def received(self, data: bytes) -> int:
        n: int = super().received(data)
        if self.error is not None:
            # a refused request is answered now: never "100 Continue", which would invite
            # the body (and read it as the next request head)
            self.expect_continue = False
        return n


class _JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's own refusals (400, 401, 413, 431) in the API's error form."""

    def execute(self) -> None:
        error = self.request.error
        codes = {400: "bad_request", 401: "unauthorized", 413: "too_large",
                 431: "headers_too_large", 501: "not_implemented"}
        message = str(error.body)
        if error.code == 413:
            adj = self.request.adj
            message = BodyTooLarge(adj.max_request_body_size - 1,
                                   getattr(adj, "cap_key", "[api] max_body_bytes"),
                                   chunked=bool(self.request.chunked)).message
        code = codes.get(error.code, "internal" if error.code >= 500 else "bad_request")
        body = (json.dumps({"error": {"code": code,
                                      "message": message}}) + "\n").encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        if error.code == 401:
            self.response_headers.append(("WWW-Authenticate", 'Bearer realm="symbid"'))
        self._close_on_finish()
        if self.request.content_length > 0 or self.request.chunked:
            self.channel.linger = True  # a body is (or may be) on its way: see handle_close
        self.content_length = len(body)
        if getattr(self.request, "command", None) != "HEAD":
            self.write(body)


    def _close_on_finish(self) -> None:
        """Say ``Connection: close`` and close after the answer. (waitress 3 has
        ``set_close_on_finish`` for this; Debian 12's waitress 2.1.2 does not.)"""
        if not any(name.lower() == "connection" for name, _ in self.response_headers):
            self.response_headers.append(("Connection", "close"))
        self.close_on_finish = True


class _Channel(HTTPChannel):  # type: ignore[misc]
    """A connection whose request head must be complete within the listener's
    ``head_timeout``, counted from the connection (or from the first byte of a later
    request on it): a client that trickles its headers, or sends nothing, is closed."""

    parser_class = _StrictParser
    error_task_class = _JsonErrorTask

    def __init__(self, server: Any, sock: socket.socket, addr: Any, adj: Any,
                 map: Any = None) -> None:
        self.head_since: Optional[float] = time.monotonic()
        self.linger = False  # set when a request with a body was refused
        self.parser_class = self._parser  # type: ignore[assignment]
        super().__init__(server, sock, addr, adj, map)

    def _parser(self, adj: Any) -> _StrictParser:
        return _StrictParser(adj, on_head=self._head_arrived)

    def _head_arrived(self) -> None:
        self.head_since = None

    def handle_close(self) -> None:
        """Close; but if the client is still sending (a body we refused), linger: closing a
        socket with unread data makes the kernel reset the connection, and the client
        would lose the answer (a 413, a 401) that is on its way. A refused request that
        declared a body always lingers, since its body may not have arrived yet."""
        sock: Optional[socket.socket] = getattr(self, "socket", None)
        linger = False
        if sock is not None:
            try:
                linger = self.linger or bool(
                    sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
                if linger:
                    sock.shutdown(socket.SHUT_WR)  # the answer is sent: FIN after it
            except OSError:
                linger = False
        if linger:
            self.socket = None  # keep it open: the lingerer closes it
        super().handle_close()
        if linger and sock is not None:
            _Lingerer(sock, self._map)

    def received(self, data: bytes) -> bool:
        """The deadline runs from the first byte of a request until its whole head has
        arrived (``_head_arrived``); blank lines do not stop it."""
        if data and self.head_since is None and self.request is None:
            self.head_since = time.monotonic()  # a new request begins
        result: bool = super().received(data)
        if (self.head_since is None and self.request is not None
                and not self.request.headers_finished):
            self.head_since = time.monotonic()  # a partial head after a whole request
        return result


class _Lingerer(wasyncore.dispatcher):  # type: ignore[misc]
    """A refused connection's socket, read and discarded for a moment before it is
    closed (an HTTP server's "lingering close")."""

    def __init__(self, sock: socket.socket, map: Any) -> None:
        super().__init__(sock, map)
        self._until = time.monotonic() + _LINGER_SECONDS

    def readable(self) -> bool:
        if time.monotonic() > self._until:
            self.close()
            return False
        return True

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        try:
            data = self.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.close()

    def handle_close(self) -> None:
        self.close()


class _HeadDeadline:
    """Server mixin: its regular maintenance (every second) also closes connections whose
    request head is overdue."""

    head_timeout = 10.0

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # type: ignore[misc]
        due = time.monotonic() - self.head_timeout
        for channel in list(self.active_channels.values()):  # type: ignore[attr-defined]
            since = getattr(channel, "head_since", None)
            if since is not None and since < due and not channel.requests:
                channel.will_close = True


class _PeerTask(WSGITask):  # type: ignore[misc]
    """Requests on the Unix socket carry the peer as CGI's REMOTE_USER ("uid:N")."""

    def get_environment(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environment()
        uid = getattr(self.channel, "peer_uid", None)
        if uid is not None:
            environ["REMOTE_USER"] = f"uid:{uid}"
        return environ


class _PeerChannel(_Channel):
    task_class = _PeerTask

    def __init__(self, server: Any, sock: socket.socket, addr: Any, adj: Any,
                 map: Any = None) -> None:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                    struct.calcsize("3i"))
            self.peer_pid, self.peer_uid, _ = struct.unpack("3i", creds)
        except OSError:
            self.peer_pid = self.peer_uid = None
        super().__init__(server, sock, addr, adj, map)


class _UnixServer(_HeadDeadline, UnixWSGIServer):  # type: ignore[misc]
    channel_class = _PeerChannel


class _TcpServer(_HeadDeadline, TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel


def raise_open_files_limit(needed: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards ``needed`` (up to the hard limit), so the
    listeners' connection limits can be reached; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit to %d: %s", want, exc)
    return soft


class ApiServer:
    """One listener served by waitress on its own thread, with limits of its own."""

    def __init__(self, app: Any, listener: Listener, threads: int = WORKER_THREADS,
                 limits: Optional[Limits] = None,
                 tokens: Optional[Mapping[str, str]] = None) -> None:
        self.listener = listener
        limits = limits or Limits()
        self._map: dict[int, Any] = {}
        self._dispatcher = ThreadedTaskDispatcher()
        self._dispatcher.set_thread_count(threads)
        # waitress refuses a body of max_request_body_size or more from its headers
        # A lookahead of one request keeps each connection read while its request is
        # served, so a client that goes away is seen (waitress.client_disconnected): a
        # stream of run output then ends even while the run prints nothing.
        adj = Adjustments(threads=threads, ident="symbid", expose_tracebacks=False,
                          channel_timeout=limits.idle_timeout_seconds, cleanup_interval=1,
                          connection_limit=limits.max_connections,
                          max_request_body_size=limits.max_body_bytes + 1,
                          channel_request_lookahead=1)
        adj.bearer_tokens = tokens if listener.kind == "tcp" else None  # read by the parser
        adj.body_cap = limits.body_cap  # read by the parser
        sock = listener.sock
        if listener.kind == "unix":
            self._server = _UnixServer(app, self._map, True, sock, dispatcher=self._dispatcher,
                                       adj=adj, bind_socket=False,
                                       sockinfo=(socket.AF_UNIX, socket.SOCK_STREAM, None,
                                                 None))
        else:
            self._server = _TcpServer(app, self._map, True, sock,
                                      dispatcher=self._dispatcher, adj=adj,
                                      bind_socket=False,
                                      sockinfo=(sock.family, sock.type, sock.proto,
                                                sock.getsockname()))
        self._server.head_timeout = limits.head_timeout_seconds  # read by its channels
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"symbid-api-{listener.kind}")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:

        while not self._stop.is_set():
            wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)
        for dispatcher in list(self._map.values()):
            try:
                dispatcher.close()
            except OSError:
                pass
        self._dispatcher.shutdown(timeout=5)

    def stop(self, grace: float = _STOP_GRACE_SECONDS) -> None:
        """Stop accepting, give the requests in progress up to ``grace`` seconds to finish
        (a followed output's stream, ended by the daemon's stop, sends its last chunk),
        then stop serving."""
        self._server.accepting = False  # read by the server's readable(): no more accepts
        deadline = time.monotonic() + grace
        while (self._dispatcher.active_count or self._dispatcher.queue) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        try:
            self._server.pull_trigger()
        except (AttributeError, OSError):
            pass
        self._thread.join(timeout=10)
        self.listener.close()
