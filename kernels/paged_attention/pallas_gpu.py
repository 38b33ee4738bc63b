"""Ragged paged attention for NVIDIA GPUs: a Pallas kernel lowered through Triton.

Backend: Pallas-Triton (`pl.pallas_call` + `plgpu.CompilerParams`), not Mosaic GPU. Paged attention
reads K/V rows scattered across pages by a block table; Triton lowers a load of a ref indexed by an
array of row numbers to one vectorised, masked gather, which is exactly that access, and it runs on
every NVIDIA generation since Ampere. Mosaic GPU wants TMA/async copies of rectangular tiles from
static shapes and Hopper-or-newer parts; a page gather there means one copy per page and hand-built
pipelining, which a memory-bound decode kernel does not repay. (JAX's own ops/gpu paged_attention
and decode_attention are Triton kernels too, since deprecated for tokamax; tokamax ships GPU kernels
for dense flash attention and a TPU-only ragged paged attention, none that reads a paged cache on GPU.)

Design (cf. vLLM's unified Triton attention, flash-decoding):
- grid = (query block, KV head, KV split). A query block is up to `block_q` tokens of one sequence
  (query_blocks.py maps the ragged batch onto a fixed number of them, in plain JAX, outside the
  kernel). A program holds the block's tokens x all `group` query heads of its KV head as one tile of
  rows = block_q * group_pad (group padded to a power of two), so each K/V row loaded serves every
  query head that shares it (GQA grouping), and decode with group 4-8 still fills a 16-row MMA.
- The program walks key positions [kv_start, kv_end) of its block (the causal limit of its last token,
  from the sliding window's start of its first) in tiles of `block_k`, translating positions to cache
  rows through the block table; nothing is gathered into a contiguous cache. Online softmax in f32,
  base-2 exponentials, logit soft-cap, causal and window masks per row.
- Split-K (flash-decoding): with num_splits > 1 the key range is cut into num_splits chunks, each
  program writes an unnormalised f32 partial (o, running max m, row sum) and a small combine in JAX
  merges them. With num_splits == 1 the kernel normalises and writes its tile in q's dtype. Either way
  each program owns its output tile (no scatter, no atomics), and a gather in JAX maps tile rows back
  to [T, Hq, D], writing zeros for padding tokens.
- Tiling defaults (all overridable): block_q from the batch shape (16 rows for decode-shaped batches,
  64 for prefill), block_k 64 (32 for head_dim > 128), num_splits doubling until the grid has ~1024
  programs, 4 warps for decode tiles and 8 for prefill tiles. These are reasoned, not yet measured:
  `python -m kernels.paged_attention.bench` on the GPU is where to tune them.
- The caches may be the whole stacked [L, num_pages, page_size, Hkv, D] pool with a traced `layer`
  index: the kernel offsets its row numbers by the layer, so no layer slice is ever materialised.
Limits: head_dim is padded to a power of two (masked loads, so any head_dim works, at the cost of the
padding).
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from kernels.paged_attention.query_blocks import num_query_blocks, query_blocks, token_slots

LOG2_E = math.log2(math.e)
MASK_VALUE = -1e30  # finite, so a row that sees no key yet never computes inf - inf
MIN_ROWS = 16  # smallest M of a Triton MMA
TARGET_PROGRAMS = 1024  # enough programs to keep ~132 SMs streaming several tiles each


class _Tiling(NamedTuple):
    """Static shape facts the kernel body is specialised on."""

    num_kv_heads: int
    head_dim_pad: int  # head_dim rounded up to a power of two
    group: int  # query heads per KV head
    group_pad: int  # group rounded up to a power of two
    block_q: int  # query tokens per program
    block_k: int  # key positions per inner step
    page_size: int
    pages_per_seq: int
    num_splits: int
    layer_rows: int  # cache rows per layer (num_pages * page_size * Hkv)
    scale_log2: float  # sm_scale * log2(e), or sm_scale / soft_cap when capped
    soft_cap: float | None
    sliding_window: int | None

    @property
    def rows(self):
        return self.block_q * self.group_pad


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def default_block_q(num_tokens: int, num_seqs: int, group_pad: int) -> int:
    """Tokens per program: ~one decode token's worth for decode-shaped batches, 64 rows for prefill."""
    tokens_per_seq = _next_power_of_2(-(-num_tokens // max(num_seqs, 1)))
    rows = min(max(tokens_per_seq * group_pad, MIN_ROWS), max(64, group_pad))
    return max(1, rows // group_pad)


def default_num_splits(num_programs: int, max_context: int, block_k: int) -> int:
    """Split the keys only while the grid is too small to fill the GPU, and never below block_k each."""
    splits = 1
    while splits * num_programs < TARGET_PROGRAMS and splits * 2 * block_k <= max_context and splits < 16:
        splits *= 2
    return splits


def default_num_warps(rows: int, head_dim_pad: int) -> int:
    """Four warps for decode-sized tiles; eight once the f32 accumulator would crowd four warps' registers."""
    return 4 if rows * head_dim_pad <= 32 * 128 else 8


def _row_layout(t: _Tiling, token_start, num_tokens, first_position, kv_head):
    """Row r of the tile is token r // group_pad of the block, query head r % group_pad of the group."""
    r = jnp.arange(t.rows, dtype=jnp.int32)
    token = lax.shift_right_logical(r, int(math.log2(t.group_pad)))
    head = lax.bitwise_and(r, t.group_pad - 1)
    valid = (token < num_tokens) & (head < t.group)
    q_rows = (token_start + token) * (t.num_kv_heads * t.group) + kv_head * t.group + head
    return jnp.where(valid, q_rows, 0), valid, first_position + token


def _load_rows(ref, rows, row_valid, width):
    """Gather whole rows [len(rows), width] of a 2-D ref; invalid rows and columns past the ref read 0."""
    cols = jnp.arange(width, dtype=jnp.int32)
    mask = row_valid[:, None] & (cols[None, :] < ref.shape[1])
    return plgpu.load(ref.at[rows[:, None], cols[None, :]], mask=mask, other=0)


def _split_range(t: _Tiling, kv_start, kv_end, split):
    if t.num_splits == 1:
        return kv_start, kv_end
    chunk = (kv_end - kv_start + t.num_splits - 1) // t.num_splits
    chunk = (chunk + t.block_k - 1) // t.block_k * t.block_k
    start = kv_start + split * chunk
    return start, jnp.minimum(kv_end, start + chunk)


def _logits(t: _Tiling, q, k):
    s = lax.dot_general(q, k, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST,
                        preferred_element_type=jnp.float32)
    if t.soft_cap is None:
        return s * t.scale_log2
    return jnp.tanh(s * t.scale_log2) * (t.soft_cap * LOG2_E)


def _attention_kernel(seq_ids_ref, token_start_ref, num_tokens_ref, first_position_ref, kv_start_ref,
                      kv_end_ref,  # [num_blocks] int32 each
                      block_tables_ref,  # [S * pages_per_seq] int32
                      layer_ref,  # [1] int32
                      q_ref,  # [T * Hq, D]
                      k_ref, v_ref,  # [L * num_pages * page_size * Hkv, D]
                      *refs, t: _Tiling):
    block, kv_head, split = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    layer_offset = layer_ref[0] * t.layer_rows
    seq = seq_ids_ref[block]
    q_rows, row_valid, row_position = _row_layout(
        t, token_start_ref[block], num_tokens_ref[block], first_position_ref[block], kv_head)
    start, end = _split_range(t, kv_start_ref[block], kv_end_ref[block], split)
    q = _load_rows(q_ref, q_rows, row_valid, t.head_dim_pad)
    offsets = jnp.arange(t.block_k, dtype=jnp.int32)

    def step(i, carry):
        acc, m, row_sum = carry
        key_position = start + i * t.block_k + offsets
        key_valid = key_position < end
        page = plgpu.load(block_tables_ref.at[seq * t.pages_per_seq + lax.div(key_position, t.page_size)],
                          mask=key_valid, other=0)
        slot = page * t.page_size + lax.rem(key_position, t.page_size)
        kv_rows = layer_offset + slot * t.num_kv_heads + kv_head
        k = _load_rows(k_ref, kv_rows, key_valid, t.head_dim_pad).astype(q.dtype)
        v = _load_rows(v_ref, kv_rows, key_valid, t.head_dim_pad).astype(q.dtype)
        visible = key_valid[None, :] & (key_position[None, :] <= row_position[:, None])
        if t.sliding_window is not None:
            visible &= key_position[None, :] > row_position[:, None] - t.sliding_window
        s = jnp.where(visible, _logits(t, q, k), MASK_VALUE)
        m_next = jnp.maximum(m, jnp.max(s, axis=1))
        alpha = jnp.exp2(m - m_next)
        p = jnp.where(visible, jnp.exp2(s - m_next[:, None]), 0.0)
        pv = jnp.dot(p.astype(v.dtype), v, precision=lax.Precision.HIGHEST,
                     preferred_element_type=jnp.float32)
        return acc * alpha[:, None] + pv, m_next, row_sum * alpha + jnp.sum(p, axis=1)

    num_steps = (jnp.maximum(end - start, 0) + t.block_k - 1) // t.block_k
    init = (jnp.zeros(q.shape, jnp.float32), jnp.full((t.rows,), MASK_VALUE, jnp.float32),
            jnp.zeros((t.rows,), jnp.float32))
    acc, m, row_sum = lax.fori_loop(0, num_steps, step, init)
    if t.num_splits == 1:
        (o_ref,) = refs
        o_ref[...] = (acc / jnp.where(row_sum > 0, row_sum, 1.0)[:, None]).astype(o_ref.dtype)
    else:
        o_ref, m_ref, row_sum_ref = refs
        o_ref[...] = acc
        m_ref[...] = m
        row_sum_ref[...] = row_sum


def _layer_index(layer):
    return jnp.reshape(jnp.asarray(0 if layer is None else layer, jnp.int32), (1,))


def _merge_splits(o, m, row_sum):
    """Flash-decoding combine of N splits: o [B, Hkv, N, R, D], m (log2), row_sum [B, Hkv, N, R]."""
    m_max = jnp.max(m, axis=2, keepdims=True)
    w = jnp.exp2(m - m_max)
    denom = jnp.sum(row_sum * w, axis=2)
    o = jnp.sum(o * w[..., None], axis=2)
    return o / jnp.where(denom > 0, denom, 1.0)[..., None]


def _gather_tokens(o_blocks, slots, t: _Tiling, q_shape):
    """[B, Hkv, rows, Dp] -> [T, Hq, D]; padding tokens get zeros."""
    num_blocks, num_kv_heads, _, head_dim_pad = o_blocks.shape
    o = o_blocks.reshape(num_blocks, num_kv_heads, t.block_q, t.group_pad, head_dim_pad)
    o = o[slots.block_ids[:, None], jnp.arange(num_kv_heads)[None, :], slots.rows[:, None]]
    o = o[:, :, : t.group, : q_shape[-1]].reshape(q_shape)
    return jnp.where(slots.valid[:, None, None], o, 0)


def _tiling(q, k_pages, block_tables, *, sm_scale, sliding_window, soft_cap, block_q, block_k,
            num_splits):
    num_tokens, num_q_heads, head_dim = q.shape
    num_pages, page_size, num_kv_heads, _ = k_pages.shape[-4:]
    num_seqs, pages_per_seq = block_tables.shape
    if num_q_heads % num_kv_heads:
        raise ValueError(f"{num_q_heads=} is not a multiple of {num_kv_heads=}")
    head_dim_pad = max(16, _next_power_of_2(head_dim))
    group = num_q_heads // num_kv_heads
    group_pad = _next_power_of_2(group)
    block_q = block_q or default_block_q(num_tokens, num_seqs, group_pad)
    block_k = block_k or (64 if head_dim_pad <= 128 else 32)
    if block_q & (block_q - 1) or block_q * group_pad < MIN_ROWS or block_k & (block_k - 1) or block_k < 16:
        raise ValueError(f"{block_q=} and {block_k=} must be powers of two with block_q * {group_pad=} >= "
                         f"{MIN_ROWS} and block_k >= 16 (Triton tile shapes)")
    num_blocks = num_query_blocks(num_tokens, num_seqs, block_q)
    num_splits = num_splits or default_num_splits(num_blocks * num_kv_heads, pages_per_seq * page_size,
                                                  block_k)
    scale = sm_scale if sm_scale is not None else head_dim ** -0.5
    scale_log2 = scale * LOG2_E if soft_cap is None else scale / soft_cap
    soft_cap = None if soft_cap is None else float(soft_cap)
    return _Tiling(num_kv_heads, head_dim_pad, group, group_pad, block_q, block_k, page_size, pages_per_seq,
                   num_splits, num_pages * page_size * num_kv_heads, float(scale_log2), soft_cap,
                   sliding_window), num_blocks


@functools.partial(jax.jit, static_argnames=(
    "sm_scale", "sliding_window", "soft_cap", "block_q", "block_k", "num_splits", "num_warps",
    "num_stages", "interpret"))
def ragged_paged_attention(
    q,  # [T, Hq, D]
    k_pages,  # [num_pages, page_size, Hkv, D], or [L, ...] with `layer`
    v_pages,  # like k_pages
    block_tables,  # [S, pages_per_seq] int32
    context_lens,  # [S] int32, context length including this step's tokens
    query_start_loc,  # [S + 1] int32
    *,
    layer=None,  # int32 scalar: which layer of stacked [L, ...] caches to read
    sm_scale=None,
    sliding_window=None,
    soft_cap=None,
    block_q=None,
    block_k=None,
    num_splits=None,
    num_warps=None,
    num_stages=2,
    interpret=False,
):
    """Same contract as reference.ragged_paged_attention; the tiling knobs default to heuristics."""
    t, num_blocks = _tiling(q, k_pages, block_tables, sm_scale=sm_scale, sliding_window=sliding_window,
                            soft_cap=soft_cap, block_q=block_q, block_k=block_k, num_splits=num_splits)
    num_tokens, _, head_dim = q.shape
    blocks = query_blocks(query_start_loc, context_lens, num_blocks=num_blocks, block_q=t.block_q,
                          sliding_window=sliding_window)
    tiles = (num_blocks, t.num_kv_heads, t.num_splits, t.rows)
    spec = lambda *tail: pl.BlockSpec((None, None, None, *tail), lambda b, h, s: (b, h, s) + (0,) * len(tail))
    o_dtype = q.dtype if t.num_splits == 1 else jnp.float32
    out_shape = [jax.ShapeDtypeStruct((*tiles, t.head_dim_pad), o_dtype)]
    out_specs = [spec(t.rows, t.head_dim_pad)]
    if t.num_splits > 1:
        out_shape += [jax.ShapeDtypeStruct(tiles, jnp.float32)] * 2
        out_specs += [spec(t.rows)] * 2
    outs = pl.pallas_call(
        functools.partial(_attention_kernel, t=t),
        grid=tiles[:3],
        out_shape=out_shape,
        out_specs=out_specs,
        compiler_params=plgpu.CompilerParams(
            num_warps=num_warps or default_num_warps(t.rows, t.head_dim_pad), num_stages=num_stages),
        interpret=interpret,
        name="ragged_paged_attention",
    )(*blocks, block_tables.reshape(-1).astype(jnp.int32), _layer_index(layer), q.reshape(-1, head_dim),
      k_pages.reshape(-1, head_dim), v_pages.reshape(-1, head_dim))
    o = outs[0][:, :, 0] if t.num_splits == 1 else _merge_splits(*outs)
    slots = token_slots(query_start_loc, num_tokens, t.block_q)
    return _gather_tokens(o, slots, t, q.shape).astype(q.dtype)
