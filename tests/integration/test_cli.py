"""The operator's first hour: every CLI stumble of issue 9, against a real daemon."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_helper import BIN, TOKEN, Daemon, free_port

AGENTS = """
agent echo { command: ["/bin/sh", "-c", "echo started; cat"] }
agent slow { command: ["/bin/sh", "-c", "echo one; sleep 3; echo two"] }
agent hang { command: ["/bin/sh", "-c", "echo waiting; sleep 300 & wait"] }
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("cli"), {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def add(d: Daemon, name: str, agent: str = "echo", cron: str = "0 * * * *") -> str:
    out = d.cli("cron", "add", "--json", json.dumps(
        {"name": name, "agent_id": agent, "cron_expr": cron}))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def symbi(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SYMBI_")}
    environ.update(env or {}, NO_COLOR="1")
    return subprocess.run([str(BIN / "symbi"), *args], capture_output=True, text=True,
                          env=environ, timeout=60, check=False)


# --- 3. global options anywhere ----------------------------------------------------------


def test_global_options_work_before_and_after_the_command(daemon: Daemon) -> None:
    add(daemon, "globals")
    # paused: no "next in 19s" that ticks over between the three listings
    assert daemon.api("POST", "/api/v1/schedule/globals/pause")[0] == 200
    before = symbi("--socket", daemon.socket, "cron", "list")
    after = symbi("cron", "list", "--socket", daemon.socket)
    between = symbi("cron", "--socket", daemon.socket, "list")
    assert before.returncode == after.returncode == between.returncode == 0, before.stderr
    assert "globals" in before.stdout and before.stdout == after.stdout == between.stdout
    as_json = symbi("--format", "json", "--socket", daemon.socket, "cron", "list")
    assert any(j["name"] == "globals" for j in json.loads(as_json.stdout))
    assert symbi("--no-color", "--socket", daemon.socket, "health").returncode == 0


def test_version_prints_the_version() -> None:
    out = symbi("--version")
    assert out.returncode == 0 and out.stdout.startswith("symbi 0.")


def test_a_format_a_command_does_not_print_is_a_usage_error(daemon: Daemon) -> None:
    out = symbi("--format", "csv", "--socket", daemon.socket, "cron", "list")
    assert out.returncode == 2 and "--format csv: this command prints table or json" in out.stderr


def test_connection_options_on_a_command_that_needs_no_daemon_are_refused() -> None:
    out = symbi("--socket", "/tmp/x.sock", "cron", "next", "@daily")
    assert out.returncode == 2 and "--socket: this command needs no daemon" in out.stderr


# --- 8. errors that guide ----------------------------------------------------------------


def test_url_without_a_token_names_the_variable_and_the_flag(daemon: Daemon) -> None:
    url = f"http://127.0.0.1:{daemon.port}"
    out = symbi("--url", url, "cron", "list")
    assert out.returncode == 2
    assert "SYMBI_API_KEY" in out.stderr and "--token-file" in out.stderr
    token = daemon.root / "token"
    assert symbi("--url", url, "--token-file", str(token), "cron", "list").returncode == 0
    assert symbi("cron", "list", env={"SYMBI_URL": url, "SYMBI_API_KEY": TOKEN}).returncode == 0


def test_an_unknown_agent_lists_the_defined_ones_and_says_where_to_define_them(
    daemon: Daemon,
) -> None:
    out = daemon.cli("cron", "add", "--json", json.dumps(
        {"name": "lost", "agent_id": "agent-123", "cron_expr": "0 * * * *"}))
    assert out.returncode == 1
    assert "agent 'agent-123' is not defined" in out.stderr
    assert "defined agents: echo, hang, slow" in out.stderr and "symbi reload" in out.stderr


def test_an_api_error_says_which_field_it_is_about_when_its_message_does_not(
    daemon: Daemon,
) -> None:
    out = daemon.cli("cron", "add", "--json", json.dumps(
        {"name": "pigeon", "agent_id": "echo", "cron_expr": "0 * * * *",
         "alert": ["carrier-pigeon"]}))
    named = daemon.cli("cron", "add", "--json", json.dumps(
        {"name": "x", "agent_id": "echo", "cron_expr": "0 * * * *", "max_retries": -1}))

    assert out.returncode == 1 and out.stderr.rstrip().endswith("(field alert)"), out.stderr
    assert "carrier-pigeon" in out.stderr
    assert "max_retries" in named.stderr and "(field" not in named.stderr  # named already


# --- 5. update ---------------------------------------------------------------------------


def test_update_changes_the_schedule_and_settings_through_put(daemon: Daemon) -> None:
    add(daemon, "changing")
    out = daemon.cli("cron", "update", "changing", "--cron", "*/5 * * * *", "--tz",
                     "Europe/Berlin", "--input", "new input", "--max-concurrent", "2",
                     "--max-retries", "4", "--jitter", "30s")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("changing: updated (*/5 * * * * Europe/Berlin), next run ")
    job = json.loads(daemon.cli("cron", "status", "changing", "--format", "json").stdout)
    assert (job["cron_expr"], job["timezone"], job["input"], job["max_concurrent"],
            job["max_retries"], job["jitter_seconds"]) == (
        "*/5 * * * *", "Europe/Berlin", "new input", 2, 4, 30)
    patched = daemon.cli("cron", "update", "changing", "--json", '{"catch_up": "skip"}')
    assert patched.returncode == 0
    at = daemon.cli("cron", "update", "changing", "--at", "2099-01-01T00:00:00Z")
    assert at.returncode == 0 and "(at 2099-01-01T00:00:00Z" in at.stdout


def test_update_refuses_nothing_to_change_and_a_key_given_twice(daemon: Daemon) -> None:
    add(daemon, "twice")
    nothing = daemon.cli("cron", "update", "twice")
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    both = daemon.cli("cron", "update", "twice", "--cron", "@daily", "--json",
                      '{"cron_expr": "@hourly"}')
    assert both.returncode == 2 and "cron_expr is given both" in both.stderr
    bad = daemon.cli("cron", "update", "twice", "--cron", "61 * * * *")
    assert bad.returncode == 1 and "minute field '61'" in bad.stderr


# --- 6. columns ----------------------------------------------------------------------------


def test_a_paused_job_shows_no_upcoming_run(daemon: Daemon) -> None:
    add(daemon, "resting", cron="* * * * *")
    assert daemon.cli("cron", "pause", "resting").returncode == 0
    row = next(line for line in daemon.cli("cron", "list").stdout.splitlines()
               if line.startswith("resting "))
    cells = row.split()
    assert cells[1] == "paused" and cells[cells.index("UTC") + 1] == "-"
    status = daemon.cli("cron", "status", "resting").stdout
    assert "next run:  - (the job is paused)" in status


def test_last_shows_manual_runs_and_status_says_when(daemon: Daemon) -> None:
    add(daemon, "manual")
    for _ in range(2):
        assert daemon.cli("cron", "run", "manual", "--wait").returncode == 0
    status = daemon.cli("cron", "status", "manual").stdout
    assert "last run:  20" in status and ("ago)" in status or "(now)" in status)
    row = next(line for line in daemon.cli("cron", "list").stdout.splitlines()
               if line.startswith("manual "))
    assert " ago " in row or " now " in row


def test_far_off_times_are_dates(daemon: Daemon) -> None:
    add(daemon, "someday", cron="0 0 0 1 1 * 2090")
    row = next(line for line in daemon.cli("cron", "list").stdout.splitlines()
               if line.startswith("someday "))
    assert "2090-01-01" in row and "d " not in row.split("UTC", 1)[1]


def test_watch_shows_when_it_refreshed(daemon: Daemon) -> None:
    add(daemon, "watched")
    proc = subprocess.Popen([str(BIN / "symbi"), "cron", "status", "watched", "--watch",
                             "--interval", "0.2"], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, SYMBI_SOCKET=daemon.socket))
    time.sleep(1.0)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert out.count("refreshed ") >= 2 and "every 0.2s" in out


# --- 10. smaller ones ------------------------------------------------------------------------


def test_an_empty_history_says_so(daemon: Daemon) -> None:
    add(daemon, "fresh")
    assert daemon.cli("cron", "history", "fresh").stdout.strip() == "no runs yet"
    failed = daemon.cli("cron", "history", "fresh", "--status", "failed")
    assert failed.stdout.strip() == "no failed runs"
    assert json.loads(daemon.cli("cron", "history", "fresh", "--format", "json").stdout) == []


def test_history_output_shows_the_start_of_each_runs_output(daemon: Daemon) -> None:
    add(daemon, "talker")
    assert daemon.cli("cron", "run", "talker", "--input", "hello there", "--wait").returncode == 0
    out = daemon.cli("cron", "history", "talker", "--output").stdout
    assert "OUTPUT" in out.splitlines()[0] and "started" in out


def test_run_wait_with_a_timeout_stops_waiting_and_the_run_goes_on(daemon: Daemon) -> None:
    add(daemon, "slowpoke", agent="slow")
    started = time.monotonic()
    out = daemon.cli("cron", "run", "slowpoke", "--wait", "--timeout", "0.5")
    assert out.returncode == 1 and "is still running after 0.5s; it goes on" in out.stderr
    assert time.monotonic() - started < 3
    done = daemon.wait_for(lambda: json.loads(daemon.cli(
        "cron", "history", "slowpoke", "--format", "json").stdout)[0]["status"] == "succeeded")
    assert done
    usage = daemon.cli("cron", "run", "slowpoke", "--timeout", "1")
    assert usage.returncode == 2 and "--timeout goes with --wait" in usage.stderr


def test_every_flag_in_help_has_its_default() -> None:
    out = symbi("cron", "history", "--help").stdout
    assert "how many runs (default: 20)" in " ".join(out.split())
    assert "output format (default: table)" in " ".join(out.split())


def test_a_bad_listen_address_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    out = subprocess.run([str(BIN / "symbid"), "--state-dir", str(tmp_path / "s"), "--socket",
                          str(tmp_path / "c.sock"), "--listen", "127.0.0.1:abc"],
                         capture_output=True, text=True, timeout=30, check=False,
                         env=dict(os.environ, SYMBI_API_KEY="x" * 20))
    assert out.returncode != 0
    assert "give HOST:PORT with a port from 1 to 65535" in out.stderr
    assert "Traceback" not in out.stderr


# --- 11. shell completion ----------------------------------------------------------------------


def _bash_complete(daemon: Daemon, line: str) -> list[str]:
    words = line.split(" ")
    script = (f"source <({BIN}/symbi completion bash)\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              "_symbi; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = dict(os.environ, SYMBI_SOCKET=daemon.socket, PATH=f"{BIN}:{os.environ['PATH']}")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                         timeout=30, check=True)
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_commands_flags_choices_and_job_names(daemon: Daemon) -> None:
    add(daemon, "completed-by-name")
    assert _bash_complete(daemon, "symbi cr") == ["cron"]
    assert {"pause", "output", "cancel", "update"} <= set(_bash_complete(daemon, "symbi cron "))
    assert "--history" in _bash_complete(daemon, "symbi cron status --")
    assert _bash_complete(daemon, "symbi cron history x --status fa") == ["failed"]
    assert "completed-by-name" in _bash_complete(daemon, "symbi cron pause comp")
    assert _bash_complete(daemon, "symbi completion ") == ["bash", "zsh"]


def test_the_zsh_script_is_valid_zsh() -> None:
    script = symbi("completion", "zsh")
    assert script.returncode == 0 and script.stdout.startswith("#compdef symbi")
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed here; the bash completion is tested above")
    check = subprocess.run(["zsh", "-n"], input=script.stdout, text=True,
                           capture_output=True, check=False)
    assert check.returncode == 0, check.stderr


# --- 7. short ids ------------------------------------------------------------------------------


def test_every_command_takes_the_short_ids_the_tables_show(daemon: Daemon) -> None:
    job_id = add(daemon, "shorty")
    short = job_id[:8]
    row = next(line for line in daemon.cli("cron", "list").stdout.splitlines()
               if line.startswith("shorty "))
    assert row.split()[-1] == short
    assert daemon.cli("cron", "pause", short).stdout.strip() == "shorty: paused"
    assert daemon.cli("cron", "resume", short).returncode == 0
    status = json.loads(daemon.cli("cron", "status", short, "--format", "json").stdout)
    assert status["id"] == job_id
    run = daemon.cli("cron", "run", short, "--wait")
    assert run.returncode == 0, run.stderr
    history = daemon.cli("cron", "history", short).stdout.splitlines()
    run_short = history[1].split()[-1]
    assert daemon.cli("cron", "output", run_short).stdout == "started\n"
    assert daemon.cli("cron", "remove", short, "--force").returncode == 0


def test_a_short_id_that_matches_nothing_is_not_found(daemon: Daemon) -> None:
    out = daemon.cli("cron", "status", "abcdef12")
    assert out.returncode == 3 and "no job has the id, name or id prefix 'abcdef12'" in out.stderr
    assert daemon.cli("cron", "output", "abcdef12").returncode == 3


def test_an_ambiguous_prefix_lists_the_matches(tmp_path: Path) -> None:
    import sqlite3

    d = Daemon(tmp_path, {"agents.symbi": AGENTS}, tcp=False)
    try:
        d.start()
        for name in ("left", "right"):
            add(d, name)
        d.stop()
        conn = sqlite3.connect(str(d.state / "symbid.db"))
        with conn:  # ids that share their first 13 characters, as random ids rarely do
            conn.execute("UPDATE jobs SET id = 'abcdef12-3456-4000-8000-00000000000' || "
                         "CASE name WHEN 'left' THEN '1' ELSE '2' END")
        conn.close()
        d.start()
        out = d.cli("cron", "status", "abcdef12-345")
        assert out.returncode == 1
        assert "job id prefix 'abcdef12-345' matches 2 jobs" in out.stderr
        assert "abcdef12-3456-4000-8000-000000000001  left" in out.stderr
        assert "abcdef12-3456-4000-8000-000000000002  right" in out.stderr
        one = d.cli("cron", "status", "abcdef12-3456-4000-8000-000000000002", "--format",
                    "json")
        assert json.loads(one.stdout)["name"] == "right"
        status, body = d.api("GET", "/api/v1/schedule?id_prefix=abc")
        assert status == 400 and body["error"]["field"] == "id_prefix"
    finally:
        d.cleanup()


def test_the_api_itself_never_matches_a_prefix(daemon: Daemon) -> None:
    job_id = add(daemon, "exact-only")
    status, _ = daemon.api("DELETE", f"/api/v1/schedule/{job_id[:8]}")
    assert status == 404
    assert daemon.api("GET", f"/api/v1/schedule/{job_id}")[0] == 200


# --- 4. output -----------------------------------------------------------------------------


def test_output_prints_a_runs_output_and_follow_streams_it_while_it_runs(
    daemon: Daemon,
) -> None:
    add(daemon, "streamer", agent="slow")
    run_id = daemon.cli("cron", "run", "streamer").stdout.strip()
    follow = subprocess.Popen([str(BIN / "symbi"), "cron", "output", run_id[:8], "--follow"],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, SYMBI_SOCKET=daemon.socket))
    assert follow.stdout is not None
    first = follow.stdout.readline()
    assert first == "one\n"
    assert follow.wait(timeout=30) == 0
    assert follow.stdout.read() == "two\n"
    assert daemon.cli("cron", "output", run_id).stdout == "one\ntwo\n"


