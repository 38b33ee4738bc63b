"""Errors the engine raises to its callers."""

from __future__ import annotations

import enum


class EngineError(RuntimeError):
    """The engine failed (or is shutting down); the request did not complete."""


class EngineShutdown(EngineError):
    """The engine is stopping and takes no more work."""


class EngineDead(EngineError):
    """The engine thread has died; nothing more will be served."""


class RequestField(enum.Enum):
    """The part of a request a refusal is about (SamplingParams' names); the API layer words it."""

    REQUEST_ID = "request_id"
    PROMPT = "prompt"
    N = "n"
    MAX_TOKENS = "max_tokens"
    TEMPERATURE = "temperature"
    TOP_P = "top_p"
    MIN_P = "min_p"
    PRESENCE_PENALTY = "presence_penalty"
    FREQUENCY_PENALTY = "frequency_penalty"
    REPETITION_PENALTY = "repetition_penalty"
    STOP_TOKEN_IDS = "stop_token_ids"
    LOGIT_BIAS = "logit_bias"
    STRUCTURED_OUTPUT = "structured_output"
    DIMENSIONS = "dimensions"  # PoolingParams'
    TASK = "task"  # a generation request to a pooling engine, or the reverse


class RequestValidationError(ValueError):
    """A request refused at admission. `field` names what is wrong; `position` the offending element of it
    (a prompt token's index), when there is one."""

    def __init__(self, message: str, field: RequestField, position: int | None = None):
        super().__init__(message)
        self.field = field
        self.position = position


class ContextLengthExceeded(RequestValidationError):
    """The prompt, or the prompt plus max_tokens, does not fit max_model_len (or the whole KV cache)."""

    def __init__(self, message: str, max_model_len: int, num_prompt_tokens: int, max_tokens: int | None):
        super().__init__(message, RequestField.PROMPT)
        self.max_model_len = max_model_len
        self.num_prompt_tokens = num_prompt_tokens
        self.max_tokens = max_tokens  # None: the prompt alone is too long


class QueueFull(RuntimeError):
    """The bounded waiting queue is full; try again later."""
