"""/v1/responses on the shared default-model server, through the official openai SDK and raw HTTP.

References: OpenAI's published schemas (tests/openai_schemas.json, strict: no field they do not name) for
every body and every streamed event; the SDK's own stream accumulator and parsers; HF transformers' prompt and
greedy answer for SmolLM2 (tests/golden), which the chat endpoint is held to as well.
"""

from __future__ import annotations

import json
import os
import socket
import time
from urllib.parse import urlsplit

import jsonschema
import numpy as np
import openai
import orjson
import pydantic
import pytest

from tests.openai_schema import RESPONSE_EVENTS, validate
from tests.server_fixture import DEFAULT_MODEL_NAME, error_of, named_events, post, request, scrape_metrics

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "smollm2_golden.npz"))
QUESTION = "What is the capital of France?"
PROMPT_IDS = GOLDEN["prompt_1"].tolist()
GREEDY_IDS = GOLDEN["greedy_tokens_1"].tolist()  # "The capital of France is Paris.<|im_end|>"
ANSWER = "The capital of France is Paris."
POEM = {"model": DEFAULT_MODEL_NAME, "input": "Write a long poem about the sea.", "temperature": 0,
        "max_output_tokens": 16}
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"],
        "additionalProperties": False}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city", "parameters": CITY,
           "strict": True}
HOSTED_TOOLS = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]},
                {"type": "code_interpreter", "container": {"type": "auto"}}, {"type": "local_shell"},
                {"type": "mcp", "server_label": "x", "server_url": "http://127.0.0.1:1"},
                {"type": "custom", "name": "apply_patch"},
                {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "g"}]}]
FORCED_CALL = {"model": DEFAULT_MODEL_NAME, "input": "What is the weather in Paris?", "tools": [WEATHER, *HOSTED_TOOLS],
               "tool_choice": {"type": "function", "name": "get_weather"}, "parallel_tool_calls": False,
               "temperature": 0, "max_output_tokens": 40}


def created(client: openai.OpenAI, **body) -> tuple[dict, object]:
    """(the raw JSON, validated strictly, and the SDK's parse of it)."""
    raw = client.responses.with_raw_response.create(**body)
    payload = raw.http_response.json()
    validate(payload, "Response", strict=True)
    return payload, raw.parse()


def streamed(server, body: dict) -> list[dict]:
    events = named_events(post(server, "/v1/responses", {**body, "stream": True}))
    for event in events:
        validate(event, RESPONSE_EVENTS[event["type"]], strict=True)
    return events


