"""The app in-process (aiohttp's test server) over a real engine on the tiny llama: API keys, CORS, the
bounded waiting queue, clients that leave while queued, loading, and failures inside the server."""

import asyncio
import contextlib
import threading

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.server_config import ServerConfig, api_key_from_env, default_served_model_name
from gateway.serving_model import ServingModel
from gateway.state import METRICS, MODEL_SLOT
from jax_engine.async_engine import AsyncEngine
from tests.engine_utils import engine_for
from tests.openai_schema import validate

NAME = "tiny"
KEY = "sk-test-key"
COMPLETION = {"prompt": "hello", "max_tokens": 3}


@pytest.fixture(scope="module")
def engine(tiny_llama_path):
    e = AsyncEngine(engine_for(tiny_llama_path, max_num_seqs=4))
    yield e
    e.shutdown()


@contextlib.asynccontextmanager
async def serving(engine, **config):
    app = create_app(engine, ServerConfig(served_model_name=NAME, **config))
    client = TestClient(TestServer(app, handler_cancellation=True))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def error_of(response, status: int) -> dict:
    assert response.status == status
    body = await response.json()
    validate(body, "ErrorResponse")
    return body["error"]


@contextlib.contextmanager
def paused(engine):
    """Hold the engine thread before its next step, so admitted requests stay waiting."""
    gate = threading.Event()
    step = engine.core.step
    engine.core.step = lambda: (gate.wait(), step())[1]
    try:
        yield gate
    finally:
        gate.set()
        engine.core.step = step


async def until(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


# ---- API keys ---------------------------------------------------------------------------------------


async def test_api_key_guards_every_route_but_health_version_and_metrics(engine):
    async with serving(engine, api_key=KEY) as client:
        missing = await error_of(await client.get("/v1/models"), 401)
        assert missing["code"] is None and "didn't provide an API key" in missing["message"]
        wrong = await error_of(await client.get("/v1/models", headers={"Authorization": "Bearer sk-nope"}), 401)
        assert wrong["code"] == "invalid_api_key"
        other_scheme = await client.get("/v1/models", headers={"Authorization": f"Basic {KEY}"})
        assert other_scheme.status == 401
        ok = await client.post("/v1/completions", json=COMPLETION, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status == 200
        for open_path in ("/health", "/metrics", "/version"):
            assert (await client.get(open_path)).status == 200
        assert (await client.post("/tokenize", json={"prompt": "hi"})).status == 401


async def test_api_key_can_guard_metrics_too(engine):
    async with serving(engine, api_key=KEY, api_key_protects_metrics=True) as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})).status == 200
        assert (await client.get("/health")).status == 200


async def test_without_api_key_v1_is_open(engine):
    async with serving(engine) as client:
        assert (await client.get("/v1/models")).status == 200


def test_api_key_flag_wins_over_environment(monkeypatch):
    monkeypatch.setenv("CORTEXSTREAM_API_KEY", "from-env")
    assert api_key_from_env(None) == "from-env"
    assert api_key_from_env("from-flag") == "from-flag"
    monkeypatch.delenv("CORTEXSTREAM_API_KEY")
    assert api_key_from_env(None) is None


# ---- CORS ---------------------------------------------------------------------------------------------


async def test_cors_is_off_by_default(engine):
    async with serving(engine) as client:
        response = await client.get("/v1/models", headers={"Origin": "https://app.example"})
        assert "Access-Control-Allow-Origin" not in response.headers
        preflight = await client.options("/v1/models", headers={"Origin": "https://app.example",
                                                                "Access-Control-Request-Method": "GET"})
        assert preflight.status == 405


