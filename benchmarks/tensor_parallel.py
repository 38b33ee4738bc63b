"""Tensor parallelism on forced CPU devices: memory per device and step time for TP 1, 2 and 4, as ratios to TP 1.

    python benchmarks/tensor_parallel.py [--model PATH] [--steps 20] [--batch 4]

The CPU "devices" (--xla_force_host_platform_device_count) share the same cores, so the step times say what the
split costs in partitioning and collectives on CPU, nothing about GPU speed.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from jax_engine.config import EngineConfig  # noqa: E402
from jax_engine.llm_engine import LLMEngine  # noqa: E402
from jax_engine.loader import load_checkpoint  # noqa: E402
from jax_engine.sampling_params import SamplingParams  # noqa: E402
from jax_engine.sharding import bytes_per_device  # noqa: E402


def measure(ckpt, tp: int, steps: int, batch: int) -> dict:
    config = EngineConfig(model=None, dtype="float32", quantization="none", tensor_parallel_size=tp,
                          max_model_len=256, max_num_seqs=batch, max_num_batched_tokens=64, kv_cache_memory=0.05,
                          max_decode_slowdown=0.0, warmup=False, compilation_cache_dir="")
    engine = LLMEngine(ckpt.config, ckpt.weights, ckpt.tokenizer, ckpt.generation.eos_token_ids, config)
    runner = engine.runner
    weights = max(bytes_per_device(runner.state).values())
    kv_per_block = max(bytes_per_device((runner.k_cache, runner.v_cache)).values()) // engine.block_manager.num_blocks
    for i in range(batch):
        engine.add_request(f"r{i}", list(range(10 + i, 26 + i)),
                           SamplingParams(temperature=0.0, max_tokens=steps + 8, ignore_eos=True))
    for _ in range(4):  # the prefill (4 x 16 tokens: one step), then decodes until their shape is compiled
        engine.step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - t0)
    return {"weights": weights, "kv_per_block": kv_per_block, "step_s": statistics.median(times)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args()
    ckpt = load_checkpoint(args.model)
    print(f"{jax.device_count()} {jax.devices()[0].platform} devices; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f}")
    base = None
    for tp in (1, 2, 4):
        m = measure(ckpt, tp, args.steps, args.batch)
        base = base or m
        print(f"TP {tp}: weights/device {m['weights'] / 2**20:.1f} MiB ({m['weights'] / base['weights']:.3f} of TP 1), "
              f"KV/block/device {m['kv_per_block'] / 2**10:.1f} KiB ({m['kv_per_block'] / base['kv_per_block']:.3f}), "
              f"decode step (batch {args.batch}) {m['step_s'] * 1e3:.1f} ms ({m['step_s'] / base['step_s']:.2f}x)")


if __name__ == "__main__":
    main()
