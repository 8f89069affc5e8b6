"""The pure parts of the LLM agent runtime: the schema subset, tool checks, the spec,
context trimming (issue 10)."""

from __future__ import annotations

import io
import json

import pytest

from symbid import toolschema as schema
from symbid.agents.conversation import MARKER_PREFIX, size_of, trim_context, wire
from symbid.agents.llm import BadResponse, read_response
from symbid.agents.spec import parse_spec
from symbid.agents.tools import check_call, make_tool, tool_environment
from symbid.errors import InvalidInput

PROBE = make_tool("probe", command=["/bin/true"], description="Probe a target",
                  parameters={"target": "string", "count": "integer"})


def test_the_short_form_requires_every_parameter_and_allows_no_others() -> None:
    assert PROBE.schema == {
        "type": "object", "properties": {"target": {"type": "string"},
                                         "count": {"type": "integer"}},
        "required": ["target", "count"], "additionalProperties": False}
    assert PROBE.function()["function"]["name"] == "probe"
    assert PROBE.function()["function"]["parameters"] == PROBE.schema


def test_a_short_form_type_outside_the_four_is_refused_naming_the_parameter() -> None:
    with pytest.raises(InvalidInput, match=r"tools\.probe\.parameters\.target"):
        make_tool("probe", command=["x"], parameters={"target": "date"})


def test_an_unsupported_schema_keyword_is_refused_at_definition_naming_it() -> None:
    text = json.dumps({"type": "object", "properties": {"n": {"type": "integer",
                                                              "minimum": 1}}})
    with pytest.raises(schema.SchemaError, match="'minimum' is not supported") as info:
        make_tool("count", command=["x"], parameters_schema=text)
    assert info.value.field == "tools.count.parameters_schema.properties.n.minimum"


def test_a_schema_that_is_not_json_or_not_an_object_is_refused() -> None:
    with pytest.raises(schema.SchemaError, match="not valid JSON"):
        schema.parse_schema("{type: object}")
    with pytest.raises(schema.SchemaError, match="top-level type"):
        schema.parse_schema('{"type": "array"}')


def test_the_full_form_checks_types_enums_items_and_extra_properties() -> None:
    full = schema.parse_schema(json.dumps({
        "type": "object", "description": "restart",
        "properties": {"service": {"type": "string", "enum": ["web", "db"]},
                       "hosts": {"type": "array", "items": {"type": "string"}},
                       "force": {"type": "boolean"}, "ratio": {"type": "number"}},
        "required": ["service"], "additionalProperties": False}))

    assert schema.errors({"service": "web", "hosts": ["a"], "force": True, "ratio": 1}, full) \
        == []
    assert schema.errors({"service": "mail", "hosts": ["a", 2], "x": 1, "force": "yes"},
                         full) == [
        'arguments.service: "mail" is not one of ["web", "db"]',
        "arguments.hosts[1]: expected string, got integer",
        "arguments: unexpected property 'x'",
        "arguments.force: expected boolean, got string",
    ]
    assert schema.errors({}, full) == ["arguments: missing required property 'service'"]


def test_booleans_are_not_integers_and_whole_floats_are() -> None:
    assert schema.errors(True, {"type": "integer"}) == ["arguments: expected integer, got "
                                                        "boolean"]
    assert schema.errors(3.0, {"type": "integer"}) == []
    assert schema.errors(3.5, {"type": "integer"}) != []


def test_an_undeclared_tool_bad_json_or_schema_breaking_arguments_are_refused() -> None:
    tools = {"probe": PROBE}
    caps: frozenset[str] = frozenset()

    assert check_call(tools.get("rm"), "rm", "{}", caps)[1] == (
        "unknown tool 'rm': it is not declared for this agent")
    assert "not valid JSON" in str(check_call(PROBE, "probe", "{target", caps)[1])
    assert "missing required property 'count'" in str(
        check_call(PROBE, "probe", '{"target": "web"}', caps)[1])
    assert check_call(PROBE, "probe", '{"target": "web", "count": 2}', caps) == (
        {"target": "web", "count": 2}, None)


def test_a_tool_whose_capability_the_agent_lacks_is_refused() -> None:
    deploy = make_tool("deploy", command=["x"], requires=["production_write"])

    args, refusal = check_call(deploy, "deploy", "{}", frozenset({"read"}))

    assert args is None
    assert refusal is not None and "production_write" in refusal
    assert check_call(deploy, "deploy", "{}", frozenset({"production_write"}))[1] is None


def test_the_tool_environment_holds_only_the_allowlist_and_never_the_key() -> None:
    env = {"PATH": "/bin", "HOME": "/h", "SYMBI_LLM_API_KEY": "sk-1", "OPENAI_API_KEY": "sk-2",
           "SYMBI_RUN_ID": "r1", "SECRET": "s"}

    assert tool_environment(env, ("SYMBI_LLM_API_KEY",)) == {
        "PATH": "/bin", "HOME": "/h", "SYMBI_RUN_ID": "r1"}


def _turn(i: int) -> dict[str, object]:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i:03d} " + "x" * 200}


