"""Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) over a paged KV cache.

The nnx module holds the weights with every decoder layer stacked on a leading axis, so the
forward pass is one `lax.scan` over layers and compiles once however deep the model is.
Weights are fused where the math allows: q/k/v into one projection, gate/up into another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_engine.config import ModelConfig
from jax_engine.layers.attention import cached_attention
from jax_engine.layers.linear import linear
from jax_engine.layers.norm import rms_norm
from jax_engine.layers.rotary import apply_rotary, rope_parameters
from jax_engine.sharding import split_fused


@jax.tree_util.register_dataclass
@dataclass
class AttentionMetadata:
    slot_mapping: jax.Array  # [T] int32, -1 for padding
    block_tables: jax.Array  # [S, pages_per_seq] int32
    context_lens: jax.Array  # [S] int32
    query_start_loc: jax.Array  # [S + 1] int32
    block_q: int = field(default=16, metadata=dict(static=True))  # query tokens per attention block


def layer_param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of one decoder layer's weights (the stacked arrays add a leading [L])."""
    d, hd = cfg.hidden_size, cfg.head_dim
    q, kv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    shapes = {
        "input_norm": (d,),
        "qkv_proj": (d, q + 2 * kv),
        "o_proj": (q, d),
        "post_attention_norm": (d,),
        "gate_up_proj": (d, 2 * cfg.intermediate_size),
        "down_proj": (cfg.intermediate_size, d),
    }
    if cfg.attention_bias:
        shapes["qkv_bias"] = (q + 2 * kv,)
    if cfg.qk_norm:
        shapes["q_norm"] = (hd,)
        shapes["k_norm"] = (hd,)
    return shapes


def model_param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    shapes = {"embed_tokens": (cfg.vocab_size, cfg.hidden_size), "norm": (cfg.hidden_size,)}
    if not cfg.tie_word_embeddings:
        shapes["lm_head"] = (cfg.hidden_size, cfg.vocab_size)
    for name, shape in layer_param_shapes(cfg).items():
        shapes[f"layers.{name}"] = (cfg.num_hidden_layers, *shape)
    return shapes


class ParamDict(nnx.Module):
    """Named weights as nnx Params (the decoder layers stacked on a leading [L] axis; the lm_head's parts)."""

    def __init__(self, weights: dict[str, jax.Array]):
        for name, value in weights.items():
            setattr(self, name, nnx.Param(value))

    def as_dict(self) -> dict[str, jax.Array]:
        return {name: p[...] for name, p in vars(self).items() if isinstance(p, nnx.Param)}


def hold_decoder_weights(model: nnx.Module, cfg: ModelConfig, weights: dict[str, jax.Array],
                         batch_invariant: bool) -> None:
    """The weights every decoder here keeps the same way: embeddings, the stacked layers, the final norm and
    the lm_head's parts."""
    model.config = cfg
    model.batch_invariant = batch_invariant
    model.embed_tokens = nnx.Param(weights["embed_tokens"])
    model.layers = ParamDict({k[len("layers."):]: v for k, v in weights.items() if k.startswith("layers.")})
    model.norm = nnx.Param(weights["norm"])
    model.lm_head = ParamDict({k: v for k, v in weights.items() if k.startswith("lm_head")})


