"""Map a ragged batch of query tokens onto a fixed number of query blocks.

A GPU grid has a static size, while the number of tokens each sequence brings to a step does not.
Each program of the attention kernel takes one query block: up to `block_q` consecutive query tokens
of ONE sequence. Sequence s needs cdiv(query_len_s, block_q) blocks, so a step of T tokens in S
sequences never needs more than T // block_q + S of them (nor more than T); blocks past the real
work are idle (num_tokens == 0). All of this is plain JAX, computed once per step outside the kernel.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class QueryBlocks(NamedTuple):
    """Per query block ([num_blocks] int32 each); an idle block has num_tokens == 0."""

    seq_ids: jax.Array  # the sequence the block's tokens belong to
    token_start: jax.Array  # flat index (into q) of the block's first token
    num_tokens: jax.Array  # valid tokens in the block, 0..block_q
    first_position: jax.Array  # context position of the block's first token
    kv_start: jax.Array  # first key position any of its tokens attends to
    kv_end: jax.Array  # one past the last key position any of its tokens attends to


class TokenSlots(NamedTuple):
    """Where each of the T query tokens sits in the query blocks ([T] each)."""

    block_ids: jax.Array
    rows: jax.Array  # index of the token within its block, 0..block_q-1
    valid: jax.Array  # False for padding tokens past query_start_loc[-1]


def num_query_blocks(num_tokens: int, num_seqs: int, block_q: int) -> int:
    """A static upper bound on the query blocks any batch of this shape needs."""
    return max(1, min(num_tokens, num_tokens // block_q + num_seqs))


def _blocks_per_seq(query_start_loc, block_q, query_lens=None):
    if query_lens is None:
        query_lens = jnp.maximum(query_start_loc[1:] - query_start_loc[:-1], 0)
    blocks = (query_lens + block_q - 1) // block_q
    return query_lens, blocks, jnp.cumsum(blocks) - blocks


def query_blocks(query_start_loc, context_lens, *, num_blocks: int, block_q: int,
                 sliding_window: int | None = None, query_lens=None) -> QueryBlocks:
    """Query blocks in sequence order: sequence 0's blocks first, then sequence 1's, ...

    `query_lens` ([S], each 0 or the sequence's full query length) leaves the sequences given 0 out."""
    num_seqs = context_lens.shape[0]
    query_lens, blocks, first_block = _blocks_per_seq(query_start_loc, block_q, query_lens)
    b = jnp.arange(num_blocks, dtype=jnp.int32)
    seq = jnp.searchsorted(first_block + blocks, b, side="right").astype(jnp.int32)
    active = seq < num_seqs
    seq = jnp.minimum(seq, num_seqs - 1)
    offset = (b - first_block[seq]) * block_q
    num_tokens = jnp.where(active, jnp.clip(query_lens[seq] - offset, 0, block_q), 0)
    first_position = context_lens[seq] - query_lens[seq] + offset
    kv_end = jnp.where(num_tokens > 0, first_position + num_tokens, 0)
    kv_start = jnp.zeros_like(kv_end)
    if sliding_window is not None:
        kv_start = jnp.clip(first_position - sliding_window + 1, 0, kv_end)
    i32 = lambda x: x.astype(jnp.int32)
    return QueryBlocks(i32(seq), i32(query_start_loc[seq] + offset), i32(num_tokens),
                       i32(first_position), i32(kv_start), i32(kv_end))


def token_slots(query_start_loc, num_tokens: int, block_q: int, query_lens=None) -> TokenSlots:
    """The inverse map of query_blocks: token t -> (block, row); tokens of sequences left out are not valid."""
    num_seqs = query_start_loc.shape[0] - 1
    lens, _, first_block = _blocks_per_seq(query_start_loc, block_q, query_lens)
    t = jnp.arange(num_tokens, dtype=jnp.int32)
    seq = jnp.searchsorted(query_start_loc[1:], t, side="right").astype(jnp.int32)
    seq = jnp.minimum(seq, num_seqs - 1)
    local = t - query_start_loc[seq]
    valid = (t < query_start_loc[seq + 1]) & (local < lens[seq])
    block_ids = jnp.where(valid, first_block[seq] + local // block_q, 0)
    rows = jnp.where(valid, local % block_q, 0)
    return TokenSlots(block_ids.astype(jnp.int32), rows.astype(jnp.int32), valid)
