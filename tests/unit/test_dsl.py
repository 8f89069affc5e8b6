"""The ``.symbi`` DSL: the seed guide's blocks, the Symbiont runtime form, and diagnostics.

The spec is the Symbiont scheduling guide (``/work/shared/seed/scheduling-guide.zh.md``);
every fixture in ``tests/fixtures/seed`` is one of its blocks, verbatim.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbid.agentdef import Agent, AgentKind, Limits
from symbid.dsl import (
    Diagnostic,
    DslError,
    LoadedFile,
    load_dir,
    load_document,
    load_file,
    parse_text,
)
from symbid.model import AllowedHours, CatchUp, DeliveryConfig, Heartbeat, Job, Policy, SessionMode
from symbid.timing import parse_instant

SEED_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "seed"
SEED_FILES = sorted(SEED_DIR.glob("*.symbi"))
EPHEMERAL = SessionMode.EPHEMERAL_WITH_SUMMARY


def load_text(text: str, path: str = "t.symbi", now: Optional[int] = None) -> LoadedFile:
    """Parse and load source text; a syntax error propagates as DslError."""
    return load_document(parse_text(text, path), now)


def diagnostics_of(text: str, path: str = "t.symbi") -> list[Diagnostic]:
    """Every diagnostic of a text, whether the parser or the loader found it."""
    try:
        doc = parse_text(text, path)
    except DslError as exc:
        return list(exc.diagnostics)
    return load_document(doc).errors


def only_job(loaded: LoadedFile) -> Job:
    assert loaded.errors == []
    assert len(loaded.jobs) == 1
    return loaded.jobs[0]


def only_agent(loaded: LoadedFile) -> Agent:
    assert loaded.errors == []
    assert len(loaded.agents) == 1
    return loaded.agents[0]


# --- the seed guide's blocks ----------------------------------------------------------------------

HEARTBEAT_PROMPT = (
    "你是一个系统监控智能体。在每次心跳时:\n"
    "1. 检查系统指标(CPU、内存、磁盘)\n"
    "2. 审查最近的错误日志\n"
    "3. 如果检测到问题,采取行动:\n"
    "   - 在安全的情况下重启服务\n"
    "   - 通过 Slack 通知运维团队\n"
    "   - 记录事件详情\n"
    "4. 总结发现\n"
    "5. 完成后返回 'sleep'\n"
)

# What each guide block says, field by field; every other field keeps its default.
SEED_JOBS: dict[str, dict[str, object]] = {
    "backup.symbi": dict(
        name="backup", agent_id="backup-agent", cron_expr="0 3 * * *",
        delivery=("log_file",),
    ),
    "daily-report.symbi": dict(
        name="daily-report", agent_id="reporter-agent", cron_expr="0 9 * * *",
        session_mode=EPHEMERAL, delivery=("stdout", "log_file"),
        policy=Policy(require_approval=False, max_runtime_seconds=300.0),
    ),
    "data-pipeline.symbi": dict(
        name="data-pipeline", agent_id="etl-agent", cron_expr="0 2 * * *",
        session_mode=EPHEMERAL,
    ),
    "data-sync.symbi": dict(
        name="data-sync", agent_id="sync-agent", cron_expr="*/5 * * * *", max_concurrent=2,
    ),
    "deployment-check.symbi": dict(
        name="deployment-check", agent_id="health-checker", cron_expr=None,
        at=parse_instant("2026-02-15T14:30:00Z"), delivery=("webhook",),
        delivery_config=DeliveryConfig(webhook_url="https://ops.example.com/hooks/deployment"),
    ),
    "flaky-job.symbi": dict(
        name="flaky-job", agent_id="unreliable-agent", cron_expr="0 * * * *", max_retries=3,
    ),
    "heartbeat-monitor.symbi": dict(
        name="heartbeat-monitor", agent_id="heartbeat_monitor", cron_expr="*/10 * * * *",
        heartbeat=Heartbeat(enabled=True, context_mode=EPHEMERAL, max_iterations=50),
        delivery=("log_file", "slack"),
        delivery_config=DeliveryConfig(slack_channel="#ops-alerts"),
    ),
    "metrics-report.symbi": dict(
        name="metrics-report", agent_id="metrics-agent", cron_expr="*/30 * * * *",
        delivery=("webhook",),
        delivery_config=DeliveryConfig(
            webhook_url="https://metrics.example.com/ingest",
            webhook_headers={"Authorization": "Bearer ${METRICS_API_KEY}",
                             "Content-Type": "application/json"},
        ),
    ),
    "my-job.symbi": dict(
        name="my-job", agent_id="my-agent", cron_expr="0 * * * *", max_concurrent=2,
        agent_pin_jwt="${AGENT_PIN_JWT}", policy=Policy(require_agent_pin=True),
    ),
    "production-deploy.symbi": dict(
        name="production-deploy", agent_id="deploy-agent", cron_expr="0 0 * * 0",
        policy=Policy(
            require_approval=True,
            max_runtime_seconds=1800.0,
            require_capabilities=("deployment", "production_write"),
            allowed_hours=AllowedHours("00:00", "04:00"),
            allowed_environments=("staging", "production"),
            require_agent_pin=True,
        ),
    ),
    "secure-task.symbi": dict(
        name="secure-task", agent_id="trusted-agent", cron_expr="0 * * * *",
        agent_pin_jwt="${AGENT_PIN_JWT}", policy=Policy(require_agent_pin=True),
    ),
    "security-scan.symbi": dict(
        name="security-scan", agent_id="scanner", cron_expr="0 1 * * *",
        delivery=("log_file", "slack", "email"),
        delivery_config=DeliveryConfig(
            slack_channel="#security",
            email_recipients=("ops@example.com", "security@example.com"),
        ),
    ),
    "system-monitor.symbi": dict(
        name="system-monitor", agent_id="heartbeat-agent", cron_expr="*/5 * * * *",
        heartbeat=Heartbeat(enabled=True, context_mode=EPHEMERAL, max_iterations=100),
    ),
}


def test_every_seed_fixture_has_an_expectation_here() -> None:
    assert {p.name for p in SEED_FILES} == set(SEED_JOBS)


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_a_seed_block_loads_to_the_job_the_guide_describes(path: Path) -> None:
    loaded = load_file(str(path))
    assert loaded.errors == []
    # the guide's production-deploy asks for approval and names no approver
    assert [w.message.split(": ")[1] for w in loaded.warnings] == (
        ["policy.require_approval without approvers",
         "policy.require_agent_pin without agent_pin_jwt"]
        if path.name == "production-deploy.symbi" else [])
    job = only_job(loaded)
    expected = Job(id="", timezone="UTC", source="file:" + os.path.abspath(path),
                   **SEED_JOBS[path.name])  # type: ignore[arg-type]
    assert job == expected


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_a_seed_job_is_in_utc_and_its_source_is_the_absolute_file(path: Path) -> None:
    job = only_job(load_file(str(path)))
    assert job.timezone == "UTC"
    assert job.source == "file:" + str(path.resolve())
    assert job.id == ""
    assert (job.cron_expr is None) != (job.at is None)


def test_a_job_loaded_by_a_relative_path_records_the_absolute_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(SEED_DIR.parent)
    loaded = load_file("seed/backup.symbi")
    assert loaded.path == "seed/backup.symbi"
    assert only_job(loaded).source == "file:" + str(SEED_DIR / "backup.symbi")
    assert loaded.source == only_job(loaded).source


def test_the_production_deploy_policy_is_read_field_by_field() -> None:
    policy = only_job(load_file(str(SEED_DIR / "production-deploy.symbi"))).policy
    assert policy.require_approval is True
    assert policy.max_runtime_seconds == 1800.0
    assert policy.require_capabilities == ("deployment", "production_write")
    assert policy.allowed_hours == AllowedHours(start="00:00", end="04:00")
    assert policy.allowed_environments == ("staging", "production")
    assert policy.require_agent_pin is True
    assert policy.approvers == ()


def test_daily_report_max_runtime_of_5m_is_300_seconds() -> None:
    job = only_job(load_file(str(SEED_DIR / "daily-report.symbi")))
    assert job.policy.max_runtime_seconds == 300.0
    assert job.policy.require_approval is False
    assert job.session_mode is SessionMode.EPHEMERAL_WITH_SUMMARY
    assert job.delivery == ("stdout", "log_file")


def test_the_one_shot_seed_job_is_at_the_guides_instant_in_epoch_ms() -> None:
    job = only_job(load_file(str(SEED_DIR / "deployment-check.symbi")))
    assert job.cron_expr is None
    assert job.at == parse_instant("2026-02-15T14:30:00Z")
    assert job.at == int(datetime(2026, 2, 15, 14, 30, tzinfo=timezone.utc).timestamp()) * 1000
    assert job.one_shot


def test_a_one_shot_in_the_past_is_a_warning_not_an_error() -> None:
    after = parse_instant("2026-03-01T00:00:00Z")
    loaded = load_file(str(SEED_DIR / "deployment-check.symbi"), now=after)
    assert loaded.errors == []
    assert len(loaded.jobs) == 1
    assert [(w.line, w.col) for w in loaded.warnings] == [(4, 7)]
    assert "has passed" in loaded.warnings[0].message


def test_webhook_headers_keep_the_secret_reference_verbatim() -> None:
    job = only_job(load_file(str(SEED_DIR / "metrics-report.symbi")))
    assert job.delivery_config.webhook_url == "https://metrics.example.com/ingest"
    assert dict(job.delivery_config.webhook_headers) == {
        "Authorization": "Bearer ${METRICS_API_KEY}",
        "Content-Type": "application/json",
    }


@pytest.mark.parametrize("name", ["my-job.symbi", "secure-task.symbi"])
def test_agent_pin_jwt_keeps_the_reference_verbatim(name: str) -> None:
    job = only_job(load_file(str(SEED_DIR / name)))
    assert job.agent_pin_jwt == "${AGENT_PIN_JWT}"
    assert job.policy.require_agent_pin is True


def test_the_heartbeat_monitor_file_defines_an_llm_agent_and_its_schedule() -> None:
    loaded = load_file(str(SEED_DIR / "heartbeat-monitor.symbi"))
    assert loaded.errors == [] and loaded.warnings == []
    agent = only_agent(loaded)
    assert agent == Agent(name="heartbeat_monitor", kind=AgentKind.LLM,
                          model="claude-sonnet-4.5", system_prompt=HEARTBEAT_PROMPT)
    job = only_job(loaded)
    assert job.agent_id == agent.name
    assert job.heartbeat == Heartbeat(enabled=True, context_mode=EPHEMERAL, max_iterations=50)
    assert job.delivery == ("log_file", "slack")
    assert job.delivery_config.slack_channel == "#ops-alerts"


def test_the_triple_quoted_system_prompt_is_dedented_but_keeps_inner_indentation() -> None:
    agent = only_agent(load_file(str(SEED_DIR / "heartbeat-monitor.symbi")))
    prompt = agent.system_prompt
    assert prompt is not None
    assert prompt.startswith("你是一个系统监控智能体")
    assert "\n   - 在安全的情况下重启服务\n" in prompt
    assert "\n1. 检查系统指标" in prompt
    assert prompt.endswith("5. 完成后返回 'sleep'\n")
    assert not prompt.endswith("\n\n")


def test_security_scan_lists_its_email_recipients_in_order() -> None:
    job = only_job(load_file(str(SEED_DIR / "security-scan.symbi")))
    assert job.delivery == ("log_file", "slack", "email")
    assert job.delivery_config.email_recipients == ("ops@example.com", "security@example.com")
    assert job.delivery_config.slack_channel == "#security"


def test_data_sync_allows_two_concurrent_runs_and_flaky_job_three_retries() -> None:
    assert only_job(load_file(str(SEED_DIR / "data-sync.symbi"))).max_concurrent == 2
    flaky = only_job(load_file(str(SEED_DIR / "flaky-job.symbi")))
    assert flaky.max_retries == 3
    assert flaky.max_concurrent == 1


def test_all_seed_blocks_in_one_file_load_together() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in SEED_FILES)
    loaded = load_text(text)
    assert loaded.errors == []
    assert sorted(j.name for j in loaded.jobs) == sorted(str(v["name"]) for v in SEED_JOBS.values())
    assert [a.name for a in loaded.agents] == ["heartbeat_monitor"]


# --- the Symbiont runtime form --------------------------------------------------------------------


def test_the_runtime_form_names_the_schedule_after_the_keyword_with_commas() -> None:
    job = only_job(load_text(
        'schedule morning_report { cron: "0 0 7 * * Mon-Fri", timezone: "America/New_York", '
        'agent: "x" }'))
    assert job.name == "morning_report"
    assert job.cron_expr == "0 0 7 * * Mon-Fri"
    assert job.timezone == "America/New_York"
    assert job.agent_id == "x"
    assert job.at is None


def test_equals_works_like_a_colon() -> None:
    job = only_job(load_text(
        'schedule s {\n  cron = "*/5 * * * *"\n  agent = "a"\n  max_retries = 2\n'
        '  policy = { require_approval = true }\n}'))
    assert (job.cron_expr, job.agent_id, job.max_retries) == ("*/5 * * * *", "a", 2)
    assert job.policy.require_approval is True


@pytest.mark.parametrize(
    ("literal", "seconds"),
    [("30.seconds", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("1.minute", 60.0),
     ("90", 90.0), ('"1h30m"', 5400.0), ('"30.seconds"', 30.0), ("500ms", 0.5)],
)
def test_duration_literals_work_for_max_runtime_and_jitter(literal: str, seconds: float) -> None:
    job = only_job(load_text(
        f'schedule s {{ cron: "* * * * *", agent: a, jitter: {literal}, '
        f"policy {{ max_runtime: {literal} }} }}"))
    assert job.jitter_seconds == seconds
    assert job.policy.max_runtime_seconds == seconds


def test_an_agent_name_with_a_space_is_refused_at_its_position() -> None:
    loaded = load_text('agent "my agent" { command: ["/bin/true"] }')
    (error,) = loaded.errors
    assert (error.line, error.col) == (1, 7)
    assert "contains ' '; names take letters, digits" in error.message


@pytest.mark.parametrize("name", ["team/report", "../../etc/passwd", "a\\u202eb", "deadbeef",
                                  "x" * 129, "line\\nbreak", "\\u001b[31mred"])
def test_job_names_that_break_the_rule_are_refused_in_files(name: str) -> None:
    loaded = load_text(f'schedule {{ name: "{name}", agent: a, cron: "* * * * *" }}\n'
                       'agent a { command: ["/bin/true"] }')
    assert loaded.jobs == [] and len(loaded.errors) == 1
    message = loaded.errors[0].message
    assert "schedule name" in message
    assert "\n" not in message and "\x1b" not in message and "\u202e" not in message


def test_an_agent_name_may_contain_dashes() -> None:
    loaded = load_text('agent my-agent-2 { model: "m" }\n'
                       'schedule s { agent: my-agent-2, cron: "* * * * *" }')
    assert only_agent(loaded).name == "my-agent-2"
    assert only_job(loaded).agent_id == "my-agent-2"


def test_bare_identifiers_are_string_values() -> None:
    job = only_job(load_text(
        "schedule s { agent: reporter, cron: \"* * * * *\", session_mode: shared_persistent, "
        "delivery: [stdout, log_file], catch_up: all, timezone: UTC }"))
    assert job.agent_id == "reporter"
    assert job.session_mode is SessionMode.SHARED_PERSISTENT
    assert job.delivery == ("stdout", "log_file")
    assert job.catch_up is CatchUp.ALL
    assert job.timezone == "UTC"


def test_line_and_block_comments_are_ignored_everywhere() -> None:
    text = (
        "// a line comment\n"
        "# a hash comment\n"
        "/* a block\n   comment */ schedule s { // after the brace\n"
        '  agent: "a" # after a value\n'
        '  cron: /* inline */ "* * * * *"\n'
        "}\n"
    )
    job = only_job(load_text(text))
    assert (job.name, job.agent_id, job.cron_expr) == ("s", "a", "* * * * *")


def test_a_hash_inside_a_string_is_not_a_comment() -> None:
    job = only_job(load_text('schedule s { agent: a, cron: "* * * * *", delivery: ["slack"], '
                             'slack_channel: "#ops" }'))
    assert job.delivery_config.slack_channel == "#ops"


@pytest.mark.parametrize("opener", ["policy {", "policy: {", "policy = {"])
def test_policy_is_accepted_with_or_without_a_separator(opener: str) -> None:
    job = only_job(load_text(
        f'schedule s {{ agent: a, cron: "* * * * *", {opener} require_agent_pin: true }} }}'))
    assert job.policy == Policy(require_agent_pin=True)


@pytest.mark.parametrize("opener", ["policy {", "policy: {"])
def test_an_empty_policy_block_is_the_default_policy(opener: str) -> None:
    job = only_job(load_text(f'schedule s {{ agent: a, cron: "* * * * *", {opener} }} }}'))
    assert job.policy == Policy()


def test_heartbeat_may_be_written_as_a_block() -> None:
    job = only_job(load_text(
        'schedule s { agent: a, cron: "* * * * *", '
        "heartbeat { enabled: true, context_mode: fully_ephemeral, max_iterations: 7 } }"))
    assert job.heartbeat == Heartbeat(True, SessionMode.FULLY_EPHEMERAL, 7)


def test_an_at_time_without_offset_is_read_in_the_schedules_zone() -> None:
    job = only_job(load_text(
        'schedule s { agent: a, at: "2026-07-01T09:00:00", timezone: "Europe/Berlin" }'))
    assert job.at == parse_instant("2026-07-01T07:00:00Z")
    assert job.timezone == "Europe/Berlin"


def test_crlf_line_endings_load_and_diagnostics_keep_their_line() -> None:
    job = only_job(load_text('schedule s {\r\n  agent: "a"\r\n  cron: "* * * * *"\r\n}\r\n'))
    assert job.agent_id == "a"
    [diag] = diagnostics_of('schedule s {\r\n  agent: "a"\r\n  zzz: 1\r\n  cron: "* * * * *"\r\n}')
    assert (diag.line, diag.col, diag.source_line) == (3, 3, "  zzz: 1")


def test_schedule_settings_beyond_the_guide_are_read() -> None:
    job = only_job(load_text(
        'schedule s { agent: a, cron: "* * * * *", catch_up: skip, catch_up_limit: 5, '
        'input: "check ${TARGET}", '
        'policy { require_approval: true, approvers: [alice, "bob"] } }'))
    assert job.catch_up is CatchUp.SKIP
    assert job.catch_up_limit == 5
    assert job.input == "check ${TARGET}"
    assert job.policy.approvers == ("alice", "bob")


def test_unset_schedule_settings_take_their_documented_defaults() -> None:
    job = only_job(load_text('schedule s { agent: a, cron: "* * * * *" }'))
    assert job.session_mode is SessionMode.EPHEMERAL_WITH_SUMMARY
    assert job.heartbeat == Heartbeat()
    assert job.delivery == ()
    assert job.delivery_config == DeliveryConfig()
    assert job.policy == Policy()
    assert job.max_concurrent == 1
    assert job.max_retries is None
    assert job.jitter_seconds is None
    assert job.catch_up is CatchUp.LATEST
    assert job.catch_up_limit == 100
    assert job.input is None
    assert job.agent_pin_jwt is None


def test_an_unknown_delivery_channel_is_an_error_at_its_place_and_custom_ones_load() -> None:
    loaded = load_text('schedule s {\n  agent: a\n  cron: "* * * * *"\n'
                       '  delivery: ["stdout", "carrier-pigeon", "custom:teams"]\n}')
    assert loaded.jobs == []
    assert [(e.line, e.col) for e in loaded.errors] == [(4, 24)]  # at the element
    assert "unknown delivery channel 'carrier-pigeon'" in loaded.errors[0].message
    ok = load_text('schedule s {\n  agent: a\n  cron: "* * * * *"\n'
                   '  delivery: ["stdout", "custom:teams"]\n}')
    assert only_job(ok).delivery == ("stdout", "custom:teams") and not ok.warnings


def test_a_webhook_secret_must_be_a_reference_so_it_is_never_stored() -> None:
    loaded = load_text('schedule s {\n  agent: a\n  cron: "* * * * *"\n'
                       '  delivery: ["webhook"]\n  webhook_url: "http://h/x"\n'
                       '  webhook_secret: "hunter2"\n}')
    assert [(e.line, "${VAR} reference" in e.message) for e in loaded.errors] == [(6, True)]
    ok = load_text('schedule s {\n  agent: a\n  cron: "* * * * *"\n'
                   '  delivery: ["webhook"]\n  webhook_url: "http://h/x"\n'
                   '  webhook_secret: "${HOOK_SECRET}"\n}')
    assert only_job(ok).delivery_config.webhook_secret == "${HOOK_SECRET}"


# --- agents ---------------------------------------------------------------------------------------


def test_a_command_agent_reads_every_setting() -> None:
    agent = only_agent(load_text(
        "agent backup-agent {\n"
        '  command: ["/usr/local/bin/backup", "--full"]\n'
        '  capabilities: ["fs_read", "net"]\n'
        '  env: { BACKUP_TARGET: "s3://bucket", "API_KEY": "${BACKUP_KEY}" }\n'
        '  working_dir: "/srv/backup"\n'
        '  user: "backup"\n'
        "  group: backup\n"
        '  limits { memory: "512M" cpu_time: "60s" processes: 64 open_files: 256 output: "1M" }\n'
        '  agentpin_id: "backup-agent@example.com"\n'
        "}\n"))
    assert agent == Agent(
        name="backup-agent",
        kind=AgentKind.COMMAND,
        command=("/usr/local/bin/backup", "--full"),
        env={"BACKUP_TARGET": "s3://bucket", "API_KEY": "${BACKUP_KEY}"},
        working_dir="/srv/backup",
        user="backup",
        group="backup",
        limits=Limits(memory_bytes=512 * 2**20, cpu_seconds=60, processes=64, open_files=256,
                      output_bytes=2**20),
        capabilities=("fs_read", "net"),
        agentpin_id="backup-agent@example.com",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [('"512M"', 512 * 2**20), ('"1G"', 2**30), ('"64KiB"', 64 * 1024), ('"2k"', 2048),
     ("4096", 4096), ('"100"', 100), ('"1.5M"', int(1.5 * 2**20))],
)
def test_sizes_are_bytes_with_binary_suffixes(text: str, expected: int) -> None:
    agent = only_agent(load_text(f"agent a {{ command: [x], limits {{ memory: {text} }} }}"))
    assert agent.limits.memory_bytes == expected


def test_a_fractional_cpu_time_rounds_up_to_whole_seconds() -> None:
    agent = only_agent(load_text('agent a { command: [x], limits { cpu_time: "1.5s" } }'))
    assert agent.limits.cpu_seconds == 2


def test_unset_limits_are_unlimited_but_output_keeps_its_cap() -> None:
    agent = only_agent(load_text("agent a { command: [x] }"))
    assert agent.limits == Limits()
    assert agent.limits.output_bytes == 2**20


def test_an_llm_agent_reads_model_prompt_and_endpoint() -> None:
    agent = only_agent(load_text(
        'agent writer { model: "gpt-4o", system_prompt: "Be brief.", '
        'endpoint: "http://localhost:8000/v1" }'))
    assert agent == Agent(name="writer", kind=AgentKind.LLM, model="gpt-4o",
                          system_prompt="Be brief.", endpoint="http://localhost:8000/v1")


def test_a_triple_quoted_string_may_contain_quotes_and_escapes() -> None:
    agent = only_agent(load_text(
        'agent a {\n  model: "m"\n  system_prompt: """\n    Say "hi" and \\"bye\\".\n'
        '      Then stop.\n    """\n}'))
    assert agent.system_prompt == 'Say "hi" and "bye".\n  Then stop.\n'


