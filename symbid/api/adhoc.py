"""Running an agent once, outside the schedule: ``POST /api/v1/agents/{name}/run``
(``symbi run AGENT``).

The body is ``{"input": TEXT, "session": JOB, "wait": BOOL}``, every field optional.

* Without ``session`` the run is a manual run of the agent's ad hoc job
  (``adhoc:NAME``, :meth:`symbid.jobs.JobService.adhoc_job`), created on first use:
  its session is fully ephemeral, so nothing is carried over from one ad hoc run to
  the next. It is recorded like any other run and shown in that job's history.
* With ``session`` (a job's id or name) the run is a manual run of that job, so it
  reads and leaves the job's session context as the job's ``session_mode`` says. The
  job must run this agent (400 naming both agents otherwise). Without ``input`` it
  gets the job's own input, as ``POST /api/v1/schedule/{id}/run`` does.

The run goes through the same sandbox and executor as a scheduled one. The answer
is the run in the form of ``GET /api/v1/runs/{id}``: queued (202), or with ``wait``
once its final state is stored (200). A waiting client holds a worker thread, so it
takes one of the places followers of output take (503 ``too_many_followers`` when
they are all taken); if it goes away, or the daemon stops, the wait ends and the
run, still open, is answered with 202. An unknown agent is 404, naming the agents
there are.
"""

from __future__ import annotations

from symbid.api.context import ApiContext
from symbid.api.fields import bad, boolean, nonempty, string
from symbid.api.http import Request, Response, Router, json_response
from symbid.api.runs import Holders, disconnected_of, run_view, wait_for_end
from symbid.errors import InvalidInput, NotFound
from symbid.text import escape, shorten

FIELDS = ("input", "session", "wait")


def routes(ctx: ApiContext, router: Router, holders: Holders,
           prefix: str = "/api/v1") -> None:
    def run_agent(req: Request) -> Response:
        req.only_params()
        data = req.json_object(required=False)
        for key in data:
            if key not in FIELDS:
                raise bad(key, f"unknown field; run takes {', '.join(FIELDS)}")
        text = string("input", data.get("input"), nullable=True)
        session = nonempty("session", data["session"]) \
            if data.get("session") is not None else None
        wait = boolean("wait", data.get("wait", False))
        name = req.params["name"]
        if ctx.agents.agents.get(name) is None:  # the name is quoted shortened
            short = shorten(name)
            raise NotFound(ctx.agents.agents.problem(short) or f"no agent named "
                           f"'{escape(short)}'")
        if session is not None:
            try:
                job = ctx.store.get_job(session)
            except NotFound as exc:
                raise NotFound(f"session: {exc.message}", field="session") from None
            if job.agent_id != name:
                raise InvalidInput(
                    f"session: job {escape(job.name)} runs agent '{escape(job.agent_id)}', "
                    f"not '{escape(name)}'; give a job of agent '{escape(name)}', or run "
                    f"agent '{escape(job.agent_id)}'", field="session")
        else:
            job = ctx.jobs.adhoc_job(name, actor=req.who)
        if wait:
            holders.take()  # before the run is queued: a refused wait queues nothing
        try:
            run = ctx.scheduler.run_now(job.id, text, actor=req.who, event="AgentRunAdHoc")
            if not wait:
                return json_response(run_view(ctx, run), 202)
            run = wait_for_end(ctx, run.id, disconnected_of(req))
        finally:
            if wait:
                holders.release()
        return json_response(run_view(ctx, run), 202 if run.status.is_open else 200)

    router.add("POST", f"{prefix}/agents/{{name}}/run", run_agent)
