"""Sessions and heartbeats of command agents against a real daemon: the context file, the
summary file, the shared history and state directory (across a restart), the context going
with its job and being cleared, and heartbeat wake-ups that iterate until ``sleep``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_helper import Daemon, final_run, start_run
from tests.integration.daemon_helper import add_job as add

# Each agent prints its context file (one line of JSON) and then its own lines.
CAT = 'cat "$SYMBI_CONTEXT_FILE"; echo; '
SCRIPTS = {
    "show": CAT + "echo said-$SYMBI_JOB_NAME",
    "writer": CAT + "echo lots of output; printf 'my own summary' > \"$SYMBI_SUMMARY_FILE\"",
    "keeper": CAT + 'echo "state=$SYMBI_STATE_DIR"; echo x >> "$SYMBI_STATE_DIR/count"; '
                    'wc -l < "$SYMBI_STATE_DIR/count"',
    "bare": CAT + 'echo "state=${SYMBI_STATE_DIR:-none}"',
    "beat": '{ cat "$SYMBI_CONTEXT_FILE"; echo; } >> "$SYMBI_STATE_DIR/seen"; '
            'if [ "$SYMBI_ITERATION" -ge 3 ]; then echo sleep; '
            'else echo working $SYMBI_ITERATION; fi',
    "busy": CAT + "echo working $SYMBI_ITERATION",
    "slow": "sleep 0.2; echo working $SYMBI_ITERATION",
    "pids": 'echo $$ >> "$SYMBI_STATE_DIR/pids"; if [ "$SYMBI_ITERATION" -ge 2 ]; then '
            'sleep 30; echo sleep; else echo working; fi',
}
AGENTS = "".join(f"agent {name} {{ command: {json.dumps(['/bin/sh', '-c', script])} }}\n"
                 for name, script in SCRIPTS.items())


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def run_once(d: Daemon, name: str, **body: Any) -> dict[str, Any]:
    """A manual run of ``name``, once it is final."""
    return final_run(d, start_run(d, name, **body), timeout=20.0)


def seen(run: dict[str, Any]) -> dict[str, Any]:
    """The context the run's agent printed (its first line)."""
    return dict(json.loads(run["output"].splitlines()[0]))


def test_a_run_sees_the_previous_runs_summary_in_ephemeral_with_summary(
        daemon: Daemon) -> None:
    add(daemon, "eph", "show")
    first = run_once(daemon, "eph")
    assert first["status"] == "succeeded", first
    assert seen(first) == {"session_mode": "ephemeral_with_summary", "summary": None}
    assert first["summary"].endswith("said-eph")
    second = run_once(daemon, "eph")
    assert seen(second)["summary"] == first["summary"]
    assert "history" not in seen(second)


def test_a_summary_file_wins_over_the_output_tail(daemon: Daemon) -> None:
    add(daemon, "own", "writer")
    first = run_once(daemon, "own")
    assert first["summary"] == "my own summary"
    assert seen(run_once(daemon, "own"))["summary"] == "my own summary"


def test_shared_persistent_carries_history_and_state_across_runs_and_a_restart(
        daemon: Daemon) -> None:
    add(daemon, "shared", "keeper", session_mode="shared_persistent", input="hello")
    first = run_once(daemon, "shared")
    assert first["status"] == "succeeded", first
    assert seen(first)["history"] == []
    state = first["output"].splitlines()[1].split("=", 1)[1]
    assert state == os.path.join(str(daemon.root / "runs"), "state", first["job_id"])
    assert first["output"].splitlines()[-1].strip() == "1"
    second = run_once(daemon, "shared")
    history = seen(second)["history"]
    assert [(t["input"], t["output"], t["run_id"]) for t in history] == \
        [("hello", first["summary"], first["id"])]
    assert second["output"].splitlines()[-1].strip() == "2"
    daemon.stop()
    daemon.start()
    third = run_once(daemon, "shared")
    assert [t["run_id"] for t in seen(third)["history"]] == [first["id"], second["id"]]
    assert third["output"].splitlines()[-1].strip() == "3"
    status, ctx = daemon.api("GET", "/api/v1/schedule/shared/context")
    assert status == 200, ctx
    assert ctx["session_mode"] == "shared_persistent"
    assert [t["run_id"] for t in ctx["history"]] == [first["id"], second["id"], third["id"]]
    assert ctx["state_dir"] == state
    assert ctx["summary"] == third["summary"]


def test_fully_ephemeral_carries_nothing(daemon: Daemon) -> None:
    add(daemon, "nothing", "bare", session_mode="fully_ephemeral")
    run_once(daemon, "nothing")
    second = run_once(daemon, "nothing")
    assert seen(second) == {"session_mode": "fully_ephemeral", "summary": None}
    assert second["output"].splitlines()[1] == "state=none"
    assert second["summary"] is not None  # the run keeps its own summary


def test_a_context_and_its_state_directory_go_with_the_job(daemon: Daemon) -> None:
    job = add(daemon, "doomed", "keeper", session_mode="shared_persistent")
    run_once(daemon, "doomed")
    state = daemon.root / "runs" / "state" / job["id"]
    assert (state / "count").exists()
    status, _ = daemon.api("DELETE", "/api/v1/schedule/doomed")
    assert status in (200, 204)
    assert not state.exists()
    add(daemon, "doomed", "keeper", session_mode="shared_persistent")
    status, ctx = daemon.api("GET", "/api/v1/schedule/doomed/context")
    assert status == 200 and ctx["history"] == [] and ctx["summary"] is None