# --- 5. cancel -----------------------------------------------------------------------------


def test_cancel_stops_a_going_run_and_records_it_cancelled(daemon: Daemon) -> None:
    add(daemon, "stuck", agent="hang")
    run_id = daemon.cli("cron", "run", "stuck").stdout.strip()
    daemon.wait_for(lambda: json.loads(daemon.cli("cron", "history", "stuck", "--format",
                                                  "json").stdout)[0]["status"] == "running")
    out = daemon.cli("cron", "cancel", run_id[:8])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"run {run_id}: ")
    daemon.wait_for(lambda: json.loads(daemon.cli("cron", "history", "stuck", "--format",
                                                  "json").stdout)[0]["status"] == "cancelled")
    again = daemon.cli("cron", "cancel", run_id)
    assert again.returncode == 1 and "cancelled" in again.stderr


# --- 2. agents and cron add --file ------------------------------------------------------------


FILE = """
agent report-maker { command: ["/bin/sh", "-c", "echo report"] }
schedule { name: "daily-report" agent: "report-maker" cron: "0 9 * * *" }
schedule { name: "weekly-report" agent: "report-maker" cron: "0 9 * * 1" }
"""


def test_add_file_registers_the_files_agent_and_adds_its_schedules(
    daemon: Daemon, tmp_path: Path,
) -> None:
    path = tmp_path / "agent.symbi"
    path.write_text(FILE)
    one = daemon.cli("cron", "add", "--file", str(path), "--schedule", "daily-report")
    assert one.returncode == 0, one.stderr
    assert len(one.stdout.strip()) == 36 and "agent report-maker defined" in one.stderr
    listed = daemon.cli("agent", "list").stdout
    row = next(line for line in listed.splitlines() if line.startswith("report-maker "))
    assert "api" in row and " 1 " in row
    assert daemon.cli("cron", "run", "daily-report", "--wait").stdout.endswith("report\n")
    refused = daemon.cli("agent", "remove", "report-maker", "--force")
    assert refused.returncode == 1 and "daily-report" in refused.stderr
    assert daemon.cli("cron", "remove", "daily-report", "--force").returncode == 0
    assert daemon.cli("agent", "remove", "report-maker", "--force").returncode == 0


