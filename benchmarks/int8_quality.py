"""int8 (W8A8) quality against the float32 path, teacher-forced on public-domain English.

    python benchmarks/int8_quality.py [--model PATH] [--alpha 0.5 ...] [--float-projections down_proj ...]

Prints one JSON line per variant: KL(float32 || int8) per token, perplexity of both, top-1 agreement.
The text (tests/data/english_eval.txt) is not the calibration text (jax_engine/quantization/calibration.txt).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jax_engine.loader import load_checkpoint  # noqa: E402
from jax_engine.models.llama import LlamaForCausalLM  # noqa: E402
from jax_engine.quantization import activation_stats, calibration_token_ids, sequence_forward, with_lm_head  # noqa: E402
from jax_engine.quantization.int8 import LAYER_PROJECTIONS, NUM_OUTLIERS, quantize, smooth  # noqa: E402
from jax_engine.quantization.quality import compare  # noqa: E402

EVAL_TEXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data",
                         "english_eval.txt")
WINDOW = 512


def teacher_forced_logits(cfg, weights, token_ids, window=WINDOW) -> np.ndarray:
    """Logits predicting token i+1 from tokens[..i], over independent windows."""
    model = LlamaForCausalLM(cfg, {k: jnp.asarray(v) for k, v in weights.items()})
    windows = [token_ids[s:s + window] for s in range(0, len(token_ids) - 1, window)
               if len(token_ids[s:s + window]) > 1]
    return np.concatenate([np.asarray(logits)[:-1] for logits in sequence_forward(model, windows)])


def targets(token_ids, window=WINDOW) -> np.ndarray:
    return np.concatenate([token_ids[s + 1:s + window] for s in range(0, len(token_ids) - 1, window)
                           if len(token_ids[s:s + window]) > 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--alpha", type=float, nargs="+", default=[0.5])
    p.add_argument("--float-projections", nargs="*", default=[], choices=[*LAYER_PROJECTIONS, "lm_head"])
    p.add_argument("--no-smoothing", action="store_true", help="also report naive per-token W8A8")
    p.add_argument("--num-outliers", type=int, nargs="+", default=[NUM_OUTLIERS],
                   help="input channels per projection kept in float (largest calibration activations)")
    args = p.parse_args()
    ckpt = load_checkpoint(args.model)
    cfg, weights = ckpt.config, {k: np.asarray(v, np.float32) for k, v in ckpt.weights.items()}
    with open(EVAL_TEXT, encoding="utf-8") as f:
        ids = ckpt.tokenizer.encode(f.read())
    reference = teacher_forced_logits(cfg, weights, ids)
    goal = targets(np.asarray(ids))
    int8 = [n for n in (*LAYER_PROJECTIONS, "lm_head") if n not in args.float_projections]
    variants = {f"smoothquant alpha={a}": a for a in args.alpha}
    if args.no_smoothing:
        variants["naive per-token W8A8"] = None
    stats = activation_stats(cfg, weights, calibration_token_ids(ckpt.tokenizer, cfg.vocab_size))
    for (name, alpha), k in itertools.product(variants.items(), args.num_outliers):
        smoothed = smooth(cfg, weights, stats, alpha) if alpha is not None else weights
        smoothed = with_lm_head(smoothed)
        quantized = quantize(smoothed, int8, stats, num_outliers=k)
        result = compare(reference, teacher_forced_logits(cfg, quantized, ids), goal)
        print(json.dumps({"variant": name, "num_outliers": k, "float_projections": args.float_projections,
                          **result}), flush=True)


if __name__ == "__main__":
    main()
