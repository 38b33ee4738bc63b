"""The synchronous engine core: admission, then the step loop schedule -> execute -> process outputs."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import jax

from jax_engine.block_manager import BlockManager
from jax_engine.config import HEADLESS_ARCHITECTURES, ConfigError, EngineConfig, ModelConfig
from jax_engine.engine_client import EngineLimits, EngineStats
from jax_engine.errors import RequestField, RequestValidationError
from jax_engine.kv_cache_spec import kv_cache_spec
from jax_engine.model_runner import ModelRunner
from jax_engine.models.registry import model_class
from jax_engine.output_processor import OutputProcessor
from jax_engine.outputs import RequestOutput, RequestTiming
from jax_engine.pooler import Pooler, PoolerConfig
from jax_engine.pooling_params import PoolingParams
from jax_engine.quantization import int8_weights, resolve_quantization
from jax_engine.request import Request
from jax_engine.sampling_params import SamplingParams
from jax_engine.scheduler import Scheduler, SchedulerOutput
from jax_engine.sharding import device_groups, tensor_parallel_layout, tp_mesh
from jax_engine.step_budget import StepBudget
from jax_engine.structured_output import StructuredOutputManager
from jax_engine.tokenizer import Tokenizer
from jax_engine.validation import validate_pooling_request, validate_request

logger = logging.getLogger(__name__)


@dataclass
class StepStats:
    """Where step time goes: host scheduling, the model step (device + input prep), host postprocessing."""
    num_steps: int = 0
    num_tokens: int = 0
    schedule_s: float = 0.0
    execute_s: float = 0.0
    postprocess_s: float = 0.0

    def record(self, out: SchedulerOutput, schedule_s: float, execute_s: float, postprocess_s: float) -> None:
        self.num_steps += 1
        self.num_tokens += out.num_tokens
        self.schedule_s += schedule_s
        self.execute_s += execute_s
        self.postprocess_s += postprocess_s


def enable_compilation_cache(path: str | None) -> None:
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def choice_seed(seed: int, index: int) -> int:
    """Choice 0 samples from the request's seed; choice i from a hash of (seed, i), so no choice replays
    another seed's stream (seed + i did: seed 5's choice 1 was seed 6's choice 0)."""
    if index == 0:
        return seed
    return int.from_bytes(hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=4).digest(), "little")


def pooler_config(config: EngineConfig, model_config: ModelConfig) -> PoolerConfig | None:
    """The pooler of an embed engine; None for a generating one, which needs a model with an LM head."""
    if config.task == "embed":
        return PoolerConfig.from_dict(config.pooler_config)
    if config.pooler_config is not None:
        raise ConfigError("--pooler-config applies to --task embed only")
    if model_config.architecture in HEADLESS_ARCHITECTURES:
        raise ConfigError(f"{model_config.architecture} has no LM head, so it cannot generate: serve it with "
                          "--task embed")
    return None


def resolve_dtype(name: str):
    if name in ("auto", None):
        return jax.numpy.bfloat16 if jax.default_backend() == "gpu" else jax.numpy.float32
    return {"float32": jax.numpy.float32, "bfloat16": jax.numpy.bfloat16, "float16": jax.numpy.float16}[name]


def check_tensor_parallel(model_config: ModelConfig, config: EngineConfig) -> None:
    """Refuse what cannot be split: a model class that does not read the sharded layout, and int8 (whose
    smoothing and W8A8 kernels run on one CPU device)."""
    if config.tensor_parallel_size == 1:
        return
    if not getattr(model_class(model_config), "tensor_parallel", False):
        raise ConfigError(f"--tensor-parallel-size > 1 is not supported for {model_config.architecture}")
    if config.quantization == "int8":
        raise ConfigError("--quantization int8 runs on one device; with --tensor-parallel-size > 1 use "
                          "--quantization none (or auto)")


