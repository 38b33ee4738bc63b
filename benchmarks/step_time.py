"""Model step time on the engine's own compiled steps: decode at each batch size and context, prefill tokens/s.

    python benchmarks/step_time.py [--model GGUF_OR_DIR] [--quantization auto] [--batch 1 8 32]
                                   [--context 128 1024 2048] [--repeats 10] [--output-json F]

Decode: every sequence of the batch has `context` tokens cached and computes one more (its pages are distinct
where the pool allows, else shared: the step reads them all either way). Prefill: one prompt of `context`
tokens computed in chunks of --max-num-batched-tokens, as the scheduler would with nothing else running.
Times are medians over --repeats runs of the compiled step (sampling excluded), the device synced each time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jax_engine.config import EngineConfig  # noqa: E402
from jax_engine.llm_engine import LLMEngine  # noqa: E402
from jax_engine.model_runner import PREFILL_BLOCK_Q  # noqa: E402
from jax_engine.models.llama import AttentionMetadata  # noqa: E402


def block_tables(runner, num_seqs: int, num_pages: int, num_blocks: int) -> np.ndarray:
    pages = np.arange(num_seqs * num_pages, dtype=np.int32) % num_blocks
    table = np.zeros((num_seqs, runner.block_table_width), np.int32)
    table[:, :num_pages] = pages.reshape(num_seqs, num_pages)
    return table


def timed(runner, step, token_ids, positions, md, logits_indices, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        out = step(runner.state, runner.k_cache, runner.v_cache, token_ids, positions, md, logits_indices)
        jax.block_until_ready(out[0])
        runner.k_cache, runner.v_cache = out[2], out[3]
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def compiled(runner, num_tokens: int, block_q: int):
    return runner._compiled_steps.get((num_tokens, block_q), runner._forward)


def decode_ms(runner, num_blocks: int, batch: int, context: int, repeats: int) -> float:
    bs = runner.block_size
    num_pages = context // bs + 1
    table = block_tables(runner, batch, num_pages, num_blocks)
    positions = np.full(batch, context, np.int32)
    slots = table[:, context // bs] * bs + context % bs
    md = AttentionMetadata(slots.astype(np.int32), table, np.full(batch, context + 1, np.int32),
                           np.arange(batch + 1, dtype=np.int32), block_q=runner.decode_block_q)
    step = compiled(runner, batch, runner.decode_block_q)
    return 1e3 * timed(runner, step, np.ones(batch, np.int32), positions, md, np.arange(batch, dtype=np.int32),
                       repeats)


def prefill_tokens_per_s(runner, num_blocks: int, context: int, chunk: int, repeats: int) -> float:
    bs = runner.block_size
    table = block_tables(runner, 1, -(-context // bs), num_blocks)
    total = 0.0
    for start in range(0, context, chunk):
        n = min(chunk, context - start)
        num_tokens = next(t for t in runner.token_buckets if t >= n)
        pos = np.arange(start, start + n, dtype=np.int32)
        positions = np.zeros(num_tokens, np.int32)
        positions[:n] = pos
        slots = np.full(num_tokens, -1, np.int32)
        slots[:n] = table[0, pos // bs] * bs + pos % bs
        md = AttentionMetadata(slots, table, np.array([start + n], np.int32), np.array([0, n], np.int32),
                               block_q=PREFILL_BLOCK_Q)
        step = compiled(runner, num_tokens, PREFILL_BLOCK_Q)
        total += timed(runner, step, np.ones(num_tokens, np.int32), positions, md, np.array([n - 1], np.int32),
                       repeats)
    return context / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--quantization", default="auto")
    p.add_argument("--batch-invariant", action="store_true")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--context", type=int, nargs="+", default=[128, 1024, 2048])
    p.add_argument("--max-num-batched-tokens", type=int, default=512)
    p.add_argument("--kv-cache-memory", type=float, default=None)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--output-json", default=None)
    args = p.parse_args()
    engine = LLMEngine.from_config(EngineConfig(
        model=args.model, quantization=args.quantization, batch_invariant=args.batch_invariant,
        max_num_seqs=max(args.batch), max_num_batched_tokens=args.max_num_batched_tokens,
        max_model_len=max(args.context) + 1, kv_cache_memory=args.kv_cache_memory))
    runner, num_blocks = engine.runner, len(engine.block_manager.blocks)
    rows = []
    for context in args.context:
        row = {"context": context, "quantization": engine.quantization,
               "prefill_tokens_per_s": prefill_tokens_per_s(runner, num_blocks, context,
                                                            args.max_num_batched_tokens, args.repeats)}
        for batch in args.batch:
            row[f"decode_ms_b{batch}"] = decode_ms(runner, num_blocks, batch, context, args.repeats)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"cpu": cpu_model(), "rows": rows}, f, indent=2)


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return jax.devices()[0].device_kind


if __name__ == "__main__":
    main()
