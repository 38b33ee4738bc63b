"""--quantization: which weights the engine runs in int8, and building them at load."""

from __future__ import annotations

import logging
import time

import jax.numpy as jnp
import numpy as np

from jax_engine.config import ModelConfig
from jax_engine.models.registry import model_class
from jax_engine.quantization.forward import sequence_forward
from jax_engine.quantization.int8 import CALIBRATION_TEXT, NUM_OUTLIERS, quantize, smooth

logger = logging.getLogger(__name__)

QUANTIZATION_CHOICES = ("auto", "none", "int8")
CALIBRATION_WINDOW = 512

__all__ = ["QUANTIZATION_CHOICES", "activation_stats", "calibration_token_ids", "int8_weights",
           "resolve_quantization", "sequence_forward", "with_lm_head"]


def resolve_quantization(choice: str, checkpoint_quantized: bool, backend: str, cfg: ModelConfig) -> str:
    """auto: int8 on CPU when the checkpoint is itself quantised (its author accepted the approximation) and
    the model's layout is one the smoothing knows (its class sets `int8_layout`)."""
    if choice not in QUANTIZATION_CHOICES:
        raise ValueError(f"quantization {choice!r}; expected one of {QUANTIZATION_CHOICES}")
    supported = getattr(model_class(cfg), "int8_layout", False)
    if choice == "auto":
        return "int8" if checkpoint_quantized and backend == "cpu" and supported else "none"
    if choice == "int8" and not supported:
        raise ValueError(f"--quantization int8 is not supported for {cfg.architecture}")
    return choice


def int8_weights(cfg: ModelConfig, weights: dict, tokenizer=None) -> dict[str, np.ndarray]:
    """Smooth (calibrated on built-in English text) and quantise every projection and the lm_head to int8."""
    start = time.perf_counter()
    weights = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    stats = activation_stats(cfg, weights, calibration_token_ids(tokenizer, cfg.vocab_size))
    quantized = quantize(with_lm_head(smooth(cfg, weights, stats)), stats=stats, num_outliers=NUM_OUTLIERS)
    logger.info("int8 weights (SmoothQuant-calibrated) built in %.1f s", time.perf_counter() - start)
    return quantized


def with_lm_head(weights: dict) -> dict:
    """The lm_head as its own weight: tied to the embeddings, it is quantised while the lookup stays float."""
    return weights if "lm_head" in weights else dict(weights, lm_head=weights["embed_tokens"].T)


def calibration_token_ids(tokenizer, vocab_size: int) -> list[int]:
    if tokenizer is None:  # dummy weights: any tokens will do
        return np.random.default_rng(0).integers(0, vocab_size, CALIBRATION_WINDOW).tolist()
    with open(CALIBRATION_TEXT, encoding="utf-8") as f:
        return tokenizer.encode(f.read())


def activation_stats(cfg: ModelConfig, weights: dict, token_ids: list[int]) -> dict[str, np.ndarray]:
    """Per input channel, the largest |activation| each projection sees over the calibration windows."""
    model = model_class(cfg)(cfg, {k: jnp.asarray(v) for k, v in weights.items()})
    stats: dict[str, np.ndarray] = {}
    windows = [token_ids[s:s + CALIBRATION_WINDOW] for s in range(0, len(token_ids), CALIBRATION_WINDOW)]
    for _, window_stats in sequence_forward(model, windows, observe=True):
        for name, value in window_stats.items():
            stats[name] = np.maximum(stats.get(name, 0.0), np.asarray(value))
    return stats
