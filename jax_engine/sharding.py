"""Tensor parallelism: a Mesh over N devices with one `tp` axis, and where each weight lives on it.

Megatron's layout, chosen by weight name so that every model family built from the same projections inherits it:
column-parallel projections (qkv, gate_up) split their output features and row-parallel ones (o, down) their
input features, so a layer's only communication is the all-reduce after each row-parallel projection (XLA's SPMD
partitioner inserts it); the embeddings and the lm_head split the vocabulary; norms, and any weight no rule
names, are replicated. Attention runs per shard (`over_heads`, a shard_map) on its heads and its slice of the
paged KV cache.

Heads split evenly: when the KV-head count is below the TP size, each KV head is replicated (vLLM's rule); when
the counts do not divide at all, dummy heads (zero weights, zero o_proj rows) pad them, which changes no output.
A fused projection is stored shard-major (shard 0's q, k, v columns, then shard 1's, ...), so each device's
contiguous slice holds whole parts of its own heads; `split_fused` reads that layout back in the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jax_engine.config import ConfigError, ModelConfig

TP = "tp"

# The last component of a weight's name -> the axis split over `tp`, counted from the end (leading stacked axes,
# layers or experts, stay whole): -1 output features or vocabulary columns, -2 input features or vocabulary rows.
PARTITION_RULES: dict[str, int] = {
    "embed_tokens": -2,  # [V, d]
    "lm_head": -1,  # [d, V]
    "qkv_proj": -1,  # column-parallel
    "qkv_bias": -1,
    "gate_up_proj": -1,
    "o_proj": -2,  # row-parallel
    "down_proj": -2,
}
HEADS = P(None, TP, None)  # q, k, v, attention output: [T, H, D]
KV_CACHE = P(None, None, None, TP, None)  # [L, num_pages, page_size, Hkv, D]


def tp_mesh(devices: Sequence[jax.Device]) -> Mesh:
    return Mesh(np.asarray(devices), (TP,), axis_types=(AxisType.Auto,))


def device_groups(tensor_parallel_size: int, data_parallel_size: int = 1) -> list[list[jax.Device]]:
    """data_parallel_size groups of tensor_parallel_size devices each, in device order."""
    devices = jax.devices()
    needed = tensor_parallel_size * data_parallel_size
    if needed > len(devices):
        raise ConfigError(f"--tensor-parallel-size {tensor_parallel_size} x --data-parallel-size {data_parallel_size} "
                          f"needs {needed} devices; this process sees {len(devices)} ({devices[0].platform})")
    return [devices[i * tensor_parallel_size:(i + 1) * tensor_parallel_size] for i in range(data_parallel_size)]


# ---- the model's side: read at trace time from the mesh the runner's step runs under ------------------------
def tp_size() -> int:
    mesh = jax.sharding.get_abstract_mesh()
    return 1 if mesh.empty or TP not in mesh.axis_names else mesh.shape[TP]


def split_fused(y, sizes: Sequence[int]) -> list:
    """y: [..., sum(sizes)], the output of a fused projection stored shard-major -> its parts, in order."""
    tp = tp_size()
    y = y.reshape(*y.shape[:-1], tp, -1)
    parts = jnp.split(y, np.cumsum([s // tp for s in sizes])[:-1].tolist(), axis=-1)
    return [p.reshape(*p.shape[:-2], -1) for p in parts]


def over_heads(fn: Callable, num_replicated: int) -> Callable:
    """fn(q, k, v, k_cache, v_cache, *replicated) -> (o, k_cache, v_cache), run per tp shard on its heads."""
    if tp_size() == 1:
        return fn
    in_specs = (HEADS, HEADS, HEADS, KV_CACHE, KV_CACHE, *[P()] * num_replicated)
    return jax.shard_map(fn, in_specs=in_specs, out_specs=(HEADS, KV_CACHE, KV_CACHE), check_vma=False)


# ---- the loader's side: weights laid out and placed shard by shard ------------------------------------------
def tensor_parallel_layout(cfg: ModelConfig, weights: dict, tp: int) -> tuple[ModelConfig, dict]:
    """The config and host weights as `tp` shards want them: heads replicated or padded to split evenly, fused
    projections shard-major. tp 1 changes nothing."""
    if tp == 1:
        return cfg, weights
    if cfg.intermediate_size % tp:
        raise ConfigError(f"intermediate_size {cfg.intermediate_size} is not divisible by --tensor-parallel-size {tp}")
    heads = _head_layout(cfg, tp)
    weights = {name: _laid_out(name, np.asarray(w), cfg, heads, tp) for name, w in weights.items()}
    nq, nkv = heads[0], heads[1]
    return cfg.replace(num_attention_heads=nq, num_key_value_heads=nkv), weights


def _head_layout(cfg: ModelConfig, tp: int) -> tuple[int, int, int, int]:
    """(q heads, KV heads, replicas of each KV head, dummy KV heads added) for an even split over tp."""
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    group = nq // nkv
    if nkv % tp == 0:
        return nq, nkv, 1, 0
    if tp % nkv == 0 and group % (tp // nkv) == 0:
        return nq, tp, tp // nkv, 0
    padded = -(-nkv // tp) * tp
    return padded * group, padded, 1, padded - nkv


def _laid_out(name: str, w: np.ndarray, cfg: ModelConfig, heads: tuple[int, int, int, int], tp: int) -> np.ndarray:
    kind = name.rsplit(".", 1)[-1]
    hd, nkv, group = cfg.head_dim, cfg.num_key_value_heads, cfg.num_attention_heads // cfg.num_key_value_heads
    _, _, replicas, dummies = heads
    if kind in ("qkv_proj", "qkv_bias"):
        q, k, v = np.split(w, np.cumsum([nkv * group * hd, nkv * hd]).tolist(), axis=-1)
        q = _pad_heads(q.reshape(*q.shape[:-1], nkv, group * hd), dummies, axis=-2)
        k, v = (_pad_heads(np.repeat(x.reshape(*x.shape[:-1], nkv, hd), replicas, axis=-2), dummies, axis=-2)
                for x in (k, v))
        parts = [x.reshape(*x.shape[:-2], -1) for x in (q, k, v)]
        return _shard_major(parts, tp)
    if kind == "o_proj":  # [..., nq * hd, d]: padded heads read nothing
        rows = _pad_heads(w.reshape(*w.shape[:-2], nkv, group * hd, w.shape[-1]), dummies, axis=-3)
        return rows.reshape(*w.shape[:-2], -1, w.shape[-1])
    if kind == "gate_up_proj":
        return _shard_major(np.split(w, 2, axis=-1), tp)
    return w


def _pad_heads(x: np.ndarray, dummies: int, axis: int) -> np.ndarray:
    """x with `dummies` zero heads appended along its head axis."""
    if not dummies:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, dummies)
    return np.pad(x, pad)


def _shard_major(parts: list[np.ndarray], tp: int) -> np.ndarray:
    """[..., a], [..., b], ... -> [..., a + b + ...] as shard 0's slice of each part, then shard 1's, ..."""
    chunks = [np.split(p, tp, axis=-1) for p in parts]
    return np.concatenate([c[s] for s in range(tp) for c in chunks], axis=-1)


def weight_spec(name: str, shape: tuple[int, ...], tp: int) -> P:
    """The weight's PartitionSpec: PARTITION_RULES's axis over tp, or replicated when it does not divide."""
    axis = PARTITION_RULES.get(name.rsplit(".", 1)[-1])
    if axis is None or len(shape) < -axis or shape[axis] % tp:
        return P()
    spec: list[str | None] = [None] * len(shape)
    spec[axis] = TP
    return P(*spec)


def place_weights(weights: dict, dtype, mesh: Mesh) -> dict[str, jax.Array]:
    """Float weights cast to the compute dtype on the host, then each device of this process sent only its own
    shard; int8 weights and their float32 scales keep their types."""
    tp = mesh.shape[TP]
    placed = {}
    for name, w in weights.items():
        w = np.asarray(w)
        if np.issubdtype(w.dtype, np.floating) and not name.endswith("_scale"):
            w = w.astype(jnp.dtype(dtype))
        sharding = NamedSharding(mesh, weight_spec(name, w.shape, tp))
        placed[name] = jax.make_array_from_callback(w.shape, sharding, lambda index, w=w: w[index])
    return placed


def replicated(tree, mesh: Mesh):
    """Host arrays (the same on every process) as arrays replicated over the mesh; other leaves as they are."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
                        if isinstance(x, np.ndarray) else x, tree)


def zeros_kv_cache(shape: tuple[int, ...], dtype, mesh: Mesh) -> jax.Array:
    """A KV cache split over its KV-head axis, each shard made on its own device."""
    return jax.jit(lambda: jnp.zeros(shape, dtype), out_shardings=NamedSharding(mesh, KV_CACHE))()


def bytes_per_device(tree) -> dict[jax.Device, int]:
    """Bytes each device holds of the device arrays in `tree`."""
    held: dict[jax.Device, int] = defaultdict(int)
    for array in jax.tree.leaves(tree):
        if not isinstance(array, jax.Array):
            continue
        for shard in array.addressable_shards:
            held[shard.device] += shard.data.nbytes
    return dict(held)
