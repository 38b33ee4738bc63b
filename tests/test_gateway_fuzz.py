"""Fuzzing the generation endpoints in-process, over a real engine on the tiny llama.

Bodies are valid requests with a few fields swapped for hostile types and values (or left out), plus raw bytes
and wrong content types; hypothesis draws them, and every listed hostile value is also sent on its own. Whatever
arrives: no 5xx; an error is exactly OpenAI's error object; a 200 follows OpenAI's response schema with one
choice per sample; and afterwards the engine holds no request and no KV block. Clients that leave mid-stream,
and a fault inside the server mid-stream, must leave the engine as clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import string
import threading
from dataclasses import dataclass

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat import ChatTemplate
from gateway.app import create_app
from gateway.routes_chat import ChatCall
from gateway.routes_completions import CompletionCall
from gateway.server_config import ServerConfig
from gateway.state import METRICS, MODEL_SLOT
from jax_engine.async_engine import AsyncEngine
from tests.engine_utils import engine_for
from tests.openai_schema import validate

NAME = "tiny"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
VOCAB_SIZE = 320  # tests/golden/llama
MAX_MODEL_LEN = 128
MAX_NUM_BATCHED_TOKENS = 64
MAX_BODY_BYTES = 1 << 20
RESPONSE_SCHEMA = {CHAT: "CreateChatCompletionResponse", COMPLETIONS: "CreateCompletionResponse"}
CHUNK_SCHEMA = {CHAT: "CreateChatCompletionStreamResponse", COMPLETIONS: "CreateCompletionStreamResponse"}
FUZZ = settings(deadline=None, database=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example, HealthCheck.filter_too_much])

# A ChatML template that reads `tools`, so tool requests fit the tiny model's context (the model's own template
# would get the long fallback tools prompt) and reach the forcing grammar and the tool-call parser.
TOOLS_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\n' }}{% for tool in tools %}{{ tool.function.name }} {% endfor %}"
    "{{ '<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{{ message['content'] if message['content'] is string else '' }}"
    "{% if message.tool_calls %}{{ message.tool_calls | tojson }}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# ---- the server ----------------------------------------------------------------------------------------


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    client: TestClient
    model_template: ChatTemplate

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    @contextlib.contextmanager
    def template(self, which: str):
        """Serve with `which` chat template: "model" (the checkpoint's) or "tools" (TOOLS_TEMPLATE)."""
        model = self.client.server.app[MODEL_SLOT].get()
        if which == "tools":
            model.chat_template = ChatTemplate(TOOLS_TEMPLATE, self.model_template.special_tokens)
        try:
            yield
        finally:
            model.chat_template = self.model_template


@pytest.fixture(scope="module")
def harness(tiny_llama_path):
    yield from serve_tiny_llama(tiny_llama_path)


def serve_tiny_llama(tiny_llama_path: str):
    """A Harness over the tiny llama, for a module-scoped fixture to yield from."""
    engine = AsyncEngine(engine_for(tiny_llama_path, max_model_len=MAX_MODEL_LEN, max_num_seqs=8,
                                   max_num_batched_tokens=MAX_NUM_BATCHED_TOKENS))
    app = create_app(engine, ServerConfig(served_model_name=NAME, max_body_bytes=MAX_BODY_BYTES))
    loop = asyncio.new_event_loop()

    async def start() -> TestClient:
        client = TestClient(TestServer(app, handler_cancellation=True))
        await client.start_server()
        await app[MODEL_SLOT].settled.wait()
        return client

    client = loop.run_until_complete(start())
    try:
        yield Harness(loop, engine, client, app[MODEL_SLOT].get().chat_template)
    finally:
        loop.run_until_complete(client.close())
        loop.close()
        engine.shutdown()


# ---- JSON values ------------------------------------------------------------------------------------------

MISSING = object()  # a field left out of the body


class Together(dict):
    """Several fields set at once: a combination to refuse, or one a single field cannot reach."""


@dataclass(frozen=True)
class Field:
    valid: st.SearchStrategy | None  # None: nothing worth sending in a valid body
    hostile: list  # wrong types and values (a few are edge cases to accept); each is also sent on its own


def nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_schema(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


# Past the server's 64 levels (within the 1024 that JSON parsers take), and just under them.
DEEP = [nested_list(900), nested_schema(300), nested_list(60), nested_schema(29)]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "", "null", "true", "0", "-1"]))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                    max_leaves=6)
ASCII_TEXT = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " \n", max_size=12)
TEXT = st.one_of(ASCII_TEXT, ASCII_TEXT, st.text(max_size=4))
WORD = st.one_of(ASCII_TEXT.filter(bool), st.text(min_size=1, max_size=3))
TOKEN_ID = st.integers(0, VOCAB_SIZE - 1)
ANY_TYPE = ["1", "NaN", True, [1], {"v": 1}, None, *DEEP]


