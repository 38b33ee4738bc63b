"""Helpers for tests that drive the engine and model runner directly."""

from __future__ import annotations

import numpy as np

from jax_engine.config import EngineConfig
from jax_engine.llm_engine import LLMEngine
from jax_engine.loader import load_checkpoint
from jax_engine.request import Request
from jax_engine.sampling_params import SamplingParams
from jax_engine.scheduler import ScheduledRequest, SchedulerOutput


def small_engine_config(**kw) -> EngineConfig:
    defaults = dict(dtype="float32", quantization="none", max_decode_slowdown=0.0, max_model_len=256,
                    max_num_batched_tokens=64, max_num_seqs=16,
                    kv_cache_memory=0.02, warmup=False, compilation_cache_dir="/tmp/cortexstream-test-jax-cache")
    return EngineConfig(**{**defaults, **kw})


def engine_for(path: str, **kw) -> LLMEngine:
    ckpt = load_checkpoint(path)
    kw.setdefault("max_model_len", min(256, ckpt.config.max_position_embeddings))
    return LLMEngine(ckpt.config, ckpt.weights, ckpt.tokenizer, ckpt.generation.eos_token_ids,
                     small_engine_config(**kw))


def run_to_completion(engine: LLMEngine) -> dict[str, list[int]]:
    tokens: dict[str, list[int]] = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            key = out.request_id if out.index == 0 else f"{out.request_id}#{out.index}"
            tokens.setdefault(key, []).extend(out.new_token_ids)
    return tokens


def forward_logits(engine: LLMEngine, token_ids: list[int], num_computed: int, req: Request) -> np.ndarray:
    """Run token_ids[num_computed:] of a request through the model and return logits at every new position."""
    bm = engine.block_manager
    req.prompt_token_ids = list(token_ids)
    n_new = len(token_ids) - num_computed
    req.num_computed_tokens = num_computed
    assert bm.allocate_slots(req, n_new)
    out = SchedulerOutput([ScheduledRequest(req, n_new)])
    runner = engine.runner
    batch = runner.prepare_inputs(out)
    _, hidden, runner.k_cache, runner.v_cache = runner._forward(
        runner.state, runner.k_cache, runner.v_cache, batch.token_ids, batch.positions, batch.md,
        batch.logits_indices)
    logits = np.asarray(runner._logits(runner.state, hidden))
    return logits[:n_new]


def new_request(request_id: str = "r") -> Request:
    return Request(request_id, [], SamplingParams())
