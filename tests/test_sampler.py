"""The batched sampler against plain numpy references."""

import numpy as np
import pytest

from jax_engine.model_runner import sampling_metadata
from jax_engine.request import Request
from jax_engine.sampler import gumbel_noise, sample
from jax_engine.sampling_params import SamplingParams

VOCAB = 64


def run(params_list, logits, outputs=None, prompts=None):
    reqs = []
    for i, p in enumerate(params_list):
        r = Request(str(i), (prompts or {}).get(i, [1, 2, 3]), p, seed=1234 + i, eos_token_ids=(0,))
        r.output_token_ids = list((outputs or {}).get(i, []))
        reqs.append((i, r))
    md, flags = sampling_metadata(reqs, len(params_list), VOCAB)
    ids, chosen, top_ids, top_lp = sample(np.asarray(logits, np.float32), md, flags)
    return np.asarray(ids), np.asarray(chosen), top_ids, top_lp


def random_logits(rows, seed=0):
    return np.random.default_rng(seed).normal(size=(rows, VOCAB)).astype(np.float32) * 3


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_greedy_is_argmax_and_logprobs_are_log_softmax():
    logits = random_logits(4)
    ids, chosen, top_ids, top_lp = run([SamplingParams(temperature=0.0, logprobs=5)] * 4, logits)
    assert ids.tolist() == logits.argmax(-1).tolist()
    ref = log_softmax(logits)
    np.testing.assert_allclose(chosen, ref[np.arange(4), ids], atol=1e-5)
    np.testing.assert_allclose(np.asarray(top_lp)[:, :5], -np.sort(-ref, -1)[:, :5], atol=1e-5)


def test_seeded_sampling_does_not_depend_on_batch_neighbours():
    logits = random_logits(8)
    p = SamplingParams(temperature=1.0, seed=5)
    together, *_ = run([p] * 8, logits)
    alone, *_ = run([p], logits[:1])
    assert alone[0] == together[0]
    shuffled, *_ = run([SamplingParams(temperature=0.0)] + [p] * 7, logits)
    assert shuffled[1:].tolist() == together[1:].tolist()


def test_sampling_follows_the_distribution():
    logits = np.log(np.array([[0.7, 0.2, 0.1] + [1e-9] * (VOCAB - 3)], np.float32))
    counts = np.zeros(VOCAB)
    for seed in range(400):
        r = Request("x", [1], SamplingParams(temperature=1.0), seed=seed)
        md, flags = sampling_metadata([(0, r)], 1, VOCAB)
        counts[int(np.asarray(sample(logits, md, flags)[0])[0])] += 1
    assert abs(counts[0] / 400 - 0.7) < 0.08 and abs(counts[1] / 400 - 0.2) < 0.07


def test_top_k_1_and_tiny_top_p_and_high_min_p_are_greedy():
    logits = random_logits(3, seed=1)
    params = [SamplingParams(temperature=1.5, top_k=1), SamplingParams(temperature=1.5, top_p=1e-6),
              SamplingParams(temperature=1.5, min_p=0.999)]
    ids, *_ = run(params, logits)
    assert ids.tolist() == logits.argmax(-1).tolist()


def test_top_k_keeps_samples_within_the_k_best():
    logits = random_logits(1, seed=2)
    best = set(np.argsort(-logits[0])[:3].tolist())
    for seed in range(30):
        r = Request("x", [1], SamplingParams(temperature=5.0, top_k=3), seed=seed)
        md, flags = sampling_metadata([(0, r)], 1, VOCAB)
        assert int(np.asarray(sample(logits, md, flags)[0])[0]) in best


def test_logit_bias_forces_a_token():
    logits = random_logits(2, seed=3)
    ids, *_ = run([SamplingParams(temperature=0.0, logit_bias={17: 100.0}),
                   SamplingParams(temperature=1.0, logit_bias={logits[1].argmax().item(): -100.0, 9: 100.0})], logits)
    assert ids.tolist() == [17, 9]


def test_min_tokens_bans_eos_until_reached():
    logits = np.zeros((2, VOCAB), np.float32)
    logits[:, 0] = 10.0  # eos (id 0) is the favourite
    ids, *_ = run([SamplingParams(temperature=0.0, min_tokens=3), SamplingParams(temperature=0.0, min_tokens=3)],
                  logits, outputs={1: [5, 5, 5]})
    assert ids[0] != 0 and ids[1] == 0


