"""How far a quantised model's next-token distributions are from the float model's, teacher-forced."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def compare(reference_logits: np.ndarray, logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Mean KL(reference || test), both perplexities on `targets` (the next tokens), top-1 agreement."""
    ref, test = log_softmax(reference_logits), log_softmax(logits)
    kl = float(np.mean(np.sum(np.exp(ref) * (ref - test), axis=-1)))
    rows = np.arange(len(targets))
    return {
        "kl": kl,
        "perplexity_reference": float(np.exp(-ref[rows, targets].mean())),
        "perplexity": float(np.exp(-test[rows, targets].mean())),
        "top1_agreement": float(np.mean(ref.argmax(-1) == test.argmax(-1))),
        "num_tokens": len(targets),
    }
