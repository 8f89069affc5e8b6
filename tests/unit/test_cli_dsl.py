"""`symbi dsl check` and `symbi dsl show`: validating and inspecting .symbi files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from symbid.cli import main
from symbid.clock import SystemClock
from symbid.timing import parse_instant

SEED_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "seed"
SEED_FILES = sorted(SEED_DIR.glob("*.symbi"))
STATE_KEYS = {"id", "status", "next_run", "last_run", "run_count", "failure_count",
              "created_at", "updated_at"}
BROKEN = 'schedule s {\n  agent: "a"\n  cron: "* * * * *"\n  max_concurent: 2\n}\n'


@pytest.fixture
def before_the_one_shot(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pin the CLI's clock before deployment-check's at time (2026-02-15T14:30:00Z)."""
    now = parse_instant("2026-01-01T00:00:00Z")
    monkeypatch.setattr(SystemClock, "now", lambda self: now)
    return now


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- dsl check -----------------------------------------------------------------------------------


def test_check_on_every_seed_fixture_exits_zero_with_one_summary_line_per_file(
    capsys: pytest.CaptureFixture[str], before_the_one_shot: int
) -> None:
    paths = [str(p) for p in SEED_FILES]
    assert main(["dsl", "check", *paths]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = []
    for path in paths:
        if path.endswith("heartbeat-monitor.symbi"):
            expected.append(f"{path}: ok: 1 agent(s), 1 schedule(s)")
        elif path.endswith("production-deploy.symbi"):  # and approval without approvers
            expected.append(f"{path}: ok: 0 agent(s), 1 schedule(s), 3 warning(s)")
        else:  # the agent it names is defined in none of the files: a warning here
            expected.append(f"{path}: ok: 0 agent(s), 1 schedule(s), 1 warning(s)")
    assert out == expected


def test_check_warns_on_stderr_about_agents_no_given_file_defines(
    capsys: pytest.CaptureFixture[str], before_the_one_shot: int
) -> None:
    path = str(SEED_DIR / "backup.symbi")
    assert main(["dsl", "check", path]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:3:10: warning: schedule 'backup' uses agent 'backup-agent', which no file "
        "defines",
        '      agent: "backup-agent"',
        "             ^",
    ]


def test_check_warns_when_a_one_shot_time_has_passed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SystemClock, "now", lambda self: parse_instant("2026-03-01T00:00:00Z"))
    path = str(SEED_DIR / "deployment-check.symbi")
    assert main(["dsl", "check", path]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{path}: ok: 0 agent(s), 1 schedule(s), 2 warning(s)\n"
    assert f"{path}:4:7: warning: schedule deployment-check: at time" in captured.err


def test_check_on_the_seed_fixtures_really_uses_the_clock(
    capsys: pytest.CaptureFixture[str], before_the_one_shot: int
) -> None:
    path = str(SEED_DIR / "deployment-check.symbi")
    assert main(["dsl", "check", path]) == 0
    assert "has passed" not in capsys.readouterr().err


SLACKY = ('schedule fine {\n  agent: "a"\n  cron: "@daily"\n  delivery: ["stdout", "slack"]\n}\n'
          'schedule broken {\n  agent: "a"\n  cron: "@daily"\n  max_concurent: 2\n}\n')


def test_check_with_config_checks_channels_against_its_settings_with_every_other_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "slacky.symbi", SLACKY)
    bare = write(tmp_path, "symbid.toml", "[scheduler]\n")
    served = write(tmp_path, "served.toml",
                   '[scheduler.delivery]\nslack_webhook_url = "https://hooks.example/x"\n')

    assert main(["dsl", "check", "--config", bare, path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4:24: schedule 'fine': delivery 'slack' needs" in err  # both at once
    assert f"{path}:9:3: unknown key 'max_concurent'" in err

    assert main(["dsl", "check", "--config", served, path]) == 1
    err = capsys.readouterr().err
    assert "needs" not in err and "max_concurent" in err


@pytest.mark.parametrize(("text", "where", "said"), [
    # the message names slack_channel, which the file does not have: at the channel
    ('schedule s {\n  agent: "a"\n  cron: "@daily"\n  delivery: ["stdout", "slack"]\n}\n',
     "4:24", "delivery 'slack' needs the job's slack_channel"),
    # a schedule named like another channel: the element is the one at fault
    ('schedule stdout {\n  agent: "a"\n  cron: "@daily"\n  delivery: ["stdout", "slack"]\n}\n',
     "4:24", "needs"),
    # in alert, the message says alert; a custom channel is found by its quoted name
    ('schedule s {\n  agent: "a"\n  cron: "@daily"\n  alert: ["stdout", "slack"]\n}\n',
     "4:21", "alert 'slack' needs"),
    ('schedule s {\n  agent: "a"\n  cron: "@daily"\n  delivery: ["stdout", "custom:x"]\n}\n',
     "4:24", "channel 'custom:x' is not defined"),
])
def test_check_with_config_puts_a_settings_problem_at_the_channel_at_fault(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str,
        said: str) -> None:
    path = write(tmp_path, "t.symbi", text)
    config = write(tmp_path, "tok.toml", '[scheduler.delivery]\nslack_api_token = "${T}"\n')
    assert main(["dsl", "check", "--config", config, path]) == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"{path}:{where}: schedule "), first
    assert said in first


def test_check_without_config_says_it_did_not_check_channels_that_need_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "slacky.symbi", SLACKY.split("schedule broken", maxsplit=1)[0])
    plain = write(tmp_path, "plain.symbi", 'schedule p { agent: "a", cron: "@daily", '
                                           'delivery: ["stdout", "log_file"] }\n')

    assert main(["dsl", "check", path]) == 0
    assert "note: channels that need settings" in capsys.readouterr().err
    assert main(["dsl", "check", plain]) == 0
    assert "note:" not in capsys.readouterr().err


