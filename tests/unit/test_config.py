"""``symbid.config.load_config``: the seed guide's TOML, env overrides, and errors."""

from __future__ import annotations

import operator
import os
import re
from pathlib import Path

import pytest

from symbid.config import (
    ApiConfig,
    Config,
    ConfigError,
    DaemonConfig,
    DeliverySettings,
    SchedulerConfig,
    load_config,
)

# The "TOML 配置" block of the seed guide, verbatim.
SEED_TOML = """\
[scheduler]
tick_interval_seconds = 1
max_jitter_seconds = 30
max_concurrent_jobs = 20
enable_metrics = true
default_max_retries = 3
shutdown_timeout_seconds = 60

[scheduler.delivery]
# Webhook 设置
webhook_timeout_seconds = 30
webhook_retry_attempts = 3

# Slack 设置
slack_api_token = "${SLACK_API_TOKEN}"
slack_default_channel = "#ops"

# 邮件设置
smtp_host = "smtp.example.com"
smtp_port = 587
smtp_username = "${SMTP_USER}"
smtp_password = "${SMTP_PASS}"
email_from = "symbiont@example.com"
"""


def write(tmp_path: Path, text: str, name: str = "symbid.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def config_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return info.value


# --- defaults and the seed's file ---------------------------------------------------------------


def test_the_defaults_are_the_seeds() -> None:
    config = load_config(None, {})
    assert config.path is None
    s = config.scheduler
    assert s.tick_interval_seconds == 1
    assert s.max_jitter_seconds == 0
    assert s.max_concurrent_jobs == 10
    assert s.enable_metrics is True
    assert s.default_max_retries == 3
    assert s.shutdown_timeout_seconds == 30
    d = config.delivery
    assert d.webhook_timeout_seconds == 30
    assert d.webhook_retry_attempts == 3
    assert d.smtp_port == 587
    assert (d.slack_api_token, d.smtp_host, d.webhook_auth_header) == (None, None, None)
    assert config.agentpin.required is False
    assert config.agentpin.domain is None
    assert config.api == ApiConfig()
    assert config.daemon == DaemonConfig()


def test_defaults_ignore_unrelated_environment_variables() -> None:
    assert load_config(None, {"HOME": "/root", "SYMBI_OTHER": "x"}) == Config()


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    config = load_config(path, {})
    assert config.path == path
    assert config.scheduler == SchedulerConfig()
    assert config.delivery == DeliverySettings()


def test_the_seed_guides_toml_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_TOML), {})
    assert config.scheduler == SchedulerConfig(
        tick_interval_seconds=1.0, max_jitter_seconds=30.0, max_concurrent_jobs=20,
        enable_metrics=True, default_max_retries=3, shutdown_timeout_seconds=60.0,
    )
    assert config.delivery == DeliverySettings(
        webhook_timeout_seconds=30.0, webhook_retry_attempts=3,
        slack_api_token="${SLACK_API_TOKEN}", slack_default_channel="#ops",
        smtp_host="smtp.example.com", smtp_port=587,
        smtp_username="${SMTP_USER}", smtp_password="${SMTP_PASS}",
        email_from="symbiont@example.com",
    )


def test_secret_references_in_the_file_stay_unresolved_even_when_set(tmp_path: Path) -> None:
    environ = {"SLACK_API_TOKEN": "xoxb-real", "SMTP_USER": "u", "SMTP_PASS": "p"}
    delivery = load_config(write(tmp_path, SEED_TOML), environ).delivery
    assert delivery.slack_api_token == "${SLACK_API_TOKEN}"
    assert delivery.smtp_username == "${SMTP_USER}"
    assert delivery.smtp_password == "${SMTP_PASS}"


def test_integers_in_float_keys_become_floats(tmp_path: Path) -> None:
    scheduler = load_config(write(tmp_path, SEED_TOML), {}).scheduler
    assert isinstance(scheduler.max_jitter_seconds, float)
    assert isinstance(scheduler.shutdown_timeout_seconds, float)
    assert isinstance(scheduler.max_concurrent_jobs, int)


def test_the_guides_update_snippet_loads(tmp_path: Path) -> None:
    text = ("[scheduler]\ntick_interval_seconds = 1\nmax_jitter_seconds = 30\n"
            "default_max_retries = 3\nshutdown_timeout_seconds = 60\n")
    scheduler = load_config(write(tmp_path, text), {}).scheduler
    assert (scheduler.max_jitter_seconds, scheduler.shutdown_timeout_seconds) == (30.0, 60.0)
    assert scheduler.max_concurrent_jobs == 10


