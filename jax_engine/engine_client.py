"""The engine as its callers see it: the only thing the API server knows of the engine.

`AsyncEngine` implements it. A caller admits a request with `add_request`, which raises at once if the engine
refuses it (RequestValidationError naming the field, QueueFull, EngineShutdown, EngineDead) and otherwise returns
a handle to iterate; closing the handle aborts whatever has not finished.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from jax_engine.outputs import RequestOutput
from jax_engine.pooling_params import PoolingParams
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output.params import StructuredOutputParams
from jax_engine.tokenizer import Tokenizer


@dataclass(frozen=True)
class EngineLimits:
    max_model_len: int
    vocab_size: int  # the model's (logits width); the tokenizer's may be smaller
    kv_cache_tokens: int  # blocks x block size: no request may need more


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine's state, taken on the engine thread after each step."""

    num_running: int = 0
    num_waiting: int = 0
    kv_cache_usage: float = 0.0  # fraction of KV blocks in use
    prefix_cache_queries: int = 0  # tokens looked up in the prefix cache
    prefix_cache_hits: int = 0  # tokens found there
    num_preemptions: int = 0
    replicas: tuple[EngineStats, ...] = ()  # with data parallelism, each replica's own


class RequestHandle(Protocol):
    request_id: str
    n: int  # samples; iteration ends once all have finished
    arrival_ns: int  # time.monotonic_ns() at admission

    def __aiter__(self) -> AsyncIterator[RequestOutput]: ...

    async def __anext__(self) -> RequestOutput: ...

    @property
    def finished(self) -> bool: ...

    async def aclose(self) -> None:
        """Abort what has not finished (a no-op once finished)."""


class EngineClient(Protocol):
    @property
    def tokenizer(self) -> Tokenizer | None: ...

    @property
    def limits(self) -> EngineLimits: ...

    @property
    def task(self) -> str:
        """generate (completions, chat) or embed (pooling requests only: PoolingParams, outputs with `embedding`)."""

    @property
    def generation_defaults(self) -> Mapping[str, float | int]:
        """The checkpoint's sampling defaults (generation_config.json): temperature, top_p, top_k, ..."""

    @property
    def error(self) -> BaseException | None:
        """Why the engine died, once it has."""

    def start(self) -> None: ...

    def shutdown(self) -> None: ...

    def add_request(self, request_id: str, prompt_token_ids: list[int],
                    params: SamplingParams | PoolingParams) -> RequestHandle:
        ...

    def generate(self, request_id: str, prompt_token_ids: list[int],
                 params: SamplingParams | PoolingParams) -> AsyncIterator[RequestOutput]:
        """add_request, then its outputs; leaving the loop early aborts the request."""

    def abort(self, request_id: str) -> None: ...

    def abort_all(self) -> None:
        """Abort every request and refuse new ones (the end of a shutdown drain)."""
        ...

    def compile_structured_output(self, constraint: StructuredOutputParams) -> None:
        """Compile and cache a constraint's grammar, or raise RequestValidationError. Slow for some schemas:
        callers on an event loop run it in a worker thread; add_request then finds it compiled."""

    def stats(self) -> EngineStats: ...
