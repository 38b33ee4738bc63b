"""What the engine hands back per step and request: deltas, not the whole text so far."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TokenLogprobs:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]  # up to MAX_LOGPROBS (id, logprob), best first


@dataclass
class RequestTiming:
    """When things happened to one sample, in integer nanoseconds of time.monotonic_ns(); 0: not yet."""

    arrival_ns: int
    first_scheduled_ns: int = 0
    first_token_ns: int = 0
    last_token_ns: int = 0
    finished_ns: int = 0

    def snapshot(self) -> RequestTiming:
        return dataclasses.replace(self)


@dataclass
class RequestOutput:
    request_id: str  # the caller's id (shared by the n samples)
    index: int  # which of the n samples
    timing: RequestTiming  # this sample's, as of this output
    new_token_ids: list[int] = field(default_factory=list)
    new_text: str = ""
    new_logprobs: list[TokenLogprobs] | None = None
    prompt_token_ids: list[int] | None = None  # set on each sample's first output
    prompt_logprobs: list[TokenLogprobs | None] | None = None  # first entry None, like vLLM
    finished: bool = False
    finish_reason: str | None = None  # stop | length | abort | error
    stop_reason: str | int | None = None  # the stop string or stop token id that ended it
    num_prompt_tokens: int = 0
    num_output_tokens: int = 0
    num_cached_tokens: int = 0
    error: str | None = None
    embedding: np.ndarray | None = None  # a pooling request's result: float32 [hidden or dimensions]
