"""LLM agents in the DSL and the API's JSON: their settings and tools, checked alike."""

from __future__ import annotations

import json

import pytest

from symbid.agentdef import AgentKind
from symbid.dsl.define import agent_from_json
from symbid.errors import InvalidInput
from symbid.wire import agent_to_wire
from tests.unit.test_dsl import load_text

OPERATOR = '''
agent operator {
  model: "gpt-4o-mini"
  system_prompt: "You keep the web tier healthy."
  temperature: 0.2
  max_tokens: 500
  max_tool_calls: 8
  max_context_bytes: "64K"
  max_tokens_per_run: 20000
  summarize: true
  capabilities: ["production_write"]
  tools {
    probe {
      description: "Probe a target and report"
      parameters: { target: "string", count: "integer" }
      command: ["/usr/local/bin/probe"]
    }
    restart {
      description: "Restart a service"
      parameters_schema: """{"type": "object", "properties": {"service": {"type": "string"}}}"""
      command: ["/usr/local/bin/restart"]
      requires: ["production_write"]
    }
  }
}
'''


def test_an_llm_agent_with_tools_is_loaded_with_every_setting() -> None:
    loaded = load_text(OPERATOR)
    assert loaded.ok, [d.format() for d in loaded.errors]
    agent = loaded.agents[0]
    assert agent.kind is AgentKind.LLM
    assert (agent.temperature, agent.max_tokens, agent.max_tool_calls, agent.max_context_bytes,
            agent.max_tokens_per_run, agent.summarize) == (0.2, 500, 8, 65536, 20000, True)
    probe, restart = agent.tools
    assert (probe.name, probe.parameters, probe.command) == (
        "probe", {"target": "string", "count": "integer"}, ("/usr/local/bin/probe",))
    assert restart.requires == ("production_write",)
    assert json.loads(restart.parameters_schema or "")["type"] == "object"


def test_an_llm_agent_round_trips_through_the_apis_json() -> None:
    agent = load_text(OPERATOR).agents[0]
    wire = json.loads(json.dumps(agent_to_wire(agent)))
    assert agent_from_json(wire) == agent


@pytest.mark.parametrize(("text", "fragment"), [
    ('agent a { command: ["/bin/true"] temperature: 1 }', "temperature is for llm agents"),
    ('agent a { command: ["/bin/true"] system_prompt: "x" }', "system_prompt is for llm"),
    ('agent a { model: "m" temperature: 3 }', "temperature: must be between 0 and 2"),
    ('agent a { model: "m" summarize: "yes" }', "summarize: expected true or false"),
    ('agent a { command: ["/bin/true"] summarize: true }', "summarize is for llm agents"),
    ('agent a { model: "m" max_context_bytes: 0 }', "max_context_bytes must be at least 1024"),
    ('agent a { model: "m" tools { t { command: ["/x"] parameters_schema: """{"type": '
     '"object", "properties": {"a": {"type": "string", "pattern": "x"}}}""" } } }',
     "pattern"),
    ('agent a { model: "m" tools { t { command: ["/x"] parameters: { p: "text" } } } }',
     "'text' is not a type"),
    ('agent a { model: "m" tools { t { command: ["/x"] parameters_schema: "[1]" } } }',
     '"type": "object"'),
    ('agent a { model: "m" tools { t { command: ["/x"] parameters_schema: "{nope" } } }',
     "not valid JSON"),
    ('agent a { model: "m" tools { t { description: "no command" } } }',
     "missing required key 'tools.t.command'"),
    ('agent a { model: "m" tools { t { command: ["/x"] requires: ["root"] } } }',
     "requires root, which the agent does not declare"),
    ('agent a { model: "m" tools { t { command: ["/x"] colour: "red" } } }',
     "unknown key 'tools.t.colour'"),
    ('agent a { model: "m" tools { t { command: ["/x"] parameters: { p: "string" } '
     'parameters_schema: """{"type": "object"}""" } } }', "parameters or parameters_schema"),
])
def test_bad_llm_settings_and_tools_are_refused_naming_the_key(text: str, fragment: str) -> None:
    loaded = load_text(text)
    assert not loaded.ok
    assert fragment in "\n".join(d.format() for d in loaded.errors)


def test_the_api_refuses_a_bad_tool_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as refused:
        agent_from_json({"name": "a", "model": "m",
                         "tools": {"t": {"command": ["/x"], "parameters": {"p": "text"}}}})
    assert "'text' is not a type" in refused.value.message


def test_a_listed_command_agent_posts_back_with_its_default_llm_settings() -> None:
    agent = load_text('agent c { command: ["/bin/true"] }').agents[0]
    assert agent_from_json(json.loads(json.dumps(agent_to_wire(agent)))) == agent
    with pytest.raises(InvalidInput, match="summarize is for llm agents"):
        agent_from_json({"name": "c", "command": ["/bin/true"], "summarize": True})


def test_the_api_takes_summarize_on_an_llm_agent_and_refuses_a_non_boolean() -> None:
    assert agent_from_json({"name": "a", "model": "m", "summarize": True}).summarize is True
    assert agent_from_json({"name": "a", "model": "m"}).summarize is False
    with pytest.raises(InvalidInput) as refused:
        agent_from_json({"name": "a", "model": "m", "summarize": "yes"})
    assert refused.value.field == "summarize"


@pytest.mark.parametrize("key, value", [("summarize", 0), ("summarize", ""),
                                        ("summarize", []), ("tools", 0), ("tools", ""),
                                        ("tools", False)])
def test_a_falsy_value_of_the_wrong_type_is_refused_not_taken_as_the_default(
        key: str, value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        agent_from_json({"name": "a", "model": "m", key: value})
    assert refused.value.field == key


def test_an_llm_agent_round_trips_through_the_stores_wire_form() -> None:
    from symbid.wire import agent_from_wire

    agent = load_text(OPERATOR).agents[0]
    assert agent_from_wire(json.loads(json.dumps(agent_to_wire(agent)))) == agent
    older = {k: v for k, v in agent_to_wire(agent).items() if k not in (
        "temperature", "max_tokens", "max_tool_calls", "max_context_bytes",
        "max_tokens_per_run", "summarize", "tools")}
    assert agent_from_wire(older).tools == ()  # a row an older symbid wrote
