"""Fuzzing the parsers of untrusted text other than the DSL (whose fuzzing is in test_dsl.py):
cron expressions, ``at`` instants, durations, time zones and the config file. Each either
gives a valid result or raises a SymbidError that names the problem (the field, or the
file with its line and column, or the key); never another exception, never a hang.

``deadline`` is a hang guard (a minute per example), not a speed check.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from symbid.config import ENV_OVERRIDES, ConfigError, load_config
from symbid.cronexpr import parse_cron
from symbid.errors import InvalidAt, InvalidCron, InvalidDuration, InvalidTimezone, SymbidError
from symbid.timing import (
    LATEST_INSTANT,
    load_zone,
    make_schedule,
    next_slots,
    parse_at,
    parse_duration,
    parse_instant,
)

HANG_GUARD = settings(max_examples=400, deadline=timedelta(seconds=60),
                      suppress_health_check=[HealthCheck.too_slow])
NOW = 1_780_000_000_000  # 2026-05-28
ZONES = ["UTC", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "Asia/Kathmandu"]

# --- cron ------------------------------------------------------------------------------------

CRON_ATOMS = ["*", "?", "0", "1", "5", "7", "12", "23", "29", "30", "31", "59", "60", "99",
              "-1", "/", "-", ",", "L", "W", "#", "LW", "5L", "15W", "MON", "sun", "JAN",
              "dec", "1-5", "*/0", "*/15", "1-31/2", "@daily", "@reboot", "@yearly", "H",
              "2147483648", "9" * 30, "\t", "\u3000", "\x00", "💥"]
cron_fields = st.lists(st.lists(st.sampled_from(CRON_ATOMS), min_size=1, max_size=4)
                       .map("".join), min_size=0, max_size=8).map(" ".join)
cron_text = cron_fields | st.text(max_size=40)


def check_cron(expr: str, zone: str) -> None:
    try:
        spec = parse_cron(expr)
    except InvalidCron as exc:
        assert exc.field is not None and exc.message, expr
        return
    schedule = make_schedule(expr, None, zone)
    slots = next_slots(schedule, NOW, 3)
    assert slots == sorted(slots) and all(NOW < s <= LATEST_INSTANT for s in slots)
    assert spec.croniter_expr


@HANG_GUARD
@given(expr=cron_text, zone=st.sampled_from(ZONES))
@example(expr="0 0 30 2 *", zone="UTC")  # a day that never occurs
@example(expr="0 0 29 2 1", zone="UTC")
@example(expr="* * * * * * *", zone="UTC")
def test_cron_text_is_a_schedule_or_an_invalid_cron_naming_its_field(expr: str,
                                                                      zone: str) -> None:
    check_cron(expr, zone)


# --- at and instants --------------------------------------------------------------------------

AT_ATOMS = ["2026", "9999", "0000", "0001", "10000", "-", "-01", "-12", "-13", "-31", "-00",
            "T", " ", "00", "23", "24", ":", "59", "60", ".", "999999999", "Z", "z", "+",
            "+14:00", "-23:59", "+99:99", "+0530", "UTC", "now", "+5m", "in", "5m", "tomorrow",
            "12:00", "\u0660", "²", "\x00"]
at_text = st.lists(st.sampled_from(AT_ATOMS), max_size=10).map("".join) | st.text(max_size=30)


@HANG_GUARD
@given(text=at_text, zone=st.sampled_from(ZONES), allow_past=st.booleans())
@example(text="9999-12-31T23:59:59-23:59", zone="UTC", allow_past=True)
@example(text="0001-01-01T00:00:00+14:00", zone="UTC", allow_past=True)
def test_at_text_is_an_instant_in_range_or_an_invalid_at(text: str, zone: str,
                                                         allow_past: bool) -> None:
    try:
        instant = parse_at(text, zone, NOW, allow_past=allow_past)
    except InvalidAt as exc:
        assert exc.field == "at" and exc.message
        return
    assert isinstance(instant, int) and instant <= LATEST_INSTANT
    assert allow_past or instant > NOW
    assert parse_instant(text, zone) == instant
    schedule = make_schedule(None, instant, zone)
    assert schedule.next_after(instant - 1) == instant


# --- durations and zones -----------------------------------------------------------------------

duration = (st.lists(st.sampled_from(["1", "30", "0.5", "1e9", "9" * 40, "s", "m", "h", "d",
                                      "w", "ms", "seconds", ".", " ", "-", "nan", "inf", ""]),
                     max_size=6).map("".join) | st.text(max_size=20)
            | st.floats(allow_nan=True) | st.integers() | st.booleans())


@HANG_GUARD
@given(value=duration)
def test_a_duration_is_a_finite_number_of_seconds_or_an_invalid_duration(value: object) -> None:
    try:
        seconds = parse_duration(value, field="max_runtime")  # type: ignore[arg-type]
    except InvalidDuration as exc:
        assert exc.field == "max_runtime" and "max_runtime" in exc.message
        return
    assert 0 <= seconds <= 100 * 365 * 86400


@HANG_GUARD
@given(name=st.text(max_size=30) | st.sampled_from(
    ["UTC", "../../etc/passwd", "/etc/localtime", "Europe/../Europe/Berlin", "posixrules",
     "Etc/GMT+99", "", ".", "Factory", "America/New_York\x00", "zone.tab"]))
def test_a_zone_name_is_a_zone_or_an_invalid_timezone(name: str) -> None:
    try:
        load_zone(name)
    except InvalidTimezone as exc:
        assert exc.field is not None and exc.message
        return
    # A name that loads is one a schedule can use.
    make_schedule("0 0 * * *", None, name)


# --- config files ---------------------------------------------------------------------------

PACKAGED_PATH = Path(__file__).resolve().parents[2] / "packaging" / "symbid.toml"
PACKAGED = PACKAGED_PATH.read_text()
# Its commented keys opened (but for those under tables that are commented out themselves),
# the files it names made ones that exist.
OPENED = re.sub(r"^#\s?(?!ci |command |env )(\w+ = )", r"\1", PACKAGED, flags=re.M) \
    .replace("/etc/symbid/ca.pem", str(PACKAGED_PATH)) \
    .replace("/etc/symbid/agentpin-bundle.json", str(PACKAGED_PATH))
PACKAGED_ENV = {"SLACK_WEBHOOK_URL": "https://hooks.example/x", "SMTP_PASSWORD": "p",
                "SLACK_TOKEN": "xoxb-1", "WEBHOOK_TOKEN": "w", "LLM_API_KEY": "k"}
SECTIONS = ["daemon", "api", "scheduler", "scheduler.delivery", "agentpin", "llm", "audit",
            "api.tokens", "scheduler.delivery.custom.x", "bogus"]
KEYS = ["state_dir", "socket", "listen", "token_file", "max_body_bytes", "run_user",
        "max_concurrent_runs", "shutdown_timeout_seconds", "kill_grace_seconds",
        "webhook_url", "slack_webhook_url", "smtp_host", "smtp_port", "smtp_password",
        "smtp_starttls", "endpoint", "api_key", "timeout_seconds", "enabled", "command",
        "retention_days", "head_timeout_seconds", "ops", "bogus_key", '"quoted key"']
TOML_VALUES = ['"x"', '""', "0", "-1", "1", "65536", "1e400", "nan", "inf", "-inf", "true",
               "false", "1.5", '"${NOPE}"', '"127.0.0.1:0"', '"localhost:99999"',
               '"http://user:pw@127.0.0.1/"', '"/nonexistent/dir"', "[]", '["a", 1]',
               "{ a = 1 }", "1979-05-27T07:32:00Z", "0x10", "'''multi\nline'''", '"\\u0000"',
               '"\\ud800"', "9" * 30]


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        lines.append(f"[{draw(st.sampled_from(SECTIONS))}]")
        for _ in range(draw(st.integers(0, 4))):
            lines.append(f"{draw(st.sampled_from(KEYS))} = {draw(st.sampled_from(TOML_VALUES))}")
    return "\n".join(lines) + "\n"


@st.composite
def mutated_packaged(draw: st.DrawFn) -> str:
    """The packaged config (every key, commented) with its comments opened and a few edits."""
    text = OPENED
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(list('[]{}"=#.\n\\, 0aZ')) | st.characters())
        if op == "insert":
            text = text[:i] + char + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + char + text[i + 1:]
    return text


def check_config(tmp: Path, text: str, environ: dict[str, str]) -> None:
    path = tmp / "symbid.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(str(path), environ=environ)
    except ConfigError as exc:
        assert exc.message.startswith(f"{path}: ") or exc.message.startswith(
            "environment variable "), exc.message
        if "not valid TOML" in exc.message:
            assert re.search(r"line \d+, column \d+", exc.message), exc.message
        else:
            assert exc.field, exc.message  # the key (or section) it is about
    except SymbidError as exc:  # pragma: no cover - the assertion names what leaked
        pytest.fail(f"{type(exc).__name__} rather than ConfigError: {exc}")


ENV = st.dictionaries(st.sampled_from([*ENV_OVERRIDES, "SYMBI_BOGUS", "HOME"]),
                      st.sampled_from(["", "0", "-1", "x", "true", "127.0.0.1:1", "1e999"]),
                      max_size=3)


@HANG_GUARD
@given(text=toml_documents() | mutated_packaged() | st.text(max_size=80),
       environ=ENV | st.just(PACKAGED_ENV))
@example(text="[daemon]\nstate_dir = 1\n", environ={})
@example(text="[api]\nlisten = \"::1\"\n", environ={})
@example(text="[scheduler]\ndelivery = 3\n", environ={})
@example(text="scheduler = 1\n", environ={})
def test_config_text_is_a_config_or_a_config_error_naming_the_file_and_key(
    tmp_path_factory: pytest.TempPathFactory, text: str, environ: dict[str, str]
) -> None:
    check_config(tmp_path_factory.mktemp("cfg"), text, environ)


def test_the_packaged_config_with_every_key_opened_loads(tmp_path: Path) -> None:
    """The mutations above start from a file that loads, so they probe every key's checks."""
    path = tmp_path / "symbid.toml"
    path.write_text(OPENED)
    config = load_config(str(path), environ=PACKAGED_ENV)
    assert config.delivery.slack_webhook_url == "${SLACK_WEBHOOK_URL}"
    assert config.llm.api_key == "${LLM_API_KEY}"
