"""One sequence through the model from an empty cache: the calibration and evaluation forward."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_engine.models.llama import AttentionMetadata, LlamaForCausalLM

PAGE_SIZE = 16
PAGES_MULTIPLE = 16  # the XLA attention path walks block tables in chunks of 16 pages


def sequence_forward(model: LlamaForCausalLM, token_ids: list[int], observe: bool = False):
    """Float32 logits [T, vocab] of every position (and, with `observe`, each projection's input stats)."""
    cfg = model.config
    n = len(token_ids)
    num_pages = -(-n // (PAGE_SIZE * PAGES_MULTIPLE)) * PAGES_MULTIPLE
    cache = jnp.zeros((cfg.num_hidden_layers, num_pages, PAGE_SIZE, cfg.num_key_value_heads, cfg.head_dim),
                      jnp.float32)
    md = AttentionMetadata(np.arange(n, dtype=np.int32), np.arange(num_pages, dtype=np.int32)[None],
                           np.array([n], np.int32), np.array([0, n], np.int32))
    graphdef, state = nnx.split(model)
    return _run(graphdef, state, np.asarray(token_ids, np.int32), cache, md, observe)


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run(graphdef, state, token_ids, cache, md, observe):
    model = nnx.merge(graphdef, state)
    positions = jnp.arange(token_ids.shape[0], dtype=jnp.int32)
    out = model(token_ids, positions, cache, cache, md, observe=observe)
    logits = model.compute_logits(out[0])
    if not observe:
        return logits
    stats = dict(out[3], lm_head=jnp.max(jnp.abs(out[0]), axis=0))
    return logits, stats
