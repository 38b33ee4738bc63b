"""The front door: one conversion from a parsed request to SamplingParams, one mapping from engine refusals to
OpenAI's `param`, text too long for the context refused before tokenizing, and slow work kept off the event loop."""

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from compat import parse_chat_request, parse_completion_request
from gateway.app import create_app
from gateway.http_errors import from_refusal
from gateway.sampling import ModelDefaults, to_sampling_params
from gateway.server_config import ServerConfig
from gateway.state import MODEL_SLOT
from jax_engine import (
    ContextLengthExceeded,
    EngineDead,
    EngineShutdown,
    QueueFull,
    RequestField,
    RequestValidationError,
    StructuredOutputParams,
)
from jax_engine.async_engine import AsyncEngine
from tests.engine_utils import engine_for

MESSAGES = [{"role": "user", "content": "Hi"}]
GENERATION_CONFIG = {"temperature": 0.6, "top_p": 0.9, "top_k": 50, "min_p": 0.05, "repetition_penalty": 1.1}
DEFAULTS = ModelDefaults.of(GENERATION_CONFIG, max_model_len=2048)


def chat(**fields):
    return parse_chat_request({"messages": MESSAGES, **fields}, allow_structured_output=True, allow_tools=True)


def completion(**fields):
    return parse_completion_request({"prompt": "Hi", **fields})


# ---- one conversion ---------------------------------------------------------------------------------------------


def test_unset_fields_stay_none_in_the_parsed_request():
    assert chat().sampling.sent() == {}
    assert chat(temperature=None, top_k=None).sampling.sent() == {}
    assert completion().sampling.sent() == {"max_tokens": 16}  # the endpoint's own default


def test_generation_config_fills_what_the_client_left_unset():
    params = to_sampling_params(chat(), DEFAULTS, num_prompt_tokens=10)
    assert (params.temperature, params.top_p, params.top_k, params.min_p, params.repetition_penalty) == (
        0.6, 0.9, 50, 0.05, 1.1)


def test_explicit_values_win_over_generation_config_even_when_they_are_openai_defaults():
    params = to_sampling_params(chat(temperature=1.0, top_p=1, top_k=-1, repetition_penalty=1.0), DEFAULTS, 10)
    assert (params.temperature, params.top_p, params.top_k, params.repetition_penalty) == (1.0, 1.0, 0, 1.0)
    assert params.min_p == 0.05  # still unset, so still the model's


def test_explicit_null_is_unset():
    assert to_sampling_params(chat(temperature=None), DEFAULTS, 10).temperature == 0.6


def test_without_generation_config_the_defaults_are_openais():
    params = to_sampling_params(chat(), ModelDefaults.of({}, 2048), 10)
    assert (params.temperature, params.top_p, params.top_k, params.n, params.presence_penalty) == (1.0, 1.0, 0, 1, 0.0)


def test_generation_config_fields_that_are_not_sampling_defaults_are_ignored():
    defaults = ModelDefaults.of({**GENERATION_CONFIG, "presence_penalty": 1.5, "max_tokens": 7}, 2048)
    params = to_sampling_params(chat(), defaults, 10)
    assert params.presence_penalty == 0.0 and params.max_tokens == 2038


def test_max_tokens_unset_runs_to_the_end_of_the_context_and_explicit_is_kept():
    assert to_sampling_params(chat(), DEFAULTS, 100).max_tokens == 1948
    assert to_sampling_params(chat(max_completion_tokens=5), DEFAULTS, 100).max_tokens == 5
    assert to_sampling_params(completion(), DEFAULTS, 100).max_tokens == 16


def test_priority_and_structured_output_travel_inside_the_sampling_params():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    params = to_sampling_params(chat(priority=-3, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}), DEFAULTS, 10)
    assert params.priority == -3 and params.structured_output == StructuredOutputParams(json=schema)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    forced = to_sampling_params(chat(tools=[tool], tool_choice="required"), DEFAULTS, 10)
    assert forced.structured_output is not None and forced.structured_output.grammar is not None
    assert to_sampling_params(completion(), DEFAULTS, 10).structured_output is None


