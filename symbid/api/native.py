"""The native routes of the seed guide: /api/v1/schedule..., /api/v1/health/scheduler
(the run routes are in :mod:`symbid.api.runs`).

Request JSON uses the seed's names. Unknown fields, wrong types, unknown agents
and bad cron/at/timezone are 4xx errors naming the field; nothing is written
unless the whole request is valid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO, Callable, Optional

from symbid.api.context import ApiContext
from symbid.api.fields import (
    bad,
    boolean,
    duration,
    enum_value,
    integer,
    json_object,
    nonempty,
    number,
    str_list,
    str_map,
    string,
)
from symbid.api.http import HttpError, Request, Response, Router, json_response
from symbid.api.runs import id_prefix, run_view, run_views
from symbid.errors import BatchRefused, InvalidCron, InvalidInput, SymbidError
from symbid.model import (
    AllowedHours,
    CatchUp,
    DeliveryConfig,
    Heartbeat,
    Job,
    JobStatus,
    Policy,
    RunStatus,
    SessionMode,
    format_instant,
)
from symbid.timing import make_schedule, next_slots, parse_instant
from symbid.wire import job_to_wire

log = logging.getLogger(__name__)

READ_ONLY = ("id", "status", "source", "next_run", "last_run", "run_count", "failure_count",
             "created_at", "updated_at")


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _policy(v: Any, base: Policy) -> Policy:
    d = json_object("policy", v, ("require_approval", "approvers", "max_runtime",
                              "require_capabilities", "allowed_hours",
                              "allowed_environments", "require_agent_pin",
                              "approval_timeout"))
    changes: dict[str, Any] = {}
    if "require_approval" in d:
        changes["require_approval"] = boolean("policy.require_approval", d["require_approval"])
    if "approvers" in d:
        changes["approvers"] = str_list("policy.approvers", d["approvers"])
    if "max_runtime" in d:
        changes["max_runtime_seconds"] = duration("policy.max_runtime", d["max_runtime"])
    if "require_capabilities" in d:
        changes["require_capabilities"] = str_list("policy.require_capabilities",
                                                    d["require_capabilities"])
    if "allowed_hours" in d:
        hours = d["allowed_hours"]
        if hours is None:
            changes["allowed_hours"] = None
        else:
            h = json_object("policy.allowed_hours", hours, ("start", "end", "timezone"))
            for key in ("start", "end"):
                if not isinstance(h.get(key), str) or not _HHMM.match(h[key]):
                    raise bad(f"policy.allowed_hours.{key}", 'expected a time "HH:MM"')
            zone = h.get("timezone", "UTC")
            if not isinstance(zone, str) or not zone:
                raise bad("policy.allowed_hours.timezone",
                          'expected a time zone name such as "Europe/Berlin"')
            changes["allowed_hours"] = AllowedHours(h["start"], h["end"], zone)
    if "allowed_environments" in d:
        changes["allowed_environments"] = str_list("policy.allowed_environments",
                                                    d["allowed_environments"])
    if "require_agent_pin" in d:
        changes["require_agent_pin"] = boolean("policy.require_agent_pin",
                                             d["require_agent_pin"])
    if "approval_timeout" in d:
        changes["approval_timeout_seconds"] = None if d["approval_timeout"] is None else \
            duration("policy.approval_timeout", d["approval_timeout"])
    return Policy(**{**base.__dict__, **changes})


def _heartbeat(v: Any, base: Heartbeat) -> Heartbeat:
    d = json_object("heartbeat", v, ("enabled", "context_mode", "max_iterations"))
    return Heartbeat(
        enabled=boolean("heartbeat.enabled", d["enabled"]) if "enabled" in d else base.enabled,
        context_mode=SessionMode(enum_value("heartbeat.context_mode", d["context_mode"],
                                       [m.value for m in SessionMode]))
        if "context_mode" in d else base.context_mode,
        max_iterations=integer("heartbeat.max_iterations", d["max_iterations"], 1) or 1
        if "max_iterations" in d else base.max_iterations,
    )


_DELIVERY_KEYS = ("webhook_url", "webhook_headers", "slack_channel", "email_recipients",
                  "webhook_secret")


def _delivery_config(d: Mapping[str, Any], prefix: str, base: DeliveryConfig) -> DeliveryConfig:
    changes: dict[str, Any] = {}
    if "webhook_url" in d:
        changes["webhook_url"] = string(prefix + "webhook_url", d["webhook_url"], nullable=True)
    if "webhook_headers" in d:
        changes["webhook_headers"] = str_map(prefix + "webhook_headers", d["webhook_headers"])
    if "slack_channel" in d:
        changes["slack_channel"] = string(prefix + "slack_channel", d["slack_channel"],
                                        nullable=True)
    if "email_recipients" in d:
        changes["email_recipients"] = str_list(prefix + "email_recipients",
                                                d["email_recipients"])
    if "webhook_secret" in d:
        changes["webhook_secret"] = string(prefix + "webhook_secret", d["webhook_secret"],
                                           nullable=True)
    return DeliveryConfig(**{**base.__dict__, **changes})


JOB_FIELDS = ("name", "agent_id", "cron_expr", "at", "timezone", "session_mode", "heartbeat",
              "delivery", "delivery_config", *_DELIVERY_KEYS, "alert", "alert_cooldown",
              "alert_if_no_success_within", "policy", "max_concurrent",
              "max_retries", "jitter_seconds", "catch_up", "catch_up_limit", "input",
              "agent_pin_jwt")


def job_from_request(data: Mapping[str, Any], base: Job) -> Job:
    """Apply the request's fields to ``base``; raises InvalidInput naming the field."""
    for key in data:
        if key in READ_ONLY:
            raise bad(key, "is read-only" + ("; use pause/resume/reset" if key == "status"
                                               else ""))
        if key not in JOB_FIELDS and key != "allow_past":
            raise bad(key, "unknown field; see /api/v1/openapi.json")
    c: dict[str, Any] = {}
    if "name" in data:
        c["name"] = nonempty("name", data["name"])
    if "agent_id" in data:
        c["agent_id"] = nonempty("agent_id", data["agent_id"])
    if "timezone" in data:
        c["timezone"] = nonempty("timezone", data["timezone"])
    tz = c.get("timezone", base.timezone)
    if data.get("cron_expr") is not None:
        c["cron_expr"] = nonempty("cron_expr", data["cron_expr"])
        c["at"] = None
    if data.get("at") is not None:
        c["at"] = parse_instant(nonempty("at", data["at"]), tz)
        c["cron_expr"] = None
    if "cron_expr" in data and "at" in data and data["cron_expr"] and data["at"]:
        raise bad("at", "give exactly one of cron_expr and at")
    if "session_mode" in data:
        c["session_mode"] = SessionMode(enum_value("session_mode", data["session_mode"],
                                              [m.value for m in SessionMode]))
    if "heartbeat" in data:
        c["heartbeat"] = _heartbeat(data["heartbeat"], base.heartbeat)
    if "delivery" in data:
        c["delivery"] = str_list("delivery", data["delivery"])
    if "alert" in data:
        c["alert"] = str_list("alert", data["alert"])
    if "alert_cooldown" in data:
        c["alert_cooldown_seconds"] = duration("alert_cooldown", data["alert_cooldown"]) \
            if data["alert_cooldown"] is not None else None
    if "alert_if_no_success_within" in data:
        c["alert_if_no_success_within_seconds"] = duration(
            "alert_if_no_success_within", data["alert_if_no_success_within"])
    delivery_config = base.delivery_config
    if "delivery_config" in data:
        nested = json_object("delivery_config", data["delivery_config"], _DELIVERY_KEYS)
        delivery_config = _delivery_config(nested, "delivery_config.", delivery_config)
    delivery_config = _delivery_config(data, "", delivery_config)
    c["delivery_config"] = delivery_config
    if "policy" in data:
        c["policy"] = _policy(data["policy"], base.policy)
    if "max_concurrent" in data:
        c["max_concurrent"] = integer("max_concurrent", data["max_concurrent"], 1)
    if "max_retries" in data:
        c["max_retries"] = integer("max_retries", data["max_retries"], 0, nullable=True)
    if "jitter_seconds" in data:
        c["jitter_seconds"] = number("jitter_seconds", data["jitter_seconds"], nullable=True)
    if "catch_up" in data:
        c["catch_up"] = CatchUp(enum_value("catch_up", data["catch_up"],
                                           [x.value for x in CatchUp]))
    if "catch_up_limit" in data:
        c["catch_up_limit"] = integer("catch_up_limit", data["catch_up_limit"], 0)
    if "input" in data:
        c["input"] = string("input", data["input"], nullable=True)
    if "agent_pin_jwt" in data:
        c["agent_pin_jwt"] = string("agent_pin_jwt", data["agent_pin_jwt"], nullable=True)
    return base.replace(**c)


