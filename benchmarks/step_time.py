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
from jax_engine.scheduler import ScheduledRequest, SchedulerOutput  # noqa: E402


class FakeRequest:
    """What prepare_inputs reads of a request: its cached tokens, block table and token ids."""

    def __init__(self, num_computed_tokens: int, block_table: list[int]):
        self.num_computed_tokens = num_computed_tokens
        self.block_table = block_table

    def token_slice(self, first: int, end: int) -> list[int]:
        return [1] * (end - first)


def pages(num_seqs: int, num_pages: int, num_blocks: int) -> list[list[int]]:
    ids = np.arange(num_seqs * num_pages) % num_blocks
    return ids.reshape(num_seqs, num_pages).tolist()


def step_seconds(runner, scheduled: list[tuple[FakeRequest, int]], repeats: int) -> float:
    """Median wall time of the compiled step the engine would run for these (request, new tokens)."""
    out = SchedulerOutput([ScheduledRequest(req, n) for req, n in scheduled])
    batch = runner.prepare_inputs(out)
    step = runner._compiled_steps.get((len(batch.token_ids), batch.md.block_q), runner._forward)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        logits, _, runner.k_cache, runner.v_cache = step(runner.state, runner.k_cache, runner.v_cache,
                                                         batch.token_ids, batch.positions, batch.md,
                                                         batch.logits_indices)
        jax.block_until_ready(logits)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def decode_ms(runner, num_blocks: int, batch: int, context: int, repeats: int) -> float:
    tables = pages(batch, context // runner.block_size + 1, num_blocks)
    return 1e3 * step_seconds(runner, [(FakeRequest(context, t), 1) for t in tables], repeats)


def prefill_tokens_per_s(runner, num_blocks: int, context: int, chunk: int, repeats: int) -> float:
    table = pages(1, -(-context // runner.block_size), num_blocks)[0]
    total = sum(step_seconds(runner, [(FakeRequest(start, table), min(chunk, context - start))], repeats)
                for start in range(0, context, chunk))
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
