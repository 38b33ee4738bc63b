"""Every refusal leaves as OpenAI's error object with OpenAI's status, type, param and code."""

import openai
import pytest

from tests.server_fixture import DEFAULT_MODEL_NAME, error_of, post, request, shared_server

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]
INVALID = "invalid_request_error"


@pytest.fixture(scope="module")
def server():
    return shared_server()


def chat(**fields):
    return {"messages": MESSAGES, "max_tokens": 2, **fields}


def completion(**fields):
    return {"prompt": "Hi", "max_tokens": 2, **fields}


BAD_BODIES = [
    # (endpoint, body, status, param, code)
    (CHAT, chat(temperature=3), 400, "temperature", "decimal_above_max_value"),
    (CHAT, {"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role", "invalid_value"),
    (CHAT, {"max_tokens": 2}, 400, "messages", "missing_required_parameter"),
    (CHAT, chat(max_completion_tokens=2), 400, "max_tokens", "invalid_parameter_combination"),
    (CHAT, chat(max_tokens=600), 400, "messages", "context_length_exceeded"),
    (CHAT, chat(model="gpt-nope"), 404, None, "model_not_found"),
    (CHAT, chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "if": {"required": ["a"]}}}}), 400, "response_format", None),
    (CHAT, chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {
        "type": "array", "uniqueItems": True}}}], tool_choice="required"), 400, "tools", None),
    (CHAT, chat(tool_choice="required"), 400, "tool_choice", "invalid_parameter_combination"),
    (CHAT, chat(logprobs=True, top_logprobs=21), 400, "top_logprobs", "integer_above_max_value"),
    (CHAT, chat(top_logprobs=2), 400, "top_logprobs", "invalid_parameter_combination"),
    (CHAT, chat(logit_bias={"99999": 1}), 400, "logit_bias", None),
    (CHAT, chat(stop_token_ids=[99999]), 400, "stop_token_ids", None),
    (CHAT, chat(n=0), 400, "n", "integer_below_min_value"),
    (CHAT, chat(stream=True, temperature=-1), 400, "temperature", "decimal_below_min_value"),
    (COMPLETIONS, completion(suffix="!"), 400, "suffix", "unsupported_parameter"),
    (COMPLETIONS, completion(logprobs=6), 400, "logprobs", "integer_above_max_value"),
    (COMPLETIONS, completion(best_of=3), 400, "best_of", "unsupported_value"),
    (COMPLETIONS, completion(prompt=[1, 99999]), 400, "prompt[1]", "invalid_value"),
    (COMPLETIONS, completion(prompt=[[1], [2, 99999]]), 400, "prompt[1][1]", "invalid_value"),
    (COMPLETIONS, completion(prompt="hello " * 600), 400, "prompt", "context_length_exceeded"),
    (COMPLETIONS, {"max_tokens": 2}, 400, "prompt", "missing_required_parameter"),
    (COMPLETIONS, completion(max_tokens=-1), 400, "max_tokens", "integer_below_min_value"),
    (COMPLETIONS, completion(stream_options={"include_usage": True}), 400, "stream_options", None),
]


@pytest.mark.parametrize(("path", "body", "status", "param", "code"), BAD_BODIES)
def test_bad_request_body(server, path, body, status, param, code):
    reply = post(server, path, body)
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    error = error_of(reply)
    assert (error["type"], error["param"], error["code"]) == (INVALID, param, code)
    assert error["message"]


@pytest.mark.parametrize(("raw", "content_type", "status", "code"), [
    (b"{not json", "application/json", 400, None),
    (b"", "application/json", 400, None),
    (b"[1, 2]", "application/json", 400, None),
    (b'{"prompt": NaN}', "application/json", 400, None),
    (b'{"prompt": "Hi"}', "text/plain", 415, "unsupported_media_type"),
    (b'{"prompt": "' + b"x" * 1_100_000 + b'"}', "application/json", 413, "request_too_large"),
])
def test_unreadable_body(server, raw, content_type, status, code):
    reply = post(server, COMPLETIONS, raw, {"Content-Type": content_type})
    assert reply.status == status
    error = error_of(reply)
    assert (error["type"], error["code"]) == (INVALID, code)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/nope", 404),
    ("POST", "/v2/chat/completions", 404),
    ("GET", CHAT, 405),
    ("DELETE", "/v1/models", 405),
])
def test_unknown_route_and_wrong_method(server, method, path, status):
    reply = request(server, method, path)
    assert reply.status == status
    error = error_of(reply)
    assert error["type"] == INVALID and path in error["message"]


def test_sdk_maps_statuses_to_its_exceptions(server):
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=DEFAULT_MODEL_NAME, messages=MESSAGES, temperature=2.5)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nope")
