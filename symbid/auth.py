"""The bearer token check of the TCP API (DESIGN §7), shared by the HTTP parser (which
refuses a request before reading its body) and the WSGI app."""

from __future__ import annotations

import hmac
import pwd


def bearer_ok(header: str, token: str) -> bool:
    """Whether an Authorization header carries ``token``: the scheme is case-insensitive
    (RFC 7235), the token is compared in constant time."""
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("latin-1", "replace"),
                               token.encode("latin-1", "replace"))


DEFAULT_TOKEN_NAME = "default"  # noqa: S105 - a name: the single TCP token ([api] token_file)


def actor_name(actor: str) -> str:
    """Who an API actor is, by name, as approvers are listed: the Unix socket peer's user
    name ("uid:N" when its uid has none), the TCP token's name."""
    if actor == "token":
        return DEFAULT_TOKEN_NAME
    if actor.startswith("uid:"):
        try:
            return pwd.getpwuid(int(actor[4:])).pw_name
        except (KeyError, ValueError):
            return actor
    return actor
