"""The bearer token check of the TCP API (DESIGN §7), shared by the HTTP parser (which
refuses a request before reading its body) and the WSGI app."""

from __future__ import annotations

import hmac
import pwd
from collections.abc import Mapping
from typing import Optional


def bearer_name(header: str, tokens: Mapping[str, str]) -> Optional[str]:
    """The name of the token an Authorization header carries (``tokens``: name ->
    token), or None: the scheme is case-insensitive (RFC 7235), each token is compared
    in constant time, and all are compared whichever matches."""
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    offered = given.strip().encode("latin-1", "replace")
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(offered, token.encode("latin-1", "replace")):
            found = name
    return found


DEFAULT_TOKEN_NAME = "default"  # noqa: S105 - a name: the single TCP token ([api] token_file)
# The audit trail's actors that are not people: what the scheduler decides by itself, and
# what a load of agents_dir changes. No token may take their names.
SCHEDULER = "scheduler"
FILES_ACTOR = "agents.d"


def actor_name(actor: str) -> str:
    """Who an API actor is, by name, as approvers are listed: the Unix socket peer's user
    name ("uid:N" when its uid has none), the TCP token's name ("token:NAME")."""
    if actor.startswith("token:"):
        return actor[len("token:"):]
    if actor.startswith("uid:"):
        try:
            return pwd.getpwuid(int(actor[4:])).pw_name
        except (KeyError, ValueError):
            return actor
    return actor
