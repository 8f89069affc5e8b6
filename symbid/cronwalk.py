"""The wall-clock matches of a normalised cron expression, one after another.

:class:`CronWalk` does what the slot walk of :mod:`symbid.timing` needs of croniter
(``get_next`` strictly after the current time, ``set_current``) from the expression's
sets directly, at a small fraction of croniter's cost: creating 10,000 jobs with as
many expressions spent most of its time building croniters and stepping them. It reads
the form :mod:`symbid.cronexpr` normalises every expression to (``min hour dom month
dow sec [year]``, each field ``*`` or a comma list of numbers, day-of-week 0-6 with
Sunday 0), and a test holds it to croniter's answers.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, timedelta
from typing import Any, Optional

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6), (0, 59))
_DEFAULT_YEARS = 50  # croniter's search when no year field is given
_DAY = timedelta(days=1)


def _values(text: str, low: int, high: int) -> list[int]:
    if text == "*":
        return list(range(low, high + 1))
    return sorted({int(v) for v in text.split(",")})


class CronWalk:
    """Naive wall times matching the expression, in increasing order."""

    def __init__(self, croniter_expr: str, day_or: bool, max_years: Optional[int],
                 start: datetime) -> None:
        parts = croniter_expr.split()
        if len(parts) == 5:
            parts.append("0")
        self._min, self._hour, self._dom, self._month, self._dow, self._sec = (
            _values(text, low, high) for text, (low, high) in zip(parts, _RANGES))
        self._doms, self._months, self._dows = set(self._dom), set(self._month), \
            set(self._dow)
        self._years = sorted({int(y) for y in parts[6].split(",")}) \
            if len(parts) > 6 else None
        self._day_or = day_or
        self._max_years = max_years or _DEFAULT_YEARS
        self.current = start

    def set_current(self, start: datetime, force: bool = True) -> None:
        self.current = start

    def get_next(self, ret_type: Any = datetime) -> datetime:
        """The first match strictly after the current time (whole seconds), which it
        becomes. ValueError when there is none within the search's years."""
        after = self.current.replace(microsecond=0) + timedelta(seconds=1)
        found = self._from(after)
        self.current = found
        return found

    def _day_matches(self, d: date) -> bool:
        dom = d.day in self._doms
        dow = d.isoweekday() % 7 in self._dows
        return (dom or dow) if self._day_or else (dom and dow)

    def _time_from(self, h: int, m: int, s: int) -> Optional[tuple[int, int, int]]:
        """The first (hour, minute, second) of the sets at or after (h, m, s)."""
        for hour in self._hour[bisect_left(self._hour, h):]:
            m0 = m if hour == h else 0
            for minute in self._min[bisect_left(self._min, m0):]:
                s0 = s if (hour, minute) == (h, m) else 0
                i = bisect_left(self._sec, s0)
                if i < len(self._sec):
                    return hour, minute, self._sec[i]
        return None

    def _from(self, t: datetime) -> datetime:
        d, first = t.date(), True
        limit = t.year + self._max_years
        while True:
            if d.year > limit:
                raise ValueError(f"no match within {self._max_years} years")
            if self._years is not None and d.year not in self._years:
                later = [y for y in self._years if y > d.year]
                if not later:
                    raise ValueError("no year of the expression is left")
                d, first = date(later[0], 1, 1), False
                continue
            if d.month not in self._months:
                d, first = self._next_month(d), False
                continue
            if self._day_matches(d):
                at = self._time_from(t.hour, t.minute, t.second) if first else \
                    (self._hour[0], self._min[0], self._sec[0])
                if at is not None:
                    return datetime(d.year, d.month, d.day, *at)
            d, first = d + _DAY, False  # OverflowError past 9999-12-31: the walk ends

    @staticmethod
    def _next_month(d: date) -> date:
        if d.month == 12:
            return date(d.year + 1, 1, 1)  # ValueError past year 9999: the walk ends
        return date(d.year, d.month + 1, 1)