def test_every_section_symbid_adds_is_read(tmp_path: Path) -> None:
    text = (
        '[daemon]\nenvironment = "staging"\nsocket_group = "symbi"\n'
        '[api]\nlisten = "127.0.0.1:8787"\n'
        '[agentpin]\nrequired = true\ndomain = "agents.example.com"\n'
        '[llm]\nendpoint = "http://localhost:8000/v1"\nmodel = "m"\ntimeout_seconds = 5\n'
        "[scheduler]\nkeep_runs = 50\nmisfire_grace_seconds = 0\n"
    )
    config = load_config(write(tmp_path, text), {})
    assert config.daemon.environment == "staging"
    assert config.daemon.socket_group == "symbi"
    assert config.api.listen == "127.0.0.1:8787"
    assert (config.agentpin.required, config.agentpin.domain) == (True, "agents.example.com")
    assert config.llm.endpoint == "http://localhost:8000/v1"
    assert config.llm.timeout_seconds == 5.0
    assert config.llm.max_concurrent_requests == 4  # the default
    assert config.scheduler.keep_runs == 50
    assert config.scheduler.misfire_grace_seconds == 0.0


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "[::1]:8080", "localhost:1", "0.0.0.0:65535"])
def test_api_listen_accepts_host_and_port(tmp_path: Path, listen: str) -> None:
    assert load_config(write(tmp_path, f'[api]\nlisten = "{listen}"\n'), {}).api.listen == listen


# --- environment overrides ------------------------------------------------------------------------


def test_the_guides_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, SEED_TOML + '\n[agentpin]\nrequired = false\ndomain = "file.example"\n')
    config = load_config(path, {
        "SYMBI_SCHEDULER_MAX_JITTER": "45",
        "SYMBI_SCHEDULER_MAX_CONCURRENT": "7",
        "SYMBI_SLACK_TOKEN": "xoxb-...",
        "SYMBI_WEBHOOK_AUTH_HEADER": "Bearer secret-token",
        "SYMBI_AGENTPIN_REQUIRED": "true",
        "SYMBI_AGENTPIN_DOMAIN": "agent.example.com",
    })
    assert config.scheduler.max_jitter_seconds == 45.0
    assert config.scheduler.max_concurrent_jobs == 7
    assert config.delivery.slack_api_token == "xoxb-..."
    assert config.delivery.webhook_auth_header == "Bearer secret-token"
    assert config.agentpin.required is True
    assert config.agentpin.domain == "agent.example.com"
    # what the environment does not override stays as the file says
    assert config.scheduler.shutdown_timeout_seconds == 60.0
    assert config.delivery.smtp_password == "${SMTP_PASS}"


@pytest.mark.parametrize(
    ("var", "value", "attribute", "expected"),
    [
        ("SYMBI_SCHEDULER_MAX_JITTER", "30", "scheduler.max_jitter_seconds", 30.0),
        ("SYMBI_SCHEDULER_MAX_JITTER", "2.5", "scheduler.max_jitter_seconds", 2.5),
        ("SYMBI_SCHEDULER_MAX_CONCURRENT", "20", "scheduler.max_concurrent_jobs", 20),
        ("SYMBI_SLACK_TOKEN", "xoxb-1", "delivery.slack_api_token", "xoxb-1"),
        ("SYMBI_WEBHOOK_AUTH_HEADER", "Bearer t", "delivery.webhook_auth_header", "Bearer t"),
        ("SYMBI_AGENTPIN_DOMAIN", "agent.example.com", "agentpin.domain", "agent.example.com"),
    ],
)
def test_each_environment_variable_overrides_its_key(
    tmp_path: Path, var: str, value: str, attribute: str, expected: object
) -> None:
    text = (
        "[scheduler]\nmax_jitter_seconds = 1\nmax_concurrent_jobs = 2\n"
        '[scheduler.delivery]\nslack_api_token = "file"\nwebhook_auth_header = "file"\n'
        '[agentpin]\ndomain = "file.example"\n'
    )
    path = write(tmp_path, text)
    get = operator.attrgetter(attribute)
    before = get(load_config(path, {}))
    after = get(load_config(path, {var: value}))
    assert before != expected
    assert after == expected
    assert type(after) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ("1", True), ("0", False), ("yes", True), ("no", False),
     ("TRUE", True), (" No ", False), ("on", True), ("off", False)],
)
def test_agentpin_required_reads_the_usual_boolean_words(value: str, expected: bool) -> None:
    assert load_config(None, {"SYMBI_AGENTPIN_REQUIRED": value}).agentpin.required is expected


