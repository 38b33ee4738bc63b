"""Mixture of experts: the layer op against a plain per-token loop over experts, the configs, dummy weights,
quantization, batch invariance, and `cortexstream serve` answering a chat through the OpenAI SDK as transformers
does (tests/golden/{mixtral,qwen3_moe,qwen2_moe}; their logits are checked in test_golden.py)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import openai
import pytest

from jax_engine.config import ConfigError, ModelConfig
from jax_engine.layers.moe import experts_mlp, grouped_matmul
from jax_engine.llm_engine import LLMEngine
from jax_engine.quantization import resolve_quantization
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for, small_engine_config
from tests.server_fixture import TEST_COMPILATION_CACHE, ServerProcess

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
MOE_MODELS = ["mixtral", "qwen3_moe", "qwen2_moe"]


def silu(x):
    return x / (1.0 + np.exp(-x))


def reference_experts_mlp(x, router_logits, gate_up, down, top_k, norm_topk_prob):
    """Token by token: softmax over the experts, the top k, each one's SwiGLU, summed by weight."""
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        probs = np.exp(router_logits[t] - router_logits[t].max())
        probs /= probs.sum()
        chosen = np.argsort(-probs, kind="stable")[:top_k]
        weights = probs[chosen] / (probs[chosen].sum() if norm_topk_prob else 1.0)
        for e, weight in zip(chosen, weights, strict=True):
            gate, up = np.split(x[t] @ gate_up[e], 2)
            out[t] += weight * ((silu(gate) * up) @ down[e])
    return out


IMPLS = ["tiled", "ragged_dot"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("group_sizes", [
    [5, 0, 17, 0, 1, 22],  # empty groups, groups across and within 16-row tiles, rows not a multiple of 16
    [0, 0, 45, 0, 0, 0],  # one group takes every row
    [1, 1, 1, 0, 0, 0],  # a decode step's few rows
])
def test_grouped_matmul_multiplies_each_row_by_its_groups_weight(impl, group_sizes):
    rng = np.random.default_rng(0)
    group_sizes = np.array(group_sizes, np.int32)
    x = rng.standard_normal((int(group_sizes.sum()), 8), np.float32)
    w = rng.standard_normal((6, 8, 3), np.float32)
    group_of_row = np.repeat(np.arange(6), group_sizes)
    expected = np.einsum("nk,nkm->nm", x, w[group_of_row])
    got = grouped_matmul(jnp.asarray(x), jnp.asarray(w), jnp.asarray(group_sizes), impl=impl)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("top_k,norm_topk_prob", [(2, True), (3, False), (1, True)])
def test_experts_mlp_matches_a_per_token_loop_over_experts(impl, top_k, norm_topk_prob):
    rng = np.random.default_rng(top_k)
    num_tokens, hidden, experts, inter = 16, 8, 6, 4
    x = rng.standard_normal((num_tokens, hidden), np.float32)
    router_logits = 2 * rng.standard_normal((num_tokens, experts), np.float32)
    router_logits[:, 5] -= 100.0  # expert 5 gets no token
    gate_up = rng.standard_normal((experts, hidden, 2 * inter), np.float32)
    down = rng.standard_normal((experts, inter, hidden), np.float32)
    expected = reference_experts_mlp(x, router_logits, gate_up, down, top_k, norm_topk_prob)
    got = experts_mlp(*(jnp.asarray(a) for a in (x, router_logits, gate_up, down)), top_k, norm_topk_prob, impl=impl)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4, rtol=1e-4)


def golden_config(name: str) -> dict:
    with open(os.path.join(GOLDEN, name, "config.json")) as f:
        return json.load(f)


def test_configs_name_their_experts_in_each_spelling():
    mixtral = ModelConfig.from_hf_dict(golden_config("mixtral"))
    assert (mixtral.num_experts, mixtral.num_experts_per_tok, mixtral.moe_intermediate_size) == (8, 2, 32)
    assert mixtral.norm_topk_prob and not mixtral.shared_expert_intermediate_size
    qwen3 = ModelConfig.from_hf_dict(golden_config("qwen3_moe"))
    assert (qwen3.num_experts, qwen3.num_experts_per_tok, qwen3.norm_topk_prob, qwen3.qk_norm) == (16, 4, True, True)
    qwen2 = ModelConfig.from_hf_dict(golden_config("qwen2_moe"))
    assert (qwen2.shared_expert_intermediate_size, qwen2.norm_topk_prob, qwen2.attention_bias) == (48, False, True)


