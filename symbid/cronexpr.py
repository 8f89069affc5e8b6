"""Cron expressions: the two dialects' fields, parsed and checked into a :class:`CronSpec`
(the normalised form :mod:`symbid.cronwalk` walks). When a spec fires is
:mod:`symbid.timing`'s job.

* 5 fields, Vixie cron: ``min hour dom month dow``; day-of-week 0-7 (0 and 7 are
  Sunday), month and day names, ``@hourly`` ... ``@yearly``.
* 6 or 7 fields, the Symbiont runtime's form: ``sec min hour dom month dow [year]``;
  day-of-week 1-7 with 1 = Sunday, ``?`` allowed in the day fields.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from symbid.cronwalk import CronWalk
from symbid.errors import InvalidCron
from symbid.text import shorten

VIXIE = "vixie"
SYMBIONT = "symbiont"

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAMES = {name: i + 1 for i, name in enumerate(_MONTHS)}
_MONTH_NAMES.update(
    {
        "january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7,
        "august": 8, "september": 9, "sept": 9, "october": 10, "november": 11,
        "december": 12,
    }
)
# Day names map to Vixie numbering (Sunday = 0).
_DOW_NAMES = {
    "sun": 0, "sunday": 0, "mon": 1, "monday": 1, "tue": 2, "tues": 2, "tuesday": 2,
    "wed": 3, "weds": 3, "wednesday": 3, "thu": 4, "thur": 4, "thurs": 4, "thursday": 4,
    "fri": 5, "friday": 5, "sat": 6, "saturday": 6,
}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February in a leap year
_MONTH_TITLES = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class _FieldDef:
    name: str
    low: int
    high: int
    names: Optional[dict[str, int]] = None
    question_ok: bool = False


_SECOND = _FieldDef("second", 0, 59)
_MINUTE = _FieldDef("minute", 0, 59)
_HOUR = _FieldDef("hour", 0, 23)
_DOM_VIXIE = _FieldDef("day-of-month", 1, 31)
_DOM_SYMBIONT = _FieldDef("day-of-month", 1, 31, question_ok=True)
_MONTH = _FieldDef("month", 1, 12, _MONTH_NAMES)
_DOW_VIXIE = _FieldDef("day-of-week", 0, 7, _DOW_NAMES)
# Symbiont runtime: 1 = Sunday ... 7 = Saturday; names are shifted to match.
_DOW_SYMBIONT = _FieldDef(
    "day-of-week", 1, 7, {k: v + 1 for k, v in _DOW_NAMES.items()}, question_ok=True
)
_YEAR = _FieldDef("year", 1970, 2099)

_ITEM_RE = re.compile(r"^(?P<base>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[^/]*))?$")


@dataclass(frozen=True)
class CronSpec:
    """A parsed, validated cron expression.

    ``fixed_time`` decides the DST rule (see the module docstring).
    ``croniter_expr`` is the normalised expression (in croniter's field order, ``min
    hour dom month dow sec [year]``, which :mod:`symbid.cronwalk` walks and the tests
    hand croniter to check that walk).
    """

    expr: str
    dialect: str
    fixed_time: bool
    croniter_expr: str
    day_or: bool
    # With a year field, the next match may be decades away: croniter's search (50 years
    # by default) must reach the last year symbid can show.
    max_years: Optional[int] = None


def _cron_error(expr: str, fdef: _FieldDef, text: str, reason: str) -> InvalidCron:
    return InvalidCron(
        f"cron expression {shorten(expr)!r}: {fdef.name} field {shorten(text)!r}: {reason}",
        field=fdef.name
    )


def _parse_value(expr: str, fdef: _FieldDef, field_text: str, token: str) -> int:
    if token.isdigit():
        value = int(token)
    elif fdef.names is not None and token.lower() in fdef.names:
        value = fdef.names[token.lower()]
    else:
        if fdef.names is None:
            hint = "a number"
        elif fdef is _MONTH:
            hint = "a number or a month name (jan-dec)"
        else:
            hint = "a number or a day name (sun-sat)"
        raise _cron_error(expr, fdef, field_text, f"{token!r} is not {hint}")
    if not fdef.low <= value <= fdef.high:
        extra = ""
        if fdef is _DOW_SYMBIONT and value == 0:
            extra = " (the 6/7-field form numbers days 1-7 with 1 = Sunday)"
        raise _cron_error(
            expr, fdef, field_text,
            f"value {value} is out of range {fdef.low}-{fdef.high}{extra}",
        )
    return value


def _parse_field(expr: str, fdef: _FieldDef, text: str) -> tuple[frozenset[int], bool]:
    """Parse one field into its set of values; also say whether it starts with ``*``."""
    if text == "?":
        if not fdef.question_ok:
            raise _cron_error(
                expr, fdef, text,
                "'?' is only allowed in day-of-month and day-of-week of the 6/7-field form",
            )
        return frozenset(range(fdef.low, fdef.high + 1)), True
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _cron_error(expr, fdef, text, "empty list item")
        m = _ITEM_RE.match(item)
        if not m:
            raise _cron_error(expr, fdef, text, f"cannot read {item!r}")
        base, step_text = m.group("base"), m.group("step")
        step = 1
        if step_text is not None:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _cron_error(
                    expr, fdef, text, f"step {step_text!r} must be a positive whole number"
                )
            step = int(step_text)
        if base == "*":
            start, end = fdef.low, fdef.high
        elif "-" in base:
            a, b = base.split("-", 1)
            start = _parse_value(expr, fdef, text, a)
            end = _parse_value(expr, fdef, text, b)
            if start > end:
                raise _cron_error(
                    expr, fdef, text, f"range {base} runs backwards (write the smaller value first)"
                )
        else:
            start = _parse_value(expr, fdef, text, base)
            # "a/n" means a, a+n, ... up to the field's maximum.
            end = fdef.high if step_text is not None else start
        if step > fdef.high - fdef.low + 1 and step_text is not None and base == "*":
            raise _cron_error(
                expr, fdef, text,
                f"step {step} is larger than the field's range {fdef.low}-{fdef.high}",
            )
        values.update(range(start, end + 1, step))
    return frozenset(values), text.startswith("*")


def _render(values: frozenset[int], low: int, high: int) -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    return ",".join(str(v) for v in sorted(values))


@functools.lru_cache(maxsize=4096)
def parse_cron(expr: str) -> CronSpec:
    """Parse and validate a cron expression of either dialect.

    Raises :class:`InvalidCron` naming the field that is wrong, including for
    expressions whose day-of-month can never occur in their months.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidCron("cron expression is empty", field="cron_expr")
    text = expr.strip()
    if text.startswith("@"):
        alias = _ALIASES.get(text.lower())
        if alias is None:
            raise InvalidCron(
                f"cron expression {shorten(expr)!r}: unknown shorthand; use one of "
                + ", ".join(sorted(_ALIASES)),
                field="cron_expr",
            )
        text = alias
    fields = text.split()
    if len(fields) == 5:
        dialect = VIXIE
        defs = (_MINUTE, _HOUR, _DOM_VIXIE, _MONTH, _DOW_VIXIE)
        sec_text = "0"
        year_text: Optional[str] = None
        min_text, hour_text, dom_text, mon_text, dow_text = fields
    elif len(fields) in (6, 7):
        dialect = SYMBIONT
        defs = (_MINUTE, _HOUR, _DOM_SYMBIONT, _MONTH, _DOW_SYMBIONT)
        sec_text, min_text, hour_text, dom_text, mon_text, dow_text = fields[:6]
        year_text = fields[6] if len(fields) == 7 else None
    else:
        raise InvalidCron(
            f"cron expression {shorten(expr)!r} has {len(fields)} fields; expected 5 "
            "(min hour dom month dow) or 6-7 (sec min hour dom month dow [year])",
            field="cron_expr",
        )

    seconds, _sec_star = _parse_field(expr, _SECOND, sec_text)
    minutes, _min_star = _parse_field(expr, defs[0], min_text)
    hours, _hour_star = _parse_field(expr, defs[1], hour_text)
    doms, dom_star = _parse_field(expr, defs[2], dom_text)
    months, _ = _parse_field(expr, defs[3], mon_text)
    dows_raw, dow_star = _parse_field(expr, defs[4], dow_text)
    years = _parse_field(expr, _YEAR, year_text)[0] if year_text is not None else None

    # Day-of-week to Vixie numbering 0-6 (Sunday = 0).
    if dialect == VIXIE:
        dows = frozenset(d % 7 for d in dows_raw)
    else:
        dows = frozenset(d - 1 for d in dows_raw)

    all_days = frozenset(range(1, 32))
    all_dows = frozenset(range(7))
    if dialect == VIXIE and not dom_star and not dow_star:
        # Vixie: both restricted -> a day matches if either matches.
        if doms == all_days or dows == all_dows:
            doms, dows, day_or = all_days, all_dows, False
        else:
            day_or = True
    else:
        day_or = False

    if not day_or:
        _check_days_occur(expr, doms, months, dom_text, mon_text)

    fixed_time = not any(
        "*" in t or "/" in t for t in (sec_text, min_text, hour_text)
    )
    parts = [
        _render(minutes, 0, 59),
        _render(hours, 0, 23),
        _render(doms, 1, 31),
        _render(months, 1, 12),
        _render(dows, 0, 6),
        _render(seconds, 0, 59),
    ]
    if years is not None:
        parts.append(",".join(str(y) for y in sorted(years)))
    spec = CronSpec(
        expr=expr,
        dialect=dialect,
        fixed_time=fixed_time,
        croniter_expr=" ".join(parts),
        day_or=day_or,
        max_years=10_000 if years is not None else None,
    )
    return spec


