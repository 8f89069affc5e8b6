"""The JSON Schema subset tool arguments are checked against.

Supported keywords: ``type`` (object, array, string, integer, number, boolean, null, or a
list of them), ``properties``, ``required``, ``additionalProperties`` (``false``, ``true``
or a schema), ``enum``, ``items`` (one schema), and the annotations ``description``,
``title``, ``default``, ``examples``, ``$schema`` (accepted, never checked). Any other
keyword is refused when the tool is defined, naming it, so nothing in a schema is silently
ignored.
"""

from __future__ import annotations

import json
from typing import Any

from symbid.errors import InvalidInput

TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
SHORT_TYPES = ("string", "integer", "number", "boolean")
CHECKED = frozenset({"type", "properties", "required", "additionalProperties", "enum", "items"})
ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$schema"})


class SchemaError(InvalidInput):
    """A tool's schema uses something this subset does not check."""

    code = "invalid_schema"


def check_schema(schema: object, where: str = "parameters_schema") -> None:
    """Raise :class:`SchemaError` unless ``schema`` lies within the supported subset.

    ``where`` is the path reported in the message (``parameters_schema.properties.x``).
    """
    if not isinstance(schema, dict):
        raise SchemaError(f"{where}: a schema must be a JSON object", field=where)
    for key in schema:
        if key not in CHECKED and key not in ANNOTATIONS:
            raise SchemaError(
                f"{where}: schema keyword {key!r} is not supported (supported: "
                f"{', '.join(sorted(CHECKED))}); remove it or express it with those",
                field=f"{where}.{key}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        for kind in kinds:
            if kind not in TYPES:
                raise SchemaError(f"{where}.type: unknown type {kind!r} (one of "
                                  f"{', '.join(TYPES)})", field=f"{where}.type")
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise SchemaError(f"{where}.properties must be an object", field=f"{where}.properties")
    for name, sub in props.items():
        check_schema(sub, f"{where}.properties.{name}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaError(f"{where}.required must be a list of names", field=f"{where}.required")
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        check_schema(extra, f"{where}.additionalProperties")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise SchemaError(f"{where}.enum must be a non-empty list", field=f"{where}.enum")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")


def parse_schema(text: str) -> dict[str, Any]:
    """The schema in ``text`` (JSON), checked by :func:`check_schema`; its top is an object."""
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"parameters_schema is not valid JSON: {exc}",
                          field="parameters_schema") from None
    check_schema(schema)
    if schema.get("type", "object") != "object":
        raise SchemaError("parameters_schema: the top-level type must be \"object\"",
                          field="parameters_schema.type")
    result: dict[str, Any] = {"type": "object", **schema}
    return result


def short_schema(params: dict[str, str]) -> dict[str, Any]:
    """The schema of the short form ``{name: "type"}``: every parameter required, no others."""
    props: dict[str, Any] = {}
    for name, kind in params.items():
        if kind not in SHORT_TYPES:
            raise SchemaError(f"parameters.{name}: type {kind!r} is not one of "
                              f"{', '.join(SHORT_TYPES)}", field=f"parameters.{name}")
        props[name] = {"type": kind}
    return {"type": "object", "properties": props, "required": list(params),
            "additionalProperties": False}


def _is(value: object, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float))  # number


def errors(value: object, schema: dict[str, Any], where: str = "arguments") -> list[str]:
    """Every way ``value`` breaks ``schema`` (a checked schema), each naming its path."""
    found: list[str] = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: expected {' or '.join(kinds)}, got {_kind(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {json.dumps(value)[:80]} is not one of "
                     f"{json.dumps(schema['enum'])[:200]}")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{where}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, sub in value.items():
            if name in props:
                found += errors(sub, props[name], f"{where}.{name}")
            elif extra is False:
                found.append(f"{where}: unexpected property {name!r}")
            elif isinstance(extra, dict):
                found += errors(sub, extra, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(item, schema["items"], f"{where}[{i}]")
    return found


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    for kind in ("null", "object", "array", "string", "integer", "number"):
        if _is(value, kind):
            return kind
    return type(value).__name__
