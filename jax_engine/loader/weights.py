"""Assemble per-layer HF-layout tensors into the model's stacked, fused weights."""

from __future__ import annotations

import numpy as np

from jax_engine.config import ModelConfig
from jax_engine.loader.errors import LoadError
from jax_engine.models.registry import model_param_shapes


def fuse_layer(cfg: ModelConfig, get) -> dict[str, np.ndarray]:
    """`get(name)` returns an HF-named layer tensor ("self_attn.q_proj.weight", ...) as [out, in]."""
    w = {
        "input_norm": get("input_layernorm.weight"),
        "qkv_proj": np.concatenate([get(f"self_attn.{p}_proj.weight") for p in "qkv"], axis=0).T,
        "o_proj": get("self_attn.o_proj.weight").T,
        "post_attention_norm": get("post_attention_layernorm.weight"),
    }
    if cfg.num_experts:
        w.update(fuse_experts(cfg, get))
    else:
        w["gate_up_proj"] = np.concatenate([get("mlp.gate_proj.weight"), get("mlp.up_proj.weight")], axis=0).T
        w["down_proj"] = get("mlp.down_proj.weight").T
    if cfg.attention_bias:
        w["qkv_bias"] = np.concatenate([get(f"self_attn.{p}_proj.bias") for p in "qkv"], axis=0)
    if cfg.qk_norm:
        w["q_norm"] = get("self_attn.q_norm.weight")
        w["k_norm"] = get("self_attn.k_norm.weight")
    return w


# HF's names of a sparse MLP block and of each expert's gate, up and down projections.
EXPERT_NAMES = {"MixtralForCausalLM": ("block_sparse_moe", "w1", "w3", "w2")}
QWEN_EXPERT_NAMES = ("mlp", "gate_proj", "up_proj", "down_proj")


def fuse_experts(cfg: ModelConfig, get) -> dict[str, np.ndarray]:
    """One layer's router, experts stacked on a leading [E] and (Qwen2-MoE) shared expert, from HF's names."""
    block, gate, up, down = EXPERT_NAMES.get(cfg.architecture, QWEN_EXPERT_NAMES)
    experts = [f"{block}.experts.{e}" for e in range(cfg.num_experts)]
    w = {
        "router": get(f"{block}.gate.weight").T,
        "experts_gate_up_proj": np.stack([np.concatenate([get(f"{x}.{gate}.weight"), get(f"{x}.{up}.weight")]).T
                                          for x in experts]),
        "experts_down_proj": np.stack([get(f"{x}.{down}.weight").T for x in experts]),
    }
    if cfg.shared_expert_intermediate_size:
        shared = f"{block}.shared_expert"
        w["shared_expert_gate_up_proj"] = np.concatenate([get(f"{shared}.gate_proj.weight"),
                                                          get(f"{shared}.up_proj.weight")]).T
        w["shared_expert_down_proj"] = get(f"{shared}.down_proj.weight").T
        w["shared_expert_gate"] = get(f"{block}.shared_expert_gate.weight").T
    return w


def stack_layers(cfg: ModelConfig, layers: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"layers.{name}": np.stack([layer[name] for layer in layers]) for name in layers[0]}


def check_shapes(cfg: ModelConfig, weights: dict[str, np.ndarray], source: str) -> None:
    for name, shape in model_param_shapes(cfg).items():
        if name not in weights:
            raise LoadError(f"{source}: missing weight {name!r}")
        if tuple(weights[name].shape) != shape:
            raise LoadError(
                f"{source}: weight {name!r} has shape {tuple(weights[name].shape)}, expected {shape} from the config")
