"""Phi-3 and Phi-4-mini: Llama's decoder (llama.py) as it runs them.

What differs is read elsewhere: q/k/v and gate/up arrive fused in the checkpoint (loader/weights.py), RoPE may
be LongRoPE with short and long factors and may turn only part of each head (layers/rotary.py,
`partial_rotary_factor`).
"""

from jax_engine.models.llama import LlamaForCausalLM


class Phi3ForCausalLM(LlamaForCausalLM):
    int8_layout = False  # the smoothing is calibrated and tested on Llama-family checkpoints only
