"""Our loader + model against HF transformers' logits (tests/golden, made by make_golden.py)."""

import os

import numpy as np
import pytest

from jax_engine.config import ConfigError
from jax_engine.sampling_params import SamplingParams
from tests.engine_utils import engine_for, forward_logits, new_request, run_to_completion

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
HF_MODELS = ["llama", "llama_linear", "qwen2", "qwen3", "mistral"]
MOE_MODELS = ["mixtral", "qwen3_moe", "qwen2_moe"]
TOLERANCE = 1e-4


def golden_prompts(npz):
    return [i for i in range(10) if f"prompt_{i}" in npz]


def check_logits_and_greedy(path: str, npz_path: str, tolerance: float, **engine_kw):
    engine = engine_for(path, **engine_kw)
    golden = np.load(npz_path)
    for i in golden_prompts(golden):
        prompt = golden[f"prompt_{i}"].tolist()
        greedy = golden[f"greedy_tokens_{i}"].tolist()
        req = new_request(f"p{i}")
        prefill = forward_logits(engine, prompt, 0, req)
        np.testing.assert_allclose(prefill, golden[f"prefill_logits_{i}"], atol=tolerance, rtol=0)
        tokens = list(prompt)
        for step, expected in enumerate(golden[f"decode_logits_{i}"][1:]):
            tokens.append(greedy[step])
            logits = forward_logits(engine, tokens, len(tokens) - 1, req)[0]
            np.testing.assert_allclose(logits, expected, atol=tolerance, rtol=0)
        engine.block_manager.free(req)
        engine.add_request(f"g{i}", prompt, SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True))
    generated = run_to_completion(engine)
    for i in golden_prompts(golden):
        assert generated[f"g{i}"] == golden[f"greedy_tokens_{i}"].tolist()


@pytest.mark.parametrize("name", HF_MODELS)
def test_hf_checkpoint_matches_transformers(name):
    check_logits_and_greedy(os.path.join(GOLDEN, name), os.path.join(GOLDEN, name, "golden.npz"), TOLERANCE)


@pytest.mark.parametrize("name", MOE_MODELS)
def test_moe_checkpoint_matches_transformers(name):
    check_logits_and_greedy(os.path.join(GOLDEN, name), os.path.join(GOLDEN, name, "golden.npz"), TOLERANCE)


# tests/golden/llama_yarn has plain RoPE over 64 positions; its goldens are transformers' with this YaRN scaling
# set over the config, for prompts up to 100 tokens (past the 64 it was "trained" on).
YARN = {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}}


def test_yarn_through_hf_overrides_matches_transformers():
    path = os.path.join(GOLDEN, "llama_yarn")
    check_logits_and_greedy(path, os.path.join(path, "golden.npz"), TOLERANCE, hf_overrides=YARN,
                            max_model_len=256, max_num_batched_tokens=128)


def test_max_model_len_beyond_the_model_is_refused_unless_rope_scaling_stretches_it():
    path = os.path.join(GOLDEN, "llama_yarn")
    with pytest.raises(ConfigError, match=r"--max-model-len 256 is more than this model allows: 64 .*--hf-overrides"):
        engine_for(path, max_model_len=256)
    with pytest.raises(ConfigError, match="allows: 256"):
        engine_for(path, max_model_len=257, hf_overrides=YARN)


def test_f32_gguf_matches_transformers():
    gguf = os.path.join(GOLDEN, "gguf")
    check_logits_and_greedy(os.path.join(gguf, "llama_f32.gguf"), os.path.join(gguf, "llama_f32.npz"), TOLERANCE)


@pytest.mark.parametrize("kind", ["f16", "q8_0", "q4_0", "q4_1"])
def test_quantized_gguf_matches_transformers_dequantized(kind):
    gguf = os.path.join(GOLDEN, "gguf")
    check_logits_and_greedy(os.path.join(gguf, f"llama_{kind}.gguf"), os.path.join(gguf, f"llama_{kind}.npz"),
                            TOLERANCE)