@pytest.mark.parametrize("file_value", ["true", "false"])
def test_agentpin_required_from_the_environment_beats_the_file(
    tmp_path: Path, file_value: str
) -> None:
    path = write(tmp_path, f"[agentpin]\nrequired = {file_value}\n")
    flipped = "false" if file_value == "true" else "true"
    config = load_config(path, {"SYMBI_AGENTPIN_REQUIRED": flipped})
    assert config.agentpin.required is (flipped == "true")


def test_overrides_apply_without_a_file() -> None:
    config = load_config(None, {"SYMBI_SCHEDULER_MAX_CONCURRENT": "3"})
    assert config.scheduler.max_concurrent_jobs == 3


@pytest.mark.parametrize(
    ("var", "value"),
    [("SYMBI_SCHEDULER_MAX_CONCURRENT", "many"), ("SYMBI_SCHEDULER_MAX_CONCURRENT", "2.5"),
     ("SYMBI_SCHEDULER_MAX_JITTER", "30s"), ("SYMBI_AGENTPIN_REQUIRED", "maybe")],
)
def test_a_bad_environment_value_names_the_variable(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, SEED_TOML), {var: value})
    assert f"{var}={value!r}" in info.value.message
    assert info.value.field == var


def test_the_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBI_SCHEDULER_MAX_CONCURRENT", "4")
    assert load_config(None).scheduler.max_concurrent_jobs == 4


# --- errors ------------------------------------------------------------------------------------


def test_an_unknown_key_suggests_the_closest_known_one(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[scheduler]\nmax_concurent_jobs = 5\n")
    path = str(tmp_path / "symbid.toml")
    assert err.message == (f"{path}: unknown key 'scheduler.max_concurent_jobs'; "
                           "did you mean 'max_concurrent_jobs'?")
    assert err.field == "scheduler.max_concurent_jobs"


def test_an_unknown_key_in_the_delivery_table_names_its_dotted_path(tmp_path: Path) -> None:
    err = config_error(tmp_path, '[scheduler.delivery]\nslack_token = "x"\n')
    assert str(tmp_path / "symbid.toml") in err.message
    assert "unknown key 'scheduler.delivery.slack_token'" in err.message
    assert "did you mean 'slack_api_token'?" in err.message


def test_an_unknown_key_without_a_close_match_is_still_named(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[daemon]\nzzz = 1\n")
    assert "unknown key 'daemon.zzz'" in err.message
    assert "did you mean" not in err.message


def test_an_unknown_section_suggests_the_closest_one(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[schedular]\nmax_jitter_seconds = 1\n")
    assert str(tmp_path / "symbid.toml") in err.message
    assert "unknown section [schedular]; did you mean [scheduler]?" in err.message


def test_an_unknown_section_without_a_close_match_lists_the_sections(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[zzz]\n")
    assert "unknown section [zzz]" in err.message
    assert "[daemon], [api], [scheduler], [agentpin], [llm]" in err.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[scheduler]\nmax_concurrent_jobs = "20"\n',
         "scheduler.max_concurrent_jobs must be a whole number, got '20'"),
        ("[scheduler]\nmax_concurrent_jobs = true\n",
         "scheduler.max_concurrent_jobs must be a whole number, got True"),
        ("[scheduler]\nenable_metrics = 1\n",
         "scheduler.enable_metrics must be a boolean (true/false), got 1"),
        ("[scheduler]\nmax_concurrent_jobs = 2.5\n",
         "scheduler.max_concurrent_jobs must be a whole number, got 2.5"),
        ('[scheduler]\nmax_jitter_seconds = "30s"\n',
         "scheduler.max_jitter_seconds must be a number, got '30s'"),
        ("[scheduler]\nmax_jitter_seconds = false\n",
         "scheduler.max_jitter_seconds must be a number, got False"),
        ("[scheduler.delivery]\nsmtp_host = 25\n",
         "scheduler.delivery.smtp_host must be a string, got 25"),
        ('[agentpin]\nrequired = "yes"\n', "agentpin.required must be a boolean"),
        ("[daemon]\nstate_dir = [1]\n", "daemon.state_dir must be a string"),
        ("[llm]\ntimeout_seconds = {}\n", "llm.timeout_seconds must be a number"),
    ],
)
def test_a_wrong_type_names_the_file_the_key_and_the_type(
    tmp_path: Path, text: str, fragment: str
) -> None:
    err = config_error(tmp_path, text)
    assert err.message.startswith(str(tmp_path / "symbid.toml") + ": ")
    assert fragment in err.message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[scheduler]\nmax_jitter_seconds = -1\n", "scheduler.max_jitter_seconds"),
        ("[scheduler]\ndefault_max_retries = -3\n", "scheduler.default_max_retries"),
        ("[scheduler]\nshutdown_timeout_seconds = -0.5\n", "scheduler.shutdown_timeout_seconds"),
        ("[scheduler]\nmax_concurrent_jobs = -1\n", "scheduler.max_concurrent_jobs"),
        ("[scheduler.delivery]\nwebhook_retry_attempts = -1\n",
         "scheduler.delivery.webhook_retry_attempts"),
        ("[scheduler.delivery]\nsmtp_port = -25\n", "scheduler.delivery.smtp_port"),
    ],
)
def test_a_negative_value_is_rejected(tmp_path: Path, text: str, key: str) -> None:
    err = config_error(tmp_path, text)
    assert f"{key} must be at least" in err.message
    assert err.field == key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[scheduler]\nmax_concurrent_jobs = 0\n", "scheduler.max_concurrent_jobs"),
        ("[scheduler]\ntick_interval_seconds = 0\n", "scheduler.tick_interval_seconds"),
        ("[scheduler]\nkeep_runs = 0\n", "scheduler.keep_runs"),
        ("[scheduler.delivery]\nsmtp_port = 0\n", "scheduler.delivery.smtp_port"),
        ("[scheduler.delivery]\nwebhook_timeout_seconds = 0\n",
         "scheduler.delivery.webhook_timeout_seconds"),
        ("[llm]\ntimeout_seconds = 0\n", "llm.timeout_seconds"),
        ("[llm]\nmax_concurrent_requests = 0\n", "llm.max_concurrent_requests"),
    ],
)
def test_a_value_below_its_minimum_is_rejected(tmp_path: Path, text: str, key: str) -> None:
    err = config_error(tmp_path, text)
    assert f"{key} must be at least" in err.message


