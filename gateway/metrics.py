"""Prometheus metrics under vLLM's names with a `cortexstream:` prefix.

Engine state (running and waiting requests, KV cache usage, prefix-cache counters, preemptions) comes from
the engine's stats snapshot at scrape time; per-request latencies and token counts are observed by a
RequestTracker from the timings (monotonic ns, stamped by the engine) each output carries.
Each app has its own registry, so several apps can live in one process (tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from jax_engine import EngineStats, RequestOutput

PREFIX = "cortexstream:"
CONTENT_TYPE = CONTENT_TYPE_LATEST

disable_created_metrics()  # no *_created series, as vLLM exports them

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
               240.0, 480.0, 960.0, 1920.0, 7680.0)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


class Metrics:
    def __init__(self, model_name: str, engine_stats: Callable[[], EngineStats | None]):
        """`engine_stats` returns the engine's latest stats snapshot once it is loaded (None before)."""
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.model_name = model_name
        self.registry.register(_EngineStateCollector(model_name, engine_stats))

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
        self.queue_time = histogram("request_queue_time_seconds",
                                    "Histogram of time spent in WAITING phase for request.", QUEUE_BUCKETS)
        self.e2e = histogram("e2e_request_latency_seconds",
                             "Histogram of end to end request latency in seconds.", E2E_BUCKETS)
        self.request_prompt_tokens = histogram("request_prompt_tokens",
                                               "Number of prefill tokens processed per request.", TOKEN_BUCKETS)
        self.request_generation_tokens = histogram(
            "request_generation_tokens", "Number of generation tokens processed per request.", TOKEN_BUCKETS)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def tracker(self, arrival_ns: int) -> RequestTracker:
        return RequestTracker(self, arrival_ns)


class RequestTracker:
    """Latencies and token counts of one engine request (all its n samples)."""

    def __init__(self, metrics: Metrics, arrival_ns: int):
        self.m = metrics
        self.arrival_ns = arrival_ns
        self.last_token_ns: dict[int, int] = {}  # per sample index
        self.finished_ns = 0
        self.prompt_counted = False
        self.num_generated = 0
        self.closed = False

    def observe(self, out: RequestOutput) -> None:
        if not self.prompt_counted:
            self.prompt_counted = True
            self.m.prompt_tokens.inc(out.num_prompt_tokens)
            self.m.request_prompt_tokens.observe(out.num_prompt_tokens)
            self.m.queue_time.observe(_seconds(out.timing.first_scheduled_ns - out.timing.arrival_ns))
        if out.new_token_ids:
            self._tokens(out)
        if out.finished:
            self.finished_ns = max(self.finished_ns, out.timing.finished_ns)
            self.m.request_success.labels(self.m.model_name, out.finish_reason or "unknown").inc()

    def _tokens(self, out: RequestOutput) -> None:
        n = len(out.new_token_ids)
        if not self.num_generated:
            self.m.ttft.observe(_seconds(out.timing.first_token_ns - out.timing.arrival_ns))
        self.num_generated += n
        self.m.generation_tokens.inc(n)
        previous = self.last_token_ns.get(out.index)
        if previous is not None:
            self.m.itl.observe(_seconds(out.timing.last_token_ns - previous))
            self.m.tpot.observe(_seconds(out.timing.last_token_ns - previous))
        self.last_token_ns[out.index] = out.timing.last_token_ns

    def close(self, aborted: bool) -> None:
        """`aborted`: some sample never finished; it ends now (the same monotonic clock the engine stamps)."""
        if self.closed:
            return
        self.closed = True
        if aborted:
            self.m.request_success.labels(self.m.model_name, "abort").inc()
            self.finished_ns = time.monotonic_ns()
        self.m.e2e.observe(_seconds(self.finished_ns - self.arrival_ns))
        self.m.request_generation_tokens.observe(self.num_generated)


def _seconds(ns: int) -> float:
    return max(ns, 0) / 1e9


# (kind, name, help, EngineStats field)
ENGINE_STATE = (
    ("gauge", "num_requests_running", "Number of requests in model execution batches.", "num_running"),
    ("gauge", "num_requests_waiting", "Number of requests waiting to be processed.", "num_waiting"),
    ("gauge", "kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", "kv_cache_usage"),
    ("counter", "prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
     "prefix_cache_queries"),
    ("counter", "prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", "prefix_cache_hits"),
    ("counter", "num_preemptions", "Cumulative number of preemptions from the engine.", "num_preemptions"),
)


class _EngineStateCollector:
    """The engine's state at scrape time; with data parallelism one series per replica, labelled `engine` (the
    replica's index), as vLLM labels its data-parallel ranks."""

    def __init__(self, model_name: str, engine_stats: Callable[[], EngineStats | None]):
        self.model_name = model_name
        self.engine_stats = engine_stats

    def collect(self):
        stats = self.engine_stats() or EngineStats()
        if stats.replicas:
            labels = ["model_name", "engine"]
            rows = [([self.model_name, str(i)], replica) for i, replica in enumerate(stats.replicas)]
        else:
            labels, rows = ["model_name"], [([self.model_name], stats)]
        for kind, name, doc, attr in ENGINE_STATE:
            family_type = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
            family = family_type(PREFIX + name, doc, labels=labels)
            for values, row in rows:
                family.add_metric(values, getattr(row, attr))
            yield family
