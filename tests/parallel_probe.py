"""Runs the engine split over several CPU devices and writes what it computed, for tests/test_parallel.py.

The device count must be set before jax is imported, so this runs as its own process:
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m tests.parallel_probe OUT_DIR
It writes OUT_DIR/tp.npz (logits and greedy tokens per model and TP size), OUT_DIR/facts.json (memory per device,
data-parallel routing). The assertions live in the test, against the golden files and TP 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import numpy as np

from jax_engine.async_engine import AsyncEngine
from jax_engine.data_parallel import DataParallelEngine
from jax_engine.llm_engine import LLMEngine
from jax_engine.loader import default_model_path, load_checkpoint
from jax_engine.sampling_params import SamplingParams
from jax_engine.sharding import bytes_per_device, device_groups
from tests.engine_utils import engine_for, forward_logits, new_request, run_to_completion, small_engine_config

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
GOLDEN_MODELS = ("llama", "qwen2", "qwen3")
TP_SIZES = (1, 2, 4)
LOGITS_PROMPT = 2  # the longest golden prompt: its prefill spans several attention blocks


def golden_model_outputs(name: str, tp: int, out: dict) -> None:
    """One golden prompt's prefill and decode logits and its greedy tokens; the batch shapes are few, so the
    compiles are few (the prefill, the decode step, their samplers and logits)."""
    engine = engine_for(os.path.join(GOLDEN, name), tensor_parallel_size=tp)
    if name == "llama":
        out[f"{name}/tp{tp}/memory"] = memory_per_device(engine)
    if tp == 1:  # TP 1's logits and tokens are tests/test_golden.py's
        return
    golden = np.load(os.path.join(GOLDEN, name, "golden.npz"))
    prompt = golden[f"prompt_{LOGITS_PROMPT}"].tolist()
    req = new_request("logits")
    out[f"{name}/tp{tp}/prefill_logits"] = forward_logits(engine, prompt, 0, req)
    tokens, decode = list(prompt), []
    for token in golden[f"greedy_tokens_{LOGITS_PROMPT}"][:-1].tolist():
        tokens.append(token)
        decode.append(forward_logits(engine, tokens, len(tokens) - 1, req)[0])
    out[f"{name}/tp{tp}/decode_logits"] = np.stack(decode)
    engine.block_manager.free(req)
    engine.add_request("greedy", prompt, SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True))
    out[f"{name}/tp{tp}/greedy"] = np.asarray(run_to_completion(engine)["greedy"])


def memory_per_device(engine: LLMEngine) -> np.ndarray:
    """[weight bytes, KV-cache bytes per block] on the device holding the most."""
    runner = engine.runner
    weights = max(bytes_per_device(runner.state).values())
    kv = max(bytes_per_device((runner.k_cache, runner.v_cache)).values())
    return np.asarray([weights, kv // engine.block_manager.num_blocks])


def default_model_outputs(ckpt, tp: int, out: dict) -> None:
    config = small_engine_config(tensor_parallel_size=tp, max_num_batched_tokens=32)
    engine = LLMEngine(ckpt.config, ckpt.weights, ckpt.tokenizer, ckpt.generation.eos_token_ids, config)
    golden = np.load(os.path.join(GOLDEN, "smollm2_golden.npz"))
    req = new_request("logits")
    out[f"smollm2/tp{tp}/last_logits"] = forward_logits(engine, golden["prompt_0"].tolist(), 0, req)[-1]
    engine.block_manager.free(req)
    engine.add_request("g0", golden["prompt_0"].tolist(), SamplingParams(temperature=0.0, max_tokens=8))
    out[f"smollm2/tp{tp}/greedy_0"] = np.asarray(run_to_completion(engine)["g0"])
    out[f"smollm2/tp{tp}/memory"] = memory_per_device(engine)


async def data_parallel_facts() -> dict:
    """Two replicas of the tiny Llama on devices 0 and 1: a repeated prompt, then two distinct ones at once."""
    ckpt = load_checkpoint(os.path.join(GOLDEN, "llama"))
    config = small_engine_config(max_model_len=128)
    replicas = [AsyncEngine(LLMEngine(ckpt.config, ckpt.weights, ckpt.tokenizer, ckpt.generation.eos_token_ids,
                                      config, devices=group)) for group in device_groups(1, 2)]
    engine = DataParallelEngine(replicas)
    engine.start()
    params = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)
    shared = list(range(1, 49))  # three full 16-token blocks

    async def run(request_id: str, prompt: list[int]) -> dict:
        handle = engine.add_request(request_id, prompt, params)
        replica = next(i for i, r in enumerate(engine.replicas) if request_id in r._handles)
        async for out in handle:
            last = out
        await handle.aclose()
        return {"replica": replica, "cached_tokens": last.num_cached_tokens,
                "device": str(engine.replicas[replica].core.runner.mesh.devices.flat[0])}

    facts = {"first": await run("first", shared + [60]), "repeat": await run("repeat", shared + [61])}
    a, b = await asyncio.gather(run("a", list(range(100, 140))), run("b", list(range(200, 240))))
    facts["distinct"] = [a, b]
    facts["replica_stats"] = [s.prefix_cache_queries for s in engine.stats().replicas]
    engine.shutdown()
    return facts


def main(out_dir: str) -> None:
    out: dict = {}
    for name in GOLDEN_MODELS:
        for tp in TP_SIZES if name == "llama" else TP_SIZES[1:]:
            golden_model_outputs(name, tp, out)
    default_model = load_checkpoint(default_model_path())
    for tp in TP_SIZES:
        default_model_outputs(default_model, tp, out)
    np.savez(os.path.join(out_dir, "tp.npz"), **out)
    with open(os.path.join(out_dir, "facts.json"), "w") as f:
        json.dump({"data_parallel": asyncio.run(data_parallel_facts())}, f)


if __name__ == "__main__":
    main(sys.argv[1])
