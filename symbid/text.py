"""Showing user-provided text safely: in log lines, tables and error messages.

Names, inputs and outputs come from users and agents. Any control or format
character in them (a newline, an ANSI escape, a right-to-left override, a NUL)
is shown escaped (``\\x1b``, ``\\u202e``), so no value can forge a log line,
move a terminal's cursor or reorder what an operator reads.
"""

from __future__ import annotations

import re
import unicodedata

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
