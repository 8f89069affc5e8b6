"""`symbi logs`: what --since means, following a file the daemon is writing, and a daemon
on another machine (whose log is not here)."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from symbid.cli.common import UsageError
from symbid.cli.logs import _Lines, since_instant
from symbid.cli.main import main

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def berlin() -> object:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield None
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_a_since_date_or_time_without_an_offset_is_local_time_as_journalctl_takes_it(
        berlin: object) -> None:
    assert since_instant("2026-12-01", NOW) == datetime(2026, 11, 30, 23, 0,
                                                        tzinfo=timezone.utc)
    assert since_instant("2026-12-01 10:00", NOW) == datetime(2026, 12, 1, 9, 0,
                                                              tzinfo=timezone.utc)
    assert since_instant("2026-12-01T10:00:00Z", NOW) == datetime(2026, 12, 1, 10, 0,
                                                                  tzinfo=timezone.utc)
    assert since_instant("2026-12-01T10:00:00+02:00", NOW) == datetime(
        2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    assert since_instant("2h", NOW) == datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    with pytest.raises(UsageError, match="local time"):
        since_instant("last tuesday", NOW)


def test_a_line_still_being_written_is_read_whole_once_it_ends() -> None:
    entry = json.dumps({"message": "x" * 20000, "level": "info"})
    fh = io.StringIO()
    lines = _Lines(fh)
    fh.write(entry[:9000])  # the daemon's buffer holds the first part only
    fh.seek(0)
    assert list(lines.entries()) == []
    at = fh.tell()
    fh.seek(0, io.SEEK_END)
    fh.write(entry[9000:] + "\n")
    fh.seek(at)
    assert [e["message"] for e in lines.entries()] == ["x" * 20000]


@pytest.mark.parametrize(("url", "host"), [("http://192.0.2.7:8080", "192.0.2.7"),
                                           ("http://symbid.example:8080", "symbid.example")])
def test_logs_of_a_daemon_on_another_machine_are_refused_naming_it(
        url: str, host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("SYMBI_API_KEY", "t")
    assert main(["--url", url, "logs"]) == 2
    err = capsys.readouterr().err
    assert "on this machine" in err and host in err
