"""Padded shapes: a few token-count and block-table-width buckets keep compiled programs few."""

from __future__ import annotations

from jax_engine.layers.linear import ROW_TILE


def token_buckets(max_num_batched_tokens: int) -> list[int]:
    buckets, t = [], ROW_TILE
    while t < max_num_batched_tokens:
        buckets.append(t)
        t *= 2
    buckets.append(round_up(max_num_batched_tokens, ROW_TILE))
    return buckets


def page_buckets(max_pages_per_seq: int, smallest: int = 8, factor: int = 4) -> list[int]:
    buckets, p = [], smallest
    while p < max_pages_per_seq:
        buckets.append(p)
        p *= factor
    buckets.append(max_pages_per_seq)
    return buckets


def seqs_for_tokens(num_tokens_bucket: int, max_num_seqs: int) -> int:
    return min(num_tokens_bucket, round_up(max_num_seqs, ROW_TILE))


def pick(buckets: list[int], n: int) -> int:
    for b in buckets:
        if b >= n:
            return b
    raise ValueError(f"{n} exceeds the largest bucket {buckets[-1]}")


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
