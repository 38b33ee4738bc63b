"""One layer's attention over the paged KV cache: write this step's K/V, then attend; per tensor-parallel shard
(each device its own heads and its own slice of the cache)."""

from jax_engine.sharding import over_heads
from kernels.paged_attention import paged_attention, write_kv_layer


def cached_attention(q, k, v, k_cache, v_cache, layer, md, *, sm_scale: float, sliding_window=None, soft_cap=None,
                     batch_invariant: bool = False):
    """q: [T, Hq, D]; k, v: [T, Hkv, D]; caches [L, num_pages, page_size, Hkv, D] -> (o [T, Hq, D], caches)."""

    def attend(q, k, v, k_cache, v_cache, layer, md):
        k_cache, v_cache = write_kv_layer(k_cache, v_cache, layer, k, v, md.slot_mapping)
        o = paged_attention(q, k_cache, v_cache, md.block_tables, md.context_lens, md.query_start_loc, layer=layer,
                            sm_scale=sm_scale, sliding_window=sliding_window, soft_cap=soft_cap, block_q=md.block_q,
                            batch_invariant=batch_invariant)
        return o, k_cache, v_cache

    return over_heads(attend, num_replicated=2)(q, k, v, k_cache, v_cache, layer, md)
