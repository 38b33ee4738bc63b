"""Forced tool calls end to end below HTTP: the tools prompt through SmolLM2's own chat template (which has
no `tools` support, so the fallback prompt), the forcing grammar on the engine, the tool parser on the
output, and jsonschema on the arguments."""

import json

import jsonschema
import pytest

from compat.chat_template import ChatTemplate
from compat.response_format import parse_response_format
from compat.tool_parser import parse_tool_calls
from compat.tools import (
    FunctionTool,
    NamedToolChoice,
    forced_tool_call_grammar,
    template_supports_tools,
    with_tool_prompt,
)
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output import StructuredOutputParams
from tests.test_structured_output import generate

WEATHER = FunctionTool("get_weather", "Current weather in a city", {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30},
                   "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
})
FLIGHTS = FunctionTool("find_flights", "Flights between two airports", {
    "type": "object",
    "properties": {"origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
                   "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
                   "passengers": {"type": "integer", "minimum": 1, "maximum": 9}},
    "required": ["origin", "destination", "passengers"],
    "additionalProperties": False,
})
TOOLS = [WEATHER, FLIGHTS]
BY_NAME = {t.name: t for t in TOOLS}
USER = {"role": "user", "content": "What's the weather in Paris? Also find 2 seats from CDG to JFK."}


def test_response_format_schema():
    assert parse_response_format({"type": "json_object"}).schema == {"type": "object"}
    spec = {"type": "json_schema", "json_schema": {"name": "p", "schema": WEATHER.parameters}}
    assert parse_response_format(spec).schema == WEATHER.parameters
    assert parse_response_format({"type": "json_schema", "json_schema": {"name": "any"}}).schema == {}
    assert parse_response_format({"type": "text"}).schema is None


def test_template_tools_support_is_detected(smollm2_engine):
    assert not template_supports_tools(smollm2_engine.tokenizer.chat_template)
    assert template_supports_tools("{% if tools %}{{ tools | tojson }}{% endif %}")


def test_fallback_prompt_renders_history_through_a_template_without_tools(smollm2_engine):
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
    history = [USER, {"role": "assistant", "tool_calls": [call]},
               {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"},
               {"role": "tool", "content": "no flights", "tool_call_id": "call_2"}]
    prompt = ChatTemplate(smollm2_engine.tokenizer.chat_template).render(with_tool_prompt(history, TOOLS))
    assert prompt.startswith("<|im_start|>system\nYou can call functions.")
    assert json.dumps(WEATHER.to_dict()) in prompt
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": '
            '{"city": "Paris", "unit": "celsius"}}\n</tool_call><|im_end|>') in prompt
    assert ("<|im_start|>user\n<tool_response>\n18 C, sunny\n</tool_response>\n"
            "<tool_response>\nno flights\n</tool_response><|im_end|>") in prompt


def test_fallback_prompt_joins_an_existing_system_message():
    messages = with_tool_prompt([{"role": "system", "content": "Be brief."}, USER], [WEATHER])
    assert messages[0]["content"].startswith("Be brief.\n\nYou can call functions.")
    assert messages[1:] == [USER]


def test_auto_and_none_force_nothing():
    assert forced_tool_call_grammar(TOOLS, "auto") is None
    assert forced_tool_call_grammar(TOOLS, "none") is None


@pytest.fixture(scope="module")
def forced_outputs(smollm2_engine):
    prompt = ChatTemplate(smollm2_engine.tokenizer.chat_template).render(with_tool_prompt([USER], TOOLS))
    ids = smollm2_engine.tokenizer.encode(prompt)
    choices = {"required": ("required", True), "single": ("required", False),
               "named": (NamedToolChoice("find_flights"), True)}
    requests = {}
    for label, (choice, parallel) in choices.items():
        grammar = forced_tool_call_grammar(TOOLS, choice, parallel)
        for t in (0.0, 1.0):
            params = SamplingParams(temperature=t, seed=11, max_tokens=120,
                                    structured_output=StructuredOutputParams(grammar=grammar))
            requests[f"{label}@{t}"] = (ids, params)
    return generate(smollm2_engine, requests)


@pytest.mark.parametrize("label", ["required", "single", "named"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_forced_tool_call_parses_with_arguments_valid_for_its_tool(forced_outputs, label, temperature):
    out = forced_outputs[f"{label}@{temperature}"]
    content, calls = parse_tool_calls(out["text"], BY_NAME)
    assert content is None and calls, out
    assert out["finish_reason"] == "stop" and len(calls) <= len(TOOLS), out  # forced calls end
    for call in calls:
        jsonschema.validate(json.loads(call.arguments), BY_NAME[call.name].parameters)
    if label == "named":
        assert [c.name for c in calls] == ["find_flights"]
    if label in ("named", "single"):
        assert len(calls) == 1 and out["finish_reason"] == "stop"