async def test_cors_allows_listed_origins_only(engine):
    async with serving(engine, allowed_origins=("https://app.example",), api_key=KEY) as client:
        preflight = await client.options("/v1/chat/completions", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert preflight.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
        allowed = await client.get("/v1/models", headers={"Origin": "https://app.example",
                                                          "Authorization": f"Bearer {KEY}"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "X-Request-Id" in allowed.headers["Access-Control-Expose-Headers"]
        refused = await client.get("/v1/models", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in refused.headers


# ---- the waiting queue and clients that leave ------------------------------------------------------------


async def test_full_waiting_queue_answers_429_with_retry_after(engine):
    engine.max_waiting = 1  # what --max-waiting sets when the server builds the engine
    try:
        async with serving(engine) as client:
            with paused(engine) as gate:
                first = asyncio.ensure_future(client.post("/v1/completions", json=COMPLETION))
                await until(lambda: engine.core.num_waiting == 1)
                response = await client.post("/v1/completions", json=COMPLETION)
                error = await error_of(response, 429)
                assert response.headers["Retry-After"] == "1"
                assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
                gate.set()
                assert (await first).status == 200
    finally:
        engine.max_waiting = None


async def test_every_sample_counts_against_the_waiting_bound(engine):
    engine.max_waiting = 3
    try:
        async with serving(engine) as client:
            with paused(engine) as gate:
                first = asyncio.ensure_future(client.post("/v1/completions", json={**COMPLETION, "n": 2}))
                await until(lambda: engine.core.num_waiting == 2)
                await error_of(await client.post("/v1/completions", json={**COMPLETION, "n": 2}), 429)
                gate.set()
                assert (await first).status == 200
    finally:
        engine.max_waiting = None


@pytest.mark.parametrize("path, body", [("/v1/completions", {**COMPLETION, "prompt": ["a", "b", "c"], "n": 2}),
                                        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                                  "max_tokens": 1, "n": 5})])
async def test_more_sequences_than_the_per_request_bound_is_400(engine, path, body):
    async with serving(engine, max_sequences_per_request=4) as client:
        error = await error_of(await client.post(path, json=body), 400)
        assert (error["param"], error["code"]) == ("n", "too_many_sequences")
        assert engine.core.num_waiting == 0


def test_max_waiting_defaults_to_a_bound_derived_from_the_engine():
    from gateway.cli import build_parser
    from gateway.engine_args import engine_config
    from gateway.server import server_config

    args = build_parser().parse_args(["serve", "--max-num-seqs", "8"])
    assert server_config(args, engine_config(args)).max_waiting == 16 * 8


@pytest.mark.parametrize("stream", [False, True])
async def test_client_leaving_while_queued_aborts_its_request(engine, stream):
    core = engine.core
    async with serving(engine) as client:
        with paused(engine):
            body = {**COMPLETION, "max_tokens": 50, "stream": stream}
            request = asyncio.ensure_future(client.post("/v1/completions", json=body))
            await until(lambda: core.num_waiting == 1)
            if stream:  # the headers are out: the client holds a response and drops it
                (await request).close()
            else:  # nothing came back yet: the client gives up on the request
                request.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await request
            metrics = client.server.app[METRICS]
            await until(lambda: _samples(metrics, "cortexstream:request_success_total", "abort") == 1)
        await until(lambda: not core.has_unfinished_requests())
        assert core.block_manager.num_free_blocks == core.block_manager.num_blocks
        assert _samples(metrics, "cortexstream:generation_tokens_total") <= 1


def _samples(metrics, name: str, reason: str | None = None) -> float:
    labels = {"model_name": NAME, **({"finished_reason": reason} if reason else {})}
    return metrics.registry.get_sample_value(name, labels) or 0


# ---- loading ------------------------------------------------------------------------------------------


async def test_health_is_503_while_loading_then_200(tiny_llama_path):
    gate = threading.Event()

    def build():
        gate.wait()
        return AsyncEngine(engine_for(tiny_llama_path))

    async with serving(build) as client:
        loading = await error_of(await client.get("/health"), 503)
        assert "loading" in loading["message"]
        await error_of(await client.get("/v1/models"), 503)
        assert (await client.get("/metrics")).status == 200
        gate.set()
        await until(lambda: client.server.app[MODEL_SLOT].ready)
        assert (await client.get("/health")).status == 200
        assert (await client.post("/v1/completions", json=COMPLETION)).status == 200


async def test_failed_load_keeps_health_at_503():
    def build():
        raise FileNotFoundError("no such checkpoint")

    async with serving(build) as client:
        slot = client.server.app[MODEL_SLOT]
        await slot.settled.wait()
        assert isinstance(slot.error, FileNotFoundError)
        await error_of(await client.get("/health"), 503)


# ---- failures inside the server --------------------------------------------------------------------------


async def test_internal_fault_is_500_without_details(engine, monkeypatch, caplog):
    def broken(self, chat):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(ServingModel, "chat_prompt_ids", broken)
    async with serving(engine) as client:
        response = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]},
                                     headers={"X-Request-Id": "req-500"})
        error = await error_of(response, 500)
        assert error["type"] == "server_error" and "secret" not in error["message"]
        assert "req-500" in error["message"]
    assert any("req-500" in r.getMessage() and r.exc_info for r in caplog.records)


@contextlib.contextmanager
def failing_after(engine, good_steps: int):
    runner = engine.core.runner
    execute, calls = runner.execute, []

    def flaky(out):
        calls.append(1)
        if len(calls) > good_steps:
            raise RuntimeError("device fault")
        return execute(out)

    runner.execute = flaky
    try:
        yield
    finally:
        runner.execute = execute