# ---- one mapping of refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("request_", "index", "param"), [
    (chat(), 0, "messages"), (completion(), 0, "prompt"), (completion(prompt=["a", "b"]), 1, "prompt[1]")])
def test_a_refused_prompt_names_each_surfaces_prompt_field(request_, index, param):
    error = from_refusal(RequestValidationError("the prompt is empty", RequestField.PROMPT), request_, index)
    assert (error.status, error.param) == (400, param)


def test_a_refused_prompt_token_names_its_position():
    refusal = RequestValidationError("token id 9999 is outside the vocabulary [0, 320)", RequestField.PROMPT, 1)
    error = from_refusal(refusal, completion(prompt=[[1], [2, 9999]]), 1)
    assert (error.param, error.code) == ("prompt[1][1]", "invalid_value")
    assert error.message.startswith("Invalid 'prompt[1][1]': token id 9999")


def test_a_constraint_that_cannot_be_enforced_blames_the_field_it_came_from():
    refusal = RequestValidationError("the JSON schema cannot be enforced", RequestField.STRUCTURED_OUTPUT)
    tool = {"type": "function", "function": {"name": "f"}}
    assert from_refusal(refusal, chat(response_format={"type": "json_object"})).param == "response_format"
    assert from_refusal(refusal, chat(tools=[tool], tool_choice="required")).param == "tools"


def test_sampling_fields_keep_their_names_and_context_overflow_reads_as_openai_words_it():
    assert from_refusal(RequestValidationError("x", RequestField.LOGIT_BIAS), chat()).param == "logit_bias"
    overflow = ContextLengthExceeded("too long", 2048, 100, 2000)
    error = from_refusal(overflow, chat())
    assert (error.param, error.code) == ("messages", "context_length_exceeded")
    assert "2100 tokens (100 in the messages, 2000 in the completion)" in error.message


@pytest.mark.parametrize(("refusal", "status"), [
    (QueueFull("full"), 429), (EngineShutdown("stopping"), 503), (EngineDead("dead"), 503)])
def test_engine_states_map_to_retryable_statuses(refusal, status):
    assert from_refusal(refusal, chat()).status == status


# ---- the server in-process --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_llama_path):
    e = AsyncEngine(engine_for(tiny_llama_path))
    yield e
    e.shutdown()


@contextlib.asynccontextmanager
async def serving(engine):
    app = create_app(engine, ServerConfig(served_model_name="tiny"))
    async with TestClient(TestServer(app)) as client:
        await app[MODEL_SLOT].settled.wait()
        yield client, app[MODEL_SLOT].get()


