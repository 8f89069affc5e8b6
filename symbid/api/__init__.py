"""The control plane's HTTP API (one WSGI app)."""

from symbid.api.app import make_app
from symbid.api.context import ApiContext

__all__ = ["ApiContext", "make_app"]
