"""Fuzzing /v1/responses and /v1/messages in-process over a real engine on the tiny llama (the harness and value
strategies of test_gateway_fuzz). Whatever arrives: no 5xx; an error is exactly the surface's own envelope
(OpenAI's on /v1/responses, Anthropic's on /v1/messages); a 200 follows the surface's schema (OpenAI's published
schemas; the anthropic SDK's typed models, strictly); and afterwards the engine holds no request and no KV block.
Clients that leave mid-stream, and a fault inside the server mid-stream, must leave the engine as clean.
"""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from anthropic import types
from hypothesis import given, settings
from hypothesis import strategies as st

from compat.anthropic import MessageStream
from compat.responses import ResponseStream
from tests.anthropic_strict import STREAM_EVENT, parse_strictly
from tests.openai_schema import RESPONSE_EVENTS, validate
from tests.test_gateway_fuzz import (
    ANY_TYPE,
    DEEP,
    FUZZ,
    JUNK,
    MISSING,
    NAME,
    SAMPLING_FIELDS,
    TEXT,
    WORD,
    Field,
    Together,
    check_error,
    drained,
    flag,
    integer,
    number,
    one_at_a_time,
    post,
    request_bodies,
    serve_tiny_llama,
)

RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 3}}, "required": ["city"]}

# ---- /v1/responses -------------------------------------------------------------------------------------------

TEXT_PART = st.fixed_dictionaries({"type": st.just("input_text"), "text": TEXT})
CALL = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q": "x"}'}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "found"}
ITEM = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "developer"]),
                           "content": st.one_of(TEXT, st.lists(TEXT_PART, min_size=1, max_size=2))},
                          optional={"type": st.just("message")}),
    st.fixed_dictionaries({"type": st.just("message"), "role": st.just("assistant"),
                           "content": st.lists(st.fixed_dictionaries({"type": st.just("output_text"), "text": TEXT}),
                                               min_size=1, max_size=1)}),
    st.just({"type": "reasoning", "id": "rs_1", "summary": []}),
)
CONVERSATION = st.one_of(WORD, st.lists(ITEM, min_size=1, max_size=3).map(lambda items: [*items, CALL, OUTPUT]),
                         st.lists(ITEM, min_size=1, max_size=3))
HOSTILE_INPUT = [
    MISSING, [], 5, [5], [None], [{}], [{"role": "user"}], [{"role": "user", "content": 5}],
    [{"role": "user", "content": [5]}], [{"role": "user", "content": [{"type": "input_text"}]}],
    [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}], [{"role": "tool", "content": "x"}],
    [{"type": "function_call"}], [{**CALL, "arguments": 5}], [{**CALL, "name": "bad name"}], [CALL],
    [{"type": "function_call_output", "call_id": "call_1"}], [{**OUTPUT, "output": [5]}], [OUTPUT],
    [{**OUTPUT, "output": [{"type": "input_text", "text": "x"}]}], [{"type": "web_search_call", "id": "ws"}],
    [{"type": "item_reference", "id": "msg_1"}], [{"type": 5}], [{"id": "msg_1"}], "hello " * 200,
    [{"role": "user", "content": DEEP[0]}], [{**CALL, "arguments": "[" * 50_000}, OUTPUT], *DEEP,
]
RESPONSE_TOOL = st.builds(lambda name, parameters: {"type": "function", "name": name, "parameters": parameters},
                          st.sampled_from(["lookup", "get_weather"]), st.sampled_from([CITY, {"type": "object"}]))
HOSTED = [{"type": "web_search"}, {"type": "namespace", "name": "ns", "tools": []}, {"type": "custom", "name": "x"},
          {"type": "local_shell"}, {"type": "file_search"}, {"type": "mcp"}, {"type": "code_interpreter"}]