def test_check_without_config_still_refuses_a_log_file_the_job_name_cannot_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "own.symbi", 'schedule symbid {\n  agent: "a"\n  cron: "@daily"\n'
                                        '  delivery: ["stdout", "log_file"]\n}\n')
    assert main(["dsl", "check", path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4:13: schedule 'symbid':" in err and "symbid.log" in err


def test_check_with_a_bad_config_names_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "slacky.symbi", SLACKY)
    bad = write(tmp_path, "bad.toml", "[scheduler.delivery]\nwebhook_timeout_seconds = -1\n")
    assert main(["dsl", "check", "--config", bad, path]) == 1
    assert "scheduler.delivery.webhook_timeout_seconds" in capsys.readouterr().err


def test_check_on_a_broken_file_exits_one_with_a_located_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "broken.symbi", BROKEN)
    assert main(["dsl", "check", path]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{path}: 1 error(s)\n"
    assert captured.err.splitlines() == [
        f"{path}:4:3: unknown key 'max_concurent'; did you mean 'max_concurrent'?",
        "      max_concurent: 2",
        "      ^",
    ]


def test_check_reports_a_syntax_error_with_its_caret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "syntax.symbi", 'schedule s {\n  agent "a"\n}\n')
    assert main(["dsl", "check", path]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}:2:9: unexpected string")
    assert err[1] == '      agent "a"'
    assert err[2] == "    " + " " * 8 + "^"


def test_check_reports_every_error_of_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "two.symbi", BROKEN + BROKEN.replace("schedule s", "schedule t")
                 .replace("max_concurent", "max_retires"))
    assert main(["dsl", "check", path]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{path}: 2 error(s)\n"
    assert f"{path}:4:3: unknown key 'max_concurent'" in captured.err
    assert f"{path}:9:3: unknown key 'max_retires'" in captured.err


def test_check_on_good_and_broken_files_still_summarises_the_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before_the_one_shot: int
) -> None:
    good = str(SEED_DIR / "heartbeat-monitor.symbi")
    broken = write(tmp_path, "broken.symbi", BROKEN)
    also_good = str(SEED_DIR / "production-deploy.symbi")
    assert main(["dsl", "check", good, broken, also_good]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{good}: ok: 1 agent(s), 1 schedule(s)",
        f"{broken}: 1 error(s)",
        f"{also_good}: ok: 0 agent(s), 1 schedule(s), 3 warning(s)",
    ]
    assert f"{broken}:4:3: unknown key" in captured.err