def number(low: float, high: float, *hostile) -> Field:
    return Field(st.floats(low, high), [low - 1, high + 1, 1e308, -1e308, *ANY_TYPE, *hostile])


def integer(low: int, high: int, *hostile) -> Field:
    return Field(st.integers(low, high), [low - 1, high + 1, 2**63, -(2**63) - 1, 2**70, 1.5, 2.0, *ANY_TYPE,
                                          *hostile])


def flag() -> Field:
    return Field(st.booleans(), ["true", 1, 0, [True], {}, *DEEP])


# ---- fields both endpoints share --------------------------------------------------------------------------

SAMPLING_FIELDS = {
    "model": Field(st.just(NAME), ["gpt-4", "", "tiny ", 5, ["tiny"], None]),
    "n": integer(1, 3, 128, True),
    "temperature": number(0.0, 2.0, 1e-300),
    "top_p": number(0.01, 1.0, 0, 1e-300),
    "top_k": integer(-1, 400, -2, 2**31, 2**40, 2**62),
    "min_p": number(0.0, 1.0),
    "presence_penalty": number(-2.0, 2.0),
    "frequency_penalty": number(-2.0, 2.0),
    "repetition_penalty": number(0.5, 2.0, 0, 1e30, 1e-30),
    "seed": integer(-(2**63), 2**63 - 1, 2**64),
    "stop": Field(st.one_of(WORD, st.lists(WORD, max_size=4)),
                  ["", 5, {"a": 1}, [1], [None], [""], ["a"] * 5, [["a"]], True, "x" * 10_000]),
    "logit_bias": Field(st.dictionaries(TOKEN_ID.map(str), st.floats(-100, 100), max_size=3), [
        {"abc": 1}, {"-1": 1}, {str(VOCAB_SIZE): 1}, {"99999999999999999999999": 1}, {"1" * 5000: 1},
        {"0" * 5000 + "1": 1}, {"\u0663": 1}, {"5": 101}, {"5": "1"}, {"5": None}, {"5": True}, {"5": [1]},
        [1], "5", {" 5": 1}, {"5": 1e308}, {str(i): 1 for i in range(VOCAB_SIZE)}, *DEEP]),
    "stream": flag(),
    "stream_options": Field(
        st.fixed_dictionaries({}, optional={"include_usage": st.booleans(), "continuous_usage_stats": st.booleans()}),
        ["x", [], {"include_usage": "yes"}, {"continuous_usage_stats": 1}, {"include_obfuscation": "no"},
         Together(stream=False, stream_options={"include_usage": True}), *DEEP]),
    "ignore_eos": flag(),
    "min_tokens": integer(0, 3, 10**6, Together(min_tokens=5, max_tokens=2)),
    "stop_token_ids": Field(st.lists(TOKEN_ID, max_size=3),
                            [[-1], [VOCAB_SIZE], [2**70], "1", [None], [1.5], ["1"], 5, {"1": 1}, [2] * 10_000]),
    "skip_special_tokens": flag(),
    "priority": integer(-10, 10, "high"),
    "prompt_logprobs": integer(0, 3, 21, 10**9),
    "user": Field(WORD, [5, ["u"], {}]),
    "metadata": Field(st.just({"k": "v"}), [{"k": 1}, "x"]),
    "use_beam_search": Field(st.just(False), [True, 1, "yes"]),
    "guided_json": Field(None, [{}, {"type": "object"}, "x"]),
    "length_penalty": Field(st.just(1.0), [2.0, "1", 0]),
    "not_an_openai_field": Field(SCALARS, DEEP),
}


# ---- chat ----------------------------------------------------------------------------------------------