def test_json_escapes_in_strings_are_decoded() -> None:
    job = only_job(load_text(
        'schedule s { agent: "caf\\u00e9 \\"q\\" \\\\", cron: "* * * * *" }'))
    assert job.agent_id == 'café "q" \\'


# --- other top-level constructs are skipped -------------------------------------------------------


def test_other_top_level_constructs_are_skipped_with_a_warning() -> None:
    text = (
        'metadata { version = "1.0" }\n'
        'schedule first { agent: a, cron: "* * * * *" }\n'
        "function f(x: int) -> str { return x }\n"
        'with memory = "persistent" { tool { nested: [1, 2] } }\n'
        'schedule second { agent: a, cron: "0 * * * *" }\n'
    )
    loaded = load_text(text)
    assert loaded.errors == []
    assert [j.name for j in loaded.jobs] == ["first", "second"]
    assert [(w.line, w.col) for w in loaded.warnings] == [(1, 1), (3, 1), (4, 1)]
    assert "'metadata' block skipped" in loaded.warnings[0].message
    assert "'function' block skipped" in loaded.warnings[1].message
    assert "'with' block skipped" in loaded.warnings[2].message


def test_a_misspelt_schedule_keyword_is_skipped_with_a_did_you_mean() -> None:
    loaded = load_text('schedul s { agent: a, cron: "* * * * *" }')
    assert loaded.jobs == []
    assert loaded.errors == []
    [warning] = loaded.warnings
    assert "did you mean 'schedule'?" in warning.message


