"""Showing user-provided text safely: in log lines, tables and error messages.

Names, inputs and outputs come from users and agents. Any control or format
character in them (a newline, an ANSI escape, a right-to-left override, a NUL)
is shown escaped (``\\x1b``, ``\\u202e``), so no value can forge a log line,
move a terminal's cursor or reorder what an operator reads.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     r"\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]")


def _escaped(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control and format character escaped (``\\xNN``/``\\uNNNN``)."""
    if text.isprintable() and "\u00ad" not in text:
        return text  # the common case, at C speed
    out = _UNSAFE.sub(_escaped, text)
    if out.isprintable():
        return out
    # anything else Python does not call printable (other format characters)
    return "".join(c if c.isprintable() or unicodedata.category(c) == "Zs"
                   else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
                   for c in out)


MASK = "***"
MIN_SECRET = 4  # shorter values are not masked: they would hide ordinary text


def secret_parts(values: Iterable[str]) -> list[str]:
    """What to mask for these secret values: each value, and each line of a multi-line
    one, longest first, leaving out values shorter than MIN_SECRET."""
    parts: set[str] = set()
    for value in values:
        pieces = [value] + [line.strip() for line in value.splitlines()]
        parts.update(p for p in pieces if len(p) >= MIN_SECRET)
    return sorted(parts, key=len, reverse=True)


def mask(text: str, parts: list[str]) -> str:
    """``text`` with every occurrence of the ``parts`` (from secret_parts) as ``***``."""
    for part in parts:
        if part in text:
            text = text.replace(part, MASK)
    return text
