"""One sequence through the model from an empty cache: the calibration and evaluation forward."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_engine.models.llama import AttentionMetadata

PAGE_SIZE = 16
PAGES_MULTIPLE = 16  # the XLA attention path walks block tables in chunks of 16 pages


def sequence_forward(model: nnx.Module, windows: list[list[int]], observe: bool = False) -> list:
    """Each window as its own sequence from an empty cache: float32 logits [T, vocab] of every position
    (with `observe`, (logits, each projection's per-input-channel max |x|)). One compile per window length."""
    graphdef, state = nnx.split(model)
    run = jax.jit(functools.partial(_run, graphdef, observe=observe))
    return [run(state, np.asarray(ids, np.int32), *_empty_sequence(model.config, len(ids))) for ids in windows]


def _empty_sequence(cfg, n: int):
    num_pages = -(-n // (PAGE_SIZE * PAGES_MULTIPLE)) * PAGES_MULTIPLE
    cache = jnp.zeros((cfg.num_hidden_layers, num_pages, PAGE_SIZE, cfg.num_key_value_heads, cfg.head_dim),
                      jnp.float32)
    md = AttentionMetadata(np.arange(n, dtype=np.int32), np.arange(num_pages, dtype=np.int32)[None],
                           np.array([n], np.int32), np.array([0, n], np.int32))
    return cache, md


def _run(graphdef, state, token_ids, cache, md, observe):
    model = nnx.merge(graphdef, state)
    positions = jnp.arange(token_ids.shape[0], dtype=jnp.int32)
    out = model(token_ids, positions, cache, cache, md, observe=observe)
    logits = model.compute_logits(out[0])
    if not observe:
        return logits
    return logits, dict(out[3], lm_head=jnp.max(jnp.abs(out[0]), axis=0))
