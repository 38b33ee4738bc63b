"""Prefill chunks sized from measured step times so running streams keep moving."""

from jax_engine.sampling_params import SamplingParams
from jax_engine.step_budget import StepBudget
from tests.engine_utils import engine_for

BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def budget_with(times: dict[int, float], slowdown=2.5, max_tokens=64) -> StepBudget:
    b = StepBudget(BUCKETS, max_tokens, slowdown)
    for tokens, seconds in times.items():
        b.record(tokens, seconds)
    return b


def test_nothing_decoding_or_nothing_measured_means_the_whole_budget():
    assert budget_with({}).token_budget(3) == 64
    assert budget_with({4: 0.01}).token_budget(0) == 64
    assert budget_with({4: 0.01}, slowdown=0).token_budget(3) == 64


def test_largest_bucket_measured_within_the_slowdown():
    b = budget_with({4: 0.010, 16: 0.012, 32: 0.024, 64: 0.030}, max_tokens=128)
    assert b.token_budget(3) == 32  # 0.024 <= 2.5 x 0.010 < 0.030
    assert b.token_budget(60) == 128  # 2.5 x 0.030 admits 128 (on the line: ~0.054)


def test_unseen_buckets_follow_a_line_through_the_measured_ones():
    b = budget_with({2: 0.010, 8: 0.012})
    assert abs(b.predict(32) - 0.020) < 1e-9  # 9.33 ms fixed + 1/3 ms per token
    assert b.token_budget(2) == 32  # 32 -> 0.020 fits 2.5 x 0.010, 64 -> 0.030 does not
    assert budget_with({8: 0.02, 16: 0.01}).predict(32) >= 0.02  # never below what a smaller step took
    assert budget_with({8: 0.01}).predict(32) == 0.04  # one bucket seen: proportional


def test_a_long_prompt_always_makes_headway():
    b = budget_with({4: 0.010, 8: 0.1, 64: 1.0}, max_tokens=512)
    assert b.token_budget(4) == 64  # 1/8 of the budget however slow
    assert budget_with({16: 0.010, 32: 0.1}).token_budget(16) == 32  # at least one prefill token


def test_moving_average_follows_the_measurements():
    b = budget_with({16: 0.010})
    b.record(16, 0.020)
    assert 0.010 < b.predict(16) < 0.020


def test_engine_chunks_a_long_prompt_while_a_stream_decodes(tiny_llama_path):
    engine = engine_for(tiny_llama_path, max_model_len=256, max_num_batched_tokens=64, max_decode_slowdown=2.5)
    for n in BUCKETS[:7]:
        engine.step_budget.record(n, 0.001 * (1 if n <= 8 else n / 8))  # 8 tokens: 1 ms; 64 tokens: 8 ms
    engine.step_budget.record = lambda *_: None  # keep these timings
    engine.add_request("stream", [1, 2, 3], SamplingParams(max_tokens=50, ignore_eos=True))
    engine.step()
    engine.add_request("long", list(range(5, 205)), SamplingParams(max_tokens=1))
    out = engine.scheduler.schedule()  # 1 decode: 1 ms; 16 tokens: 2 ms <= 2.5 ms < 32 tokens: 4 ms
    assert {s.request.request_id: s.num_new_tokens for s in out.scheduled} == {"stream": 1, "long": 15}
