"""`symbi cron next`: slots of an expression without a daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from symbid.cli import main


def test_next_prints_one_rfc3339_utc_instant_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cron", "next", "30 2 * * *", "--from", "2026-03-07T00:00:00Z",
                 "--count", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2026-03-07T02:30:00Z",
                                                     "2026-03-08T02:30:00Z"]


def test_next_with_a_zone_prints_the_local_time_beside_each_instant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["cron", "next", "30 2 * * *", "--tz", "America/New_York",
                 "--from", "2026-03-07T00:00:00Z", "--count", "3"])
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-03-07T07:30:00Z  2026-03-07 02:30:00 EST",
        "2026-03-08T07:00:00Z  2026-03-08 03:00:00 EDT",  # 02:30 is skipped: first after
        "2026-03-09T06:30:00Z  2026-03-09 02:30:00 EDT",
    ]


def test_next_reads_a_from_time_without_offset_in_the_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["cron", "next", "0 9 * * *", "--tz", "Europe/Berlin",
                 "--from", "2026-07-01T09:00:00", "--count", "1"]) == 0
    assert capsys.readouterr().out.strip() == "2026-07-02T07:00:00Z  2026-07-02 09:00:00 CEST"


def test_next_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cron", "next", "0 0 7 * * Mon-Fri", "--from", "2026-03-06T12:00:00Z",
                 "--count", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "cron_expr": "0 0 7 * * Mon-Fri",
        "timezone": "UTC",
        "from": "2026-03-06T12:00:00Z",
        "next_runs": ["2026-03-09T07:00:00Z", "2026-03-10T07:00:00Z"],
    }


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["0 0 31 2 *"], "can never fire"),
        (["61 * * * *"], "minute field '61'"),
        (["* * * * *", "--tz", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["* * * * *", "--from", "yesterday"], "not an ISO 8601 time"),
        (["* * * * *", "--count", "0"], "--count must be between 1 and 1000"),
    ],
)
def test_bad_input_exits_non_zero_with_the_reason(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cron", "next", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert fragment in captured.err


def test_a_usage_error_exits_two() -> None:
    assert main(["cron", "next"]) == 2
    assert main(["cron", "frobnicate"]) == 2


def test_the_installed_command_runs_without_a_daemon() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "symbi"), "cron", "next", "@daily",
         "--from", "2026-01-01T00:00:00Z", "--count", "1"],
        capture_output=True, text=True, check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "2026-01-02T00:00:00Z\n", "")


@pytest.mark.parametrize("limit", ["0", "-5", "1001", "abc"])
def test_an_audit_query_limit_out_of_its_range_is_a_usage_error(
        limit: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--limit", limit]) == 2  # refused before any request
    assert "--limit" in capsys.readouterr().err
