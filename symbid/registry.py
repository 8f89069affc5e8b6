"""The agent registry: every agent lives in the store; the executor's ``Agents`` is derived.

Agents come from two places, stored side by side:

* ``agents_dir`` files, synced on start and reload as file jobs are (:func:`plan_agent_sync`):
  a new block creates its row, a changed one updates it, a removed one removes it. The
  agents of a file that fails to load keep their last good (stored) definition.
* the API (``source = "api"``), when ``[api] define_agents`` is on. They survive restarts
  and reloads, and re-defining one updates it: its jobs use the new definition from their
  next run.

A file agent wins over an API agent of the same name: the file's definition is used, and
each sync says so in a warning. The API row is kept, shadowed (listed with
``shadowed_by``), so that it is used again if the file drops the agent; deleting the name
through the API then removes that shadowed row, never the file's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from symbid.agentdef import Agent
from symbid.audit import emit
from symbid.auth import FILES_ACTOR
from symbid.clock import Clock
from symbid.dsl.loader import LoadedFile
from symbid.errors import Conflict, Forbidden, NotFound
from symbid.executor import Agents
from symbid.store import JobStore, StoredAgent
from symbid.store.audit import Act, agent_events
from symbid.text import escape, shorten
from symbid.wire import agent_to_wire

log = logging.getLogger(__name__)

LISTED_JOBS = 10  # job names a refused delete lists


def define_hint(agents_dir: str, api_enabled: bool) -> str:
    """Where an agent is defined, for "agent X is not defined" messages."""
    text = f"define it in a .symbi file in {agents_dir} and run `symbi reload`"
    if api_enabled:
        text += ", or through POST /api/v1/agents (`symbi cron add --file FILE` does that)"
    return text


@dataclass(frozen=True)
class AgentSyncPlan:
    put: tuple[StoredAgent, ...] = ()  # file rows to create or replace
    remove: tuple[str, ...] = ()  # names whose file row goes
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: int = 0
    warnings: tuple[str, ...] = ()


def plan_agent_sync(files: Sequence[LoadedFile], stored: Sequence[StoredAgent],
                    now: int) -> AgentSyncPlan:
    """Compare the agents the files define with the stored rows (pure).

    A file that failed to load keeps its stored agents, unless a file that loaded now
    defines the same name (that definition is taken).
    """
    failed = {f.source for f in files if not f.ok}
    desired: dict[str, tuple[Agent, str]] = {}
    for f in files:
        if f.ok:
            for agent in f.agents:
                desired.setdefault(agent.name, (agent, f.source))
    file_rows = {s.name: s for s in stored if s.from_file}
    api_rows = {s.name for s in stored if not s.from_file}
    put: list[StoredAgent] = []
    created: list[str] = []
    updated: list[str] = []
    remove: list[str] = []
    unchanged = 0
    for name, (agent, source) in desired.items():
        have = file_rows.get(name)
        if have is None:
            put.append(StoredAgent(agent, source, now, now))
            created.append(name)
        elif have.source == source and agent_to_wire(have.agent) == agent_to_wire(agent):
            unchanged += 1
        else:
            put.append(StoredAgent(agent, source, have.created_at, now))
            updated.append(name)
    kept: dict[str, str] = {name: source for name, (_, source) in desired.items()}
    for name, have in file_rows.items():
        if name in desired:
            continue
        if have.source in failed:
            unchanged += 1
            kept[name] = have.source
        else:
            remove.append(name)
    warnings = tuple(
        f"agent {name!r} in {kept[name][len('file:'):]} shadows the agent of the same name "
        "defined through the API: the file's definition is used, the API's is kept unused "
        f"(DELETE /api/v1/agents/{name} removes it)"
        for name in sorted(api_rows & set(kept)))
    return AgentSyncPlan(tuple(put), tuple(remove), tuple(created), tuple(updated),
                         unchanged, warnings)


@dataclass(frozen=True)
class ListedAgent:
    """A row of the registry, with how many jobs name it (0 when shadowed: its jobs use
    the file's) and the source of the file agent that shadows it, if any."""

    stored: StoredAgent
    jobs: int
    shadowed_by: Optional[str] = None


@dataclass
class Defined:
    agents: list[StoredAgent] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


class AgentService:
    """Agent lifecycle operations, store first: every change is written, then the
    in-memory ``Agents`` the executor reads is rebuilt from the store."""

    def __init__(self, store: JobStore, clock: Clock, agents: Agents, *, agents_dir: str,
                 api_enabled: bool = True) -> None:
        self._store = store
        self._clock = clock
        self.agents = agents
        self.agents_dir = agents_dir
        self.api_enabled = api_enabled
        self._lock = threading.Lock()  # a change and its refresh, one at a time
        agents.hint = define_hint(agents_dir, api_enabled)

    # --- reading ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the executor's agents from the store: a file's row wins over the API's."""
        effective: dict[str, Agent] = {}
        for stored in self._store.list_agents():  # a file's row comes first
            effective.setdefault(stored.name, stored.agent)
        self.agents.replace(effective)

    def names(self) -> list[str]:
        """Every stored agent name (the ones the executor can run)."""
        return sorted({s.name for s in self._store.list_agents()})

    def listing(self, name: Optional[str] = None) -> list[ListedAgent]:
        """Every row (or those called ``name``), by name, the one in use first."""
        use = self._store.agent_use()
        out: list[ListedAgent] = []
        winner: dict[str, StoredAgent] = {}
        for stored in self._store.list_agents(name):
            first = winner.setdefault(stored.name, stored)
            if first is stored:
                out.append(ListedAgent(stored, use.get(stored.name, 0)))
            else:
                out.append(ListedAgent(stored, 0, shadowed_by=first.source))
        return out

    def get(self, name: str) -> ListedAgent:
        """The agent in use under ``name``; :class:`NotFound` when there is none."""
        rows = self.listing(name)
        if not rows:
            raise NotFound(f"no agent named '{escape(shorten(name))}'; GET /api/v1/agents "
                           "lists them")
        return rows[0]

    # --- agents_dir ------------------------------------------------------------------
    def sync_files(self, files: Sequence[LoadedFile], actor: str = FILES_ACTOR
                   ) -> AgentSyncPlan:
        """Make the stored file agents match ``files`` (one transaction, with their audit
        events by ``actor``: who asked for the reload, else ``agents.d``), then refresh."""
        with self._lock:
            now = self._clock.now()
            plan = plan_agent_sync(files, self._store.list_agents(), now)
            audit = [*agent_events("AgentDefined", actor, [*plan.created, *plan.updated]),
                     *agent_events("AgentRemoved", actor, plan.remove)]
            self._store.sync_file_agents(plan.put, plan.remove, audit, now)
            self.refresh()
        emit(audit)
        for names, verb in ((plan.created, "created"), (plan.updated, "updated"),
                            (plan.remove, "removed")):
            for name in names:
                log.info("agents.d: agent %s %s", name, verb,
                         extra={"SYMBID_EVENT": "agent_synced"})
        for line in plan.warnings:
            log.warning("agents.d: %s", line)
        return plan

    # --- the API ---------------------------------------------------------------------
    def check_api_enabled(self) -> None:
        if not self.api_enabled:
            raise Forbidden(
                "defining agents through the API is turned off ([api] define_agents = "
                f"false): define them in a .symbi file in {self.agents_dir} and run "
                "`symbi reload`")

    def define(self, agents: Sequence[Agent], *, actor: str) -> Defined:
        """Create or update API agents for ``actor`` (``AgentDefined`` on the audit
        trail), all or none; :class:`Conflict` when a name is defined in an agents_dir
        file, or given twice."""
        self.check_api_enabled()
        seen: set[str] = set()
        for agent in agents:
            if agent.name in seen:
                raise Conflict(f"agent '{escape(agent.name)}' is given twice", field="name")
            seen.add(agent.name)

        def guard(existing: list[StoredAgent]) -> None:
            for row in existing:
                if row.from_file:
                    raise Conflict(
                        f"agent '{escape(row.name)}' is defined in {row.path}; to change it, "
                        "edit that file and run `symbi reload`, or choose another name",
                        field="name")

        act = Act("AgentDefined", actor, self._clock.now())
        with self._lock:
            created, updated = self._store.define_agents(agents, act.at, guard, act)
            self.refresh()
            rows = [r for a in agents for r in self._store.list_agents(a.name)
                    if not r.from_file]
        for name in created + updated:
            log.info("agent %s %s through the API", name,
                     "created" if name in created else "updated",
                     extra={"SYMBID_EVENT": "agent_defined"})
        emit([act.about_agent(a.name) for a in agents])
        return Defined(rows, created, updated)

    def remove(self, name: str, *, actor: str) -> StoredAgent:
        """Delete an API agent for ``actor`` (``AgentRemoved`` on the audit trail).
        Refused (:class:`Conflict`) while a job names it, or when the agent is defined in
        a file only; a shadowed API row is always removable. Allowed with define_agents
        off too: an operator who turned it off can still clear out the agents defined
        before."""

        def guard(rows: list[StoredAgent], jobs: list[str]) -> StoredAgent:
            api = next((r for r in rows if not r.from_file), None)
            in_file = next((r for r in rows if r.from_file), None)
            if api is None and in_file is not None:
                raise Conflict(f"agent '{escape(name)}' is defined in {in_file.path}; to "
                               "remove it, edit that file and run `symbi reload`")
            if api is None:
                raise NotFound(f"no agent named '{escape(shorten(name))}'; GET "
                               "/api/v1/agents lists them")
            if in_file is None and jobs:
                shown = ", ".join(jobs[:LISTED_JOBS])
                more = len(jobs) - LISTED_JOBS
                raise Conflict(
                    f"agent '{escape(name)}' is used by {len(jobs)} job(s): {escape(shown)}"
                    + (f" and {more} more" if more > 0 else "")
                    + "; remove them or point them at another agent first")
            return api

        act = Act("AgentRemoved", actor, self._clock.now())
        with self._lock:
            removed = self._store.remove_agent(name, guard, act)
            self.refresh()
        emit([act.about_agent(removed.name)])
        log.info("agent %s removed through the API", name,
                 extra={"SYMBID_EVENT": "agent_removed"})
        return removed