@pytest.mark.parametrize("kind", ["presence", "frequency", "repetition"])
def test_penalties_match_numpy_reference(kind):
    logits = random_logits(1, seed=4)
    prompt, output = [1, 2, 3], [4, 4, 5]
    kw = {"presence": dict(presence_penalty=1.5), "frequency": dict(frequency_penalty=0.7),
          "repetition": dict(repetition_penalty=1.8)}[kind]
    expected = logits[0].copy()
    counts = np.bincount(output, minlength=VOCAB)
    if kind == "presence":
        expected -= 1.5 * (counts > 0)
    elif kind == "frequency":
        expected -= 0.7 * counts
    else:
        seen = np.zeros(VOCAB, bool)
        seen[prompt + output] = True
        expected = np.where(seen, np.where(expected > 0, expected / 1.8, expected * 1.8), expected)
    ids, *_ = run([SamplingParams(temperature=0.0, **kw)], logits, outputs={0: output}, prompts={0: prompt})
    assert ids[0] == expected.argmax()
    # push the penalised logit to be the max before the penalty, so the penalty must flip the choice
    logits2 = logits.copy()
    logits2[0, 4] = logits[0].max() + 0.3
    exp2 = logits2[0].copy()
    if kind == "presence":
        exp2 -= 1.5 * (counts > 0)
    elif kind == "frequency":
        exp2 -= 0.7 * counts
    else:
        exp2 = np.where(seen, np.where(exp2 > 0, exp2 / 1.8, exp2 * 1.8), exp2)
    ids2, *_ = run([SamplingParams(temperature=0.0, **kw)], logits2, outputs={0: output}, prompts={0: prompt})
    assert ids2[0] == exp2.argmax() and ids2[0] != 4


def test_top_k_beyond_the_vocabulary_means_no_top_k():
    logits = random_logits(1, seed=6)
    ids, *_ = run([SamplingParams(temperature=0.0, top_k=2**40)], logits)
    assert ids[0] == logits.argmax()


# ---- temperature, top_p and min_p, exactly: the same Gumbel noise, then numpy -----------------------


def numpy_sample(logits, seeds, temperature, top_p=1.0, min_p=0.0):
    """Gumbel-max over temperature-scaled logits, with the nucleus (tokens whose probability mass before
    them is under top_p) and min_p (probability at least min_p times the best) applied first."""
    noise = np.asarray(gumbel_noise(np.asarray(seeds, np.uint32), np.zeros(len(seeds), np.int32), VOCAB))
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(log_softmax(scaled))
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(probs, order, -1)
    before = np.cumsum(sorted_probs, -1) - sorted_probs
    keep = np.zeros_like(probs, bool)
    np.put_along_axis(keep, order, before < top_p, -1)
    keep &= probs >= min_p * probs.max(-1, keepdims=True)
    return np.where(keep, scaled + noise, -np.inf).argmax(-1)


def run_seeded(params, logits, seeds):
    reqs = [(i, Request(str(i), [1, 2, 3], params, seed=s)) for i, s in enumerate(seeds)]
    md, flags = sampling_metadata(reqs, len(seeds), VOCAB)
    return np.asarray(sample(np.asarray(logits, np.float32), md, flags)[0])


SEEDS = list(range(100, 164))


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_scales_the_logits_exactly(temperature):
    logits = np.repeat(random_logits(1, seed=7), len(SEEDS), 0) / 3
    ids = run_seeded(SamplingParams(temperature=temperature), logits, SEEDS)
    assert ids.tolist() == numpy_sample(logits, SEEDS, temperature).tolist()
    assert ids.tolist() != numpy_sample(logits, SEEDS, 1.0).tolist()  # ignoring temperature would show


def test_top_p_keeps_the_token_that_crosses_the_mass():
    probs = np.array([0.5, 0.3, 0.2] + [1e-12] * (VOCAB - 3))
    logits = np.repeat(np.log(probs)[None].astype(np.float32), len(SEEDS), 0)
    ids = run_seeded(SamplingParams(temperature=1.0, top_p=0.6), logits, SEEDS)
    assert ids.tolist() == numpy_sample(logits, SEEDS, 1.0, top_p=0.6).tolist()
    assert set(ids.tolist()) == {0, 1}  # 0.5 before token 1 is under 0.6: it is in the nucleus; token 2 is not


@pytest.mark.parametrize("top_p, min_p", [(0.8, 0.0), (1.0, 0.15), (0.9, 0.05)])
def test_top_p_and_min_p_match_numpy_exactly(top_p, min_p):
    logits = np.repeat(random_logits(1, seed=8), len(SEEDS), 0) / 2
    params = SamplingParams(temperature=0.8, top_p=top_p, min_p=min_p)
    ids = run_seeded(params, logits, SEEDS)
    assert ids.tolist() == numpy_sample(logits, SEEDS, 0.8, top_p, min_p).tolist()
    assert len(set(ids.tolist())) > 1
