"""The Symbiont SDK dialect at /symbiont/api/v1/: the paths and exact field sets that
the official Python SDK (PyPI ``symbiont-sdk``, ``symbiont.schedules``) parses into
dataclasses, so neither an extra nor a missing key is allowed in a response.
Agents' ad hoc jobs (``symbi run``) are not listed; by id they are shown as any job.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from symbid.api.context import ApiContext
from symbid.api.http import Request, Response, Router, json_response
from symbid.errors import Conflict, InvalidInput
from symbid.model import MAXIMUMS, NAME_MAX, Job, JobStatus, format_instant
from symbid.records import Run
from symbid.store import JobTotals
from symbid.timing import make_schedule, next_slots

PREFIX = "/symbiont/api/v1"
_LENGTHS = {"name": NAME_MAX, "agent_name": NAME_MAX, "cron_expression": MAXIMUMS["cron_expr"],
            "timezone": MAXIMUMS["timezone"]}


def _when(ms: Optional[int]) -> Optional[str]:
    return None if ms is None else format_instant(ms)


def _cron(job: Job) -> str:
    return job.cron_expr if job.cron_expr is not None else format_instant(job.at or 0)


def summary(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id, "name": job.name, "cron_expression": _cron(job),
        "timezone": job.timezone, "status": job.status.value,
        "enabled": job.status is JobStatus.ACTIVE, "next_run": _when(job.next_run),
        "run_count": job.run_count,
    }


def detail(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id, "name": job.name, "cron_expression": _cron(job),
        "timezone": job.timezone, "status": job.status.value,
        "enabled": job.status is JobStatus.ACTIVE, "one_shot": job.one_shot,
        "next_run": _when(job.next_run), "last_run": _when(job.last_run),
        "run_count": job.run_count, "failure_count": job.failure_count,
        "created_at": format_instant(job.created_at),
        "updated_at": format_instant(job.updated_at),
    }


def history_entry(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "started_at": format_instant(run.started_at if run.started_at is not None
                                     else run.created_at),
        "completed_at": _when(run.finished_at),
        "status": run.status.value,
        "error": run.error_message,
        "execution_time_ms": run.execution_time_ms,
    }


def _fields(data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidInput(f"{key}: unknown field; this endpoint takes "
                               f"{', '.join(allowed)}", field=key)


def _policy_ids(data: dict[str, Any]) -> None:
    ids = data.get("policy_ids") or []
    if not isinstance(ids, list):
        raise InvalidInput("policy_ids: expected a list", field="policy_ids")
    if ids:
        raise InvalidInput("policy_ids: named policies are not supported by symbid; set the "
                           "policy object through /api/v1/schedule", field="policy_ids")


def _one_shot_at(cron: str, tz: str, now: int) -> int:
    """A one-shot job in this dialect runs at the expression's next slot."""
    slot = make_schedule(cron, None, tz, now=now).next_after(now)
    assert slot is not None
    return slot


