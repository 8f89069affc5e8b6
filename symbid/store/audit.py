"""The audit trail in the store: who did what to which job and run, and what the
scheduler decided; written with the change it records, queried by type, job, actor and
time (``symbi audit query``, ``GET /api/v1/audit``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from symbid.auth import FILES_ACTOR, SCHEDULER
from symbid.model import format_instant
from symbid.store.plumbing import SqlPlumbing

AUDIT_COLUMNS = "id, at, type, actor, job_id, job_name, run_id, details"


@dataclass(frozen=True)
class AuditEvent:
    """One event: ``type`` (CronJobCreated, PolicyDenied, ...), ``actor`` (a user name,
    ``uid:N`` when it has none, a token's name, ``scheduler`` or ``agents.d``), the job and
    run it concerns, and
    ``details`` (never a secret: callers pass only names, reasons and statuses)."""

    type: str
    actor: str = SCHEDULER
    job_id: Optional[str] = None
    job_name: Optional[str] = None
    run_id: Optional[str] = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Act:
    """Someone's change, for the audit trail: the store method making it records
    ``type`` by ``actor`` at ``at`` about the job (or agents) it changes, in the change's
    own transaction; :meth:`about` and :meth:`about_agent` are those events, which the
    caller journals once the change is made."""

    type: str
    actor: str
    at: int

    def about(self, job_id: str, job_name: Optional[str],
              run_id: Optional[str] = None) -> AuditEvent:
        return AuditEvent(self.type, self.actor, job_id, job_name, run_id)

    def about_agent(self, name: str) -> AuditEvent:
        return AuditEvent(self.type, self.actor, details={"agent": name})


def agent_events(kind: str, actor: str, names: Sequence[str]) -> list[AuditEvent]:
    """``kind`` (AgentDefined, AgentRemoved) by ``actor`` for each agent of ``names``,
    loaded from agents_dir (``via``)."""
    return [AuditEvent(kind, actor, details={"agent": name, "via": FILES_ACTOR})
            for name in names]


def record(conn: Any, act: Optional[Act], *subjects: tuple[str, Optional[str]],
           run_id: Optional[str] = None) -> None:
    """Write ``act``'s event about each job ``(id, name)`` of ``subjects`` (nothing
    without an ``act``)."""
    if act is not None:
        insert_audit(conn, [act.about(i, n, run_id) for i, n in subjects], act.at)


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: int
    event: AuditEvent

    def to_dict(self) -> dict[str, Any]:
        e = self.event
        return {"id": self.id, "time": format_instant(self.at), "type": e.type,
                "actor": e.actor, "job_id": e.job_id, "job": e.job_name, "run_id": e.run_id,
                "details": dict(e.details)}


def insert_audit(conn: Any, events: Sequence[AuditEvent], at: int) -> None:
    conn.executemany(
        "INSERT INTO audit (at, type, actor, job_id, job_name, run_id, details) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(at, e.type, e.actor, e.job_id, e.job_name, e.run_id,
          json.dumps(dict(e.details), separators=(",", ":"), default=str)) for e in events])


class SqlAudit(SqlPlumbing):
    """The audit rows of :class:`~symbid.store.sql.SqlJobStore`."""

    def query_audit(self, *, type: Optional[str] = None, job: Optional[str] = None,
                    actor: Optional[str] = None, since: Optional[int] = None,
                    until: Optional[int] = None, limit: int = 100) -> list[AuditRecord]:
        """Events newest first, filtered (``job``: its name or id; ``since`` in,
        ``until`` out, epoch ms)."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("type", type), ("actor", actor)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if job is not None:
            where.append("(job_name = ? OR job_id = ?)")
            params += [job, job]
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if until is not None:
            where.append("at < ?")
            params.append(until)
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY at DESC, id DESC LIMIT ?", (*params, limit))
        return [AuditRecord(int(rid), int(at), AuditEvent(
            type=kind, actor=who, job_id=jid, job_name=name, run_id=run,
            details=json.loads(details or "{}")))
            for rid, at, kind, who, jid, name, run, details in rows]

    def prune_audit(self, before: int) -> int:
        """Drop events older than ``before`` (epoch ms): ``[audit] retention_days``."""
        with self._write() as conn:
            return int(conn.execute("DELETE FROM audit WHERE at < ?", (before,)).rowcount)
