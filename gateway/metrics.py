"""Prometheus metrics under vLLM's names with a `cortexstream:` prefix.

Engine state (running and waiting requests, KV cache usage, prefix-cache counters, preemptions) is read at
scrape time; per-request latencies and token counts are observed by a RequestTracker as outputs arrive.
Each app has its own registry, so several apps can live in one process (tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from jax_engine.outputs import RequestOutput

PREFIX = "cortexstream:"
CONTENT_TYPE = CONTENT_TYPE_LATEST

disable_created_metrics()  # no *_created series, as vLLM exports them

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
               240.0, 480.0, 960.0, 1920.0, 7680.0)
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


class Metrics:
    def __init__(self, model_name: str, engine_core: Callable[[], object | None]):
        """`engine_core` returns the LLMEngine once loaded (None before)."""
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.model_name = model_name
        self.registry.register(_EngineStateCollector(model_name, engine_core))

        # Children bound to this model's label once: observing is then a plain method call per token.
        def counter(name, doc):
            return Counter(PREFIX + name, doc, labels, registry=self.registry).labels(model_name)

        def histogram(name, doc, buckets):
            return Histogram(PREFIX + name, doc, labels, buckets=buckets, registry=self.registry).labels(model_name)

        self.prompt_tokens = counter("prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("generation_tokens", "Number of generation tokens processed.")
        self.request_success = Counter(PREFIX + "request_success", "Count of finished requests by finish reason.",
                                       [*labels, "finished_reason"], registry=self.registry)
        self.ttft = histogram("time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              TTFT_BUCKETS)
        self.itl = histogram("inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                             ITL_BUCKETS)
        self.tpot = histogram("time_per_output_token_seconds",
                              "Histogram of time per output token in seconds (vLLM's older name of ITL).",
                              ITL_BUCKETS)
        self.e2e = histogram("e2e_request_latency_seconds",
                             "Histogram of end to end request latency in seconds.", E2E_BUCKETS)
        self.request_prompt_tokens = histogram("request_prompt_tokens",
                                               "Number of prefill tokens processed per request.", TOKEN_BUCKETS)
        self.request_generation_tokens = histogram(
            "request_generation_tokens", "Number of generation tokens processed per request.", TOKEN_BUCKETS)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def tracker(self) -> RequestTracker:
        return RequestTracker(self)


class RequestTracker:
    """Latencies and token counts of one engine request (all its n samples)."""

    def __init__(self, metrics: Metrics):
        self.m = metrics
        self.arrival = time.perf_counter()
        self.first_token: float | None = None
        self.last_token: dict[int, float] = {}  # per sample index
        self.prompt_counted = False
        self.num_generated = 0
        self.num_finished = 0
        self.closed = False

    def observe(self, out: RequestOutput) -> None:
        now = time.perf_counter()
        if not self.prompt_counted:
            self.prompt_counted = True
            self.m.prompt_tokens.inc(out.num_prompt_tokens)
            self.m.request_prompt_tokens.observe(out.num_prompt_tokens)
        if out.new_token_ids:
            self._tokens(out, now)
        if out.finished:
            self.num_finished += 1
            self.m.request_success.labels(self.m.model_name, out.finish_reason or "unknown").inc()

    def _tokens(self, out: RequestOutput, now: float) -> None:
        n = len(out.new_token_ids)
        self.num_generated += n
        self.m.generation_tokens.inc(n)
        if self.first_token is None:
            self.first_token = now
            self.m.ttft.observe(now - self.arrival)
        previous = self.last_token.get(out.index)
        if previous is not None:
            self.m.itl.observe(now - previous)
            self.m.tpot.observe(now - previous)
        self.last_token[out.index] = now

    def close(self, aborted: bool) -> None:
        if self.closed:
            return
        self.closed = True
        if aborted:
            self.m.request_success.labels(self.m.model_name, "abort").inc()
        self.m.e2e.observe(time.perf_counter() - self.arrival)
        self.m.request_generation_tokens.observe(self.num_generated)


class _EngineStateCollector:
    def __init__(self, model_name: str, engine_core: Callable[[], object | None]):
        self.model_name = model_name
        self.engine_core = engine_core

    def collect(self):
        core = self.engine_core()
        running, waiting, usage, queries, hits, preemptions = 0, 0, 0.0, 0, 0, 0
        if core is not None:
            running, waiting, usage = core.num_running, core.num_waiting, core.kv_cache_usage
            queries, hits = core.block_manager.num_queries, core.block_manager.num_hits
            preemptions = core.scheduler.num_preemptions
        yield self._gauge("num_requests_running", "Number of requests in model execution batches.", running)
        yield self._gauge("num_requests_waiting", "Number of requests waiting to be processed.", waiting)
        yield self._gauge("kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage)
        yield self._counter("prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                            queries)
        yield self._counter("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", hits)
        yield self._counter("num_preemptions", "Cumulative number of preemptions from the engine.", preemptions)

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(PREFIX + name, doc, labels=["model_name"])
        family.add_metric([self.model_name], value)
        return family

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(PREFIX + name, doc, labels=["model_name"])
        family.add_metric([self.model_name], value)
        return family
