"""Time rules: both cron dialects, zones, DST as Vixie cron, `at`, durations."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from symbid.cronexpr import parse_cron
from symbid.errors import InvalidAt, InvalidCron, InvalidDuration, InvalidTimezone
from symbid.model import format_duration, format_instant
from symbid.timing import (
    load_zone,
    make_schedule,
    next_slots,
    parse_at,
    parse_duration,
    parse_instant,
)


def slots(expr: str, tz: str, start: str, count: int) -> list[str]:
    schedule = make_schedule(expr, None, tz)
    return [format_instant(s) for s in next_slots(schedule, parse_instant(start), count)]


# (zone, expression, start, expected slots). Transition instants (2026):
#   New York  spring 03-08 07:00Z (02:00 EST -> 03:00 EDT),
#             fall 11-01 06:00Z (02:00 EDT -> 01:00 EST)
#   Berlin    spring 03-29 01:00Z (02:00 CET -> 03:00 CEST), fall 10-25 01:00Z (03:00 -> 02:00)
#   Lord Howe fall 04-04 15:00Z (02:00 +11 -> 01:30 +10:30), spring 10-03 15:30Z (02:00 -> 02:30)
#   Santiago  fall 04-05 03:00Z (00:00 -03 -> Sat 23:00 -04), spring 09-06 04:00Z (00:00 -> 01:00)
DST_CASES = [
    # --- New York, spring forward: fixed-time jobs in the gap run once right after it
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
    ("America/New_York", "0 2 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"]),
    ("America/New_York", "0,30 2 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z"]),
    ("America/New_York", "0 3 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"]),
    ("America/New_York", "59 1 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-08T06:59:00Z", "2026-03-09T05:59:00Z"]),
    # elapsed-time jobs: nothing for local times that do not exist
    ("America/New_York", "*/30 * * * *", "2026-03-08T06:10:00Z",
     ["2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"]),
    ("America/New_York", "15 * * * *", "2026-03-08T06:00:00Z",
     ["2026-03-08T06:15:00Z", "2026-03-08T07:15:00Z"]),
    ("America/New_York", "*/15 2 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-09T06:00:00Z", "2026-03-09T06:15:00Z"]),
    # --- New York, fall back: fixed-time jobs run on the first pass only
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z",
     ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
    ("America/New_York", "0 1 * * *", "2026-10-31T12:00:00Z",
     ["2026-11-01T05:00:00Z", "2026-11-02T06:00:00Z"]),
    ("America/New_York", "0 2 * * *", "2026-10-31T12:00:00Z",
     ["2026-11-01T07:00:00Z", "2026-11-02T07:00:00Z"]),
    # elapsed-time jobs: both passes of the repeated hour
    ("America/New_York", "*/30 * * * *", "2026-11-01T04:50:00Z",
     ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z",
      "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"]),
    ("America/New_York", "0 * * * *", "2026-11-01T04:30:00Z",
     ["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"]),
    ("America/New_York", "0 */2 * * *", "2026-11-01T03:30:00Z",
     ["2026-11-01T04:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T09:00:00Z"]),
    # --- Berlin
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z",
     ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
    ("Europe/Berlin", "*/20 * * * *", "2026-03-29T00:30:00Z",
     ["2026-03-29T00:40:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z"]),
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00Z",
     ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
    ("Europe/Berlin", "30 * * * *", "2026-10-25T00:00:00Z",
     ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"]),
    ("Europe/Berlin", "0 0 29 2 *", "2026-03-01T00:00:00Z",
     ["2028-02-28T23:00:00Z", "2032-02-28T23:00:00Z"]),
    # --- Lord Howe: 30-minute DST
    ("Australia/Lord_Howe", "45 1 * * *", "2026-04-03T12:00:00Z",
     ["2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-04-04T14:20:00Z",
     ["2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z",
      "2026-04-04T15:15:00Z", "2026-04-04T15:30:00Z"]),
    ("Australia/Lord_Howe", "15 2 * * *", "2026-10-02T12:00:00Z",
     ["2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-10-03T15:10:00Z",
     ["2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z"]),
    # --- Santiago: the gap and the overlap sit at midnight
    ("America/Santiago", "0 0 * * *", "2026-09-04T12:00:00Z",
     ["2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"]),
    ("America/Santiago", "0 * * * *", "2026-09-06T02:30:00Z",
     ["2026-09-06T03:00:00Z", "2026-09-06T04:00:00Z", "2026-09-06T05:00:00Z"]),
    ("America/Santiago", "30 23 * * *", "2026-04-03T12:00:00Z",
     ["2026-04-04T02:30:00Z", "2026-04-05T02:30:00Z", "2026-04-06T03:30:00Z"]),
    ("America/Santiago", "30 * * * *", "2026-04-05T01:00:00Z",
     ["2026-04-05T01:30:00Z", "2026-04-05T02:30:00Z", "2026-04-05T03:30:00Z",
      "2026-04-05T04:30:00Z"]),
    # --- the Symbiont runtime's 6-field form follows the same DST rules
    ("America/New_York", "0 30 2 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
    ("America/New_York", "0 0 7 * * Mon-Fri", "2026-03-06T12:00:00Z",
     ["2026-03-09T11:00:00Z", "2026-03-10T11:00:00Z"]),
    ("America/New_York", "* * * * * *", "2026-03-08T06:59:58Z",
     ["2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z", "2026-03-08T07:00:01Z"]),
]


@pytest.mark.parametrize(("zone", "expr", "start", "expected"), DST_CASES)
def test_slots_follow_vixie_dst_rules(
    zone: str, expr: str, start: str, expected: list[str]
) -> None:
    assert slots(expr, zone, start, len(expected)) == expected


CALENDAR_CASES = [
    # Feb 29 only in leap years
    ("0 12 29 2 *", "2026-03-01T00:00:00Z", ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]),
    # Vixie: both day fields restricted -> either matches (Fridays, and the 13th)
    ("0 9 13 * 5", "2026-03-01T00:00:00Z",
     ["2026-03-06T09:00:00Z", "2026-03-13T09:00:00Z", "2026-03-20T09:00:00Z",
      "2026-03-27T09:00:00Z"]),
    # Vixie: a day field starting with '*' makes both apply (days 1,11,21,31 that are Mondays)
    ("0 9 */10 * 1", "2026-01-01T00:00:00Z",
     ["2026-05-11T09:00:00Z", "2026-06-01T09:00:00Z", "2026-08-31T09:00:00Z"]),
    # Vixie: a restricted day-of-week with a full-range day-of-month is every day
    ("0 9 1-31 * 1", "2026-03-02T10:00:00Z", ["2026-03-03T09:00:00Z", "2026-03-04T09:00:00Z"]),
    # Sunday is 0 or 7 in the 5-field form
    ("0 12 * * 7", "2026-03-02T00:00:00Z", ["2026-03-08T12:00:00Z", "2026-03-15T12:00:00Z"]),
    ("0 12 * * 0", "2026-03-02T00:00:00Z", ["2026-03-08T12:00:00Z", "2026-03-15T12:00:00Z"]),
    ("0 12 * * sun", "2026-03-02T00:00:00Z", ["2026-03-08T12:00:00Z", "2026-03-15T12:00:00Z"]),
    ("0 9 * jan,jul mon-fri", "2026-01-30T00:00:00Z",
     ["2026-01-30T09:00:00Z", "2026-07-01T09:00:00Z"]),
    ("@hourly", "2026-03-02T00:30:00Z", ["2026-03-02T01:00:00Z", "2026-03-02T02:00:00Z"]),
    ("@daily", "2026-03-02T00:30:00Z", ["2026-03-03T00:00:00Z", "2026-03-04T00:00:00Z"]),
    ("@weekly", "2026-03-02T00:30:00Z", ["2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"]),
    ("@monthly", "2026-03-02T00:30:00Z", ["2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"]),
    ("@yearly", "2026-03-02T00:30:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    # Symbiont form: seconds first, 1 = Sunday, both day fields must match
    ("0 0 12 * * 1", "2026-03-02T00:00:00Z", ["2026-03-08T12:00:00Z", "2026-03-15T12:00:00Z"]),
    ("0 0 9 13 * 6", "2026-03-01T00:00:00Z", ["2026-03-13T09:00:00Z", "2026-11-13T09:00:00Z"]),
    ("0 0 9 13 * ?", "2026-03-01T00:00:00Z", ["2026-03-13T09:00:00Z", "2026-04-13T09:00:00Z"]),
    ("*/20 * * * * *", "2026-01-01T00:00:00Z",
     ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]),
    ("0 0 0 1 1 * 2027", "2026-03-01T00:00:00Z", ["2027-01-01T00:00:00Z"]),
    ("0 30 7 * * Tues,Thu", "2026-03-02T00:00:00Z",
     ["2026-03-03T07:30:00Z", "2026-03-05T07:30:00Z"]),
]


@pytest.mark.parametrize(("expr", "start", "expected"), CALENDAR_CASES)
def test_calendar_rules_of_both_dialects(expr: str, start: str, expected: list[str]) -> None:
    assert slots(expr, "UTC", start, len(expected)) == expected


def test_a_year_restricted_expression_ends() -> None:
    schedule = make_schedule("0 0 0 1 1 * 2027", None, "UTC")
    assert schedule.next_after(parse_instant("2027-01-01T00:00:00Z")) is None


def test_the_next_slot_is_computed_from_the_previous_slot() -> None:
    schedule = make_schedule("0 9 * * *", None, "UTC")
    first = schedule.next_after(parse_instant("2026-03-01T08:00:00Z"))
    assert first is not None
    # Asking from the slot itself yields the next day's slot, never the same one again.
    assert format_instant(schedule.next_after(first) or 0) == "2026-03-02T09:00:00Z"


@pytest.mark.parametrize(
    ("expr", "field", "fragment"),
    [
        ("61 * * * *", "minute", "out of range 0-59"),
        ("* 24 * * *", "hour", "out of range 0-23"),
        ("* * 0 * *", "day-of-month", "out of range 1-31"),
        ("* * * 13 *", "month", "out of range 1-12"),
        ("* * * * 8", "day-of-week", "out of range 0-7"),
        ("* * * foo *", "month", "month name"),
        ("* * * * funday", "day-of-week", "day name"),
        ("*/0 * * * *", "minute", "positive whole number"),
        ("*/x * * * *", "minute", "positive whole number"),
        ("5-1 * * * *", "minute", "runs backwards"),
        ("1,,2 * * * *", "minute", "empty list item"),
        ("1-2-3 * * * *", "minute", "cannot read"),
        ("? * * * *", "minute", "only allowed"),
        ("* * ? * *", "day-of-month", "only allowed"),
        ("0 0 0 * * 0", "day-of-week", "1 = Sunday"),
        ("0 0 0 * * 8", "day-of-week", "out of range 1-7"),
        ("60 0 0 * * *", "second", "out of range 0-59"),
        ("0 0 0 * * * 1969", "year", "out of range 1970-2099"),
        ("0 0 31 2 *", "day-of-month", "never occurs"),
        ("0 0 30 2 *", "day-of-month", "February has at most 29 days"),
        ("0 0 31 4,6,9,11 *", "day-of-month", "at most 30 days"),
        ("0 0 0 31 2 ?", "day-of-month", "never occurs"),
    ],
)
def test_bad_expressions_name_the_wrong_field(expr: str, field: str, fragment: str) -> None:
    with pytest.raises(InvalidCron) as info:
        parse_cron(expr)
    assert info.value.field == field
    assert fragment in info.value.message
    assert repr(expr) in info.value.message


@pytest.mark.parametrize("expr", ["", "   ", "* * * *", "* * * * * * * *", "@every 5m", "@reboot"])
def test_wrong_shapes_are_rejected(expr: str) -> None:
    with pytest.raises(InvalidCron):
        parse_cron(expr)


def test_an_expression_that_never_fires_again_is_rejected_at_creation() -> None:
    now = parse_instant("2028-06-01T00:00:00Z")
    with pytest.raises(InvalidCron, match="never fires"):
        make_schedule("0 0 0 1 1 * 2027", None, "UTC", now=now)


def test_cron_and_at_together_or_neither_are_rejected() -> None:
    with pytest.raises(InvalidCron, match="exactly one"):
        make_schedule("* * * * *", 1, "UTC")
    with pytest.raises(InvalidCron, match="exactly one"):
        make_schedule(None, None, "UTC")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "EST5"])
def test_invalid_time_zones_are_rejected(zone: str) -> None:
    with pytest.raises(InvalidTimezone):
        load_zone(zone)
    with pytest.raises(InvalidTimezone):
        make_schedule("* * * * *", None, zone)


def test_fixed_time_and_elapsed_time_jobs_are_told_apart() -> None:
    assert parse_cron("30 2 * * *").fixed_time
    assert parse_cron("0 1-3 * * *").fixed_time
    assert parse_cron("0 30 2 * * *").fixed_time
    assert not parse_cron("*/30 * * * *").fixed_time
    assert not parse_cron("0 */2 * * *").fixed_time
    assert not parse_cron("0 1-23/2 * * *").fixed_time
    assert not parse_cron("*/15 2 * * *").fixed_time
    assert not parse_cron("*/10 0 2 * * *").fixed_time
    assert not parse_cron("@hourly").fixed_time
    assert parse_cron("@daily").fixed_time


# --- at ---------------------------------------------------------------------------------

NOW = parse_instant("2026-02-01T00:00:00Z")


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-02-15T14:30:00Z", "UTC", "2026-02-15T14:30:00Z"),
        ("2026-02-15T14:30:00+01:00", "America/New_York", "2026-02-15T13:30:00Z"),
        ("2026-02-15T14:30:00-0500", "UTC", "2026-02-15T19:30:00Z"),
        ("2026-02-15T14:30:00", "America/New_York", "2026-02-15T19:30:00Z"),
        ("2026-02-15 14:30", "Europe/Berlin", "2026-02-15T13:30:00Z"),
        ("2026-02-15T14:30:00.250Z", "UTC", "2026-02-15T14:30:00.250Z"),
        ("2026-07-15T14:30:00", "Europe/Berlin", "2026-07-15T12:30:00Z"),
    ],
)
def test_at_times_are_read_in_the_jobs_zone_unless_pinned(
    text: str, zone: str, expected: str
) -> None:
    assert format_instant(parse_at(text, zone, NOW)) == expected


def test_an_at_time_in_the_past_is_rejected_unless_allowed() -> None:
    with pytest.raises(InvalidAt, match="in the past"):
        parse_at("2026-01-15T00:00:00Z", "UTC", NOW)
    assert parse_at("2026-01-15T00:00:00Z", "UTC", NOW, allow_past=True) < NOW


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2026-03-08T02:30:00", "does not exist"),
        ("2026-11-01T01:30:00", "happens twice"),
        ("tomorrow", "not an ISO 8601 time"),
        ("2026-02-30T10:00:00Z", "not a valid date"),
        ("2026-13-01T10:00:00Z", "not a valid date"),
    ],
)
def test_bad_at_times_say_why(text: str, fragment: str) -> None:
    with pytest.raises(InvalidAt, match=fragment):
        parse_at(text, "America/New_York", NOW)


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30.seconds", 30), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400),
     ("1h30m", 5400), ("90", 90), (45, 45), ("500ms", 0.5), ("2 minutes", 120),
     ("1.5h", 5400)],
)
def test_durations_in_every_accepted_spelling(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "-5s", "5m garbage", "five minutes", True])
def test_bad_durations_are_rejected(text: str | bool) -> None:
    with pytest.raises(InvalidDuration):
        parse_duration(text, field="max_runtime")


def test_durations_format_back_compactly() -> None:
    assert format_duration(300) == "5m"
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"
    assert parse_duration(format_duration(93784)) == 93784


# --- properties -------------------------------------------------------------------------

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago",
         "Asia/Kolkata", "Pacific/Chatham"]
FIELDS = st.tuples(
    st.sampled_from(["0", "*/15", "5,35", "*", "10-20/5"]),
    st.sampled_from(["*", "0", "2", "1-3", "*/2", "23"]),
    st.sampled_from(["*", "1", "15", "*/10", "29"]),
    st.sampled_from(["*", "2", "3,10", "*/4"]),
    st.sampled_from(["*", "0", "1-5", "6,0"]),
)


@settings(max_examples=150, deadline=None)
@given(fields=FIELDS, zone=st.sampled_from(ZONES),
       start=st.integers(min_value=1_735_689_600_000, max_value=1_893_456_000_000))
def test_slots_strictly_increase_and_match_the_expression(
    fields: tuple[str, ...], zone: str, start: int
) -> None:
    expr = " ".join(fields)
    spec = parse_cron(expr)
    schedule = make_schedule(expr, None, zone)
    tz = load_zone(zone)
    previous = start
    for slot in next_slots(schedule, start, 8):
        assert slot > previous
        wall = datetime.fromtimestamp(slot / 1000, timezone.utc).astimezone(tz)
        naive = wall.replace(tzinfo=None)
        matches = croniter.match(spec.croniter_expr, naive, day_or=spec.day_or)
        if not matches:
            # Only a fixed-time job moved out of a spring-forward gap may not match:
            # the local time one second earlier belongs to the previous offset.
            before = datetime.fromtimestamp(slot / 1000 - 1, timezone.utc).astimezone(tz)
            assert spec.fixed_time
            assert before.utcoffset() != wall.utcoffset()
        previous = slot


TRANSITIONS = [  # (zone, an instant a few hours before a DST change)
    ("America/New_York", "2026-11-01T02:00:00Z"), ("America/New_York", "2026-03-08T03:00:00Z"),
    ("Europe/Berlin", "2026-10-24T21:00:00Z"), ("Europe/Berlin", "2026-03-28T21:00:00Z"),
    ("Australia/Lord_Howe", "2026-04-04T11:00:00Z"),
    ("Australia/Lord_Howe", "2026-10-03T12:00:00Z"),
    ("America/Santiago", "2026-04-04T23:00:00Z"), ("America/Santiago", "2026-09-06T00:00:00Z"),
]
ELAPSED = st.tuples(
    st.sampled_from(["*", "*/7", "*/15", "5,35", "0", "59"]),
    st.sampled_from(["*", "*/2", "*/3"]),
)


@settings(max_examples=60, deadline=None)
@given(fields=ELAPSED, where=st.sampled_from(TRANSITIONS),
       offset=st.integers(min_value=0, max_value=8 * 3600))
def test_elapsed_time_jobs_fire_at_every_matching_instant_and_no_other(
    fields: tuple[str, str], where: tuple[str, str], offset: int
) -> None:
    """Reference: walk every minute in UTC and keep those whose local time matches."""
    zone, around = where
    expr = f"{fields[0]} {fields[1]} * * *"
    tz = load_zone(zone)
    start = parse_instant(around) + offset * 1000 // 60_000 * 60_000
    span = 6 * 3600 * 1000
    expected = []
    for t in range(start + 60_000, start + span, 60_000):
        wall = datetime.fromtimestamp(t / 1000, timezone.utc).astimezone(tz)
        if croniter.match(expr, wall.replace(tzinfo=None)):
            expected.append(t)
    got = [s for s in next_slots(make_schedule(expr, None, zone), start, len(expected) + 5)
           if s < start + span]
    assert got == expected
