"""Ragged paged attention in plain XLA: the CPU path.

Cost follows the real context, never the pool or the padded block-table width:
- Query tokens are grouped into query blocks (query_blocks.py): up to `block_q` tokens of ONE sequence, so a
  prefill chunk reads its sequence's pages once per block, not once per token. Decode-shaped steps use
  block_q = 1 (one block per sequence, no padded query rows).
- Each block walks its key range [kv_start, kv_end) in chunks of `pages_per_chunk` pages with an online softmax
  (a while loop whose trip count is the block's own chunk count), gathering only those pages straight from the
  stacked [L, num_pages, page_size, Hkv, D] cache: no layer slice is ever materialised.

Decode tokens (sequences with one new token) run in one-token blocks side by side (vmap: one batched gather
and dot per chunk). Prefill blocks run one at a time (lax.map): under vmap a while loop runs every block for
the longest block's trip count, so idle blocks (a step pads to T // block_q + S of them) and a prefill's
early, causally short blocks would each cost the longest block's work (4-6x a step's attention on CPU). A
step carrying both runs the two passes, each over its own sequences. With batch_invariant, one pass of
block_q-token blocks, one at a time, so a block's arithmetic never depends on what else is in the step. A
chunk that a block does not need is masked to an exact no-op, so a block's result never depends on how many
chunks its neighbours need.
"""

import functools
import math

import jax
import jax.numpy as jnp

from kernels.paged_attention.query_blocks import num_query_blocks, query_blocks, token_slots

PAGES_PER_CHUNK = 16
DECODE_PAGES_PER_CHUNK = 4  # one-token blocks: a short context wastes less of a small chunk (1.8x at b32, ctx 160)


def xla_paged_attention(
    q,  # [T, Hq, D]
    k_cache,  # [L, num_pages, page_size, Hkv, D] with `layer`, or [num_pages, page_size, Hkv, D]
    v_cache,
    block_tables,  # [S, W] int32, W a multiple of pages_per_chunk
    context_lens,  # [S] int32
    query_start_loc,  # [S + 1] int32
    *,
    layer=None,
    sm_scale=None,
    sliding_window=None,
    soft_cap=None,
    block_q: int = 16,
    pages_per_chunk: int = PAGES_PER_CHUNK,
    batch_invariant: bool = False,
):
    """Causal GQA attention of each query token over its own sequence's paged context -> [T, Hq, D]."""
    if layer is None:
        layer, k_cache, v_cache = 0, k_cache[None], v_cache[None]
    pages_per_chunk = min(pages_per_chunk, block_tables.shape[1])
    sm_scale = q.shape[-1] ** -0.5 if sm_scale is None else sm_scale
    attend = functools.partial(_attend_blocks, q, k_cache, v_cache, block_tables, context_lens, query_start_loc,
                               layer=layer, sm_scale=sm_scale, sliding_window=sliding_window, soft_cap=soft_cap)
    if batch_invariant:
        return attend(block_q=block_q, side_by_side=False, pages_per_chunk=pages_per_chunk)
    decode_chunk = math.gcd(DECODE_PAGES_PER_CHUNK, pages_per_chunk)  # divides W too
    if block_q == 1:
        return attend(block_q=1, side_by_side=True, pages_per_chunk=decode_chunk)
    # A step with prefills: its one-token sequences (decodes) side by side in one-token blocks, the rest one
    # block at a time; each pass leaves the other's tokens zero.
    query_lens = query_start_loc[1:] - query_start_loc[:-1]
    decode = query_lens == 1
    o = attend(block_q=1, side_by_side=True, pages_per_chunk=decode_chunk, query_lens=jnp.where(decode, 1, 0),
               num_blocks=context_lens.shape[0])
    return o + attend(block_q=block_q, side_by_side=False, pages_per_chunk=pages_per_chunk,
                      query_lens=jnp.where(decode, 0, query_lens))


