"""Pure-JAX ragged paged attention: the CPU path and the oracle for the Pallas kernels.

A flat batch of T query tokens belongs to S sequences; sequence s owns tokens
query_start_loc[s]:query_start_loc[s+1], which are the LAST tokens of its context of
context_lens[s] tokens. The context lives in pages named by block_tables[s].
"""

import jax
import jax.numpy as jnp

TOKEN_TILE = 16


def token_metadata(query_start_loc, context_lens, num_tokens):
    """For each token: the sequence it belongs to and its position in that sequence."""
    t = jnp.arange(num_tokens, dtype=jnp.int32)
    seq_ids = jnp.searchsorted(query_start_loc[1:], t, side="right").astype(jnp.int32)
    seq_ids = jnp.minimum(seq_ids, context_lens.shape[0] - 1)
    query_end = query_start_loc[seq_ids + 1]
    positions = context_lens[seq_ids] - (query_end - t)
    valid = t < query_end
    return seq_ids, positions, valid


def _attend_tile(q, k_cache, v_cache, layer, block_tables, context_lens, seq_ids, positions, valid,
                 sm_scale, sliding_window, soft_cap):
    # q: [t, Hq, D]; one gathered context per token: [t, C, Hkv, D], read from the stacked cache in place
    num_q_heads = q.shape[1]
    num_kv_heads = k_cache.shape[-2]
    group = num_q_heads // num_kv_heads
    pages = block_tables[seq_ids]
    k = k_cache[layer, pages].reshape(pages.shape[0], -1, num_kv_heads, k_cache.shape[-1])
    v = v_cache[layer, pages].reshape(pages.shape[0], -1, num_kv_heads, v_cache.shape[-1])
    qg = q.reshape(q.shape[0], num_kv_heads, group, q.shape[-1])
    s = jnp.einsum("tkgd,tckd->tkgc", qg.astype(jnp.float32), k.astype(jnp.float32)) * sm_scale
    if soft_cap is not None:
        s = soft_cap * jnp.tanh(s / soft_cap)
    key_pos = jnp.arange(k.shape[1], dtype=jnp.int32)
    mask = (key_pos[None, :] <= positions[:, None]) & (key_pos[None, :] < context_lens[seq_ids][:, None])
    if sliding_window is not None:
        mask &= key_pos[None, :] > positions[:, None] - sliding_window
    mask &= valid[:, None]
    s = jnp.where(mask[:, None, None, :], s, -jnp.inf)
    m = jnp.max(s, axis=-1, keepdims=True)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    p = jnp.exp(s - m)
    denom = jnp.sum(p, axis=-1, keepdims=True)
    o = jnp.einsum("tkgc,tckd->tkgd", p, v.astype(jnp.float32)) / jnp.maximum(denom, 1e-30)
    return o.reshape(q.shape).astype(q.dtype)


def ragged_paged_attention(
    q,  # [T, Hq, D]
    k_pages,  # [num_pages, page_size, Hkv, D]
    v_pages,  # [num_pages, page_size, Hkv, D]
    block_tables,  # [S, pages_per_seq] int32
    context_lens,  # [S] int32, context length including this step's tokens
    query_start_loc,  # [S + 1] int32
    *,
    layer=None,  # with stacked [L, ...] caches: the layer to read
    sm_scale=None,
    sliding_window=None,
    soft_cap=None,
    token_tile=TOKEN_TILE,
):
    """Causal GQA attention of each query token over its own sequence's paged context.

    Tokens past query_start_loc[-1] (padding) and sequences with no context give zeros.
    Work proceeds in fixed tiles of tokens so a token's result never depends on the batch.
    """
    if layer is None:
        layer, k_pages, v_pages = 0, k_pages[None], v_pages[None]
    num_tokens = q.shape[0]
    if sm_scale is None:
        sm_scale = q.shape[-1] ** -0.5
    seq_ids, positions, valid = token_metadata(query_start_loc, context_lens, num_tokens)
    attend = lambda xs: _attend_tile(
        xs[0], k_pages, v_pages, layer, block_tables, context_lens, xs[1], xs[2], xs[3],
        sm_scale, sliding_window, soft_cap)
    if num_tokens % token_tile or num_tokens <= token_tile:
        return attend((q, seq_ids, positions, valid))
    n = num_tokens // token_tile
    tiles = (q.reshape(n, token_tile, *q.shape[1:]), seq_ids.reshape(n, token_tile),
             positions.reshape(n, token_tile), valid.reshape(n, token_tile))
    return jax.lax.map(attend, tiles).reshape(q.shape)


def write_kv(k_pages, v_pages, k, v, slot_mapping):
    """Scatter new K/V ([T, Hkv, D]) into their slots; a slot of -1 (padding) is dropped."""
    num_pages, page_size = k_pages.shape[:2]
    num_slots = num_pages * page_size
    slots = jnp.where(slot_mapping < 0, num_slots, slot_mapping)
    scatter = lambda pages, new: pages.reshape(num_slots, *pages.shape[2:]).at[slots].set(
        new.astype(pages.dtype), mode="drop").reshape(pages.shape)
    return scatter(k_pages, k), scatter(v_pages, v)
