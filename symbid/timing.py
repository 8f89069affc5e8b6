"""Schedules in time: when a cron spec fires (the expressions are parsed by
:mod:`symbid.cronexpr`), time zones, DST, ``at`` one-shots, durations.

Pure functions: nothing here reads the clock; "now" is always an argument.
Instants are integer epoch milliseconds (UTC).

Two cron dialects (DESIGN §4):

* 5 fields, Vixie cron: ``min hour dom month dow``; day-of-week 0-7 (0 and 7
  are Sunday), month and day names, ``@hourly`` ... ``@yearly``. When both
  day-of-month and day-of-week are restricted (neither starts with ``*``) a day
  matches if *either* does, as in Vixie cron.
* 6 or 7 fields, the Symbiont runtime's form: ``sec min hour dom month dow
  [year]``; day-of-week 1-7 with 1 = Sunday, ``?`` allowed for day-of-month and
  day-of-week; a day must match both day fields, as that runtime does.

DST follows Vixie/Debian cron. A *fixed-time* schedule (its second, minute and
hour fields hold plain numbers, lists or ranges) runs once in a fall-back
overlap (the first pass) and, when its local time falls into a spring-forward
gap, once at the first instant after the gap. An *interval* schedule (a ``*``
or a step in the second, minute or hour field) follows elapsed time: nothing for
local times that do not exist, and both passes of a repeated hour.

:mod:`symbid.cronwalk` does the calendar arithmetic on naive local wall-clock times; this
module maps each wall-clock match onto real instants with the rules above.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, TypeVar, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from symbid.cronexpr import CronSpec, cron_iterator, parse_cron
from symbid.errors import InvalidAt, InvalidCron, InvalidDuration, InvalidTimezone
from symbid.model import LATEST_INSTANT, format_instant, to_datetime
from symbid.text import shorten

UTC = timezone.utc
_MS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST = -62_135_596_800_000  # 0001-01-01T00:00:00Z

@functools.lru_cache(maxsize=1024)
def load_zone(name: str) -> ZoneInfo:
    """An IANA time zone; raises :class:`InvalidTimezone` for anything else."""
    if not isinstance(name, str) or not name:
        raise InvalidTimezone("time zone is empty; use an IANA name such as UTC or Europe/Berlin",
                              field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidTimezone(
            f"unknown time zone {name!r}; use an IANA name such as UTC, America/New_York "
            "or Europe/Berlin",
            field="timezone",
        ) from exc


# --- instants -----------------------------------------------------------------------------


def to_ms(dt: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * _MS + delta.microseconds // 1000


_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_instant(text: str, zone: Union[str, ZoneInfo] = "UTC") -> int:
    """An ISO 8601 / RFC 3339 time as epoch ms.

    ``Z`` or an offset pins the instant; a time without one is wall-clock time
    in ``zone``. A wall-clock time that does not exist (spring-forward gap) or
    exists twice (fall-back overlap) there is rejected: give an offset.
    """
    tz = load_zone(zone) if isinstance(zone, str) else zone
    m = _ISO_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise InvalidAt(
            f"{shorten(text)!r} is not an ISO 8601 time; write it like 2026-02-15T14:30:00Z "
            "or 2026-02-15T14:30:00+01:00",
            field="at",
        )
    year, month, day, hh, mi, ss, frac, off = m.groups()
    try:
        naive = datetime(
            int(year), int(month), int(day), int(hh or 0), int(mi or 0), int(ss or 0),
            int((frac or "0")[:6].ljust(6, "0")),
        )
    except ValueError as exc:
        raise InvalidAt(f"{shorten(text)!r} is not a valid date and time: {exc}",
                        field="at") from exc
    if off:
        if off in ("Z", "z"):
            offset = timedelta(0)
        else:
            sign = -1 if off[0] == "-" else 1
            digits = off[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:])
            if hours > 23 or minutes > 59:
                raise InvalidAt(f"{shorten(text)!r} has an offset {off} that is not a time "
                                "zone offset (from -23:59 to +23:59)", field="at")
            offset = sign * timedelta(hours=hours, minutes=minutes)
        return _in_range(text, lambda: to_ms(naive.replace(tzinfo=timezone(offset))))
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    first_ms = _in_range(text, lambda: to_ms(first.astimezone(UTC)))
    exists = _in_range(text, lambda: _wall(first_ms, tz)) == naive
    if not exists:
        raise InvalidAt(
            f"{shorten(text)!r} does not exist in {tz.key} (the clocks skip it); give an "
            "explicit offset",
            field="at",
        )
    if first.utcoffset() != second.utcoffset():
        raise InvalidAt(
            f"{shorten(text)!r} happens twice in {tz.key} (the clocks go back); give an "
            "explicit offset",
            field="at",
        )
    return first_ms


_T = TypeVar("_T")


def _in_range(text: str, compute: Callable[[], _T]) -> _T:
    """``compute()``, or InvalidAt when the instant lies outside what can be shown
    (0001-01-01 to 9999-12-31 UTC)."""
    try:
        value = compute()
    except (OverflowError, ValueError):
        value = None
    if value is None or (isinstance(value, int) and not _EARLIEST <= value <= LATEST_INSTANT):
        raise InvalidAt(f"{shorten(text)!r} is out of range: times must lie between 0001-01-01 and "
                        "9999-12-31 (UTC)", field="at")
    return value


def parse_at(text: str, zone: Union[str, ZoneInfo], now: int, *, allow_past: bool = False) -> int:
    """The instant of a one-shot ``at`` job; a time in the past is rejected unless allowed."""
    instant = parse_instant(text, zone)
    if instant <= now and not allow_past:
        raise InvalidAt(
            f"at time {shorten(text)!r} ({format_instant(instant)}) is in the past "
            f"(now {format_instant(now)})",
            field="at",
        )
    return instant


# --- next slot ----------------------------------------------------------------------------


def _wall(ms: int, tz: ZoneInfo) -> datetime:
    """Naive local wall-clock time of an instant."""
    return to_datetime(ms).astimezone(tz).replace(tzinfo=None)


def _offset(ms: int, tz: ZoneInfo) -> timedelta:
    off = to_datetime(ms).astimezone(tz).utcoffset()
    assert off is not None
    return off


def _backward_span(after: int, tz: ZoneInfo) -> timedelta:
    """How far wall-clock time can run backwards in the day after ``after``.

    Zero unless a fall-back transition is near; then the size of the repeat.
    """
    here = _offset(after, tz)
    lowest = here
    # Real zones change offset at most a few times a year, hours apart: sampling
    # the next 26 hours every 6 sees any fall-back that can reach back past now.
    for hour in (6, 12, 18, 26):
        off = _offset(after + hour * 3_600_000, tz)
        lowest = min(lowest, off)
    back = here - lowest
    # Wall time repeats past "after" only if the fall-back comes within `back` of
    # it; a transition further ahead cannot reach back behind "after".
    if back and _offset(after + int(back.total_seconds() * 1000), tz) == here:
        return timedelta(0)
    return back


def _transition_in(lo: int, hi: int, tz: ZoneInfo) -> int:
    """The instant in ``(lo, hi]`` where the offset changes (seconds precision)."""
    before = _offset(lo, tz)
    lo_s, hi_s = lo // _MS, -(-hi // _MS)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _offset(mid * _MS, tz) == before:
            lo_s = mid
        else:
            hi_s = mid
    return hi_s * _MS


def _instants(wall: datetime, tz: ZoneInfo, fixed_time: bool) -> tuple[list[int], Optional[int]]:
    """The real instants at which a wall-clock match fires.

    Returns (instants, gap_end): ``gap_end`` is set when ``wall`` falls into a
    spring-forward gap, as the first instant after the gap.
    """
    first = to_ms(wall.replace(tzinfo=tz, fold=0).astimezone(UTC))
    second = to_ms(wall.replace(tzinfo=tz, fold=1).astimezone(UTC))
    if first == second:
        return [first], None
    if _wall(first, tz) == wall:
        # Exists twice (fall-back overlap): first < second.
        return ([first] if fixed_time else [first, second]), None
    # Does not exist (spring-forward gap): fold=1 maps before the gap, fold=0 after.
    gap_end = _transition_in(min(first, second), max(first, second), tz)
    return ([gap_end] if fixed_time else []), gap_end


_MAX_CANDIDATES = 200_000


def next_cron_slot(spec: CronSpec, tz: ZoneInfo, after: int) -> Optional[int]:
    """The first slot of ``spec`` in ``tz`` strictly after the instant ``after``.

    Results strictly increase when fed back in; ``None`` when it never fires again.
    """
    here_ms = int(_offset(after, tz).total_seconds() * 1000)
    # Candidates strictly after this wall time: the whole second at or before
    # "after" has already been considered by whoever produced "after".
    wall_now = _wall(after, tz).replace(microsecond=0)
    best = _scan(spec, tz, after, wall_now, here_ms, None, None)
    back = _backward_span(after, tz)
    if back:
        # A fall-back is near: wall times just behind "after" come round again.
        # Their second pass is at w - low_ms; look only while that can beat best.
        low_ms = here_ms - int(back.total_seconds() * 1000)
        best = _scan(spec, tz, after, wall_now - back, low_ms, best, wall_now)
    return best


def _scan(spec: CronSpec, tz: ZoneInfo, after: int, start: datetime, offset_ms: int,  # noqa: PLR0917
          best: Optional[int], until: Optional[datetime]) -> Optional[int]:
    """Walk wall-clock matches after ``start`` for the earliest instant after ``after``.

    A wall time w means no instant earlier than ``w - offset_ms``; the walk stops
    once that bound reaches ``best`` (or at ``until``).
    """
    it = _iterator(spec, start)
    for _ in range(_MAX_CANDIDATES):
        try:
            wall = it.get_next(datetime)
        except (OverflowError, ValueError):  # the walk has run out (symbid.cronwalk)
            break
        if until is not None and wall > until:
            break
        bound = to_ms(wall.replace(tzinfo=UTC)) - offset_ms
        if best is not None and bound >= best:
            break
        instants, gap_end = _instants(wall, tz, spec.fixed_time)
        for inst in instants:
            if inst > after and (best is None or inst < best):
                best = inst
        if best is not None and bound >= best and (gap_end is None or spec.fixed_time):
            # Every later wall time has a higher bound, so the next one would stop the
            # walk: stop now (walking on costs as much again, for every slot).
            break
        if gap_end is not None and not spec.fixed_time:
            # Nothing fires inside the gap: resume at its end.
            resume = _wall(gap_end, tz) - timedelta(seconds=1)
            if resume > wall:
                it = _iterator(spec, resume)
    return best


def _iterator(spec: CronSpec, start: datetime) -> Any:
    """A croniter positioned at ``start`` (naive wall time): see :func:`cron_iterator`."""
    return cron_iterator(spec.croniter_expr, spec.day_or, spec.max_years, start)


@dataclass(frozen=True)
class Schedule:
    """When a job fires: a cron spec in a zone, or one ``at`` instant."""

    timezone: str
    cron: Optional[CronSpec] = None
    at: Optional[int] = None
    # The last cron answer, (after, slot): a job's checks ask for the same instant twice
    # (make_schedule's "does it ever fire", then its first free slot), and the walk is
    # the dear part of creating a job.
    _last: list[tuple[int, Optional[int]]] = field(
        default_factory=list, compare=False, hash=False, repr=False)

    def next_after(self, after: int) -> Optional[int]:
        """The first slot strictly after ``after``; ``None`` when there is none (or when
        it would lie after 9999-12-31, the last instant RFC 3339 can show)."""
        if self.cron is not None:
            if after >= LATEST_INSTANT:
                return None
            last = self._last[0] if self._last else None
            if last is not None and last[0] == after:
                return last[1]
            try:
                slot = next_cron_slot(self.cron, load_zone(self.timezone), after)
            except (OverflowError, ValueError):  # the walk ran off the end of the calendar
                slot = None
            slot = slot if slot is not None and slot <= LATEST_INSTANT else None
            self._last[:1] = [(after, slot)]
            return slot
        if self.at is not None and self.at > after:
            return self.at
        return None


def make_schedule(
    cron_expr: Optional[str], at: Optional[int], tz_name: str, now: Optional[int] = None
) -> Schedule:
    """Validate a job's schedule; with ``now``, reject a cron that never fires again.

    Exactly one of ``cron_expr`` and ``at`` must be given.
    """
    load_zone(tz_name)
    if (cron_expr is None) == (at is None):
        raise InvalidCron("give exactly one of cron_expr and at", field="cron_expr")
    if cron_expr is not None:
        schedule = Schedule(tz_name, cron=parse_cron(cron_expr))
        if now is not None and schedule.next_after(now) is None:
            raise InvalidCron(
                f"cron expression {cron_expr!r} never fires after {format_instant(now)}",
                field="cron_expr",
            )
        return schedule
    return Schedule(tz_name, at=at)


def next_slots(schedule: Schedule, after: int, count: int) -> list[int]:
    """Up to ``count`` consecutive slots after ``after``."""
    out: list[int] = []
    cursor = after
    while len(out) < count:
        nxt = schedule.next_after(cursor)
        if nxt is None:
            break
        out.append(nxt)
        cursor = nxt
    return out


# --- durations ----------------------------------------------------------------------------

_UNITS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
_MAX_DURATION = 100 * 365 * 86400.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*\.?\s*([a-z]+)")


def parse_duration(value: Union[str, int, float], *, field: str = "duration") -> float:
    """Seconds in a duration: ``90`` (seconds), ``"30s"``, ``"5m"``, ``"1h30m"``, ``"30.seconds"``.

    Raises :class:`InvalidDuration` naming ``field``.
    """
    if isinstance(value, bool):
        raise InvalidDuration(f"{field}: expected a duration, got a boolean", field=field)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for m in _DURATION_PART.finditer(text):
                if text[pos:m.start()].strip() or m.group(2) not in _UNITS:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos == 0 or text[pos:].strip():
                raise InvalidDuration(
                    f"{field}: {value!r} is not a duration; write e.g. 30s, 5m, 2h, 1d "
                    "or 30.seconds",
                    field=field,
                )
    if seconds < 0:
        raise InvalidDuration(f"{field}: {value!r} is negative", field=field)
    if not seconds <= _MAX_DURATION:  # also catches nan and inf
        raise InvalidDuration(f"{field}: {value!r} is longer than 100 years", field=field)
    return seconds
