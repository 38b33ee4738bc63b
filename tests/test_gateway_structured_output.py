"""response_format and tools on a real server with the default model, through the official OpenAI SDK (and
LangChain). jsonschema and pydantic judge the outputs; the stream is checked against the non-stream reply."""

import json

import jsonschema
import pytest
from pydantic import BaseModel, Field

from jax_engine.loader import default_model_path
from jax_engine.tokenizer import Tokenizer
from tests.server_fixture import DEFAULT_MODEL_NAME, post, stream_events

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 24},
                   "age": {"type": "integer", "minimum": 0, "maximum": 120},
                   "role": {"enum": ["admin", "editor", "viewer"]}},
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "properties": {
        "customer": {"type": "object",
                     "properties": {"name": {"type": "string", "maxLength": 20},
                                    "vip": {"type": "boolean"}},
                     "required": ["name", "vip"], "additionalProperties": False},
        "lines": {"type": "array", "minItems": 1, "maxItems": 3,
                  "items": {"type": "object",
                            "properties": {"sku": {"enum": ["A1", "B2", "C3"]},
                                           "qty": {"type": "integer", "minimum": 1, "maximum": 5},
                                           "price": {"type": "number", "minimum": 0.5, "maximum": 99.5}},
                            "required": ["sku", "qty", "price"], "additionalProperties": False}},
    },
    "required": ["customer", "lines"],
    "additionalProperties": False,
}
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30},
                   "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_PARAMS = {"type": "object", "properties": {"timezone": {"type": "string", "maxLength": 30}},
               "required": ["timezone"], "additionalProperties": False}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                      "parameters": WEATHER_PARAMS}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time in a timezone",
                                      "parameters": TIME_PARAMS}},
]
PARAMS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
ASK_WEATHER = [{"role": "user", "content": "What is the weather like in Paris today?"}]


class Pet(BaseModel):
    name: str = Field(max_length=16)
    species: str = Field(pattern="^(cat|dog|fish)$")
    legs: int = Field(ge=0, le=4)


def create(client, **kw):
    return client.chat.completions.create(model=DEFAULT_MODEL_NAME, **{"max_tokens": 80, "seed": 5, **kw})


def json_schema_format(name, schema):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


# ---- response_format ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, schema, ask", [
    ("person", PERSON, "Invent a user of our website."),
    ("order", ORDER, "Record an order for two items."),
])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_json_schema_output_validates(client, name, schema, ask, temperature):
    reply = create(client, messages=[{"role": "user", "content": ask}], temperature=temperature, max_tokens=200,
                   response_format=json_schema_format(name, schema))
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), schema)


def test_sdk_parse_with_a_pydantic_model(client):
    reply = client.chat.completions.parse(model=DEFAULT_MODEL_NAME, response_format=Pet, max_tokens=60,
                                          messages=[{"role": "user", "content": "Describe my pet."}])
    pet = reply.choices[0].message.parsed
    assert isinstance(pet, Pet) and pet.species in ("cat", "dog", "fish")


def test_json_object_is_one_object(client):
    reply = create(client, messages=[{"role": "user", "content": "Return a JSON object describing a cat."}],
                   temperature=0, max_tokens=120, response_format={"type": "json_object"})
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_streamed_json_schema_content_validates(server):
    events = stream_events(server, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Invent a user."}], "max_tokens": 80, "temperature": 1,
        "response_format": json_schema_format("person", PERSON)}, "CreateChatCompletionStreamResponse")
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    jsonschema.validate(json.loads(text), PERSON)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


SELF_REQUIRED = {"$defs": {"n": {"type": "object", "properties": {"c": {"$ref": "#/$defs/n"}}, "required": ["c"]}},
                 "$ref": "#/$defs/n"}  # valid, but no finite instance
TOO_WIDE = {"anyOf": [{"type": "object", "properties": {f"k{i}": {"type": "integer"}}, "required": [f"k{i}"]}
                      for i in range(3000)]}
