"""Gemma 2 and Gemma 3 (text) over a paged KV cache.

Llama's decoder (llama.py: stacked layers, one `lax.scan`, fused q/k/v and gate/up) with Gemma's changes:
embeddings scaled by sqrt(hidden); RMSNorm weights stored as w and applied as (1 + w); norms after attention
and after the MLP as well as before each; GeGLU (tanh-approximate GELU); attention scaled by
1/sqrt(query_pre_attn_scalar) with optional soft-capping of its logits and of the final logits; layers that
alternate between a sliding window and global attention (Gemma 3: five local to one global, local layers with
their own RoPE base, q/k RMSNorm per head).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_engine.config import ModelConfig
from jax_engine.layers.linear import linear
from jax_engine.layers.norm import rms_norm
from jax_engine.layers.rotary import apply_rotary, rope_parameters
from jax_engine.models.llama import AttentionMetadata, hold_decoder_weights
from jax_engine.models.llama import model_param_shapes as llama_param_shapes
from kernels.paged_attention import paged_attention, write_kv_layer


def model_param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    shapes = llama_param_shapes(cfg)
    for name in ("pre_feedforward_norm", "post_feedforward_norm"):
        shapes[f"layers.{name}"] = (cfg.num_hidden_layers, cfg.hidden_size)
    return shapes


def gemma_norm(x, weight, eps: float):
    return rms_norm(x, 1.0 + weight.astype(jnp.float32), eps)


def soft_cap(x, cap: float | None):
    return x if cap is None else cap * jnp.tanh(x / cap)


class GemmaForCausalLM(nnx.Module):
    def __init__(self, cfg: ModelConfig, weights: dict[str, jax.Array], batch_invariant: bool = False):
        hold_decoder_weights(self, cfg, weights, batch_invariant)
        layer_types = cfg.layer_types or ("full_attention",) * cfg.num_hidden_layers
        # tuples, not arrays: they decide what is traced, so they must stay static
        self.sliding = tuple(t == "sliding_attention" and cfg.sliding_window is not None for t in layer_types)
        global_rope = rope_parameters(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        local_rope = global_rope
        if cfg.rope_local_base_freq is not None:
            local_rope = rope_parameters(cfg.head_dim, cfg.rope_local_base_freq, None)
        ropes = [local_rope if sliding else global_rope for sliding in self.sliding]
        self.inv_freq = np.stack([inv_freq for inv_freq, _ in ropes])  # [L, head_dim // 2]
        self.rope_attention_factor = tuple(factor for _, factor in ropes)

    @staticmethod
    def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        return model_param_shapes(cfg)

    def __call__(self, token_ids, positions, k_cache, v_cache, md: AttentionMetadata):
        """token_ids, positions: [T]; k_cache, v_cache: [L, num_pages, page_size, Hkv, D].

        Returns hidden states [T, hidden] (after the final norm) and the updated caches."""
        cfg = self.config
        eps = cfg.rms_norm_eps
        h = self.embed_tokens[...][token_ids]
        h = h * jnp.asarray(cfg.hidden_size ** 0.5, h.dtype)

        def layer(carry, xs):
            h, k_cache, v_cache = carry
            w, i, inv_freq, rope_factor, sliding = xs
            a, k_cache, v_cache = self._attention(gemma_norm(h, w["input_norm"], eps), positions, w, k_cache,
                                                  v_cache, i, inv_freq, rope_factor, sliding, md)
            h = h + gemma_norm(a, w["post_attention_norm"], eps)
            m = self._mlp(gemma_norm(h, w["pre_feedforward_norm"], eps), w)
            h = h + gemma_norm(m, w["post_feedforward_norm"], eps)
            return (h, k_cache, v_cache), None

        xs = (self.layers.as_dict(), jnp.arange(cfg.num_hidden_layers, dtype=jnp.int32), jnp.asarray(self.inv_freq),
              jnp.asarray(self.rope_attention_factor, jnp.float32), jnp.asarray(self.sliding))
        (h, k_cache, v_cache), _ = jax.lax.scan(layer, (h, k_cache, v_cache), xs)
        return gemma_norm(h, self.norm[...], eps), k_cache, v_cache

    def compute_logits(self, hidden):
        """hidden: [N, hidden] -> float32 logits [N, vocab], soft-capped where the config says."""
        head = self.lm_head.as_dict().get("lm_head")
        if head is None:
            head = self.embed_tokens[...].T
        logits = linear(hidden, head, batch_invariant=self.batch_invariant).astype(jnp.float32)
        return soft_cap(logits, self.config.final_logit_softcapping)

    def _attention(self, x, positions, w, k_cache, v_cache, layer_id, inv_freq, rope_factor, sliding,
                   md: AttentionMetadata):
        cfg = self.config
        num_tokens, hd = x.shape[0], cfg.head_dim
        nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
        qkv = linear(x, w["qkv_proj"], w.get("qkv_bias"), batch_invariant=self.batch_invariant)
        q = qkv[:, : nq * hd].reshape(num_tokens, nq, hd)
        k = qkv[:, nq * hd: (nq + nkv) * hd].reshape(num_tokens, nkv, hd)
        v = qkv[:, (nq + nkv) * hd:].reshape(num_tokens, nkv, hd)
        if cfg.qk_norm:
            q = gemma_norm(q, w["q_norm"], cfg.rms_norm_eps)
            k = gemma_norm(k, w["k_norm"], cfg.rms_norm_eps)
        q = self._rotate(q, positions, inv_freq, rope_factor)
        k = self._rotate(k, positions, inv_freq, rope_factor)
        k_cache, v_cache = write_kv_layer(k_cache, v_cache, layer_id, k, v, md.slot_mapping)

        def attend(window):
            return paged_attention(q, k_cache, v_cache, md.block_tables, md.context_lens, md.query_start_loc,
                                   layer=layer_id, sm_scale=cfg.query_pre_attn_scalar ** -0.5,
                                   sliding_window=window, soft_cap=cfg.attn_logit_softcapping,
                                   block_q=md.block_q, batch_invariant=self.batch_invariant)

        # The kernels take the window as a static argument: a model with both kinds of layer compiles both
        # and each layer of the scan runs its own.
        if all(self.sliding):
            o = attend(cfg.sliding_window)
        elif not any(self.sliding):
            o = attend(None)
        else:
            o = jax.lax.cond(sliding, lambda: attend(cfg.sliding_window), lambda: attend(None))
        o = linear(o.reshape(num_tokens, nq * hd), w["o_proj"], batch_invariant=self.batch_invariant)
        return o, k_cache, v_cache

    def _rotate(self, x, positions, inv_freq, rope_factor):
        x = apply_rotary(x, positions, inv_freq)
        return x if all(f == 1 for f in self.rope_attention_factor) else x * rope_factor.astype(x.dtype)

    def _mlp(self, x, w):
        gate, up = jnp.split(linear(x, w["gate_up_proj"], batch_invariant=self.batch_invariant), 2, axis=-1)
        return linear(jax.nn.gelu(gate, approximate=True) * up, w["down_proj"], batch_invariant=self.batch_invariant)