def test_add_file_without_schedule_adds_every_schedule_one_line_each(
    daemon: Daemon, tmp_path: Path,
) -> None:
    path = tmp_path / "all.symbi"
    path.write_text(FILE.replace("daily-report", "d-all").replace("weekly-report", "w-all"))
    out = daemon.cli("cron", "add", "--file", str(path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["d-all", "w-all"]


def test_add_file_whose_schedule_is_refused_leaves_no_agent_and_says_where(
    daemon: Daemon, tmp_path: Path,
) -> None:
    before = tmp_path / "before.symbi"
    before.write_text('agent kept { command: ["/bin/echo", "old"] }\n')
    assert daemon.cli("cron", "add", "--file", str(before)).returncode == 0
    path = tmp_path / "refused.symbi"
    path.write_text('agent fresh { command: ["/bin/true"] }\n'
                    'agent kept { command: ["/bin/echo", "new"] }\n'
                    'schedule { name: "ok-first" agent: "fresh" cron: "@daily" }\n'
                    'schedule {\n  name: "needs-slack"\n  agent: "fresh"\n'
                    '  cron: "@daily"\n  delivery: ["stdout", "slack"]\n}\n')

    out = daemon.cli("cron", "add", "--file", str(path))

    assert out.returncode == 1
    assert f"symbi: {path}:8:24: schedule 'needs-slack':" in out.stderr, out.stderr
    assert "(element [1] of the batch)" in out.stderr
    assert "no schedule was added" in out.stderr and "ok-first added" not in out.stderr
    assert "agent kept restored" in out.stderr and "agent fresh removed" in out.stderr
    names = {a["name"]: a for a in json.loads(daemon.cli("agent", "list", "--format",
                                                         "json").stdout)}
    assert "fresh" not in names and names["kept"]["command"] == ["/bin/echo", "old"]
    assert daemon.api("GET", "/api/v1/schedule/ok-first")[0] == 404


def test_an_agent_from_agents_dir_wins_and_add_file_says_so(
    daemon: Daemon, tmp_path: Path,
) -> None:
    path = tmp_path / "echo.symbi"
    path.write_text('agent echo { command: ["/bin/false"] }\n'
                    'schedule { name: "uses-file-echo" agent: "echo" cron: "@daily" }\n')
    out = daemon.cli("cron", "add", "--file", str(path))
    assert out.returncode == 0, out.stderr
    assert "agent echo:" in out.stderr and "using that one" in out.stderr
    assert daemon.cli("cron", "run", "uses-file-echo", "--wait").returncode == 0  # file's echo


def test_agent_list_as_json_shows_sources_and_job_counts(daemon: Daemon) -> None:
    agents = {a["name"]: a for a in json.loads(daemon.cli("agent", "list", "--format",
                                                          "json").stdout)}
    assert agents["echo"]["source"].startswith("file:") and agents["echo"]["jobs"] >= 1



def test_with_define_agents_off_add_file_says_the_agent_must_be_in_agents_dir(
    tmp_path: Path,
) -> None:
    d = Daemon(tmp_path / "d", {"agents.symbi": AGENTS}, tcp=False,
               config="\n[api]\ndefine_agents = false\n")
    try:
        d.start()
        new = tmp_path / "new.symbi"
        new.write_text('agent newcomer { command: ["/bin/true"] }\n'
                       'schedule { name: "n" agent: "newcomer" cron: "@daily" }\n')
        out = d.cli("cron", "add", "--file", str(new))
        assert out.returncode == 1
        assert "agent newcomer must be defined in agents_dir" in out.stderr
        known = tmp_path / "known.symbi"
        known.write_text('agent echo { command: ["/bin/true"] }\n'
                         'schedule { name: "k" agent: "echo" cron: "@daily" }\n')
        ok = d.cli("cron", "add", "--file", str(known))
        assert ok.returncode == 0, ok.stderr
        assert "defined in agents_dir; using that one" in ok.stderr
    finally:
        d.cleanup()


# --- review fixes ------------------------------------------------------------------------------


def test_add_file_adds_all_of_its_schedules_or_none(daemon: Daemon, tmp_path: Path) -> None:
    add(daemon, "taken-name")
    path = tmp_path / "three.symbi"
    path.write_text('agent trio { command: ["/bin/true"] }\n'
                    'schedule { name: "trio-a" agent: "trio" cron: "@daily" }\n'
                    'schedule { name: "taken-name" agent: "trio" cron: "@daily" }\n'
                    'schedule { name: "trio-c" agent: "trio" cron: "@daily" }\n')
    out = daemon.cli("cron", "add", "--file", str(path))
    assert out.returncode == 1
    assert "a job named taken-name already exists; nothing was added" in out.stderr
    names = {j["name"] for j in json.loads(daemon.cli("cron", "list", "--format",
                                                      "json").stdout)}
    assert not names & {"trio-a", "trio-c"}
    bad = tmp_path / "bad.symbi"  # refused by the daemon halfway: the first is taken back
    bad.write_text('agent trio { command: ["/bin/true"] }\n'
                   'schedule { name: "fine-1" agent: "trio" cron: "@daily" }\n'
                   'schedule { name: "orphan" agent: "nobody-defines-me" cron: "@daily" }\n')
    out = daemon.cli("cron", "add", "--file", str(bad))
    assert out.returncode == 1
    assert f"{bad}:3:34: schedule 'orphan':" in out.stderr, out.stderr
    assert "(element [1] of the batch)" in out.stderr and "no schedule was added" in out.stderr
    names = {j["name"] for j in json.loads(daemon.cli("cron", "list", "--format",
                                                      "json").stdout)}
    assert "fine-1" not in names
    again = daemon.cli("cron", "add", "--file", str(path).replace("three", "three"))
    assert "agent trio unchanged" in again.stderr or again.returncode == 1


def test_add_file_creates_many_schedules_in_one_batch(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "many.symbi"
    path.write_text('agent many { command: ["/bin/true"] }\n' + "".join(
        f'schedule {{ name: "many-{i:03d}" agent: "many" cron: "{i % 60} * * * *" }}\n'
        for i in range(300)))
    out = daemon.cli("cron", "add", "--file", str(path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 300 and lines[-1].split()[1] == "many-299"
    status, events = daemon.api("GET", "/api/v1/audit?type=CronJobCreated&job=many-150")
    assert status == 200 and len(events) == 1


def test_add_file_refusals_name_the_file_place_and_batch_index_of_each(
    daemon: Daemon, tmp_path: Path,
) -> None:
    path = tmp_path / "faulty.symbi"
    path.write_text('agent faulty { command: ["/bin/true"] }\n'
                    'schedule { name: "faulty-0" agent: "faulty" cron: "@daily" }\n'
                    'schedule { name: "faulty-1" agent: "no-such-agent" cron: "@daily" }\n'
                    'schedule { name: "faulty-2" agent: "faulty" cron: "@daily" }\n'
                    'schedule { name: "faulty-3" agent: "ghost" cron: "@daily" }\n')
    out = daemon.cli("cron", "add", "--file", str(path))
    assert out.returncode == 1
    assert f"{path}:3:" in out.stderr and "(element [1] of the batch)" in out.stderr
    assert f"{path}:5:" in out.stderr and "(element [3] of the batch)" in out.stderr
    assert "agent faulty removed" in out.stderr
    names = {j["name"] for j in json.loads(daemon.cli("cron", "list", "--format",
                                                      "json").stdout)}
    assert not any(n.startswith("faulty-") for n in names)


def test_add_json_takes_an_array_as_one_batch(daemon: Daemon) -> None:
    batch = [{"name": f"jb-{i}", "agent_id": "echo", "cron_expr": "@daily"} for i in range(3)]
    out = daemon.cli("cron", "add", "--json", json.dumps(batch))
    assert out.returncode == 0, out.stderr
    assert [line.split()[1] for line in out.stdout.splitlines()] == ["jb-0", "jb-1", "jb-2"]
    batch = [{"name": "jb-3", "agent_id": "echo", "cron_expr": "@daily"},
             {"name": "jb-4", "agent_id": "echo", "cron_expr": "never"}]
    out = daemon.cli("cron", "add", "--json", json.dumps(batch))
    assert out.returncode == 1 and "[1]" in out.stderr and "cron_expr" in out.stderr
    assert daemon.api("GET", "/api/v1/schedule/jb-3")[0] == 404


def test_a_job_given_both_as_argument_and_name_is_a_usage_error(daemon: Daemon) -> None:
    add(daemon, "both-ways")
    out = daemon.cli("cron", "status", "both-ways", "--name", "globals")
    assert out.returncode == 2 and "not both" in out.stderr


@pytest.mark.parametrize("args", [["cron", "status", "x", "--watch", "--interval", "-1"],
                                  ["cron", "run", "x", "--wait", "--timeout", "nan"],
                                  ["cron", "history", "x", "--limit", "0"],
                                  ["cron", "status", "x", "--history", "-1"]])
def test_bad_numbers_are_usage_errors_naming_the_flag(args: list[str]) -> None:
    out = symbi(*args)
    assert out.returncode == 2 and args[-2] in out.stderr and "Traceback" not in out.stderr


def test_a_malformed_url_is_a_usage_error_and_the_printed_url_works(daemon: Daemon) -> None:
    token = str(daemon.root / "token")
    bad = symbi("--url", "http://[::1", "--token-file", token, "cron", "list")
    assert bad.returncode == 2 and "is not a URL" in bad.stderr and "Traceback" not in bad.stderr
    printed = f"http://127.0.0.1:{daemon.port}/api/v1"  # as symbid and make run print it
    assert symbi("--url", printed, "--token-file", token, "cron", "list").returncode == 0


def test_a_prefix_too_short_says_how_long_a_short_id_must_be(daemon: Daemon) -> None:
    out = daemon.cli("cron", "status", "e1578")
    assert out.returncode == 3 and "a short id needs at least 8 characters" in out.stderr


def test_reload_warns_about_jobs_left_without_their_agent(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "d", {"agents.symbi": AGENTS,
                                "gone.symbi": 'agent going { command: ["/bin/true"] }\n'},
               tcp=False)
    try:
        d.start()
        add(d, "left-behind", agent="going")
        (d.agents_dir / "gone.symbi").unlink()
        out = d.cli("reload")
        assert out.returncode == 0
        assert "agents removed: going" in out.stdout
        assert "agent 'going' was removed from agents_dir, but 1 job(s) use it: left-behind" \
            in out.stderr
    finally:
        d.cleanup()


def test_reload_applies_keep_runs_and_says_a_restart_only_change_is_not_applied(
        tmp_path: Path) -> None:
    from tests.integration.daemon_helper import final_run, start_run

    d = Daemon(tmp_path / "d", {"agents.symbi": AGENTS}, tcp=False)
    try:
        d.start()
        add(d, "pruned")
        d.config.write_text(d.config.read_text().replace(
            "[scheduler]\n", "[scheduler]\nkeep_runs = 1\n").replace(
            '[daemon]\n', '[daemon]\nenvironment = "staging"\n'))
        out = d.cli("reload")
        assert out.returncode == 0, out.stderr
        assert "reloaded: changed [scheduler]; at the next start: [daemon]" in out.stdout
        assert "[daemon] changed: restart symbid to apply it" in out.stderr
        for _ in range(2):
            final_run(d, start_run(d, "pruned"))
        runs = json.loads(d.cli("cron", "history", "pruned", "--format", "json").stdout)
        assert len(runs) == 1  # keep_runs = 1 applied without a restart
    finally:
        d.cleanup()


def test_reload_under_make_run_does_not_call_the_listen_flag_a_change(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "d", {"agents.symbi": AGENTS}, tcp=False)
    try:
        d.start("--listen", f"127.0.0.1:{free_port()}", env={"SYMBI_API_KEY": TOKEN})
        out = d.cli("reload")
        assert out.returncode == 0 and "[api] changed" not in out.stderr, out.stderr
    finally:
        d.cleanup()
