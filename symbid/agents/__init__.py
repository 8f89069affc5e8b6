"""Agent kinds run inside a run's child process (issue 10).

``symbid.agents`` holds the LLM agent runtime: an OpenAI-compatible chat-completions
client (:mod:`.llm`), the conversation loop with its limits (:mod:`.conversation`), tools
and their JSON Schema subset (:mod:`.tools`, :mod:`symbid.toolschema`), the run spec
(:mod:`.spec`), request slots bounding ``max_concurrent_requests`` across runs
(:mod:`.slots`) and the child entry point ``python -m symbid.agents.child``
(:mod:`.child`). The child protocol is in ``docs/llm-agents.md``.

This package stands at level 2 of the import ladder and keeps its imports lean: the child
imports only the standard library and these modules.
"""

from __future__ import annotations

import os
import sys

CHILD_MODULE = "symbid.agents.child"


def child_argv(python: str = sys.executable) -> list[str]:
    """The argv that starts an LLM run's child (stdin: the spec; see the child's docs).

    ``-S`` skips ``site``: its ``.pth`` processing is most of Python's start-up (about 30
    ms here, with an editable install) and the child needs only the standard library and
    symbid, found through :func:`child_pythonpath`.
    """
    return [python, "-S", "-m", CHILD_MODULE]


def child_pythonpath() -> str:
    """The ``PYTHONPATH`` entry the child needs under ``-S``: the directory holding symbid."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