@pytest.mark.parametrize("text, key, most", [
    ("[scheduler.delivery]\nsmtp_port = 70000\n", "scheduler.delivery.smtp_port", 65535),
    ("[llm]\nmax_concurrent_requests = 100000\n", "llm.max_concurrent_requests", 1024),
])
def test_a_value_above_its_maximum_is_rejected(tmp_path: Path, text: str, key: str,
                                               most: int) -> None:
    err = config_error(tmp_path, text)
    assert f"{key} must be at most {most}" in err.message


def test_max_concurrent_zero_from_the_environment_is_rejected() -> None:
    with pytest.raises(ConfigError):
        load_config(None, {"SYMBI_SCHEDULER_MAX_CONCURRENT": "0"})


def test_a_negative_environment_value_names_the_variable_not_the_file(tmp_path: Path) -> None:
    err = config_error(tmp_path, SEED_TOML, {"SYMBI_SCHEDULER_MAX_JITTER": "-5"})
    assert "SYMBI_SCHEDULER_MAX_JITTER" in err.message


@pytest.mark.parametrize("key", ["max_jitter_seconds", "tick_interval_seconds"])
def test_nan_is_not_a_number_of_seconds(tmp_path: Path, key: str) -> None:
    config_error(tmp_path, f"[scheduler]\n{key} = nan\n")


@pytest.mark.parametrize(
    "listen", ["nope", "", "8080", "127.0.0.1:", ":8080", "host:port", "a b:80", "::1:8080"]
)
def test_a_bad_api_listen_is_rejected(tmp_path: Path, listen: str) -> None:
    err = config_error(tmp_path, f'[api]\nlisten = "{listen}"\n')
    assert "api.listen must be HOST:PORT" in err.message
    assert f"got {listen!r}" in err.message
    assert err.field == "api.listen"


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:0"])
def test_an_api_listen_port_out_of_range_is_rejected(tmp_path: Path, listen: str) -> None:
    config_error(tmp_path, f'[api]\nlisten = "{listen}"\n')


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[scheduler\nmax_jitter_seconds = 1\n")
    assert err.message.startswith(f"{tmp_path / 'symbid.toml'}: not valid TOML")
    assert "line 1" in err.message


def test_a_repeated_key_is_invalid_toml(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[scheduler]\nmax_jitter_seconds = 1\nmax_jitter_seconds = 2\n")
    assert "not valid TOML" in err.message


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(str(missing), {})
    assert info.value.message == f"{missing}: cannot read: No such file or directory"


def test_an_unreadable_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    # A directory cannot be read as a file whoever runs the test (root ignores mode bits).
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path), {})
    assert info.value.message.startswith(f"{tmp_path}: cannot read: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file with mode 000")
