"""Mixture-of-experts decoders (Mixtral, Qwen2-MoE, Qwen3-MoE): the Llama-family decoder with each layer's MLP
replaced by routed experts (layers/moe.py), plus Qwen2-MoE's shared expert, gated per token by a sigmoid.

Attention, norms and the layer scan are llama.py's. Per layer, stacked on the leading [L] like the rest:
`router` [D, E], `experts_gate_up_proj` [E, D, 2 * I], `experts_down_proj` [E, I, D]; with a shared expert
also `shared_expert_gate_up_proj` [D, 2 * S], `shared_expert_down_proj` [S, D], `shared_expert_gate` [D, 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_engine.config import ModelConfig
from jax_engine.layers.moe import experts_mlp
from jax_engine.models.llama import LlamaForCausalLM, model_param_shapes

DENSE_MLP = ("layers.gate_up_proj", "layers.down_proj")


def moe_layer_param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    d, e, i, s = cfg.hidden_size, cfg.num_experts, cfg.moe_intermediate_size, cfg.shared_expert_intermediate_size
    shapes = {"router": (d, e), "experts_gate_up_proj": (e, d, 2 * i), "experts_down_proj": (e, i, d)}
    if s:
        shapes.update(shared_expert_gate_up_proj=(d, 2 * s), shared_expert_down_proj=(s, d),
                      shared_expert_gate=(d, 1))
    return shapes


class MoeForCausalLM(LlamaForCausalLM):
    int8_layout = False  # the int8 smoothing knows dense MLPs only: --quantization auto serves these in float

    @staticmethod
    def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        shapes = {k: v for k, v in model_param_shapes(cfg).items() if k not in DENSE_MLP}
        for name, shape in moe_layer_param_shapes(cfg).items():
            shapes[f"layers.{name}"] = (cfg.num_hidden_layers, *shape)
        return shapes

    def _mlp(self, x, w, stats):
        cfg = self.config
        out = experts_mlp(x, self._linear(x, w, "router", stats), w["experts_gate_up_proj"], w["experts_down_proj"],
                          cfg.num_experts_per_tok, cfg.norm_topk_prob)
        if "shared_expert_gate" in w:
            gate, up = jnp.split(self._linear(x, w, "shared_expert_gate_up_proj", stats), 2, axis=-1)
            shared = self._linear(jax.nn.silu(gate) * up, w, "shared_expert_down_proj", stats)
            out = out + jax.nn.sigmoid(self._linear(x, w, "shared_expert_gate", stats)) * shared
        return out
