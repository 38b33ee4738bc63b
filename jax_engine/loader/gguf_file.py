"""GGUF files: the header (metadata and tensor names, read here for the loader and the tokenizer alike),
llama.cpp's tensor names, dequantization and Q/K row order undone."""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any

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


# GGUF value types -> struct format (scalars) and numpy dtype (arrays); 8 is string, 9 array.
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
          12: "<f8"}
_STRING, _ARRAY, _BOOL = 8, 9, 7
_U64 = struct.Struct("<Q")
FLOAT_TYPES = {int(GGMLQuantizationType.F32), int(GGMLQuantizationType.F16), int(GGMLQuantizationType.BF16)}


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF's order: fastest-varying dimension first
    ggml_type: int  # a GGMLQuantizationType


@dataclass(frozen=True)
class GGUFHeader:
    metadata: dict[str, Any]  # key -> value, as gguf's ReaderField.contents() gives it
    tensors: tuple[GGUFTensorInfo, ...]

    @property
    def tensor_names(self) -> set[str]:
        return {t.name for t in self.tensors}

    @property
    def quantized(self) -> bool:
        """Some weight matrix is stored in a quantised type (not F32/F16/BF16)."""
        return any(len(t.shape) > 1 and t.ggml_type not in FLOAT_TYPES for t in self.tensors)


def read_gguf_header(path: str | os.PathLike) -> GGUFHeader:
    """Metadata and tensor infos, parsed straight from the mapped file: gguf's GGUFReader takes seconds over
    a 49k-token vocabulary (a numpy view per string), this takes tens of milliseconds."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_header(buf, str(path))
    except FileNotFoundError:
        raise LoadError(f"{path}: file not found") from None
    except (OSError, ValueError) as e:
        raise LoadError(f"{path}: cannot read GGUF file ({e})") from None
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise LoadError(f"{path}: corrupt GGUF header ({e})") from None


def _parse_header(buf, source: str) -> GGUFHeader:
    magic = buf[:4]
    if magic != b"GGUF":
        raise ValueError(f"not a GGUF file (magic {magic!r})")
    (version,) = struct.unpack_from("<I", buf, 4)
    if version < 2:
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    pos = 24
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key, pos = _read_string(buf, pos)
        (value_type,) = struct.unpack_from("<I", buf, pos)
        metadata[key], pos = _read_value(buf, pos + 4, value_type)
    tensors = []
    for _ in range(n_tensors):
        name, pos = _read_string(buf, pos)
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        shape = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
        (ggml_type,) = struct.unpack_from("<I", buf, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 4 + 8  # dims, type, data offset
        tensors.append(GGUFTensorInfo(name, shape, ggml_type))
    return GGUFHeader(metadata, tuple(tensors))


def _read_string(buf, pos: int) -> tuple[str, int]:
    (n,) = _U64.unpack_from(buf, pos)
    end = pos + 8 + n
    return buf[pos + 8 : end].decode("utf-8"), end


def _read_value(buf, pos: int, value_type: int) -> tuple[Any, int]:
    if value_type == _STRING:
        return _read_string(buf, pos)
    if value_type in _SCALAR:
        fmt = _SCALAR[value_type]
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if value_type != _ARRAY:
        raise ValueError(f"unknown GGUF value type {value_type}")
    item_type, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if item_type in _NUMPY:
        dtype = np.dtype(_NUMPY[item_type])
        items = np.frombuffer(buf, dtype=dtype, count=count, offset=pos)
        values = items.astype(bool).tolist() if item_type == _BOOL else items.tolist()
        return values, pos + count * dtype.itemsize
    if item_type == _STRING:
        return _read_string_array(buf, pos, count)
    values = []
    for _ in range(count):
        value, pos = _read_value(buf, pos, item_type)
        values.append(value)
    return values, pos


def _read_string_array(buf, pos: int, count: int) -> tuple[list[str], int]:
    unpack = _U64.unpack_from
    values = []
    for _ in range(count):
        (n,) = unpack(buf, pos)
        pos += 8
        values.append(buf[pos : pos + n].decode("utf-8", errors="replace"))
        pos += n
    return values, pos


def open_gguf(path: str) -> GGUFReader:
    """gguf's reader, for the tensors."""
    try:
        return GGUFReader(path)
    except FileNotFoundError:
        raise LoadError(f"{path}: file not found") from None
    except Exception as e:  # the reader raises ValueError, IndexError, ... on bad headers and short files
        raise LoadError(f"{path}: corrupt or truncated GGUF file ({type(e).__name__}: {e})") from None


def gguf_config(header: GGUFHeader, path: str) -> ModelConfig:
    metadata = header.metadata
    arch = metadata.get("general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise LoadError(f"{path}: GGUF architecture {arch!r} is not supported; supported: "
                        f"{', '.join(GGUF_ARCHITECTURES)}")

    def get(key, default=None):
        value = metadata.get(f"{arch}.{key}", default)
        if value is None:
            raise LoadError(f"{path}: missing GGUF metadata {arch}.{key}")
        return value

    num_heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab = int(get("vocab_size", len(tokens) if tokens is not None else None))
    rope_scaling = None
    if metadata.get(f"{arch}.rope.scaling.type") == "linear":
        rope_scaling = {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}
    names = header.tensor_names
    sliding = metadata.get(f"{arch}.attention.sliding_window")
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


def load_gguf_weights(cfg: ModelConfig, header: GGUFHeader, path: str) -> dict[str, np.ndarray]:
    tensors = {t.name: t for t in open_gguf(path).tensors}
    permuted = header.metadata.get("general.architecture") in ("llama", "mistral")
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
