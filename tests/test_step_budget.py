"""Prefill chunks sized from measured step times so running streams keep moving."""

from jax_engine.sampling_params import SamplingParams
from jax_engine.step_budget import StepBudget
from tests.engine_utils import engine_for

BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def budget_with(times: dict[int, float], slowdown=2.5) -> StepBudget:
    b = StepBudget(BUCKETS, 512, slowdown)
    for tokens, seconds in times.items():
        b.record(tokens, seconds)
    return b


def test_nothing_decoding_or_nothing_measured_means_the_whole_budget():
    assert budget_with({}).token_budget(3) == 512
    assert budget_with({4: 0.01}).token_budget(0) == 512
    assert budget_with({4: 0.01}, slowdown=0).token_budget(3) == 512


def test_largest_bucket_predicted_within_the_slowdown():
    b = budget_with({4: 0.010, 16: 0.012, 32: 0.020, 64: 0.024, 128: 0.060})
    assert b.token_budget(3) == 64  # 0.024 <= 2.5 x 0.010 < 0.060
    assert b.token_budget(100) == 256  # 2.5 x 0.060 admits 256 (extrapolated 0.12), not 512 (0.24)


def test_unseen_buckets_are_extrapolated_linearly_from_below():
    b = budget_with({2: 0.01, 8: 0.012})
    assert b.predict(32) == 0.012 * 4
    assert b.token_budget(2) == 16  # 16 -> 0.024 fits 0.025, 32 -> 0.048 does not


def test_at_least_one_prefill_token_per_step():
    b = budget_with({4: 0.010, 8: 0.1})
    assert b.token_budget(4) == 8


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
