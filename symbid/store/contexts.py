"""The session contexts' rows (one per job, removed with it): portable SQL and the
conversions both ways.

A row holds the job's session mode, the last summary and, in shared_persistent mode,
the bounded history as JSON (``[[input, output, run_id, at_ms], ...]``, oldest first)
with the number of turns trimmed so far.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

from symbid.model import SessionContext, SessionMode, Turn
from symbid.store.plumbing import SqlPlumbing

CONTEXT_COLUMNS = "job_id, mode, summary, history, dropped, run_id, updated_at"
UPSERT_CONTEXT = (
    f"INSERT INTO contexts ({CONTEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET mode = excluded.mode, summary = excluded.summary, "
    "history = excluded.history, dropped = excluded.dropped, run_id = excluded.run_id, "
    "updated_at = excluded.updated_at"
)


def context_params(ctx: SessionContext) -> tuple[Any, ...]:
    history = json.dumps([[t.input, t.output, t.run_id, t.at] for t in ctx.history],
                         separators=(",", ":"))
    return (ctx.job_id, ctx.mode.value, ctx.summary, history, ctx.dropped, ctx.run_id,
            ctx.updated_at)


def context_from_row(row: Sequence[Any]) -> SessionContext:
    job_id, mode, summary, history, dropped, run_id, updated_at = row
    turns = tuple(Turn(input=i, output=o, run_id=r, at=int(a))
                  for i, o, r, a in json.loads(history or "[]"))
    return SessionContext(job_id=job_id, mode=SessionMode(mode), summary=summary,
                          history=turns, dropped=int(dropped), run_id=run_id,
                          updated_at=int(updated_at))


class SqlContexts(SqlPlumbing):
    """The context rows of :class:`~symbid.store.sql.SqlJobStore`."""

    def get_context(self, job_id: str) -> Optional[SessionContext]:
        rows = self._query(f"SELECT {CONTEXT_COLUMNS} FROM contexts WHERE job_id = ?",
                           (job_id,))
        return context_from_row(rows[0]) if rows else None

    def put_context(self, ctx: SessionContext) -> bool:
        with self._write() as conn:
            return self._put_context(conn, ctx)

    @staticmethod
    def _put_context(conn: Any, ctx: SessionContext) -> bool:
        """Write ``ctx`` if its job still exists; False when it is gone."""
        if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (ctx.job_id,)).fetchone() is None:
            return False
        conn.execute(UPSERT_CONTEXT, context_params(ctx))
        return True

    def clear_context(self, job_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM contexts WHERE job_id = ?", (job_id,))
            return bool(cur.rowcount)
