"""Rotary position embeddings (HF's rotate-half layout) with default, linear, llama3, YaRN and LongRoPE
scaling, over the whole head or its first dimensions (partial rotary).

`rope_parameters` gives the inverse frequencies and the attention factor: YaRN and LongRoPE scale cos and sin
by it (so q·k by its square, as transformers and vLLM do); every other kind leaves them at 1.
"""

import math

import jax.numpy as jnp
import numpy as np


def rope_type(rope_scaling: dict | None) -> str:
    if not rope_scaling:
        return "default"
    return rope_scaling.get("rope_type", rope_scaling.get("type", "default"))


def rope_parameters(head_dim: int, theta: float, rope_scaling: dict | None) -> tuple[np.ndarray, float]:
    """(inverse frequencies [head_dim // 2], attention factor)."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    inv_freq = inv_freq.astype(np.float32)
    kind = rope_type(rope_scaling)
    if kind == "default":
        return inv_freq, 1.0
    if kind == "linear":
        return (inv_freq / np.float32(rope_scaling["factor"])).astype(np.float32), 1.0
    if kind == "llama3":
        return _llama3_scaling(inv_freq, rope_scaling), 1.0
    if kind == "yarn":
        return _yarn_scaling(inv_freq, head_dim, theta, rope_scaling)
    if kind == "longrope":
        return _longrope_scaling(inv_freq, rope_scaling)
    raise ValueError(f"unsupported rope_scaling type {kind!r} (supported: default, linear, llama3, yarn, longrope)")


def _longrope_scaling(inv_freq: np.ndarray, s: dict) -> tuple[np.ndarray, float]:
    """LongRoPE (Phi-3, arXiv 2402.13753): a searched stretch per frequency, one set for contexts within the
    original length and one beyond it (`long_context`, set from the served context by the config)."""
    factors = np.asarray(s["long_factor"] if s.get("long_context") else s["short_factor"], np.float32)
    if factors.shape != inv_freq.shape:
        raise ValueError(f"longrope factors have {factors.size} values; the rotary dimensions need {inv_freq.size}")
    factor = float(s["factor"])
    attention_factor = s.get("attention_factor")
    if attention_factor is None:
        original = s["original_max_position_embeddings"]
        attention_factor = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
    return (inv_freq / factors).astype(np.float32), float(attention_factor)


def _llama3_scaling(inv_freq: np.ndarray, s: dict) -> np.ndarray:
    factor = s["factor"]
    low_freq_wavelen = s["original_max_position_embeddings"] / s.get("low_freq_factor", 1.0)
    high_freq_wavelen = s["original_max_position_embeddings"] / s.get("high_freq_factor", 4.0)
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (s["original_max_position_embeddings"] / wavelen - s.get("low_freq_factor", 1.0)) / (
        s.get("high_freq_factor", 4.0) - s.get("low_freq_factor", 1.0))
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def _yarn_scaling(inv_freq: np.ndarray, head_dim: int, theta: float, s: dict) -> tuple[np.ndarray, float]:
    """YaRN (arXiv 2309.00071): dimensions that turn many times within the original context keep their
    frequency, those that turn less than once are interpolated by `factor`, with a linear ramp between."""
    factor = float(s["factor"])
    original = s["original_max_position_embeddings"]
    low = _correction_dim(s.get("beta_fast") or 32, head_dim, theta, original)
    high = _correction_dim(s.get("beta_slow") or 1, head_dim, theta, original)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # no empty ramp
    ramp = np.clip((np.arange(head_dim // 2, dtype=np.float32) - low) / (high - low), 0, 1).astype(np.float32)
    keep = 1 - ramp  # 1: extrapolate (the original frequency), 0: interpolate
    interpolated = (inv_freq / np.float32(factor)).astype(np.float32)
    return (interpolated * (1 - keep) + inv_freq * keep).astype(np.float32), _yarn_attention_factor(s, factor)


def _correction_dim(num_rotations: float, head_dim: int, theta: float, max_positions: int) -> float:
    """The dimension whose frequency turns `num_rotations` times over `max_positions`."""
    return (head_dim * math.log(max_positions / (num_rotations * 2 * math.pi))) / (2 * math.log(theta))


def _yarn_attention_factor(s: dict, factor: float) -> float:
    if s.get("attention_factor") is not None:
        return float(s["attention_factor"])
    mscale, mscale_all_dim = s.get("mscale"), s.get("mscale_all_dim")
    if mscale and mscale_all_dim:
        return _mscale(factor, mscale) / _mscale(factor, mscale_all_dim)
    return _mscale(factor)


def _mscale(factor: float, mscale: float = 1.0) -> float:
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def apply_rotary(x, positions, inv_freq, attention_factor: float = 1.0):
    """x: [T, H, D], positions: [T], inv_freq: [R // 2] -> x's first R dimensions rotated by each token's
    position (and scaled by attention_factor); the other D - R pass through (partial rotary)."""
    freqs = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
    cos = jnp.cos(freqs)[:, None, :]
    sin = jnp.sin(freqs)[:, None, :]
    if attention_factor != 1.0:
        cos, sin = cos * attention_factor, sin * attention_factor
    x32 = x.astype(jnp.float32)
    rotary_dim = 2 * inv_freq.shape[-1]
    x1, x2 = jnp.split(x32[..., :rotary_dim], 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x32[..., rotary_dim:]], axis=-1)
    return rotated.astype(x.dtype)