def test_trimming_drops_the_oldest_turns_keeps_the_system_prompt_and_says_so() -> None:
    messages = [{"role": "system", "content": "be brief"}, *(_turn(i) for i in range(20))]

    kept, dropped = trim_context(messages, 1500)

    assert dropped > 0
    assert kept[0] == {"role": "system", "content": "be brief"}
    assert kept[1]["content"].startswith(MARKER_PREFIX)
    assert f"{dropped} earlier messages were dropped" in kept[1]["content"]
    assert kept[-1] == messages[-1]
    assert kept[2:] == messages[-(len(kept) - 2):]
    assert size_of(kept) <= 1500


def test_trimming_again_counts_the_earlier_drops_and_leaves_a_small_context_alone() -> None:
    messages = [{"role": "system", "content": "s"}, *(_turn(i) for i in range(20))]
    once, first = trim_context(messages, 2000)

    twice, total = trim_context([*once, _turn(20), _turn(21)], 2000)

    assert total == first + 2
    assert [m["role"] for m in twice].count("system") == 2
    assert trim_context(messages[:3], 10_000) == (messages[:3], 0)
    assert all("_dropped" not in m for m in wire(twice))


def test_trimming_never_leaves_a_tool_answer_without_its_call() -> None:
    messages = [{"role": "user", "content": "u" * 300},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "t" * 300},
                {"role": "assistant", "content": "done"}]

    kept, _ = trim_context(messages, 400)

    assert [m["role"] for m in kept] == ["system", "assistant"]


def _spec(**fields: object) -> str:
    base: dict[str, object] = {"endpoint": "http://127.0.0.1:1/v1", "model": "m",
                               "input": "hi", "timeout_seconds": 10}
    return json.dumps({**base, **fields})


def test_a_spec_with_an_unknown_field_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInput, match=r"'agent\.sytem_prompt'"):
        parse_spec(_spec(agent={"sytem_prompt": "x"}))
    with pytest.raises(InvalidInput, match="timeout_seconds is required"):
        parse_spec(json.dumps({"endpoint": "e", "model": "m", "input": "i"}))
    with pytest.raises(InvalidInput, match=r"limits\.max_tool_calls must be int"):
        parse_spec(_spec(limits={"max_tool_calls": "many"}))


def test_a_spec_gets_its_defaults_and_its_tools() -> None:
    spec = parse_spec(_spec(agent={"tools": [{"name": "probe", "command": ["/bin/true"],
                                              "parameters": {"target": "string"}}]}))

    assert spec.api_key_env == "SYMBI_LLM_API_KEY"
    assert spec.limits.max_tool_calls == 16
    assert spec.limits.max_context_bytes == 256 * 1024
    assert spec.max_retries == 3
    assert [t.name for t in spec.tools] == ["probe"]


def test_request_slots_come_with_max_concurrent_requests_or_are_refused() -> None:
    spec = parse_spec(_spec(request_slots="/run/slots", limits={"max_concurrent_requests": 2}))
    assert spec.request_slots == ("/run/slots", 2)
    assert parse_spec(_spec()).request_slots is None  # a child started by hand: unbounded
    with pytest.raises(InvalidInput, match=r"request_slots needs limits\.max_concurrent"):
        parse_spec(_spec(request_slots="/run/slots"))
    with pytest.raises(InvalidInput, match="max_concurrent_requests needs request_slots"):
        parse_spec(_spec(limits={"max_concurrent_requests": 2}))
    with pytest.raises(InvalidInput, match=r"limits\.max_concurrent_requests must be"):
        parse_spec(_spec(request_slots="/run/slots", limits={"max_concurrent_requests": 0}))


def test_a_chunked_response_is_read_whole() -> None:
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")

    assert read_response(io.BytesIO(raw)) == (200, {"transfer-encoding": "chunked",
                                                    "retry-after": "3"}, b"hello world")


def test_a_response_is_read_by_content_length_or_to_the_close() -> None:
    with_length = b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n{}trailing"
    to_close = b"HTTP/1.0 200 OK\r\n\r\n{\"a\": 1}"

    assert read_response(io.BytesIO(with_length))[::2] == (500, b"{}")
    assert read_response(io.BytesIO(to_close))[::2] == (200, b'{"a": 1}')


def test_a_truncated_or_non_http_response_is_refused() -> None:
    with pytest.raises(BadResponse, match="closed before"):
        read_response(io.BytesIO(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"))
    with pytest.raises(BadResponse, match=r"HTTP/1\.x"):
        read_response(io.BytesIO(b"SSH-2.0-OpenSSH\r\n"))


def test_tool_traffic_as_text_alternates_roles_and_names_each_call() -> None:
    from symbid.agents.conversation import as_text

    call = {"type": "function", "function": {"name": "probe", "arguments": "{}"}}
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{**call, "id": "c1"}, {**call, "id": "c2"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "one"},
                {"role": "tool", "tool_call_id": "c2", "content": "two"},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "summarize"}]
    got = as_text(messages)
    assert [m["role"] for m in got] == ["user", "assistant", "user", "assistant", "user"]
    assert got[2]["content"] == "[probe (id c1) answered]\none\n\n[probe (id c2) answered]\ntwo"
    assert got[3] == {"role": "assistant", "content": ""}
