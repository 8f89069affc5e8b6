"""Portable SQL for jobs and runs, over :class:`SqlPlumbing`'s connections.

``INSERT ... ON CONFLICT DO NOTHING``, partial indexes, ``LIMIT/OFFSET`` and
scalar subqueries work on SQLite and PostgreSQL alike (see :mod:`.plumbing` for
the placeholder style).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

from symbid.errors import NotFound, StoreError
from symbid.model import Job, RunStatus
from symbid.records import Run
from symbid.store.agents import SqlAgents
from symbid.store.audit import Act, AuditEvent, SqlAudit, insert_audit, record
from symbid.store.base import (
    Advance,
    Claimed,
    Finish,
    Finished,
    JobStore,
    JobTotals,
    RetryClaim,
)
from symbid.store.contexts import SqlContexts
from symbid.store.deliveries import (
    STOP_EVENTS,
    AlertRequest,
    SqlDeliveries,
    insert_deliveries,
    raise_alert,
)
from symbid.store.jobs import SqlJobs
from symbid.store.rows import (
    JOB_COLUMNS,
    OPEN_SQL,
    PREVIEW_RUN_COLUMNS,
    RUN_COLUMNS,
    RUN_PLACEHOLDERS,
    iterations_text,
    output_size,
    prefix_bounds,
    run_from_row,
    run_params,
    spans_text,
    tool_calls_text,
    usage_text,
)
from symbid.text import shorten

log = logging.getLogger(__name__)


class SqlJobStore(SqlJobs, SqlAgents, SqlContexts, SqlDeliveries, SqlAudit, JobStore):
    """Portable SQL over a DB-API connection per thread: the loop's claims, runs and
    their ends here; job rows in :class:`SqlJobs`, agent rows in :class:`SqlAgents`,
    session contexts in :class:`SqlContexts`, the delivery outbox in
    :class:`SqlDeliveries`, the audit trail in :class:`SqlAudit`. Backends fill in the
    hooks."""

    def __init__(self, keep_runs: int = 1000) -> None:
        super().__init__()
        self.keep_runs = keep_runs

    # --- scheduling ------------------------------------------------------------------
    def next_due(self) -> Optional[int]:
        # Both queries walk an index in order and stop at the first hit.
        row = self._query(
            "SELECT MIN(next_run) FROM jobs WHERE status = 'active' AND next_run IS NOT NULL"
        )
        retry = self._query(
            "SELECT r.retry_at FROM runs r WHERE r.retry_at IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM jobs j WHERE j.id = r.job_id AND j.status = 'active') "
            "ORDER BY r.retry_at LIMIT 1"
        )
        candidates = [v for v in (row[0][0], retry[0][0] if retry else None) if v is not None]
        return min(candidates) if candidates else None

    def due_jobs(self, now: int, limit: int) -> list[Job]:
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'active' AND next_run IS NOT NULL "
            "AND next_run <= ? ORDER BY next_run LIMIT ?",
            (now, limit),
        )
        jobs = self._jobs(rows)
        if len(jobs) < len(rows):
            # A due row that cannot be read would stay due for ever (and the loop would
            # spin on it): it is taken off the schedule until it is fixed or deleted.
            readable = {j.id for j in jobs}
            with self._write() as conn:
                for row in rows:
                    if row[0] not in readable:
                        conn.execute("UPDATE jobs SET next_run = NULL WHERE id = ?", (row[0],))
                        log.error("job %r (%s) cannot be read: it is not scheduled until it "
                                  "is deleted and defined again", row[1], row[0])
        return jobs

    def due_retries(self, now: int, limit: int) -> list[Run]:
        cols = ", ".join(f"r.{c.strip()}" for c in RUN_COLUMNS.split(","))
        rows = self._query(
            f"SELECT {cols} FROM runs r WHERE r.retry_at IS NOT NULL AND r.retry_at <= ? "
            "AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id AND j.status = 'active') "
            "ORDER BY r.retry_at LIMIT ?",
            (now, limit),
        )
        return [run_from_row(r) for r in rows]

    def open_runs_by_job(self) -> dict[str, list[tuple[str, str]]]:
        rows = self._query(
            f"SELECT job_id, id, status FROM runs WHERE status IN {OPEN_SQL} ORDER BY slot"
        )
        out: dict[str, list[tuple[str, str]]] = {}
        for job_id, run_id, status in rows:
            out.setdefault(job_id, []).append((run_id, status))
        return out

    def _insert_run(self, conn: Any, run: Run) -> bool:
        cur = conn.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({RUN_PLACEHOLDERS}) "
            "ON CONFLICT (job_id, space, slot, attempt) DO NOTHING",
            run_params(run),
        )
        return bool(cur.rowcount == 1)

    def claim(self, advances: Sequence[Advance], retries: Sequence[RetryClaim]) -> Claimed:
        claimed = Claimed()
        if not advances and not retries:
            return claimed
        with self._write() as conn:
            for adv in advances:
                spans = spans_text(adv.claimed) if adv.claimed is not None else None
                through = adv.claimed[-1][1] if adv.claimed else None
                cur = conn.execute(
                    "UPDATE jobs SET next_run = ?, claimed = COALESCE(?, claimed), "
                    "claimed_through = COALESCE(?, claimed_through), "
                    "status = COALESCE(?, status), version = version + 1 "
                    "WHERE id = ? AND version = ? AND status = 'active'",
                    (adv.next_run, spans, through,
                     adv.status.value if adv.status else None, adv.job_id, adv.expect_version),
                )
                if cur.rowcount != 1:
                    log.debug("job %s changed since it was read; claim dropped", adv.job_id)
                    continue
                skipped = False
                for run in adv.runs:
                    if self._insert_run(conn, run):
                        if run.status is RunStatus.PENDING:
                            claimed.append(run)
                        else:
                            skipped = True
                if skipped:
                    # Skipped slots pile up while a run hangs: keep retention here too.
                    self._prune(conn, adv.job_id)
                if adv.alert is not None:
                    raise_alert(conn, adv.alert, adv.alert_at)
                for event in adv.audit:
                    insert_audit(conn, [event], adv.at(event.run_id))
                claimed.audit += adv.audit
            for rc in retries:
                cur = conn.execute(
                    "UPDATE runs SET retry_at = NULL WHERE id = ? AND retry_at = ?",
                    (rc.failed_run_id, rc.expect_retry_at),
                )
                if cur.rowcount == 1 and self._insert_run(conn, rc.run):
                    claimed.append(rc.run)
        return claimed

    def insert_run(self, run: Run, act: Optional[Act] = None) -> Run:
        with self._write() as conn:
            row = conn.execute("SELECT name FROM jobs WHERE id = ?", (run.job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job with id {run.job_id!r}")
            for bump in range(1000):
                candidate = run.replace(slot=run.slot + bump)
                if self._insert_run(conn, candidate):
                    record(conn, act, (run.job_id, row[0]), run_id=run.id)
                    return candidate
        raise StoreError(f"could not find a free slot for a manual run of job {run.job_id}")

    def postpone_retry(self, run_id: str, retry_at: Optional[int]) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET retry_at = ? WHERE id = ? AND retry_at IS NOT NULL",
                (retry_at, run_id),
            )

    def mark_started(self, started: Sequence[tuple[str, int, int, int, Optional[int]]]
                     ) -> None:
        """Record spawned runs ``running`` (with their process), without waiting for the
        disk: the start log already says they may have started, and whichever way a power
        loss undoes this write they are still counted as started. Back to ``pending``,
        due before the boot, a run counts as started (symbid.startlog), so it is recorded
        ``interrupted`` and is not run again. That is the same end as ``running`` when
        the daemon died. It saves one of the scheduler pass's fsyncs: milliseconds each,
        and on the run's path from one pass to the next."""
        if not started:
            return
        with self._write(durable=False) as conn:
            conn.executemany(
                "UPDATE runs SET status = 'running', started_at = ?, pid = ?, pgid = ?, "
                "pid_start = ? WHERE id = ? AND status = 'pending'",
                [(at, pid, pgid, ticks, rid) for rid, at, pid, pgid, ticks in started],
            )
            self._note_starts(conn, [(rid, at) for rid, at, *_ in started])

    def mark_process(self, processes: Sequence[tuple[str, int, int, Optional[int]]]) -> None:
        """A heartbeat's next process, for recovery to look for: not waited for, as
        :meth:`mark_started` (after a power loss no process is left to look for)."""
        if not processes:
            return
        with self._write(durable=False) as conn:
            conn.executemany(
                "UPDATE runs SET pid = ?, pgid = ?, pid_start = ? "
                "WHERE id = ? AND status = 'running'",
                [(pid, pgid, ticks, rid) for rid, pid, pgid, ticks in processes],
            )

    @staticmethod
    def _note_starts(conn: Any, starts: Sequence[tuple[str, int]]) -> None:
        """Each job's last_run: the latest start of any of its runs (never a version bump:
        a definition change planned meanwhile stays valid)."""
        conn.executemany(
            "UPDATE jobs SET last_run = ? WHERE id = (SELECT job_id FROM runs WHERE id = ?) "
            "AND (last_run IS NULL OR last_run < ?)",
            [(at, rid, at) for rid, at in starts],
        )

    def shift_waits(self, step_ms: int, since: int) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET not_before = not_before + ? WHERE status = 'pending' "
                "AND not_before > ? AND slot <= ?",
                (step_ms, since, since),
            )
            conn.execute(
                "UPDATE runs SET retry_at = retry_at + ? WHERE retry_at IS NOT NULL "
                "AND retry_at > ?",
                (step_ms, since),
            )
            conn.execute(
                "UPDATE runs SET approval_deadline = approval_deadline + ? "
                "WHERE status = 'awaiting_approval' AND approval_deadline > ?",
                (step_ms, since),
            )

    def await_approval(self, run_id: str, deadline: int, notice: Optional[AlertRequest],
                       now: int, audit: Sequence[AuditEvent] = ()) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'awaiting_approval', approval_deadline = ? "
                "WHERE id = ? AND status = 'pending'", (deadline, run_id))
            if cur.rowcount != 1:
                return False
            if notice is not None and notice.channels:
                raise_alert(conn, notice, now)
            insert_audit(conn, audit, now)
            return True

    def approve(self, run_id: str, by: str, note: Optional[str],
                audit: Sequence[AuditEvent] = (), now: int = 0) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'pending', approved_by = ?, approval_note = ? "
                "WHERE id = ? AND status = 'awaiting_approval'", (by, note, run_id))
            if cur.rowcount != 1:
                return False
            insert_audit(conn, audit, now)
            return True

    def finish(self, finishes: Sequence[Finish]) -> Finished:
        ended = Finished()
        if not finishes:
            return ended
        touched: set[str] = set()
        starts: list[tuple[str, int]] = []
        with self._write() as conn:
            for fin in finishes:
                run, alert = fin.run, fin.alert
                if run.retry_at is not None and fin.belongs_to is not None and \
                        not self._has_schedule(conn, run.job_id, fin.belongs_to):
                    run = run.replace(retry_at=None)  # its job no longer has that slot
                    alert = fin.alert_unretried
                cur = conn.execute(
                    "UPDATE runs SET status = ?, started_at = COALESCE(?, started_at), "
                    "pid = COALESCE(?, pid), pgid = COALESCE(?, pgid), "
                    "finished_at = ?, execution_time_ms = ?, exit_code = ?, signal = ?, "
                    "error_message = ?, output = ?, output_truncated = ?, summary = ?, "
                    "retry_at = ?, output_bytes = ?, iterations = ?, stop_reason = ?, "
                    "usage = ?, tool_calls = ?, approved_by = COALESCE(?, approved_by), "
                    "approval_note = COALESCE(?, approval_note) "
                    f"WHERE id = ? AND status IN {OPEN_SQL}",
                    (run.status.value, run.started_at, run.pid, run.pgid, run.finished_at,
                     run.execution_time_ms, run.exit_code, run.signal, run.error_message,
                     run.output, int(run.output_truncated), run.summary, run.retry_at,
                     output_size(run.output), iterations_text(run.iterations),
                     run.stop_reason, usage_text(run.usage), tool_calls_text(run.tool_calls),
                     run.approved_by, run.approval_note, run.id),
                )
                if cur.rowcount != 1:
                    continue  # already final, or its job was deleted
                named = conn.execute("SELECT name FROM jobs WHERE id = ?",
                                     (run.job_id,)).fetchone()
                if named is not None:
                    ended.names[run.id] = named[0]
                if fin.context is not None:
                    self._put_context(conn, fin.context)
                if fin.deliver:
                    insert_deliveries(conn, run.id, run.job_id, fin.deliver,
                                      run.finished_at or 0)
                touched.add(run.job_id)
                if run.started_at is not None:
                    starts.append((run.id, run.started_at))
                if fin.counts:
                    ok = run.status is RunStatus.SUCCEEDED
                    conn.execute(
                        "UPDATE jobs SET run_count = run_count + 1, "
                        "success_count = success_count + ?, failure_count = failure_count + ?, "
                        "total_execution_ms = total_execution_ms + ?, "
                        "last_success_at = CASE WHEN ? THEN MAX(COALESCE(last_success_at, 0), "
                        "?) ELSE last_success_at END WHERE id = ?",
                        (int(ok), int(run.status.is_failure), run.execution_time_ms or 0,
                         int(ok), run.finished_at or 0, run.job_id),
                    )
                    # apart, so that its index (jobs_longest) is written only for a record
                    conn.execute(
                        "UPDATE jobs SET longest_execution_ms = ? WHERE id = ? "
                        "AND longest_execution_ms < ?",
                        (run.execution_time_ms or 0, run.job_id, run.execution_time_ms or 0))
                job_ended = fin.job_status is not None and self._end_job(conn, fin)
                # a job's stop is on the record only if this run did stop it
                recorded = [e for e in fin.audit if job_ended or "job_status" not in e.details]
                insert_audit(conn, recorded, run.finished_at or 0)
                ended.audit += recorded
                if job_ended:
                    ended.add(run.id)
                    if fin.clear_retries:
                        conn.execute(
                            "UPDATE runs SET retry_at = NULL WHERE job_id = ? "
                            "AND retry_at IS NOT NULL",
                            (run.job_id,),
                        )
                # An alert that the job stopped is raised only if it did stop here (a
                # one-shot re-armed meanwhile, a job deleted, is not ended by this run).
                if alert is not None and (job_ended or alert.event not in STOP_EVENTS):
                    raise_alert(conn, alert, run.finished_at or 0)
            self._note_starts(conn, starts)
            for job_id in touched:
                self._prune(conn, job_id)
        return ended

    @staticmethod
    def _schedule_column(belongs_to: tuple[Optional[str], Optional[int]]) -> tuple[str, Any]:
        cron_expr, at = belongs_to
        return ("at_ms", at) if at is not None else ("cron_expr", cron_expr)

    def _has_schedule(self, conn: Any, job_id: str,
                      belongs_to: tuple[Optional[str], Optional[int]]) -> bool:
        column, value = self._schedule_column(belongs_to)
        return conn.execute(f"SELECT 1 FROM jobs WHERE id = ? AND {column} = ?",
                            (job_id, value)).fetchone() is not None

    def _end_job(self, conn: Any, fin: Finish) -> bool:
        """Apply ``fin.job_status`` if the job still has the schedule the run belongs to."""
        assert fin.job_status is not None and fin.belongs_to is not None
        column, value = self._schedule_column(fin.belongs_to)
        cur = conn.execute(
            "UPDATE jobs SET status = ?, version = version + 1 WHERE id = ? "
            f"AND status IN ('active', 'paused') AND {column} = ?",
            (fin.job_status.value, fin.run.job_id, value),
        )
        return bool(cur.rowcount == 1)

    def _prune(self, conn: Any, job_id: str) -> None:
        """Keep the newest ``keep_runs`` runs of a job (never an open one, a pending retry,
        or one with a delivery still pending: it goes once its outbox rows have ended)."""
        row = conn.execute(
            "SELECT slot, attempt FROM runs WHERE job_id = ? "
            "ORDER BY slot DESC, attempt DESC LIMIT 1 OFFSET ?",
            (job_id, self.keep_runs),
        ).fetchone()
        if row is None:
            return
        slot, attempt = row
        conn.execute(
            "DELETE FROM runs WHERE job_id = ? AND (slot < ? OR (slot = ? AND attempt <= ?)) "
            f"AND status NOT IN {OPEN_SQL} AND retry_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM deliveries d WHERE d.run_id = runs.id AND d.status = 'pending')",
            (job_id, slot, slot, attempt),
        )

    def open_runs(self) -> list[Run]:
        rows = self._query(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN {OPEN_SQL} ORDER BY slot"
        )
        return [run_from_row(r) for r in rows]

    def jobs_claimed_after(self, instant: int) -> list[Job]:
        rows = self._query(
            # through the index jobs_high_water (schema 12): no job is read at start-up
            # unless it has to be re-aimed
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE cron_expr IS NOT NULL "
            "AND MAX(COALESCE(claimed_through, 0), created_at) > ? AND +status = 'active'",
            (instant,),
        )
        return self._jobs(rows)

    # --- history and health ----------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        rows = self._query(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFound(f"no run with id {shorten(run_id)!r}")
        return run_from_row(rows[0])

    def history(
        self, job_id: str, limit: int = 20, status: Optional[RunStatus] = None
    ) -> list[Run]:
        # Only a preview of each output: a listing never carries every run's whole output.
        sql = f"SELECT {PREVIEW_RUN_COLUMNS} FROM runs WHERE job_id = ?"
        params: list[Any] = [job_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status.value)
        sql += " ORDER BY slot DESC, attempt DESC LIMIT ?"
        params.append(limit)
        return [run_from_row(r) for r in self._query(sql, params)]

    def find_runs(self, id_prefix: str, limit: int = 20) -> list[Run]:
        rows = self._query(
            f"SELECT {PREVIEW_RUN_COLUMNS} FROM runs WHERE id >= ? AND id < ? "
            "ORDER BY created_at DESC, slot DESC, attempt DESC LIMIT ?",
            (*prefix_bounds(id_prefix), limit))
        return [run_from_row(r) for r in rows]

    def latest_instant(self) -> Optional[int]:
        rows = self._query(
            "SELECT MAX(t) FROM (SELECT MAX(created_at) AS t FROM runs "
            "UNION ALL SELECT MAX(started_at) FROM runs UNION ALL SELECT MAX(finished_at) "
            "FROM runs UNION ALL SELECT MAX(updated_at) FROM jobs) AS instants")
        return None if rows[0][0] is None else int(rows[0][0])

    def probe(self) -> None:
        self._query("SELECT COUNT(*) FROM (SELECT 1 FROM jobs LIMIT 1) AS one")

    def totals(self) -> JobTotals:
        # A few rows kept by triggers (schema 12), and the longest run through an index:
        # health and STATUS= cost the same for ten jobs and for a million. Ad hoc jobs
        # (symbi run) are not counted as jobs; their runs are counted as runs.
        rows = self._query(
            "SELECT status, SUM(CASE WHEN adhoc THEN 0 ELSE jobs END), SUM(runs), "
            "SUM(succeeded), SUM(failed), SUM(execution_ms) FROM job_totals GROUP BY status")
        longest = self._query("SELECT MAX(longest_execution_ms) FROM jobs")
        return JobTotals(
            by_status={status: count for status, count, *_ in rows if count},
            runs_total=sum(r[2] or 0 for r in rows),
            runs_succeeded=sum(r[3] or 0 for r in rows),
            runs_failed=sum(r[4] or 0 for r in rows),
            execution_ms_total=sum(r[5] or 0 for r in rows),
            longest_execution_ms=int(longest[0][0] or 0),
        )
