"""CronWalk gives croniter's answers: the same wall-clock matches, in the same order, for
the normalised expressions symbid hands either of them (random ones, and the shapes the
DST rules care about)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from symbid.cronexpr import parse_cron
from symbid.cronwalk import CronWalk
from symbid.errors import InvalidCron


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    numbers = st.lists(st.integers(low, high), min_size=1, max_size=4, unique=True)
    return st.just("*") | numbers.map(lambda vs: ",".join(str(v) for v in sorted(vs)))


vixie = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12),
                  _field(0, 6)).map(" ".join)
symbiont = st.tuples(_field(0, 59), _field(0, 59), _field(0, 23), _field(1, 31),
                     _field(1, 12), _field(1, 7)).map(" ".join)
starts = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1))


def _same(expr: str, start: datetime, steps: int = 6) -> None:
    try:
        spec = parse_cron(expr)
    except InvalidCron:  # a day that never occurs in its months (31 in February)
        assume(False)
        return
    ours = CronWalk(spec.croniter_expr, spec.day_or, spec.max_years, start)
    theirs = croniter(spec.croniter_expr, start, day_or=spec.day_or,
                      max_years_between_matches=spec.max_years)
    for _ in range(steps):
        try:
            want = theirs.get_next(datetime)
        except (CroniterBadDateError, ValueError, OverflowError):  # no match left
            with pytest.raises((ValueError, OverflowError)):
                ours.get_next(datetime)
            return
        assert ours.get_next(datetime) == want, (expr, start)


@settings(max_examples=1500, deadline=None)
@given(expr=vixie | symbiont, start=starts)
def test_random_expressions_walk_as_croniter_walks_them(expr: str, start: datetime) -> None:
    _same(expr, start)


@pytest.mark.parametrize("expr", [
    "0 9 * * *", "*/15 * * * *", "30 2 * * *", "0 0 29 2 *", "0 0 1,15 * 1",
    "0 0 13 * 5", "@hourly", "@weekly", "0 0 31 * *", "*/5 * * * * *",
    "0 30 2 * * 1-7", "0 0 12 29 2 * 2028,2032", "59 23 31 12 *",
])
def test_the_shapes_the_schedules_use_walk_as_croniter_walks_them(expr: str) -> None:
    for start in (datetime(2026, 3, 29, 1, 59, 59), datetime(2026, 10, 25, 2, 30),
                  datetime(2024, 2, 28, 23, 59, 59, 500_000), datetime(2026, 12, 31, 23, 59)):
        _same(expr, start, steps=10)


def test_set_current_moves_the_walk() -> None:
    spec = parse_cron("0 * * * *")
    walk = CronWalk(spec.croniter_expr, spec.day_or, spec.max_years, datetime(2026, 1, 1))
    walk.set_current(datetime(2026, 6, 1, 10, 30), force=True)
    assert walk.get_next(datetime) == datetime(2026, 6, 1, 11, 0)
    assert walk.get_next(datetime) == datetime(2026, 6, 1, 12, 0)


def test_a_walk_past_its_last_year_ends_with_an_error() -> None:
    spec = parse_cron("0 0 0 1 1 * 2030")
    walk = CronWalk(spec.croniter_expr, spec.day_or, spec.max_years, datetime(2030, 6, 1))
    with pytest.raises(ValueError):
        walk.get_next(datetime)
    walk = CronWalk("0 0 1 1 *", False, None, datetime(9999, 6, 1) - timedelta(days=1))
    with pytest.raises((ValueError, OverflowError)):
        walk.get_next(datetime)
