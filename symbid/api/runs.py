"""The run routes: /api/v1/runs, /api/v1/runs/{id}, its output (followed live) and cancel.

``GET /api/v1/runs/{id}/output`` answers ``text/plain; charset=utf-8``: the stored
output of a finished run, or what a running run has printed so far (masked as the
stored output is; a pending run has printed nothing). With ``?follow=true`` the
output of a run that is still open is streamed, chunked, as it is printed, and the
response ends when the run's final state is in the store (so ``GET
/api/v1/runs/{id}`` then shows it), when the client goes away, or when the daemon
stops. A follower holds one of its listener's worker threads for as long as it
streams, so each listener lets at most ``max_followers`` (half its threads) stream
at once (:class:`Holders`, shared with clients waiting for an agent's run to end),
and refuses more with 503 ``too_many_followers``: the other threads always serve
every other request.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

from symbid.api.context import ApiContext
from symbid.api.fields import string
from symbid.api.http import HttpError, Request, Response, Router, json_response
from symbid.errors import Conflict, InvalidInput, SymbidError, UnreadableRow
from symbid.live import LiveOutput
from symbid.model import RunStatus
from symbid.records import Run
from symbid.store.deliveries import delivery_status
from symbid.text import shorten
from symbid.wire import run_to_wire

TEXT = "text/plain; charset=utf-8"
MAX_NOTE = 2000  # an approver's comment or a denier's reason, in characters
ID_PREFIX_MIN = 8
_ID_PREFIX = re.compile(r"^[0-9a-fA-F-]{8,36}$")  # ID_PREFIX_MIN or more
_WAIT_SECONDS = 1.0  # how often a follower with nothing to send checks its client and run
_STREAM_HEADERS = [("Cache-Control", "no-store"),
                   ("X-Accel-Buffering", "no")]  # a proxy in front passes pieces on at once


def id_prefix(req: Request, *, required: bool = False) -> Optional[str]:
    """The ``id_prefix`` query parameter: 8 to 36 hex digits and dashes (lowercased)."""
    text = req.query.get("id_prefix")
    if text is None:
        if required:
            raise InvalidInput("id_prefix: is required (the start of a run id, 8 or more "
                               "hex digits and dashes)", field="id_prefix")
        return None
    if not _ID_PREFIX.match(text):
        raise InvalidInput(f"id_prefix: must be {ID_PREFIX_MIN} to 36 hex digits and "
                           f"dashes (the start of an id), got {shorten(text)!r}",
                           field="id_prefix")
    return text.lower()


class Holders:
    """The requests of one listener that hold a worker thread for as long as a run goes:
    clients following its output, and clients waiting for it to end (``POST
    /api/v1/agents/{name}/run`` with ``wait``). At most ``limit`` at once (half the
    listener's threads), so the other threads always serve every other request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def take(self) -> None:
        """A place, or 503 ``too_many_followers`` when all are taken."""
        if not self._free.acquire(blocking=False):
            raise HttpError(503, "too_many_followers",
                            f"{self.limit} clients already follow output or wait for runs "
                            "on this listener (the limit: half its worker threads); try "
                            "again when one of them ends")

    def release(self) -> None:
        self._free.release()


def disconnected_of(req: Request) -> Callable[[], bool]:
    """Whether the request's client has gone away (waitress tells; elsewhere: never)."""
    gone: Callable[[], bool] = req.environ.get("waitress.client_disconnected") or \
        (lambda: False)
    return gone


class _Follow:
    """The body of a followed output: pieces of it as they are printed, until the run's
    final state is stored (a heartbeat wake-up's iterations one after the other). Each
    wait is bounded (``_WAIT_SECONDS``), so a client that went away, or a daemon that
    stops, ends it even while the run prints nothing."""

    def __init__(self, ctx: ApiContext, run_id: str, disconnected: Callable[[], bool],
                 done: Callable[[], None]) -> None:
        self._ctx = ctx
        self._run_id = run_id
        self._disconnected = disconnected
        self._done: Optional[Callable[[], None]] = done
        self._output: Optional[LiveOutput] = None
        self._cursor = 0
        self._finished = False

    def __iter__(self) -> _Follow:
        return self

    def __next__(self) -> bytes:
        while not self._finished:
            try:
                piece = self._step()
            except SymbidError:  # the run was deleted with its job, or the store failed
                piece = None
                self._finished = True
            if piece:
                return piece
        self.close()
        raise StopIteration

    def _step(self) -> Optional[bytes]:
        if self._ctx.live.closed or self._disconnected():
            self._finished = True
            return None
        if self._output is None:
            self._output = self._ctx.live.wait(self._run_id, _WAIT_SECONDS)
            if self._output is None:  # not started yet, or over
                run = self._ctx.store.get_run(self._run_id)
                if not run.status.is_open:
                    self._finished = True
                    return (run.output or "").encode()
                return None
        text, self._cursor, ended = self._output.read(self._cursor, _WAIT_SECONDS)
        if ended:
            if self._ctx.store.get_run(self._run_id).status.is_open:
                # a heartbeat between two iterations: the next one's output follows
                self._output, self._cursor = None, 0
            else:
                self._finished = True
        return text.encode() if text else None

    def close(self) -> None:
        self._finished = True
        done, self._done = self._done, None
        if done is not None:
            done()


def run_views(ctx: ApiContext, runs: Sequence[Run], *,
              preview: bool = False) -> list[dict[str, Any]]:
    """Runs in their wire form, each with its ``delivery_status`` and ``deliveries``
    (channel, status, attempts, receipts) from the outbox."""
    outbox = ctx.store.deliveries_of([r.id for r in runs])
    views = []
    for run in runs:
        view = run_to_wire(run, preview=preview)
        rows = outbox.get(run.id, [])
        view["delivery_status"] = delivery_status(rows)
        view["deliveries"] = [d.to_dict() for d in rows]
        views.append(view)
    return views


def run_view(ctx: ApiContext, run: Run) -> dict[str, Any]:
    return run_views(ctx, [run])[0]


def wait_for_end(ctx: ApiContext, run_id: str, disconnected: Callable[[], bool]) -> Run:
    """Wait until the run's final state is in the store, as a followed output does, and
    return the run: final, or still open when the client went away or the daemon stops.
    Raises NotFound when the run went with its job."""
    for _ in _Follow(ctx, run_id, disconnected, lambda: None):
        pass
    return ctx.store.get_run(run_id)


def routes(ctx: ApiContext, router: Router, holders: Holders,
           prefix: str = "/api/v1") -> None:

    def path_id(req: Request) -> str:
        return req.params["run_id"]

    def listing(req: Request) -> Response:
        req.only_params("id_prefix", "limit")
        start = id_prefix(req, required=True)
        assert start is not None
        limit = req.int_param("limit", 20, 1, 1000)
        return json_response(run_views(ctx, list(ctx.store.find_runs(start, limit)),
                                       preview=True))

    def get_run(req: Request) -> Response:
        req.only_params()
        return json_response(run_view(ctx, ctx.store.get_run(path_id(req))))

    def output(req: Request) -> Response:
        req.only_params("follow")
        follow = req.flag_param("follow")
        run = ctx.store.get_run(path_id(req))
        if not run.status.is_open:
            return Response(200, (run.output or "").encode(), TEXT)
        if follow and req.method != "HEAD":  # HEAD: the headers of the output so far
            holders.take()
            stream = _Follow(ctx, run.id, disconnected_of(req), holders.release)
            return Response(200, b"", TEXT, list(_STREAM_HEADERS), stream=stream)
        live = ctx.live.get(run.id)
        if live is None:  # not started yet, or it ended just now: the store says which
            run = ctx.store.get_run(run.id)
            text = "" if run.status.is_open else (run.output or "")
        else:
            text = live.text()
        return Response(200, text.encode(), TEXT)

    def cancel(req: Request) -> Response:
        req.only_params()
        for key in req.json_object(required=False):
            raise InvalidInput(f"{shorten(key)}: unknown field; cancel takes no fields",
                               field=shorten(key))
        run = ctx.store.get_run(path_id(req))
        if not run.status.is_open:
            raise Conflict(f"run {run.id} is already {run.status.value}; only a pending or "
                           "running run can be cancelled", field="status")
        answer = ctx.scheduler.cancel_run(run.id, req.actor)
        if answer.outcome == "ended":
            ended = answer.run or run
            how = ("its process has already ended, and its own outcome is being recorded"
                   if ended.status.is_open else f"it is already {ended.status.value}")
            raise Conflict(f"run {run.id} was not cancelled: {how}", field="status")
        now = ctx.store.get_run(run.id)
        return json_response(run_view(ctx, now), 202 if now.status.is_open else 200)

    def decide(approve: bool) -> Callable[[Request], Response]:
        key = "comment" if approve else "reason"

        def handler(req: Request) -> Response:
            req.only_params()
            body = req.json_object(required=False)
            for other in body:
                if other != key:
                    raise InvalidInput(f"{shorten(other)}: unknown field; "
                                       f"{'approve' if approve else 'deny'} takes {key}",
                                       field=shorten(other))
            note = string(key, body[key], nullable=True) if key in body else None
            if note is not None and len(note) > MAX_NOTE:
                raise InvalidInput(f"{key}: at most {MAX_NOTE} characters", field=key)
            run = ctx.store.get_run(path_id(req))
            decided = ctx.scheduler.decide_run(run.id, req.who, approve=approve,
                                               note=note or None)
            return json_response(run_view(ctx, decided))
        return handler

    def pending(req: Request) -> Response:
        req.only_params()
        out = []
        for run in ctx.store.open_runs():
            if run.status is not RunStatus.AWAITING_APPROVAL:
                continue
            try:
                job = ctx.store.find_job(run.job_id)
            except UnreadableRow:  # listed all the same: it can still be cancelled
                job = None
            view = run_view(ctx, run)
            view["job_name"] = job.name if job is not None else None
            view["approvers"] = list(job.policy.approvers) if job is not None else []
            out.append(view)
        return json_response(out)

    router.add("GET", f"{prefix}/runs", listing)
    router.add("GET", f"{prefix}/approvals", pending)
    router.add("POST", f"{prefix}/runs/{{run_id}}/approve", decide(True))
    router.add("POST", f"{prefix}/runs/{{run_id}}/deny", decide(False))
    router.add("GET", f"{prefix}/runs/{{run_id}}", get_run)
    router.add("GET", f"{prefix}/runs/{{run_id}}/output", output)
    router.add("POST", f"{prefix}/runs/{{run_id}}/cancel", cancel)
