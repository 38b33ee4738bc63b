"""`cortexstream bench throughput`: offline throughput through the engine (random-token prompts)."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from jax_engine.config import EngineConfig
from jax_engine.llm_engine import LLMEngine
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output import StructuredOutputParams


def add_arguments(p) -> None:
    p.add_argument("--num-prompts", type=int, default=64, help="requests, all submitted at once")
    p.add_argument("--input-len", type=int, default=128, help="prompt tokens per request")
    p.add_argument("--output-len", type=int, default=128, help="output tokens per request")
    p.add_argument("--output-json", default=None, help="write the results (vLLM's keys) here")
    p.add_argument("--hbm-tbps", type=float, default=None,
                   help="memory bandwidth for the roofline (default: known GPUs' HBM, else none)")
    p.add_argument("--json-schema", default=None, metavar="PATH",
                   help="then rerun the same prompts with every output constrained to this JSON schema")


def random_prompts(num_prompts: int, input_len: int, vocab_size: int, seed: int) -> list[list[int]]:
    """Distinct random prompts (distinct first token) so the prefix cache does not flatter the numbers."""
    rng = np.random.default_rng(seed)
    prompts = rng.integers(100, vocab_size, size=(num_prompts, input_len)).tolist()
    for i, p in enumerate(prompts):
        p[0] = 100 + i % (vocab_size - 100)
    return prompts


def run(args, config: EngineConfig) -> int:
    engine = LLMEngine.from_config(config)
    prompts = random_prompts(args.num_prompts, args.input_len, engine.model_config.vocab_size, args.seed)
    params = SamplingParams(temperature=0.0, max_tokens=args.output_len, ignore_eos=True)
    num_output, elapsed = generate(engine, prompts, params)
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
    result.update(roofline(engine, args))
    if result.get("roofline_output_throughput"):
        print(f"Decode roofline (weights + KV read per step at batch {result['roofline_batch']}): "
              f"{result['roofline_output_throughput']:.0f} output tok/s; achieved "
              f"{100 * result['output_throughput'] / result['roofline_output_throughput']:.1f}%")
    if args.json_schema:
        result.update(json_schema_run(engine, prompts, params, args.json_schema, result["output_throughput"]))
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def generate(engine, prompts: list[list[int]], params: SamplingParams) -> tuple[int, float]:
    """(output tokens, seconds) for the prompts run to completion together."""
    start = time.perf_counter()
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), prompt, params)
    num_output = 0
    while engine.has_unfinished_requests():
        num_output += sum(len(o.new_token_ids) for o in engine.step())
    return num_output, time.perf_counter() - start


def json_schema_run(engine, prompts, params: SamplingParams, path: str, plain_throughput: float) -> dict:
    """The same workload with a json_schema constraint. Pick a schema long enough to fill --output-len,
    or the grammar ends outputs early and the two runs generate different token counts."""
    with open(path) as f:
        schema = json.load(f)
    constrained = dataclasses.replace(params, structured_output=StructuredOutputParams(json=schema))
    engine.block_manager.reset_prefix_cache()
    mask_s = engine.runner.grammar_s
    num_output, elapsed = generate(engine, prompts, constrained)
    out = {"json_schema_num_output_tokens": num_output, "json_schema_output_throughput": num_output / elapsed,
           "json_schema_grammar_mask_time_share": (engine.runner.grammar_s - mask_s) / elapsed}
    print(f"With json_schema: {out['json_schema_output_throughput']:.2f} output tokens/s "
          f"({100 * out['json_schema_output_throughput'] / plain_throughput:.1f}% of unconstrained, "
          f"{num_output} tokens; grammar masks {100 * out['json_schema_grammar_mask_time_share']:.1f}% of the time)")
    return out


HBM_TBPS = {"H100": 3.35, "H200": 4.8, "A100": 2.0}


def roofline(engine, args) -> dict:
    """Output tok/s if every decode step only had to read the weights and the batch's KV once."""
    import jax

    cfg, runner = engine.model_config, engine.runner
    weight_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(runner.state))
    kv_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * runner.k_cache.dtype.itemsize
    out: dict[str, float] = {"weight_bytes": int(weight_bytes), "kv_bytes_per_token": int(kv_per_token)}
    kind = jax.devices()[0].device_kind
    tbps = args.hbm_tbps or next((v for k, v in HBM_TBPS.items() if k in kind), None)
    if tbps is None:
        return out
    batch = min(engine.config.max_num_seqs, args.num_prompts)
    mean_context = args.input_len + args.output_len / 2
    step_bytes = weight_bytes + batch * mean_context * kv_per_token
    out.update(hbm_tbps=tbps, roofline_batch=batch, roofline_output_throughput=batch * tbps * 1e12 / step_bytes)
    return out