def check_sequence(events: list[dict]) -> dict:
    """The event order Codex and the SDK rely on; returns the final response."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    final = events[-1]["response"]
    assert events[-1]["type"] == f"response.{final['status']}"
    assert not any(e["type"] in ("response.completed", "response.incomplete", "response.failed") for e in events[:-1])
    for index, item in enumerate(final["output"]):
        mine = [e for e in events if e.get("output_index") == index]
        assert mine[0]["type"] == "response.output_item.added" and mine[-1]["type"] == "response.output_item.done"
        assert mine[-1]["item"] == item  # the done event carries the whole item
        if item["type"] == "message":
            text = "".join(e["delta"] for e in mine if e["type"] == "response.output_text.delta")
            assert text == item["content"][0]["text"]
            done = [e for e in mine if e["type"] == "response.output_text.done"]
            assert [d["text"] for d in done] == [text]
            assert [e["part"] for e in mine if e["type"] == "response.content_part.done"] == item["content"]
        else:
            arguments = "".join(e["delta"] for e in mine if e["type"] == "response.function_call_arguments.delta")
            done = [e for e in mine if e["type"] == "response.function_call_arguments.done"]
            assert [(d["name"], d["arguments"]) for d in done] == [(item["name"], arguments)]
            assert arguments == item["arguments"]
    return final


def without_ids(response: dict) -> dict:
    """A response with what differs between two identical requests (ids, clocks, and how much of the prompt
    the prefix cache held) taken out."""
    response = {k: v for k, v in response.items() if k not in ("id", "created_at", "completed_at")}
    if response.get("usage"):
        response["usage"] = {**response["usage"], "input_tokens_details": None}
    response["output"] = [{k: v for k, v in item.items() if k not in ("id", "call_id")} for item in response["output"]]
    return response


def drained(server) -> None:
    for _ in range(300):
        metrics = scrape_metrics(server)
        if (metrics["cortexstream:num_requests_running"], metrics["cortexstream:num_requests_waiting"],
                metrics["cortexstream:kv_cache_usage_perc"]) == (0, 0, 0):
            return
        time.sleep(0.1)
    raise AssertionError(f"the engine still holds work: {metrics}")


def test_greedy_answer_matches_transformers_and_the_schema(client):
    payload, response = created(client, model=DEFAULT_MODEL_NAME, input=QUESTION, temperature=0, max_output_tokens=16)
    assert response.output_text == ANSWER
    assert payload["status"] == "completed" and payload["incomplete_details"] is None
    [message] = payload["output"]
    assert (message["type"], message["role"], message["status"]) == ("message", "assistant", "completed")
    assert payload["id"].startswith("resp_") and message["id"].startswith("msg_")
    usage = payload["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (len(PROMPT_IDS), len(GREEDY_IDS))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_stream_follows_the_schema_and_adds_up_to_the_same_response(server, client):
    events = streamed(server, POEM)
    final = check_sequence(events)
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete" and final["usage"]["output_tokens"] == 16
    whole, _ = created(client, **POEM)
    assert without_ids(final) == without_ids(whole)
    question = {**POEM, "input": QUESTION}
    with client.responses.stream(**question) as stream:  # the SDK's own accumulator over a completed stream
        kinds = [event.type for event in stream]
        sdk_final = stream.get_final_response()
    assert sdk_final.output_text == ANSWER and sdk_final.usage.output_tokens == len(GREEDY_IDS)
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * (len(GREEDY_IDS) - 1),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]


def test_function_call_round_trip_stateless_and_with_previous_response_id(server, client):
    events = streamed(server, FORCED_CALL)
    final = check_sequence(events)
    whole, response = created(client, **FORCED_CALL)
    assert without_ids(final) == without_ids(whole)
    [call] = whole["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["status"] == "completed"
    assert call["call_id"].startswith("call_") and call["id"].startswith("fc_")
    jsonschema.validate(json.loads(call["arguments"]), CITY)
    assert [t["name"] for t in whole["tools"]] == ["get_weather"]  # hosted tools: accepted, not offered
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temperature_c": 22}'}
    follow_up = {"model": DEFAULT_MODEL_NAME, "tools": [WEATHER], "temperature": 0, "max_output_tokens": 24}
    stateless, _ = created(client, **follow_up, store=False,
                           input=[{"role": "user", "content": FORCED_CALL["input"]}, response.output[0], result])
    stateful, _ = created(client, **follow_up, previous_response_id=whole["id"], input=[result])
    assert stateless["output"][0]["type"] == "message"
    assert without_ids(stateful)["output"] == without_ids(stateless)["output"]
    assert stateful["previous_response_id"] == whole["id"]
    assert stateful["usage"]["input_tokens"] == stateless["usage"]["input_tokens"] > whole["usage"]["input_tokens"]
    # the conversation so far was just computed: its prefix comes from the prefix cache
    assert stateful["usage"]["input_tokens_details"]["cached_tokens"] >= whole["usage"]["input_tokens"] - 16


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_text_format_json_schema_is_enforced(client):
    parsed = client.responses.parse(model=DEFAULT_MODEL_NAME, input="Invent a person.", text_format=Person,
                                    temperature=0, max_output_tokens=40)
    assert isinstance(parsed.output_parsed, Person)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.strict is True


def test_stored_response_is_retrieved_listed_and_deleted(server, client):
    conversation = [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                    {"type": "reasoning", "id": "rs_1", "summary": []}, {"role": "user", "content": QUESTION}]
    payload, _ = created(client, model=DEFAULT_MODEL_NAME, instructions="Answer briefly.", temperature=0,
                         max_output_tokens=16, input=conversation)
    retrieved = client.responses.with_raw_response.retrieve(payload["id"]).http_response.json()
    assert retrieved == payload
    items = client.responses.input_items.with_raw_response.list(payload["id"]).http_response.json()
    validate(items, "ResponseItemList", strict=True)
    texts = [item["content"][0]["text"] for item in items["data"]]
    assert texts == [QUESTION, "Hi"] and items["has_more"] is False  # newest first; reasoning dropped
    page = client.responses.input_items.list(payload["id"], order="asc", limit=1)
    assert [item.content[0].text for item in page.data] == ["Hi"] and page.has_more
    deleted = request(server, "DELETE", f"/v1/responses/{payload['id']}")
    assert deleted.json() == {"id": payload["id"], "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(payload["id"])
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(payload["id"])
    reply = post(server, "/v1/responses", {"input": "x", "previous_response_id": payload["id"]})
    assert reply.status == 404
    error = error_of(reply)
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error", "previous_response_id", "previous_response_not_found")


def test_background_response_is_polled_then_another_is_cancelled(server, client):
    queued, _ = created(client, **POEM, background=True)
    assert queued["status"] == "queued" and queued["background"] is True
    for _ in range(600):
        polled = client.responses.with_raw_response.retrieve(queued["id"]).http_response.json()
        if polled["status"] not in ("queued", "in_progress"):
            break
        time.sleep(0.1)
    validate(polled, "Response", strict=True)
    assert polled["status"] == "incomplete" and polled["usage"]["output_tokens"] == 16
    endless = client.responses.create(**{**POEM, "max_output_tokens": 400}, background=True)
    cancelled = client.responses.with_raw_response.cancel(endless.id).http_response.json()
    validate(cancelled, "Response", strict=True)
    assert cancelled["status"] == "cancelled"
    assert client.responses.retrieve(endless.id).status == "cancelled"
    drained(server)


def test_truncation_auto_drops_the_oldest_items_until_the_conversation_fits(client):
    long = [{"role": "user", "content": "word " * 480}, {"role": "assistant", "content": "word " * 480}]
    payload, response = created(client, model=DEFAULT_MODEL_NAME, input=[*long, {"role": "user", "content": QUESTION}],
                                truncation="auto", temperature=0, max_output_tokens=16)
    assert response.output_text == ANSWER and payload["truncation"] == "auto"
    assert payload["usage"]["input_tokens"] == len(PROMPT_IDS)  # what is left: the question alone


def test_input_tokens_counts_the_prompt(client):
    counted = client.responses.input_tokens.with_raw_response.count(model=DEFAULT_MODEL_NAME, input=QUESTION)
    validate(counted.http_response.json(), "TokenCountsResource", strict=True)
    assert counted.parse().input_tokens == len(PROMPT_IDS)


BAD_BODIES = [
    # (fields over a valid body, status, param, code)
    ({"tools": [{"type": "function"}]}, 400, "tools[0].name", "missing_required_parameter"),
    ({"tools": [{"name": "f"}]}, 400, "tools[0].type", "missing_required_parameter"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]},
     400, "input[0].content[0].type", "unsupported_value"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "function_call", "name": "f", "arguments": "{}"}]},
     400, "input[1].call_id", "missing_required_parameter"),
    ({"input": [{"role": "wizard", "content": "hi"}]}, 400, "input[0].role", "invalid_value"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, 400, "input[0].type", "unsupported_value"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, 400, "text.format.schema",
     "missing_required_parameter"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, 400, "tool_choice.name",
     "invalid_value"),
    ({"tool_choice": "required"}, 400, "tool_choice", "invalid_parameter_combination"),
    ({"max_output_tokens": 5}, 400, "max_output_tokens", "integer_below_min_value"),
    ({"background": True, "store": False}, 400, "background", "invalid_parameter_combination"),
    ({"conversation": "conv_1"}, 400, "conversation", "unsupported_parameter"),
    ({"temperature": 3}, 400, "temperature", "decimal_above_max_value"),
    ({"input": "word " * 600}, 400, "input", "context_length_exceeded"),
    ({"input": []}, 400, "input", "missing_required_parameter"),
    ({"model": "gpt-5"}, 404, None, "model_not_found"),
]


@pytest.mark.parametrize(("fields", "status", "param", "code"), BAD_BODIES)
def test_bad_requests_get_openai_errors_with_param_paths(server, fields, status, param, code):
    reply = post(server, "/v1/responses", {"model": DEFAULT_MODEL_NAME, "input": "hi", **fields})
    assert reply.status == status, reply.text
    error = error_of(reply)
    assert (error["param"], error["code"]) == (param, code), error


def test_client_that_leaves_mid_stream_leaves_nothing_running(server):
    address = urlsplit(server.base_url)
    body = orjson.dumps({**POEM, "max_output_tokens": 400, "stream": True})
    with socket.create_connection((address.hostname, address.port), timeout=120) as conn:
        conn.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        received = b""
        while b"response.output_text.delta" not in received:
            received += conn.recv(65536)
    drained(server)
