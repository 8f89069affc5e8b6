"""``[scheduler.delivery]``'s keys for the channels: slack_api_base, smtp_ssl, ca_bundle and
the ``[scheduler.delivery.custom.NAME]`` tables, each error naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbid.config import ConfigError, CustomChannel, DeliverySettings, load_config
from symbid.delivery import router
from symbid.delivery.base import Payload, Target


def load(tmp_path: Path, text: str) -> DeliverySettings:
    path = tmp_path / "symbid.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(str(path), {}).delivery


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value


def test_the_new_keys_have_their_documented_defaults(tmp_path: Path) -> None:
    delivery = load(tmp_path, "")
    assert delivery.slack_api_base == "https://slack.com/api"
    assert (delivery.smtp_ssl, delivery.smtp_starttls, delivery.smtp_port) == (False, True, 587)
    assert delivery.ca_bundle is None
    assert delivery.custom == {}


def test_smtp_ssl_turns_starttls_off_and_defaults_the_port_to_465(tmp_path: Path) -> None:
    delivery = load(tmp_path, "[scheduler.delivery]\nsmtp_ssl = true\n")
    assert (delivery.smtp_ssl, delivery.smtp_starttls, delivery.smtp_port) == (True, False, 465)


def test_smtp_ssl_keeps_a_port_that_is_written(tmp_path: Path) -> None:
    delivery = load(tmp_path, "[scheduler.delivery]\nsmtp_ssl = true\nsmtp_port = 2465\n")
    assert delivery.smtp_port == 2465


def test_smtp_ssl_and_smtp_starttls_both_written_true_is_an_error_naming_both(
        tmp_path: Path) -> None:
    err = error(tmp_path, "[scheduler.delivery]\nsmtp_ssl = true\nsmtp_starttls = true\n")
    assert "scheduler.delivery.smtp_starttls and scheduler.delivery.smtp_ssl" in err.message
    assert err.field == "scheduler.delivery.smtp_ssl"


@pytest.mark.parametrize("host", ["mail.example.com", "10.0.0.5", "localhost.evil.com",
                                  "127.0.0.1.nip.io", "127.\u0660.\u0660.\u0661", "[::1]"])
def test_smtp_credentials_without_tls_to_another_host_are_refused(tmp_path: Path,
                                                                  host: str) -> None:
    exc = error(tmp_path, f'[scheduler.delivery]\nsmtp_host = "{host}"\n'
                          'smtp_username = "${U}"\nsmtp_password = "${P}"\n'
                          "smtp_starttls = false\n")
    assert exc.field == "scheduler.delivery.smtp_password"
    assert "in clear" in exc.message and "smtp_starttls" in exc.message


@pytest.mark.parametrize("host", ["localhost", "LocalHost", "127.0.0.1", "127.3.4.5", "::1"])
def test_smtp_credentials_without_tls_to_a_loopback_relay_are_allowed(tmp_path: Path,
                                                                      host: str) -> None:
    delivery = load(tmp_path, f'[scheduler.delivery]\nsmtp_host = "{host}"\n'
                              'smtp_username = "u"\nsmtp_password = "${P}"\n'
                              "smtp_starttls = false\n")
    assert delivery.smtp_starttls is False


def test_webhook_timeout_seconds_is_bounded(tmp_path: Path) -> None:
    exc = error(tmp_path, "[scheduler.delivery]\nwebhook_timeout_seconds = 3600\n")
    assert exc.field == "scheduler.delivery.webhook_timeout_seconds"
    assert "at most 300" in exc.message
    assert load(tmp_path, "[scheduler.delivery]\nwebhook_timeout_seconds = 300\n")\
        .webhook_timeout_seconds == 300


def test_a_ca_bundle_is_relative_to_the_file_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    assert load(tmp_path, '[scheduler.delivery]\nca_bundle = "ca.pem"\n').ca_bundle == \
        str(tmp_path / "ca.pem")

    err = error(tmp_path, '[scheduler.delivery]\nca_bundle = "missing.pem"\n')

    assert "scheduler.delivery.ca_bundle" in err.message and "missing.pem" in err.message
    assert err.field == "scheduler.delivery.ca_bundle"


@pytest.mark.parametrize("key", ["slack_api_base", "slack_webhook_url"])
@pytest.mark.parametrize("value", ["ftp://example.com", "example.com/api", "https://",
                                   "https://u:p@example.com/x", "https://h:99999/x",
                                   "https://[::1/api"])
def test_slack_urls_must_be_http_urls_with_a_host(tmp_path: Path, key: str, value: str) -> None:
    err = error(tmp_path, f'[scheduler.delivery]\n{key} = "{value}"\n')
    assert f"scheduler.delivery.{key}" in err.message
    assert err.field == f"scheduler.delivery.{key}"


def test_a_custom_channel_table_gives_its_command(tmp_path: Path) -> None:
    delivery = load(tmp_path, '[scheduler.delivery.custom.teams]\n'
                              'command = ["./post", "--to", "ops"]\n'
                              'env = {TEAMS_TOKEN = "${TEAMS_TOKEN}"}\n'
                              '[scheduler.delivery.custom.pager]\ncommand = ["pager-send"]\n')
    assert delivery.custom == {
        "teams": CustomChannel(command=(str(tmp_path / "post"), "--to", "ops"),
                               env={"TEAMS_TOKEN": "${TEAMS_TOKEN}"}),
        "pager": CustomChannel(command=("pager-send",)),
    }


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ('[scheduler.delivery.custom.teams]\ncommand = ["x"]\ntimeout = 3\n',
         "scheduler.delivery.custom.teams.timeout", "takes command and env"),
        ('[scheduler.delivery.custom.teams]\ncommand = ["x"]\nenv = {SYMBID_JOB = "x"}\n',
         "scheduler.delivery.custom.teams.env", "not starting with SYMBID_"),
        ('[scheduler.delivery.custom.teams]\ncommand = ["x"]\nenv = {A = 1}\n',
         "scheduler.delivery.custom.teams.env", "to strings"),
        ("[scheduler.delivery.custom.teams]\n",
         "scheduler.delivery.custom.teams.command", "must be a non-empty list"),
        ('[scheduler.delivery.custom.teams]\ncommand = "x"\n',
         "scheduler.delivery.custom.teams.command", "must be a non-empty list"),
        ('[scheduler.delivery.custom.teams]\ncommand = ["x", ""]\n',
         "scheduler.delivery.custom.teams.command", "non-empty strings"),
        ('[scheduler.delivery.custom."-bad name"]\ncommand = ["x"]\n',
         "scheduler.delivery.custom.-bad name", "name takes letters"),
        ('[scheduler.delivery]\ncustom = 1\n', "scheduler.delivery.custom", "must hold tables"),
        ('[scheduler.delivery]\ncustom = {teams = 1}\n', "scheduler.delivery.custom.teams",
         "must be a table"),
    ],
)
def test_a_bad_custom_channel_table_is_an_error_naming_the_key(
        tmp_path: Path, text: str, field: str, fragment: str) -> None:
    err = error(tmp_path, text)
    assert err.field == field
    assert fragment in err.message


def test_a_slack_webhook_url_held_whole_in_a_reference_loads_as_the_packaged_config_shows(
    tmp_path: Path,
) -> None:
    delivery = load(tmp_path, '[scheduler.delivery]\nslack_webhook_url = "${SLACK_WEBHOOK_URL}"\n')
    assert delivery.slack_webhook_url == "${SLACK_WEBHOOK_URL}"


@pytest.mark.parametrize(("key", "value"), [
    ("slack_api_base", "${SLACK_API_BASE}"),  # never resolved: taken as it stands
    ("slack_webhook_url", "${UNTERMINATED"),
    ("slack_webhook_url", "${1BAD}"),
    ("slack_webhook_url", "${A}${B}"),
])
def test_only_a_url_resolved_when_sent_may_be_held_whole_in_one_reference(
        tmp_path: Path, key: str, value: str) -> None:
    err = error(tmp_path, f'[scheduler.delivery]\n{key} = "{value}"\n')
    assert err.field == f"scheduler.delivery.{key}"


def test_a_reference_left_in_a_url_when_sent_is_refused_for_good_not_retried(
        tmp_path: Path) -> None:
    delivery = load(tmp_path, '[scheduler.delivery]\nslack_webhook_url = "${SLACK_WEBHOOK_URL}"\n')
    receipt = router.send("slack", Payload(delivery_id="d", job="j", job_id="j", run_id="r",
                                           status="succeeded", output="x"),
                          Target(), delivery, {"SLACK_WEBHOOK_URL": "${OTHER}"},
                          log_dir=str(tmp_path))
    assert not receipt.ok and receipt.permanent
    assert "reference" in (receipt.error or "")


def test_a_url_resolved_from_a_reference_is_checked_when_sent_and_not_shown(
    tmp_path: Path,
) -> None:
    delivery = load(tmp_path, '[scheduler.delivery]\nslack_webhook_url = "${SLACK_WEBHOOK_URL}"\n')
    secret = "ftp://hooks.example/services/T0/B0/sekrit-4711"
    receipt = router.send("slack", Payload(delivery_id="d", job="j", job_id="j", run_id="r",
                                           status="succeeded", output="x"),
                          Target(), delivery, {"SLACK_WEBHOOK_URL": secret}, log_dir=str(tmp_path))
    assert not receipt.ok and receipt.permanent
    assert "must be an http:// or https:// URL" in (receipt.error or "")
    assert "sekrit-4711" not in repr(receipt)
