"""Connections per thread and transactions over DB-API; a backend fills in the hooks.

Parameters are written in the qmark style (``?``); a backend whose driver wants another
style translates them in the connection it returns from ``_connect``.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Optional

from symbid.errors import StorageFull

log = logging.getLogger(__name__)


class SqlPlumbing(abc.ABC):
    """A DB-API connection per thread, write transactions, queries. Backends fill in the
    hooks."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all_conns: list[Any] = []
        self._conns_lock = threading.Lock()
        # set by a write refused for want of room, cleared by the next write that commits
        self._full: Optional[str] = None

    # --- backend hooks ---------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self) -> Any: ...

    @abc.abstractmethod
    def _begin_write(self, conn: Any) -> None: ...

    def _is_unique_violation(self, exc: Exception) -> bool:
        return False

    @abc.abstractmethod
    def _touch(self, conn: Any) -> None:
        """A write that changes nothing but is a real write (room on disk for a page)."""

    @abc.abstractmethod
    def _set_durable(self, conn: Any, durable: bool) -> None:
        """Whether the next commits on ``conn`` wait for the disk (see :meth:`_write`)."""

    # --- plumbing --------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    def storage_full(self) -> Optional[str]:
        return self._full

    def recheck_room(self) -> Optional[str]:
        if self._full is None:
            return None
        try:
            with self._write() as conn:
                self._touch(conn)
        except Exception:  # still no room (remembered again), or another failure
            log.debug("the database still takes no writes", exc_info=True)
        return self._full

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[Any]:
        """One write transaction. Its commit waits for the disk unless ``durable`` is
        False: then it survives the daemon's own crash (it is in the file, in the kernel's
        hands) and reaches the disk with the next durable commit, but a power loss before
        that may drop it. Only for what a power loss cannot make wrong (see
        :meth:`SqlJobStore.mark_started`)."""
        conn = self._conn()
        try:
            if not durable:
                self._set_durable(conn, False)
            self._begin_write(conn)
        except Exception as exc:
            if not durable:
                self._set_durable(conn, True)
            raise self._failed(exc) from exc
        try:
            yield conn
        except BaseException as exc:
            self._rollback(conn)
            if not durable:
                self._set_durable(conn, True)
            if isinstance(exc, Exception) and not self._is_unique_violation(exc):
                raise self._failed(exc) from exc
            raise
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            self._rollback(conn)
            raise self._failed(exc) from exc
        finally:
            if not durable:
                self._set_durable(conn, True)
        if self._full is not None:
            log.info("the database takes writes again: the disk has room")
            self._full = None

    def _failed(self, exc: Exception) -> Exception:
        """A write's failure as the error to raise; one for want of room is remembered
        (:meth:`storage_full`) until a write commits."""
        wrapped = self._wrap(exc)
        if isinstance(wrapped, StorageFull):
            if self._full is None:
                log.error("%s", wrapped.message)
            self._full = wrapped.message
        return wrapped

    @staticmethod
    def _rollback(conn: Any) -> None:
        try:
            conn.execute("ROLLBACK")
        except Exception:
            log.debug("rollback after a failed transaction failed", exc_info=True)

    def _wrap(self, exc: Exception) -> Exception:
        """Database-level failures (locked, disk full, I/O) become StoreError."""
        return exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(self._conn().execute(sql, tuple(params)).fetchall())
        except Exception as exc:
            raise self._wrap(exc) from exc

    def close(self) -> None:
        """Close every thread's connection (the threads that used them are done)."""
        with self._conns_lock:
            for conn in self._all_conns:
                try:
                    conn.close()
                except Exception:
                    log.debug("closing a store connection failed", exc_info=True)
            self._all_conns.clear()
        self._local = threading.local()
