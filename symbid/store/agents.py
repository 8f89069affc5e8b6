"""The agent registry's rows: portable SQL and the conversions both ways.

A row holds an agent's wire form (``wire.agent_to_wire``) as JSON. Each name has at
most one row per origin: ``file`` (synced from agents_dir) and ``api``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Optional

from symbid.agentdef import Agent
from symbid.errors import UnreadableRow
from symbid.model import ADHOC_SOURCE
from symbid.store.audit import Act, AuditEvent, insert_audit
from symbid.store.base import API_SOURCE, AgentGuard, RemoveGuard, StoredAgent
from symbid.store.plumbing import SqlPlumbing
from symbid.wire import agent_from_wire, agent_to_wire

log = logging.getLogger(__name__)

AGENT_COLUMNS = "name, origin, source, definition, created_at, updated_at"
_UPSERT = (
    f"INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (name, origin) DO UPDATE SET source = excluded.source, "
    "definition = excluded.definition, updated_at = excluded.updated_at"
)


def agent_params(stored: StoredAgent) -> tuple[Any, ...]:
    """The values of :data:`AGENT_COLUMNS` for a row."""
    origin = "file" if stored.from_file else "api"
    return (stored.name, origin, stored.source,
            json.dumps(agent_to_wire(stored.agent), sort_keys=True),
            stored.created_at, stored.updated_at)


def agent_from_row(row: Sequence[Any]) -> StoredAgent:
    name, _origin, source, definition, created_at, updated_at = row
    try:
        agent = agent_from_wire({**json.loads(definition), "name": name})
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableRow(f"agent {name!r} ({source}) cannot be read: {exc}") from None
    return StoredAgent(agent, source, created_at, updated_at)


class SqlAgents(SqlPlumbing):
    """The agent rows of :class:`~symbid.store.sql.SqlJobStore`."""

    def __init__(self) -> None:
        super().__init__()
        self._warned_agents: set[tuple[str, str]] = set()  # unreadable rows already logged

    def _agents(self, rows: Sequence[Sequence[Any]]) -> list[StoredAgent]:
        out = []
        for row in rows:
            try:
                out.append(agent_from_row(row))
            except UnreadableRow as exc:
                key = (row[0], row[1])
                if key not in self._warned_agents:
                    self._warned_agents.add(key)
                    log.warning("%s; it is left out: define it again", exc.message)
        return out

    @staticmethod
    def _select(conn: Any, name: Optional[str] = None,
                names: Sequence[str] = ()) -> list[Any]:
        # 'file' sorts before 'api' descending: a file's row comes first.
        order = " ORDER BY name, origin DESC"
        if name is not None:
            names = [name]
        if names:
            marks = ", ".join("?" * len(names))
            return list(conn.execute(f"SELECT {AGENT_COLUMNS} FROM agents WHERE name IN "
                                     f"({marks}){order}", tuple(names)).fetchall())
        return list(conn.execute(f"SELECT {AGENT_COLUMNS} FROM agents{order}").fetchall())

    def list_agents(self, name: Optional[str] = None) -> list[StoredAgent]:
        try:
            return self._agents(self._select(self._conn(), name))
        except Exception as exc:
            raise self._wrap(exc) from exc

    def sync_file_agents(self, put: Sequence[StoredAgent], remove: Sequence[str],
                         audit: Sequence[AuditEvent] = (), now: int = 0) -> None:
        if not put and not remove:
            return
        with self._write() as conn:
            for stored in put:
                assert stored.from_file, stored
                conn.execute(_UPSERT, agent_params(stored))
            for name in remove:
                conn.execute("DELETE FROM agents WHERE name = ? AND origin = 'file'", (name,))
            insert_audit(conn, audit, now)

    def define_agents(self, agents: Sequence[Agent], now: int, guard: AgentGuard,
                      act: Optional[Act] = None) -> tuple[list[str], list[str]]:
        created: list[str] = []
        updated: list[str] = []
        with self._write() as conn:
            existing = self._agents(self._select(conn, names=[a.name for a in agents]))
            guard(existing)
            have = {s.name for s in existing if not s.from_file}
            for agent in agents:
                conn.execute(_UPSERT, agent_params(StoredAgent(agent, API_SOURCE, now, now)))
                (updated if agent.name in have else created).append(agent.name)
            if act is not None:
                insert_audit(conn, [act.about_agent(a.name) for a in agents], act.at)
        return created, updated

    def remove_agent(self, name: str, guard: RemoveGuard,
                     act: Optional[Act] = None) -> StoredAgent:
        with self._write() as conn:
            rows = self._agents(self._select(conn, name))
            # an agent's ad hoc job (symbi run) does not hold it: it stays, hidden
            jobs = [r[0] for r in conn.execute(
                "SELECT name FROM jobs WHERE agent_id = ? AND source <> ? ORDER BY name",
                (name, ADHOC_SOURCE)).fetchall()]
            doomed = guard(rows, jobs)
            conn.execute("DELETE FROM agents WHERE name = ? AND origin = ?",
                         (doomed.name, "file" if doomed.from_file else "api"))
            if act is not None:
                insert_audit(conn, [act.about_agent(doomed.name)], act.at)
            return doomed

    def agent_use(self) -> dict[str, int]:
        rows = self._query("SELECT agent_id, COUNT(*) FROM jobs WHERE source <> ? "
                           "GROUP BY agent_id", (ADHOC_SOURCE,))
        return {agent: count for agent, count in rows}
