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


def json_text(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with the characters JSON
    leaves raw but a terminal would act on (C1 controls, bidi and other format
    characters, lone surrogates) written as ``\\uNNNN`` escapes: the same JSON, safe to
    print."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# What json.dumps(ensure_ascii=False) leaves raw inside strings (it escapes C0 itself, and
# the newlines of indented output are structure, not text).
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
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


_REPLACEMENT = "\ufffd"


def mask(text: str, parts: list[str], *, cut_start: bool = False,
         cut_end: bool = False) -> str:
    """``text`` with every occurrence of the ``parts`` (from secret_parts) as ``***``.

    ``cut_start``/``cut_end``: the text was cut there (an output cap, a stderr tail), so a
    secret may stand in it only in part; the piece of one at the cut is masked too.
    """
    for part in parts:
        if part in text:
            text = text.replace(part, MASK)
    # a cut in the middle of a multibyte character decodes as U+FFFD: the secret's piece
    # stands just inside it
    for part in parts:
        if cut_end:
            body = text.rstrip(_REPLACEMENT)
            for n in range(len(part) - 1, MIN_SECRET - 1, -1):
                if body.endswith(part[:n]):
                    text = body[: len(body) - n] + MASK
                    break
        if cut_start:
            body = text.lstrip(_REPLACEMENT)
            for n in range(len(part) - 1, MIN_SECRET - 1, -1):
                if body.startswith(part[-n:]):
                    text = MASK + body[n:]
                    break
    return text


class MaskStream:
    """Masks text that arrives in pieces (a running run's output), so that what it gives
    out never holds a secret, nor the start of one that the next piece could complete.

    :meth:`feed` returns the text that is safe to show now; the rest (at most about
    twice the longest secret) is held until the next piece or :meth:`end`. Everything it
    gives out, in order, is ``mask(whole_text, parts, cut_end=cut)``: each piece it gives
    out ends where no secret starts or stands across it.
    """

    def __init__(self, parts: list[str]) -> None:
        self._parts = parts
        self._held = ""

    def feed(self, text: str) -> str:
        if not self._parts:
            return text
        held = self._held + text
        cut = len(held)
        for part in self._parts:  # a tail that the next piece could make a secret
            for n in range(min(len(part) - 1, len(held)), 0, -1):
                if held.endswith(part[:n]):
                    cut = min(cut, len(held) - n)
                    break
        moved = True
        while moved:  # a whole secret across the cut is held with it
            moved = False
            for part in self._parts:
                start = held.find(part, max(0, cut - len(part) + 1))
                if start != -1 and start < cut < start + len(part):
                    cut, moved = start, True
        self._held = held[cut:]
        return mask(held[:cut], self._parts)

    def end(self, *, cut: bool = False) -> str:
        """The text still held, masked; ``cut``: the output was cut there (its cap)."""
        held, self._held = self._held, ""
        return mask(held, self._parts, cut_end=cut)


def shorten(text: str, limit: int = 80) -> str:
    """``text``, cut to ``limit`` characters with a note of how long it was: an error
    message quotes a value, it never echoes a megabyte of it."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
