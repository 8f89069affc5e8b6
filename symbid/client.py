"""SymbiontClient: the Python client of symbid's native API, over the Unix socket or TCP.

The surface follows the seed guide's Python SDK::

    client = SymbiontClient(base_url="http://localhost:8080", api_key=key)
    client = SymbiontClient(socket_path="/run/symbid/control.sock")
    job = client.schedule.create(name="hourly", agent_id="reporter", cron_expr="0 * * * *")
    client.schedule.run_now(job.id, input="...")
    for run in client.schedule.get_history(job.id, status="failed", limit=5):
        print(run.id, run.error_message)
    client.agents.create(dsl='agent reporter { command: ["/usr/bin/report"] }')
    client.agents.create(name="echo", command=["/bin/cat"])
    run = client.agents.run("echo", input="test")   # once, outside the schedule

Results allow attribute access (``job.id``, ``details.next_run``). API errors
raise :class:`symbid.errors.SymbidError` subclasses carrying the API's code.
Only the standard library is used, so the CLI built on it starts fast.
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, Optional

from symbid.errors import (
    BatchRefused,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SymbidError,
    Unavailable,
)

DEFAULT_SOCKET = "/run/symbid/control.sock"


def default_socket() -> str:
    return os.environ.get("SYMBI_SOCKET") or DEFAULT_SOCKET


class Record:
    """Read-only attribute access over an API JSON object."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self._data[name])
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return _wrap(self._data[name])

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("API records are read-only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other._data == self._data

    def __hash__(self) -> int:
        return hash(json.dumps(self._data, sort_keys=True))

    def __repr__(self) -> str:
        return f"Record({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Record(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


_ERRORS: dict[str, type[SymbidError]] = {"not_found": NotFound, "conflict": Conflict,
                                          "forbidden": Forbidden}
DSL_TYPE = "text/x-symbi"


class Transport:
    """HTTP/1.1 to the daemon; one connection per request."""

    def __init__(self, *, socket_path: Optional[str] = None, base_url: Optional[str] = None,
                 api_key: Optional[str] = None, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        # the base URL, with or without the API's /api/v1 (which the daemon prints)
        self.base_url = base_url.rstrip("/").removesuffix("/api/v1") if base_url else None
        if self.base_url is not None:
            url = urllib.parse.urlsplit(self.base_url)  # ValueError for a malformed one
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(f"{base_url!r}: expected http://HOST:PORT or https://...")
        self.api_key = api_key
        self.timeout = timeout
        if self.base_url is None and self.socket_path is None:
            self.socket_path = default_socket()

    @property
    def where(self) -> str:
        return self.base_url or f"the socket {self.socket_path}"

    def _connection(self) -> tuple[http.client.HTTPConnection, str]:
        if self.base_url is None:
            assert self.socket_path is not None
            return _UnixConnection(self.socket_path, self.timeout), ""
        url = urllib.parse.urlsplit(self.base_url)
        cls = http.client.HTTPSConnection if url.scheme == "https" else \
            http.client.HTTPConnection
        return cls(url.netloc, timeout=self.timeout), url.path

    def _unreachable(self, exc: Exception) -> Unavailable:
        hint = ""
        if self.base_url is None:
            hint = ("; is symbid running (systemctl status symbid)? Use --socket or "
                    "SYMBI_SOCKET for another socket")
        return Unavailable(f"cannot reach symbid at {self.where}: "
                           f"{getattr(exc, 'strerror', None) or exc}{hint}")

    def _open(self, method: str, path: str, body: Any, query: Optional[Mapping[str, Any]],
              accept: str, *, text: Optional[tuple[str, str]] = None, patient: bool = False,
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send the request (``body`` as JSON, or ``text`` as (content, media type)); the
        response's head is read, its body not yet. ``patient``: once the request is sent,
        the answer is waited for as long as it takes (a run that is waited for)."""
        conn, prefix = self._connection()
        params = {k: v for k, v in (query or {}).items() if v is not None}
        target = prefix + path + (("?" + urllib.parse.urlencode(params)) if params else "")
        headers = {"Accept": accept}
        payload = None
        if text is not None:
            payload = text[0].encode("utf-8")
            headers["Content-Type"] = f"{text[1]}; charset=utf-8"
        elif body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            conn.request(method, target, body=payload, headers=headers)
            if patient and conn.sock is not None:
                conn.sock.settimeout(None)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._unreachable(exc) from None

    def _body(self, conn: http.client.HTTPConnection,
              response: http.client.HTTPResponse) -> bytes:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        finally:
            conn.close()

    @staticmethod
    def _check(response: http.client.HTTPResponse, raw: bytes) -> Any:
        """The JSON of ``raw`` (None if it is none); an error status raises."""
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            data = None
        if response.status >= 400:
            error = (data or {}).get("error", {}) if isinstance(data, dict) else {}
            code = error.get("code", "error")
            message = error.get("message") or f"HTTP {response.status}"
            cls = _ERRORS.get(code) or (InvalidInput if response.status in (400, 413)
                                        else SymbidError)
            failure = cls(message, field=error.get("field"))
            failure.code = code
            if isinstance(error.get("errors"), list) and error["errors"]:
                raise Transport._batch(error, message, response.status)
            raise failure
        return data

    @staticmethod
    def _batch(error: Mapping[str, Any], message: str, status: int) -> BatchRefused:
        """A batch's refusal, as the daemon said it, with each element's error (its
        ``field`` without the index: ``problems`` has the index)."""
        problems: list[tuple[int, SymbidError]] = []
        for item in error["errors"]:
            index = int(item.get("index", 0))
            field = str(item.get("field") or "")
            inner = field.split(".", 1)[1] if "." in field else None
            code = str(item.get("code", "error"))
            one = (_ERRORS.get(code) or InvalidInput)(str(item.get("message", "")),
                                                      field=inner)
            one.code = code
            problems.append((index, one))
        refused = BatchRefused(problems, len(problems))
        refused.message, refused.field = message, error.get("field")
        refused.code, refused.http_status = str(error.get("code", "error")), status
        refused.args = (message,)
        return refused

    def request(self, method: str, path: str, body: Any = None,
                query: Optional[Mapping[str, Any]] = None, *,
                text: Optional[tuple[str, str]] = None, patient: bool = False) -> Any:
        """One request: ``body`` is sent as JSON, or ``text`` as (content, media type);
        ``patient``: no timeout on the answer once the request is sent."""
        conn, response = self._open(method, path, body, query, "application/json",
                                    text=text, patient=patient)
        return self._check(response, self._body(conn, response))

    def request_text(self, method: str, path: str,
                     query: Optional[Mapping[str, Any]] = None) -> str:
        """A text/plain answer, decoded (UTF-8)."""
        conn, response = self._open(method, path, None, query, "text/plain")
        raw = self._body(conn, response)
        if response.status >= 400:
            self._check(response, raw)
        return raw.decode("utf-8", "replace")

    def stream_text(self, method: str, path: str,
                    query: Optional[Mapping[str, Any]] = None) -> Iterator[str]:
        """A text/plain answer as it arrives, decoded incrementally (a character split
        between two pieces comes out whole). Once the head is in, reads wait as long as
        it takes: a followed run may print nothing for hours."""
        conn, response = self._open(method, path, None, query, "text/plain")
        try:
            if response.status >= 400:
                self._check(response, self._body(conn, response))
            if conn.sock is not None:
                conn.sock.settimeout(None)
            yield from decode_pieces(iter(lambda: self._piece(response), b""))
        finally:
            conn.close()

    def download(self, path: str, out: BinaryIO) -> int:
        """A binary answer written to ``out`` as it arrives; the number of bytes. Patient:
        the daemon makes the whole copy before the first byte, however long it takes."""
        conn, response = self._open("GET", path, None, None, "application/octet-stream",
                                    patient=True)
        try:
            if response.status >= 400:
                self._check(response, self._body(conn, response))
            total = 0
            for piece in iter(lambda: self._piece(response), b""):
                out.write(piece)
                total += len(piece)
            return total
        finally:
            conn.close()

    def _piece(self, response: http.client.HTTPResponse) -> bytes:
        try:
            return response.read1(65536)
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None


def decode_pieces(pieces: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text of a byte stream, piece by piece, never splitting a character."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for piece in pieces:
        text = decoder.decode(piece)
        if text:
            yield text
    rest = decoder.decode(b"", final=True)
    if rest:
        yield rest


class ScheduleClient:
    """``client.schedule``: jobs and their runs."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    @staticmethod
    def _path(job_id: str, suffix: str = "") -> str:
        return f"/api/v1/schedule/{urllib.parse.quote(job_id, safe='')}{suffix}"

    def create(self, **fields: Any) -> Any:
        return _wrap(self._t.request("POST", "/api/v1/schedule", fields))

    def create_many(self, jobs: Iterable[Mapping[str, Any]]) -> Any:
        """Create every job of ``jobs`` (each a mapping of :meth:`create`'s fields) in one
        request and one transaction, or none of them: the created jobs in their order,
        or :class:`~symbid.errors.BatchRefused`, whose ``field`` names the first bad
        element by index (``[3].cron_expr``) and whose ``problems`` are every bad
        element's ``(index, error)``. The body may be ``[api] max_batch_bytes`` long
        (16 MiB by default)."""
        return _wrap(self._t.request("POST", "/api/v1/schedule",
                                     [dict(job) for job in jobs]))

    def list(self, status: Optional[str] = None, agent_id: Optional[str] = None,
             id_prefix: Optional[str] = None, all: bool = False) -> Any:
        """Jobs by name; ``id_prefix`` (8+ hex digits and dashes): those whose id starts
        with it. Agents' ad hoc jobs (``agents.run``) only with ``all``."""
        return _wrap(self._t.request("GET", "/api/v1/schedule",
                                     query={"status": status, "agent_id": agent_id,
                                            "id_prefix": id_prefix,
                                            "all": "true" if all else None}))

    def get(self, job_id: str) -> Any:
        return _wrap(self._t.request("GET", self._path(job_id)))

    def get_status(self, job_id: str, history: int = 5) -> Any:
        """The job, plus its ``recent_runs`` (newest first)."""
        job = self._t.request("GET", self._path(job_id))
        job["recent_runs"] = self._t.request("GET", self._path(job["id"], "/history"),
                                             query={"limit": history}) if history else []
        return _wrap(job)

    def update(self, job_id: str, **fields: Any) -> Any:
        return _wrap(self._t.request("PUT", self._path(job_id), fields))

    def run_now(self, job_id: str, input: Optional[str] = None) -> Any:
        body = {"input": input} if input is not None else {}
        return _wrap(self._t.request("POST", self._path(job_id, "/run"), body))

    def pause(self, job_id: str) -> Any:
        return _wrap(self._t.request("POST", self._path(job_id, "/pause")))

    def resume(self, job_id: str) -> Any:
        return _wrap(self._t.request("POST", self._path(job_id, "/resume")))

    def reset(self, job_id: str) -> Any:
        return _wrap(self._t.request("POST", self._path(job_id, "/reset")))

    def delete(self, job_id: str) -> Any:
        return _wrap(self._t.request("DELETE", self._path(job_id)))

    def get_history(self, job_id: str, status: Optional[str] = None, limit: int = 20) -> Any:
        return _wrap(self._t.request("GET", self._path(job_id, "/history"),
                                     query={"status": status, "limit": limit}))

    def get_alerts(self, job_id: str, limit: int = 20) -> Any:
        """The job's alerts (one per channel, with event, message and receipts), newest
        first."""
        return _wrap(self._t.request("GET", self._path(job_id, "/alerts"),
                                     query={"limit": limit}))

    def get_context(self, job_id: str) -> Any:
        """The job's stored session context (mode, summary, history, state_dir)."""
        return _wrap(self._t.request("GET", self._path(job_id, "/context")))

    def clear_context(self, job_id: str) -> Any:
        """Reset the job's session context (its state directory emptied)."""
        return _wrap(self._t.request("DELETE", self._path(job_id, "/context")))

    def next_run(self, job_id: str, count: int = 1) -> Any:
        return _wrap(self._t.request("GET", self._path(job_id, "/next_run"),
                                     query={"count": count}))

    @staticmethod
    def _run_path(run_id: str, suffix: str = "") -> str:
        return f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}{suffix}"

    def get_run(self, run_id: str) -> Any:
        return _wrap(self._t.request("GET", self._run_path(run_id)))

    def find_runs(self, id_prefix: str, limit: int = 20) -> Any:
        """Runs of any job whose id starts with ``id_prefix`` (8+ hex digits and dashes),
        newest first, as history rows (previews of output and input)."""
        return _wrap(self._t.request("GET", "/api/v1/runs",
                                     query={"id_prefix": id_prefix, "limit": limit}))

    def get_output(self, run_id: str) -> str:
        """A finished run's stored output, or what a running run has printed so far."""
        return self._t.request_text("GET", self._run_path(run_id, "/output"))

    def follow_output(self, run_id: str) -> Iterator[str]:
        """The run's output as it is printed, ending when the run's final state is stored
        (then ``get_run`` tells how it ended); a finished run's output at once."""
        return self._t.stream_text("GET", self._run_path(run_id, "/output"),
                                   query={"follow": "true"})

    def cancel_run(self, run_id: str) -> Any:
        """Cancel a pending or running run: the run, ``cancelled`` (it had not started) or
        still ``running`` while its process group is killed. A finished run raises
        Conflict."""
        return _wrap(self._t.request("POST", self._run_path(run_id, "/cancel")))

    def health(self) -> Any:
        return _wrap(self._t.request("GET", "/api/v1/health/scheduler"))


class AgentsClient:
    """``client.agents``: the agent registry."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    @staticmethod
    def _path(name: str) -> str:
        return f"/api/v1/agents/{urllib.parse.quote(name, safe='')}"

    def list(self) -> Any:
        """Every agent, by name: its wire form, ``source``, ``created_at``, ``updated_at``,
        ``jobs`` (how many use it) and ``shadowed_by``."""
        return _wrap(self._t.request("GET", "/api/v1/agents"))

    def get(self, name: str) -> Any:
        return _wrap(self._t.request("GET", self._path(name)))

    def create(self, dsl: Optional[str] = None, **fields: Any) -> Any:
        """Define agents: every ``agent`` block of ``.symbi`` text (``dsl=TEXT``), or one
        agent from its fields (``name=..., command=[...]``). Re-defining an API agent
        updates it. Returns ``agents``, ``created``, ``updated`` (and ``warnings``)."""
        if dsl is not None:
            if fields:
                raise InvalidInput("give either dsl=TEXT or an agent's fields, not both",
                                   field=next(iter(fields)))
            return _wrap(self._t.request("POST", "/api/v1/agents", text=(dsl, DSL_TYPE)))
        return _wrap(self._t.request("POST", "/api/v1/agents", fields))

    def delete(self, name: str) -> Any:
        return _wrap(self._t.request("DELETE", self._path(name)))

    def run(self, name: str, input: Optional[str] = None, session: Optional[str] = None,
            wait: bool = True) -> Any:
        """Run the agent once, outside the schedule: a manual run of its ad hoc job
        (``adhoc:NAME``, hidden from ``schedule.list``), or with ``session`` (a job's id
        or name) of that job, in its session context. Returns the run: with ``wait``,
        once it has ended, however long that takes (still open only if the daemon
        stopped meanwhile); else queued."""
        body: dict[str, Any] = {"wait": wait}
        if input is not None:
            body["input"] = input
        if session is not None:
            body["session"] = session
        return _wrap(self._t.request("POST", self._path(name) + "/run", body,
                                     patient=wait))


class RunsClient:
    """Approvals: the runs awaiting one, and an approver's decision on a run."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def pending(self) -> Any:
        """Runs awaiting approval (each with ``job_name``, ``approvers`` and
        ``approval_deadline``), oldest slot first."""
        return _wrap(self._t.request("GET", "/api/v1/approvals"))

    def approve(self, run_id: str, comment: Optional[str] = None) -> Any:
        """Approve a run awaiting approval: it is pending again and starts under the
        normal rules. Forbidden unless you are one of its job's approvers."""
        return _wrap(self._t.request("POST", ScheduleClient._run_path(run_id, "/approve"),
                                     {"comment": comment} if comment is not None else None))

    def deny(self, run_id: str, reason: Optional[str] = None) -> Any:
        """Deny a run awaiting approval: it is recorded denied with the reason."""
        return _wrap(self._t.request("POST", ScheduleClient._run_path(run_id, "/deny"),
                                     {"reason": reason} if reason is not None else None))


class AuditClient:
    """The audit trail."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def query(self, *, type: Optional[str] = None, job: Optional[str] = None,
              actor: Optional[str] = None, since: Optional[str] = None,
              until: Optional[str] = None, limit: int = 100) -> Any:
        """Events newest first (``since``/``until``: a date or an RFC 3339 instant)."""
        filters = {"type": type, "job": job, "actor": actor, "since": since,
                   "until": until, "limit": limit}
        return _wrap(self._t.request("GET", "/api/v1/audit",
                                     query={k: v for k, v in filters.items()
                                            if v is not None}))


class SymbiontClient:
    """``SymbiontClient(base_url=..., api_key=...)`` or ``SymbiontClient(socket_path=...)``.

    With neither, the socket from ``$SYMBI_SOCKET`` or the packaged default is used.
    """

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *,
                 socket_path: Optional[str] = None, timeout: float = 30.0) -> None:
        self.transport = Transport(socket_path=socket_path, base_url=base_url,
                                   api_key=api_key, timeout=timeout)
        self.schedule = ScheduleClient(self.transport)
        self.agents = AgentsClient(self.transport)
        self.runs = RunsClient(self.transport)
        self.audit = AuditClient(self.transport)

    def reload(self) -> Any:
        return _wrap(self.transport.request("POST", "/api/v1/reload"))

    def log_target(self) -> Any:
        """Where the daemon writes its log: ``journal`` (bool) and ``log_file`` (or None)."""
        return _wrap(self.transport.request("GET", "/api/v1/logs/target"))

    def backup(self, path: str) -> int:
        """A consistent copy of the daemon's database, written to ``path`` (mode 0600, in
        place only once complete); its size in bytes."""
        import tempfile

        directory = os.path.dirname(os.path.abspath(path))
        fd, partial = tempfile.mkstemp(prefix=".symbi-backup-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                size = self.transport.download("/api/v1/backup", out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        return size

    def health(self) -> Any:
        return self.schedule.health()
