"""Durable state: jobs, their runs and the agent registry, in one SQLite file.

The package: :mod:`.base` (the interface and the commands the scheduler sends it),
:mod:`.plumbing` (connections per thread, transactions), :mod:`.sql` and
:mod:`.agents` (portable queries), :mod:`.schema` (DDL and migrations) and
:mod:`.sqlite` (the backend).

The scheduler and the API talk to :class:`JobStore`, a small interface whose SQL
(:class:`SqlJobStore`) is portable: placeholders, ``INSERT ... ON CONFLICT DO
NOTHING``, partial indexes and ``LIMIT/OFFSET`` work on SQLite and PostgreSQL
alike. A backend supplies connections, its DDL and how a write transaction
starts; :class:`SqliteJobStore` is the one shipped (WAL, ``busy_timeout``,
foreign keys, ``BEGIN IMMEDIATE``, ``synchronous=FULL``: a commit waits for the disk, save
the one write a power loss cannot make wrong, runs recorded ``running`` after their spawn,
see :meth:`SqlJobStore.mark_started`).

Invariants the schema enforces:

* ``UNIQUE(job_id, space, slot, attempt)`` on runs: a slot is claimed at most once per
  attempt, across crashes and restarts.
* A job row is only ever updated, never replaced: ``INSERT OR REPLACE`` would
  delete it first and cascade its run history away.
"""

from symbid.store.base import (
    API_SOURCE,
    Advance,
    Finish,
    Finished,
    JobStore,
    JobTotals,
    RetryClaim,
    StoredAgent,
)
from symbid.store.rows import job_params
from symbid.store.schema import SCHEMA_VERSION
from symbid.store.sql import SqlJobStore
from symbid.store.sqlite import SqliteJobStore

__all__ = ["API_SOURCE", "SCHEMA_VERSION", "Advance", "Finish", "Finished", "JobStore",
           "JobTotals",
           "RetryClaim", "SqlJobStore", "SqliteJobStore", "StoredAgent", "job_params"]
