"""Tables and times for people: aligned columns, relative times, colour only on a terminal."""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Optional, TextIO

from symbid.text import escape

_COLOURS = {
    "active": "32", "succeeded": "32", "completed": "2", "paused": "33", "pending": "36",
    "running": "36", "awaiting_approval": "33", "failed": "31", "dead_letter": "31;1",
    "timed_out": "31", "denied": "31", "interrupted": "35", "cancelled": "35", "skipped": "2",
}


_settings = {"colour": True}  # False after --no-color


def disable_colour() -> None:
    _settings["colour"] = False


def use_colour(stream: TextIO = sys.stdout) -> bool:
    """Colour only on a terminal, and never with --no-color, $NO_COLOR or TERM=dumb."""
    return (_settings["colour"] and stream.isatty() and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb")


def colour(text: str, status: str, enabled: bool) -> str:
    code = _COLOURS.get(status)
    return f"\x1b[{code}m{text}\x1b[0m" if enabled and code else text


def parse_time(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


FAR = 30 * 86400  # past this, a date reads better than a count of days


def relative(text: Optional[str], now: float) -> str:
    """``in 3m`` / ``2h ago`` / ``-`` for an RFC 3339 time; a date (``2031-05-01``) when it
    is more than 30 days away."""
    when = parse_time(text)
    if when is None:
        return "-"
    delta = when - now
    if abs(delta) < 1:
        return "now"
    if abs(delta) > FAR:
        return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%d")
    return f"in {_span(delta)}" if delta > 0 else f"{_span(delta)} ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          statuses: Optional[Sequence[str]] = None, status_column: int = -1,
          stream: TextIO = sys.stdout) -> None:
    """Print an aligned table; the status column is coloured on a terminal. Cells are
    escaped: a value cannot move the cursor, recolour the terminal or break a row."""
    rows = [[escape(str(cell)) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    enabled = use_colour(stream)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), file=stream)
    for n, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            text = cell.ljust(widths[i])
            if statuses is not None and i == status_column:
                text = colour(text, statuses[n], enabled)
            cells.append(text)
        print("  ".join(cells).rstrip(), file=stream)


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with every text cell escaped (a cell cannot drive the terminal it is shown on)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([[escape(c) if isinstance(c, str) else c for c in row] for row in rows])
    return buf.getvalue()
