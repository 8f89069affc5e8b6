"""`symbi backup`'s copy: SQLite's online backup while writers go on, one copy at a time,
refused before anything is written when the disk has no room for it."""

from __future__ import annotations

import dataclasses
import io
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbid.api import ApiContext, make_app
from symbid.errors import StorageFull
from symbid.store import SqliteJobStore
from tests import disks
from tests.harness import Harness


def _fill(path: Path, megabytes: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, blob BLOB)")
        conn.executemany("INSERT INTO filler (blob) VALUES (?)",
                         [(os.urandom(64 * 1024),) for _ in range(megabytes * 16)])


def test_a_backup_finishes_while_another_connection_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "symbid.db"
    store = SqliteJobStore(str(path))
    _fill(path, 12)  # well over one step of pages, were it copied in steps
    stop = threading.Event()
    writes = [0]

    def writer() -> None:
        with sqlite3.connect(path, timeout=10) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO filler (blob) VALUES (x'00')")
                conn.commit()
                writes[0] += 1

    busy = threading.Thread(target=writer, daemon=True)
    busy.start()
    copied: list[bytes] = []
    backup = threading.Thread(target=lambda: copied.append(store.backup(str(tmp_path)).read()),
                              daemon=True)
    try:
        backup.start()
        backup.join(60)
        assert not backup.is_alive(), "the backup restarts for ever under writes"
    finally:
        stop.set()
        busy.join(10)
    assert writes[0] > 0
    copy = tmp_path / "copy.db"
    copy.write_bytes(copied[0])
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM filler").fetchone()[0] >= 12 * 16
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".backup-")]
    store.close()


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A real 8 MiB file system (tmpfs), smaller than a copy plus its headroom."""
    with disks.small_disk("8m") as where:
        yield where


def test_a_backup_without_room_for_its_copy_is_refused_before_anything_is_written(
        tmp_path: Path, small_disk: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "symbid.db"))
    with pytest.raises(StorageFull, match=r"needs .* bytes free") as refused:
        store.backup(str(small_disk))
    assert (refused.value.code, refused.value.http_status) == ("storage_full", 507)
    assert os.listdir(small_disk) == []
    store.close()


class _Api:
    def __init__(self, ctx: ApiContext) -> None:
        self.app = make_app(ctx)

    def open(self, method: str) -> tuple[int, Any]:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": "/api/v1/backup",
                   "QUERY_STRING": "", "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(),
                   "REMOTE_USER": "uid:0"}
        got: list[str] = []
        body = self.app(environ, lambda status, headers: got.append(status))
        return int(got[0].split()[0]), body


def test_copies_are_made_one_at_a_time_across_listeners_and_head_takes_none(
        tmp_path: Path) -> None:
    ctx = dataclasses.replace(Harness(tmp_path).api_context(), backup_dir=str(tmp_path))
    socket_api, tcp_api = _Api(ctx), _Api(ctx)  # one app per listener, one context
    status, unsent = socket_api.open("GET")  # its client has not read it yet
    assert status == 200
    status, other = tcp_api.open("GET")  # a copy not yet sent holds back no other
    assert status == 200 and b"".join(other).startswith(b"SQLite format 3\x00")
    other.close()
    with ctx.backup_lock:  # a copy being made, through the other listener
        waiting: list[int] = []
        asker = threading.Thread(target=lambda: waiting.append(tcp_api.open("GET")[0]))
        asker.start()
        asker.join(0.5)
        assert asker.is_alive() and waiting == []  # it waits for that copy to be made
        status, head = tcp_api.open("HEAD")  # takes no copy: not held back
        assert status == 200 and b"".join(head) == b""
    asker.join(30)
    assert waiting == [200]
    assert b"".join(unsent).startswith(b"SQLite format 3\x00")
    unsent.close()