def test_a_file_without_read_permission_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, SEED_TOML)
    os.chmod(path, 0)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert "cannot read: Permission denied" in info.value.message


def test_a_config_error_is_an_invalid_input_with_its_own_code(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[zzz]\n")
    assert err.code == "invalid_config"
    assert err.to_wire()["error"]["code"] == "invalid_config"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[scheduler]\ndelivery = 5\n", "scheduler.delivery must be a table"),
        ('[scheduler]\ndelivery = "slack"\n', "scheduler.delivery must be a table"),
        ("scheduler = 5\n", "scheduler must be a table"),
        ("[[scheduler]]\n", "scheduler must be a table"),
    ],
)
def test_a_section_that_is_not_a_table_is_rejected(
    tmp_path: Path, text: str, fragment: str
) -> None:
    err = config_error(tmp_path, text)
    assert str(tmp_path / "symbid.toml") in err.message
    assert fragment in err.message


def test_an_unknown_sub_table_of_a_section_is_an_unknown_key(tmp_path: Path) -> None:
    err = config_error(tmp_path, "[scheduler.metrics]\nport = 9100\n")
    assert "unknown key 'scheduler.metrics'" in err.message


# --- paths ---------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_files_directory(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "symbid"
    etc.mkdir(parents=True)
    text = (
        '[daemon]\nstate_dir = "state"\nsocket = "run/control.sock"\n'
        'agents_dir = "./agents.d"\nlog_dir = "../log"\n'
        '[api]\ntoken_file = "secrets/token"\n'
    )
    config = load_config(write(etc, text), {})
    assert config.daemon.state_dir == str(etc / "state")
    assert config.daemon.socket == str(etc / "run" / "control.sock")
    assert config.daemon.agents_dir == str(etc / "agents.d")
    assert config.daemon.log_dir == str(tmp_path / "etc" / "log")
    assert config.api.token_file == str(etc / "secrets" / "token")


def test_relative_paths_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "elsewhere").mkdir()
    write(tmp_path / "conf", '[daemon]\nstate_dir = "state"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/symbid.toml", {})
    assert config.daemon.state_dir == str(tmp_path / "conf" / "state")
    assert config.path == str(tmp_path / "conf" / "symbid.toml")


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    text = (
        '[daemon]\nstate_dir = "/var/lib/other"\nsocket = "/run/x.sock"\n'
        'agents_dir = "/etc/agents.d"\nlog_dir = "/var/log/x"\n'
        '[api]\ntoken_file = "/etc/symbid/token"\n'
    )
    config = load_config(write(tmp_path, text), {})
    assert config.daemon == DaemonConfig(state_dir="/var/lib/other", socket="/run/x.sock",
                                         agents_dir="/etc/agents.d", log_dir="/var/log/x")
    assert config.api.token_file == "/etc/symbid/token"


def test_default_paths_are_absolute_and_not_moved_by_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_TOML), {})
    assert config.daemon == DaemonConfig()
    assert config.api.token_file is None


def test_keys_that_are_not_paths_are_not_resolved(tmp_path: Path) -> None:
    text = '[daemon]\nsocket_group = "symbi"\nenvironment = "prod"\n[llm]\nmodel = "m/x"\n'
    config = load_config(write(tmp_path, text), {})
    assert config.daemon.socket_group == "symbi"
    assert config.daemon.environment == "prod"
    assert config.llm.model == "m/x"


def test_api_tokens_are_named_references(tmp_path: Path) -> None:
    path = tmp_path / "symbid.toml"
    path.write_text('[api.tokens]\nalice = "${ALICE_TOKEN}"\nci-bot = "${CI}"\n')
    assert load_config(str(path), {}).api.tokens == {"alice": "${ALICE_TOKEN}",
                                                     "ci-bot": "${CI}"}