HOSTILE_RESPONSE_TOOLS = [
    "x", [1], [None], [{}], [{"type": 5}], [{"type": "function"}], [{"type": "function", "name": "bad name"}],
    [{"type": "function", "name": "f", "parameters": "x"}], [{"type": "function", "name": "f", "strict": "yes"}],
    [{"type": "function", "function": {"name": "f"}}], HOSTED, *DEEP,
    Together(tools=[{"type": "function", "name": "f", "parameters": DEEP[1]}], tool_choice="required"),
    Together(tools=[{"type": "function", "name": "f", "parameters": CITY}], tool_choice="required",
             max_output_tokens=60),
    Together(tools=HOSTED, tool_choice="auto"),
]
HOSTILE_RESPONSE_TOOL_CHOICE = [
    "sometimes", 5, {}, {"type": "function"}, {"type": "function", "name": "nope"}, {"type": "web_search"},
    {"type": "allowed_tools"}, {"type": "allowed_tools", "mode": "required", "tools": [5]},
    {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "lookup"}]},
    {"type": "mcp", "server_label": "x"}, "required", *DEEP,
]
TEXT_FORMAT = st.sampled_from([
    {"format": {"type": "text"}}, {"format": {"type": "json_object"}}, {"verbosity": "low"},
    {"format": {"type": "json_schema", "name": "answer", "strict": True,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}])
HOSTILE_TEXT = [
    "x", {"format": "json"}, {"format": {"type": "xml"}}, {"format": {"type": "json_schema"}},
    {"format": {"type": "json_schema", "name": "x", "schema": "s"}}, {"format": {"type": "json_schema", "schema": {}}},
    {"format": {"type": "json_schema", "name": "x", "schema": {"type": 5}}}, {"verbosity": "max"}, *DEEP,
]
RESPONSE_FIELDS = {
    **{key: SAMPLING_FIELDS[key] for key in ("model", "temperature", "top_p", "top_k", "min_p", "seed", "stop",
                                             "ignore_eos", "stop_token_ids", "user", "not_an_openai_field")},
    "input": Field(CONVERSATION, HOSTILE_INPUT),
    "instructions": Field(TEXT, [5, [], {}, *DEEP]),
    "tools": Field(st.lists(RESPONSE_TOOL, min_size=1, max_size=2, unique_by=lambda t: t["name"]),
                   HOSTILE_RESPONSE_TOOLS),
    "tool_choice": Field(st.sampled_from(["none", "auto", "required"]), HOSTILE_RESPONSE_TOOL_CHOICE),
    "parallel_tool_calls": flag(),
    "text": Field(TEXT_FORMAT, HOSTILE_TEXT),
    "max_output_tokens": Field(st.integers(16, 24), [0, 15, -1, "16", 2**70, 1.5, 10**6, None]),
    "top_logprobs": integer(0, 5, Together(top_logprobs=3, include=["message.output_text.logprobs"])),
    "include": Field(st.just(["message.output_text.logprobs"]), ["x", [5], {}, ["reasoning.encrypted_content"]]),
    "truncation": Field(st.sampled_from(["auto", "disabled"]), ["x", 5]),
    "metadata": Field(st.just({"k": "v"}), [{"k": 1}, "x", {str(i): "v" for i in range(17)}, {"k" * 65: "v"},
                                            {"k": "v" * 513}]),
    "store": Field(st.just(True), ["true", 1, Together(store=False)]),
    "background": Field(st.booleans(), ["yes", 1, Together(background=True, store=False),
                                        Together(background=True, stream=True)]),
    "stream": flag(),
    "previous_response_id": Field(None, ["resp_nope", 5, ""]),
    "reasoning": Field(st.just({"effort": "low", "summary": "auto"}), ["x", {"effort": 5}]),
    "conversation": Field(None, ["conv_1", {}]),
    "max_tool_calls": Field(None, [1]),
    "prompt_cache_key": Field(WORD, [5]),
    "client_metadata": Field(st.just({"a": "b"}), ANY_TYPE),
}
RESPONSE_BASE = {"input": "hi", "max_output_tokens": 16}
RESPONSE_BODIES = request_bodies(RESPONSE_FIELDS, ("input", "max_output_tokens"))

# ---- /v1/messages ------------------------------------------------------------------------------------------------

TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}
TEXT_BLOCK = st.fixed_dictionaries({"type": st.just("text"), "text": TEXT})
MESSAGE_LIST = st.one_of(
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                    "content": st.one_of(TEXT, st.lists(TEXT_BLOCK, min_size=1, max_size=2))}),
             min_size=1, max_size=3),
    st.just([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [TOOL_USE]},
             {"role": "user", "content": [TOOL_RESULT, {"type": "text", "text": "and?"}]}]),
    st.just([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "yes"}]},
        {"role": "user", "content": [{**TOOL_RESULT, "is_error": True}]}]),
)
HOSTILE_MESSAGES = [
    MISSING, [], "hi", [5], [{}], [{"role": "user"}], [{"role": "system", "content": "x"}],
    [{"role": "user", "content": 5}], [{"role": "user", "content": [5]}], [{"role": "user", "content": [{}]}],
    [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}],
    [{"role": "user", "content": [{"type": "document"}]}], [{"role": "user", "content": [{"type": "text"}]}],
    [{"role": "assistant", "content": [{**TOOL_USE, "input": "x"}]}], [{"role": "assistant", "content": [
        {"type": "tool_use", "name": "f", "input": {}}]}], [{"role": "user", "content": [{**TOOL_RESULT,
                                                                                          "content": [5]}]}],
    [{"role": "user", "content": [{**TOOL_RESULT, "is_error": "yes"}]}], [{"role": "user", "content": "hello " * 200}],
    [{"role": "user", "content": [{"type": "video"}]}], *DEEP,
]
ANTHROPIC_TOOL = st.builds(lambda name: {"name": name, "input_schema": CITY}, st.sampled_from(["lookup", "f"]))
MESSAGES_FIELDS = {
    "model": Field(st.just(NAME), ["claude-opus-4", 5, None, MISSING, ""]),
    "max_tokens": Field(st.integers(1, 24), [0, -1, "5", 1.5, 2**70, None, MISSING, 10**6]),
    "messages": Field(MESSAGE_LIST, HOSTILE_MESSAGES),
    "system": Field(st.one_of(TEXT, st.lists(TEXT_BLOCK, max_size=2)),
                    [5, [5], [{"type": "image"}], [{"type": "text"}], {}, *DEEP]),
    "tools": Field(st.lists(ANTHROPIC_TOOL, min_size=1, max_size=2, unique_by=lambda t: t["name"]), [
        "x", [5], [{}], [{"name": "f"}], [{"name": "bad name", "input_schema": {}}], [{"name": "f", "input_schema": 5}],
        [{"type": "web_search_20250305", "name": "web_search"}], [{"type": 5, "name": "f"}], *DEEP,
        Together(tools=[{"name": "f", "input_schema": CITY}], tool_choice={"type": "any"}, max_tokens=40)]),
    "tool_choice": Field(st.sampled_from([{"type": "auto"}, {"type": "none"}]), [
        "auto", {}, {"type": "sometimes"}, {"type": "tool"}, {"type": "tool", "name": "nope"}, {"type": "any"},
        {"type": "auto", "disable_parallel_tool_use": "yes"}, *DEEP]),
    "stop_sequences": Field(st.lists(WORD, max_size=4), ["x", [5], [""], ["a"] * 5, [None]]),
    "temperature": number(0.0, 1.0),
    "top_p": number(0.01, 1.0, 0),
    "top_k": integer(0, 50),
    "stream": flag(),
    "metadata": Field(st.just({"user_id": "u"}), [{"user_id": 5}, "x"]),
    "thinking": Field(st.just({"type": "disabled"}), ["x", 5]),
    "not_an_anthropic_field": Field(JUNK, DEEP),
}
MESSAGES_BASE = {"model": NAME, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES_BODIES = request_bodies(MESSAGES_FIELDS, ("model", "max_tokens", "messages"))

@pytest.fixture(scope="module")
def harness(tiny_llama_path):
    yield from serve_tiny_llama(tiny_llama_path)


# ---- checks ----------------------------------------------------------------------------------------------------


def named_events(raw: bytes) -> list[dict]:
    assert raw.endswith(b"\n\n"), raw[-200:]
    events = []
    for block in raw[:-2].split(b"\n\n"):
        name, data = block.split(b"\n")
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + payload["type"].encode()
        events.append(payload)
    return events


def check_response_stream(events: list[dict]) -> None:
    for event in events:
        validate(event, RESPONSE_EVENTS[event["type"]], strict=True)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    terminal = events[-1]
    assert terminal["type"] in ("response.completed", "response.incomplete", "response.failed"), terminal
    assert terminal["response"]["status"] in ("completed", "incomplete", "failed")


def check_messages_stream(events: list[dict]) -> None:
    assert events[0]["type"] == "message_start" and events[1] == {"type": "ping"}
    for event in events[2:]:
        if event["type"] == "ping":
            assert event == {"type": "ping"}
        elif event["type"] == "error":
            parse_strictly(event, types.ErrorResponse)
        else:
            parse_strictly(event, STREAM_EVENT)
    assert events[-1]["type"] in ("message_stop", "error")


def check_reply(path: str, status: int, content_type: str, raw: bytes) -> None:
    assert status < 500, raw[:2000]
    if status != 200:
        assert content_type == "application/json"
        if path == MESSAGES:
            parse_strictly(orjson.loads(raw), types.ErrorResponse)
        else:
            check_error(raw)
    elif content_type == "text/event-stream":
        events = named_events(raw)
        check_response_stream(events) if path == RESPONSES else check_messages_stream(events)
    elif path == RESPONSES:
        validate(orjson.loads(raw), "Response", strict=True)
    else:
        parse_strictly(orjson.loads(raw), types.Message)


def exchange(harness, path: str, body: object, raw: bytes | None = None) -> None:
    async def go() -> None:
        status, content_type, reply = await post(harness.client, path, raw or json.dumps(body).encode(),
                                                 "application/json")
        check_reply(path, status, content_type, reply)
        await drained(harness.engine)  # a background response included: it finishes on its own

    harness.run(go())


# ---- the fuzz ----------------------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=40)
@given(body=RESPONSE_BODIES)
def test_responses_bodies_never_get_a_server_error(harness, body):
    exchange(harness, RESPONSES, body)


@settings(FUZZ, max_examples=40)
@given(body=MESSAGES_BODIES)
def test_messages_bodies_never_get_a_server_error(harness, body):
    exchange(harness, MESSAGES, body)


def test_each_hostile_responses_field_alone(harness):
    for body in one_at_a_time(RESPONSE_FIELDS, RESPONSE_BASE):
        exchange(harness, RESPONSES, body)


def test_each_hostile_messages_field_alone(harness):
    for body in one_at_a_time(MESSAGES_FIELDS, MESSAGES_BASE):
        exchange(harness, MESSAGES, body)


@pytest.mark.parametrize("path", [RESPONSES, MESSAGES, f"{MESSAGES}/count_tokens", f"{RESPONSES}/input_tokens"])
@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b'{"messages": [', b"null", b"[" * 2000 + b"]" * 2000])
def test_raw_bodies_get_the_surfaces_envelope(harness, path, raw):
    async def go() -> None:
        status, content_type, reply = await post(harness.client, path, raw, "application/json")
        assert status == 400
        check_reply(path.rsplit("/", 1)[0] if path.endswith(("count_tokens", "input_tokens")) else path, status,
                    content_type, reply)

    harness.run(go())