async def test_text_too_long_for_the_context_is_refused_without_tokenizing(engine, monkeypatch):
    async with serving(engine) as (client, model):
        calls = []
        monkeypatch.setattr(model.tokenizer, "encode", lambda *a, **k: calls.append(1) or [5])
        max_bytes = model.max_model_len * model.tokenizer.max_bytes_per_token
        for path, body, param in [
            ("/v1/completions", {"prompt": "x" * (max_bytes + 1)}, "prompt"),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * max_bytes}]}, "messages"),
            ("/tokenize", {"prompt": "é" * (max_bytes // 2 + 1)}, "prompt"),  # 2 bytes each
        ]:
            response = await client.post(path, json=body)
            error = (await response.json())["error"]
            assert response.status == 400 and (error["param"], error["code"]) == (param, "context_length_exceeded")
        assert calls == []
        assert (await client.post("/tokenize", json={"prompt": "é" * (max_bytes // 2)})).status == 200
        assert calls == [1]


@dataclass
class SlowStep:
    started: threading.Event = field(default_factory=threading.Event)
    finished_at: float = float("inf")  # of the first call


def slow(monkeypatch, obj, name: str, seconds: float = 1.0) -> SlowStep:
    """`obj.name` takes `seconds` (sleeping, as a GIL-free tokenizer or compiler would) before doing its work."""
    real, step = getattr(obj, name), SlowStep()

    def slowed(*args, **kwargs):
        step.started.set()
        time.sleep(seconds)
        step.finished_at = min(step.finished_at, time.perf_counter())
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, slowed)
    return step


async def health_answered_during(client, step: SlowStep, request) -> tuple[bool, int]:
    """Whether /health answered while `request` was busy in the slow step (were the step on the event loop,
    nothing could answer until it ended), and the request's status."""
    pending = asyncio.ensure_future(request)
    while not step.started.is_set():
        await asyncio.sleep(0.005)
    assert (await client.get("/health")).status == 200
    answered_at = time.perf_counter()
    status = (await pending).status
    return answered_at < step.finished_at, status


@pytest.mark.parametrize(("path", "body"), [
    ("/tokenize", {"prompt": "hello world"}),
    ("/v1/completions", {"prompt": "hello world", "max_tokens": 1}),
    ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 1}),
])
async def test_health_answers_while_a_slow_tokenization_runs(engine, monkeypatch, path, body):
    async with serving(engine) as (client, model):
        step = slow(monkeypatch, model.tokenizer, "encode")
        during, status = await health_answered_during(client, step, client.post(path, json=body))
    assert status == 200 and during


async def test_health_answers_while_a_slow_chat_template_renders(engine, monkeypatch):
    async with serving(engine) as (client, model):
        step = slow(monkeypatch, model.chat_template, "render")
        request = client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 1})
        during, status = await health_answered_during(client, step, request)
    assert status == 200 and during


async def test_health_answers_while_a_slow_grammar_compiles(engine, monkeypatch):
    async with serving(engine) as (client, model):
        step = slow(monkeypatch, model.engine.core.structured_output, "compile")
        request = client.post("/v1/chat/completions", json={
            "messages": MESSAGES, "max_tokens": 2, "response_format": {"type": "json_object"}})
        during, status = await health_answered_during(client, step, request)
    assert status == 200 and during


async def test_access_log_line_carries_the_engine_timings(engine, caplog):
    caplog.set_level(logging.INFO, logger="gateway.access")
    async with serving(engine) as (client, _):
        response = await client.post("/v1/completions", json={"prompt": "hello", "max_tokens": 3, "ignore_eos": True},
                                     headers={"X-Request-Id": "timed-1"})
        assert response.status == 200
    line = next(r.getMessage() for r in caplog.records if "timed-1" in r.getMessage())
    assert "output_tokens=3" in line and "finish_reason=length" in line
    assert "ttft_ms=" in line and "tpot_ms=" in line and "cached_tokens=0" in line



async def test_bodies_are_read_whole_with_or_without_a_content_length_and_refused_past_the_limit(engine):
    app = create_app(engine, ServerConfig(served_model_name="tiny", max_body_bytes=4096))
    body = orjson.dumps({"prompt": "hello " * 100, "max_tokens": 1})

    async def chunked(data: bytes):
        for i in range(0, len(data), 100):
            yield data[i:i + 100]

    async with TestClient(TestServer(app)) as client:
        await app[MODEL_SLOT].settled.wait()
        headers = {"Content-Type": "application/json"}
        assert (await client.post("/tokenize", data=body, headers=headers)).status == 200
        streamed = await client.post("/tokenize", data=chunked(body), headers=headers)
        assert streamed.status == 200 and (await streamed.json())["count"] > 100
        big = orjson.dumps({"prompt": "hello " * 1000})
        for data in (big, chunked(big)):
            refused = await client.post("/tokenize", data=data, headers=headers)
            assert refused.status == 413 and (await refused.json())["error"]["code"] == "request_too_large"
