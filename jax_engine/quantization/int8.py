"""int8 (W8A8) weights for the CPU path: SmoothQuant smoothing, then per-output-channel int8.

Per-token activation quantisation is what makes the int8 dot fast, and what hurts: a few input channels of
each projection carry activations far larger than the rest, so one scale per token crushes the others.
SmoothQuant (Xiao et al., 2023) moves that range into the weights: input channel j is divided by
s_j = max|x_j|^alpha / max|W_j|^(1 - alpha) and the weight's row j multiplied by it, an identity in exact
arithmetic. The division is folded into whatever produces the input:
  qkv_proj      <- input_norm weight           gate_up_proj <- post_attention_norm weight
  o_proj        <- v columns of qkv_proj        down_proj    <- up columns of gate_up_proj
  lm_head       <- the final norm weight
max|x_j| comes from running the float model once over built-in English text at load. SmoothQuant alone leaves
a few channels whose activations still set each token's scale: those NUM_OUTLIERS channels per projection
(chosen on the same statistics) are multiplied in float beside the int8 dot, as LLM.int8() and QUIK do.
"""

from __future__ import annotations

import os

import numpy as np

from jax_engine.config import ModelConfig

SMOOTHING_ALPHA = 0.5
# Input channels per projection multiplied in float (those with the largest calibration activations), so the
# per-token int8 scale is set by the rest. On SmolLM2-135M (benchmarks/int8_quality.py, 2,041 tokens): none
# KL 0.019 / perplexity +1.1%; 16 KL 0.0083 / +0.38%; 32 KL 0.0072 / +0.18% (naive W8A8: 0.052 / +6.4%).
NUM_OUTLIERS = 16
CALIBRATION_TEXT = os.path.join(os.path.dirname(__file__), "calibration.txt")
LAYER_PROJECTIONS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


def quantize_per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """w: [..., K, M] float -> (int8 [..., K, M], float32 scales [..., M]) with one scale per output column."""
    scale = np.maximum(np.abs(w).max(axis=-2), 1e-12) / 127.0
    q = np.clip(np.rint(w / scale[..., None, :]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def smoothing_factors(act_max: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    """act_max: [..., K], w: [..., K, M] -> s: [..., K]."""
    w_max = np.abs(w).max(axis=-1)
    s = np.maximum(act_max, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)
    return np.clip(s, 1e-5, None).astype(np.float32)


def smooth(cfg: ModelConfig, weights: dict[str, np.ndarray], stats: dict[str, np.ndarray],
           alpha: float = SMOOTHING_ALPHA) -> dict[str, np.ndarray]:
    """Fold SmoothQuant factors into the float weights (a new dict; the model's function is unchanged)."""
    w = {k: np.array(v, np.float32) for k, v in weights.items()}
    _smooth_after_norm(w, "input_norm", "qkv_proj", smoothing_factors(stats["qkv_proj"], w["layers.qkv_proj"], alpha))
    _smooth_after_norm(w, "post_attention_norm", "gate_up_proj",
                       smoothing_factors(stats["gate_up_proj"], w["layers.gate_up_proj"], alpha))
    _smooth_o_proj(cfg, w, stats["o_proj"], alpha)
    _smooth_down_proj(cfg, w, stats["down_proj"], alpha)
    lm_head = w["lm_head"] if "lm_head" in w else w["embed_tokens"].T
    s = smoothing_factors(stats["lm_head"], lm_head, alpha)
    w["norm"] = w["norm"] / s
    w["lm_head"] = lm_head * s[:, None]  # untied from the embeddings, whose lookup stays as it was
    return w


def _smooth_after_norm(w, norm: str, proj: str, s: np.ndarray) -> None:
    w[f"layers.{norm}"] = w[f"layers.{norm}"] / s
    w[f"layers.{proj}"] = w[f"layers.{proj}"] * s[..., :, None]


def _smooth_o_proj(cfg: ModelConfig, w, act_max: np.ndarray, alpha: float) -> None:
    """o_proj's input channel (q head h, d) is v channel (kv head h // group, d): one factor per kv channel."""
    layers, hd = cfg.num_hidden_layers, cfg.head_dim
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    group = nq // nkv
    o = w["layers.o_proj"].reshape(layers, nkv, group, hd, -1)
    act = act_max.reshape(layers, nkv, group, hd).max(axis=2)
    w_max = np.abs(o).max(axis=(2, 4))
    s = (np.maximum(act, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)).clip(1e-5, None)
    w["layers.o_proj"] = (o * s[:, :, None, :, None]).reshape(w["layers.o_proj"].shape)
    v = slice((nq + nkv) * hd, (nq + 2 * nkv) * hd)
    w["layers.qkv_proj"][:, :, v] /= s.reshape(layers, 1, nkv * hd)
    if "layers.qkv_bias" in w:
        w["layers.qkv_bias"][:, v] /= s.reshape(layers, nkv * hd)


def _smooth_down_proj(cfg: ModelConfig, w, act_max: np.ndarray, alpha: float) -> None:
    s = smoothing_factors(act_max, w["layers.down_proj"], alpha)
    w["layers.down_proj"] = w["layers.down_proj"] * s[..., :, None]
    w["layers.gate_up_proj"][:, :, cfg.intermediate_size:] /= s[:, None, :]


def quantize(weights: dict[str, np.ndarray], projections=(*LAYER_PROJECTIONS, "lm_head"),
             stats: dict[str, np.ndarray] | None = None, num_outliers: int = 0) -> dict[str, np.ndarray]:
    """Replace each named layer projection by its int8 weight plus a `<name>_scale`; everything else stays
    float. With `num_outliers`, each layer projection's input channels with the largest activations (by the
    smoothed `stats`) are multiplied in float: `<name>_outlier_ids` [L, k] and `<name>_outlier_rows` [L, k, M]."""
    out = dict(weights)
    for name in projections:
        key = name if name == "lm_head" else f"layers.{name}"
        w = weights[key]
        if num_outliers:
            ids = np.sort(np.argsort(-stats[name], axis=-1)[..., :num_outliers], axis=-1).astype(np.int32)
            out[f"{key}_outlier_ids"] = ids
            out[f"{key}_outlier_rows"] = np.take_along_axis(w, ids[..., None], axis=-2)
            w = w.copy()
            np.put_along_axis(w, ids[..., None], 0.0, axis=-2)
        out[key], out[f"{key}_scale"] = quantize_per_channel(w)
    return out
