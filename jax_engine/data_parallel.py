"""Data parallelism: M engine replicas, each on its own device group, behind one EngineClient.

Each request goes to one replica (prefix_router.py: the longest cached prefix, else the least loaded) and stays
there; the replicas share nothing but the host. The gateway sees one engine whose stats carry each replica's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from jax_engine.async_engine import AsyncEngine, AsyncRequestHandle
from jax_engine.config import EngineConfig
from jax_engine.engine_client import EngineLimits, EngineStats
from jax_engine.llm_engine import LLMEngine
from jax_engine.outputs import RequestOutput
from jax_engine.pooling_params import PoolingParams
from jax_engine.prefix_router import PrefixRouter
from jax_engine.sampling_params import SamplingParams
from jax_engine.sharding import device_groups
from jax_engine.structured_output.params import StructuredOutputParams
from jax_engine.tokenizer import Tokenizer


class DataParallelEngine:
    def __init__(self, replicas: list[AsyncEngine]):
        self.replicas = replicas
        core = replicas[0].core
        self.router = PrefixRouter(len(replicas), core.block_manager.block_size, core.block_manager.num_blocks)

    @classmethod
    def from_config(cls, config: EngineConfig, data_parallel_size: int,
                    max_waiting: int | None = None) -> DataParallelEngine:
        """data_parallel_size replicas, each loading the checkpoint onto its own devices."""
        groups = device_groups(config.tensor_parallel_size, data_parallel_size)
        return cls([AsyncEngine(LLMEngine.from_config(config, devices=group), max_waiting) for group in groups])

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self.replicas[0].tokenizer

    @property
    def limits(self) -> EngineLimits:
        return self.replicas[0].limits

    @property
    def generation_defaults(self) -> Mapping[str, float | int]:
        return self.replicas[0].generation_defaults

    @property
    def task(self) -> str:
        return self.replicas[0].task

    @property
    def error(self) -> BaseException | None:
        return next((r.error for r in self.replicas if r.error is not None), None)

    def start(self) -> None:
        for r in self.replicas:
            r.start()

    def shutdown(self) -> None:
        for r in self.replicas:
            r.shutdown()

    def add_request(self, request_id: str, prompt_token_ids: list[int],
                    params: SamplingParams | PoolingParams) -> AsyncRequestHandle:
        replica = self.router.route(prompt_token_ids, [r.num_unfinished for r in self.replicas])
        return self.replicas[replica].add_request(request_id, prompt_token_ids, params)

    async def generate(self, request_id: str, prompt_token_ids: list[int],
                       params: SamplingParams | PoolingParams) -> AsyncIterator[RequestOutput]:
        handle = self.add_request(request_id, prompt_token_ids, params)
        try:
            async for out in handle:
                yield out
        finally:
            await handle.aclose()

    def abort(self, request_id: str) -> None:
        for r in self.replicas:  # only its own replica knows it; the others find nothing to abort
            r.abort(request_id)

    def abort_all(self) -> None:
        for r in self.replicas:
            r.abort_all()

    def compile_structured_output(self, constraint: StructuredOutputParams) -> None:
        for r in self.replicas:  # each replica keeps its own grammar cache; any of them may get the request
            r.compile_structured_output(constraint)

    def stats(self) -> EngineStats:
        """The replicas' stats summed (KV usage averaged), each replica's in `replicas`."""
        each = [r.stats() for r in self.replicas]
        return EngineStats(num_running=sum(s.num_running for s in each),
                           num_waiting=sum(s.num_waiting for s in each),
                           kv_cache_usage=sum(s.kv_cache_usage for s in each) / len(each),
                           prefix_cache_queries=sum(s.prefix_cache_queries for s in each),
                           prefix_cache_hits=sum(s.prefix_cache_hits for s in each),
                           num_preemptions=sum(s.num_preemptions for s in each),
                           replicas=tuple(each))