# --- malformed input: the first diagnostic's exact position and message ---------------------------

S = 'schedule s {\n  agent: "a"\n  cron: "* * * * *"\n'  # lines 1-3 of a valid schedule

MALFORMED = [
    pytest.param(S + "  max_concurent: 2\n}", 4, 3,
                 "unknown key 'max_concurent'; did you mean 'max_concurrent'?",
                 id="unknown-key-with-did-you-mean"),
    pytest.param(S + "  zzzz: 2\n}", 4, 3, "unknown key 'zzzz'; known keys: agent, agent_pin_jwt",
                 id="unknown-key-without-close-match"),
    pytest.param(S + '  policy { max_runtim: "5m" }\n}', 4, 12,
                 "unknown key 'policy.max_runtim'; did you mean 'max_runtime'?",
                 id="unknown-key-in-policy"),
    pytest.param('agent a {\n  command: ["x"]\n  limits { memroy: "5M" }\n}', 3, 12,
                 "unknown key 'limits.memroy'; did you mean 'memory'?",
                 id="unknown-key-in-limits"),
    pytest.param(S + "  heartbeat { enabeld: true }\n}", 4, 15,
                 "unknown key 'heartbeat.enabeld'; did you mean 'enabled'?",
                 id="unknown-key-in-heartbeat"),
    pytest.param('agent a {\n  command: ["x"]\n  cron: "* * * * *"\n}', 3, 3,
                 "unknown key 'cron'", id="schedule-key-in-an-agent"),
    pytest.param(S + '  policy { require_approval: "yes" }\n}', 4, 30,
                 "policy.require_approval: expected true or false, got a string",
                 id="string-where-bool-expected"),
    pytest.param(S + "  delivery: 5\n}", 4, 13,
                 "delivery: expected a list of strings, got a number",
                 id="number-where-list-expected"),
    pytest.param('schedule s {\n  agent: ["a"]\n  cron: "* * * * *"\n}', 2, 10,
                 "agent: expected a string, got a list", id="list-where-string-expected"),
    pytest.param(S + "  max_retries: 2.5\n}", 4, 16, "max_retries: expected a whole number",
                 id="float-where-whole-number-expected"),
    pytest.param('schedule s {\n  agent: { x: 1 }\n  cron: "* * * * *"\n}', 2, 10,
                 "agent: expected a string, got a block", id="block-where-string-expected"),
    pytest.param(S + "  max_concurrent: true\n}", 4, 19,
                 "max_concurrent: expected a whole number, got a boolean",
                 id="bool-where-whole-number-expected"),
    pytest.param(S + '  policy: "strict"\n}', 4, 11,
                 "policy: expected a block { ... }, got a string",
                 id="string-where-block-expected"),
    pytest.param(S + "  input: 5\n}", 4, 10, "input: expected a string, got a number",
                 id="number-where-string-expected"),
    pytest.param(S + "  delivery: [1]\n}", 4, 14, "delivery: expected a string, got a number",
                 id="number-inside-a-string-list"),
    pytest.param('agent a {\n  command: ["x"]\n  env: ["A=1"]\n}', 3, 8,
                 "env: expected a block of name: value pairs", id="list-where-map-expected"),
    pytest.param(S + "  max_concurrent: 0\n}", 4, 19, "max_concurrent: must be at least 1, got 0",
                 id="max-concurrent-zero"),
    pytest.param(S + "  max_retries: -1\n}", 4, 16, "max_retries: must be at least 0, got -1",
                 id="negative-max-retries"),
    pytest.param(S + "  heartbeat: { max_iterations: 0 }\n}", 4, 32,
                 "heartbeat.max_iterations: must be at least 1, got 0",
                 id="zero-heartbeat-iterations"),
    pytest.param('agent a {\n  command: ["x"]\n  limits { processes: 0 }\n}', 3, 23,
                 "limits.processes: must be at least 1, got 0", id="zero-processes-limit"),
    pytest.param(S + '  at: "2026-02-15T14:30:00Z"\n}', 4, 7, "give exactly one of cron and at",
                 id="cron-and-at-together"),
    pytest.param('schedule s {\n  agent: "a"\n}', 1, 1, "give exactly one of cron and at",
                 id="neither-cron-nor-at"),
    pytest.param('schedule s {\n  agent: "a"\n  cron: "61 * * * *"\n}', 3, 9,
                 "minute field '61'", id="bad-cron-field"),
    pytest.param('schedule s {\n  agent: "a"\n  cron: "* * * * * * * *"\n}', 3, 9,
                 "has 8 fields", id="cron-with-too-many-fields"),
    pytest.param('schedule s {\n  agent: "a"\n  cron: "0 0 31 2 *"\n}', 3, 9,
                 "can never fire", id="cron-that-never-fires"),
    pytest.param(S + '  timezone: "Mars/Base"\n}', 4, 13, "unknown time zone 'Mars/Base'",
                 id="bad-timezone"),
    pytest.param(S + '  timezone: ""\n}', 4, 13, "timezone: must not be empty",
                 id="empty-timezone"),
    pytest.param('schedule s {\n  agent: "a"\n  at: "tomorrow"\n}', 3, 7,
                 "'tomorrow' is not an ISO 8601 time", id="bad-at-text"),
    pytest.param('schedule s {\n  agent: "a"\n  at: "2026-02-30T00:00:00Z"\n}', 3, 7,
                 "is not a valid date and time", id="at-on-a-day-that-does-not-exist"),
    pytest.param('schedule s {\n  agent: "a"\n  at: "2026-03-08T02:30:00"\n'
                 '  timezone: "America/New_York"\n}', 3, 7,
                 "does not exist in America/New_York", id="at-in-a-spring-forward-gap"),
    pytest.param('schedule s {\n  agent: "a"\n  at: "2026-11-01T01:30:00"\n'
                 '  timezone: "America/New_York"\n}', 3, 7,
                 "happens twice in America/New_York", id="at-in-a-fall-back-overlap"),
    pytest.param('schedule s {\n  agent: "a\n}', 2, 10,
                 'unterminated string: the closing " is missing', id="unterminated-string"),
    pytest.param('agent a {\n  model: "m"\n  system_prompt: """abc\n}', 3, 18, "unterminated",
                 id="unterminated-triple-string"),
    pytest.param(S, 1, 12, "this '{' is never closed (the file ends first)",
                 id="missing-closing-brace"),
    pytest.param('schedule s {\n  policy {\n    require_approval: true\n', 2, 10,
                 "this '{' is never closed", id="missing-inner-closing-brace"),
    pytest.param(S + "}\n}", 5, 1, "unexpected '}'", id="stray-closing-brace"),
    pytest.param("}", 1, 1, "unexpected '}'", id="closing-brace-first"),
    pytest.param('schedule s {\n  agent "a"\n}', 2, 9,
                 "unexpected string \"a\"; expected ':', '=' or '{'", id="missing-colon"),
    pytest.param('schedule s {\n  agent: "a" "b"\n}', 3, 1, "unexpected '}'",
                 id="two-values-for-one-key"),
    pytest.param('schedule s { agent: a, cron: "* * * * *", delivery: [stdout, log_file }', 1, 71,
                 "unexpected '}'; expected ',' or ']'", id="unclosed-array"),
    pytest.param(S + '  agent: "b"\n}', 4, 3, "agent given twice (first at line 2)",
                 id="duplicate-key"),
    pytest.param(S + '  webhook_headers: { "A": "1" "A": "2" }\n}', 4, 31,
                 "webhook_headers: 'A' given twice", id="duplicate-key-in-a-map"),
    pytest.param('schedule s { agent: "a" cron: "* * * * *" }\n'
                 'schedule s { agent: "a" cron: "0 * * * *" }', 2, 10,
                 "schedule 's' is defined twice (first at line 1)",
                 id="duplicate-schedule-name"),
    pytest.param('schedule {\n  name: "x"\n  agent: "a"\n  cron: "* * * * *"\n}\n'
                 'schedule {\n  name: "x"\n  agent: "a"\n  cron: "* * * * *"\n}', 6, 1,
                 "schedule 'x' is defined twice (first at line 1)",
                 id="duplicate-schedule-name-in-the-guide-form"),
    pytest.param('agent a { command: ["x"] }\nagent a { command: ["y"] }', 2, 7,
                 "agent 'a' is defined twice (first at line 1)", id="duplicate-agent-name"),
    pytest.param('schedule {\n  agent: "a"\n  cron: "* * * * *"\n}', 1, 1,
                 "schedule has no name", id="schedule-without-a-name"),
    pytest.param('schedule {\n  name: ""\n  agent: "a"\n  cron: "* * * * *"\n}', 2, 9,
                 "name: must not be empty", id="schedule-with-an-empty-name-key"),
    pytest.param('schedule s {\n  cron: "* * * * *"\n}', 1, 1, "schedule has no agent",
                 id="schedule-without-an-agent"),
    pytest.param('agent a {\n  capabilities: ["x"]\n}', 1, 1,
                 "agent a: needs command: [...] (a command agent) or model",
                 id="agent-with-neither-command-nor-model"),
    pytest.param('agent a {\n  command: ["x"]\n  model: "m"\n}', 3, 10,
                 "give command (a command agent) or model (an llm agent), not both",
                 id="agent-with-both-command-and-model"),
    pytest.param("agent a {\n  command: []\n}", 2, 12, "agent a: command must not be empty",
                 id="empty-command-list"),
    pytest.param('agent a {\n  command: ["x"]\n  endpoint: "http://x"\n}', 3, 13,
                 "endpoint is for llm agents", id="endpoint-on-a-command-agent"),
    pytest.param(S + '  jitter: "soon"\n}', 4, 11, "jitter: 'soon' is not a duration",
                 id="bad-duration-string"),
    pytest.param(S + "  jitter: -5m\n}", 4, 11, "'-5m' is not a duration",
                 id="negative-duration-literal"),
    pytest.param(S + "  policy { max_runtime: -5 }\n}", 4, 25,
                 "policy.max_runtime: must not be negative", id="negative-max-runtime"),
    pytest.param('agent a {\n  command: ["x"]\n  limits { cpu_time: "forever" }\n}', 3, 22,
                 "limits.cpu_time: 'forever' is not a duration", id="bad-cpu-time"),
    pytest.param('agent a {\n  command: ["x"]\n  limits { memory: "lots" }\n}', 3, 20,
                 'limits.memory: expected a size such as "512M"', id="bad-size-string"),
    pytest.param('agent a {\n  command: ["x"]\n  limits { output: "1e3" }\n}', 3, 20,
                 "limits.output: expected a size", id="size-in-scientific-notation"),
    pytest.param(S + '  policy { allowed_hours: { start: "25:00" end: "04:00" } }\n}', 4, 36,
                 "policy.allowed_hours.start: expected a time of day \"HH:MM\", got '25:00'",
                 id="allowed-hours-25-00"),
    pytest.param(S + '  agent_pin_jwt: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"\n}', 4, 18,
                 "agent_pin_jwt must be a ${VAR} reference", id="literal-agent-pin-jwt"),
    pytest.param(S + '  policy { approvers: ["alice"] }\n}', 4, 23,
                 "policy.approvers is for require_approval", id="approvers-without-approval"),
    pytest.param(S + '  policy {\n    allowed_hours: { start: "01:00" end: "02:00" '
                 'timezone: "Mars/Base" }\n  }\n}', 5, 60,
                 "policy.allowed_hours.timezone: unknown time zone", id="allowed-hours-zone"),
    pytest.param(S + '  policy { approval_timeout: "1h" }\n}', 4, 30,
                 "policy.approval_timeout is for require_approval",
                 id="approval-timeout-without-approval"),
    pytest.param(S + '  policy { allowed_hours: { start: "01:00" } }\n}', 4, 27,
                 "missing required key 'policy.allowed_hours.end'",
                 id="allowed-hours-without-end"),
    pytest.param('schedule s {\n  name: "t"\n  agent: "a"\n  cron: "* * * * *"\n}', 2, 9,
                 "name 't' differs from the block's name 's'", id="name-key-disagrees"),
    pytest.param(S + '  delivery: ["webhook"]\n}', 4, 14, "delivery 'webhook' needs webhook_url",
                 id="webhook-without-url"),
    pytest.param(S + '  delivery: ["stdout", "email"]\n}', 4, 24,
                 "delivery 'email' needs email_recipients", id="email-without-recipients"),
    pytest.param(S + '  alert_if_no_success_within: "26h"\n}', 4, 31,
                 "alert_if_no_success_within needs alert channels",
                 id="dead-mans-switch-without-alert"),
    pytest.param(S + '  alert: ["log_file"]\n  alert_if_no_success_within: "0s"\n}', 5, 31,
                 "alert_if_no_success_within must be a positive duration",
                 id="dead-mans-switch-of-zero"),
    pytest.param(S + '  session_mode: "shared_persistant"\n}', 4, 17,
                 "did you mean 'shared_persistent'?", id="session-mode-misspelt"),
    pytest.param(S + "  catch_up: sometimes\n}", 4, 13,
                 "catch_up: 'sometimes' is not one of all, latest, skip", id="bad-catch-up"),
    pytest.param('schedule s {\n  agent: "a\\q"\n  cron: "* * * * *"\n}', 2, 10,
                 "invalid escape sequence in string", id="invalid-escape"),
    pytest.param('schedule s { agent: "a" cron: "* * * * *" }\n@', 2, 1, "'@'",
                 id="lone-unexpected-character"),
    pytest.param("schedule s { agent: 'a' }", 1, 21, "\"'\"", id="single-quoted-string"),
    pytest.param('/* never closed\nschedule s { agent: a, cron: "* * * * *" }', 1, 1,
                 "unterminated comment",
                 id="unterminated-block-comment"),
    pytest.param("schedule s {\n  ab\x00c", 2, 1, "NUL byte", id="nul-byte"),
    pytest.param("x", 1, 2, "unexpected end of the file", id="a-lone-word"),
    pytest.param(S + "  x: " + "[" * 40 + "]" * 40 + "\n}", 4, 38,
                 "nested more than 32 levels deep", id="arrays-nested-too-deeply"),
]