async def test_engine_failure_mid_stream_ends_with_an_error_event(engine):
    async with serving(engine) as client:
        with failing_after(engine, good_steps=2):
            response = await client.post("/v1/completions",
                                         json={**COMPLETION, "max_tokens": 20, "stream": True, "ignore_eos": True})
            assert response.status == 200
            events = (await response.text()).removesuffix("\n\n").split("\n\n")
        assert all(e.startswith("data: ") for e in events)
        assert "[DONE]" not in events[-1]
        error = orjson.loads(events[-1][len("data: "):])
        validate(error, "ErrorResponse")
        assert error["error"]["type"] == "server_error" and "device fault" in error["error"]["message"]
        assert (await client.post("/v1/completions", json=COMPLETION)).status == 200


async def test_engine_failure_without_stream_is_500(engine):
    async with serving(engine) as client:
        with failing_after(engine, good_steps=0):
            error = await error_of(await client.post("/v1/completions", json=COMPLETION), 500)
        assert error["type"] == "server_error"


# ---- names ----------------------------------------------------------------------------------------------


def test_served_model_name_defaults_to_the_checkpoint_stem():
    assert default_served_model_name(None) == "SmolLM2-135M-Instruct"
    assert default_served_model_name("/m/SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct"
    assert default_served_model_name("/m/llama-3-8b-instruct-f16.gguf") == "llama-3-8b-instruct"
    assert default_served_model_name("/ckpt/Qwen3-0.6B/") == "Qwen3-0.6B"
    assert default_served_model_name("llama-3-8b") == "llama-3-8b"


async def test_every_served_name_is_accepted(engine):
    app = create_app(engine, ServerConfig(served_model_name=NAME, extra_model_names=("alias",)))
    async with TestClient(TestServer(app)) as client:
        for name in (NAME, "alias"):
            assert (await client.post("/v1/completions", json={**COMPLETION, "model": name})).status == 200
        assert (await client.get("/v1/models/alias")).status == 200
        body = await (await client.post("/v1/completions", json={**COMPLETION, "model": "alias"})).json()
        assert body["model"] == NAME


# ---- vLLM extensions ------------------------------------------------------------------------------------


async def test_chat_echo_repeats_the_continued_assistant_message(engine):
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "}],
            "add_generation_prompt": False, "continue_final_message": True, "max_tokens": 3, "temperature": 0}
    async with serving(engine) as client:
        plain = await (await client.post("/v1/chat/completions", json=body)).json()
        echoed = await (await client.post("/v1/chat/completions", json={**body, "echo": True})).json()
    validate(echoed, "CreateChatCompletionResponse")
    assert echoed["choices"][0]["message"]["content"] == "Sure, " + plain["choices"][0]["message"]["content"]


async def test_continuous_usage_stats_count_every_chunk(engine):
    body = {**COMPLETION, "max_tokens": 4, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    async with serving(engine) as client:
        raw = await (await client.post("/v1/completions", json=body)).text()
    events = [orjson.loads(e[len("data: "):]) for e in raw.removesuffix("\n\n").split("\n\n")[:-1]]
    for e in events:
        validate(e, "CreateCompletionStreamResponse")
    chunks, last = events[:-1], events[-1]
    assert [c["usage"]["completion_tokens"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 4
    assert all(c["usage"]["prompt_tokens"] == last["usage"]["prompt_tokens"] for c in chunks)


# ---- a model without a tokenizer (dummy weights) ---------------------------------------------------------


async def test_dummy_weights_serve_token_id_prompts_only(tiny_llama_path):
    from jax_engine.llm_engine import LLMEngine
    from tests.engine_utils import small_engine_config

    engine = AsyncEngine(LLMEngine.from_config(small_engine_config(model=tiny_llama_path, load_format="dummy")))
    try:
        async with serving(engine) as client:
            ok = await client.post("/v1/completions", json={"prompt": [5, 6, 7], "max_tokens": 2, "logprobs": 0,
                                                             "ignore_eos": True})
            body = await ok.json()
            validate(body, "CreateCompletionResponse")
            assert body["usage"]["completion_tokens"] == 2
            assert all(t.startswith("token_id:") for t in body["choices"][0]["logprobs"]["tokens"])
            stream = await client.post("/v1/completions", json={"prompt": [5, 6, 7], "max_tokens": 3,
                                                                 "ignore_eos": True, "stream": True})
            events = (await stream.text()).removesuffix("\n\n").split("\n\n")
            assert len(events) == 3 + 1  # one chunk per token though none has text, then [DONE]
            text = await error_of(await client.post("/v1/completions", json=COMPLETION), 400)
            assert text["param"] == "prompt" and "token ids" in text["message"]
            chat = await error_of(await client.post("/v1/chat/completions",
                                                    json={"messages": [{"role": "user", "content": "x"}]}), 400)
            assert chat["param"] == "messages"
    finally:
        engine.shutdown()
