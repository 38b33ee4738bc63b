"""Projections: one dot by default, fixed row tiles in batch-invariant mode, int8 (W8A8) weights.

Batch invariance: XLA's CPU dot picks a different kernel (and so a different reduction order) for different
row counts, so the same row can come out differently in a batch of 1 and a batch of 32. Multiplying fixed-size
row tiles in a loop makes every row's result independent of the batch, at 1.4-2x the cost of one dot; so it is
a mode (--batch-invariant), not the default. On GPU the loop would serialise small matmuls: one dot there.

int8: a weight stored as int8 with one float32 scale per output column is multiplied by activations quantised
to int8 per token (scale = the token's max |x| / 127) with int32 accumulation: XLA's CPU int8 dot runs at
about twice the float32 speed and reads a quarter of the bytes.
"""

import jax
import jax.numpy as jnp

ROW_TILE = 16


def linear(x, w, bias=None, scale=None, outliers=None, *, batch_invariant: bool = False):
    """x: [N, K] @ w: [K, M] (+ bias [M]) -> [N, M]. With `scale` ([M]), w is int8 and the product W8A8;
    `outliers` = (channel ids [k], float rows [k, M]): input channels multiplied in float instead."""
    if scale is None:
        matmul = lambda rows: _matmul(rows, w)
    else:
        matmul = lambda rows: _int8_matmul(rows, w, scale, outliers)
    n = x.shape[0]
    if batch_invariant and n > ROW_TILE and n % ROW_TILE == 0 and jax.default_backend() == "cpu":
        y = jax.lax.map(matmul, x.reshape(n // ROW_TILE, ROW_TILE, x.shape[1])).reshape(n, -1)
    else:
        y = matmul(x)
    return y if bias is None else y + bias


def _matmul(x, w):
    return jnp.dot(x, w, preferred_element_type=jnp.float32).astype(x.dtype)


def _int8_dot(xq, w):
    """XLA's CPU int8 dot with one row takes a slow matrix-vector path (20-30x slower than two rows)."""
    if xq.shape[0] == 1:
        return jnp.dot(jnp.concatenate([xq, xq]), w, preferred_element_type=jnp.int32)[:1]
    return jnp.dot(xq, w, preferred_element_type=jnp.int32)


def _int8_matmul(x, w, scale, outliers=None):
    x32 = x.astype(jnp.float32)
    if outliers is not None:
        channels, rows = outliers
        x_out = x32[:, channels]
        x32 = x32.at[:, channels].set(0.0)
    x_scale = jnp.maximum(jnp.max(jnp.abs(x32), axis=-1, keepdims=True), 1e-12) / 127.0
    xq = jnp.clip(jnp.round(x32 / x_scale), -127, 127).astype(jnp.int8)
    acc = _int8_dot(xq, w)
    y = acc.astype(jnp.float32) * x_scale * scale
    if outliers is not None:
        y = y + jnp.dot(x_out, rows.astype(jnp.float32), preferred_element_type=jnp.float32)
    return y.astype(x.dtype)