@pytest.mark.parametrize(("text", "line", "col", "fragment"), MALFORMED)
def test_a_malformed_input_is_reported_at_its_exact_position(
    text: str, line: int, col: int, fragment: str
) -> None:
    diags = diagnostics_of(text)
    assert diags, "expected at least one diagnostic"
    first = diags[0]
    assert (first.line, first.col) == (line, col), first.format()
    assert fragment in first.message
    assert first.path == "t.symbi"


def test_the_malformed_table_has_at_least_35_cases() -> None:
    assert len(MALFORMED) >= 35


def test_a_malformed_schedule_creates_no_job() -> None:
    loaded = load_text(S + "  max_concurent: 2\n}")
    assert loaded.jobs == []
    assert not loaded.ok


def test_invalid_utf8_is_reported_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.symbi"
    path.write_bytes(b'schedule s {\n  agent: "a"\n  cron: "\xff * * * *"\n}\n')
    loaded = load_file(str(path))
    assert loaded.jobs == []
    [diag] = loaded.errors
    assert (diag.path, diag.line, diag.col) == (str(path), 3, 1)
    assert "not valid UTF-8" in diag.message


def test_a_missing_file_is_an_error_not_an_exception(tmp_path: Path) -> None:
    loaded = load_file(str(tmp_path / "nope.symbi"))
    [diag] = loaded.errors
    assert (diag.line, diag.col) == (1, 1)
    assert "cannot read" in diag.message


