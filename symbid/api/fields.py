"""Typed readers of request JSON fields: each returns the value or raises
:class:`InvalidInput` naming the field (the API's one way to check a body's fields)."""

from __future__ import annotations

import math
from typing import Any, Optional

from symbid.errors import InvalidInput
from symbid.text import shorten
from symbid.timing import parse_duration


def bad(field: str, message: str) -> InvalidInput:
    field = shorten(field)  # an unknown field's name comes from the request
    return InvalidInput(f"{field}: {message}", field=field)


def string(field: str, v: Any, *, nullable: bool = False) -> Optional[str]:
    if v is None and nullable:
        return None
    if not isinstance(v, str):
        raise bad(field, f"expected a string, got {type(v).__name__ if v is not None else 'null'}")
    return v


def nonempty(field: str, v: Any) -> str:
    text = string(field, v)
    assert text is not None
    if not text.strip():
        raise bad(field, "must not be empty")
    return text


def boolean(field: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise bad(field, "expected true or false")
    return v


def integer(field: str, v: Any, low: int, *, nullable: bool = False) -> Optional[int]:
    if v is None and nullable:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise bad(field, "expected a whole number")
    if v < low:
        raise bad(field, f"must be at least {low}")
    return v


def number(field: str, v: Any, *, nullable: bool = False) -> Optional[float]:
    if v is None and nullable:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise bad(field, "expected a number")
    if not math.isfinite(v):
        raise bad(field, "expected a finite number")
    if v < 0:
        raise bad(field, "must not be negative")
    return float(v)


def str_list(field: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise bad(field, "expected a list of strings")
    return tuple(v)


def str_map(field: str, v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise bad(field, "expected an object of string values")
    return dict(v)


def enum_value(field: str, v: Any, choices: list[str]) -> str:
    if v not in choices:
        raise bad(field, f"must be one of {', '.join(choices)}")
    return str(v)


def json_object(field: str, v: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise bad(field, "expected an object")
    for key in v:
        if key not in allowed:
            raise bad(f"{field}.{key}", f"unknown field; {field} takes "
                                         f"{', '.join(allowed)}")
    return v


def duration(field: str, v: Any) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise bad(field, 'expected a duration such as "5m" or a number of seconds')
    return parse_duration(v, field=field)
