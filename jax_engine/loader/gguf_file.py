"""GGUF files: llama.cpp's tensor names, dequantization and Q/K row order undone."""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize
from tqdm import tqdm

from jax_engine.config import ModelConfig
from jax_engine.loader.errors import LoadError
from jax_engine.loader.weights import check_shapes, fuse_layer, stack_layers

GGUF_ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                      "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
SUPPORTED_TYPES = {GGMLQuantizationType[n] for n in (
    "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K")}
HF_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


FLOAT_TYPES = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16}


def gguf_is_quantized(reader: GGUFReader) -> bool:
    """Whether any 2-D weight is stored in a quantised type."""
    return any(t.tensor_type not in FLOAT_TYPES for t in reader.tensors if len(t.shape) > 1)


def open_gguf(path: str) -> GGUFReader:
    try:
        return GGUFReader(path)
    except FileNotFoundError:
        raise LoadError(f"{path}: file not found") from None
    except Exception as e:  # the reader raises ValueError, IndexError, ... on bad headers and short files
        raise LoadError(f"{path}: corrupt or truncated GGUF file ({type(e).__name__}: {e})") from None


def field(reader: GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def gguf_config(reader: GGUFReader, path: str) -> ModelConfig:
    arch = field(reader, "general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise LoadError(f"{path}: GGUF architecture {arch!r} is not supported; supported: "
                        f"{', '.join(GGUF_ARCHITECTURES)}")

    def get(key, default=None):
        value = field(reader, f"{arch}.{key}", default)
        if value is None:
            raise LoadError(f"{path}: missing GGUF metadata {arch}.{key}")
        return value

    num_heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = int(get("vocab_size", len(tokens.data) if tokens is not None else None))
    rope_scaling = None
    if field(reader, f"{arch}.rope.scaling.type") == "linear":
        rope_scaling = {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}
    names = {t.name for t in reader.tensors}
    sliding = field(reader, f"{arch}.attention.sliding_window")
    return ModelConfig(
        architecture=GGUF_ARCHITECTURES[arch],
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=int(get("feed_forward_length")),
        num_hidden_layers=int(get("block_count")),
        num_attention_heads=num_heads,
        num_key_value_heads=int(get("attention.head_count_kv", num_heads)),
        head_dim=int(get("attention.key_length", hidden // num_heads)),
        rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=float(get("rope.freq_base", 10000.0)),
        rope_scaling=rope_scaling,
        max_position_embeddings=int(get("context_length", 2048)),
        tie_word_embeddings="output.weight" not in names,
        attention_bias="blk.0.attn_q.bias" in names,
        qk_norm="blk.0.attn_q_norm.weight" in names,
        sliding_window=int(sliding) if sliding else None,
    )


def tensor_to_numpy(t, path: str) -> np.ndarray:
    if t.tensor_type not in SUPPORTED_TYPES:
        raise LoadError(f"{path}: tensor {t.name} has unsupported type {t.tensor_type.name}")
    shape = tuple(int(n) for n in reversed(t.shape))
    try:
        data = dequantize(t.data, t.tensor_type)
        return np.asarray(data, dtype=np.float32).reshape(shape)
    except Exception as e:
        raise LoadError(f"{path}: cannot decode tensor {t.name} ({type(e).__name__}: {e})") from None


def unpermute_rows(w: np.ndarray, num_heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of each head's rotary halves (its converter's `permute`)."""
    out_dim = w.shape[0]
    return w.reshape(num_heads, out_dim // num_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_gguf_weights(cfg: ModelConfig, reader: GGUFReader, path: str) -> dict[str, np.ndarray]:
    tensors = {t.name: t for t in reader.tensors}
    permuted = field(reader, "general.architecture") in ("llama", "mistral")
    bar = tqdm(total=len(tensors), desc="Loading GGUF", unit="tensor", leave=False)

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise LoadError(f"{path}: GGUF has no tensor {name!r}")
        bar.update(1)
        return tensor_to_numpy(tensors[name], path)

    def layer(i: int) -> dict[str, np.ndarray]:
        hf = {}
        for gguf_name, hf_name in HF_LAYER_NAMES.items():
            if f"blk.{i}.{gguf_name}" in tensors:
                hf[hf_name] = get(f"blk.{i}.{gguf_name}")
        if permuted:
            hf["self_attn.q_proj.weight"] = unpermute_rows(hf["self_attn.q_proj.weight"], cfg.num_attention_heads)
            hf["self_attn.k_proj.weight"] = unpermute_rows(hf["self_attn.k_proj.weight"], cfg.num_key_value_heads)

        def by_name(n):
            if n not in hf:
                raise LoadError(f"{path}: GGUF layer {i} has no tensor for {n!r}")
            return hf[n]
        return fuse_layer(cfg, by_name)

    with bar:
        weights = {"embed_tokens": get("token_embd.weight"), "norm": get("output_norm.weight"),
                   **stack_layers(cfg, [layer(i) for i in range(cfg.num_hidden_layers)])}
        if not cfg.tie_word_embeddings:
            weights["lm_head"] = get("output.weight").T
    check_shapes(cfg, weights, path)
    return weights
