"""vLLM's online serving metrics from per-request results, under vLLM's JSON key names.

TTFT: time to the first chunk with text. TPOT: per request, (latency - TTFT) / (output tokens - 1), over
requests with more than one output token. ITL: every gap between chunks with text, all requests pooled.
E2EL: request latency. Throughputs divide by the wall time of the whole level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.bench.serve_client import RequestResult

PERCENTILES = (50, 90, 99)


def summarize(results: Sequence[RequestResult], duration: float, concurrency: int) -> dict:
    done = [r for r in results if r.success]
    input_tokens = sum(r.prompt_tokens for r in done)
    output_tokens = sum(r.output_tokens for r in done)
    tpots = [(r.latency - r.ttft) / (r.output_tokens - 1) for r in done if r.output_tokens > 1]
    record = {
        "concurrency": concurrency,
        "max_concurrency": concurrency,
        "duration": duration,
        "completed": len(done),
        "failed": len(results) - len(done),
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": len(done) / duration if duration else 0.0,
        "output_throughput": output_tokens / duration if duration else 0.0,
        "total_token_throughput": (input_tokens + output_tokens) / duration if duration else 0.0,
    }
    record.update(_stats("ttft", [r.ttft for r in done]))
    record.update(_stats("tpot", tpots))
    record.update(_stats("itl", [gap for r in done for gap in r.itl]))
    record.update(_stats("e2el", [r.latency for r in done]))
    return record


def _stats(name: str, seconds: Sequence[float]) -> dict:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        ms = np.zeros(1)
    stats = {f"mean_{name}_ms": float(ms.mean()), f"median_{name}_ms": float(np.median(ms)),
             f"std_{name}_ms": float(ms.std())}
    stats.update({f"p{p}_{name}_ms": float(np.percentile(ms, p)) for p in PERCENTILES})
    return stats


def format_record(record: dict) -> str:
    lines = [
        f"{' Serving Benchmark Result (concurrency ' + str(record['concurrency']) + ') ':=^60}",
        f"{'Successful requests:':<40}{record['completed']:>20}",
        f"{'Failed requests:':<40}{record['failed']:>20}",
        f"{'Benchmark duration (s):':<40}{record['duration']:>20.2f}",
        f"{'Total input tokens:':<40}{record['total_input_tokens']:>20}",
        f"{'Total generated tokens:':<40}{record['total_output_tokens']:>20}",
        f"{'Request throughput (req/s):':<40}{record['request_throughput']:>20.2f}",
        f"{'Output token throughput (tok/s):':<40}{record['output_throughput']:>20.2f}",
        f"{'Total token throughput (tok/s):':<40}{record['total_token_throughput']:>20.2f}",
    ]
    for name, title in (("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st token)"),
                        ("itl", "Inter-token Latency")):
        lines.append(f"{' ' + title + ' ':-^60}")
        lines.append(f"{'Mean ' + name.upper() + ' (ms):':<40}{record[f'mean_{name}_ms']:>20.2f}")
        lines.append(f"{'Median ' + name.upper() + ' (ms):':<40}{record[f'median_{name}_ms']:>20.2f}")
        lines.append(f"{'P99 ' + name.upper() + ' (ms):':<40}{record[f'p99_{name}_ms']:>20.2f}")
    lines.append("=" * 60)
    return "\n".join(lines)
