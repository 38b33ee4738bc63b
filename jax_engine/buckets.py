"""Padded shapes: a few token-count buckets keep compiled programs few.

Token counts pad to powers of two from `smallest` (1 by default, so a decode step is padded to its batch;
the batch-invariant mode's 16-row tiles need multiples of 16). The block-table width is one fixed size:
attention walks each sequence's real context, so the width costs nothing per step.
"""

from __future__ import annotations


def token_buckets(max_num_batched_tokens: int, smallest: int = 1) -> list[int]:
    buckets, t = [], smallest
    while t < max_num_batched_tokens:
        buckets.append(t)
        t *= 2
    buckets.append(round_up(max_num_batched_tokens, smallest))
    return buckets


def seqs_for_tokens(num_tokens_bucket: int, max_num_seqs: int, multiple: int = 1) -> int:
    return min(num_tokens_bucket, round_up(max_num_seqs, multiple))


def pick(buckets: list[int], n: int) -> int:
    for b in buckets:
        if b >= n:
            return b
    raise ValueError(f"{n} exceeds the largest bucket {buckets[-1]}")


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
