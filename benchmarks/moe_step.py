"""MoE step time against a dense model of the same active parameter count, on this machine's CPU.

Each MoE shape is paired with a dense one that has the same attention and, per token, the same number of MLP
weights in use (dense intermediate size = num_experts_per_tok * moe_intermediate_size); the MoE holds
num_experts / num_experts_per_tok times as many MLP weights in all. Random weights (vLLM's --load-format dummy),
float32, the engine's own jitted step; the time of an engine step, median over the steps measured:

- decode: 8 sequences of 64 prompt tokens, one new token each per step;
- prefill: one 128-token prompt in one step.

    python benchmarks/moe_step.py [--output benchmarks/results/moe_step.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax_engine.config import EngineConfig, ModelConfig
from jax_engine.llm_engine import LLMEngine
from jax_engine.models.registry import model_param_shapes, random_weights
from jax_engine.sampling_params import SamplingParams

BASE = dict(vocab_size=8192, hidden_size=512, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
            head_dim=64, max_position_embeddings=1024)
# name -> (MoE config, dense config with the same active parameters)
PAIRS = {
    "Mixtral-like, 8 experts, top-2, expert 1024": (
        ModelConfig("MixtralForCausalLM", intermediate_size=1024, num_experts=8, num_experts_per_tok=2,
                    moe_intermediate_size=1024, norm_topk_prob=True, **BASE),
        ModelConfig("LlamaForCausalLM", intermediate_size=2048, **BASE)),
    "Qwen3-MoE-like, 32 experts, top-4, expert 512": (
        ModelConfig("Qwen3MoeForCausalLM", intermediate_size=2048, num_experts=32, num_experts_per_tok=4,
                    moe_intermediate_size=512, norm_topk_prob=True, **BASE),
        ModelConfig("LlamaForCausalLM", intermediate_size=2048, **BASE)),
}
DECODE_SEQS, DECODE_PROMPT, DECODE_STEPS = 8, 64, 16
PREFILL_TOKENS, PREFILL_RUNS = 128, 5


def engine_for(cfg: ModelConfig) -> LLMEngine:
    config = EngineConfig(dtype="float32", quantization="none", max_model_len=512, max_num_seqs=DECODE_SEQS,
                          max_num_batched_tokens=PREFILL_TOKENS, kv_cache_memory=0.1, warmup=False,
                          enable_prefix_caching=False, max_decode_slowdown=0.0)
    return LLMEngine(cfg, random_weights(cfg, jnp.float32), None, [], config)


def timed_step(engine: LLMEngine) -> float:
    start = time.perf_counter()
    engine.step()
    return time.perf_counter() - start


def decode_step_s(engine: LLMEngine, rng) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=DECODE_STEPS + 4, ignore_eos=True)
    for i in range(DECODE_SEQS):
        engine.add_request(f"d{i}", rng.integers(0, 8192, DECODE_PROMPT).tolist(), params)
    for _ in range(DECODE_SEQS * DECODE_PROMPT // PREFILL_TOKENS + 2):  # the prompts, then compiling decode
        engine.step()
    times = [timed_step(engine) for _ in range(DECODE_STEPS)]
    while engine.has_unfinished_requests():
        engine.step()
    return statistics.median(times)


def prefill_step_s(engine: LLMEngine, rng) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True)
    times = []
    for i in range(PREFILL_RUNS + 1):
        engine.add_request(f"p{i}", rng.integers(0, 8192, PREFILL_TOKENS).tolist(), params)
        times.append(timed_step(engine))
        while engine.has_unfinished_requests():
            engine.step()
    return statistics.median(times[1:])  # the first compiles


def measure(cfg: ModelConfig) -> tuple[float, float, int]:
    engine = engine_for(cfg)
    rng = np.random.default_rng(0)
    params = sum(int(np.prod(shape)) for shape in model_param_shapes(cfg).values())
    return decode_step_s(engine, rng), prefill_step_s(engine, rng), params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", help="write the markdown table here too")
    args = parser.parse_args()
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} "
             f"({jax.default_backend()}), float32; load average {os.getloadavg()[0]:.1f} at start.", "",
             "| shape | model | weights (M) | decode step ms (8 seqs) | prefill step ms (128 tokens) |",
             "|---|---|---|---|---|"]
    for name, (moe, dense) in PAIRS.items():
        (moe_decode, moe_prefill, moe_params), (dense_decode, dense_prefill, dense_params) = measure(moe), \
            measure(dense)
        lines.append(f"| {name} | MoE | {moe_params / 1e6:.1f} | {moe_decode * 1e3:.1f} | {moe_prefill * 1e3:.1f} |")
        lines.append(f"| | dense, same active | {dense_params / 1e6:.1f} | {dense_decode * 1e3:.1f} | "
                     f"{dense_prefill * 1e3:.1f} |")
        lines.append(f"| | MoE / dense | | {moe_decode / dense_decode:.2f}x | {moe_prefill / dense_prefill:.2f}x |")
        print("\n".join(lines[-3:]), flush=True)
    lines.append(f"\nLoad average {os.getloadavg()[0]:.1f} at the end.")
    print("\n".join(lines))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
