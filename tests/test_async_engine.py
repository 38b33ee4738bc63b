"""AsyncEngine: streaming outputs, abort, failures reaching callers, stop strings, prompt logprobs."""

import asyncio
import os
import time

import numpy as np
import pytest

from jax_engine.async_engine import AsyncEngine
from jax_engine.errors import ContextLengthExceeded, EngineError, RequestField, RequestValidationError
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture
def engine(tiny_llama_path):
    e = AsyncEngine(engine_for(tiny_llama_path))
    yield e
    e.shutdown()


async def collect(engine, rid, ids, params):
    outs = [o async for o in engine.generate(rid, ids, params)]
    return outs


async def test_stream_yields_deltas_and_one_finish(engine):
    outs = await collect(engine, "a", [5, 6, 7], SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True))
    assert sum(len(o.new_token_ids) for o in outs) == 6
    assert [o.finish_reason for o in outs] == [None] * 5 + ["length"]
    assert outs[0].prompt_token_ids == [5, 6, 7]


async def test_concurrent_requests_equal_sequential_runs(engine):
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    prompts = [[3 + i, 10 + i, 20 + i] for i in range(8)]
    sequential = [[t for o in await collect(engine, f"s{i}", p, params) for t in o.new_token_ids]
                  for i, p in enumerate(prompts)]
    results = await asyncio.gather(*(collect(engine, f"c{i}", p, params) for i, p in enumerate(prompts)))
    assert [[t for o in r for t in o.new_token_ids] for r in results] == sequential


async def test_abandoned_stream_aborts_and_frees_blocks(engine):
    core = engine.core
    gen = engine.generate("x", [5] * 40, SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True))
    await gen.__anext__()
    assert core.block_manager.num_free_blocks < core.block_manager.num_blocks
    await gen.aclose()
    for _ in range(100):
        if core.block_manager.num_free_blocks == core.block_manager.num_blocks and not core.num_running:
            break
        await asyncio.sleep(0.02)
    assert core.block_manager.num_free_blocks == core.block_manager.num_blocks


async def test_bad_request_raises_and_engine_keeps_serving(engine):
    with pytest.raises(RequestValidationError):
        await collect(engine, "bad", [], SamplingParams())
    outs = await collect(engine, "ok", [5, 6], SamplingParams(temperature=0.0, max_tokens=2))
    assert outs[-1].finished


async def test_failing_step_fails_its_requests_and_later_requests_still_run(engine):
    runner = engine.core.runner
    original = runner.execute
    runner.execute = lambda out: (_ for _ in ()).throw(RuntimeError("device fault"))
    with pytest.raises(EngineError, match="device fault"):
        await collect(engine, "doomed", [5, 6], SamplingParams(max_tokens=3))
    runner.execute = original
    outs = await collect(engine, "after", [5, 6], SamplingParams(temperature=0.0, max_tokens=2))
    assert outs[-1].finished
    assert engine.core.block_manager.num_free_blocks == engine.core.block_manager.num_blocks


async def test_dead_engine_thread_reaches_every_waiting_caller(engine):
    engine.core.step = lambda: (_ for _ in ()).throw(SystemError("thread crash"))
    with pytest.raises(EngineError):
        await asyncio.wait_for(collect(engine, "a", [5, 6], SamplingParams(max_tokens=3)), timeout=10)
    with pytest.raises(EngineError):
        await collect(engine, "b", [5, 6], SamplingParams(max_tokens=3))


async def test_stop_string_ends_generation_and_is_removed(engine):
    prompt = np.load(os.path.join(GOLDEN, "llama", "golden.npz"))["prompt_1"].tolist()
    params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
    full = "".join(o.new_text for o in await collect(engine, "full", prompt, params))
    cut = next(i for i in range(1, len(full) - 2) if full.find(full[i:i + 2]) == i)
    stop = full[cut:cut + 2]
    params = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True, stop=[stop])
    outs = await collect(engine, "stopped", prompt, params)
    assert "".join(o.new_text for o in outs) == full[:cut]
    assert outs[-1].finish_reason == "stop" and outs[-1].stop_reason == stop


async def test_prompt_logprobs_match_transformers(engine):
    golden = np.load(os.path.join(GOLDEN, "llama", "golden.npz"))
    prompt = golden["prompt_2"].tolist()
    logits = golden["prefill_logits_2"]
    ref = logits - logits.max(-1, keepdims=True)
    ref = ref - np.log(np.exp(ref).sum(-1, keepdims=True))
    outs = await collect(engine, "pl", prompt, SamplingParams(max_tokens=1, prompt_logprobs=3))
    pl = outs[0].prompt_logprobs
    assert pl[0] is None and len(pl) == len(prompt)
    for i in range(1, len(prompt)):
        assert pl[i].token_id == prompt[i]
        assert abs(pl[i].logprob - ref[i - 1, prompt[i]]) < 1e-4
        assert [t for t, _ in pl[i].top] == np.argsort(-ref[i - 1])[:3].tolist()


async def test_shutdown_refuses_new_requests_with_engine_shutdown(engine):
    from jax_engine.errors import EngineShutdown

    engine.shutdown()
    with pytest.raises(EngineShutdown):
        await collect(engine, "late", [5, 6], SamplingParams(max_tokens=2))


# ---- the EngineClient seam: synchronous admission, handles, timing, stats ----------------------------------------


async def test_add_request_refuses_synchronously_naming_the_field(engine):
    with pytest.raises(RequestValidationError) as refused:
        engine.add_request("bad", [5, 10**6], SamplingParams(max_tokens=2))
    assert (refused.value.field, refused.value.position) == (RequestField.PROMPT, 1)
    with pytest.raises(ContextLengthExceeded) as overflow:
        engine.add_request("long", [5] * 10, SamplingParams(max_tokens=engine.limits.max_model_len))
    assert (overflow.value.num_prompt_tokens, overflow.value.max_tokens) == (10, engine.limits.max_model_len)
    assert engine.stats().num_waiting == 0


async def test_each_output_carries_its_samples_timing_in_monotonic_ns(engine):
    before = time.monotonic_ns()
    handle = engine.add_request("t", [5, 6, 7], SamplingParams(temperature=0.0, max_tokens=3, ignore_eos=True))
    outs = [o async for o in handle]
    await handle.aclose()
    first, last = outs[0].timing, outs[-1].timing
    assert before <= handle.arrival_ns == first.arrival_ns <= first.first_scheduled_ns <= first.first_token_ns
    assert first.finished_ns == 0 and last.first_token_ns == first.first_token_ns
    assert [o.timing.last_token_ns for o in outs] == sorted({o.timing.last_token_ns for o in outs})
    assert last.last_token_ns <= last.finished_ns <= time.monotonic_ns()


async def test_closing_an_unfinished_handle_aborts_the_request(engine):
    handle = engine.add_request("h", [5] * 40, SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True))
    await handle.__anext__()
    assert engine.stats().num_running == 1
    await handle.aclose()
    for _ in range(200):
        stats = engine.stats()
        if stats.num_running == 0 and stats.kv_cache_usage == 0:
            break
        await asyncio.sleep(0.02)
    assert (stats.num_running, stats.num_waiting, stats.kv_cache_usage) == (0, 0, 0)