# --- diagnostics ----------------------------------------------------------------------------------


def test_a_diagnostic_formats_as_file_line_col_message_source_and_caret() -> None:
    [diag] = diagnostics_of(S + "  max_concurent: 2\n}", path="agents.d/x.symbi")
    assert diag.source_line == "  max_concurent: 2"
    assert diag.format() == (
        "agents.d/x.symbi:4:3: unknown key 'max_concurent'; did you mean 'max_concurrent'?\n"
        "      max_concurent: 2\n"
        "      ^"
    )


def test_a_syntax_diagnostic_puts_its_caret_under_the_column() -> None:
    [diag] = diagnostics_of('schedule s {\n  agent "a"\n}')
    lines = diag.format().split("\n")
    assert lines[0].startswith("t.symbi:2:9: unexpected")
    assert lines[1] == '      agent "a"'
    assert lines[2] == " " * (4 + 9 - 1) + "^"
    assert lines[1][lines[2].index("^")] == '"'


def test_a_tab_in_the_source_line_counts_as_one_column_under_the_caret() -> None:
    [diag] = diagnostics_of('schedule s {\n\tagent: "a"\n\tzzz: 1\n\tcron: "* * * * *"\n}')
    assert (diag.line, diag.col) == (3, 2)
    shown, caret = diag.format().split("\n")[1:]
    assert shown[caret.index("^")] == "z"