@pytest.mark.parametrize(("text", "field", "said"), [
    ('[api.tokens]\nalice = "s3cret-literal"\n', "api.tokens.alice", "${VAR} reference"),
    ('[api.tokens]\n"bad name" = "${X}"\n', "api.tokens.bad name", "a token's name takes"),
    ('[api]\ntokens = "x"\n', "api.tokens", "must be a table"),
    ('[api.tokens]\nscheduler = "${X}"\n', "api.tokens.scheduler", "audit trail's name"),
    ('[api.tokens]\n"agents.d" = "${X}"\n', "api.tokens.agents.d", "audit trail's name"),
])
def test_a_bad_api_token_entry_is_refused_naming_it(tmp_path: Path, text: str, field: str,
                                                     said: str) -> None:
    path = tmp_path / "symbid.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    assert info.value.field == field and said in info.value.message
    assert "s3cret-literal" not in info.value.message


def test_a_tcp_token_that_is_not_printable_ascii_is_refused_at_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-ASCII tokens would be compared as '?'s: refused, naming where it comes from."""
    from symbid.config import ApiConfig, read_tokens
    from symbid.errors import SymbidError

    monkeypatch.setenv("OPS_TOKEN", "пароль-0123456789")
    monkeypatch.delenv("SYMBI_API_KEY", raising=False)
    with pytest.raises(SymbidError, match=r"api\.tokens\.ops: a token must be printable ASCII"):
        read_tokens(ApiConfig(tokens={"ops": "${OPS_TOKEN}"}), os.environ)


@pytest.mark.parametrize("text", ["0", "[scheduler]\nmax_jitter_seconds", "a = \u00ff\n"])
def test_invalid_toml_names_the_line_and_column_even_at_the_end_of_the_file(
    tmp_path: Path, text: str
) -> None:
    err = config_error(tmp_path, text)
    assert "not valid TOML" in err.message and re.search(r"at line \d+, column \d+", err.message)


def test_a_config_file_that_is_not_utf8_names_where(tmp_path: Path) -> None:
    path = tmp_path / "symbid.toml"
    path.write_bytes(b"[daemon]\nstate_dir = \"\xff\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    assert info.value.message == (f"{path}: not valid TOML: not UTF-8 (at line 2, column 14)")


def test_max_batch_bytes_defaults_to_16_mib_and_is_read(tmp_path: Path) -> None:
    assert load_config(None, {}).api.max_batch_bytes == 16 * 1024 * 1024
    config = load_config(write(tmp_path, "[api]\nmax_batch_bytes = 4096\n"), {})
    assert config.api.max_batch_bytes == 4096


@pytest.mark.parametrize("value", ["0", "-5", '"big"', "1.5", "true"])
def test_max_batch_bytes_must_be_a_whole_number_of_at_least_1024(
    tmp_path: Path, value: str,
) -> None:
    error = config_error(tmp_path, f"[api]\nmax_batch_bytes = {value}\n")
    assert error.field == "api.max_batch_bytes" and "max_batch_bytes" in error.message


def test_metrics_per_job_labels_defaults_to_true_and_must_be_a_boolean(
    tmp_path: Path,
) -> None:
    assert load_config(None, {}).metrics.per_job_labels is True
    config = load_config(write(tmp_path, "[metrics]\nper_job_labels = false\n"), {})
    assert config.metrics.per_job_labels is False
    error = config_error(tmp_path, '[metrics]\nper_job_labels = "no"\n')
    assert error.field == "metrics.per_job_labels"
    error = config_error(tmp_path, "[metrics]\nper_job_label = false\n")
    assert "per_job_labels" in error.message  # the close match is suggested


@pytest.mark.parametrize(("mode", "refused"), [(0o600, False), (0o640, False), (0o400, False),
                                               (0o644, True), (0o602, True), (0o604, True)])
def test_a_token_file_other_users_may_read_or_write_is_refused_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, refused: bool,
) -> None:
    from symbid.config import ApiConfig, read_tokens

    path = tmp_path / "token"
    path.write_text("t0ken-0123456789\n")
    path.chmod(mode)
    monkeypatch.delenv("SYMBI_API_KEY", raising=False)
    if not refused:
        assert read_tokens(ApiConfig(token_file=str(path)), os.environ) == {
            "default": "t0ken-0123456789"}
        return
    with pytest.raises(ConfigError) as info:
        read_tokens(ApiConfig(token_file=str(path)), os.environ)
    assert info.value.field == "api.token_file" and f"mode {mode:04o}" in info.value.message
    assert "t0ken" not in info.value.message
