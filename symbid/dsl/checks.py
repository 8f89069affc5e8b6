"""The value checkers of the DSL: each takes a key and a parsed value and returns the
checked Python value, or raises :class:`_Invalid` naming the key and what was expected.
The loader's schemas (SCHEDULE, AGENT, ...) are made of these."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from typing import Any, Callable, Optional

from symbid.dsl.parser import Entry, Pos, Value
from symbid.errors import InvalidInput
from symbid.text import shorten
from symbid.timing import parse_duration


class _Invalid(Exception):
    """A value failed its check (internal: turned into a diagnostic)."""

    def __init__(self, pos: Pos, message: str, *, key: Optional[str] = None) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message
        self.key = key  # the key at fault, when the check knows it


# --- value checkers -----------------------------------------------------------------------

Checker = Callable[[str, Value], Any]


def _kind_name(v: Value) -> str:
    return {"string": "a string", "number": "a number", "duration": "a duration",
            "bool": "a boolean", "ident": f"the name {v.value!r}", "array": "a list",
            "map": "a block"}[v.kind]


def _expect(key: str, v: Value, what: str) -> _Invalid:
    return _Invalid(v.pos, f"{key}: expected {what}, got {_kind_name(v)}")


def string(key: str, v: Value) -> str:
    if v.kind in ("string", "ident"):
        return str(v.value)
    raise _expect(key, v, "a string")


def nonempty_string(key: str, v: Value) -> str:
    text = string(key, v)
    if not text.strip():
        raise _Invalid(v.pos, f"{key}: must not be empty")
    return text


def boolean(key: str, v: Value) -> bool:
    if v.kind == "bool":
        return bool(v.value)
    raise _expect(key, v, "true or false")


def integer(minimum: int, maximum: Optional[int] = None) -> Checker:
    def check(key: str, v: Value) -> int:
        if v.kind != "number" or not isinstance(v.value, int):
            raise _expect(key, v, "a whole number")
        if v.value < minimum:
            raise _Invalid(v.pos, f"{key}: must be at least {minimum}, got {v.value}")
        if maximum is not None and v.value > maximum:
            raise _Invalid(v.pos, f"{key}: must be at most {maximum}, got {v.value}")
        return int(v.value)
    return check


def bounded(checker: Checker, maximum: float, unit: str = "") -> Checker:
    """``checker``, then at most ``maximum`` (a length for strings)."""
    def check(key: str, v: Value) -> Any:
        value = checker(key, v)
        size = len(value) if isinstance(value, str) else value
        if size > maximum:
            what = f"{int(maximum)}{unit}"
            raise _Invalid(v.pos, f"{key}: must be at most {what}")
        return value
    return check


def duration(key: str, v: Value) -> float:
    if v.kind in ("duration", "number"):
        if float(v.value) < 0:
            raise _Invalid(v.pos, f"{key}: must not be negative")
        try:
            seconds = parse_duration(float(v.value), field=key)
        except (InvalidInput, OverflowError) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else f"{key}: too large"
            raise _Invalid(v.pos, message) from None
    elif v.kind == "string":
        try:
            seconds = parse_duration(str(v.value), field=key)
        except InvalidInput as exc:
            raise _Invalid(v.pos, exc.message) from None
    else:
        raise _expect(key, v, 'a duration (such as 30s, 5m, "2h")')
    if seconds < 0:
        raise _Invalid(v.pos, f"{key}: must not be negative")
    return seconds


_MAX_SIZE = float(2**50)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)


def size(key: str, v: Value) -> int:
    """Bytes: a number, or a string such as "512M", "1G", "64KiB"."""
    if v.kind == "number" and isinstance(v.value, int) and 0 <= v.value <= _MAX_SIZE:
        return int(v.value)
    if v.kind == "string":
        m = _SIZE.match(str(v.value))
        if m:
            factor = 1024 ** " KMGT".index((m.group(2) or " ").upper())
            amount = float(m.group(1)) * factor
            if amount > _MAX_SIZE:
                raise _Invalid(v.pos, f"{key}: {v.value!r} is larger than 1 PiB")
            return int(amount)
    raise _Invalid(v.pos, f'{key}: expected a size such as "512M", "1G" or a number of bytes')


def string_list(key: str, v: Value) -> list[str]:
    if v.kind != "array":
        raise _expect(key, v, "a list of strings")
    return [string(key, item) for item in v.value]


def string_map(key: str, v: Value) -> dict[str, str]:
    if v.kind != "map":
        raise _expect(key, v, "a block of name: value pairs")
    out: dict[str, str] = {}
    for entry in v.value:
        if entry.key in out:
            raise _Invalid(entry.key_pos, f"{key}: {entry.key!r} given twice")
        out[entry.key] = string(f"{key}.{entry.key}", entry.value)
    return out


def enum(choices: Collection[str]) -> Checker:
    def check(key: str, v: Value) -> str:
        text = string(key, v)
        if text not in choices:
            hint = difflib.get_close_matches(text, list(choices), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise _Invalid(v.pos, f"{key}: {text!r} is not one of "
                                  f"{', '.join(sorted(choices))}{extra}")
        return text
    return check


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def hhmm(key: str, v: Value) -> str:
    text = string(key, v)
    if not _HHMM.match(text):
        raise _Invalid(v.pos, f'{key}: expected a time of day "HH:MM", got {text!r}')
    return text


def block(schema: Mapping[str, Checker], required: Collection[str] = ()) -> Checker:
    def check(key: str, v: Value) -> dict[str, Any]:
        if v.kind != "map":
            raise _expect(key, v, "a block { ... }")
        return _read_entries(v.value, schema, prefix=f"{key}.", required=required, pos=v.pos)
    return check


def _read_entries(
    entries: list[Entry], schema: Mapping[str, Checker], *, prefix: str = "",
    required: Collection[str] = (), pos: Optional[Pos] = None,
) -> dict[str, Any]:
    """Check entries against a schema; collects every problem into an _Invalids."""
    out: dict[str, Any] = {}
    seen: dict[str, Pos] = {}
    problems: list[_Invalid] = []
    for entry in entries:
        name = prefix + entry.key
        if entry.key in seen:
            first = seen[entry.key]
            problems.append(_Invalid(entry.key_pos, f"{name} given twice "
                                                    f"(first at line {first.line})"))
            continue
        seen[entry.key] = entry.key_pos
        checker = schema.get(entry.key)
        if checker is None:
            hint = difflib.get_close_matches(entry.key, list(schema), n=1, cutoff=0.6)
            extra = f"; did you mean {hint[0]!r}?" if hint else \
                f"; known keys: {', '.join(sorted(schema))}"
            problems.append(_Invalid(entry.key_pos, f"unknown key {shorten(name)!r}{extra}"))
            continue
        try:
            out[entry.key] = checker(name, entry.value)
        except _Invalids as many:
            problems.extend(many.problems)
        except _Invalid as exc:
            problems.append(exc)
    for key in required:
        if key not in out and key not in seen:
            problems.append(_Invalid(pos or Pos(1, 1), f"missing required key {prefix + key!r}"))
    if problems:
        raise _Invalids(problems)
    return out


class _Invalids(_Invalid):
    def __init__(self, problems: list[_Invalid]) -> None:
        super().__init__(problems[0].pos, problems[0].message)
        self.problems = problems


def real(minimum: float, maximum: float) -> Checker:
    """A number (whole or not) within [minimum, maximum]."""
    def check(key: str, v: Value) -> float:
        if v.kind != "number" or isinstance(v.value, bool):
            raise _expect(key, v, "a number")
        value = float(v.value)
        if not minimum <= value <= maximum:
            raise _Invalid(v.pos, f"{key}: must be between {minimum:g} and {maximum:g}, "
                                  f"got {value:g}")
        return value
    return check


_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name


def named_blocks(schema: Mapping[str, Checker], required: Collection[str] = ()) -> Checker:
    """``key { NAME { ... } NAME { ... } }``: a block of named blocks, each checked against
    ``schema``; returns {name: checked entries} in the order written."""
    def check(key: str, v: Value) -> dict[str, dict[str, Any]]:
        if v.kind != "map":
            raise _expect(key, v, "a block { name { ... } ... }")
        out: dict[str, dict[str, Any]] = {}
        problems: list[_Invalid] = []
        for entry in v.value:
            where = f"{key}.{entry.key}"
            if not _TOOL_NAME.match(entry.key):
                problems.append(_Invalid(entry.key_pos, f"{shorten(where)}: a name is 1 to 64 "
                                                        "letters, digits, '_' or '-'"))
                continue
            if entry.key in out:
                problems.append(_Invalid(entry.key_pos, f"{where} given twice"))
                continue
            if entry.value.kind != "map":
                problems.append(_expect(where, entry.value, "a block { ... }"))
                continue
            try:
                out[entry.key] = _read_entries(entry.value.value, schema, prefix=f"{where}.",
                                               required=required, pos=entry.key_pos)
            except _Invalids as many:
                problems.extend(many.problems)
        if problems:
            raise _Invalids(problems)
        return out
    return check


PARAMETER_TYPES = ("string", "integer", "number", "boolean")


def parameter_types(key: str, v: Value) -> dict[str, str]:
    """A tool's short-form parameters: ``{ target: "string", count: "integer" }``."""
    types = string_map(key, v)
    for name, kind in types.items():
        if kind not in PARAMETER_TYPES:
            raise _Invalid(v.pos, f"{key}.{shorten(name)}: {shorten(kind)!r} is not a type; "
                                  f"use one of {', '.join(PARAMETER_TYPES)}")
    return types


def json_object_text(key: str, v: Value) -> str:
    """A tool's JSON Schema, as text: valid JSON, an object with "type": "object", using only
    the keywords the tool checker supports (symbid.toolschema), so that what is accepted
    here is what a run checks."""
    import json

    from symbid.toolschema import parse_schema

    text = string(key, v)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _Invalid(v.pos, f"{key}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("type") != "object":
        raise _Invalid(v.pos, f'{key}: a tool\'s schema is a JSON object with "type": '
                              '"object"')
    try:
        parse_schema(text)
    except InvalidInput as exc:
        raise _Invalid(v.pos, f"{key}: {exc.message}") from None
    return text
