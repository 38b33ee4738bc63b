"""Writing new K/V into a layer of the stacked paged cache.

The scatter goes straight into the [L, ...] array: slicing a layer out, updating it and writing it
back makes XLA copy the layer every time, which on a large pool costs more than the whole step.
"""

import jax.numpy as jnp


def write_kv_layer(k_cache, v_cache, layer, k, v, slot_mapping):
    """k_cache, v_cache: [L, num_pages, page_size, Hkv, D]; k, v: [T, Hkv, D]; slot -1 = padding (dropped)."""
    num_layers, num_pages, page_size = k_cache.shape[:3]
    num_slots = num_pages * page_size
    slots = jnp.where(slot_mapping < 0, num_slots, slot_mapping)
    pages, offsets = slots // page_size, slots % page_size
    k_cache = k_cache.at[layer, pages, offsets].set(k.astype(k_cache.dtype), mode="drop")
    v_cache = v_cache.at[layer, pages, offsets].set(v.astype(v_cache.dtype), mode="drop")
    return k_cache, v_cache
