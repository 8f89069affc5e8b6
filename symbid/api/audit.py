"""``GET /api/v1/audit``: the audit trail, newest first, filtered by ``type``, ``job``
(name or id), ``actor``, ``since`` (in) and ``until`` (out), each a date
(``2026-02-01``, UTC midnight) or an RFC 3339 instant, and ``limit`` (1 to 1000, 100)."""

from __future__ import annotations

from typing import Optional

from symbid.api.context import ApiContext
from symbid.api.http import Request, Response, Router, json_response
from symbid.errors import InvalidInput
from symbid.timing import load_zone, parse_instant


def _instant(req: Request, name: str) -> Optional[int]:
    text = req.query.get(name)
    if text is None:
        return None
    try:
        return parse_instant(text, load_zone("UTC"))
    except InvalidInput:
        raise InvalidInput(f"{name}: expected a date (2026-02-01) or an RFC 3339 instant, "
                           f"got {text[:40]!r}", field=name) from None


def routes(ctx: ApiContext, router: Router, prefix: str = "/api/v1") -> None:
    def query(req: Request) -> Response:
        req.only_params("type", "job", "actor", "since", "until", "limit")
        records = ctx.store.query_audit(
            type=req.query.get("type"), job=req.query.get("job"),
            actor=req.query.get("actor"), since=_instant(req, "since"),
            until=_instant(req, "until"), limit=req.int_param("limit", 100, 1, 1000))
        return json_response([r.to_dict() for r in records])

    router.add("GET", f"{prefix}/audit", query)
