"""Pooling (--task embed): a prompt's final hidden states -> one embedding, as vLLM's pooler does it.

LAST takes the hidden state of the prompt's last token (Qwen3-Embedding and other decoder embedders), MEAN
averages all of them. On the device each step gives one row per scheduled request: the last row of its
chunk (LAST) or the sum of its chunk's rows (MEAN); the host adds a long prompt's chunks up, then truncates
to the request's `dimensions` (Matryoshka) and L2-normalizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jax_engine.config import ConfigError
from jax_engine.request import Request

POOLING_TYPES = ("LAST", "MEAN")
NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's, which sentence-transformers uses


@dataclass(frozen=True)
class PoolerConfig:
    pooling_type: str = "LAST"
    normalize: bool = True

    @classmethod
    def from_dict(cls, d: dict | None) -> PoolerConfig:
        """--pooler-config's JSON (vLLM's keys); unknown keys and values are refused, not ignored."""
        d = d or {}
        unknown = sorted(set(d) - {"pooling_type", "normalize"})
        if unknown:
            raise ConfigError(f"--pooler-config: unknown key(s) {', '.join(unknown)}; known: pooling_type, normalize")
        pooling_type = d.get("pooling_type", cls.pooling_type)
        if pooling_type not in POOLING_TYPES:
            raise ConfigError(f"--pooler-config: pooling_type {pooling_type!r} is not one of "
                              f"{', '.join(POOLING_TYPES)}")
        normalize = d.get("normalize", cls.normalize)
        if not isinstance(normalize, bool):
            raise ConfigError(f"--pooler-config: normalize must be true or false, not {normalize!r}")
        return cls(pooling_type, normalize)


def pool_chunks(hidden: jax.Array, query_start_loc: jax.Array, last_indices: jax.Array,
                pooling_type: str) -> jax.Array:
    """hidden: [T, H]; query_start_loc: [S + 1]; last_indices: [S] -> float32 [S, H], one row per sequence.
    Padding tokens (past query_start_loc's real entries) fall outside every segment and are dropped."""
    if pooling_type == "LAST":
        return hidden[last_indices].astype(jnp.float32)
    num_seqs = last_indices.shape[0]
    segment_ids = jnp.searchsorted(query_start_loc[1:], jnp.arange(hidden.shape[0]), side="right")
    return jax.ops.segment_sum(hidden.astype(jnp.float32), segment_ids, num_segments=num_seqs)


class Pooler:
    """Host side: the chunks of each request added up, and the finished embedding."""

    def __init__(self, config: PoolerConfig):
        self.config = config

    def add_chunk(self, req: Request, start: int, chunk: np.ndarray) -> None:
        """`start`: the first prompt position of the chunk; 0 starts over (a preempted request recomputes)."""
        if self.config.pooling_type == "MEAN" and start > 0 and req.pooled is not None:
            req.pooled = req.pooled + chunk
        else:
            req.pooled = chunk

    def embedding(self, req: Request) -> np.ndarray:
        assert req.pooled is not None and req.pooling_params is not None
        vector = req.pooled / req.num_prompt_tokens if self.config.pooling_type == "MEAN" else req.pooled
        dimensions = req.pooling_params.dimensions
        if dimensions is not None:
            vector = vector[:dimensions]
        if self.config.normalize:
            vector = vector / max(float(np.linalg.norm(vector)), NORMALIZE_EPS)
        return np.asarray(vector, np.float32)
