"""The SQLite schema, as forward-only migrations (``PRAGMA user_version`` = number applied)."""

from __future__ import annotations

import sqlite3

SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        agent_id TEXT NOT NULL,
        cron_expr TEXT,
        at_ms INTEGER,
        timezone TEXT NOT NULL,
        status TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT 'api',
        definition TEXT NOT NULL,
        next_run INTEGER,
        last_run INTEGER,
        run_count INTEGER NOT NULL DEFAULT 0,
        success_count INTEGER NOT NULL DEFAULT 0,
        failure_count INTEGER NOT NULL DEFAULT 0,
        total_execution_ms INTEGER NOT NULL DEFAULT 0,
        longest_execution_ms INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        CHECK ((cron_expr IS NULL) <> (at_ms IS NULL))
    );
    CREATE INDEX jobs_due ON jobs(status, next_run);
    CREATE INDEX jobs_agent ON jobs(agent_id);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        slot INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        trigger_kind TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        not_before INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        execution_time_ms INTEGER,
        exit_code INTEGER,
        signal INTEGER,
        error_message TEXT,
        output TEXT,
        output_truncated INTEGER NOT NULL DEFAULT 0,
        summary TEXT,
        input TEXT,
        retry_at INTEGER,
        pid INTEGER,
        pgid INTEGER,
        UNIQUE (job_id, slot, attempt)
    );
    CREATE INDEX runs_retry ON runs(retry_at) WHERE retry_at IS NOT NULL;
    CREATE INDEX runs_open ON runs(job_id)
        WHERE status IN ('awaiting_approval', 'pending', 'running');
    """,
    # 2 (issue 7): claimed spans and the high-water mark on jobs, whose last_run
    # becomes the start of the last run that ran; runs get a key space, so a
    # manual run can never take a scheduled slot's key. Runs claimed before this
    # had no spans: everything up to the old last claimed slot (or the latest scheduled
    # slot on record, if later) counts as claimed.
    """
    ALTER TABLE jobs ADD COLUMN claimed TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE jobs ADD COLUMN claimed_through INTEGER;
    UPDATE jobs SET claimed_through = NULLIF(MAX(COALESCE(last_run, -1), COALESCE(
        (SELECT MAX(r.slot) FROM runs r WHERE r.job_id = jobs.id
         AND r.trigger_kind <> 'manual'), -1)), -1);
    UPDATE jobs SET claimed = '[[0,' || claimed_through || ']]'
        WHERE claimed_through IS NOT NULL;
    UPDATE jobs SET last_run = (SELECT MAX(r.started_at) FROM runs r WHERE r.job_id = jobs.id);
    CREATE TABLE runs_v2 (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        space TEXT NOT NULL DEFAULT 'schedule',
        slot INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        trigger_kind TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        not_before INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        execution_time_ms INTEGER,
        exit_code INTEGER,
        signal INTEGER,
        error_message TEXT,
        output TEXT,
        output_truncated INTEGER NOT NULL DEFAULT 0,
        summary TEXT,
        input TEXT,
        retry_at INTEGER,
        pid INTEGER,
        pgid INTEGER,
        UNIQUE (job_id, space, slot, attempt)
    );
    INSERT INTO runs_v2 (id, job_id, space, slot, attempt, trigger_kind, status, created_at,
        not_before, started_at, finished_at, execution_time_ms, exit_code, signal,
        error_message, output, output_truncated, summary, input, retry_at, pid, pgid)
        SELECT id, job_id, CASE trigger_kind WHEN 'manual' THEN 'manual'
                                             WHEN 'heartbeat' THEN 'heartbeat'
                                             ELSE 'schedule' END,
               slot, attempt, trigger_kind, status, created_at, not_before, started_at,
               finished_at, execution_time_ms, exit_code, signal, error_message, output,
               output_truncated, summary, input, retry_at, pid, pgid FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_v2 RENAME TO runs;
    CREATE INDEX runs_retry ON runs(retry_at) WHERE retry_at IS NOT NULL;
    CREATE INDEX runs_open ON runs(job_id)
        WHERE status IN ('awaiting_approval', 'pending', 'running');
    CREATE INDEX runs_history ON runs(job_id, slot, attempt);
    """,
    # 3 (issue 8): the size of each run's output, so that listings carry a preview only.
    """
    ALTER TABLE runs ADD COLUMN output_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE runs SET output_bytes = length(CAST(output AS BLOB)) WHERE output IS NOT NULL;
    """,
    # 4 (issue 9): one registry of agents. A name has at most one row from agents_dir
    # files (origin 'file', source 'file:<path>') and one defined through the API
    # (origin 'api', source 'api'); when both exist the file's is used.
    """
    CREATE TABLE agents (
        name TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('file', 'api')),
        source TEXT NOT NULL,
        definition TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (name, origin),
        CHECK ((origin = 'api') = (source = 'api'))
    );
    """,
    # 5 (issue 10): session contexts, one per job, removed with it (cascade, in the
    # job's delete); a heartbeat wake-up's iterations and why it stopped, on its run.
    """
    CREATE TABLE contexts (
        job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        mode TEXT NOT NULL,
        summary TEXT,
        history TEXT NOT NULL DEFAULT '[]',
        dropped INTEGER NOT NULL DEFAULT 0,
        run_id TEXT,
        updated_at INTEGER NOT NULL
    );
    ALTER TABLE runs ADD COLUMN iterations TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE runs ADD COLUMN stop_reason TEXT;
    """,
    # 6 (issue 10): an llm run's token usage and tool calls; a context's generation,
    # which a clear bumps so that a run going during the clear does not undo it; the start
    # time (clock ticks since boot) of a run's current process, which with its pid names
    # that process for start-up recovery.
    """
    ALTER TABLE runs ADD COLUMN usage TEXT;
    ALTER TABLE runs ADD COLUMN tool_calls TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE contexts ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN pid_start INTEGER;
    """,
    # 7 (issue 11): the delivery outbox, one row per channel of a run that executed (or
    # per alert, its message in payload), written with the run's final state and taken
    # by the delivery workers; each job's alert state (cooldown, open for a "recovered",
    # the dead man's switch's start) and an index of the jobs that have one.
    """
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'output',
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        receipts TEXT NOT NULL DEFAULT '[]',
        created_at INTEGER NOT NULL,
        payload TEXT,
        UNIQUE (run_id, channel, kind)
    );
    CREATE INDEX deliveries_due ON deliveries(next_at) WHERE status = 'pending';
    CREATE INDEX deliveries_job ON deliveries(job_id);
    CREATE TABLE alert_state (
        job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        last_alert_at INTEGER,
        open INTEGER NOT NULL DEFAULT 0,
        suppressed INTEGER NOT NULL DEFAULT 0,
        watch_from INTEGER,
        last_event TEXT
    );
    CREATE INDEX jobs_dead_man ON jobs(json_extract(definition,
        '$.alert_if_no_success_within_seconds'))
        WHERE json_extract(definition, '$.alert_if_no_success_within_seconds') IS NOT NULL;
    """,
    # 8 (issue 11): each job's last success, kept with its counters, for the dead man's
    # switch: its runs' rows are pruned by retention, the time of its last success is not.
    """
    ALTER TABLE jobs ADD COLUMN last_success_at INTEGER;
    UPDATE jobs SET last_success_at = (SELECT MAX(r.finished_at) FROM runs r
        WHERE r.job_id = jobs.id AND r.status = 'succeeded');
    """,
    # 9 (issue 12): a run awaiting approval keeps its deadline (a wall-clock instant, so it
    # survives a restart) and, once decided, who approved it and what they said.
    """
    ALTER TABLE runs ADD COLUMN approval_deadline INTEGER;
    ALTER TABLE runs ADD COLUMN approved_by TEXT;
    ALTER TABLE runs ADD COLUMN approval_note TEXT;
    """,
    # 10 (issue 12): the audit trail; kept for [audit] retention_days, whatever becomes of
    # the jobs and runs it names (no foreign keys).
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        type TEXT NOT NULL,
        actor TEXT NOT NULL,
        job_id TEXT,
        job_name TEXT,
        run_id TEXT,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_type ON audit(type, at);
    CREATE INDEX audit_job ON audit(job_name, at);
    """,
    # 11 (issue 15): a reload of agents_dir reads the file jobs by this index, not every
    # job (an install may hold a million made through the API).
    """
    CREATE INDEX jobs_source ON jobs(source);
    """,
    # 12 (issue 15): the totals of health and STATUS= (jobs by status, ad hoc ones apart,
    # and their runs' counters) kept by triggers, so that they are read in a few rows
    # however many jobs there are; the longest run and the start-up's look for claims
    # ahead of the clock are read through an index.
    """
    CREATE TABLE job_totals (
        status TEXT NOT NULL,
        adhoc INTEGER NOT NULL,
        jobs INTEGER NOT NULL,
        runs INTEGER NOT NULL,
        succeeded INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        execution_ms INTEGER NOT NULL,
        PRIMARY KEY (status, adhoc)
    ) WITHOUT ROWID;
    INSERT INTO job_totals SELECT status, source = 'adhoc', COUNT(*), SUM(run_count),
        SUM(success_count), SUM(failure_count), SUM(total_execution_ms)
        FROM jobs GROUP BY status, source = 'adhoc';
    CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_totals VALUES (NEW.status, NEW.source = 'adhoc', 1, NEW.run_count,
            NEW.success_count, NEW.failure_count, NEW.total_execution_ms)
        ON CONFLICT (status, adhoc) DO UPDATE SET jobs = jobs + 1,
            runs = runs + excluded.runs, succeeded = succeeded + excluded.succeeded,
            failed = failed + excluded.failed,
            execution_ms = execution_ms + excluded.execution_ms;
    END;
    CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_totals SET jobs = jobs - 1, runs = runs - OLD.run_count,
            succeeded = succeeded - OLD.success_count, failed = failed - OLD.failure_count,
            execution_ms = execution_ms - OLD.total_execution_ms
        WHERE status = OLD.status AND adhoc = (OLD.source = 'adhoc');
    END;
    CREATE TRIGGER job_totals_update AFTER UPDATE OF status, source, run_count,
        success_count, failure_count, total_execution_ms ON jobs
        WHEN OLD.status IS NOT NEW.status OR OLD.source IS NOT NEW.source
            OR OLD.run_count IS NOT NEW.run_count OR OLD.success_count IS NOT NEW.success_count
            OR OLD.failure_count IS NOT NEW.failure_count
            OR OLD.total_execution_ms IS NOT NEW.total_execution_ms
    BEGIN
        UPDATE job_totals SET jobs = jobs - 1, runs = runs - OLD.run_count,
            succeeded = succeeded - OLD.success_count, failed = failed - OLD.failure_count,
            execution_ms = execution_ms - OLD.total_execution_ms
        WHERE status = OLD.status AND adhoc = (OLD.source = 'adhoc');
        INSERT INTO job_totals VALUES (NEW.status, NEW.source = 'adhoc', 1, NEW.run_count,
            NEW.success_count, NEW.failure_count, NEW.total_execution_ms)
        ON CONFLICT (status, adhoc) DO UPDATE SET jobs = jobs + 1,
            runs = runs + excluded.runs, succeeded = succeeded + excluded.succeeded,
            failed = failed + excluded.failed,
            execution_ms = execution_ms + excluded.execution_ms;
    END;
    CREATE INDEX jobs_longest ON jobs(longest_execution_ms);
    CREATE INDEX jobs_high_water ON jobs(MAX(COALESCE(claimed_through, 0), created_at))
        WHERE cron_expr IS NOT NULL;
    """,
)

SCHEMA_VERSION = len(SQLITE_MIGRATIONS)


def statements(script: str) -> list[str]:
    """The SQL statements of a migration, in order (a trigger's body holds ';' too)."""
    out: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip())
    return out
