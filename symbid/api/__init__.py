"""The control plane's HTTP API (one WSGI app)."""

from symbid.api.app import PEER_PID, PEER_UID, make_app
from symbid.api.context import ApiContext

__all__ = ["PEER_PID", "PEER_UID", "ApiContext", "make_app"]
