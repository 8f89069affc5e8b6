"""The daemon as an installed service: its log file and `symbi logs`, `symbi backup` while it
runs, and runs executed as `[daemon] run_user` (a real daemon on a socket in a temp dir)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_helper import TOKEN, Daemon, add_job, final_run, start_run

WHOAMI = ("id -u; id -G; grep CapEff /proc/self/status; pwd; "
          'cat \\"$DB\\" >/dev/null 2>&1 && echo read-db || echo no-db')
AGENTS = f"""
agent echo {{ command: ["/bin/sh", "-c", "echo said-$SYMBI_RUN_ID"] }}
agent whoami {{ command: ["/bin/sh", "-c", "{WHOAMI}"], env: {{ DB: "DB_PATH" }} }}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"a.symbi": AGENTS.replace("DB_PATH", str(tmp_path / "state" /
                                                                    "symbid.db"))},
               daemon='log_file = "logs/symbid.json"')
    d.start()
    try:
        yield d
    finally:
        d.cleanup()


def test_the_log_file_holds_json_lines_that_symbi_logs_filters(daemon: Daemon) -> None:
    add_job(daemon, "greet", "echo", delivery=["stdout"])
    final_run(daemon, start_run(daemon, "greet"))
    add_job(daemon, "other", "echo", delivery=["stdout"])
    final_run(daemon, start_run(daemon, "other"))
    lines = [json.loads(x) for x in (daemon.root / "logs" / "symbid.json").read_text()
             .splitlines()]
    assert all({"time", "level", "component", "message"} <= set(e) for e in lines)
    assert {e["component"] for e in lines} >= {"scheduler", "delivery"}
    ours = daemon.cli("logs", "--job", "greet")
    assert ours.returncode == 0, ours.stderr
    assert "said-" in ours.stdout and "job=greet" in ours.stdout
    assert "job=other" not in ours.stdout
    delivery = daemon.cli("logs", "--filter", "delivery", "--job", "other")
    assert delivery.stdout and all(" delivery: " in x for x in delivery.stdout.splitlines())
    assert daemon.cli("logs", "--level", "error").stdout == ""
    assert daemon.cli("logs", "--since", "1h", "--lines", "1").stdout.count("\n") == 1
    assert daemon.cli("logs", "--since", "2999-01-01").stdout == ""
    direct = daemon.cli("logs", "--file", str(daemon.root / "logs" / "symbid.json"),
                        "--job", "greet")
    assert direct.stdout == ours.stdout


def test_symbi_logs_refuses_what_it_cannot_filter_by(daemon: Daemon) -> None:
    bad = daemon.cli("logs", "--filter", "kernel")
    assert bad.returncode == 2 and "kernel" in bad.stderr
    since = daemon.cli("logs", "--since", "last tuesday")
    assert since.returncode == 2 and "--since" in since.stderr
    assert daemon.cli("logs", "--lines", "0").returncode == 2


def test_a_backup_taken_while_the_daemon_runs_is_a_whole_database(daemon: Daemon,
                                                                   tmp_path: Path) -> None:
    add_job(daemon, "kept", "echo")
    run = final_run(daemon, start_run(daemon, "kept"))
    target = tmp_path / "copy.db"
    done = daemon.cli("backup", str(target))
    assert done.returncode == 0, done.stderr
    assert "bytes" in done.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT name FROM jobs WHERE name = 'kept'").fetchall()
        assert conn.execute("SELECT status FROM runs WHERE id = ?",
                            (run["id"],)).fetchone()[0] == "succeeded"
    assert not [p for p in (daemon.state).iterdir() if p.name.startswith(".backup-")]
    # a restored copy serves: the daemon started on it has the job and its run
    daemon.stop()
    for suffix in ("-wal", "-shm"):
        (daemon.state / f"symbid.db{suffix}").unlink(missing_ok=True)
    os.replace(target, daemon.state / "symbid.db")
    daemon.start()
    assert daemon.history("kept")[0]["id"] == run["id"]


def test_a_backup_into_a_directory_that_cannot_be_written_fails_cleanly(daemon: Daemon,
                                                                        tmp_path: Path) -> None:
    failed = daemon.cli("backup", str(tmp_path / "missing" / "copy.db"))
    assert failed.returncode != 0
    assert "missing" in failed.stderr and "Traceback" not in failed.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_runs_execute_as_run_user_without_capabilities_or_the_database(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    runs = Path(tempfile.mkdtemp(prefix="symbid-runs-"))  # pytest's tmp_path is 0700
    runs.chmod(0o711)
    d = Daemon(tmp_path, {"a.symbi": AGENTS.replace("DB_PATH", str(tmp_path / "state" /
                                                                    "symbid.db"))},
               daemon='run_user = "nobody"', runs=str(runs / "runs"))
    d.start()
    try:
        add_job(d, "who", "whoami", session_mode="shared_persistent")
        run = final_run(d, start_run(d, "who"))
        assert run["status"] == "succeeded", run
        uid, groups, caps, cwd, db = run["output"].split("\n")[:5]
        assert int(uid) == nobody.pw_uid
        assert groups.split() == [str(nobody.pw_gid)]
        assert caps.split()[1] == "0000000000000000"
        assert db == "no-db"
        assert not Path(cwd).exists()  # its directory went with it, though it was nobody's
        root = runs / "runs" / "users" / "nobody"  # nobody's root of the runs
        assert Path(cwd).parent == root
        state = root / "state"
        assert list(state.iterdir())
        for entry in state.iterdir():
            assert entry.stat().st_uid == nobody.pw_uid
            assert stat.S_IMODE(entry.stat().st_mode) == 0o700
    finally:
        d.cleanup()
        shutil.rmtree(runs, ignore_errors=True)


def test_an_unknown_run_user_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {}, daemon='run_user = "no-such-user-here"')
    d.start(wait=False)
    assert d.proc is not None
    assert d.proc.wait(timeout=30) == 1
    d.cleanup()
    log = d.log.read_text()
    assert "run_user" in log and "no-such-user-here" in log


def test_the_openapi_document_lists_the_backup_and_log_routes(daemon: Daemon) -> None:
    status, doc = daemon.api("GET", "/api/v1/openapi.json")
    assert status == 200
    assert "get" in doc["paths"]["/api/v1/backup"]
    assert "get" in doc["paths"]["/api/v1/logs/target"]
    status, target = daemon.api("GET", "/api/v1/logs/target")
    assert status == 200 and target["journal"] is False
    assert target["log_file"].endswith("logs/symbid.json")


def test_a_token_file_others_may_read_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {})
    (tmp_path / "token").chmod(0o644)
    d.start(wait=False)
    assert d.proc is not None
    assert d.proc.wait(timeout=30) == 1
    d.cleanup()
    log = d.log.read_text()
    assert "api.token_file" in log and "mode 0644" in log and TOKEN not in log
