"""With --batch-invariant, a greedy request's tokens do not depend on what else shares its batches."""

import pytest

from jax_engine.loader import default_model_path
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for, run_to_completion

GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
PROMPT = "Write a short poem about the sea and the stars at night:"
OTHERS = [f"Question {i}: what is {i} times {i + 3}? Think step by step." for i in range(31)]


def alone(engine, ids):
    engine.add_request("target", ids, GREEDY)
    return run_to_completion(engine)["target"]


def among_others(engine, ids, others, stagger=False):
    for i, other in enumerate(others):
        engine.add_request(f"o{i}", engine.tokenizer.encode(other), SamplingParams(temperature=0.0, max_tokens=10))
        if stagger and i % 8 == 0:
            engine.step()
    engine.add_request("target", ids, GREEDY)
    return run_to_completion(engine)["target"]


@pytest.fixture(scope="module")
def invariant_engine():
    return engine_for(default_model_path(), max_model_len=512, max_num_batched_tokens=128, max_num_seqs=32,
                      kv_cache_memory=0.25, batch_invariant=True)


def test_same_tokens_alone_and_among_31_others(invariant_engine):
    ids = invariant_engine.tokenizer.encode(PROMPT)
    invariant_engine.block_manager.reset_prefix_cache()
    reference = alone(invariant_engine, ids)
    invariant_engine.block_manager.reset_prefix_cache()
    assert among_others(invariant_engine, ids, OTHERS) == reference
    assert among_others(invariant_engine, ids, OTHERS, stagger=True) == reference


def test_same_tokens_with_prefix_cache_hit(invariant_engine):
    ids = invariant_engine.tokenizer.encode(PROMPT * 3)
    invariant_engine.block_manager.reset_prefix_cache()
    first = alone(invariant_engine, ids)
    hits = invariant_engine.block_manager.num_hits
    second = alone(invariant_engine, ids)
    assert invariant_engine.block_manager.num_hits > hits
    assert second == first


def test_same_tokens_with_chunked_prefill():
    chunked = engine_for(default_model_path(), max_model_len=512, max_num_batched_tokens=16, max_num_seqs=32,
                         kv_cache_memory=0.1, enable_prefix_caching=False, batch_invariant=True)
    ids = chunked.tokenizer.encode(PROMPT * 3)
    assert len(ids) > 32
    reference = alone(chunked, ids)
    assert among_others(chunked, ids, OTHERS[:7]) == reference
