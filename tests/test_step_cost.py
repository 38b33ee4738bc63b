"""A step costs what its batch needs, never what the KV pool holds: the compiled step's scratch memory is the
same for a small and a 16x larger pool (a copied layer of the pool would show up as scratch)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jax_engine.config import ModelConfig
from jax_engine.model_runner import PREFILL_BLOCK_Q, ModelRunner
from jax_engine.models.llama import AttentionMetadata
from jax_engine.models.registry import random_weights

CFG = ModelConfig("LlamaForCausalLM", vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, tie_word_embeddings=True,
                  max_position_embeddings=1024)


def scratch_bytes(num_blocks: int, num_tokens: int, block_q: int, batch_invariant: bool) -> int:
    weights = {k: np.asarray(v) for k, v in random_weights(CFG, jnp.float32).items()}
    runner = ModelRunner(CFG, weights, jnp.float32, num_blocks, 16, 1024, 32, 64, batch_invariant=batch_invariant)
    num_seqs = min(num_tokens, 32)
    md = AttentionMetadata(np.full(num_tokens, -1, np.int32), np.zeros((num_seqs, runner.block_table_width), np.int32),
                           np.zeros(num_seqs, np.int32), np.zeros(num_seqs + 1, np.int32), block_q=block_q)
    tokens = np.zeros(num_tokens, np.int32)
    compiled = runner._forward.lower(runner.state, runner.k_cache, runner.v_cache, tokens, tokens, md,
                                     np.zeros(num_seqs, np.int32)).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("num_tokens,block_q,batch_invariant", [
    (32, 1, False),  # decode
    (64, PREFILL_BLOCK_Q, False),  # prefill
    (64, PREFILL_BLOCK_Q, True),  # the tiled (lax.map) paths
])
def test_step_scratch_does_not_grow_with_the_pool(num_tokens, block_q, batch_invariant):
    small, large = (scratch_bytes(n, num_tokens, block_q, batch_invariant) for n in (512, 8192))
    assert large == small
