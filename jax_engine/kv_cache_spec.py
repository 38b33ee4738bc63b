"""How long a context the engine serves and how many KV-cache blocks it allocates for it."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from jax_engine.config import EngineConfig, ModelConfig, resolve_max_model_len
from jax_engine.model_runner import kv_cache_bytes_per_block

CPU_DEFAULT_MAX_MODEL_LEN = 2048
CPU_DEFAULT_KV_CACHE_GIB = 1.0
GPU_RESERVED_BYTES = 2 * 2**30  # activations and logits


@dataclass(frozen=True)
class KVCacheSpec:
    max_model_len: int
    num_blocks: int
    block_size: int
    bytes_per_block: int  # on each device: the KV heads are split over --tensor-parallel-size devices

    @property
    def num_bytes(self) -> int:
        return self.num_blocks * self.bytes_per_block


def kv_cache_spec(model_config: ModelConfig, config: EngineConfig, weights: dict, dtype) -> KVCacheSpec:
    """--kv-cache-memory (or what the GPU leaves) is per device, as vLLM's is per GPU."""
    on_gpu = jax.default_backend() == "gpu"
    bytes_per_block = kv_cache_bytes_per_block(model_config, config.block_size, dtype) // config.tensor_parallel_size
    budget = _budget_bytes(config, weights, dtype, on_gpu)
    num_blocks = int(budget // bytes_per_block)
    if num_blocks < 2:
        raise ValueError(f"KV cache budget of {budget / 2**30:.2f} GiB holds no blocks; raise --kv-cache-memory")
    return KVCacheSpec(_max_model_len(model_config, config, on_gpu), num_blocks, config.block_size, bytes_per_block)


def _max_model_len(model_config: ModelConfig, config: EngineConfig, on_gpu: bool) -> int:
    return resolve_max_model_len(config.max_model_len, model_config, None if on_gpu else CPU_DEFAULT_MAX_MODEL_LEN)


def _budget_bytes(config: EngineConfig, weights: dict, dtype, on_gpu: bool) -> float:
    if config.kv_cache_memory is not None:
        return config.kv_cache_memory * 2**30
    if not on_gpu:
        return CPU_DEFAULT_KV_CACHE_GIB * 2**30
    stats = jax.devices()[0].memory_stats() or {}
    weight_bytes = sum(int(np.prod(v.shape)) for v in weights.values()) * dtype.dtype.itemsize
    weight_bytes //= config.tensor_parallel_size  # replicated norms are noise next to the split matrices
    limit = stats.get("bytes_limit", 16 * 2**30)
    return limit * config.gpu_memory_utilization - weight_bytes - stats.get("bytes_in_use", 0) - GPU_RESERVED_BYTES