@pytest.mark.parametrize("change,message", [
    ({"mlp_only_layers": [0]}, "every layer is sparse"),
    ({"decoder_sparse_step": 2}, "every layer is sparse"),
    ({"num_experts_per_tok": 9}, "num_experts_per_tok 9 must be between 1 and the number of experts"),
])
def test_moe_configs_it_cannot_serve_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_hf_dict({**golden_config("qwen2_moe"), **change})


def test_quantization_auto_serves_moe_in_float_and_int8_is_refused():
    cfg = ModelConfig.from_hf_dict(golden_config("mixtral"))
    assert resolve_quantization("auto", True, "cpu", cfg) == "none"
    with pytest.raises(ValueError, match="not supported for MixtralForCausalLM"):
        resolve_quantization("int8", False, "cpu", cfg)


def test_dummy_load_format_builds_moe_shapes_from_a_config():
    engine = LLMEngine.from_config(small_engine_config(model=os.path.join(GOLDEN, "qwen2_moe"), load_format="dummy"))
    assert engine.model_config.shared_expert_intermediate_size == 48
    engine.add_request("d", [5, 6, 7, 8], SamplingParams(temperature=0.0, max_tokens=3, ignore_eos=True))
    tokens = []
    while engine.has_unfinished_requests():
        tokens += [t for out in engine.step() for t in out.new_token_ids]
    assert len(tokens) == 3 and all(0 <= t < 320 for t in tokens)


def logprobs_of(engine, requests: dict[str, list[int]], target: str) -> list[tuple]:
    params = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True, logprobs=5)
    for request_id, prompt in requests.items():
        engine.add_request(request_id, prompt, params)
    seen = []
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.request_id == target:
                seen += [(lp.token_id, lp.logprob, tuple(lp.top)) for lp in out.new_logprobs]
    return seen


def test_batch_invariant_moe_gives_the_same_logprobs_alone_and_in_a_batch():
    """Bit for bit: the target's tokens route with 15 others that take other experts and shift its rows."""
    engine = engine_for(os.path.join(GOLDEN, "mixtral"), batch_invariant=True, enable_prefix_caching=False)
    rng = np.random.default_rng(0)
    target = rng.integers(3, 320, 11).tolist()
    alone = logprobs_of(engine, {"t": target}, "t")
    others = {f"o{i}": rng.integers(3, 320, int(rng.integers(3, 20))).tolist() for i in range(15)}
    batched = logprobs_of(engine, {**others, "t": target}, "t")
    assert batched == alone


# small_engine_config's settings, so the server's steps are the programs test_golden.py compiled (and cached).
SERVER_ARGS = ("--dtype", "float32", "--quantization", "none", "--max-decode-slowdown", "0", "--max-model-len", "256",
               "--max-num-batched-tokens", "64", "--max-num-seqs", "16", "--kv-cache-memory", "0.02", "--no-warmup",
               "--compilation-cache-dir", TEST_COMPILATION_CACHE)


@pytest.fixture(scope="module", params=MOE_MODELS)
def moe_server(request):
    process = ServerProcess("--model", os.path.join(GOLDEN, request.param), "--served-model-name", request.param,
                            *SERVER_ARGS).start()
    yield request.param, process
    assert process.stop() == 0


def golden_token_bytes(golden) -> list[bytes]:
    data, counts = golden["chat_greedy_bytes"].tobytes(), golden["chat_greedy_byte_counts"].tolist()
    ends = np.cumsum(counts).tolist()
    return [data[end - count:end] for count, end in zip(counts, ends, strict=True)]


def test_serve_answers_a_chat_as_transformers_does(moe_server):
    """Token for token (each token's bytes, through logprobs: a random model's answer is bytes that form no
    UTF-8 text)."""
    name, server = moe_server
    golden = np.load(os.path.join(GOLDEN, name, "golden.npz"))
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "The capital of France is"}]  # make_golden.py's CHAT_MESSAGES
    chat = client.chat.completions.create(model=name, messages=messages, temperature=0, max_tokens=8, logprobs=True,
                                          extra_body={"ignore_eos": True})
    assert [bytes(item.bytes) for item in chat.choices[0].logprobs.content] == golden_token_bytes(golden)
    assert chat.choices[0].message.content == b"".join(golden_token_bytes(golden)).decode(errors="replace")
    assert chat.usage.prompt_tokens == len(golden["chat_prompt"]) and chat.usage.completion_tokens == 8
    assert chat.choices[0].finish_reason == "length"
