"""`cortexstream bench throughput`: offline throughput through the engine (random-token prompts)."""

from __future__ import annotations

import json
import time

import numpy as np

from jax_engine.config import EngineConfig
from jax_engine.engine import build_llm_engine
from jax_engine.sampling_params import SamplingParams


def add_arguments(p) -> None:
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--output-json", default=None)


def random_prompts(num_prompts: int, input_len: int, vocab_size: int, seed: int) -> list[list[int]]:
    """Distinct random prompts (distinct first token) so the prefix cache does not flatter the numbers."""
    rng = np.random.default_rng(seed)
    prompts = rng.integers(100, vocab_size, size=(num_prompts, input_len)).tolist()
    for i, p in enumerate(prompts):
        p[0] = 100 + i % (vocab_size - 100)
    return prompts


def run(args, config: EngineConfig) -> dict:
    engine = build_llm_engine(config)
    prompts = random_prompts(args.num_prompts, args.input_len, engine.model_config.vocab_size, args.seed)
    params = SamplingParams(temperature=0.0, max_tokens=args.output_len, ignore_eos=True)
    start = time.perf_counter()
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), prompt, params)
    num_output = 0
    while engine.has_unfinished_requests():
        num_output += sum(len(o.new_token_ids) for o in engine.step())
    elapsed = time.perf_counter() - start
    s = engine.stats
    result = {
        "elapsed_time": elapsed,
        "num_requests": len(prompts),
        "total_num_tokens": args.num_prompts * args.input_len + num_output,
        "requests_per_second": len(prompts) / elapsed,
        "output_throughput": num_output / elapsed,
        "total_token_throughput": (args.num_prompts * args.input_len + num_output) / elapsed,
        "max_num_seqs": config.max_num_seqs,
        "num_steps": s.num_steps,
        "schedule_time_share": s.schedule_s / elapsed,
        "prepare_inputs_time_share": engine.runner.prepare_s / elapsed,
        "model_step_time_share": (s.execute_s - engine.runner.prepare_s) / elapsed,
        "postprocess_time_share": s.postprocess_s / elapsed,
        "num_preemptions": engine.scheduler.num_preemptions,
        "warmup_seconds": engine.warmup_seconds,
    }
    print(f"Throughput: {result['requests_per_second']:.2f} requests/s, "
          f"{result['total_token_throughput']:.2f} total tokens/s, {result['output_throughput']:.2f} output tokens/s")
    print(f"Step time: scheduling {100 * result['schedule_time_share']:.1f}%, input prep "
          f"{100 * result['prepare_inputs_time_share']:.1f}%, jitted step + sampling "
          f"{100 * result['model_step_time_share']:.1f}%, postprocess {100 * result['postprocess_time_share']:.1f}% "
          f"over {s.num_steps} steps")
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(result, f, indent=2)
    return 0
