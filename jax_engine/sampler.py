"""Batched sampling on device with per-request parameters.

Every row is sampled from its own PRNG key (seed folded with the output position), so a
request's tokens do not depend on what else shares the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from jax_engine.sampling_params import MAX_LOGPROBS


@jax.tree_util.register_dataclass
@dataclass
class SamplingMetadata:
    temperature: jax.Array  # [S] f32, 0 = greedy
    top_k: jax.Array  # [S] i32, 0 = off
    top_p: jax.Array  # [S] f32
    min_p: jax.Array  # [S] f32
    seeds: jax.Array  # [S] u32
    steps: jax.Array  # [S] i32, index of the token being sampled
    presence_penalty: jax.Array  # [S] f32
    frequency_penalty: jax.Array  # [S] f32
    repetition_penalty: jax.Array  # [S] f32
    bias_ids: jax.Array | None  # [S, K] i32, vocab_size = padding
    bias_values: jax.Array | None  # [S, K] f32
    prompt_ids: jax.Array | None  # [S, P] i32, -1 = padding
    output_ids: jax.Array | None  # [S, O] i32, -1 = padding
    grammar_bitmask: jax.Array | None = None  # [S, ceil(V/32)] i32, bit j of word w allows token 32w+j


@dataclass(frozen=True)
class SamplerFlags:
    """Static choices: each combination compiles once; plain sampling pays for nothing else."""
    all_greedy: bool = True
    penalties: bool = False
    logit_bias: bool = False
    filters: bool = False
    logprobs: bool = False
    grammar: bool = False


def token_counts(ids, vocab_size):
    """ids: [S, N] with -1 padding -> counts [S, V]."""
    rows = jnp.arange(ids.shape[0])[:, None]
    return jnp.zeros((ids.shape[0], vocab_size), jnp.int32).at[rows, jnp.where(ids < 0, vocab_size, ids)].add(
        1, mode="drop")


def apply_penalties(logits, md: SamplingMetadata):
    vocab = logits.shape[-1]
    output_counts = token_counts(md.output_ids, vocab)
    seen = (token_counts(md.prompt_ids, vocab) + output_counts) > 0
    rep = md.repetition_penalty[:, None]
    logits = jnp.where(seen, jnp.where(logits > 0, logits / rep, logits * rep), logits)
    logits = logits - md.frequency_penalty[:, None] * output_counts
    return logits - md.presence_penalty[:, None] * (output_counts > 0)


def apply_filters(logits, md: SamplingMetadata):
    """top_k, top_p and min_p over temperature-scaled logits; masked entries become -inf."""
    vocab = logits.shape[-1]
    sorted_desc = -jnp.sort(-logits, axis=-1)
    k = jnp.where(md.top_k > 0, jnp.minimum(md.top_k, vocab), vocab)
    kth = jnp.take_along_axis(sorted_desc, (k - 1)[:, None], axis=-1)
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    cum_before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = (cum_before < md.top_p[:, None]) & (jnp.arange(vocab)[None, :] < k[:, None])
    num_keep = jnp.maximum(jnp.sum(keep_sorted, axis=-1), 1)
    p_cut = jnp.take_along_axis(sorted_desc, (num_keep - 1)[:, None], axis=-1)
    min_p_cut = sorted_desc[:, :1] + jnp.log(jnp.maximum(md.min_p[:, None], 1e-30))
    cut = jnp.maximum(jnp.maximum(kth, p_cut), jnp.where(md.min_p[:, None] > 0, min_p_cut, -jnp.inf))
    return jnp.where(logits >= cut, logits, -jnp.inf)


def apply_grammar_bitmask(logits, bitmask):
    """Tokens whose bit is clear get -inf; all-ones rows (no grammar) pass through unchanged."""
    bits = (bitmask[:, :, None] >> jnp.arange(32, dtype=jnp.int32)) & 1
    allowed = bits.reshape(bitmask.shape[0], -1)[:, :logits.shape[-1]] != 0
    return jnp.where(allowed, logits, -jnp.inf)


def gumbel_noise(seeds, steps, vocab):
    keys = jax.vmap(lambda s, t: jax.random.fold_in(jax.random.key(s), t))(seeds, steps)
    return jax.vmap(lambda k: jax.random.gumbel(k, (vocab,), jnp.float32))(keys)


@partial(jax.jit, static_argnames=("flags",))
def sample(logits, md: SamplingMetadata, flags: SamplerFlags):
    """logits: [S, V] f32 -> ids [S], their logprobs [S], and (if flags.logprobs) top-20 ids/logprobs."""
    raw_logprobs = jax.nn.log_softmax(logits, axis=-1)
    x = logits
    if flags.penalties:
        x = apply_penalties(x, md)
    if flags.logit_bias:
        rows = jnp.arange(x.shape[0])[:, None]
        x = x.at[rows, md.bias_ids].add(md.bias_values, mode="drop")
    if flags.grammar:
        x = apply_grammar_bitmask(x, md.grammar_bitmask)
    ids = jnp.argmax(x, axis=-1).astype(jnp.int32)
    if not flags.all_greedy:
        t = jnp.where(md.temperature > 0, md.temperature, 1.0)[:, None]
        scaled = x / t
        if flags.filters:
            scaled = apply_filters(scaled, md)
        sampled = jnp.argmax(scaled + gumbel_noise(md.seeds, md.steps, x.shape[-1]), axis=-1).astype(jnp.int32)
        ids = jnp.where(md.temperature > 0, sampled, ids)
    chosen = jnp.take_along_axis(raw_logprobs, ids[:, None], axis=-1)[:, 0]
    if not flags.logprobs:
        return ids, chosen, None, None
    top_logprobs, top_ids = jax.lax.top_k(raw_logprobs, MAX_LOGPROBS)
    return ids, chosen, top_ids.astype(jnp.int32), top_logprobs