def test_check_accepts_an_agent_defined_in_another_given_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agents = write(tmp_path, "agents.symbi", 'agent reporter { command: ["/bin/report"] }\n')
    jobs = write(tmp_path, "jobs.symbi", 'schedule daily { agent: reporter, cron: "0 9 * * *" }\n')
    assert main(["dsl", "check", agents, jobs]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{agents}: ok: 1 agent(s), 0 schedule(s)",
                                         f"{jobs}: ok: 0 agent(s), 1 schedule(s)"]
    assert captured.err == ""


def test_check_rejects_a_schedule_name_used_in_two_given_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'agent w { command: [x] }\nschedule same { agent: w, cron: "* * * * *" }\n'
    first = write(tmp_path, "a.symbi", text)
    second = write(tmp_path, "b.symbi", text.replace("agent w", "agent v").replace(": w", ": v"))
    assert main(["dsl", "check", first, second]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{first}: ok: 1 agent(s), 1 schedule(s)",
                                         f"{second}: 1 error(s)"]
    assert f"{second}:2:10: schedule 'same' is also defined in {first}" in captured.err


def test_check_on_a_missing_file_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.symbi")
    assert main(["dsl", "check", missing]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{missing}: 1 error(s)\n"
    assert f"{missing}:1:1: cannot read: No such file or directory" in captured.err


def test_check_needs_at_least_one_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dsl", "check"]) == 2
    assert main(["dsl"]) == 2
    assert capsys.readouterr().out == ""


# --- dsl show ------------------------------------------------------------------------------------


def show_json(path: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["dsl", "show", path, "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    data = json.loads(captured.out)
    assert isinstance(data, dict)
    return data


def test_show_json_prints_file_agents_and_jobs_in_wire_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(SEED_DIR / "daily-report.symbi")
    data = show_json(path, capsys)
    assert data == {
        "file": path,
        "agents": [],
        "jobs": [{
            "name": "daily-report",
            "agent_id": "reporter-agent",
            "cron_expr": "0 9 * * *",
            "at": None,
            "timezone": "UTC",
            "session_mode": "ephemeral_with_summary",
            "heartbeat": {"enabled": False, "context_mode": "ephemeral_with_summary",
                          "max_iterations": 100},
            "delivery": ["stdout", "log_file"],
            "delivery_config": {"webhook_url": None, "webhook_headers": {},
                                "slack_channel": None, "email_recipients": [],
                                "webhook_secret": None},
            "alert": [], "alert_cooldown": None, "alert_if_no_success_within": None,
            "policy": {"require_approval": False, "approvers": [], "max_runtime": "5m",
                       "require_capabilities": [], "allowed_hours": None,
                       "allowed_environments": [], "require_agent_pin": False,
                       "approval_timeout": None},
            "max_concurrent": 1,
            "max_retries": None,
            "jitter_seconds": None,
            "catch_up": "latest",
            "catch_up_limit": 100,
            "input": None,
            "agent_pin_jwt": None,
            "source": "file:" + path,
        }],
    }


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_show_json_never_prints_state_keys(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = show_json(str(path), capsys)
    jobs = data["jobs"]
    assert isinstance(jobs, list) and len(jobs) == 1
    assert STATE_KEYS.isdisjoint(jobs[0])
    assert {"name", "agent_id", "cron_expr", "at", "policy", "delivery_config"} <= set(jobs[0])


def test_show_json_writes_the_production_deploy_policy_in_wire_form(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [job] = show_json(str(SEED_DIR / "production-deploy.symbi"), capsys)["jobs"]
    assert job["policy"] == {
        "require_approval": True,
        "approvers": [],
        "max_runtime": "30m",
        "require_capabilities": ["deployment", "production_write"],
        "allowed_hours": {"start": "00:00", "end": "04:00", "timezone": "UTC"},
        "allowed_environments": ["staging", "production"],
        "require_agent_pin": True,
        "approval_timeout": None,
    }


def test_show_json_writes_a_one_shot_as_rfc3339_utc(capsys: pytest.CaptureFixture[str]) -> None:
    [job] = show_json(str(SEED_DIR / "deployment-check.symbi"), capsys)["jobs"]
    assert job["at"] == "2026-02-15T14:30:00Z"
    assert job["cron_expr"] is None
    assert job["delivery_config"]["webhook_url"] == "https://ops.example.com/hooks/deployment"


def test_show_json_keeps_secret_references_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    [job] = show_json(str(SEED_DIR / "metrics-report.symbi"), capsys)["jobs"]
    assert job["delivery_config"]["webhook_headers"] == {
        "Authorization": "Bearer ${METRICS_API_KEY}", "Content-Type": "application/json"}
    [pinned] = show_json(str(SEED_DIR / "my-job.symbi"), capsys)["jobs"]
    assert pinned["agent_pin_jwt"] == "${AGENT_PIN_JWT}"


def test_show_json_prints_the_agent_with_its_unescaped_prompt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = show_json(str(SEED_DIR / "heartbeat-monitor.symbi"), capsys)
    [agent] = data["agents"]
    assert agent["name"] == "heartbeat_monitor"
    assert agent["kind"] == "llm"
    assert agent["model"] == "claude-sonnet-4.5"
    assert agent["command"] == []
    assert agent["system_prompt"].startswith("你是一个系统监控智能体")
    assert agent["limits"] == {"memory": None, "cpu_time": None, "processes": None,
                               "open_files": None, "output": 1048576}
    [job] = data["jobs"]
    assert job["heartbeat"] == {"enabled": True, "context_mode": "ephemeral_with_summary",
                                "max_iterations": 50}


def test_show_json_prints_a_command_agents_limits_in_bytes_and_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "agent.symbi",
                 'agent w {\n  command: ["/bin/w", "--x"]\n  env: { K: "${V}" }\n'
                 '  limits { memory: "512M" cpu_time: "60s" processes: 64 open_files: 256 '
                 'output: "1M" }\n}\n')
    [agent] = show_json(path, capsys)["agents"]
    assert agent["kind"] == "command"
    assert agent["command"] == ["/bin/w", "--x"]
    assert agent["env"] == {"K": "${V}"}
    assert agent["limits"] == {"memory": 512 * 2**20, "cpu_time": 60, "processes": 64,
                               "open_files": 256, "output": 2**20}


def test_show_text_prints_one_line_per_agent_and_schedule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["dsl", "show", str(SEED_DIR / "heartbeat-monitor.symbi")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "agent heartbeat_monitor: llm (claude-sonnet-4.5)",
        "schedule heartbeat-monitor: agent heartbeat_monitor, cron */10 * * * * UTC",
    ]


def test_show_text_prints_a_one_shot_with_its_instant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dsl", "show", str(SEED_DIR / "deployment-check.symbi")]) == 0
    assert capsys.readouterr().out == (
        "schedule deployment-check: agent health-checker, at 2026-02-15T14:30:00Z UTC\n")


def test_show_on_a_broken_file_exits_one_with_the_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "broken.symbi", BROKEN)
    assert main(["dsl", "show", path, "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"symbi: {path}:4:3: unknown key 'max_concurent'; did you mean 'max_concurrent'?",
        "      max_concurent: 2",
        "      ^",
    ]


def test_show_on_a_missing_file_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.symbi")
    assert main(["dsl", "show", missing]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{missing}:1:1: cannot read" in captured.err


def test_show_rejects_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dsl", "show", str(SEED_DIR / "backup.symbi"), "--format", "yaml"]) == 2


def test_show_on_an_absurd_max_runtime_exits_one_with_a_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "huge.symbi",
                 'schedule s {\n  agent: a\n  cron: "@daily"\n'
                 f'  policy {{ max_runtime: "{"9" * 400}s" }}\n}}\n')
    assert main(["dsl", "show", path, "--format", "json"]) == 1
    assert f"{path}:4:" in capsys.readouterr().err