UNSATISFIABLE = {
    "self-required $ref": ({"response_format": json_schema_format("n", SELF_REQUIRED)}, "response_format"),
    "anyOf of 3,000 objects": ({"response_format": json_schema_format("w", TOO_WIDE)}, "response_format"),
    "tool parameters {$ref: #}": ({"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"$ref": "#"}}}], "tool_choice": "required"}, "tools"),
}


@pytest.mark.parametrize("case", UNSATISFIABLE)
@pytest.mark.parametrize("stream", [False, True])
def test_a_grammar_the_parser_cannot_follow_is_refused_at_admission(server, case, stream):
    fields, param = UNSATISFIABLE[case]
    reply = post(server, "/v1/chat/completions", {"messages": ASK_WEATHER, "max_tokens": 8, "stream": stream,
                                                  **fields})
    assert reply.status == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and "cannot be enforced" in error["message"]


# ---- tools ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool_choice, expected", [
    ("required", None),
    ({"type": "function", "function": {"name": "get_time"}}, "get_time"),
])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_forced_tool_call_arguments_validate(client, tool_choice, expected, temperature):
    reply = create(client, messages=ASK_WEATHER, tools=TOOLS, tool_choice=tool_choice, temperature=temperature,
                   parallel_tool_calls=False)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert expected in (None, call.function.name)
    jsonschema.validate(json.loads(call.function.arguments), PARAMS[call.function.name])


def test_parallel_calls_each_validate(client):
    reply = create(client, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", temperature=0,
                   max_tokens=120)
    calls = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls"  # the calls end: at most one per tool offered
    assert 1 <= len(calls) <= len(TOOLS) and len({c.id for c in calls}) == len(calls)
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), PARAMS[call.function.name])


@pytest.mark.parametrize("max_tokens", [5, 12])
def test_a_forced_call_cut_by_max_tokens_is_no_call_and_leaks_no_markup(server, max_tokens):
    body = {"messages": ASK_WEATHER, "tools": TOOLS, "tool_choice": "required", "temperature": 0,
            "max_tokens": max_tokens}
    whole = post(server, "/v1/chat/completions", body).json()["choices"][0]
    assert whole["finish_reason"] == "length"
    assert whole["message"]["content"] is None and not whole["message"].get("tool_calls")
    events = stream_events(server, "/v1/chat/completions", body, "CreateChatCompletionStreamResponse")
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert not any(d.get("content") for d in deltas)
    arguments = "".join(c["function"].get("arguments", "") for d in deltas for c in d.get("tool_calls") or ())
    assert "{}" not in arguments


def test_streamed_tool_call_reassembles_to_the_non_stream_call(server, client):
    body = {"messages": ASK_WEATHER, "tools": TOOLS, "tool_choice": "required", "temperature": 0,
            "max_tokens": 80, "parallel_tool_calls": False}
    whole = create(client, **body).choices[0].message.tool_calls[0]
    events = stream_events(server, "/v1/chat/completions", body, "CreateChatCompletionStreamResponse")
    pieces = [c for e in events for c in e["choices"][0]["delta"].get("tool_calls") or ()]
    assert pieces[0]["id"].startswith("call_") and pieces[0]["function"]["name"] == whole.function.name
    assert all(p["index"] == 0 and "id" not in p for p in pieces[1:]) and len(pieces) > 3
    assert "".join(p["function"].get("arguments", "") for p in pieces) == whole.function.arguments
    assert events[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}


def test_round_trip_tool_result_reaches_the_prompt_and_gets_an_answer(server, client):
    first = create(client, messages=ASK_WEATHER, tools=TOOLS, temperature=0, parallel_tool_calls=False,
                   tool_choice={"type": "function", "function": {"name": "get_weather"}}).choices[0].message
    call = first.tool_calls[0]
    history = [*ASK_WEATHER, first.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"}]
    final = create(client, messages=history, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=40)
    assert final.choices[0].finish_reason in ("stop", "length") and final.choices[0].message.content
    assert final.choices[0].message.tool_calls is None
    rendered = post(server, "/tokenize", {"messages": history, "tools": TOOLS}).json()["tokens"]
    prompt = Tokenizer.from_gguf(default_model_path()).decode(rendered, skip_special_tokens=False)
    assert f"<tool_call>\n{json.dumps({'name': 'get_weather', 'arguments': json.loads(call.function.arguments)})}" \
           "\n</tool_call>" in prompt
    assert "<tool_response>\n18 degrees and sunny\n</tool_response>" in prompt


def test_langchain_bind_tools_returns_a_tool_call(server):
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    llm = langchain_openai.ChatOpenAI(base_url=server.url("/v1"), api_key="unused", model=DEFAULT_MODEL_NAME,
                                      temperature=0, max_tokens=60, max_retries=0)
    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Paris?")
    [call] = message.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