# ---- clients that leave mid-stream, a fault mid-stream ---------------------------------------------------------

LONG = {
    RESPONSES: {"input": "Tell me", "max_output_tokens": 90, "ignore_eos": True, "stream": True},
    MESSAGES: {**MESSAGES_BASE, "max_tokens": 90, "stream": True},
}


def test_clients_leaving_mid_stream_leave_nothing_behind(harness):
    async def leave(path: str) -> None:
        response = await harness.client.post(path, json=LONG[path])
        assert response.status == 200
        await response.content.readuntil(b"\n\n")
        await response.content.readuntil(b"\n\n")
        response.close()

    async def go() -> None:
        for i in range(10):
            await leave((RESPONSES, MESSAGES)[i % 2])
        await drained(harness.engine)

    harness.run(go())


@pytest.mark.parametrize(("path", "builder"), [(RESPONSES, ResponseStream), (MESSAGES, MessageStream)])
def test_fault_mid_stream_ends_the_stream_with_an_error_event(harness, monkeypatch, path, builder):
    real, calls = builder.add, []

    def faulty(self, deltas):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("secret detail")
        return real(self, deltas)

    monkeypatch.setattr(builder, "add", faulty)

    async def go() -> bytes:
        async with harness.client.post(path, json=LONG[path]) as response:
            assert response.status == 200
            raw = await asyncio.wait_for(response.read(), 30)
        await drained(harness.engine)
        return raw

    events = named_events(harness.run(go()))
    if path == RESPONSES:
        check_response_stream(events)
        error, failed = events[-2:]
        assert error["type"] == "error" and failed["response"]["status"] == "failed"
        assert failed["response"]["error"]["code"] == "server_error"
    else:
        check_messages_stream(events)
        error = events[-1]
        assert error["error"]["type"] == "api_error"
    assert "secret" not in json.dumps(events)


