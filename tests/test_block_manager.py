"""KV block accounting: random add / abort / step sequences never leak or double-count a block."""

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jax_engine.block_manager import BlockManager
from jax_engine.request import Request, RequestStatus
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for

BLOCK_BYTES = 2 * 2 * 16 * 2 * 16 * 4  # tiny llama: 2 layers, 2 kv heads, head_dim 16, f32


@pytest.fixture(scope="module")
def engine(tiny_llama_path):
    return engine_for(tiny_llama_path, kv_cache_memory=12 * BLOCK_BYTES / 2**30, max_num_batched_tokens=32,
                      max_model_len=128)


def check_invariants(engine):
    bm = engine.block_manager
    holders = Counter(b for r in engine.scheduler.running for b in r.block_table)
    assert all(not r.block_table for r in engine.scheduler.waiting)
    for block in bm.blocks:
        assert block.ref_count == holders.get(block.block_id, 0)
        assert (block.ref_count == 0) == (block.block_id in bm.free_block_ids)
    assert bm.num_free_blocks + len(holders) == bm.num_blocks
    for block_hash, block_id in bm.hash_to_block_id.items():
        assert bm.blocks[block_id].block_hash == block_hash


ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 70), st.integers(1, 12), st.integers(1, 2), st.integers(0, 3)),
    st.tuples(st.just("abort"), st.integers(0, 30)),
    st.tuples(st.just("step"), st.integers(1, 3)),
), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_random_add_abort_step_keeps_block_accounting_exact(engine, ops):
    live = []
    for op in ops:
        if op[0] == "add":
            _, length, max_tokens, n, prefix = op
            ids = [3 + (prefix * 31 + j * (prefix + 1)) % 300 for j in range(length)]  # shared prefixes
            rid = f"r{len(live)}-{id(op)}"
            engine.add_request(rid, ids, SamplingParams(n=n, temperature=1.0, max_tokens=max_tokens, seed=1))
            live.append(rid)
        elif op[0] == "abort" and live:
            engine.abort_request(live[op[1] % len(live)])
        else:
            for _ in range(op[1]):
                engine.step()
        check_invariants(engine)
    for rid in live:
        engine.abort_request(rid)
    check_invariants(engine)
    assert not engine.has_unfinished_requests()
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def test_prefix_blocks_are_reused_after_their_owner_finishes():
    bm = BlockManager(num_blocks=4, block_size=4)
    first = Request("a", list(range(10)), SamplingParams())
    assert bm.allocate_slots(first, 10)
    bm.cache_full_blocks(first, 10)
    owned = list(first.block_table)
    bm.free(first)
    second = Request("b", list(range(9)) + [99], SamplingParams())
    hits = bm.get_computed_blocks(second)
    assert hits == owned[:2]
    assert bm.allocate_slots(second, 2, hits)
    assert second.block_table[:2] == owned[:2]


def test_eviction_takes_least_recently_freed_blocks_first():
    bm = BlockManager(num_blocks=3, block_size=2)
    a, b = Request("a", [1, 2], SamplingParams()), Request("b", [3, 4], SamplingParams())
    for r in (a, b):
        assert bm.allocate_slots(r, 2)
        bm.cache_full_blocks(r, 2)
    b_blocks = list(b.block_table)
    bm.free(a)
    bm.free(b)
    c = Request("c", [5, 6, 7, 8], SamplingParams())
    assert bm.allocate_slots(c, 4)  # takes the never-used block, then a's (freed before b's)
    again_b = Request("b2", [3, 4, 9], SamplingParams())
    assert bm.get_computed_blocks(again_b) == b_blocks
    again_a = Request("a2", [1, 2, 9], SamplingParams())
    assert bm.get_computed_blocks(again_a) == []


def test_allocation_failure_changes_nothing():
    bm = BlockManager(num_blocks=2, block_size=4)
    r = Request("a", list(range(12)), SamplingParams())
    assert not bm.allocate_slots(r, 12)
    assert r.block_table == [] and bm.num_free_blocks == 2
    assert r.status is RequestStatus.WAITING


def test_token_slice_spans_prompt_and_output_without_copying_the_context():
    r = Request("s", [1, 2, 3], SamplingParams())
    r.output_token_ids = [4, 5]
    all_ids = [1, 2, 3, 4, 5]
    for start in range(6):
        for end in range(start, 6):
            assert r.token_slice(start, end) == all_ids[start:end]
