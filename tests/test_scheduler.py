"""Scheduling behaviour on a tiny real model: chunked prefill, mixed steps, preemption, priorities."""

import pytest

from jax_engine.errors import ContextLengthExceeded, RequestValidationError
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for, run_to_completion

GREEDY = SamplingParams(temperature=0.0, max_tokens=20, ignore_eos=True)


def prompt(i: int, n: int) -> list[int]:
    return [3 + (i * 7 + j * 13) % 300 for j in range(n)]


def test_long_prompt_is_prefilled_in_chunks_alongside_decodes(tiny_llama_path):
    engine = engine_for(tiny_llama_path, max_num_batched_tokens=16)
    engine.add_request("short", prompt(0, 4), GREEDY)
    engine.step()  # prefill of "short"
    engine.add_request("long", prompt(1, 40), GREEDY)
    out = engine.scheduler.schedule()
    sizes = {s.request.request_id: s.num_new_tokens for s in out.scheduled}
    assert sizes == {"short": 1, "long": 15}  # decode first, then a prefill chunk in the same step
    engine.runner.execute(out)
    engine.scheduler.update(out)
    assert engine.scheduler.running[1].num_computed_tokens == 15


def test_preemption_with_a_tiny_page_pool_still_finishes_everything_correctly(tiny_llama_path):
    prompts = [prompt(i, 20 + i) for i in range(6)]
    roomy = engine_for(tiny_llama_path)
    for i, p in enumerate(prompts):
        roomy.add_request(str(i), p, GREEDY)
    expected = run_to_completion(roomy)

    # 40 tokens per request at the end (3 blocks of 16); 8 blocks cannot hold 6 of them at once.
    block_bytes = 2 * 2 * 16 * 2 * 16 * 4
    tiny = engine_for(tiny_llama_path, kv_cache_memory=8 * block_bytes / 2**30)
    assert tiny.block_manager.num_blocks == 8
    for i, p in enumerate(prompts):
        tiny.add_request(str(i), p, GREEDY)
    assert run_to_completion(tiny) == expected
    assert tiny.scheduler.num_preemptions > 0
    assert tiny.block_manager.num_free_blocks == 8


def test_lower_priority_value_is_admitted_first(tiny_llama_path):
    engine = engine_for(tiny_llama_path, max_num_seqs=1)
    engine.add_request("late", prompt(0, 5), SamplingParams(temperature=0.0, max_tokens=2, priority=5))
    engine.add_request("urgent", prompt(1, 5), SamplingParams(temperature=0.0, max_tokens=2, priority=-1))
    finished = [o.request_id for o in iter_outputs(engine) if o.finished]
    assert finished == ["urgent", "late"]


def iter_outputs(engine):
    while engine.has_unfinished_requests():
        yield from engine.step()


def test_context_overflow_is_rejected_with_both_numbers(tiny_llama_path):
    engine = engine_for(tiny_llama_path, max_model_len=64)
    with pytest.raises(ContextLengthExceeded) as e:
        engine.add_request("x", prompt(0, 50), SamplingParams(max_tokens=30))
    assert "64" in str(e.value) and "80" in str(e.value)


@pytest.mark.parametrize("ids", [[], [5, 320], [-1]])
def test_bad_prompts_are_rejected_at_admission_and_the_engine_keeps_serving(tiny_llama_path, ids):
    engine = engine_for(tiny_llama_path)
    with pytest.raises(RequestValidationError):
        engine.add_request("bad", ids, GREEDY)
    engine.add_request("good", prompt(0, 5), SamplingParams(temperature=0.0, max_tokens=3))
    assert len(run_to_completion(engine)["good"]) == 3
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def test_n_samples_share_the_prompt_blocks(tiny_llama_path):
    engine = engine_for(tiny_llama_path)
    params = SamplingParams(n=3, temperature=1.0, seed=7, max_tokens=4, ignore_eos=True)
    engine.add_request("multi", prompt(2, 40), params)
    engine.step()
    engine.step()
    tables = [r.block_table for r in engine.scheduler.running]
    assert len(tables) == 3
    assert tables[0][:2] == tables[1][:2] == tables[2][:2]  # two full prompt blocks, shared
    out = run_to_completion(engine)
    assert sorted(out) == ["multi", "multi#1", "multi#2"]
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def test_dummy_load_format_builds_random_weights_from_a_config(tiny_llama_path):
    from jax_engine.llm_engine import LLMEngine
    from tests.engine_utils import small_engine_config

    engine = LLMEngine.from_config(small_engine_config(model=tiny_llama_path, load_format="dummy"))
    assert engine.tokenizer is None and engine.model_config.vocab_size == 320
    engine.add_request("d", prompt(0, 5), SamplingParams(temperature=0.0, max_tokens=3, ignore_eos=True))
    out = run_to_completion(engine)["d"]
    assert len(out) == 3 and all(0 <= t < 320 for t in out)


@pytest.mark.parametrize("field,value", [("repetition_penalty", 1e39), ("repetition_penalty", 0.0),
                                         ("temperature", float("nan"))])
def test_sampling_values_that_cannot_be_represented_are_rejected(tiny_llama_path, field, value):
    engine = engine_for(tiny_llama_path)
    with pytest.raises(RequestValidationError) as e:
        engine.add_request("x", prompt(0, 5), SamplingParams(**{field: value}))
    assert e.value.field.value == field