# ---- --no-responses-store -------------------------------------------------------------------------------------


def test_without_the_store_responses_are_served_but_not_kept(harness):
    """The same engine behind an app started with --no-responses-store."""
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import create_app
    from gateway.server_config import ServerConfig
    from gateway.state import MODEL_SLOT

    async def go() -> None:
        app = create_app(harness.engine, ServerConfig(served_model_name=NAME, responses_store=False))
        async with TestClient(TestServer(app)) as client:
            await app[MODEL_SLOT].settled.wait()
            served = await client.post(RESPONSES, json=RESPONSE_BASE)
            assert served.status == 200
            response = await served.json()
            validate(response, "Response", strict=True)
            for method, path, body, status, param in [
                ("GET", f"{RESPONSES}/{response['id']}", None, 404, None),
                ("DELETE", f"{RESPONSES}/{response['id']}", None, 404, None),
                ("POST", RESPONSES, {**RESPONSE_BASE, "previous_response_id": response["id"]}, 404,
                 "previous_response_id"),
                ("POST", RESPONSES, {**RESPONSE_BASE, "background": True}, 400, "background"),
            ]:
                reply = await client.request(method, path, json=body)
                assert reply.status == status
                raw = await reply.read()
                check_error(raw)
                assert orjson.loads(raw)["error"]["param"] == param
        await drained(harness.engine)

    harness.run(go())


