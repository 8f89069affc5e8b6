"""The SQLite schema, as forward-only migrations (``PRAGMA user_version`` = number applied)."""

from __future__ import annotations

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
)

SCHEMA_VERSION = len(SQLITE_MIGRATIONS)
