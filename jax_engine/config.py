"""Model and engine configuration."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

SUPPORTED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None

    @classmethod
    def from_hf_dict(cls, d: dict, source: str = "config.json") -> ModelConfig:
        archs = d.get("architectures") or []
        arch = archs[0] if archs else "<missing>"
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ConfigError(
                f"{source}: architecture {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
        try:
            num_heads = int(d["num_attention_heads"])
            hidden = int(d["hidden_size"])
            sliding = d.get("sliding_window")
            if arch == "Qwen2ForCausalLM" and not d.get("use_sliding_window", False):
                sliding = None
            rope_params = d.get("rope_parameters") or {}
            rope_scaling = d.get("rope_scaling") or (rope_params or None)
            if rope_scaling is not None and rope_scaling.get("rope_type", rope_scaling.get("type")) == "default":
                rope_scaling = None
            return cls(
                architecture=arch,
                vocab_size=int(d["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(d["intermediate_size"]),
                num_hidden_layers=int(d["num_hidden_layers"]),
                num_attention_heads=num_heads,
                num_key_value_heads=int(d.get("num_key_value_heads") or num_heads),
                head_dim=int(d.get("head_dim") or hidden // num_heads),
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                rope_theta=float(d.get("rope_theta") or rope_params.get("rope_theta") or 10000.0),
                rope_scaling=rope_scaling,
                max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                attention_bias=arch == "Qwen2ForCausalLM" or bool(d.get("attention_bias", False)),
                qk_norm=arch == "Qwen3ForCausalLM",
                sliding_window=int(sliding) if sliding else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{source}: invalid or missing field: {e}") from None

    def replace(self, **kw) -> ModelConfig:
        return dataclasses.replace(self, **kw)


def default_cache_dir() -> str:
    return os.environ.get("CORTEXSTREAM_CACHE_DIR", os.path.expanduser("~/.cache/cortexstream"))


@dataclass
class EngineConfig:
    model: str | None = None
    dtype: str = "auto"  # auto: float32 on CPU, bfloat16 on GPU
    load_format: str = "auto"  # auto | dummy
    max_model_len: int | None = None
    block_size: int = 16
    kv_cache_memory: float | None = None  # GiB; None: a default per platform
    gpu_memory_utilization: float = 0.85
    max_num_seqs: int = 32
    max_num_batched_tokens: int = 512
    enable_prefix_caching: bool = True
    compilation_cache_dir: str | None = field(default_factory=lambda: os.path.join(default_cache_dir(), "jax"))
    seed: int = 0
    warmup: bool = True
    batch_invariant: bool = False  # fixed matmul and attention tiles: a row's result never depends on its batch
    max_decode_slowdown: float = 2.5  # cap prefill chunks so a step with decodes takes <= this x a decode step
    quantization: str = "auto"  # none | int8 | auto (int8 on CPU when the checkpoint itself is quantised)