def test_a_stream_waiting_on_the_engine_keeps_pinging(harness, monkeypatch):
    """Claude Code drops a stream that is silent for 5 minutes; a long prefill must not look like one."""
    from gateway import routes_messages
    from tests.test_gateway_fuzz import paused

    monkeypatch.setattr(routes_messages, "PING_INTERVAL_SECONDS", 0.05)

    async def go() -> bytes:
        with paused(harness.engine):
            response = await harness.client.post(MESSAGES, json={**MESSAGES_BASE, "stream": True})
            await asyncio.sleep(0.5)
        raw = await asyncio.wait_for(response.read(), 30)
        await drained(harness.engine)
        return raw

    events = named_events(harness.run(go()))
    check_messages_stream(events)
    first_text = next(i for i, e in enumerate(events) if e["type"] == "content_block_start")
    assert [e["type"] for e in events[1:first_text]].count("ping") >= 3


def test_a_client_leaving_while_the_engine_is_quiet_leaves_nothing_behind(harness, monkeypatch):
    """It leaves between pings, while the wait for the engine's next output is pending."""
    from gateway import routes_messages
    from tests.test_gateway_fuzz import paused

    monkeypatch.setattr(routes_messages, "PING_INTERVAL_SECONDS", 0.05)

    async def go() -> None:
        with paused(harness.engine):
            response = await harness.client.post(MESSAGES, json={**MESSAGES_BASE, "max_tokens": 90, "stream": True})
            for _ in range(3):
                await response.content.readuntil(b"\n\n")
            response.close()
            await asyncio.sleep(0.2)
        await drained(harness.engine)

    harness.run(go())


def test_a_background_stream_can_be_followed_again_from_any_event(harness):
    async def go() -> tuple[bytes, bytes]:
        body = {**RESPONSE_BASE, "background": True, "stream": True, "temperature": 0}
        async with harness.client.post(RESPONSES, json=body) as response:
            assert response.status == 200
            first = await asyncio.wait_for(response.read(), 30)
        response_id = named_events(first)[0]["response"]["id"]
        async with harness.client.get(f"{RESPONSES}/{response_id}?stream=true&starting_after=3") as response:
            assert response.status == 200
            again = await asyncio.wait_for(response.read(), 30)
        await drained(harness.engine)
        return first, again

    first, again = harness.run(go())
    events = named_events(first)
    check_response_stream(events)
    assert events[0]["response"]["status"] == "queued" and events[-1]["response"]["background"] is True
    assert named_events(again) == events[4:]
