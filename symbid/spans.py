"""Claimed spans: which scheduled slots a job has claimed, whatever retention deleted.

A job's ``claimed`` spans (DESIGN §5) are sorted, disjoint, inclusive ranges of
wall-clock instants. A slot inside one is never claimed again: not after
retention deletes its row, not after a definition change, not when the wall
clock steps back. Normally a job has one span, from its first slot to its
high-water mark; a clock stepped back below it starts a second one.
"""

from __future__ import annotations

from typing import Optional

from symbid.timing import Schedule

Spans = tuple[tuple[int, int], ...]
MAX_SPANS = 32  # more than this after many backward clock steps: the lowest merge


def claimed_span(spans: Spans, instant: int) -> Optional[tuple[int, int]]:
    """The span of ``spans`` (sorted, disjoint, inclusive) that holds ``instant``."""
    for lo, hi in spans:
        if lo <= instant <= hi:
            return lo, hi
        if lo > instant:
            break
    return None


def skip_claimed(schedule: Schedule, slot: Optional[int], spans: Spans) -> Optional[int]:
    """``slot``, or the first slot after the claimed span that holds it (and so on)."""
    while slot is not None:
        span = claimed_span(spans, slot)
        if span is None:
            return slot
        slot = schedule.next_after(span[1])
    return None


def first_free_slot(schedule: Schedule, after: int, spans: Spans) -> Optional[int]:
    """The first slot strictly after ``after`` that no claimed span holds."""
    return skip_claimed(schedule, schedule.next_after(after), spans)


def add_span(spans: Spans, lo: int, hi: int, schedule: Optional[Schedule] = None) -> Spans:
    """``spans`` with ``[lo, hi]`` claimed too.

    A claim above every span extends the highest one: the instants between were
    passed over by the schedule, so counting them as claimed only ever refuses
    a slot that is already in the past, never repeats one. A claim below (after
    the wall clock went back) becomes a span of its own, merged with any span it
    overlaps or, given the ``schedule``, follows or precedes with no slot between.
    Past ``MAX_SPANS`` the two lowest merge; that can only refuse slots between
    them, never repeat one.
    """
    if not spans:
        return ((lo, hi),)
    if lo > spans[-1][1]:
        return spans[:-1] + ((spans[-1][0], max(hi, spans[-1][1])),)
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans + ((lo, hi),)):
        if merged and (a <= merged[-1][1] + 1 or _adjacent(schedule, merged[-1][1], a)):
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    while len(merged) > MAX_SPANS:
        merged[0:2] = [(merged[0][0], merged[1][1])]
    return tuple(merged)


def _adjacent(schedule: Optional[Schedule], end: int, start: int) -> bool:
    """No slot of ``schedule`` lies strictly between ``end`` and ``start``."""
    if schedule is None:
        return False
    nxt = schedule.next_after(end)
    return nxt is None or nxt >= start
