"""Batch-invariant matmul.

XLA's CPU dot picks a different kernel (and so a different reduction order) for different
row counts, so the same row can come out differently in a batch of 1 and a batch of 32.
Multiplying fixed-size row tiles in a loop makes every row's result independent of the batch.
On GPU the loop would serialise small matmuls, so there the product is one plain dot.
"""

import jax
import jax.numpy as jnp

ROW_TILE = 16


def linear(x, w, bias=None, row_tile: int = ROW_TILE):
    """x: [N, K] @ w: [K, M] (+ bias [M]) -> [N, M], N a multiple of row_tile when N > row_tile."""
    n = x.shape[0]
    matmul = lambda rows: jnp.dot(rows, w, preferred_element_type=jnp.float32).astype(x.dtype)
    if n % row_tile or jax.default_backend() != "cpu":
        y = matmul(x)
    else:
        y = jax.lax.map(matmul, x.reshape(n // row_tile, row_tile, x.shape[1])).reshape(n, w.shape[1])
    return y if bias is None else y + bias
