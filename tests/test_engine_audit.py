"""Engine behaviours found by auditing the tests: prompt logprobs across a preemption, failures after the model
step, and seeded samples that must differ across choices and requests (the tiny llama, driven directly)."""

import dataclasses

import pytest

from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for, run_to_completion

PROMPT = list(range(5, 45))  # 40 tokens: a prefill in several chunks of the 16-token budget


def prompt_logprobs(engine, request_id: str) -> list:
    result = []
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.request_id == request_id and out.prompt_logprobs is not None:
                result = out.prompt_logprobs
    return result


def test_prompt_logprobs_survive_a_preemption_in_the_middle_of_a_chunked_prefill(tiny_llama_path):
    engine = engine_for(tiny_llama_path, max_num_batched_tokens=16, max_num_seqs=4)
    params = SamplingParams(max_tokens=2, temperature=0, prompt_logprobs=1)
    engine.add_request("whole", PROMPT, params)
    expected = prompt_logprobs(engine, "whole")
    assert len(expected) == len(PROMPT)

    engine.add_request("cut", PROMPT, params)
    engine.step()  # the first 16-token chunk
    request = engine.output_processor.states["cut"].request
    assert 0 < request.num_computed_tokens < len(PROMPT)
    engine.scheduler.preempt(request)
    engine.add_request("first", [7, 8, 9, 10, 11, 12], SamplingParams(max_tokens=3, temperature=0, priority=-1))
    got = prompt_logprobs(engine, "cut")  # the recompute's chunks no longer start where the list ends
    assert len(got) == len(expected)
    for a, b in zip(got[1:], expected[1:], strict=True):
        assert a.token_id == b.token_id and a.logprob == pytest.approx(b.logprob, abs=1e-5)


def test_a_failure_after_the_model_step_fails_that_request_alone(tiny_llama_path):
    engine = engine_for(tiny_llama_path)
    params = SamplingParams(max_tokens=4, temperature=0)
    engine.add_request("healthy", [5, 6, 7], params)
    engine.add_request("doomed", [5, 6, 7], params)

    def explode(ids):
        raise RuntimeError("detokenizer bug")

    engine.output_processor.states["doomed"].detokenizer.step = explode
    outputs = [out for _ in range(8) if engine.has_unfinished_requests() for out in engine.step()]
    doomed = [o for o in outputs if o.request_id == "doomed"]
    assert [(o.finish_reason, o.error) for o in doomed] == [("error", "RuntimeError: detokenizer bug")]
    healthy = [o for o in outputs if o.request_id == "healthy"]
    assert healthy[-1].finish_reason == "length" and sum(len(o.new_token_ids) for o in healthy) == 4
    assert not engine.has_unfinished_requests() and engine.block_manager.usage == 0


def sample_choices(engine, request_id: str, seed: int, n: int) -> list[list[int]]:
    engine.add_request(request_id, [5, 6, 7, 8], SamplingParams(max_tokens=8, temperature=1.0, seed=seed, n=n))
    tokens = run_to_completion(engine)
    return [tokens[request_id if i == 0 else f"{request_id}#{i}"] for i in range(n)]


def test_seeded_choices_differ_and_never_replay_a_neighbouring_seed(tiny_llama_path):
    engine = engine_for(tiny_llama_path)
    five = sample_choices(engine, "five", seed=5, n=3)
    assert len({tuple(c) for c in five}) == 3
    assert sample_choices(engine, "five-again", seed=5, n=3) == five
    six = sample_choices(engine, "six", seed=6, n=3)
    assert not {tuple(c) for c in five} & {tuple(c) for c in six}
    assert sample_choices(engine, "one", seed=5, n=1) == five[:1]  # choice 0 is the request's own seed


def generate_text(engine, request_id: str, params: SamplingParams) -> tuple[list[str], str | None, object]:
    engine.add_request(request_id, engine.tokenizer.encode("The capital of France is"), params)
    pieces, last = [], None
    while engine.has_unfinished_requests():
        for out in engine.step():
            pieces.append(out.new_text)
            last = out
    return pieces, last.finish_reason, last.stop_reason


def test_a_stop_string_spanning_a_token_boundary_cuts_the_text_before_it(smollm2_engine):
    params = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    pieces, _, _ = generate_text(smollm2_engine, "free", params)
    k = next(i for i in range(1, len(pieces)) if len(pieces[i - 1]) >= 2 and len(pieces[i]) >= 2)
    stop = pieces[k - 1][-2:] + pieces[k][:2]
    whole = "".join(pieces)
    cut, finish, reason = generate_text(smollm2_engine, "stopped", dataclasses.replace(params, stop=[stop]))
    assert (finish, reason) == ("stop", stop)
    assert "".join(cut) == whole[:whole.index(stop)]
