"""Decode-attention microbenchmark: the Pallas kernel against the pure-JAX reference.

    python -m kernels.paged_attention.bench                  # batch {32, 64} x context {1k, 4k}, bf16
    python -m kernels.paged_attention.bench --small          # tiny shapes, runs on CPU (interpret mode)
    python -m kernels.paged_attention.bench --output-json bench.json --num-splits 4

Each case is one decode step: every sequence brings one query token and attends to its whole context,
read through a block table that scatters its pages across the pool. Time per call is the median of
--iters calls after --warmup; achieved bandwidth counts the K/V bytes the contexts hold plus q and o,
and is compared with the HBM bandwidth of the device (detected from device_kind, or --hbm-tbps).
max |err| is each backend's largest deviation from the (jitted) reference on that case.
"""

import argparse
import functools
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from kernels.paged_attention.pallas_gpu import ragged_paged_attention as pallas_attention
from kernels.paged_attention.reference import ragged_paged_attention as reference_attention

# Datasheet HBM bandwidth in TB/s, matched against device_kind; the first match wins.
HBM_TBPS = (("H200", 4.8), ("H100 PCIe", 2.0), ("H100 NVL", 3.9), ("H100", 3.35), ("H20", 4.0),
            ("A100-SXM4-80GB", 2.04), ("A100", 1.56), ("B200", 8.0), ("GH200", 4.0))


def hbm_tbps(device_kind: str) -> float | None:
    for name, tbps in HBM_TBPS:
        if name.lower() in device_kind.lower():
            return tbps
    return None


def decode_step(batch, context, *, num_q_heads, num_kv_heads, head_dim, page_size, dtype, seed=0):
    """Arguments of one decode step: q [B, Hq, D], a page pool holding B contexts of `context` tokens."""
    rng = np.random.default_rng(seed)
    pages_per_seq = -(-context // page_size)
    num_pages = batch * pages_per_seq
    key_q, key_k, key_v = jax.random.split(jax.random.key(seed), 3)
    kv_shape = (num_pages, page_size, num_kv_heads, head_dim)
    return (
        jax.random.normal(key_q, (batch, num_q_heads, head_dim), dtype),
        jax.random.normal(key_k, kv_shape, dtype),
        jax.random.normal(key_v, kv_shape, dtype),
        jnp.asarray(rng.permutation(num_pages).reshape(batch, pages_per_seq), jnp.int32),
        jnp.full((batch,), context, jnp.int32),
        jnp.arange(batch + 1, dtype=jnp.int32),
    )


def bytes_moved(batch, context, *, num_q_heads, num_kv_heads, head_dim, itemsize):
    kv = 2 * batch * context * num_kv_heads * head_dim * itemsize
    q_and_o = 2 * batch * num_q_heads * head_dim * itemsize
    return kv + q_and_o


def median_seconds(f, args, *, warmup, iters):
    for _ in range(warmup):
        jax.block_until_ready(f(*args))
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def backends(args, on_gpu):
    tiling = {k: v for k, v in (("num_splits", args.num_splits), ("block_k", args.block_k),
                                ("block_q", args.block_q), ("num_warps", args.num_warps),
                                ("num_stages", args.num_stages)) if v is not None}
    found = {
        "pallas": functools.partial(pallas_attention, **tiling, interpret=not on_gpu),
        "reference": jax.jit(reference_attention),
    }
    return {name: found[name] for name in args.backends}


def run_cases(args):
    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    tbps = args.hbm_tbps or hbm_tbps(device.device_kind)
    dtype = jnp.dtype(args.dtype)
    shape = dict(num_q_heads=args.num_q_heads, num_kv_heads=args.num_kv_heads, head_dim=args.head_dim)
    rows = []
    for batch in args.batch:
        for context in args.context:
            inputs = decode_step(batch, context, **shape, page_size=args.page_size, dtype=dtype)
            moved = bytes_moved(batch, context, **shape, itemsize=dtype.itemsize)
            expected = jax.jit(reference_attention)(*inputs).astype(jnp.float32)
            for name, f in backends(args, on_gpu).items():
                error = float(jnp.max(jnp.abs(f(*inputs).astype(jnp.float32) - expected)))
                seconds = median_seconds(f, inputs, warmup=args.warmup, iters=args.iters)
                gbps = moved / seconds / 1e9
                rows.append(dict(backend=name, batch=batch, context=context, time_us=seconds * 1e6,
                                 gb_per_s=gbps, hbm_fraction=gbps / (tbps * 1e3) if tbps else None,
                                 bytes=moved, max_abs_error=error))
            del inputs, expected
    meta = dict(device_kind=device.device_kind, platform=device.platform, hbm_tbps=tbps, dtype=args.dtype,
                page_size=args.page_size, jax_version=jax.__version__, **shape,
                warmup=args.warmup, iters=args.iters)
    return meta, rows


def format_table(meta, rows):
    hbm = f"{meta['hbm_tbps']} TB/s" if meta["hbm_tbps"] else "unknown (pass --hbm-tbps)"
    lines = [f"decode attention on {meta['device_kind']} ({meta['platform']}), HBM {hbm}, {meta['dtype']}, "
             f"Hq={meta['num_q_heads']} Hkv={meta['num_kv_heads']} D={meta['head_dim']} "
             f"page_size={meta['page_size']}, median of {meta['iters']}",
             f"{'backend':<10} {'batch':>5} {'context':>7} {'time (us)':>11} {'GB/s':>9} {'% HBM':>7} "
             f"{'max |err|':>10}"]
    for r in rows:
        fraction = f"{100 * r['hbm_fraction']:6.1f}%" if r["hbm_fraction"] is not None else f"{'n/a':>7}"
        lines.append(f"{r['backend']:<10} {r['batch']:>5} {r['context']:>7} {r['time_us']:>11.1f} "
                     f"{r['gb_per_s']:>9.1f} {fraction} {r['max_abs_error']:>10.2e}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", help="default: 32 64 (--small: 2 4)")
    p.add_argument("--context", type=int, nargs="+", help="default: 1024 4096 (--small: 64 200)")
    p.add_argument("--num-q-heads", type=int, default=32)
    p.add_argument("--num-kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--page-size", type=int, default=16)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--backends", nargs="+", default=["pallas", "reference"], choices=["pallas", "reference"])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--hbm-tbps", type=float, help="HBM bandwidth in TB/s (default: from device_kind)")
    p.add_argument("--num-splits", type=int, help="Pallas: KV splits (default: heuristic)")
    p.add_argument("--block-k", type=int, help="Pallas: keys per inner step")
    p.add_argument("--block-q", type=int, help="Pallas: query tokens per program")
    p.add_argument("--num-warps", type=int)
    p.add_argument("--num-stages", type=int)
    p.add_argument("--small", action="store_true", help="tiny shapes that run on a CPU in seconds")
    p.add_argument("--output-json", help="also write the results here")
    args = p.parse_args(argv)
    if args.small:
        args.num_q_heads, args.num_kv_heads, args.head_dim = 4, 2, 64
        args.warmup, args.iters = 1, 3
    args.batch = args.batch or ([2, 4] if args.small else [32, 64])
    args.context = args.context or ([64, 200] if args.small else [1024, 4096])
    return args


def main(argv=None):
    args = parse_args(argv)
    meta, rows = run_cases(args)
    print(format_table(meta, rows))
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(dict(meta=meta, results=rows), f, indent=2)


if __name__ == "__main__":
    main()
