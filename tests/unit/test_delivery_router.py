"""``symbid.delivery.router.problem``: what keeps a job's channel from delivering, said when
the job is defined, naming the key to set; and ``send`` never raising."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from symbid.config import CustomChannel, DeliverySettings
from symbid.delivery import router
from symbid.delivery.base import Payload, Target

NONE = DeliverySettings()
SLACK_API = DeliverySettings(slack_api_token="${SLACK_TOKEN}")
SMTP = DeliverySettings(smtp_host="smtp.example.com", email_from="symbid@example.com")


def payload(job: str = "nightly") -> Payload:
    return Payload(delivery_id="d-1", job=job, job_id="j-1", run_id="r-1", status="succeeded",
                   output="done")


def test_the_built_in_channels_are_the_seeds_five() -> None:
    assert router.CHANNELS == ("stdout", "log_file", "webhook", "slack", "email")
    assert router.CUSTOM_PREFIX == "custom:"


def test_an_unknown_channel_names_the_known_ones() -> None:
    why = router.problem("carrier-pigeon", Target(), NONE)
    assert why == ("unknown delivery channel 'carrier-pigeon'; channels are stdout, "
                   "log_file, webhook, slack, email and custom:NAME")


def test_an_unknown_channel_with_a_control_character_is_named_escaped() -> None:
    why = router.problem("pi\x1bgeon", Target(), NONE)
    assert why is not None and "\x1b" not in why and "\\x1b" in why


def test_stdout_and_log_file_need_nothing() -> None:
    assert router.problem("stdout", Target(), NONE) is None
    assert router.problem("log_file", Target(), NONE, job="nightly") is None


@pytest.mark.parametrize("job", ["../x", "/etc/passwd", "a/b", ".hidden", ""])
def test_log_file_refuses_a_job_name_that_cannot_name_a_file(job: str) -> None:
    why = router.problem("log_file", Target(), NONE, job=job)
    assert why is not None and "cannot name a log file" in why


def test_log_file_refuses_the_job_name_of_the_daemons_own_log() -> None:
    why = router.problem("log_file", Target(), NONE, job="symbid")
    assert why is not None and "symbid.log, the daemon's own log file" in why


def test_log_file_takes_an_agents_ad_hoc_job() -> None:
    assert router.problem("log_file", Target(), NONE, job="adhoc:reporter") is None


def test_webhook_without_a_url_names_webhook_url() -> None:
    assert router.problem("webhook", Target(), NONE) == (
        "delivery 'webhook' needs webhook_url (the URL to POST the run to)")


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (Target(webhook_url="ftp://example.com/x"), "webhook_url must be an http:// or https://"),
        (Target(webhook_url="https://u:p@example.com/x"), "must not hold credentials"),
        (Target(webhook_url="https://example.com/a b"), "has a space"),
        (Target(webhook_url="http://example.com:99999/x"), "has a bad host or port"),
        (Target(webhook_url="http://[::1/x"), "has a bad host or port"),
        (Target(webhook_url="https://x/", webhook_headers={"X-Symbid-Signature": "forged"}),
         "webhook_headers: X-Symbid-Signature is set by symbid"),
        (Target(webhook_url="https://x/", webhook_headers={"content-length": "1"}),
         "webhook_headers: content-length is set by symbid"),
        (Target(webhook_url="https://x/", webhook_headers={"Bad Name": "v"}),
         "header name 'Bad Name' is not an HTTP token"),
        (Target(webhook_url="https://x/", webhook_headers={"X-A": "v\r\nX-Injected: 1"}),
         "header X-A has a control character"),
        (Target(webhook_url="https://x/", webhook_headers={"X-A": "emoji 🙂"}),
         "header X-A has a character beyond Latin-1"),
        (Target(webhook_url="https://x/", webhook_secret="literal-key"),
         "webhook_secret must be a ${VAR} reference"),
    ],
)
def test_webhook_settings_that_cannot_be_sent_are_refused_naming_the_field(
        target: Target, fragment: str) -> None:
    why = router.problem("webhook", target, NONE)
    assert why is not None and fragment in why


@pytest.mark.parametrize("channel", ["", "  ", "#ops alerts", "#a\nb"])
def test_a_slack_channel_that_is_no_channel_name_is_refused(channel: str) -> None:
    from symbid.channels import delivery_problem
    from symbid.model import DeliveryConfig

    got = delivery_problem(("slack",), DeliveryConfig(slack_channel=channel))
    assert got is not None and got[0] == "slack_channel" and "without spaces" in got[1]


def test_a_webhook_with_references_in_its_url_headers_and_secret_is_fine() -> None:
    target = Target(webhook_url="https://hooks.example.com/${HOOK_PATH}",
                    webhook_headers={"Authorization": "Bearer ${TOKEN}",
                                     "Content-Type": "application/json"},
                    webhook_secret="${HOOK_SECRET}")
    assert router.problem("webhook", target, NONE) is None


def test_slack_with_neither_a_token_nor_a_webhook_url_names_both_keys() -> None:
    why = router.problem("slack", Target(slack_channel="#ops"), NONE)
    assert why == ("delivery 'slack' needs [scheduler.delivery] slack_api_token (or "
                   "SYMBI_SLACK_TOKEN) and a channel, or slack_webhook_url")


def test_slack_with_a_token_needs_a_channel_or_a_default() -> None:
    assert router.problem("slack", Target(), SLACK_API) == (
        "delivery 'slack' needs the job's slack_channel or [scheduler.delivery] "
        "slack_default_channel")
    assert router.problem("slack", Target(slack_channel="#ops"), SLACK_API) is None
    with_default = DeliverySettings(slack_api_token="x", slack_default_channel="#ops")
    assert router.problem("slack", Target(), with_default) is None


def test_slack_through_an_incoming_webhook_refuses_a_channel_it_could_not_honour() -> None:
    hook = DeliverySettings(slack_webhook_url="https://hooks.slack.com/services/${HOOK}")
    assert router.problem("slack", Target(), hook) is None
    why = router.problem("slack", Target(slack_channel="#ops"), hook)
    assert why is not None and why.startswith("the job's slack_channel is set, but without")


@pytest.mark.parametrize(
    ("target", "settings", "expected"),
    [
        (Target(), SMTP, "delivery 'email' needs email_recipients (the addresses to send "
                         "the run to)"),
        (Target(email_recipients=("ops@example.com",)), DeliverySettings(email_from="a@b"),
         "delivery 'email' needs [scheduler.delivery] smtp_host"),
        (Target(email_recipients=("ops@example.com",)), DeliverySettings(smtp_host="h"),
         "delivery 'email' needs [scheduler.delivery] email_from"),
        (Target(email_recipients=("ops@example.com",)),
         DeliverySettings(smtp_host="h", email_from="a@b", smtp_username="u"),
         "[scheduler.delivery] smtp_username is set without smtp_password"),
        (Target(email_recipients=("ops@example.com",)),
         DeliverySettings(smtp_host="h", email_from="a@b", smtp_ssl=True),
         "[scheduler.delivery] smtp_starttls and smtp_ssl are both true; choose one "
         "(smtp_ssl: implicit TLS; smtp_starttls: STARTTLS)"),
        (Target(email_recipients=("not an address",)), SMTP,
         "email_recipients: 'not an address' is not an email address"),
        (Target(email_recipients=("Ops <ops@example.com>",)), SMTP,
         "email_recipients: 'Ops <ops@example.com>' must be a bare address (user@example.com)"),
        (Target(email_recipients=("ops@example.com\r\nBcc: x@y",)), SMTP,
         "email_recipients: 'ops@example.com\\r\\nBcc: x@y' has a line break in it"),
    ],
)
def test_email_names_what_is_missing(target: Target, settings: DeliverySettings,
                                     expected: str) -> None:
    assert router.problem("email", target, settings) == expected


def test_email_takes_a_sender_with_a_display_name() -> None:
    settings = DeliverySettings(smtp_host="h", email_from="symbid <symbid@example.com>")
    assert router.problem("email", Target(email_recipients=("ops@example.com",)),
                          settings) is None


def test_a_custom_channel_that_resolves_nowhere_names_both_places_to_define_it() -> None:
    why = router.problem("custom:teams", Target(), NONE)
    assert why == ("channel 'custom:teams' is not defined: install a Python entry point "
                   "'teams' in group 'symbid.delivery', or set "
                   "[scheduler.delivery.custom.teams] command = [...] in symbid.toml")


def test_a_custom_channel_with_a_command_table_resolves() -> None:
    settings = DeliverySettings(custom={"teams": CustomChannel(command=("/bin/true",))})
    assert router.problem("custom:teams", Target(), settings) is None


def test_a_custom_channel_name_must_follow_the_rule() -> None:
    why = router.problem("custom:", Target(), NONE)
    assert why is not None and "a custom channel's name takes letters" in why


def test_problems_gives_each_bad_entry_its_index_and_a_repeated_channel() -> None:
    found = router.problems(("stdout", "pager", "webhook", "stdout"), Target(), NONE,
                            job="nightly")
    assert [i for i, _ in found] == [1, 2, 3]
    assert found[2][1] == "delivery channel 'stdout' is named twice"


def test_send_to_an_unknown_channel_is_a_permanent_failure_not_an_exception(
        tmp_path: Path) -> None:
    receipt = router.send("pager", payload(), Target(), NONE, {}, log_dir=str(tmp_path))
    assert (receipt.ok, receipt.permanent) == (False, True)
    assert receipt.error is not None and receipt.error.startswith("unknown delivery channel")


def test_send_for_a_setting_removed_since_the_job_was_defined_is_a_permanent_failure(
        tmp_path: Path) -> None:
    receipt = router.send("email", payload(), Target(email_recipients=("a@b.c",)), NONE, {},
                          log_dir=str(tmp_path))
    assert (receipt.channel, receipt.ok, receipt.permanent) == ("email", False, True)
    assert receipt.error == "delivery 'email' needs [scheduler.delivery] smtp_host"


def test_an_exception_inside_a_channel_becomes_a_masked_retryable_receipt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom with hunter2-secret inside")

    monkeypatch.setattr(router.webhook, "send", broken)
    target = Target(webhook_url="https://x/", webhook_secret="${KEY}")
    alert = replace(payload(), run_id="", status="dead_letter", trigger="alert")

    receipt = router.send("webhook", payload(), target, NONE, {"KEY": "hunter2-secret"},
                          log_dir=str(tmp_path))
    router.send("webhook", alert, target, NONE, {"KEY": "hunter2-secret"},
                log_dir=str(tmp_path))

    assert (receipt.ok, receipt.permanent) == (False, False)
    assert receipt.error == "RuntimeError: boom with *** inside"
    assert [r.getMessage().split(": ")[0] for r in caplog.records] == [
        f"delivery channel webhook failed (run {payload().run_id} {payload().status})",
        "delivery channel webhook failed (alert dead_letter)"]