def new_job(data: Mapping[str, Any]) -> tuple[Job, bool]:
    """The job a create request's object defines, and its ``allow_past``; InvalidInput
    naming the field."""
    for key in ("name", "agent_id"):
        if key not in data:
            raise bad(key, "is required")
    if data.get("cron_expr") is None and data.get("at") is None:
        raise bad("cron_expr", "give exactly one of cron_expr and at")
    allow_past = boolean("allow_past", data.get("allow_past", False))
    return job_from_request(data, Job(id="", name="", agent_id="")), allow_past


def _wire_field(exc: SymbidError) -> SymbidError:
    """Cron errors name a cron field; on the wire the field is cron_expr."""
    if isinstance(exc, InvalidCron) and exc.field != "cron_expr":
        exc.field = "cron_expr"
    return exc


def _status_param(text: Optional[str], enum: Any, name: str) -> Any:
    if text is None:
        return None
    try:
        return enum(text)
    except ValueError:
        raise InvalidInput(f"{name} must be one of {', '.join(e.value for e in enum)}",
                           field=name) from None


class _chunks:
    """A backup file sent in pieces, closed (and so gone: it is unlinked) when the
    response ends, however it ends."""

    def __init__(self, fh: BinaryIO, size: int = 256 * 1024) -> None:
        self._fh, self._size = fh, size

    def __iter__(self) -> Iterator[bytes]:
        while True:
            piece = self._fh.read(self._size)
            if not piece:
                return
            yield piece

    def close(self) -> None:
        self._fh.close()