def routes(ctx: ApiContext, router: Router) -> None:
    def text(data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{key}: a non-empty string is required", field=key)
        limit = _LENGTHS.get(key)
        if limit is not None and len(value) > limit:
            raise InvalidInput(f"{key}: must be at most {limit} characters", field=key)
        return value

    def optional(data: dict[str, Any], key: str, default: Any, kind: type) -> Any:
        """``data[key]`` checked to be a ``kind`` (absent or null: ``default``)."""
        if data.get(key) is None:
            return default
        if kind is bool:
            if not isinstance(data[key], bool):
                raise InvalidInput(f"{key}: expected true or false", field=key)
            return data[key]
        return text(data, key)

    def create(req: Request) -> Response:
        data = req.json_object()
        _fields(data, ("name", "cron_expression", "agent_name", "timezone", "policy_ids",
                       "one_shot"))
        _policy_ids(data)
        tz = optional(data, "timezone", "UTC", str)
        cron = text(data, "cron_expression")
        one_shot = optional(data, "one_shot", False, bool)
        now = ctx.clock.now()
        job = Job(id="", name=text(data, "name"), agent_id=text(data, "agent_name"),
                  timezone=tz)
        job = job.replace(at=_one_shot_at(cron, tz, now)) if one_shot else \
            job.replace(cron_expr=cron)
        job = ctx.jobs.create(job, actor=req.who)
        return json_response({"job_id": job.id, "next_run": _when(job.next_run),
                              "status": job.status.value})

    def listing(req: Request) -> Response:
        # The SDK parses every field of every row: a row that cannot be shown is left
        # out (and logged) rather than failing the whole listing.
        rows = []
        for job in ctx.store.list_jobs():
            if not job.adhoc and ctx.job_wire(job) is not None:  # ad hoc jobs: symbi run
                rows.append(summary(job))
        return json_response(rows)

    def get(req: Request) -> Response:
        job = ctx.store.get_job(req.params["job_id"])
        if ctx.job_wire(job) is None:
            raise Conflict(f"job {job.name} cannot be shown (a time after 9999-12-31); "
                           "change its schedule or delete it")
        return json_response(detail(job))

    def update(req: Request) -> Response:
        data = req.json_object()
        _fields(data, ("cron_expression", "timezone", "policy_ids", "one_shot"))
        _policy_ids(data)
        new_tz = optional(data, "timezone", None, str)
        new_cron = optional(data, "cron_expression", None, str)
        new_one_shot = optional(data, "one_shot", None, bool)

        def build(have: Job) -> Job:
            tz = new_tz or have.timezone
            cron = new_cron or have.cron_expr
            one_shot = have.one_shot if new_one_shot is None else new_one_shot
            want = have.replace(timezone=tz)
            if cron is None:
                if new_one_shot is False:
                    raise InvalidInput("one_shot: a one-shot job becomes recurring only with "
                                       "a cron_expression", field="one_shot")
                return want
            if one_shot:
                return want.replace(at=_one_shot_at(cron, tz, ctx.clock.now()), cron_expr=None)
            return want.replace(cron_expr=cron, at=None)

        job = ctx.jobs.update(req.params["job_id"], build, actor=req.who)
        return json_response(detail(job))

    def delete(req: Request) -> Response:
        job = ctx.jobs.delete(req.params["job_id"], actor=req.who)
        return json_response({"job_id": job.id, "deleted": True})

    def action(name: str) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            if name == "trigger":
                run = ctx.scheduler.run_now(req.params["job_id"], actor=req.who)
                job = ctx.store.get_job(run.job_id)
            else:
                job = getattr(ctx.jobs, name)(req.params["job_id"], actor=req.who)
            return json_response({"job_id": job.id, "action": name,
                                  "status": job.status.value})
        return handler

    def history(req: Request) -> Response:
        job = ctx.store.get_job(req.params["job_id"])
        limit = req.int_param("limit", 50, 1, 10_000)
        return json_response({"job_id": job.id,
                              "history": [history_entry(r) for r in
                                          ctx.store.history(job.id, limit)]})

    def next_runs(req: Request) -> Response:
        job = ctx.store.get_job(req.params["job_id"])
        count = req.int_param("count", 10, 1, 1000)
        runs: list[int] = []
        if job.status is JobStatus.ACTIVE and job.next_run is not None:
            schedule = make_schedule(job.cron_expr, job.at, job.timezone)
            runs = [job.next_run] + next_slots(schedule, job.next_run, count - 1)
        return json_response({"job_id": job.id,
                              "next_runs": [format_instant(s) for s in runs]})

    def health(req: Request) -> Response:
        totals, store_error = ctx.store_state()
        totals = totals or JobTotals()
        by = totals.by_status
        finished = totals.runs_total
        return json_response({
            "is_running": ctx.loop_alive(),
            "store_accessible": store_error is None,
            "jobs_total": sum(by.values()),
            "jobs_active": by.get(JobStatus.ACTIVE.value, 0),
            "jobs_paused": by.get(JobStatus.PAUSED.value, 0),
            "jobs_dead_letter": by.get(JobStatus.DEAD_LETTER.value, 0),
            "global_active_runs": ctx.scheduler.in_flight(),
            "max_concurrent": ctx.scheduler.config.max_concurrent_jobs,
            "runs_total": finished,
            "runs_succeeded": totals.runs_succeeded,
            "runs_failed": totals.runs_failed,
            "average_execution_time_ms": (totals.execution_ms_total / finished)
            if finished else 0.0,
            "longest_run_ms": float(totals.longest_execution_ms),
        })

    def takes(*params: str) -> Callable[[Callable[[Request], Response]],
                                        Callable[[Request], Response]]:
        """The route, refusing any query parameter but ``params`` (naming it)."""
        def wrap(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
            def route(req: Request) -> Response:
                req.only_params(*params)
                return fn(req)
            return route
        return wrap

    def r(method: str, path: str, fn: Callable[[Request], Response],
          *params: str) -> None:
        router.add(method, path, takes(*params)(fn))

    r("GET", f"{PREFIX}/schedules", listing)
    r("POST", f"{PREFIX}/schedules", create)
    r("GET", f"{PREFIX}/schedules/{{job_id}}", get)
    r("PUT", f"{PREFIX}/schedules/{{job_id}}", update)
    r("DELETE", f"{PREFIX}/schedules/{{job_id}}", delete)
    r("POST", f"{PREFIX}/schedules/{{job_id}}/pause", action("pause"))
    r("POST", f"{PREFIX}/schedules/{{job_id}}/resume", action("resume"))
    r("POST", f"{PREFIX}/schedules/{{job_id}}/trigger", action("trigger"))
    r("GET", f"{PREFIX}/schedules/{{job_id}}/history", history, "limit")
    r("GET", f"{PREFIX}/schedules/{{job_id}}/next-runs", next_runs, "count")
    r("GET", f"{PREFIX}/health/scheduler", health)
