"""Rotary position embeddings (HF's rotate-half layout) with default, linear and llama3 scaling."""

import math

import jax.numpy as jnp
import numpy as np


def inv_frequencies(head_dim: int, theta: float, rope_scaling: dict | None) -> np.ndarray:
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    inv_freq = inv_freq.astype(np.float32)
    if not rope_scaling:
        return inv_freq
    kind = rope_scaling.get("rope_type", rope_scaling.get("type"))
    if kind == "linear":
        return (inv_freq / np.float32(rope_scaling["factor"])).astype(np.float32)
    if kind == "llama3":
        return _llama3_scaling(inv_freq, rope_scaling)
    raise ValueError(f"unsupported rope_scaling type {kind!r} (supported: default, linear, llama3)")


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


def apply_rotary(x, positions, inv_freq):
    """x: [T, H, D], positions: [T] -> x rotated by each token's position."""
    freqs = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
    cos = jnp.cos(freqs)[:, None, :]
    sin = jnp.sin(freqs)[:, None, :]
    x32 = x.astype(jnp.float32)
    x1, x2 = jnp.split(x32, 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x.dtype)
