"""A request as the scheduler sees it: tokens, how many are computed, and its block table."""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from jax_engine.outputs import RequestTiming
from jax_engine.pooling_params import PoolingParams
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output.grammar import Grammar

_arrival = itertools.count()


class RequestStatus(enum.Enum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    FINISHED = enum.auto()


@dataclass
class Request:
    request_id: str
    prompt_token_ids: list[int]
    sampling_params: SamplingParams
    priority: int = 0
    seed: int = 0
    parent_id: str | None = None  # the n samples of one request share a parent
    index: int = 0
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    num_cached_tokens: int = 0  # prompt tokens served from the prefix cache at first admission
    block_table: list[int] = field(default_factory=list)
    block_hashes: list[int] = field(default_factory=list)  # chained hashes of the full blocks
    status: RequestStatus = RequestStatus.WAITING
    timing: RequestTiming = field(default_factory=lambda: RequestTiming(time.monotonic_ns()))
    arrival_seq: int = field(default_factory=lambda: next(_arrival))
    max_tokens: int = 0  # resolved by the engine from max_tokens and the context limit
    eos_token_ids: tuple[int, ...] = ()
    prompt_logprobs: list = field(default_factory=list)  # TokenLogprobs of prompt tokens 1..n-1
    grammar: Grammar | None = None  # set for structured output; follows output_token_ids
    pooling_params: PoolingParams | None = None  # set for a pooling (embedding) request, which samples nothing
    pooled: np.ndarray | None = None  # pooling: the last row, or the sum of the rows, computed so far

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    def token_slice(self, start: int, end: int) -> list[int]:
        n = len(self.prompt_token_ids)
        if end <= n:
            return self.prompt_token_ids[start:end]
        if start >= n:
            return self.output_token_ids[start - n:end - n]
        return self.prompt_token_ids[start:] + self.output_token_ids[:end - n]

    @property
    def order_key(self) -> tuple[int, int]:
        """Lower runs first; preemption takes the highest."""
        return (self.priority, self.arrival_seq)
