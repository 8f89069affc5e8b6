"""The session contexts' rows (one per job, removed with it): portable SQL and the
conversions both ways.

A row holds the job's session mode, the last summary and, in shared_persistent mode,
the bounded history as JSON (``[[input, output, run_id, at_ms(, messages)], ...]``,
oldest first; ``messages`` for an llm agent's run)
with the number of turns trimmed so far. ``generation`` counts the clears: a clear
keeps the row, emptied, with the generation bumped, and a run's context is written only
over the generation it started from, so a run that was going during a clear does not
bring back what the clear removed (its own context is dropped with the rest).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

from symbid.model import SessionMode
from symbid.records import SessionContext, Turn
from symbid.store.plumbing import SqlPlumbing

CONTEXT_COLUMNS = "job_id, mode, summary, history, dropped, run_id, updated_at, generation"
UPSERT_CONTEXT = (
    f"INSERT INTO contexts ({CONTEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET mode = excluded.mode, summary = excluded.summary, "
    "history = excluded.history, dropped = excluded.dropped, run_id = excluded.run_id, "
    "updated_at = excluded.updated_at WHERE contexts.generation = excluded.generation"
)
CLEAR_CONTEXT = (
    f"INSERT INTO contexts ({CONTEXT_COLUMNS}) VALUES (?, 'ephemeral_with_summary', NULL, "
    "'[]', 0, NULL, ?, 1) ON CONFLICT (job_id) DO UPDATE SET summary = NULL, history = '[]', "
    "dropped = 0, run_id = NULL, updated_at = excluded.updated_at, "
    "generation = contexts.generation + 1"
)


def context_params(ctx: SessionContext) -> tuple[Any, ...]:
    history = json.dumps([[t.input, t.output, t.run_id, t.at, *(
        [list(t.messages)] if t.messages else [])] for t in ctx.history],
        separators=(",", ":"))
    return (ctx.job_id, ctx.mode.value, ctx.summary, history, ctx.dropped, ctx.run_id,
            ctx.updated_at, ctx.generation)


def context_from_row(row: Sequence[Any]) -> SessionContext:
    job_id, mode, summary, history, dropped, run_id, updated_at, generation = row
    turns = tuple(Turn(input=t[0], output=t[1], run_id=t[2], at=int(t[3]),
                       messages=tuple(t[4]) if len(t) > 4 else ())
                  for t in json.loads(history or "[]"))
    return SessionContext(job_id=job_id, mode=SessionMode(mode), summary=summary,
                          history=turns, dropped=int(dropped), run_id=run_id,
                          updated_at=int(updated_at), generation=int(generation))


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
        """Write ``ctx`` if its job still exists and its context was not cleared since
        ``ctx``'s generation; False when it was not written."""
        if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (ctx.job_id,)).fetchone() is None:
            return False
        return bool(conn.execute(UPSERT_CONTEXT, context_params(ctx)).rowcount)

    def clear_context(self, job_id: str, now: int) -> bool:
        with self._write() as conn:
            had = conn.execute("SELECT 1 FROM contexts WHERE job_id = ? AND (run_id IS NOT "
                               "NULL OR summary IS NOT NULL)", (job_id,)).fetchone()
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                conn.execute(CLEAR_CONTEXT, (job_id, now))
            return had is not None
