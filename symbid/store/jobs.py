"""Job definition rows: create, find, list, change and delete jobs, over
:class:`SqlPlumbing`'s connections (the loop's claims and a run's end live in
:mod:`.sql`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from typing import Any, Callable, Optional

from symbid.errors import BatchRefused, Conflict, NotFound, SymbidError, UnreadableRow
from symbid.model import ADHOC_SOURCE, FILE_SOURCE_PREFIX, NAME_MAX, Job, JobStatus
from symbid.store.audit import Act, AuditEvent, insert_audit, record
from symbid.store.plumbing import SqlPlumbing
from symbid.store.rows import JOB_COLUMNS, JOB_PLACEHOLDERS, job_from_row, job_params, prefix_bounds
from symbid.text import shorten

log = logging.getLogger(__name__)

_IN_CHUNK = 500  # values bound in one IN (...) list (SQLite allows 999 in older builds)


def _after_prefix(prefix: str) -> str:
    """The least string after every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SqlJobs(SqlPlumbing):
    """The job rows of :class:`~symbid.store.sql.SqlJobStore`."""

    def __init__(self) -> None:
        super().__init__()
        self._warned: set[str] = set()  # unreadable job rows already logged
    def create_job(self, job: Job, act: Optional[Act] = None) -> Job:
        try:
            with self._write() as conn:
                conn.execute(
                    f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({JOB_PLACEHOLDERS})",
                    job_params(job),
                )
                record(conn, act, (job.id, job.name))
        except Exception as exc:
            if self._is_unique_violation(exc):
                if "jobs.id" in str(exc):
                    raise Conflict(f"a job with id {job.id!r} already exists", field="id") \
                        from exc
                raise Conflict(
                    f"a job named {job.name!r} already exists; names are unique", field="name"
                ) from exc
            raise
        return job

    def create_jobs(self, jobs: Sequence[Job], act: Optional[Act] = None) -> None:
        """Create every job of ``jobs`` in one transaction, with ``act``'s event about
        each, or none of them: names that stored jobs have are refused with
        :class:`BatchRefused` by index (checked in the transaction, so no other
        request can take one meanwhile)."""
        names = [job.name for job in jobs]
        try:
            with self._write() as conn:
                taken = self._taken(conn, names)
                if taken:
                    problems: list[tuple[int, SymbidError]] = [
                        (i, Conflict(f"a job named {name!r} already exists; names are "
                                     "unique", field="name"))
                        for i, name in enumerate(names) if name in taken]
                    raise BatchRefused(problems, len(names))
                conn.executemany(
                    f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({JOB_PLACEHOLDERS})",
                    [job_params(job) for job in jobs])
                record(conn, act, *((job.id, job.name) for job in jobs))
        except Exception as exc:
            if self._is_unique_violation(exc):  # an id given twice (names are checked)
                raise Conflict(f"the batch could not be created: {exc}", field="id") \
                    from exc
            raise

    @staticmethod
    def _taken(conn: Any, names: Sequence[str]) -> set[str]:
        taken: set[str] = set()
        for start in range(0, len(names), 500):  # SQLite's host-parameter limit
            chunk = list(names[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            taken.update(row[0] for row in conn.execute(
                f"SELECT name FROM jobs WHERE name IN ({marks})", chunk))
        return taken

    def taken_names(self, names: Sequence[str]) -> set[str]:
        try:
            return self._taken(self._conn(), names)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def _find(self, conn: Any, ref: str) -> Optional[Job]:
        row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (ref,)).fetchone()
        if row is None:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE name = ?", (ref,)
            ).fetchone()
        return self._job(row) if row else None

    @staticmethod
    def _job(row: Sequence[Any]) -> Job:
        try:
            return job_from_row(row)
        except (ValueError, KeyError, TypeError) as exc:
            raise UnreadableRow(f"job {row[1]!r} ({row[0]}) cannot be read: {exc}; delete it "
                                "(symbi cron remove) and define it again") from None

    def _jobs(self, rows: Sequence[Sequence[Any]]) -> list[Job]:
        """The readable jobs of ``rows``: one unreadable row (written by hand, or damaged)
        must not hide every other job, nor stop the scheduling of the others."""
        jobs = []
        for row in rows:
            try:
                jobs.append(self._job(row))
            except UnreadableRow as exc:
                if row[0] not in self._warned:
                    self._warned.add(row[0])
                    log.warning("%s; it is left out", exc.message)
        return jobs

    def find_job(self, ref: str) -> Optional[Job]:
        try:
            return self._find(self._conn(), ref)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def list_jobs(
        self,
        status: Optional[JobStatus] = None,
        agent_id: Optional[str] = None,
        source: Optional[str] = None,
        id_prefix: Optional[str] = None,
    ) -> list[Job]:
        where, params = [], []
        for column, value in (("status", status.value if status else None),
                              ("agent_id", agent_id), ("source", source)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if id_prefix:
            where.append("id >= ? AND id < ?")
            params.extend(prefix_bounds(id_prefix))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs{clause} ORDER BY name", params)
        return self._jobs(rows)

    def sync_candidates(self, names: Collection[str]) -> list[Job]:
        # An index range on source, and one lookup by name each: a sync does not read
        # the jobs the API made (there may be a million of them).
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE source >= ? AND source < ?",
            (FILE_SOURCE_PREFIX, _after_prefix(FILE_SOURCE_PREFIX)))
        seen = {row[0] for row in rows}
        wanted = sorted(set(names))
        for lo in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[lo:lo + _IN_CHUNK]
            rows.extend(row for row in self._query(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE name IN "
                f"({', '.join('?' * len(chunk))})", chunk) if row[0] not in seen)
        rows.sort(key=lambda row: row[1])
        return self._jobs(rows)

    def jobs_with_channels(self, source: str, after: str, limit: int
                           ) -> tuple[list[Job], Optional[str]]:
        rows = self._query(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE name > ? AND source = ? AND "
            "(json_array_length(definition, '$.delivery') > 0 OR "
            "json_array_length(definition, '$.alert') > 0) ORDER BY name LIMIT ?",
            (after, source, limit))
        return self._jobs(rows), (rows[-1][1] if len(rows) == limit else None)

    def jobs_of_agent(self, agent: str, limit: int) -> tuple[int, list[str]]:
        where = "FROM jobs WHERE agent_id = ? AND source <> ?"
        count = self._query(f"SELECT COUNT(*) {where}", (agent, ADHOC_SOURCE))[0][0]
        names = self._query(f"SELECT name {where} ORDER BY name LIMIT ?",
                            (agent, ADHOC_SOURCE, limit))
        return int(count), [row[0] for row in names]

    def name_in_use(self, name: str) -> bool:
        rows = self._query(
            "SELECT 1 FROM jobs WHERE name = ? AND source <> ? UNION ALL "
            "SELECT 1 FROM jobs WHERE agent_id = ? LIMIT 1", (name, ADHOC_SOURCE, name))
        return bool(rows)

    def unusual_job_names(self) -> list[str]:
        # Only the name index is read: a name of ASCII letters, digits, '.', '_' and '-'
        # that starts with a letter or digit, is short enough and holds a character
        # that is not a hex digit or '-' passes the name rule, and is left out here.
        rows = self._query(
            "SELECT name FROM jobs WHERE length(name) > ? "
            # a NUL ends a string for length() and GLOB, not for the bytes
            "OR length(CAST(name AS BLOB)) <> length(name) "
            "OR name GLOB '*[^A-Za-z0-9._-]*' OR name NOT GLOB '[A-Za-z0-9]*' "
            "OR (length(name) >= 8 AND name NOT GLOB '*[^0-9A-Fa-f-]*')", (NAME_MAX,))
        odd = [row[0] for row in rows]
        adhoc: set[str] = set()
        for lo in range(0, len(odd), _IN_CHUNK):
            chunk = odd[lo:lo + _IN_CHUNK]
            adhoc.update(row[0] for row in self._query(
                f"SELECT name FROM jobs WHERE source = ? AND name IN "
                f"({', '.join('?' * len(chunk))})", (ADHOC_SOURCE, *chunk)))
        return sorted(n for n in odd if n not in adhoc)

    def _update_row(self, conn: Any, new: Job, expect_version: int) -> bool:
        # last_run and the claimed spans belong to the loop: a definition change
        # never writes them (the spans never go down).
        old = conn.execute("SELECT at_ms FROM jobs WHERE id = ?", (new.id,)).fetchone()
        cur = conn.execute(
            "UPDATE jobs SET name = ?, agent_id = ?, cron_expr = ?, at_ms = ?, "
            "timezone = ?, status = ?, source = ?, definition = ?, next_run = ?, "
            "updated_at = ?, version = ? WHERE id = ? AND version = ?",
            (new.name, new.agent_id, new.cron_expr, new.at, new.timezone,
             new.status.value, new.source, json.dumps(new.definition(), sort_keys=True),
             new.next_run, new.updated_at, expect_version + 1, new.id, expect_version),
        )
        if cur.rowcount != 1:
            return False
        if old is not None and old[0] is not None and old[0] != new.at:
            # A one-shot re-armed at another time, or switched to cron: retries of its old
            # slot belong to a schedule it no longer has.
            conn.execute("UPDATE runs SET retry_at = NULL WHERE job_id = ? AND slot = ? "
                         "AND retry_at IS NOT NULL", (new.id, old[0]))
        return True

    def apply_changes(
        self, create: Sequence[Job], update: Sequence[Job], delete: Sequence[str],
        audit: Sequence[AuditEvent] = (), now: int = 0,
    ) -> None:
        try:
            with self._write() as conn:
                for job in create:
                    conn.execute(
                        f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({JOB_PLACEHOLDERS})",
                        job_params(job),
                    )
                for job in update:
                    if not self._update_row(conn, job, job.version):
                        raise Conflict(f"job {job.name} changed while it was being updated; "
                                       "try again")
                for job_id in delete:
                    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                insert_audit(conn, audit, now)
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"a job name is already taken: {exc}", field="name") from exc
            raise

    def modify_job(self, ref: str, change: Callable[[Job], Job], now: int,
                   act: Optional[Act] = None, *, clear_retries: bool = False) -> Job:
        try:
            with self._write() as conn:
                job = self._find(conn, ref)
                if job is None:
                    raise NotFound(f"no job with id or name {shorten(ref)!r}")
                wanted = change(job)
                if wanted is job:  # nothing to change: nothing written, nothing recorded
                    return job
                new = wanted.replace(
                    id=job.id, updated_at=now, last_run=job.last_run, claimed=job.claimed,
                    run_count=job.run_count, failure_count=job.failure_count,
                )
                if not self._update_row(conn, new, job.version):
                    raise Conflict(f"job {job.name} changed while it was being updated; "
                                   "try again")
                if clear_retries:
                    self._clear_retries(conn, job.id)
                record(conn, act, (new.id, new.name))
                return new.replace(version=job.version + 1)
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict("another job already has that name", field="name") from exc
            raise

    @staticmethod
    def _clear_retries(conn: Any, job_id: str) -> None:
        conn.execute("UPDATE runs SET retry_at = NULL WHERE job_id = ? AND retry_at IS NOT NULL",
                     (job_id,))

    def delete_job(self, ref: str, act: Optional[Act] = None) -> Job:
        with self._write() as conn:
            try:
                job = self._find(conn, ref)
            except UnreadableRow:  # it can still be deleted: by its id or name
                row = conn.execute("SELECT id, name, agent_id FROM jobs WHERE id = ? OR "
                                   "name = ?", (ref, ref)).fetchone()
                job = Job(id=row[0], name=row[1], agent_id=row[2], cron_expr="* * * * *")
            if job is None:
                raise NotFound(f"no job with id or name {shorten(ref)!r}")
            conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
            record(conn, act, (job.id, job.name))
            return job
