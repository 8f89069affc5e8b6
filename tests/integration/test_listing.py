"""One job that cannot be shown never fails a listing: API, dialect and CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.integration.daemon_helper import Daemon

YEAR_10000 = 253_402_318_800_000 + 14_400_000  # 9999-12-31T23:00:00-05:00


def test_a_far_future_row_from_an_older_symbid_is_listed_and_can_be_deleted(
    tmp_path: Path,
) -> None:
    d = Daemon(tmp_path, {"agents.symbi": 'agent echo { command: ["/bin/echo"] }\n'})
    try:
        d.start()
        status, body = d.api("POST", "/api/v1/schedule", {
            "name": "far", "agent_id": "echo", "at": "9999-12-31T23:00:00-05:00"})
        assert status == 400 and body["error"]["field"] == "at"  # refused now
        for name in ("far", "fine"):
            assert d.api("POST", "/api/v1/schedule", {
                "name": name, "agent_id": "echo", "cron_expr": "0 * * * *"})[0] == 201
        d.stop()
        conn = sqlite3.connect(str(d.state / "symbid.db"))
        with conn:  # as an older symbid stored it
            conn.execute("UPDATE jobs SET cron_expr = NULL, at_ms = ?, next_run = ? "
                         "WHERE name = 'far'", (YEAR_10000, YEAR_10000))
        conn.close()
        d.start()
        status, body = d.api("GET", "/api/v1/schedule")
        assert status == 200 and [r["name"] for r in body] == ["far", "fine"]
        assert "error" in body[0]
        status, body = d.api("GET", "/symbiont/api/v1/schedules")
        assert status == 200 and [r["name"] for r in body] == ["fine"]
        listed = d.cli("cron", "list")
        assert listed.returncode == 0, listed.stderr
        assert "far" in listed.stdout and "fine" in listed.stdout
        assert "cannot be shown" in listed.stderr
        as_json = d.cli("cron", "list", "--format", "json")
        assert as_json.returncode == 0 and len(json.loads(as_json.stdout)) == 2
        assert d.api("DELETE", "/api/v1/schedule/far")[0] == 200
        assert d.api("GET", "/api/v1/health/scheduler")[1]["status"] == "healthy"
        assert "Traceback" not in d.log.read_text()
    finally:
        d.cleanup()