CALL_ID = "call_1"
TOOL_CALL = {"id": CALL_ID, "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
CONTENT = st.one_of(TEXT, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
                                   min_size=1, max_size=2))
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "user"]), "content": CONTENT},
                          optional={"name": st.sampled_from(["ann", "bob"])}),
    st.fixed_dictionaries({"role": st.just("user"), "content": CONTENT}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": TEXT}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none(), "tool_calls": st.just([TOOL_CALL])}),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": st.just(CALL_ID), "content": TEXT}),
)


def called_with(arguments: str) -> list[dict]:
    return [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "function": {
                "name": "lookup", "arguments": arguments}}]}]


HOSTILE_MESSAGES = [
    MISSING, [], "hi", [{}], ["hi"], [None], [{"role": "wizard", "content": "x"}], [{"role": "user"}],
    [{"role": "user", "content": 5}], [{"role": "user", "content": []}], [{"role": "user", "content": [5]}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}],
    [{"role": "user", "content": [{"type": "text"}]}], [{"role": "user", "content": [{"type": "refusal"}]}],
    [{"role": "user", "content": [{"type": "text", "text": 5}]}], [{"role": "assistant"}],
    [{"role": "tool", "content": "x"}], [{"role": "function", "content": "x"}], [{"role": "user", "content": ""}],
    [{"role": "user", "content": "x", "name": 5}], [{"role": 5, "content": "x"}], [{"role": None}],
    [{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]}],
    [{"role": "assistant", "content": "x", "tool_calls": "call"}], [{"role": "assistant", "content": "x"}],
    [{"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}],
    called_with("[" * 50_000), called_with('{"a": ' + "[" * 990 + "]" * 990 + "}"), called_with("1" * 5000),
    called_with('{"a": ' + "1" * 5000 + "}"), called_with("not json"), called_with("[1, 2]"),
    [{"role": "user", "content": "hello " * 200}], [{"role": "user", "content": DEEP[0]}],
    [{"role": "user", "content": "{{ raise_exception('boom') }}"}], [{"role": "user", "content": "\u0000"}],
    Together(add_generation_prompt=True, continue_final_message=True),
    Together(messages=[{"role": "user", "content": "hi"}], add_generation_prompt=False, continue_final_message=True),
    Together(messages=[{"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}],
             add_generation_prompt=False, continue_final_message=True),
]
PARAMETERS = st.sampled_from([
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    {"type": "object", "properties": {"n": {"type": "integer"}}}, {"type": "object"}, {}])
TOOL = st.builds(lambda name, parameters: {"type": "function", "function": {"name": name, "parameters": parameters}},
                 st.sampled_from(["lookup", "get_weather", "f"]), PARAMETERS)
HOSTILE_SCHEMAS = [
    {"type": 5}, {"enum": []}, {"not": {}}, {"type": "string", "pattern": "("}, {"$ref": "#/nope"},
    {"type": "array", "minItems": 1e300}, {"type": "string", "minLength": 5, "maxLength": 2},
    {"allOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "integer", "minimum": 5, "maximum": 1},
    {"type": "string", "format": "no-such-format"}, {"anyOf": []}, {"type": ["string", 5]},
    {"type": "string", "pattern": "(a+)+$"}, {"type": "array", "items": {"type": "integer"}, "minItems": 10**6},
    {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}, *DEEP]
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 3}}, "required": ["city"]}


def function_tool(**function) -> dict:
    return {"type": "function", "function": {"name": "f", **function}}


def forced(tools: list) -> Together:
    return Together(tools=tools, tool_choice="required")


HOSTILE_TOOLS = [
    "x", [1], [None], [], [{"type": "custom", "custom": {"name": "f"}}], [{"type": "function"}], [{"function": {}}],
    [function_tool(name="bad name")], [function_tool(name="")], [function_tool(name="x" * 65)],
    [function_tool(parameters="x")], [function_tool(description=5)], [function_tool(strict="yes")],
    [function_tool(), function_tool()], *DEEP, *[forced([function_tool(parameters=s)]) for s in HOSTILE_SCHEMAS],
    *[[function_tool(parameters={"type": "object", "properties": {"a": d}})] for d in DEEP],
    forced([function_tool(), function_tool()]),
]
HOSTILE_TOOL_CHOICE = [
    "sometimes", "", 5, {}, {"type": "function"}, {"type": "function", "function": {"name": "nope"}},
    {"type": "function", "function": {}}, {"type": "allowed_tools"}, {"type": "function", "function": "f"},
    "required", "auto", {"type": "function", "function": {"name": "f"}}, *DEEP,
    Together(tools=[function_tool()], tool_choice={"type": "function", "function": {"name": "g"}}),
    Together(tools=[function_tool()], tool_choice={"type": "function", "function": {"name": "f"}},
             response_format={"type": "json_object"}),
    # Long enough for a whole forced call: tool_calls in the response, the stream's deltas, logprobs beside them.
    Together(tools=[function_tool(parameters=CITY)], tool_choice="required", max_tokens=80),
    Together(tools=[function_tool(parameters=CITY)], tool_choice="required", max_tokens=80, n=2, logprobs=True,
             top_logprobs=2),
    Together(tools=[function_tool(parameters=CITY), function_tool(name="g")], parallel_tool_calls=False,
             tool_choice={"type": "function", "function": {"name": "g"}}, max_tokens=80),
]
RESPONSE_FORMAT = st.one_of(
    st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x"}}]),
    st.sampled_from([
        {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
        {"type": "array", "items": {"type": "integer"}}, {"enum": ["yes", "no"]}, {"type": "string", "maxLength": 4},
    ]).map(lambda s: {"type": "json_schema", "json_schema": {"name": "answer", "schema": s, "strict": True}}))
HOSTILE_RESPONSE_FORMAT = [
    "json", {"type": "xml"}, {}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": 5},
    {"type": "json_schema", "json_schema": {"name": "bad name!"}},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": "s"}},
    {"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}}, *DEEP,
    *[{"type": "json_schema", "json_schema": {"name": "x", "schema": s}} for s in HOSTILE_SCHEMAS],
]

CHAT_FIELDS = {
    **SAMPLING_FIELDS,
    "messages": Field(st.lists(MESSAGE, min_size=1, max_size=3), HOSTILE_MESSAGES),
    "max_tokens": Field(st.one_of(st.integers(1, 6), st.integers(40, 60)), [
        0, -1, 2**70, "5", 1.5, MAX_MODEL_LEN, [], None, MISSING, Together(max_tokens=2, max_completion_tokens=2)]),
    "max_completion_tokens": Field(None, [3, 0, "3", -5]),
    "logprobs": Field(st.booleans(), ["yes", 1, 0, [True], Together(logprobs=False, top_logprobs=2)]),
    "top_logprobs": Field(st.integers(0, 20), [21, -1, "3", 2.5, 10**9, Together(logprobs=True, top_logprobs=21)]),
    "response_format": Field(RESPONSE_FORMAT, HOSTILE_RESPONSE_FORMAT),
    "tools": Field(st.lists(TOOL, min_size=1, max_size=2, unique_by=lambda t: t["function"]["name"]), HOSTILE_TOOLS),
    "tool_choice": Field(st.sampled_from(["none", "auto", "required", "named"]), HOSTILE_TOOL_CHOICE),
    "parallel_tool_calls": flag(),
    "echo": flag(),
    "add_generation_prompt": flag(),
    "continue_final_message": flag(),
    "chat_template_kwargs": Field(st.dictionaries(st.sampled_from(["enable_thinking", "x"]), SCALARS, max_size=2),
                                  ["x", [], {"messages": []}, {"tools": 1}, {"self": 1}, {"add_generation_prompt": 1},
                                   {"raise_exception": 1}, {"bos_token": DEEP[0]}, *DEEP]),
    "functions": Field(None, [[{"name": "f"}], "f"]),
    "modalities": Field(st.just(["text"]), [["audio"], "text", ["text", "audio"]]),
    "store": flag(),
}

# ---- completions -----------------------------------------------------------------------------------------

COMPLETION_FIELDS = {
    **SAMPLING_FIELDS,
    "prompt": Field(
        st.one_of(WORD, st.lists(WORD, min_size=1, max_size=3), st.lists(TOKEN_ID, min_size=1, max_size=12),
                  st.lists(st.lists(TOKEN_ID, min_size=1, max_size=6), min_size=1, max_size=3)),
        [MISSING, "", [], [[]], [""], ["a", ""], [1, "a"], [-1], [VOCAB_SIZE], [2**40], [2**70], [[1], [VOCAB_SIZE]],
         [True], [1.5], [1.0], {"text": "hi"}, 5, [["a"]], [[1], "a"], "hello " * 200, list(range(300)),
         [[1]] * 300, *DEEP]),
    "max_tokens": Field(st.integers(0, 6), [-1, 2**70, "5", 1.5, MAX_MODEL_LEN, [], 10**6, MISSING, 0,
                                            Together(max_tokens=0, echo=True, logprobs=2, stream=True)]),
    "echo": flag(),
    "logprobs": integer(0, 5, 20, Together(echo=True, logprobs=5, prompt=[0])),
    "best_of": Field(st.just("n"), [0, 2, 5, "1", 1.5]),
    "suffix": Field(st.sampled_from(["", None]), ["!", 5, ["x"]]),
    "response_format": Field(st.just({"type": "text"}), [{"type": "json_object"}, "text"]),
}


@st.composite
def request_bodies(draw, fields: dict[str, Field], required: tuple[str, ...]) -> dict:
    """A valid body (made consistent), then up to three fields given hostile values or left out, and maybe
    unknown fields of any shape."""
    optional = {key: f.valid for key, f in fields.items() if key not in required and f.valid is not None}
    body = draw(st.fixed_dictionaries({key: fields[key].valid for key in required}, optional=optional))
    _make_consistent(body, draw)
    for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        set_field(body, key, draw(st.one_of(st.sampled_from(fields[key].hostile), JUNK)))
    body.update(draw(st.dictionaries(st.text(max_size=8), JUNK, max_size=1)))
    return body


def set_field(body: dict, key: str, value) -> None:
    if value is MISSING:
        body.pop(key, None)
    elif isinstance(value, Together):
        body.update(value)
    else:
        body[key] = value


def _make_consistent(body: dict, draw) -> None:
    if "top_logprobs" in body:
        body["logprobs"] = True
    if "stream_options" in body:
        body["stream"] = True
    if body.get("continue_final_message"):
        body["add_generation_prompt"] = False
    if "tool_choice" in body and "tools" not in body:
        del body["tool_choice"]
    if body.get("tool_choice") == "named":
        tool = draw(st.sampled_from(body["tools"]))
        body["tool_choice"] = {"type": "function", "function": {"name": tool["function"]["name"]}}
    if isinstance(body.get("max_tokens"), int):
        body["min_tokens"] = min(body.get("min_tokens", 0), body["max_tokens"])
    if body.get("best_of") == "n":
        body["best_of"] = body.get("n", 1)


def one_at_a_time(fields: dict[str, Field], base: dict):
    """The base body with each hostile value of each field in turn; every other one streamed."""
    i = 0
    for key, f in fields.items():
        for value in f.hostile:
            body = {**base, "stream": i % 2 == 1}
            set_field(body, key, value)
            i += 1
            yield body


CHAT_BASE = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
COMPLETION_BASE = {"prompt": "hi", "max_tokens": 2}
CHAT_BODIES = request_bodies(CHAT_FIELDS, ("messages", "max_tokens"))
COMPLETION_BODIES = request_bodies(COMPLETION_FIELDS, ("prompt", "max_tokens"))
JSON_CONTENT_TYPES = st.sampled_from(["application/json", None, "application/json; charset=utf-8",
                                      "application/merge-patch+json"])
HOSTILE_RAW = [
    b"", b" ", b"{", b'{"messages": [', b"null", b"[]", b'"text"', b"42", b"\xff\xfe{}", b"\xef\xbb\xbf{}",
    b'{"prompt": "hi", "temperature": NaN}', b'{"prompt": "hi", "max_tokens": Infinity}',
    b'{"prompt": "hi", "max_tokens": 1e999}', b'{"prompt": "hi"} trailing', b'{"prompt": "\\ud800"}',
    b'{"prompt": "hi", "prompt": 5}', b"prompt=hi&max_tokens=2", "{}".encode("utf-16"),
    b"[" * 2000 + b"]" * 2000, b'{"a": ' * 1100 + b"1" + b"}" * 1100, b"{" + b'"a": 1, ' * 100_000 + b'"b": 2}',
    b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "n": 1e400}',
    b'{"prompt": [' + b"1, " * 100_000 + b"1]}", b'{"prompt": "hi", "max_tokens": -0}',
    b" " * (MAX_BODY_BYTES + 1),
]
RAW_BODIES = st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                       JUNK.map(lambda v: json.dumps(v).encode()), st.sampled_from(HOSTILE_RAW))
CONTENT_TYPES = [
    None, "", "application/json", "application/json; charset=utf-8", "text/plain", "application/octet-stream",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/problem+json", "*/*",
    "json", "text/json", "application/json;;;", "application/jsonx"]


# ---- checks ---------------------------------------------------------------------------------------------


async def post(client: TestClient, path: str, raw: bytes, content_type: str | None) -> tuple[int, str, bytes]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    skip = ("Content-Type",) if content_type is None else ()
    async with client.post(path, data=raw, headers=headers, skip_auto_headers=skip) as response:
        return response.status, response.content_type, await response.read()


def check_error(raw: bytes) -> None:
    body = orjson.loads(raw)
    assert list(body) == ["error"], body
    error = body["error"]
    assert list(error) == ["message", "type", "param", "code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    validate(body, "ErrorResponse", strict=True)


def expected_choices(path: str, body: dict) -> int:
    n = int(body.get("n") or 1)
    if path == CHAT:
        return n
    prompt = body["prompt"]
    return n * (len(prompt) if isinstance(prompt, list) and isinstance(prompt[0], (str, list)) else 1)


def check_response(path: str, body: dict, raw: bytes) -> None:
    response = orjson.loads(raw)
    validate(response, RESPONSE_SCHEMA[path], strict=True)
    assert [c["index"] for c in response["choices"]] == list(range(expected_choices(path, body)))
    usage = response["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def sse_payloads(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n"), raw[-200:]
    events = raw[:-2].split(b"\n\n")
    assert all(e.startswith(b"data: ") for e in events), raw[:500]
    return [e[len(b"data: "):] for e in events]


def check_stream(path: str, body: dict, raw: bytes) -> None:
    payloads = sse_payloads(raw)
    assert payloads[-1] == b"[DONE]", payloads[-1][:1000]
    finished = []
    for payload in payloads[:-1]:
        chunk = orjson.loads(payload)
        validate(chunk, CHUNK_SCHEMA[path], strict=True)
        finished += [c["index"] for c in chunk["choices"] if c["finish_reason"] is not None]
    assert sorted(finished) == list(range(expected_choices(path, body)))


def check_reply(path: str, body: object, status: int, content_type: str, raw: bytes) -> None:
    assert status < 500, raw[:2000]
    if status != 200:
        assert content_type == "application/json"
        check_error(raw)
    elif content_type == "text/event-stream":
        check_stream(path, body, raw)
    else:
        check_response(path, body, raw)


async def drained(engine: AsyncEngine, timeout: float = 10.0) -> None:
    """Nothing left in the engine: no request running, waiting or tracked, every KV block free."""
    core, blocks, outputs = engine.core, engine.core.block_manager, engine.core.output_processor

    def state() -> tuple:
        return core.num_running, core.num_waiting, len(outputs.states), len(outputs.children), blocks.num_free_blocks

    idle = (0, 0, 0, 0, blocks.num_blocks)
    for _ in range(int(timeout / 0.01)):
        if state() == idle:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"engine not drained: (running, waiting, states, children, free blocks) = {state()}, "
                         f"expected {idle}")


def decoded(raw: bytes) -> object:
    """What a raw body holds, for checking a 200 (some hostile bodies are valid requests)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def exchange(harness: Harness, path: str, body: object, raw: bytes, content_type: str | None) -> None:
    async def go() -> None:
        status, reply_type, reply = await post(harness.client, path, raw, content_type)
        check_reply(path, body, status, reply_type, reply)
        await drained(harness.engine)

    harness.run(go())


# ---- the fuzz -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["model", "tools"])
@settings(FUZZ, max_examples=35)
@given(body=CHAT_BODIES, content_type=JSON_CONTENT_TYPES)
def test_chat_bodies_never_get_a_server_error(harness, template, body, content_type):
    with harness.template(template):
        exchange(harness, CHAT, body, json.dumps(body).encode(), content_type)


@settings(FUZZ, max_examples=55)
@given(body=COMPLETION_BODIES, content_type=JSON_CONTENT_TYPES)
def test_completion_bodies_never_get_a_server_error(harness, body, content_type):
    exchange(harness, COMPLETIONS, body, json.dumps(body).encode(), content_type)


@settings(FUZZ, max_examples=25)
@given(path=st.sampled_from([CHAT, COMPLETIONS]), raw=RAW_BODIES, content_type=st.sampled_from(CONTENT_TYPES))
def test_raw_bodies_never_get_a_server_error(harness, path, raw, content_type):
    exchange(harness, path, decoded(raw), raw, content_type)


# ---- every listed hostile value, on its own ---------------------------------------------------------------------


@pytest.mark.parametrize("template", ["model", "tools"])
def test_each_hostile_chat_field_alone(harness, template):
    with harness.template(template):
        for body in one_at_a_time(CHAT_FIELDS, CHAT_BASE):
            exchange(harness, CHAT, body, json.dumps(body).encode(), "application/json")


def test_each_hostile_completion_field_alone(harness):
    for body in one_at_a_time(COMPLETION_FIELDS, COMPLETION_BASE):
        exchange(harness, COMPLETIONS, body, json.dumps(body).encode(), "application/json")


def test_each_hostile_raw_body(harness):
    for i, raw in enumerate(HOSTILE_RAW):
        path = (CHAT, COMPLETIONS)[i % 2]
        exchange(harness, path, decoded(raw), raw, CONTENT_TYPES[i % len(CONTENT_TYPES)])
        exchange(harness, path, decoded(raw), raw, "application/json")


# ---- what the fuzz found (each a 500 before) ---------------------------------------------------------------------

FOUND = [
    # (path, fields over the base body, status, error param, error code)
    (CHAT, {"top_k": 2**40}, 400, "top_k", "integer_above_max_value"),  # the engine packs top_k as int32
    (COMPLETIONS, {"logit_bias": {"1" * 5000: 1}}, 400, "logit_bias", "invalid_value"),  # int() takes 4300 digits
    (COMPLETIONS, {"logit_bias": {"0" * 5000 + "5": 1}}, 200, None, None),  # token 5
    # JSON deep enough to exhaust Python's recursion in json.loads or json.dumps: kept as text, or refused.
    (CHAT, {"messages": called_with("[" * 50_000)}, 400, "messages", "context_length_exceeded"),
    (CHAT, {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": DEEP[1]}}},
     400, None, None),
    (CHAT, {"tools": [function_tool(parameters=DEEP[1])]}, 400, None, None),
]


@pytest.mark.parametrize(("path", "fields", "status", "param", "code"), FOUND)
def test_what_the_fuzz_found_is_answered_without_a_server_error(harness, path, fields, status, param, code):
    body = {**(CHAT_BASE if path == CHAT else COMPLETION_BASE), **fields}

    async def go() -> tuple[int, str, bytes]:
        reply = await post(harness.client, path, json.dumps(body).encode(), "application/json")
        await drained(harness.engine)
        return reply

    got, content_type, raw = harness.run(go())
    check_reply(path, body, got, content_type, raw)
    assert got == status, raw
    if status != 200:
        error = orjson.loads(raw)["error"]
        assert (error["param"], error["code"]) == (param, code), error


# ---- clients that leave mid-stream ---------------------------------------------------------------------------

LONG_STREAMS = [
    (COMPLETIONS, {"prompt": "Once upon a time", "max_tokens": 100, "ignore_eos": True, "stream": True}),
    (CHAT, {"messages": [{"role": "user", "content": "Tell me"}], "max_tokens": 90, "ignore_eos": True,
            "stream": True, "n": 2, "stream_options": {"include_usage": True}}),
    (COMPLETIONS, {"prompt": [[5, 6, 7], [8, 9]], "max_tokens": 100, "ignore_eos": True, "stream": True, "n": 2,
                   "logprobs": 2}),
    (CHAT, {"messages": [{"role": "user", "content": "Tell me"}], "max_tokens": 90, "ignore_eos": True,
            "stream": True, "tools": [{"type": "function", "function": {"name": "f"}}]}),
]


async def leave_after_first_chunk(client: TestClient, path: str, body: dict) -> None:
    response = await client.post(path, json=body)
    assert response.status == 200
    first = await response.content.readuntil(b"\n\n")
    assert first.startswith(b"data: {")
    response.close()  # drops the connection mid-stream


def aborted(harness: Harness) -> float:
    metrics = harness.client.server.app[METRICS]
    labels = {"model_name": NAME, "finished_reason": "abort"}
    return metrics.registry.get_sample_value("cortexstream:request_success_total", labels) or 0


def engine_requests(body: dict) -> int:
    """One engine request per prompt (its n samples are children of it)."""
    prompt = body.get("prompt")
    return len(prompt) if isinstance(prompt, list) and isinstance(prompt[0], list) else 1


def test_twenty_clients_leaving_mid_stream_leave_nothing_behind(harness):
    before = aborted(harness)
    leaving = [LONG_STREAMS[i % len(LONG_STREAMS)] for i in range(20)]
    expected = before + sum(engine_requests(body) for _, body in leaving)

    async def go() -> None:
        for path, body in leaving:
            await leave_after_first_chunk(harness.client, path, body)
        await drained(harness.engine)
        for _ in range(500):
            if aborted(harness) == expected:
                break
            await asyncio.sleep(0.01)
        body = {"prompt": "hello", "max_tokens": 3}
        status, content_type, raw = await post(harness.client, COMPLETIONS, orjson.dumps(body), "application/json")
        assert status == 200
        check_response(COMPLETIONS, body, raw)
        await drained(harness.engine)

    with harness.template("tools"):
        harness.run(go())
    assert aborted(harness) == expected


@contextlib.contextmanager
def paused(engine: AsyncEngine):
    """Hold the engine thread before its next step, so admitted requests stay waiting."""
    gate, step = threading.Event(), engine.core.step
    engine.core.step = lambda: (gate.wait(), step())[1]
    try:
        yield
    finally:
        gate.set()
        engine.core.step = step


def test_clients_giving_up_before_the_response_leave_nothing_behind(harness):
    """Non-streaming clients that stop waiting: their requests (several prompts, n samples) leave the engine
    after at most the one step it was held in."""
    giving_up = [(path, {**body, "stream": False, "stream_options": None}) for path, body in LONG_STREAMS * 2]
    expected = aborted(harness) + sum(engine_requests(body) for _, body in giving_up)
    tokens_before = harness.engine.core.stats.num_tokens

    async def give_up(path: str, body: dict) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(harness.client.post(path, json=body), 0.05)
            raise AssertionError("the response came while the engine was held")

    async def go() -> None:
        with paused(harness.engine):
            for path, body in giving_up:
                await give_up(path, body)
            for _ in range(500):
                if aborted(harness) == expected:
                    break
                await asyncio.sleep(0.01)
        await drained(harness.engine)

    with harness.template("tools"):
        harness.run(go())
    assert aborted(harness) == expected
    assert harness.engine.core.stats.num_tokens - tokens_before <= MAX_NUM_BATCHED_TOKENS


# ---- a fault inside the server mid-stream -----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "call", "step"), [(CHAT, ChatCall, "_output_chunks"),
                                                    (COMPLETIONS, CompletionCall, "_chunk")])
def test_fault_mid_stream_ends_the_stream_with_a_server_error_event(harness, monkeypatch, path, call, step):
    """The headers are out, so the fault can only be told in an event; the client must not be left waiting."""
    real, calls = getattr(call, step), []

    def faulty(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("secret detail")
        return real(self, *args)

    monkeypatch.setattr(call, step, faulty)
    body = {**LONG_STREAMS[0][1], "prompt": "hi"} if path == COMPLETIONS else {**LONG_STREAMS[1][1], "n": 1}

    async def go() -> bytes:
        async with harness.client.post(path, json=body) as response:
            assert response.status == 200
            raw = await asyncio.wait_for(response.read(), 30)
        await drained(harness.engine)
        return raw

    payloads = sse_payloads(harness.run(go()))
    error = orjson.loads(payloads[-1])
    check_error(payloads[-1])
    assert error["error"]["type"] == "server_error" and "secret" not in error["error"]["message"]
    for payload in payloads[:-1]:
        validate(orjson.loads(payload), CHUNK_SCHEMA[path])