class LlamaForCausalLM(nnx.Module):
    int8_layout = True  # quantization/int8.py knows where to fold its smoothing (norms, v/up columns)
    tensor_parallel = True  # splits its fused projections with split_fused and attends with cached_attention

    def __init__(self, cfg: ModelConfig, weights: dict[str, jax.Array], batch_invariant: bool = False):
        hold_decoder_weights(self, cfg, weights, batch_invariant)
        rotary_dim = int(cfg.head_dim * cfg.partial_rotary_factor)
        inv_freq, self.rope_attention_factor = rope_parameters(rotary_dim, cfg.rope_theta, cfg.rope_scaling)
        self.inv_freq = np.asarray(inv_freq)

    @staticmethod
    def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        return model_param_shapes(cfg)

    def __call__(self, token_ids, positions, k_cache, v_cache, md: AttentionMetadata, observe: bool = False):
        """token_ids, positions: [T]; k_cache, v_cache: [L, num_pages, page_size, Hkv, D].

        Returns hidden states [T, hidden] (after the final norm) and the updated caches; with `observe`, also
        each projection's per-input-channel max |x| over the tokens, per layer ({name: [L, K]}, for calibration).
        """
        h = self.embed_tokens[...][token_ids]

        def layer(carry, xs):
            h, k_cache, v_cache = carry
            w, i = xs
            stats = {} if observe else None
            a, k_cache, v_cache = self._attention(rms_norm(h, w["input_norm"], self.config.rms_norm_eps),
                                                  positions, w, k_cache, v_cache, i, md, stats)
            h = h + a
            h = h + self._mlp(rms_norm(h, w["post_attention_norm"], self.config.rms_norm_eps), w, stats)
            return (h, k_cache, v_cache), stats

        layer_ids = jnp.arange(self.config.num_hidden_layers, dtype=jnp.int32)
        (h, k_cache, v_cache), stats = jax.lax.scan(layer, (h, k_cache, v_cache),
                                                    (self.layers.as_dict(), layer_ids))
        h = rms_norm(h, self.norm[...], self.config.rms_norm_eps)
        return (h, k_cache, v_cache, stats) if observe else (h, k_cache, v_cache)

    def compute_logits(self, hidden):
        """hidden: [N, hidden] -> float32 logits [N, vocab]."""
        head = self.lm_head.as_dict()
        if "lm_head" not in head:
            head["lm_head"] = self.embed_tokens[...].T
        return self._linear(hidden, head, "lm_head", None).astype(jnp.float32)

    def _linear(self, x, w, name, stats, bias=None):
        if stats is not None:
            stats[name] = jnp.max(jnp.abs(x.astype(jnp.float32)), axis=0)
        outliers = (w[f"{name}_outlier_ids"], w[f"{name}_outlier_rows"]) if f"{name}_outlier_ids" in w else None
        return linear(x, w[name], bias, w.get(f"{name}_scale"), outliers, batch_invariant=self.batch_invariant)

    def _attention(self, x, positions, w, k_cache, v_cache, layer_id, md: AttentionMetadata, stats):
        cfg = self.config
        num_tokens, hd = x.shape[0], cfg.head_dim
        nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
        qkv = self._linear(x, w, "qkv_proj", stats, w.get("qkv_bias"))
        q, k, v = split_fused(qkv, (nq * hd, nkv * hd, nkv * hd))
        q, k, v = q.reshape(num_tokens, nq, hd), k.reshape(num_tokens, nkv, hd), v.reshape(num_tokens, nkv, hd)
        if cfg.qk_norm:
            q = rms_norm(q, w["q_norm"], cfg.rms_norm_eps)
            k = rms_norm(k, w["k_norm"], cfg.rms_norm_eps)
        q = apply_rotary(q, positions, self.inv_freq, self.rope_attention_factor)
        k = apply_rotary(k, positions, self.inv_freq, self.rope_attention_factor)

        o, k_cache, v_cache = cached_attention(q, k, v, k_cache, v_cache, layer_id, md, sm_scale=hd ** -0.5,
                                               sliding_window=cfg.sliding_window,
                                               batch_invariant=self.batch_invariant)
        return self._linear(o.reshape(num_tokens, nq * hd), w, "o_proj", stats), k_cache, v_cache

    def _mlp(self, x, w, stats):
        gate, up = split_fused(self._linear(x, w, "gate_up_proj", stats), (self.config.intermediate_size,) * 2)
        return self._linear(jax.nn.silu(gate) * up, w, "down_proj", stats)