def _attend_blocks(q, k_cache, v_cache, block_tables, context_lens, query_start_loc, *, layer, sm_scale,
                   sliding_window, soft_cap, pages_per_chunk, block_q: int, side_by_side: bool, query_lens=None,
                   num_blocks: int | None = None):
    num_tokens, num_q_heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[-2]
    if num_blocks is None:
        num_blocks = num_query_blocks(num_tokens, context_lens.shape[0], block_q)
    qb = query_blocks(query_start_loc, context_lens, num_blocks=num_blocks, block_q=block_q,
                      sliding_window=sliding_window, query_lens=query_lens)
    rows = jnp.arange(block_q, dtype=jnp.int32)
    q_rows = jnp.clip(qb.token_start[:, None] + rows, 0, num_tokens - 1)
    q_blocks = q[q_rows].reshape(num_blocks, block_q, num_kv_heads, num_q_heads // num_kv_heads, head_dim)

    def attend(xs):
        q_block, table, first_position, n, kv_start, kv_end = xs
        return _attend_block(q_block, table, first_position, n, kv_start, kv_end, k_cache, v_cache, layer,
                             sm_scale, sliding_window, soft_cap, pages_per_chunk)

    xs = (q_blocks, block_tables[qb.seq_ids], qb.first_position, qb.num_tokens, qb.kv_start, qb.kv_end)
    o_blocks = jax.vmap(lambda *a: attend(a))(*xs) if side_by_side else jax.lax.map(attend, xs)
    slots = token_slots(query_start_loc, num_tokens, block_q, query_lens)
    o = o_blocks[slots.block_ids, slots.rows].reshape(num_tokens, num_q_heads, head_dim)
    return jnp.where(slots.valid[:, None, None], o, 0).astype(q.dtype)


def _attend_block(q, table, first_position, num_tokens, kv_start, kv_end, k_cache, v_cache, layer,
                  sm_scale, sliding_window, soft_cap, pages_per_chunk):
    """q: [block_q, Hkv, G, D] of one sequence; online softmax over its key chunks -> [block_q, Hkv, G, D]."""
    block_q, num_kv_heads, group, head_dim = q.shape
    page_size = k_cache.shape[2]
    chunk = pages_per_chunk * page_size
    q32 = q.astype(jnp.float32) * sm_scale
    q_pos = first_position + jnp.arange(block_q, dtype=jnp.int32)
    row_valid = jnp.arange(block_q) < num_tokens

    def body(c, carry):
        m, row_sum, acc = carry
        pages = jax.lax.dynamic_slice_in_dim(table, c * pages_per_chunk, pages_per_chunk)
        k_pos = c * chunk + jnp.arange(chunk, dtype=jnp.int32)
        k = k_cache[layer, pages].reshape(chunk, num_kv_heads, head_dim).astype(jnp.float32)
        v = v_cache[layer, pages].reshape(chunk, num_kv_heads, head_dim).astype(jnp.float32)
        v = jnp.where((k_pos < kv_end)[:, None, None], v, 0.0)  # slots past the context may hold anything
        s = jnp.einsum("qhgd,khd->hgqk", q32, k)
        if soft_cap is not None:
            s = soft_cap * jnp.tanh(s / soft_cap)
        mask = (k_pos[None, :] <= q_pos[:, None]) & row_valid[:, None]
        if sliding_window is not None:
            mask &= k_pos[None, :] > q_pos[:, None] - sliding_window
        s = jnp.where(mask, s, -jnp.inf)
        m_new = jnp.maximum(m, jnp.max(s, axis=-1))
        m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
        alpha = jnp.exp(m - m_safe)
        p = jnp.exp(s - m_safe[..., None])
        row_sum = row_sum * alpha + jnp.sum(p, axis=-1)
        acc = acc * alpha[..., None] + jnp.einsum("hgqk,khd->hgqd", p, v)
        return m_new, row_sum, acc

    shape = (num_kv_heads, group, block_q)
    init = (jnp.full(shape, -jnp.inf, jnp.float32), jnp.zeros(shape, jnp.float32),
            jnp.zeros((*shape, head_dim), jnp.float32))
    first_chunk = kv_start // chunk
    last_chunk = jnp.where(kv_end > 0, (kv_end + chunk - 1) // chunk, first_chunk)
    _, row_sum, acc = jax.lax.fori_loop(first_chunk, last_chunk, body, init)
    o = acc / jnp.maximum(row_sum, 1e-30)[..., None]
    return o.transpose(2, 0, 1, 3)
