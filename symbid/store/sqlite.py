"""The SQLite backend: one file, WAL, ``busy_timeout``, foreign keys, ``BEGIN IMMEDIATE``,
``synchronous=FULL``."""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from typing import Any, BinaryIO

from symbid.errors import SchemaTooNew, StorageFull, StoreError, is_disk_full
from symbid.store.schema import SCHEMA_VERSION, SQLITE_MIGRATIONS, statements
from symbid.store.sql import SqlJobStore

log = logging.getLogger(__name__)

BACKUP_HEADROOM = 16 * 1024 * 1024  # bytes left free beside a backup's copy


class SqliteJobStore(SqlJobStore):
    """The store in one SQLite file (WAL)."""

    def __init__(self, path: str, keep_runs: int = 1000, busy_timeout_ms: int = 10_000) -> None:
        super().__init__(keep_runs)
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=self._busy_timeout_ms / 1000,
                # Each thread has its own connection (SqlJobStore._conn); only close()
                # touches another thread's, once that thread is done with it.
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        return conn

    def backup(self, directory: str) -> BinaryIO:
        """SQLite's online backup into a private file in ``directory``, unlinked once
        open. One step: under WAL it holds a read snapshot only, so writers go on, and a
        write between steps cannot restart it. Refused (:class:`StorageFull`) unless the
        copy fits with BACKUP_HEADROOM to spare, so that the live database can still grow."""
        conn = self._conn()
        try:
            pages, page_size = (conn.execute("PRAGMA page_count").fetchone()[0],
                                conn.execute("PRAGMA page_size").fetchone()[0])
            fs = os.statvfs(directory)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot back up {self.path} into {directory}: {exc}") from exc
        need, free = pages * page_size + BACKUP_HEADROOM, fs.f_bavail * fs.f_frsize
        if free < need:
            raise StorageFull(f"no room for a backup of {self.path} in {directory}: it "
                              f"needs {need} bytes free (the database and "
                              f"{BACKUP_HEADROOM} to spare), {free} are; free some space")
        fd, path = tempfile.mkstemp(prefix=".backup-", suffix=".db", dir=directory)
        try:
            target = sqlite3.connect(path)
            try:
                conn.backup(target, pages=-1)
            finally:
                target.close()
            return os.fdopen(os.dup(fd), "rb")
        except (sqlite3.Error, OSError) as exc:
            if is_disk_full(exc):
                raise StorageFull(f"the disk filled up during a backup of {self.path} into "
                                  f"{directory}: {exc}; free some space") from exc
            raise StoreError(f"cannot back up {self.path} into {directory}: {exc}; check "
                             "the free space there") from exc
        finally:
            os.close(fd)
            os.unlink(path)

    def _begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _touch(self, conn: Any) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute(f"PRAGMA user_version = {version}")  # page 1 written again

    def _set_durable(self, conn: Any, durable: bool) -> None:
        # In WAL mode NORMAL commits without an fsync; the next FULL commit's fsync of the
        # WAL takes the earlier frames to the disk with it.
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")

    def _is_unique_violation(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def _wrap(self, exc: Exception) -> Exception:
        if is_disk_full(exc):
            directory = os.path.dirname(os.path.abspath(self.path))
            return StorageFull(f"storage full: the disk holding {directory} has no room "
                               f"({exc}); nothing was written. Free some space there: "
                               "symbid retries and recovers by itself")
        if isinstance(exc, sqlite3.OperationalError):
            return StoreError(f"database {self.path}: {exc}; symbid retries, but check the "
                              "disk and whether another process holds the database")
        return exc

    def _migrate(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError(f"state directory {directory} does not exist; create it or "
                             "point --state-dir elsewhere")
        if not os.access(directory, os.W_OK):
            raise StoreError(
                f"state directory {directory} is not writable by uid {os.getuid()}; "
                "fix its owner or point --state-dir elsewhere"
            )
        try:
            self._migrate_open()
        except BaseException:
            self.close()
            raise

    def _migrate_open(self) -> None:
        conn = self._conn()
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a symbid database: {exc}") from exc
        if str(mode).lower() != "wal":
            log.warning("%s: journal_mode is %s, not WAL", self.path, mode)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema version {version}, newer than this symbid knows "
                f"({SCHEMA_VERSION}); upgrade symbid or use another state directory"
            )
        for number in range(version, SCHEMA_VERSION):
            self._begin_write(conn)
            try:
                for statement in statements(SQLITE_MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            log.info("%s: migrated schema to version %d", self.path, number + 1)