def test_a_dsl_error_message_is_every_diagnostic_formatted() -> None:
    with pytest.raises(DslError) as info:
        parse_text('schedule s {\n  agent: "a\\q"\n  cron: "\\z"\n}', "f.symbi")
    assert [(d.line, d.col) for d in info.value.diagnostics] == [(2, 10), (3, 9)]
    assert str(info.value) == "\n".join(d.format() for d in info.value.diagnostics)
    assert info.value.code == "invalid_dsl"


# --- ${NAME} references are kept verbatim ---------------------------------------------------------


def test_secret_references_are_kept_exactly_as_written_everywhere() -> None:
    loaded = load_text(
        'agent a { command: ["run", "${ARG}"], env: { TOKEN: "${API_TOKEN}", '
        'MIXED: "pre-${X}-post" } }\n'
        'schedule s { agent: a, cron: "* * * * *", delivery: [webhook], '
        'webhook_url: "https://${HOST}/hook", '
        'webhook_headers: { "Authorization": "Bearer ${METRICS_API_KEY}" }, '
        'agent_pin_jwt: "${AGENT_PIN_JWT}", input: "${INPUT} and $PLAIN and ${}" }\n')
    assert loaded.errors == []
    agent, job = loaded.agents[0], loaded.jobs[0]
    assert agent.command == ("run", "${ARG}")
    assert dict(agent.env) == {"TOKEN": "${API_TOKEN}", "MIXED": "pre-${X}-post"}
    assert job.delivery_config.webhook_url == "https://${HOST}/hook"
    assert dict(job.delivery_config.webhook_headers) == {
        "Authorization": "Bearer ${METRICS_API_KEY}"}
    assert job.agent_pin_jwt == "${AGENT_PIN_JWT}"
    assert job.input == "${INPUT} and $PLAIN and ${}"


def test_secret_references_are_not_resolved_even_when_the_variable_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_PIN_JWT", "resolved-too-early")
    job = only_job(load_file(str(SEED_DIR / "secure-task.symbi")))
    assert job.agent_pin_jwt == "${AGENT_PIN_JWT}"


# --- several errors at once -----------------------------------------------------------------------


def test_unknown_keys_in_two_blocks_give_two_diagnostics() -> None:
    text = (
        'schedule a {\n  agent: "x"\n  cron: "* * * * *"\n  max_concurent: 2\n}\n'
        'schedule b {\n  agent: "x"\n  cron: "* * * * *"\n  max_retires: 2\n}\n'
    )
    loaded = load_text(text)
    assert [(d.line, d.col) for d in loaded.errors] == [(4, 3), (9, 3)]
    assert "'max_concurrent'" in loaded.errors[0].message
    assert "'max_retries'" in loaded.errors[1].message
    assert loaded.jobs == []