def routes(ctx: ApiContext, router: Router, prefix: str = "/api/v1") -> None:
    def shown(job: Job) -> dict[str, Any]:
        wire = ctx.job_wire(job)
        if wire is not None:
            return wire
        return {"id": job.id, "name": job.name, "status": job.status.value,
                "error": "this job cannot be shown (a time after 9999-12-31); change its "
                         "schedule with PUT, or delete it"}

    def guarded(fn: Callable[[Request], Response], *params: str
                ) -> Callable[[Request], Response]:
        """The route, taking only these query parameters; errors name the wire field."""
        def run(req: Request) -> Response:
            try:
                req.only_params(*params)
                return fn(req)
            except SymbidError as exc:
                raise _wire_field(exc) from None
        return run

    def create(req: Request) -> Response:
        body = req.json_batch()
        if isinstance(body, dict):
            job, allow_past = new_job(body)
            job = ctx.jobs.create(job, allow_past=allow_past, actor=req.who)
            return json_response(job_to_wire(job), 201)
        batch: list[Job | SymbidError] = []
        allow: list[bool] = []
        for element in body:
            try:
                if not isinstance(element, dict):
                    raise InvalidInput(f"expected a JSON object (a job), got "
                                       f"{type(element).__name__}")
                job, allow_past = new_job(element)
            except SymbidError as exc:
                batch.append(exc)
                allow.append(False)
                continue
            batch.append(job)
            allow.append(allow_past)
        try:
            made = ctx.jobs.create_many(batch, allow_past=allow, actor=req.who)
        except BatchRefused as exc:
            raise BatchRefused([(i, _wire_field(e)) for i, e in exc.problems],
                               exc.total) from None
        return json_response([job_to_wire(job) for job in made], 201)

    def listing(req: Request) -> Response:
        status = _status_param(req.query.get("status"), JobStatus, "status")
        agent = req.query.get("agent_id")
        if agent == "":
            raise bad("agent_id", "is empty; leave it out to list the jobs of every agent")
        jobs = ctx.store.list_jobs(status=status, agent_id=agent, id_prefix=id_prefix(req))
        every = req.flag_param("all")  # ad hoc jobs (symbi run) are listed only then
        return json_response([shown(j) for j in jobs if every or not j.adhoc])

    def get(req: Request) -> Response:
        job = ctx.store.get_job(req.params["job_id"])
        view = shown(job)
        if job.alert:  # where its alerts stand: one job's read, never in a listing
            state = ctx.store.alert_state(job.id)
            view["alert_state"] = None if state is None else state.to_dict()
        return json_response(view)

    def update(req: Request) -> Response:
        data = req.json_object()
        if "allow_past" in data:
            raise bad("allow_past", "only applies when a job is created")
        job = ctx.jobs.update(req.params["job_id"], lambda have: job_from_request(data, have),
                              actor=req.who)
        return json_response(shown(job))

    def delete(req: Request) -> Response:
        job = ctx.jobs.delete(req.params["job_id"], actor=req.who)
        return json_response({"id": job.id, "name": job.name, "deleted": True})

    def action(name: str) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            job = getattr(ctx.jobs, name)(req.params["job_id"], actor=req.who)
            return json_response(shown(job))
        return handler

    def run_now(req: Request) -> Response:
        data = req.json_object(required=False)
        for key in data:
            if key != "input":
                raise bad(key, "unknown field; run takes only input")
        text = string("input", data.get("input"), nullable=True)
        run = ctx.scheduler.run_now(req.params["job_id"], text, actor=req.who)
        return json_response(run_view(ctx, run), 202)

    def history(req: Request) -> Response:
        job = ctx.store.get_job(req.params["job_id"])
        limit = req.int_param("limit", 20, 1, 10_000)
        status = _status_param(req.query.get("status"), RunStatus, "status")
        return json_response(run_views(ctx, list(ctx.store.history(job.id, limit, status)),
                                       preview=True))

    def alerts(req: Request) -> Response:
        job = ctx.store.get_job(req.params["job_id"])
        limit = req.int_param("limit", 20, 1, 1000)
        return json_response([d.to_dict() for d in ctx.store.alerts_of(job.id, limit)])

    def context(req: Request) -> Response:
        return json_response(ctx.jobs.context(req.params["job_id"]))

    def clear_context(req: Request) -> Response:
        return json_response(ctx.jobs.clear_context(req.params["job_id"]))

    def next_run(req: Request) -> Response:
        job = ctx.store.get_job(req.params["job_id"])
        count = req.int_param("count", 1, 1, 1000)
        upcoming: list[int] = []
        if job.status is JobStatus.ACTIVE and job.next_run is not None:
            upcoming = [job.next_run]
            schedule = make_schedule(job.cron_expr, job.at, job.timezone)
            upcoming += next_slots(schedule, job.next_run, count - 1)
        return json_response({
            "job_id": job.id, "name": job.name,
            "next_run": format_instant(upcoming[0]) if upcoming else None,
            "next_runs": [format_instant(s) for s in upcoming],
        })

    def health(req: Request) -> Response:
        return json_response(ctx.health())

    def reload(req: Request) -> Response:
        if ctx.reload is None:
            raise HttpError(503, "unavailable", "reload is not available here")
        return json_response(ctx.reload(req.who))

    def backup(req: Request) -> Response:
        if ctx.backup_dir is None:
            raise HttpError(503, "unavailable", "backup is not available here")
        if req.method == "HEAD":  # what GET would answer, without taking a copy
            return Response(200, b"", content_type="application/vnd.sqlite3")
        # Copies are made one at a time (a second request waits for the first copy, not
        # for its sending: a client that stops reading holds only its own copy, which the
        # next one's free-space check counts).
        with ctx.backup_lock:
            copy = ctx.store.backup(ctx.backup_dir)
        log.info("database backup taken by %s", req.who, extra={"SYMBID_EVENT": "backup"})
        return Response(200, b"", content_type="application/vnd.sqlite3",
                        stream=_chunks(copy))

    def log_target(req: Request) -> Response:
        return json_response(ctx.log_target)

    r = router.add
    r("POST", f"{prefix}/schedule", guarded(create))
    r("GET", f"{prefix}/schedule", guarded(listing, "status", "agent_id", "id_prefix", "all"))
    r("GET", f"{prefix}/schedule/{{job_id}}", guarded(get))
    r("PUT", f"{prefix}/schedule/{{job_id}}", guarded(update))
    r("DELETE", f"{prefix}/schedule/{{job_id}}", guarded(delete))
    r("POST", f"{prefix}/schedule/{{job_id}}/pause", guarded(action("pause")))
    r("POST", f"{prefix}/schedule/{{job_id}}/resume",
      guarded(action("resume")))
    r("POST", f"{prefix}/schedule/{{job_id}}/reset", guarded(action("reset")))
    r("POST", f"{prefix}/schedule/{{job_id}}/run", guarded(run_now))
    r("GET", f"{prefix}/schedule/{{job_id}}/history", guarded(history, "limit", "status"))
    r("GET", f"{prefix}/schedule/{{job_id}}/next_run", guarded(next_run, "count"))
    r("GET", f"{prefix}/schedule/{{job_id}}/context", guarded(context))
    r("GET", f"{prefix}/schedule/{{job_id}}/alerts", guarded(alerts, "limit"))
    r("DELETE", f"{prefix}/schedule/{{job_id}}/context", guarded(clear_context))
    r("GET", f"{prefix}/health/scheduler", guarded(health))
    r("POST", f"{prefix}/reload", guarded(reload))
    r("GET", f"{prefix}/backup", guarded(backup))
    r("GET", f"{prefix}/logs/target", guarded(log_target))
