"""Admission checks: a request the engine cannot serve is refused here, once, naming the field at fault."""

from __future__ import annotations

import math

import numpy as np

from jax_engine.config import ModelConfig
from jax_engine.engine_client import EngineLimits
from jax_engine.errors import ContextLengthExceeded, RequestField, RequestValidationError
from jax_engine.pooling_params import PoolingParams
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output import StructuredOutputManager, StructuredOutputParams

FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_FIELDS = (RequestField.TEMPERATURE, RequestField.TOP_P, RequestField.MIN_P, RequestField.PRESENCE_PENALTY,
                   RequestField.FREQUENCY_PENALTY, RequestField.REPETITION_PENALTY)


def validate_request(prompt_token_ids: list[int], params: SamplingParams, limits: EngineLimits,
                     structured_output: StructuredOutputManager | None) -> None:
    _check_prompt(prompt_token_ids, limits.vocab_size)
    _check_sampling(params, limits.vocab_size)
    _check_length(len(prompt_token_ids), params.max_tokens, limits)
    if params.structured_output is not None:
        check_structured_output(params.structured_output, structured_output)


def validate_pooling_request(prompt_token_ids: list[int], params: PoolingParams, limits: EngineLimits,
                             model_config: ModelConfig) -> None:
    """A pooling request computes its prompt and nothing more: all of max_model_len is the prompt's."""
    _check_prompt(prompt_token_ids, limits.vocab_size)
    limit = min(limits.max_model_len, limits.kv_cache_tokens)
    if len(prompt_token_ids) > limit:
        what = "maximum context length" if limit == limits.max_model_len else "KV cache capacity"
        raise ContextLengthExceeded(
            f"This model's {what} is {limit} tokens. However, the input has {len(prompt_token_ids)} tokens. "
            "Please reduce the length of the input.", limit, len(prompt_token_ids), None)
    if params.dimensions is not None:
        _check_dimensions(params.dimensions, model_config)


def _check_dimensions(dimensions: int, cfg: ModelConfig) -> None:
    """Truncating an embedding is only meaningful for a model trained for it (vLLM refuses it otherwise)."""
    if not cfg.is_matryoshka:
        raise RequestValidationError(
            "this model does not support Matryoshka representations: changing the output dimensions would "
            "give poor embeddings (a Matryoshka-trained model says so in config.json, or with --hf-overrides "
            "'{\"is_matryoshka\": true}')", RequestField.DIMENSIONS)
    if cfg.matryoshka_dimensions is not None and dimensions not in cfg.matryoshka_dimensions:
        raise RequestValidationError(
            f"this model supports only these dimensions: {list(cfg.matryoshka_dimensions)}", RequestField.DIMENSIONS)
    if not 1 <= dimensions <= cfg.hidden_size:
        raise RequestValidationError(f"dimensions must be between 1 and the model's {cfg.hidden_size}",
                                     RequestField.DIMENSIONS)


def check_structured_output(constraint: StructuredOutputParams, manager: StructuredOutputManager | None) -> None:
    """Compiles the grammar: cached, so a constraint compiled ahead (off the event loop) costs a look-up here."""
    if manager is None:
        raise RequestValidationError("structured output needs a tokenizer; this model has none",
                                     RequestField.STRUCTURED_OUTPUT)
    manager.compile(constraint)


def _check_prompt(prompt_token_ids: list[int], vocab_size: int) -> None:
    if not prompt_token_ids:
        raise RequestValidationError("the prompt is empty; send at least one token", RequestField.PROMPT)
    for i, t in enumerate(prompt_token_ids):
        if not (isinstance(t, int) and 0 <= t < vocab_size):
            raise RequestValidationError(f"token id {t} is outside the vocabulary [0, {vocab_size})",
                                         RequestField.PROMPT, position=i)


def _check_sampling(params: SamplingParams, vocab_size: int) -> None:
    if params.max_tokens is not None and params.max_tokens < 1:
        raise RequestValidationError("max_tokens must be at least 1", RequestField.MAX_TOKENS)
    if params.n < 1:
        raise RequestValidationError("n must be at least 1", RequestField.N)
    for field in _FLOAT32_FIELDS:
        value = getattr(params, field.value)
        if not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
            raise RequestValidationError(f"{field.value} does not fit a float32", field)
    if params.repetition_penalty <= 0:
        raise RequestValidationError("repetition_penalty must be positive", RequestField.REPETITION_PENALTY)
    for field, ids in ((RequestField.STOP_TOKEN_IDS, params.stop_token_ids),
                       (RequestField.LOGIT_BIAS, params.logit_bias or {})):
        if any(not (0 <= t < vocab_size) for t in ids):
            raise RequestValidationError(
                f"{field.value} contains token ids outside the vocabulary [0, {vocab_size})", field)


def _check_length(num_prompt_tokens: int, max_tokens: int | None, limits: EngineLimits) -> None:
    """The prompt alone first, so that a max_tokens derived from an overlong prompt is never the complaint."""
    limit = min(limits.max_model_len, limits.kv_cache_tokens)
    what = "maximum context length" if limit == limits.max_model_len else "KV cache capacity"
    if num_prompt_tokens >= limit:
        raise ContextLengthExceeded(
            f"This model's {what} is {limit} tokens. However, the prompt has {num_prompt_tokens} tokens. "
            "Please reduce the length of the prompt.", limit, num_prompt_tokens, None)
    if max_tokens is not None and num_prompt_tokens + max_tokens > limit:
        raise ContextLengthExceeded(
            f"This model's {what} is {limit} tokens. However, you requested {num_prompt_tokens + max_tokens} "
            f"tokens ({num_prompt_tokens} in the prompt, {max_tokens} for the completion). Please reduce the "
            "length of the prompt or the completion.", limit, num_prompt_tokens, max_tokens)