class LLMEngine:
    def __init__(self, model_config: ModelConfig, weights: dict, tokenizer: Tokenizer | None,
                 eos_token_ids: list[int], config: EngineConfig,
                 generation_defaults: Mapping[str, float | int] | None = None, checkpoint_quantized: bool = False,
                 devices: list[jax.Device] | None = None):
        """`devices`: the --tensor-parallel-size devices this engine runs on (default: the first ones)."""
        enable_compilation_cache(config.compilation_cache_dir)
        model_config = model_config.with_hf_overrides(config.hf_overrides)
        self.model_config = model_config
        self.config = config
        self.task = config.task
        pooler = pooler_config(config, model_config)
        self.tokenizer = tokenizer
        self.eos_token_ids = tuple(eos_token_ids)
        self.generation_defaults = dict(generation_defaults or {})
        self.dtype = resolve_dtype(config.dtype)
        tp = config.tensor_parallel_size
        check_tensor_parallel(model_config, config)
        self.quantization = resolve_quantization(config.quantization, checkpoint_quantized and tp == 1,
                                                 jax.default_backend(), model_config)
        if self.quantization == "int8":
            weights = int8_weights(model_config, weights, tokenizer)
        mesh = tp_mesh(devices or device_groups(tp)[0])
        model_config, weights = tensor_parallel_layout(model_config, weights, tp)
        kv = kv_cache_spec(model_config, config, weights, self.dtype)
        self.max_model_len = kv.max_model_len
        self.model_config = model_config = model_config.with_max_model_len(self.max_model_len)
        self.runner = ModelRunner(model_config, weights, self.dtype, kv.num_blocks, config.block_size,
                                  self.max_model_len, config.max_num_seqs, config.max_num_batched_tokens,
                                  batch_invariant=config.batch_invariant, pooler=pooler, mesh=mesh)
        # MEAN pools every prompt position, so none may be skipped as a prefix-cache hit; LAST needs only the last
        self.block_manager = BlockManager(kv.num_blocks, config.block_size, config.enable_prefix_caching and (
            pooler is None or pooler.pooling_type == "LAST"))
        self.step_budget = StepBudget(self.runner.token_buckets, config.max_num_batched_tokens,
                                      config.max_decode_slowdown)
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_num_batched_tokens,
                                   self.max_model_len, self.step_budget)
        self.limits = EngineLimits(self.max_model_len, model_config.vocab_size, kv.num_blocks * kv.block_size)
        self.structured_output = (StructuredOutputManager(tokenizer, model_config.vocab_size, self.eos_token_ids)
                                  if tokenizer is not None else None)
        self.output_processor = OutputProcessor(self.scheduler, tokenizer, self.max_model_len,
                                                Pooler(pooler) if pooler is not None else None)
        self.stats = StepStats()
        self.rng = random.Random(config.seed)
        self.warmup_seconds = self.runner.warmup() if config.warmup else 0.0
        if config.warmup and self.structured_output is not None and pooler is None:
            self.structured_output.warmup()
        logger.info("KV cache: %d blocks of %d tokens (%.2f GiB); max_model_len %d; quantization %s; "
                    "batch invariant %s; warmup %.1f s", kv.num_blocks, config.block_size, kv.num_bytes / 2**30,
                    self.max_model_len, self.quantization, config.batch_invariant, self.warmup_seconds)

    @classmethod
    def from_config(cls, config: EngineConfig, devices: list[jax.Device] | None = None) -> LLMEngine:
        """Load the checkpoint named by config.model (or the embedded default), or random weights of its shape."""
        from jax_engine.loader import load_checkpoint

        if config.load_format == "dummy":
            from jax_engine.dummy import dummy_config
            from jax_engine.models.registry import random_weights

            cfg = dummy_config(config.model or "smollm2-135m")
            return cls(cfg, random_weights(cfg, resolve_dtype(config.dtype), config.seed), None, [], config,
                       devices=devices)
        ckpt = load_checkpoint(config.model)
        logger.info("loaded %s in %.1f s", config.model or "the default model", ckpt.load_seconds)
        return cls(ckpt.config, ckpt.weights, ckpt.tokenizer, ckpt.generation.eos_token_ids, config,
                   generation_defaults=ckpt.generation.sampling, checkpoint_quantized=ckpt.quantized, devices=devices)

    # ---- admission ------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams | PoolingParams,
                    arrival_ns: int | None = None) -> None:
        self.validate(prompt_token_ids, params)
        self.admit(request_id, prompt_token_ids, params, arrival_ns)

    def validate(self, prompt_token_ids: list[int], params: SamplingParams | PoolingParams) -> None:
        """Raises RequestValidationError (naming the field) for what this engine cannot serve."""
        pooling = isinstance(params, PoolingParams)
        if pooling != (self.task == "embed"):
            raise RequestValidationError(
                "this engine serves embeddings (--task embed); it generates nothing" if self.task == "embed" else
                "this engine generates (--task generate); embeddings need --task embed", RequestField.TASK)
        if isinstance(params, PoolingParams):
            validate_pooling_request(prompt_token_ids, params, self.limits, self.model_config)
        else:
            validate_request(prompt_token_ids, params, self.limits, self.structured_output)

    def admit(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams | PoolingParams,
              arrival_ns: int | None = None) -> None:
        """Queue a validated request: one Request per sample, sharing the prompt."""
        if request_id in self.output_processor.children:
            raise RequestValidationError(f"duplicate request id {request_id!r}", RequestField.REQUEST_ID)
        arrival_ns = time.monotonic_ns() if arrival_ns is None else arrival_ns
        if isinstance(params, PoolingParams):
            self._admit_pooling(request_id, prompt_token_ids, params, arrival_ns)
            return
        max_tokens = self.max_model_len - len(prompt_token_ids)
        if params.max_tokens is not None:
            max_tokens = min(max_tokens, params.max_tokens)
        ids = [request_id] if params.n == 1 else [f"{i}-{request_id}" for i in range(params.n)]
        samples = []
        for index, child_id in enumerate(ids):
            seed = choice_seed(params.seed, index) if params.seed is not None else self.rng.getrandbits(32)
            req = Request(child_id, list(prompt_token_ids), params, priority=params.priority, seed=seed % 2**32,
                          parent_id=request_id if params.n > 1 else None, index=index, max_tokens=max_tokens,
                          eos_token_ids=self.eos_token_ids, timing=RequestTiming(arrival_ns))
            if params.structured_output is not None and self.structured_output is not None:
                req.grammar = self.structured_output.grammar(params.structured_output)
            samples.append(req)
        self.output_processor.add_request(request_id, samples)
        for req in samples:
            self.scheduler.add_request(req)

    def _admit_pooling(self, request_id: str, prompt_token_ids: list[int], params: PoolingParams,
                       arrival_ns: int) -> None:
        """One Request that computes its prompt and finishes with the pooled result: it samples nothing."""
        req = Request(request_id, list(prompt_token_ids), SamplingParams(max_tokens=1), priority=params.priority,
                      max_tokens=1, timing=RequestTiming(arrival_ns), pooling_params=params)
        self.output_processor.add_request(request_id, [req])
        self.scheduler.add_request(req)

    def abort_request(self, request_id: str) -> list[RequestOutput]:
        return self.output_processor.abort(request_id)

    def abort_all(self) -> list[RequestOutput]:
        return [out for request_id in list(self.output_processor.children) for out in self.abort_request(request_id)]

    def close(self) -> None:
        self.runner.close()

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished()

    # ---- one step ---------------------------------------------------------------------------
    def step(self) -> list[RequestOutput]:
        t0 = time.perf_counter()
        out = self.scheduler.schedule()
        if not out:
            return []
        t1 = time.perf_counter()
        try:
            result = self.runner.execute(out)
        except Exception as e:  # fail only the requests of this step; the engine keeps serving
            logger.exception("model step failed; failing the %d requests it held", len(out.scheduled))
            return self.output_processor.fail(out, f"{type(e).__name__}: {e}")
        t2 = time.perf_counter()
        self.step_budget.record(out.num_tokens, t2 - t1)
        self.scheduler.update(out)
        outputs = self.output_processor.process(out, result)
        self.stats.record(out, t1 - t0, t2 - t1, time.perf_counter() - t2)
        return outputs

    # ---- state ------------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.waiting)

    @property
    def kv_cache_usage(self) -> float:
        return self.block_manager.usage

    def stats_snapshot(self) -> EngineStats:
        return EngineStats(num_running=self.num_running, num_waiting=self.num_waiting,
                           kv_cache_usage=self.kv_cache_usage, prefix_cache_queries=self.block_manager.num_queries,
                           prefix_cache_hits=self.block_manager.num_hits,
                           num_preemptions=self.scheduler.num_preemptions)
