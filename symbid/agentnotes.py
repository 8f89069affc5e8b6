"""The warnings a load of agents_dir (start, reload) gives about agents: an llm agent
that cannot run yet, and an agent removed from the files that jobs still use. Each is
logged and returned with the reload's result."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from symbid import llmrun
from symbid.agentdef import AgentKind
from symbid.config import LlmConfig
from symbid.executor import Agents
from symbid.store import JobStore

log = logging.getLogger(__name__)

LISTED_JOBS = 10  # jobs a warning names


def unready_llm_agents(agents: Agents, llm: LlmConfig, environ: Mapping[str, str]
                       ) -> list[str]:
    """A warning per llm agent that cannot run yet (no endpoint, model or key)."""
    notes = []
    for name in agents.names():
        agent = agents.get(name)
        problem = None if agent is None or agent.kind is not AgentKind.LLM else \
            llmrun.not_ready(agent, llm, environ)
        if problem is not None:
            notes.append(f"{problem}; its runs fail until then")
    for line in notes:
        log.warning("agents.d: %s", line)
    return notes


def orphaned_agents(agents: Agents, store: JobStore, removed: Sequence[str]) -> list[str]:
    """Warnings for agents gone from agents_dir that jobs still name (their runs fail
    until the agent is defined again)."""
    notes = []
    for name in removed:
        if agents.get(name) is not None:
            continue  # an API agent of that name takes over
        count, users = store.jobs_of_agent(name, LISTED_JOBS)  # not every job: a million
        if count:
            shown = ", ".join(users) + (
                f" and {count - len(users)} more" if count > len(users) else "")
            notes.append(f"agent {name!r} was removed from agents_dir, but {count} "
                         f"job(s) use it: {shown}; their runs fail until it is defined "
                         "again (or pause or remove them)")
    for line in notes:
        log.warning("agents.d: %s", line)
    return notes
