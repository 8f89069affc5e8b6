"""The agent registry's routes: /api/v1/agents.

``GET`` lists or shows agents; ``POST`` defines agents from a JSON object (the field
names of ``wire.agent_to_wire``) or from ``.symbi`` text (``Content-Type: text/x-symbi``
or ``text/plain``: every ``agent`` block; ``schedule`` blocks are refused); ``DELETE``
removes an API-defined agent that no job uses. With ``[api] define_agents = false``,
POST and DELETE are 403.
"""

from __future__ import annotations

from typing import Any, Optional

from symbid.api.context import ApiContext
from symbid.api.http import HttpError, Request, Response, Router, json_response
from symbid.dsl.define import agent_from_json, agents_from_text
from symbid.model import format_instant
from symbid.registry import ListedAgent
from symbid.store import StoredAgent
from symbid.wire import agent_to_wire

JSON_TYPES = ("", "application/json")
DSL_TYPES = ("text/x-symbi", "text/plain")


def agent_view(stored: StoredAgent, jobs: int,
               shadowed_by: Optional[str] = None) -> dict[str, Any]:
    """An agent's wire form with where it comes from, its times and how many jobs use it."""
    return {
        **agent_to_wire(stored.agent),
        "source": stored.source,
        "created_at": format_instant(stored.created_at),
        "updated_at": format_instant(stored.updated_at),
        "jobs": jobs,
        "shadowed_by": shadowed_by,
    }


def _listed(row: ListedAgent) -> dict[str, Any]:
    return agent_view(row.stored, row.jobs, row.shadowed_by)


def routes(ctx: ApiContext, router: Router, prefix: str = "/api/v1") -> None:
    def listing(req: Request) -> Response:
        req.only_params()
        return json_response([_listed(row) for row in ctx.agents.listing()])

    def get(req: Request) -> Response:
        req.only_params()
        return json_response(_listed(ctx.agents.get(req.params["name"])))

    def define(req: Request) -> Response:
        req.only_params()
        ctx.agents.check_api_enabled()  # before the body is read
        warnings: list[str] = []
        if req.content_type in DSL_TYPES:
            agents, warnings = agents_from_text(req.text())
        elif req.content_type in JSON_TYPES:
            agents = [agent_from_json(req.json_object())]
        else:
            raise HttpError(415, "unsupported_media_type",
                            f"Content-Type {req.content_type!r} is not accepted: send an "
                            "agent as application/json, or .symbi text as text/x-symbi "
                            "(with curl: -H 'Content-Type: application/json')")
        defined = ctx.agents.define(agents, actor=req.who)
        use = ctx.store.agent_use()
        return json_response({
            "agents": [agent_view(s, use.get(s.name, 0)) for s in defined.agents],
            "created": defined.created,
            "updated": defined.updated,
            "warnings": warnings,
        }, 201)

    def delete(req: Request) -> Response:
        req.only_params()
        removed = ctx.agents.remove(req.params["name"], actor=req.who)
        return json_response({"name": removed.name, "deleted": True})

    r = router.add
    r("GET", f"{prefix}/agents", listing)
    r("POST", f"{prefix}/agents", define)
    r("GET", f"{prefix}/agents/{{name}}", get)
    r("DELETE", f"{prefix}/agents/{{name}}", delete)