def test_every_problem_in_one_block_is_reported() -> None:
    text = (
        "schedule s {\n"
        "  agent: 5\n"
        '  cron: "* * * * *"\n'
        "  max_concurrent: 0\n"
        '  policy { require_approval: "no", max_runtim: 5m }\n'
        "}\n"
    )
    loaded = load_text(text)
    assert [(d.line, d.col) for d in loaded.errors] == [(2, 10), (4, 19), (5, 30), (5, 36)]


def test_the_schedule_level_checks_are_all_reported_together() -> None:
    loaded = load_text('schedule {\n  cron: "61 * * * *"\n  timezone: "Nowhere/Land"\n}')
    messages = [d.message for d in loaded.errors]
    assert len(messages) == 4
    assert any("has no name" in m for m in messages)
    assert any("has no agent" in m for m in messages)
    assert any("Nowhere/Land" in m for m in messages)
    assert any("minute field" in m for m in messages)


def test_a_good_block_next_to_a_bad_one_still_loads_but_the_file_is_not_ok() -> None:
    loaded = load_text('agent good { command: [x] }\nagent bad { command: [] }\n'
                       'schedule s { agent: good, cron: "* * * * *" }')
    assert [a.name for a in loaded.agents] == ["good"]
    assert [j.name for j in loaded.jobs] == ["s"]
    assert len(loaded.errors) == 1
    assert not loaded.ok


# --- load_dir -------------------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def by_name(files: list[LoadedFile]) -> dict[str, LoadedFile]:
    return {os.path.basename(f.path): f for f in files}


def test_load_dir_reads_every_symbi_file_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.symbi", 'schedule sb { agent: worker, cron: "* * * * *" }')
    write(tmp_path, "a.symbi", "agent worker { command: [x] }")
    write(tmp_path, "notes.txt", "this { is not a symbi file")
    write(tmp_path, "c.symbi.bak", "garbage {")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "d.symbi", "garbage {")
    files = load_dir(str(tmp_path))
    assert [os.path.basename(f.path) for f in files] == ["a.symbi", "b.symbi"]
    assert all(f.ok for f in files)
    assert files[1].jobs[0].source == "file:" + str(tmp_path / "b.symbi")


def test_a_delivery_problem_of_the_settings_is_shown_at_the_entry_it_names(
        tmp_path: Path) -> None:
    """The daemon's settings find the webhook_url unusable (a real check in
    router.job_problem): the error points at webhook_url, not at the name."""
    from symbid.config import DeliverySettings
    from symbid.delivery.router import job_problem

    write(tmp_path, "a.symbi", 'agent w { command: [x] }\n'
                               'schedule hook {\n  agent: w\n  cron: "* * * * *"\n'
                               '  delivery: ["webhook"]\n'
                               '  webhook_url: "ftp://example.com/x"\n}\n')
    [f] = load_dir(str(tmp_path),
                   delivery_problem=lambda job: job_problem(job, DeliverySettings()))
    [diag] = f.errors
    assert (diag.line, diag.col) == (6, 16), diag.format()
    assert "webhook_url" in diag.message


def test_a_refusal_about_another_field_is_at_the_schedule_not_at_a_channel(
        tmp_path: Path) -> None:
    write(tmp_path, "a.symbi", 'schedule stdout {\n  agent: w\n  cron: "* * * * *"\n'
                               '  delivery: ["log_file", "stdout"]\n}\n')
    [f] = load_dir(str(tmp_path))
    diag = f.schedule_fault("stdout", "name", "a job named 'stdout' already exists")
    assert (diag.line, diag.col) == (1, 10), diag.format()


def test_a_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "1-good.symbi", 'agent w { command: [x] }\n'
                                    'schedule one { agent: w, cron: "* * * * *" }')
    write(tmp_path, "2-broken.symbi", 'schedule two {\n  agent: w\n')
    write(tmp_path, "3-good.symbi", 'schedule three { agent: w, cron: "0 * * * *" }')
    write(tmp_path, "4-bad-key.symbi", 'schedule four { agent: w, cron: "* * * * *", zz: 1 }')
    files = by_name(load_dir(str(tmp_path)))
    assert files["1-good.symbi"].ok and files["3-good.symbi"].ok
    assert [j.name for j in files["1-good.symbi"].jobs] == ["one"]
    assert [j.name for j in files["3-good.symbi"].jobs] == ["three"]
    [broken] = files["2-broken.symbi"].errors
    assert (broken.line, broken.col) == (1, 14)
    assert not files["4-bad-key.symbi"].ok


def test_a_schedule_may_name_an_agent_defined_in_another_file(tmp_path: Path) -> None:
    write(tmp_path, "agents.symbi", 'agent reporter { model: "m" }')
    write(tmp_path, "jobs.symbi", 'schedule daily { agent: reporter, cron: "0 9 * * *" }')
    files = load_dir(str(tmp_path))
    assert all(f.ok for f in files)
    assert [f.warnings for f in files] == [[], []]


def test_a_schedule_naming_an_agent_defined_nowhere_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "jobs.symbi", 'schedule daily {\n  agent: "ghost"\n  cron: "0 9 * * *"\n}')
    [loaded] = load_dir(str(tmp_path))
    [diag] = loaded.errors
    assert (diag.line, diag.col) == (2, 10)
    assert "uses agent 'ghost', which no file defines" in diag.message


def test_an_agent_known_to_the_daemon_satisfies_a_schedule(tmp_path: Path) -> None:
    write(tmp_path, "jobs.symbi", 'schedule daily { agent: builtin, cron: "0 9 * * *" }')
    [loaded] = load_dir(str(tmp_path), known_agents={"builtin"})
    assert loaded.ok


def test_duplicate_schedule_names_across_files_are_an_error_in_the_later_file(
    tmp_path: Path,
) -> None:
    write(tmp_path, "a.symbi",
          'agent w { command: [x] }\nschedule dup { agent: w, cron: "* * * * *" }')
    write(tmp_path, "b.symbi", '\nschedule dup { agent: w, cron: "0 * * * *" }')
    files = by_name(load_dir(str(tmp_path)))
    assert files["a.symbi"].ok
    [diag] = files["b.symbi"].errors
    assert (diag.line, diag.col) == (2, 10)
    assert f"schedule 'dup' is also defined in {tmp_path / 'a.symbi'}" in diag.message


def test_duplicate_agent_names_across_files_are_an_error_in_the_later_file(
    tmp_path: Path,
) -> None:
    write(tmp_path, "a.symbi", "agent w { command: [x] }")
    write(tmp_path, "b.symbi", 'agent w { model: "m" }')
    files = by_name(load_dir(str(tmp_path)))
    assert files["a.symbi"].ok
    [diag] = files["b.symbi"].errors
    assert (diag.line, diag.col) == (1, 7)
    assert "agent 'w' is also defined in" in diag.message


def test_the_guide_form_name_counts_for_cross_file_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "a.symbi",
          'agent w { command: [x] }\nschedule dup { agent: w, cron: "* * * * *" }')
    write(tmp_path, "b.symbi", 'schedule {\n  name: "dup"\n  agent: w\n  cron: "* * * * *"\n}')
    files = by_name(load_dir(str(tmp_path)))
    [diag] = files["b.symbi"].errors
    assert (diag.line, diag.col) == (1, 1)
    assert "'dup' is also defined" in diag.message


def test_an_empty_directory_loads_nothing(tmp_path: Path) -> None:
    assert load_dir(str(tmp_path)) == []


