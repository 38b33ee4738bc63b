"""/v1/messages (Anthropic's Messages API) on the shared default-model server, through the anthropic SDK and raw
HTTP. Reference for the wire format: the SDK's own typed models, which must parse every body and every event
strictly (tests/anthropic_strict.py); for the answer, HF transformers' greedy tokens (tests/golden)."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import pytest
from anthropic import types

from tests.anthropic_strict import STREAM_EVENT, parse_strictly
from tests.server_fixture import DEFAULT_MODEL_NAME, named_events, post, request
from tests.test_responses_api import ANSWER, CITY, GREEDY_IDS, PROMPT_IDS, QUESTION, drained

GREEDY = {"temperature": 0}  # this SDK no longer takes temperature as an argument; the API still does
ASK = {"model": DEFAULT_MODEL_NAME, "max_tokens": 16, "messages": [{"role": "user", "content": QUESTION}]}
POEM = {**ASK, "messages": [{"role": "user", "content": "Write a long poem about the sea."}]}
WEATHER = {"name": "get_weather", "description": "The weather in a city", "input_schema": CITY}
FORCED_CALL = {**ASK, "max_tokens": 40, "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
               "tools": [WEATHER, {"type": "web_search_20250305", "name": "web_search"}],
               "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}}


@pytest.fixture(scope="module")
def claude(server):
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0)


def created(server, body: dict) -> types.Message:
    reply = post(server, "/v1/messages", {**body, **GREEDY})
    assert reply.status == 200, reply.text
    return parse_strictly(reply.json())


def streamed(server, body: dict) -> list:
    events = named_events(post(server, "/v1/messages", {**body, **GREEDY, "stream": True}))
    assert events[1] == {"type": "ping"}
    return [parse_strictly(e, STREAM_EVENT) for e in events if e["type"] != "ping"]


def without_id(message) -> dict:
    dumped = message.model_dump(mode="json", exclude_unset=True, exclude={"id"})
    for block in dumped["content"]:
        block.pop("id", None)
        block.pop("parsed_output", None)
    return dumped


def test_greedy_answer_matches_transformers(server):
    message = created(server, ASK)
    assert [(b.type, b.text) for b in message.content] == [("text", ANSWER)]
    assert (message.stop_reason, message.stop_sequence, message.role) == ("end_turn", None, "assistant")
    usage = message.usage
    assert usage.input_tokens + usage.cache_read_input_tokens == len(PROMPT_IDS)
    assert usage.output_tokens == len(GREEDY_IDS)


def test_stream_parses_strictly_and_adds_up_to_the_same_message(server, claude):
    events = streamed(server, POEM)
    assert [e.type for e in events[:2]] == ["message_start", "content_block_start"]
    assert [e.type for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    whole = created(server, POEM)
    assert whole.stop_reason == "max_tokens" and whole.usage.output_tokens == 16
    assert [b.text for b in whole.content] == [text]
    assert events[-2].delta.stop_reason == "max_tokens" and events[-2].usage.output_tokens == 16
    with claude.messages.stream(**POEM, extra_body=GREEDY) as stream:  # the SDK's accumulator
        final = stream.get_final_message()
    assert without_id(final)["content"] == without_id(whole)["content"]
    assert (final.stop_reason, final.usage.output_tokens) == (whole.stop_reason, whole.usage.output_tokens)


def test_tool_use_and_tool_result_round_trip(server, claude):
    events = streamed(server, FORCED_CALL)
    message = created(server, FORCED_CALL)
    [call] = message.content
    assert call.type == "tool_use" and call.name == "get_weather" and call.id.startswith("toolu_")
    jsonschema.validate(call.input, CITY)
    assert message.stop_reason == "tool_use"
    partial = "".join(e.delta.partial_json for e in events if e.type == "content_block_delta")
    assert json.loads(partial) == call.input
    assert events[-2].delta.stop_reason == "tool_use"
    reply = claude.messages.create(
        model=DEFAULT_MODEL_NAME, max_tokens=24, tools=[WEATHER], extra_body=GREEDY,
        messages=[*FORCED_CALL["messages"], {"role": "assistant", "content": [call.model_dump(exclude_unset=True)]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                "content": [{"type": "text", "text": "22 degrees"}]}]}])
    assert reply.content and reply.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert reply.usage.input_tokens + reply.usage.cache_read_input_tokens > message.usage.input_tokens


def test_count_tokens_counts_the_prompt(server, claude):
    counted = claude.messages.count_tokens(model=DEFAULT_MODEL_NAME, messages=ASK["messages"])
    assert counted.input_tokens == len(PROMPT_IDS)
    reply = post(server, "/v1/messages/count_tokens", {"model": DEFAULT_MODEL_NAME, "messages": ASK["messages"],
                                                        "system": [{"type": "text", "text": "Be brief."}]})
    chat = post(server, "/tokenize", {"messages": [{"role": "system", "content": "Be brief."}, *ASK["messages"]]})
    assert parse_strictly(reply.json(), types.MessageTokensCount).input_tokens == chat.json()["count"]


def test_system_messages_between_turns_are_read(server, claude):
    """Claude Code sends `system` messages after the user's (Anthropic's mid-conversation system messages)."""
    turns = [*ASK["messages"], {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}]
    counted = claude.messages.count_tokens(model=DEFAULT_MODEL_NAME, messages=turns)
    chat = post(server, "/tokenize", {"messages": [*ASK["messages"], {"role": "system", "content": "Be brief."}]})
    assert counted.input_tokens == chat.json()["count"]


def test_output_config_format_is_enforced(server):
    person = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    message = created(server, {**ASK, "max_tokens": 40, "messages": [{"role": "user", "content": "Invent a person."}],
                               "output_config": {"format": {"type": "json_schema", "schema": person}}})
    jsonschema.validate(json.loads(message.content[0].text), person)


def test_stop_sequence_ends_the_message(server):
    message = created(server, {**ASK, "stop_sequences": ["Paris", "Rome"]})
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "Paris")
    assert message.content[0].text == "The capital of France is "


def test_beta_query_and_anthropic_headers_are_accepted(claude):
    message = claude.messages.create(**ASK, extra_body=GREEDY, extra_query={"beta": "true"},
                                     extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
                                     thinking={"type": "disabled"}, metadata={"user_id": "u1"},
                                     system=[{"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}])
    assert message.content[0].text == ANSWER


BAD_BODIES = [
    # (body, status, error type, words the message must hold)
    ({**ASK, "max_tokens": None}, 400, "invalid_request_error", "max_tokens"),
    ({**ASK, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "x"}}]}]},
     400, "invalid_request_error", "messages[0].content[0].type"),
    ({**ASK, "messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_request_error", "messages[0].role"),
    ({**ASK, "tools": [{"name": "f"}]}, 400, "invalid_request_error", "tools[0].input_schema"),
    ({**ASK, "tool_choice": {"type": "any"}}, 400, "invalid_request_error", "tool_choice"),
    ({**ASK, "temperature": 1.5}, 400, "invalid_request_error", "temperature"),
    ({**ASK, "messages": [{"role": "user", "content": "word " * 600}]}, 400, "invalid_request_error",
     "maximum context length"),
    ({**ASK, "model": "claude-opus-4"}, 404, "not_found_error", "claude-opus-4"),
    (b"{not json", 400, "invalid_request_error", "JSON"),
]


@pytest.mark.parametrize(("body", "status", "kind", "words"), BAD_BODIES)
def test_bad_requests_get_anthropic_errors(server, body, status, kind, words):
    reply = post(server, "/v1/messages", body, {"Content-Type": "application/json"})
    assert reply.status == status, reply.text
    error = parse_strictly(reply.json(), types.ErrorResponse).error
    assert error.type == kind and words in error.message, error


def test_sdk_raises_its_own_exceptions_for_our_errors(claude):
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(**{**ASK, "model": "claude-opus-4"})
    assert caught.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.count_tokens(model=DEFAULT_MODEL_NAME, messages=[])


def test_wrong_method_and_route_answer_in_anthropic_envelope(server):
    for method, path, status in (("GET", "/v1/messages", 405), ("POST", "/v1/messages/batches", 404)):
        reply = request(server, method, path)
        assert reply.status == status
        parse_strictly(reply.json(), types.ErrorResponse)


def test_client_that_leaves_mid_stream_leaves_nothing_running(server, claude):
    with claude.messages.stream(**{**POEM, "max_tokens": 400}, extra_body=GREEDY) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    drained(server)
