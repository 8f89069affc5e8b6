"""The bearer token check of the TCP API (DESIGN §7), shared by the HTTP parser (which
refuses a request before reading its body) and the WSGI app."""

from __future__ import annotations

import hmac


def bearer_ok(header: str, token: str) -> bool:
    """Whether an Authorization header carries ``token``: the scheme is case-insensitive
    (RFC 7235), the token is compared in constant time."""
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("latin-1", "replace"),
                               token.encode("latin-1", "replace"))
