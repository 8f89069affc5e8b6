"""The one WSGI app: native routes, the SDK dialect, OpenAPI, /metrics.

Over the Unix socket, access is granted by the socket's mode and group and the
peer's uid (SO_PEERCRED) is the actor. Over TCP every request needs
``Authorization: Bearer <token>``, compared in constant time; anything else
gets 401 and nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from symbid.api import adhoc, agents, audit, dialect, native, runs
from symbid.api.context import ApiContext
from symbid.api.http import (
    BodyCaps,
    HttpError,
    Request,
    Response,
    Router,
    StartResponse,
    error_response,
    json_response,
    send,
)
from symbid.api.openapi import document
from symbid.auth import bearer_name
from symbid.errors import SymbidError

log = logging.getLogger(__name__)

def make_app(ctx: ApiContext, *, transport: str = "unix",
             tokens: Optional[Mapping[str, str]] = None,
             caps: Optional[BodyCaps] = None, max_followers: int = 4) -> Any:
    """A WSGI callable. ``transport`` is "unix" or "tcp"; TCP requires ``tokens`` (name
    -> token; the name is the request's actor, ``token:NAME``).
    Request bodies over their ``caps`` (:class:`BodyCaps`) get 413. At most
    ``max_followers`` clients follow run output or wait for an agent's run at once (each
    holds a worker thread while it streams or waits)."""
    if transport == "tcp" and not tokens:
        raise ValueError("a TCP listener needs a bearer token")
    caps = caps or BodyCaps()
    router = Router()
    native.routes(ctx, router)
    agents.routes(ctx, router)
    holders = runs.Holders(max_followers)
    runs.routes(ctx, router, holders)
    audit.routes(ctx, router)
    adhoc.routes(ctx, router, holders)
    dialect.routes(ctx, router)
    spec = document()
    router.add("GET", "/api/v1/openapi.json", lambda req: json_response(spec))

    def metrics(req: Request) -> Response:
        body, content_type = ctx.metrics.render()
        return Response(200, body, content_type)

    router.add("GET", "/metrics", metrics)
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        # PEP 3333 hands the path over as latin-1; names are UTF-8 (café, 報告)
        path = (environ.get("PATH_INFO", "") or "/").encode("latin-1", "replace") \
            .decode("utf-8", "replace")
        head = method == "HEAD"
        if transport == "tcp":
            assert tokens is not None
            name = bearer_name(environ.get("HTTP_AUTHORIZATION", ""), tokens)
            if name is None:
                response = error_response(HttpError(
                    401, "unauthorized", "a valid Authorization: Bearer token is required"))
                response.headers.append(("WWW-Authenticate", 'Bearer realm="symbid"'))
                return send(response, start_response, head=head)
            actor = f"token:{name}"
        else:
            actor = environ.get("REMOTE_USER") or "unix"  # "uid:N" from SO_PEERCRED
        try:
            handler, params = router.match(method, path)
            request = Request(environ, method, path, params, actor, caps=caps)
            response = handler(request)
        except SymbidError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("%s %s failed", method, path)
            response = error_response(HttpError(500, "internal", "internal error; see the "
                                                                 "daemon's log"))
        return send(response, start_response, head=head)

    return app
