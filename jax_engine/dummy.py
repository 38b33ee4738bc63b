"""Built-in model shapes for --load-format dummy (random weights, no checkpoint)."""

from __future__ import annotations

import os

from jax_engine.config import ModelConfig
from jax_engine.loader.errors import LoadError
from jax_engine.loader.hf import load_hf_config

_LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}

BUILTIN_SHAPES = {
    "llama-3-8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5,
                       rope_theta=500000.0, max_position_embeddings=8192),
    "llama-3.2-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=64, rms_norm_eps=1e-5,
                         rope_theta=500000.0, rope_scaling={**_LLAMA3_ROPE, "factor": 32.0},
                         max_position_embeddings=131072, tie_word_embeddings=True),
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
                         rope_theta=100000.0, max_position_embeddings=8192, tie_word_embeddings=True),
}


def dummy_config(name_or_path: str) -> ModelConfig:
    if name_or_path in BUILTIN_SHAPES:
        return ModelConfig(architecture="LlamaForCausalLM", **BUILTIN_SHAPES[name_or_path])
    if os.path.isdir(name_or_path):
        return load_hf_config(name_or_path)
    if os.path.isfile(name_or_path) and name_or_path.endswith(".json"):
        return load_hf_config(os.path.dirname(os.path.abspath(name_or_path)))
    raise LoadError(f"{name_or_path}: not a built-in shape ({', '.join(BUILTIN_SHAPES)}) nor a config.json "
                    "or checkpoint directory")
