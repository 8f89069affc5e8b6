"""The audit trail in the store: who did what to which job and run, and what the
scheduler decided; written with the change it records, queried by type, job, actor and
time (``symbi audit query``, ``GET /api/v1/audit``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from symbid.model import format_instant
from symbid.store.plumbing import SqlPlumbing

AUDIT_COLUMNS = "id, at, type, actor, job_id, job_name, run_id, details"
SCHEDULER = "scheduler"  # the actor of what the scheduler decides by itself


@dataclass(frozen=True)
class AuditEvent:
    """One event: ``type`` (CronJobCreated, PolicyDenied, ...), ``actor`` (a user name,
    ``token:NAME``, ``uid:N`` or ``scheduler``), the job and run it concerns, and
    ``details`` (never a secret: callers pass only names, reasons and statuses)."""

    type: str
    actor: str = SCHEDULER
    job_id: Optional[str] = None
    job_name: Optional[str] = None
    run_id: Optional[str] = None
    details: Mapping[str, Any] = field(default_factory=dict)


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

    def record_audit(self, events: Sequence[AuditEvent], at: int) -> None:
        """Store events whose change another write made (an API request's)."""
        if events:
            with self._write() as conn:
                insert_audit(conn, events, at)

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