def test_cron_context_clear_resets_the_context_and_empties_the_state_directory(
        daemon: Daemon) -> None:
    job = add(daemon, "reset-me", "keeper", session_mode="shared_persistent")
    run_once(daemon, "reset-me")
    shown = daemon.cli("cron", "context", "reset-me")
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)["history"]) == 1
    cleared = daemon.cli("cron", "context", "reset-me", "--clear")
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["history"] == []
    assert os.listdir(daemon.root / "runs" / "state" / job["id"]) == []
    again = run_once(daemon, "reset-me")
    assert seen(again)["history"] == [] and seen(again)["summary"] is None
    assert again["output"].splitlines()[-1].strip() == "1"


def test_a_heartbeat_answering_working_working_sleep_runs_exactly_three_iterations(
        daemon: Daemon) -> None:
    add(daemon, "hb", "beat", session_mode="shared_persistent",
        heartbeat={"enabled": True, "context_mode": "ephemeral_with_summary",
                   "max_iterations": 10})
    run = run_once(daemon, "hb")
    assert run["status"] == "succeeded", run
    assert run["stop_reason"] == "sleep"
    assert [(i["number"], i["status"], i["summary"]) for i in run["iterations"]] == \
        [(1, "succeeded", "working 1"), (2, "succeeded", "working 2"), (3, "succeeded", "sleep")]
    assert run["output"].strip() == "sleep"
    seen_file = daemon.root / "runs" / "state" / run["job_id"] / "seen"
    contexts = [json.loads(line) for line in seen_file.read_text().splitlines() if line]
    # iteration 1 sees the wake-up's shared context; then context_mode carries the summary
    assert contexts[0]["session_mode"] == "shared_persistent"
    assert [c["summary"] for c in contexts[1:]] == ["working 1", "working 2"]


def test_a_heartbeat_that_never_sleeps_stops_at_max_iterations(daemon: Daemon) -> None:
    add(daemon, "restless", "busy",
        heartbeat={"enabled": True, "context_mode": "fully_ephemeral", "max_iterations": 4})
    run = run_once(daemon, "restless")
    assert run["status"] == "succeeded", run
    assert run["stop_reason"] == "max_iterations"
    assert [i["number"] for i in run["iterations"]] == [1, 2, 3, 4]
    assert seen(run) == {"session_mode": "fully_ephemeral", "summary": None}


def test_a_heartbeat_stops_when_max_runtime_for_the_whole_wakeup_runs_out(
        daemon: Daemon) -> None:
    add(daemon, "bounded", "slow", policy={"max_runtime": "2s"},
        heartbeat={"enabled": True, "context_mode": "ephemeral_with_summary",
                   "max_iterations": 100_000})
    run = run_once(daemon, "bounded")
    assert run["status"] == "timed_out", run
    assert run["stop_reason"] == "max_runtime"
    assert 1 <= len(run["iterations"]) < 100_000


def test_a_cancelled_heartbeat_starts_no_further_iteration(daemon: Daemon) -> None:
    add(daemon, "stopme", "slow",
        heartbeat={"enabled": True, "context_mode": "fully_ephemeral",
                   "max_iterations": 100_000})
    status, run = daemon.api("POST", "/api/v1/schedule/stopme/run")
    assert status == 202, run
    rid = run["id"]
    daemon.wait_for(lambda: daemon.api("GET", f"/api/v1/runs/{rid}")[1]["status"] == "running")
    status, _ = daemon.api("POST", f"/api/v1/runs/{rid}/cancel")
    assert status in (200, 202)

    def final() -> Any:
        _, r = daemon.api("GET", f"/api/v1/runs/{rid}")
        return r if r["status"] not in ("pending", "running") else None
    ended = daemon.wait_for(final)
    assert ended["status"] == "cancelled", ended
    assert ended["stop_reason"] == "cancelled"


def test_the_store_names_the_process_of_a_heartbeats_current_iteration(daemon: Daemon) -> None:
    import sqlite3

    add(daemon, "moving", "pids", session_mode="shared_persistent",
        heartbeat={"enabled": True, "context_mode": "shared_persistent", "max_iterations": 3})
    status, run = daemon.api("POST", "/api/v1/schedule/moving/run")
    assert status == 202, run
    _, ctx = daemon.api("GET", "/api/v1/schedule/moving/context")
    pids = Path(ctx["state_dir"]) / "pids"
    daemon.wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    second = int(pids.read_text().split()[1])

    def stored_pid() -> Any:
        conn = sqlite3.connect(str(daemon.state / "symbid.db"))
        try:
            row = conn.execute("SELECT pid, pgid, pid_start FROM runs WHERE id = ?",
                               (run["id"],)).fetchone()
        finally:
            conn.close()
        return row if row and row[0] == second else None

    _, pgid, ticks = daemon.wait_for(stored_pid)
    assert pgid == second and ticks is not None  # iteration 2 leads its own group
    # while it goes, its context (its state directory) cannot be cleared
    refused = daemon.cli("cron", "context", "moving", "--clear")
    assert refused.returncode != 0
    assert "has a run going" in refused.stderr and "symbi cron cancel" in refused.stderr
    assert pids.exists()
    assert daemon.api("POST", f"/api/v1/runs/{run['id']}/cancel")[0] in (200, 202)
