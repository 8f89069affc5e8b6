"""The ``symbi`` command line."""

from symbid.cli.main import main

__all__ = ["main"]
