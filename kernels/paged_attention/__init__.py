"""Ragged paged attention: the Pallas kernel on GPU, the chunked XLA path elsewhere.

The backend is chosen when the caller is traced: Pallas (pallas_gpu.py) when JAX's default backend is
a GPU, the chunked XLA path (xla.py) otherwise. The environment variable CORTEXSTREAM_ATTENTION
overrides that choice:
    CORTEXSTREAM_ATTENTION=pallas     always the Pallas kernel (off GPU it runs in interpret mode: slow,
                                      for debugging only)
    CORTEXSTREAM_ATTENTION=xla        always the chunked XLA path
    CORTEXSTREAM_ATTENTION=reference  always the per-token pure-JAX reference (the oracle; slow)
"""

import os

import jax

from kernels.paged_attention.kv_cache import write_kv_layer
from kernels.paged_attention.pallas_gpu import ragged_paged_attention as pallas_attention
from kernels.paged_attention.reference import ragged_paged_attention as reference_attention
from kernels.paged_attention.reference import token_metadata, write_kv
from kernels.paged_attention.xla import xla_paged_attention

__all__ = ["ATTENTION_ENV_VAR", "attention_backend", "paged_attention", "pallas_attention",
           "reference_attention", "token_metadata", "write_kv", "write_kv_layer", "xla_paged_attention"]

ATTENTION_ENV_VAR = "CORTEXSTREAM_ATTENTION"
BACKENDS = ("pallas", "xla", "reference")


def attention_backend() -> str:
    """The environment's choice, else Pallas on a GPU and the chunked XLA path elsewhere."""
    forced = os.environ.get(ATTENTION_ENV_VAR, "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"{ATTENTION_ENV_VAR}={forced!r}; expected one of {BACKENDS}")
        return forced
    return "pallas" if jax.default_backend() == "gpu" else "xla"


def paged_attention(
    q,  # [T, Hq, D]
    k_pages,  # [num_pages, page_size, Hkv, D], or stacked [L, ...] with `layer`
    v_pages,  # like k_pages
    block_tables,  # [S, pages_per_seq] int32
    context_lens,  # [S] int32, context length including this step's tokens
    query_start_loc,  # [S + 1] int32
    *,
    layer=None,
    sm_scale=None,
    sliding_window=None,
    soft_cap=None,
    block_q: int = 16,
    batch_invariant: bool = False,
):
    """Causal GQA attention of each query token over its own sequence's paged context -> [T, Hq, D].

    block_q and batch_invariant shape the XLA path (query tokens per block; blocks one at a time)."""
    args = (q, k_pages, v_pages, block_tables, context_lens, query_start_loc)
    options = dict(layer=layer, sm_scale=sm_scale, sliding_window=sliding_window, soft_cap=soft_cap)
    backend = attention_backend()
    if backend == "xla":
        return xla_paged_attention(*args, **options, block_q=block_q, batch_invariant=batch_invariant)
    if backend == "reference":
        return reference_attention(*args, **options)
    return pallas_attention(*args, **options, interpret=jax.default_backend() != "gpu")
