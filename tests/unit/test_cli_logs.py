"""`symbi logs`: what --since means, following a file the daemon is writing, and a daemon
on another machine (whose log is not here)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
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
    os.environ["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3"  # Berlin's rule, without tzdata
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


@pytest.mark.parametrize(("url", "host"), [("http://198.51.100.7:8080", "198.51.100.7"),
                                           ("http://symbid.example:8080", "symbid.example")])
def test_logs_of_a_daemon_on_another_machine_are_refused_naming_it(
        url: str, host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("SYMBI_API_KEY", "t")
    assert main(["--url", url, "logs"]) == 2
    err = capsys.readouterr().err
    assert "on this machine" in err and host in err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", socket.gethostname()])
def test_logs_of_a_daemon_on_this_machine_by_any_of_its_names_are_not_refused(
        host: str) -> None:
    from symbid.cli.logs import _remote_host

    assert _remote_host(f"http://{host}:1") is None


def test_a_last_line_without_its_newline_is_shown_when_not_following(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "symbid.json"
    log.write_text(json.dumps({"message": "first", "level": "info"}) + "\n"
                   + json.dumps({"message": "last", "level": "info"}))
    assert main(["logs", "--file", str(log)]) == 0
    assert [line.split(": ", 1)[1] for line in capsys.readouterr().out.splitlines()] == \
        ["first", "last"]


def test_following_across_a_rotation_shows_what_the_moved_file_got_last(
        tmp_path: Path) -> None:
    log = tmp_path / "symbid.json"
    log.write_text("")
    script = ("import sys\nfrom symbid.cli.main import main\nimport symbid.cli.logs as l\n"
              "l.FOLLOW_POLL = 0.05\nsys.exit(main(['logs', '--follow', '--file', "
              f"{str(log)!r}]))\n")
    follower = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                text=True, cwd=str(Path(__file__).resolve().parents[2]))
    try:
        def entry(text: str) -> str:
            return json.dumps({"message": text, "level": "info"}) + "\n"

        with open(log, "a") as fh:
            fh.write(entry("before"))
            fh.flush()
            assert follower.stdout is not None
            assert follower.stdout.readline().rstrip().endswith("before")
            os.rename(log, tmp_path / "symbid.json.1")  # logrotate's move
            fh.write(entry("into-the-moved-file"))  # the daemon's last line there
            fh.flush()
            (tmp_path / "symbid.json").write_text(entry("new-file"))
        seen = [follower.stdout.readline().rstrip().rsplit(": ", 1)[1] for _ in range(2)]
        assert seen == ["into-the-moved-file", "new-file"]
    finally:
        follower.kill()
        follower.wait()