_local = threading.local()
_ITERATOR_CACHE_SIZE = 512


def cron_iterator(croniter_expr: str, day_or: bool, max_years: Optional[int],
                  start: datetime) -> Any:
    """A walk (:class:`~symbid.cronwalk.CronWalk`, croniter's ``get_next`` and
    ``set_current``) of the normalised ``croniter_expr``, positioned at ``start`` (naive
    wall time). Each thread keeps a small LRU of them and only moves them."""
    cache: Optional[OrderedDict[tuple[str, bool], Any]] = getattr(_local, "iters", None)
    if cache is None:
        cache = _local.iters = OrderedDict()
    key = (croniter_expr, day_or)
    it = cache.get(key)
    if it is None:
        it = CronWalk(croniter_expr, day_or, max_years, start)
        cache[key] = it
        if len(cache) > _ITERATOR_CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
        it.set_current(start, force=True)
    return it


def _check_days_occur(
    expr: str, doms: frozenset[int], months: frozenset[int], dom_text: str, mon_text: str
) -> None:
    for month in months:
        if any(day <= _MONTH_DAYS[month - 1] for day in doms):
            return
    names = ", ".join(_MONTH_TITLES[m - 1] for m in sorted(months))
    longest = max(_MONTH_DAYS[m - 1] for m in months)
    raise InvalidCron(
        f"cron expression {shorten(expr)!r} can never fire: day-of-month {dom_text!r} never occurs "
        f"in month {mon_text!r} ({names} has at most {longest} days)",
        field="day-of-month",
    )
