"""The synchronous engine core: admission, schedule -> execute -> update, detokenize and stop."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass

import jax
import numpy as np

from jax_engine.block_manager import BlockManager
from jax_engine.config import ConfigError, EngineConfig, ModelConfig
from jax_engine.detokenizer import IncrementalDetokenizer
from jax_engine.errors import ContextLengthExceeded, RequestValidationError
from jax_engine.model_runner import ModelRunner, ModelRunnerOutput, kv_cache_bytes_per_block
from jax_engine.outputs import RequestOutput
from jax_engine.quantization import int8_weights, resolve_quantization
from jax_engine.request import Request
from jax_engine.sampling_params import SamplingParams
from jax_engine.scheduler import Scheduler, SchedulerOutput
from jax_engine.step_budget import StepBudget
from jax_engine.stop_checker import StopChecker
from jax_engine.structured_output import StructuredOutputManager

logger = logging.getLogger(__name__)

CPU_DEFAULT_MAX_MODEL_LEN = 2048
CPU_DEFAULT_KV_CACHE_GIB = 1.0
FLOAT32_MAX = float(np.finfo(np.float32).max)


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


@dataclass
class RequestState:
    """Host-side per-request state that the scheduler does not need."""
    request: Request
    detokenizer: IncrementalDetokenizer | None
    stop_checker: StopChecker
    sent_prompt: bool = False


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


def resolve_dtype(name: str):
    if name in ("auto", None):
        return jax.numpy.bfloat16 if jax.default_backend() == "gpu" else jax.numpy.float32
    return {"float32": jax.numpy.float32, "bfloat16": jax.numpy.bfloat16, "float16": jax.numpy.float16}[name]


class LLMEngine:
    def __init__(self, model_config: ModelConfig, weights: dict, tokenizer, eos_token_ids: list[int],
                 config: EngineConfig, checkpoint_quantized: bool = False):
        enable_compilation_cache(config.compilation_cache_dir)
        self.model_config = model_config
        self.config = config
        self.tokenizer = tokenizer
        self.eos_token_ids = tuple(eos_token_ids)
        self.dtype = resolve_dtype(config.dtype)
        on_gpu = jax.default_backend() == "gpu"
        max_len = config.max_model_len or (model_config.max_position_embeddings if on_gpu
                                           else min(model_config.max_position_embeddings, CPU_DEFAULT_MAX_MODEL_LEN))
        if max_len > model_config.max_position_embeddings:
            raise ConfigError(f"{config.model or 'the default model'}: --max-model-len {max_len} exceeds its context "
                              f"of {model_config.max_position_embeddings} tokens (max_position_embeddings)")
        self.max_model_len = max_len
        self.quantization = resolve_quantization(config.quantization, checkpoint_quantized, jax.default_backend())
        if self.quantization == "int8":
            weights = int8_weights(model_config, weights, tokenizer)
        bytes_per_block = kv_cache_bytes_per_block(model_config, config.block_size, self.dtype)
        num_blocks = self._num_blocks(bytes_per_block, weights, on_gpu)
        self.runner = ModelRunner(model_config, weights, self.dtype, num_blocks, config.block_size,
                                  self.max_model_len, config.max_num_seqs, config.max_num_batched_tokens,
                                  batch_invariant=config.batch_invariant)
        self.block_manager = BlockManager(num_blocks, config.block_size, config.enable_prefix_caching)
        self.step_budget = StepBudget(self.runner.token_buckets, config.max_num_batched_tokens,
                                      config.max_decode_slowdown)
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_num_batched_tokens,
                                   self.max_model_len, self.step_budget)
        self.structured_output = (StructuredOutputManager(tokenizer, model_config.vocab_size, self.eos_token_ids)
                                  if tokenizer is not None else None)
        self.states: dict[str, RequestState] = {}
        self.stats = StepStats()
        self.children: dict[str, list[str]] = {}
        self.rng = random.Random(config.seed)
        self.warmup_seconds = self.runner.warmup() if config.warmup else 0.0
        if config.warmup and self.structured_output is not None:
            self.structured_output.warmup()
        logger.info("KV cache: %d blocks of %d tokens (%.2f GiB); max_model_len %d; quantization %s; "
                    "batch invariant %s; warmup %.1f s", num_blocks, config.block_size,
                    num_blocks * bytes_per_block / 2**30, self.max_model_len, self.quantization,
                    config.batch_invariant, self.warmup_seconds)

    def _num_blocks(self, bytes_per_block: int, weights: dict, on_gpu: bool) -> int:
        if self.config.kv_cache_memory is not None:
            budget = self.config.kv_cache_memory * 2**30
        elif on_gpu:
            stats = jax.devices()[0].memory_stats() or {}
            weight_bytes = sum(int(np.prod(v.shape)) for v in weights.values()) * self.dtype.dtype.itemsize
            limit = stats.get("bytes_limit", 16 * 2**30)
            budget = limit * self.config.gpu_memory_utilization - weight_bytes - stats.get("bytes_in_use", 0)
            budget -= 2 * 2**30  # activations and logits
        else:
            budget = CPU_DEFAULT_KV_CACHE_GIB * 2**30
        num_blocks = int(budget // bytes_per_block)
        if num_blocks < 2:
            raise ValueError(f"KV cache budget of {budget / 2**30:.2f} GiB holds no blocks; raise --kv-cache-memory")
        return num_blocks

    # ---- admission ------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams,
                    priority: int = 0) -> None:
        self.validate(prompt_token_ids, params)
        if request_id in self.children:
            raise RequestValidationError(f"duplicate request id {request_id!r}")
        max_tokens = self.max_model_len - len(prompt_token_ids)
        if params.max_tokens is not None:
            max_tokens = min(max_tokens, params.max_tokens)
        ids = [request_id] if params.n == 1 else [f"{i}-{request_id}" for i in range(params.n)]
        self.children[request_id] = ids
        for index, child_id in enumerate(ids):
            seed = choice_seed(params.seed, index) if params.seed is not None else self.rng.getrandbits(32)
            req = Request(child_id, list(prompt_token_ids), params, priority=priority, seed=seed % 2**32,
                          parent_id=request_id if params.n > 1 else None, index=index, max_tokens=max_tokens,
                          eos_token_ids=self.eos_token_ids)
            if params.structured_output is not None:
                req.grammar = self.structured_output.grammar(params.structured_output)
            detok = (IncrementalDetokenizer(self.tokenizer, req.prompt_token_ids, params.skip_special_tokens)
                     if self.tokenizer is not None else None)
            stop_checker = StopChecker(params.stop, params.include_stop_str_in_output)
            self.states[child_id] = RequestState(req, detok, stop_checker)
            self.scheduler.add_request(req)

    def validate(self, prompt_token_ids: list[int], params: SamplingParams) -> None:
        n = len(prompt_token_ids)
        if n == 0:
            raise RequestValidationError("the prompt is empty; send at least one token", param="prompt")
        vocab = self.model_config.vocab_size
        bad = next((t for t in prompt_token_ids if not (isinstance(t, int) and 0 <= t < vocab)), None)
        if bad is not None:
            raise RequestValidationError(f"token id {bad} is outside the vocabulary [0, {vocab})", param="prompt")
        if params.max_tokens is not None and params.max_tokens < 1:
            raise RequestValidationError("max_tokens must be at least 1", param="max_tokens")
        if params.n < 1:
            raise RequestValidationError("n must be at least 1", param="n")
        for name in ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty"):
            value = getattr(params, name)
            if not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
                raise RequestValidationError(f"{name} does not fit a float32", param=name)
        if params.repetition_penalty <= 0:
            raise RequestValidationError("repetition_penalty must be positive", param="repetition_penalty")
        wanted = n + (params.max_tokens if params.max_tokens is not None else 1)
        if n >= self.max_model_len or wanted > self.max_model_len:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.max_model_len} tokens. However, you requested "
                f"{wanted} tokens ({n} in the prompt, {wanted - n} for the completion). Please reduce the length "
                "of the prompt or the completion.")
        capacity = self.block_manager.num_blocks * self.block_manager.block_size
        if wanted > capacity:
            raise ContextLengthExceeded(f"the request needs {wanted} tokens but the KV cache holds only {capacity}")
        for name, ids in (("stop_token_ids", params.stop_token_ids), ("logit_bias", params.logit_bias or {})):
            if any(not (0 <= t < vocab) for t in ids):
                raise RequestValidationError(f"{name} contains token ids outside the vocabulary [0, {vocab})",
                                             param=name)
        if params.structured_output is not None:
            self._validate_structured_output(params)

    def _validate_structured_output(self, params: SamplingParams) -> None:
        """Compiles the grammar, cached, so that the caller's thread pays for it, not the engine's."""
        if self.structured_output is None:
            raise RequestValidationError("structured output needs a tokenizer; this model has none",
                                         param="response_format")
        self.structured_output.compile(params.structured_output)

    def abort_request(self, request_id: str) -> list[RequestOutput]:
        outputs = []
        for child_id in self.children.pop(request_id, []):
            state = self.states.pop(child_id, None)
            if state is not None:
                self.scheduler.finish(state.request)
                state.request.grammar = None
                outputs.append(self._output(state, [], "", None, "abort"))
        return outputs

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
            return self._fail(out, f"{type(e).__name__}: {e}")
        t2 = time.perf_counter()
        self.step_budget.record(out.num_tokens, t2 - t1)
        self.scheduler.update(out)
        outputs = self._process(out, result)
        self.stats.record(out, t1 - t0, t2 - t1, time.perf_counter() - t2)
        return outputs

    def _process(self, out: SchedulerOutput, result: ModelRunnerOutput) -> list[RequestOutput]:
        outputs = []
        for s in out.scheduled:
            req = s.request
            state = self.states.get(req.request_id)
            if state is None:
                continue
            req.prompt_logprobs.extend(result.prompt_logprobs.get(req.request_id, ()))
            if req.request_id not in result.sampled:
                continue
            token_id, logprobs = result.sampled[req.request_id]
            req.output_token_ids.append(token_id)
            outputs.append(self._advance_or_fail(state, token_id, logprobs))
        return outputs

    def _advance_or_fail(self, state: RequestState, token_id: int, logprobs) -> RequestOutput:
        """A failure in this request's detokenizer, grammar or stop strings fails this request, not the engine."""
        try:
            return self._advance(state, token_id, logprobs)
        except Exception as e:
            logger.exception("request %s: processing its output failed", state.request.request_id)
            if state.request.request_id in self.states:
                self._finish(state)
            out = self._output(state, [], "", None, "error")
            out.error = f"{type(e).__name__}: {e}"
            return out

    def _advance(self, state: RequestState, token_id: int, logprobs) -> RequestOutput:
        req, params = state.request, state.request.sampling_params
        finish, stop_reason = self._check_token_stop(req, token_id)
        hide = finish == "stop" and not params.include_stop_str_in_output
        if req.grammar is not None and finish != "stop":
            if not req.grammar.accept_token(token_id):
                return self._grammar_failure(state, token_id)
            if req.grammar.is_terminated:
                finish, stop_reason = "stop", None
        text = ""
        if state.detokenizer is not None:
            piece = state.detokenizer.step([token_id]) if not hide else ""
            if finish:
                piece += state.detokenizer.flush()
            text, stop_str = state.stop_checker.append(piece)
            if stop_str is not None and finish != "stop":
                finish, stop_reason = "stop", stop_str
            if finish:
                text += state.stop_checker.flush()
        if finish:
            self._finish(state)
        return self._output(state, [token_id], text, [logprobs] if logprobs else None, finish, stop_reason)

    def _grammar_failure(self, state: RequestState, token_id: int) -> RequestOutput:
        """The mask forbids this; reaching here is a bug, so fail the request rather than emit invalid output."""
        message = f"token {token_id} violates the request's grammar: {state.request.grammar.error}"
        logger.error("request %s: %s", state.request.request_id, message)
        self._finish(state)
        out = self._output(state, [], "", None, "error")
        out.error = message
        return out

    def _check_token_stop(self, req: Request, token_id: int) -> tuple[str | None, int | None]:
        params = req.sampling_params
        if req.num_output_tokens >= params.min_tokens:
            if not params.ignore_eos and token_id in req.eos_token_ids:
                return "stop", None
            if token_id in params.stop_token_ids:
                return "stop", token_id
        if req.num_output_tokens >= req.max_tokens or req.num_tokens >= self.max_model_len:
            return "length", None
        return None, None

    def _finish(self, state: RequestState) -> None:
        req = state.request
        self.scheduler.finish(req)
        req.grammar = None
        del self.states[req.request_id]
        parent = req.parent_id or req.request_id
        siblings = self.children.get(parent)
        if siblings is not None and not any(c in self.states for c in siblings):
            del self.children[parent]

    def _fail(self, out: SchedulerOutput, message: str) -> list[RequestOutput]:
        outputs = []
        for s in out.scheduled:
            state = self.states.get(s.request.request_id)
            if state is not None:
                self._finish(state)
                o = self._output(state, [], "", None, "error")
                o.error = message
                outputs.append(o)
        return outputs

    def _output(self, state: RequestState, token_ids, text, logprobs, finish, stop_reason=None) -> RequestOutput:
        req = state.request
        out = RequestOutput(
            request_id=req.parent_id or req.request_id, index=req.index, new_token_ids=list(token_ids),
            new_text=text, new_logprobs=logprobs, finished=finish is not None, finish_reason=finish,
            stop_reason=stop_reason, num_prompt_tokens=req.num_prompt_tokens,
            num_output_tokens=req.num_output_tokens, num_cached_tokens=req.num_cached_tokens)
        if not state.sent_prompt:
            state.sent_prompt = True
            out.prompt_token_ids = req.prompt_token_ids
            if req.sampling_params.prompt_logprobs is not None:
                out.prompt_logprobs = [None, *req.prompt_logprobs]
        return out

    # ---- stats ------------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.waiting)

    @property
    def kv_cache_usage(self) -> float:
        return self.block_manager.usage
