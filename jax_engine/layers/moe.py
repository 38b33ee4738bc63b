"""Mixture-of-experts feed-forward: a router picks each token's top-k experts, the (token, expert) pairs are
sorted by expert, each projection of all experts is one grouped matmul over the sorted rows (group sizes
traced), and each token's k outputs are summed back, weighted by the router.

Padding tokens are routed like any other: every step computes exactly T * k rows whatever the routing, so the
shapes stay static and nothing is dropped (no expert capacity).

The grouped matmul is `jax.lax.ragged_dot` on GPU and TPU. On CPU jax (0.10) lowers `ragged_dot` to one dot of
every row with every expert's weight, the other experts' rows masked to zero: E times the work of the routed
rows (benchmarks/results/moe_step.md). There it is a loop over (row tile, expert) pairs instead, each a
fixed ROW_TILE-row matmul, which also makes a row's result independent of its batch (--batch-invariant).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_engine.layers.linear import ROW_TILE


def route(router_logits, top_k: int, norm_topk_prob: bool):
    """router_logits: [T, E] -> (routing weights [T, k] float32, expert ids [T, k] int32).

    Softmax over all experts, then the top k; with `norm_topk_prob` the k weights are rescaled to sum to 1
    (Mixtral always; Qwen as its config says)."""
    probs = jax.nn.softmax(router_logits.astype(jnp.float32), axis=-1)
    weights, expert_ids = jax.lax.top_k(probs, top_k)
    if norm_topk_prob:
        weights = weights / jnp.sum(weights, axis=-1, keepdims=True)
    return weights, expert_ids.astype(jnp.int32)


def sort_by_expert(expert_ids, num_experts: int):
    """expert_ids: [T, k] -> (order [T * k]: flat (token, slot) indices grouped by expert, in token order within
    an expert; group_sizes [E] int32: rows per expert, zero for an expert no token chose)."""
    flat = expert_ids.reshape(-1)
    order = jnp.argsort(flat, stable=True).astype(jnp.int32)
    group_sizes = jnp.zeros(num_experts, jnp.int32).at[flat].add(1)
    return order, group_sizes


def grouped_matmul(x, w, group_sizes, *, impl: str | None = None):
    """x: [N, K] rows sorted by group, w: [E, K, M], group_sizes: [E] summing to N -> [N, M]; each row is
    multiplied by the weight of the group it falls in. impl: "ragged_dot" (GPU, TPU) or "tiled" (CPU)."""
    if (impl or ("tiled" if jax.default_backend() == "cpu" else "ragged_dot")) == "tiled":
        return tiled_grouped_matmul(x, w, group_sizes)
    return jax.lax.ragged_dot(x, w, group_sizes, preferred_element_type=jnp.float32).astype(x.dtype)


def tiled_grouped_matmul(x, w, group_sizes, tile: int = ROW_TILE):
    """The grouped matmul as loops: over the groups that have rows, then over the row tiles each group's rows
    touch; a tile is multiplied by the group's weight and only the group's rows are kept. As many iterations as
    the routing makes (at most N / tile + E - 1), so the work follows the rows, not the number of experts, and
    each group's weight is read once."""
    n, num_groups = x.shape[0], group_sizes.shape[0]
    rows = jnp.pad(x, ((0, -n % tile), (0, 0)))
    ends = jnp.cumsum(group_sizes)
    starts = ends - group_sizes
    nonempty = jnp.nonzero(group_sizes > 0, size=num_groups, fill_value=0)[0]

    def group(j, out):
        g = nonempty[j]
        weight = w[g]

        def row_tile(first, out):
            y = jnp.dot(jax.lax.dynamic_slice_in_dim(rows, first, tile), weight, preferred_element_type=jnp.float32)
            row = first + jnp.arange(tile)
            keep = ((row >= starts[g]) & (row < ends[g]))[:, None]
            current = jax.lax.dynamic_slice_in_dim(out, first, tile)
            return jax.lax.dynamic_update_slice_in_dim(out, jnp.where(keep, y.astype(out.dtype), current), first, 0)

        first_tile, last_tile = starts[g] // tile, (ends[g] - 1) // tile
        return jax.lax.fori_loop(first_tile, last_tile + 1, lambda t, out: row_tile(t * tile, out), out)

    out = jnp.zeros((rows.shape[0], w.shape[-1]), x.dtype)
    return jax.lax.fori_loop(0, jnp.sum(group_sizes > 0), group, out)[:n]


def experts_mlp(x, router_logits, gate_up_proj, down_proj, top_k: int, norm_topk_prob: bool,
                *, impl: str | None = None):
    """x: [T, D], router_logits: [T, E], gate_up_proj: [E, D, 2 * I], down_proj: [E, I, D] -> [T, D].

    Each token's SwiGLU through its top-k experts, summed with its routing weights."""
    num_tokens, num_experts = router_logits.shape
    weights, expert_ids = route(router_logits, top_k, norm_topk_prob)
    order, group_sizes = sort_by_expert(expert_ids, num_experts)
    rows = x[order // top_k]  # [T * k, D], grouped by expert
    gate, up = jnp.split(grouped_matmul(rows, gate_up_proj, group_sizes, impl=impl), 2, axis=-1)
    out = grouped_matmul(jax.nn.silu(gate) * up, down_proj, group_sizes, impl=impl)
    unsorted = jnp.zeros_like(out).at[order].set(out, unique_indices=True)  # back to (token, slot) order
    per_slot = unsorted.reshape(num_tokens, top_k, -1).astype(jnp.float32) * weights[..., None]
    return jnp.sum(per_slot, axis=1).astype(x.dtype)
