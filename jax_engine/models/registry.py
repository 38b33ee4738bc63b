"""HF architecture name -> the model class that runs it; each class knows its own weight shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_engine.config import SUPPORTED_ARCHITECTURES, ModelConfig
from jax_engine.models.llama import LlamaForCausalLM
from jax_engine.models.moe import MoeForCausalLM

MODEL_CLASSES: dict[str, type] = {
    "LlamaForCausalLM": LlamaForCausalLM,
    "MistralForCausalLM": LlamaForCausalLM,
    "Qwen2ForCausalLM": LlamaForCausalLM,
    "Qwen3ForCausalLM": LlamaForCausalLM,
    "Qwen3Model": LlamaForCausalLM,  # headless (embeddings only): the embedding stands in for the head
    "MixtralForCausalLM": MoeForCausalLM,
    "Qwen2MoeForCausalLM": MoeForCausalLM,
    "Qwen3MoeForCausalLM": MoeForCausalLM,
}
assert set(MODEL_CLASSES) == set(SUPPORTED_ARCHITECTURES)


def model_class(cfg: ModelConfig) -> type:
    return MODEL_CLASSES[cfg.architecture]


def model_param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    return model_class(cfg).param_shapes(cfg)


def random_weights(cfg: ModelConfig, dtype, seed: int = 0) -> dict[str, jax.Array]:
    """Random weights built on the device (vLLM's --load-format dummy): norms 1, the rest N(0, 0.02)."""
    shapes = model_param_shapes(cfg)
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    weights = {}
    for key, (name, shape) in zip(keys, shapes.items(), strict=True):
        if name.endswith("norm"):
            weights[name] = jnp.ones(shape, dtype)
        else:
            weights[name] = (jax.random.normal(key, shape, jnp.float32) * 0.02).astype(dtype)
    return weights