def test_a_missing_directory_raises_dsl_error(tmp_path: Path) -> None:
    missing = tmp_path / "agents.d"
    with pytest.raises(DslError) as info:
        load_dir(str(missing))
    [diag] = info.value.diagnostics
    assert diag.path == str(missing)
    assert "cannot read directory" in diag.message


def test_the_seed_fixture_directory_loads_with_only_missing_agent_errors() -> None:
    files = load_dir(str(SEED_DIR))
    assert len(files) == len(SEED_FILES)
    for f in files:
        if f.path.endswith("heartbeat-monitor.symbi"):
            assert f.ok
        else:
            assert len(f.errors) == 1
            assert "which no file defines" in f.errors[0].message


# --- robustness: nothing but DslError -------------------------------------------------------------

SEED_TEXTS = [p.read_text(encoding="utf-8") for p in SEED_FILES]
TOKENS = ["schedule", "agent", "{", "}", "[", "]", ":", "=", ",", '"x"', '"""y"""', "1", "5m",
          "true", "name", "cron", "\n", "#c", "//c", "/*", "*/", '"']


def parse_and_load(text: str) -> None:
    """parse_text + load_document must raise nothing but DslError."""
    try:
        doc = parse_text(text, "fuzz.symbi")
    except DslError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.line >= 1 and d.col >= 1
            d.format()
        return
    loaded = load_document(doc)
    for d in loaded.errors + loaded.warnings:
        d.format()


@st.composite
def mutated_seed(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEED_TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate-line",
                                   "drop-line"]))
        if op in ("insert", "delete", "replace"):
            i = draw(st.integers(0, len(text)))
            char = draw(st.characters() | st.sampled_from(list('{}[]":=,#/*\\\n')))
            if op == "insert":
                text = text[:i] + char + text[i:]
            elif op == "delete":
                text = text[:i] + text[i + 1:]
            else:
                text = text[:i] + char + text[i + 1:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == "duplicate-line":
                lines.insert(i, lines[i])
            else:
                del lines[i]
            text = "\n".join(lines)
    return text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text_raises_nothing_but_dsl_error(text: str) -> None:
    parse_and_load(text)


@settings(max_examples=300, deadline=None)
@given(mutated_seed())
def test_mutated_seed_blocks_raise_nothing_but_dsl_error(text: str) -> None:
    parse_and_load(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup_raises_nothing_but_dsl_error(text: str) -> None:
    parse_and_load(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("schedule s { x: " + "[" * 5000, id="5000-open-brackets"),
        pytest.param("schedule s { x: " + "[" * 5000 + "]" * 5000 + " }", id="5000-closed"),
        pytest.param("[" * 5000, id="5000-brackets-at-top-level"),
        pytest.param("schedule s { " + "a: { " * 5000 + "}" * 5000 + " }", id="5000-maps"),
        pytest.param("schedule s { " + "a { " * 5000 + "}" * 5000 + " }", id="5000-blocks"),
        pytest.param("meta " + "{" * 5000, id="5000-open-skipped-braces"),
    ],
)
def test_deep_nesting_is_a_dsl_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(DslError):
        load_document(parse_text(text))


def test_deeply_nested_skipped_blocks_are_still_skipped() -> None:
    text = "meta " + "{" * 200 + "}" * 200 + '\nschedule s { agent: a, cron: "@daily" }'
    loaded = load_text(text)
    assert [j.name for j in loaded.jobs] == ["s"]
    assert len(loaded.warnings) == 1


@pytest.mark.parametrize("opening", ["[", "{ a: "])
def test_input_nested_100000_deep_is_refused_before_parsing_with_a_short_excerpt(
    opening: str,
) -> None:
    closing = "]" if opening == "[" else " }"
    text = "schedule s { input: " + opening * 100_000 + "1" + closing * 100_000 + " }\n"
    with pytest.raises(DslError) as excinfo:
        parse_text(text, "deep.symbi")
    (diag,) = excinfo.value.diagnostics
    assert "nested more than" in diag.message and diag.line == 1
    assert max(len(line) for line in diag.format().splitlines()) <= 200


def test_a_file_starting_with_a_byte_order_mark_is_read() -> None:
    loaded = load_text('\ufeffagent a { command: ["/bin/true"] }')
    assert loaded.ok and [a.name for a in loaded.agents] == ["a"]


# --- regressions: inputs that once broke the parser or loader ----------------------------------


@pytest.mark.parametrize("limit", [f'memory: "{"9" * 400}"', f'cpu_time: "{"9" * 400}s"'])
def test_an_absurdly_large_limit_is_a_diagnostic_not_an_overflow(
    tmp_path: Path, limit: str
) -> None:
    path = write(tmp_path, "big.symbi", f"agent a {{\n  command: [x]\n  limits {{ {limit} }}\n}}")
    loaded = load_file(str(path))
    assert not loaded.ok
    assert (loaded.errors[0].line, loaded.errors[0].col) == (3, 22 if "cpu" in limit else 20)


@pytest.mark.parametrize("text", ['schedule "" { agent: a, cron: "* * * * *" }',
                                  'agent "" { command: [x] }'])
def test_an_empty_block_name_is_rejected(text: str) -> None:
    diags = diagnostics_of(text)
    assert diags
    assert (diags[0].line, diags[0].col) in {(1, 7), (1, 10)}


def test_a_literal_tab_inside_a_string_is_kept() -> None:
    job = only_job(load_text('schedule s { agent: "a\tb", cron: "* * * * *" }'))
    assert job.agent_id == "a\tb"


def test_a_lone_surrogate_escape_is_a_diagnostic() -> None:
    diags = diagnostics_of('schedule s {\n  agent: "\\ud800"\n  cron: "@daily"\n}')
    assert [(d.line, d.col) for d in diags] == [(2, 10)]


@pytest.mark.parametrize("separator", ["\x0c", "\u2028", "\x1c"])
def test_the_source_line_is_right_after_an_unusual_line_separator(separator: str) -> None:
    text = f'# page{separator}break\nschedule s {{\n  agent: "a"\n  zzz: 1\n  cron: "@daily"\n}}'
    [diag] = diagnostics_of(text)
    assert (diag.line, diag.col) == (4, 3)
    assert diag.source_line == "  zzz: 1"


@pytest.mark.parametrize("text", ['schedule s { agent: a, cron: "@daily" }\n@', "@"])
def test_a_stray_character_at_the_top_level_lists_what_may_start_a_block(text: str) -> None:
    [diag] = diagnostics_of(text)
    assert "'schedule'" in diag.message
    assert "'agent'" in diag.message
    assert "']'" not in diag.message


def test_blocks_nested_past_the_limit_are_reported_like_nested_maps() -> None:
    text = 'schedule s { agent: a, cron: "@daily" ' + "x { " * 40 + "}" * 40 + " }"
    with pytest.raises(DslError) as info:
        parse_text(text)
    assert "nested more than 32 levels deep" in info.value.diagnostics[0].message


def test_a_triple_string_with_an_escaped_newline_does_not_hide_deep_nesting() -> None:
    text = ('schedule { name: "s", agent: x, cron: "0 * * * *", input: """\\\n""", k: '
            + "[" * 100_000 + "]" * 100_000 + ', j: "x" }\n')
    with pytest.raises(DslError) as excinfo:
        parse_text(text, "bypass.symbi")
    assert "nested more than" in excinfo.value.diagnostics[0].message


def test_many_unterminated_comments_are_one_error() -> None:
    with pytest.raises(DslError) as excinfo:
        parse_text("/* " * 100_000, "comments.symbi")
    assert len(excinfo.value.diagnostics) == 1
