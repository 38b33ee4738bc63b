"""`cortexstream bench serve`: an online benchmark over HTTP against any OpenAI-compatible server.

Each concurrency level sends --num-prompts streamed requests, at most `concurrency` at a time, and reports
vLLM's serving metrics (see serve_metrics). Completions prompts are random token ids, so every server sees
exactly --input-len tokens; chat prompts are text, and token counts come from the server's usage.
`ignore_eos` (a vLLM extension) keeps outputs at --output-len; a server that refuses it is asked again
without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp
import numpy as np

from gateway.bench.serve_client import Endpoint, RequestResult, send
from gateway.bench.serve_metrics import format_record, summarize


def add_arguments(p) -> None:
    p.add_argument("--base-url", default="http://127.0.0.1:8000", help="the server")
    p.add_argument("--endpoint", default="/v1/completions", choices=["/v1/completions", "/v1/chat/completions"],
                   help="the API the requests go to")
    p.add_argument("--model", default=None, help="(default: the first model the server lists)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1], help="requests in flight, one run per level")
    p.add_argument("--num-prompts", type=int, default=None, help="per level (default: 4 x concurrency, >= 8)")
    p.add_argument("--input-len", type=int, default=128, help="prompt tokens per request")
    p.add_argument("--output-len", type=int, default=128, help="output tokens per request")
    p.add_argument("--token-id-range", type=int, nargs=2, default=[1000, 30000], metavar=("LOW", "HIGH"),
                   help="random prompt token ids are drawn from [LOW, HIGH)")
    p.add_argument("--api-key", default=None, help="(default: $OPENAI_API_KEY)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random prompts")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    p.add_argument("--output-json", default=None, help="write a JSON list, one record per concurrency level")
    p.add_argument("--plot", default=None, help="write a PNG of throughput and latencies per level")


def run(args) -> int:
    try:
        records = asyncio.run(benchmark(args))
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(records, f, indent=2)
    if args.plot:
        from gateway.bench.plot import PlotUnavailable, plot_levels

        try:
            plot_levels(records, args.plot, f"{records[0]['model_id']}: input {args.input_len}, "
                                            f"output {args.output_len}")
        except PlotUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    return 0 if all(r["failed"] == 0 for r in records) else 1


class BenchmarkError(RuntimeError):
    pass


async def benchmark(args) -> list[dict]:
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    base = args.base_url.rstrip("/").removesuffix("/v1")
    endpoint = Endpoint(base + args.endpoint, "chat" in args.endpoint, headers)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    # A connection per request, as vLLM's benchmark does: a server that closes idle keep-alive connections
    # (llama-server) would otherwise fail requests written onto a pooled connection it had just closed.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        model = args.model or await _first_model(session, base, headers)
        probe_prompt = make_prompts(1, 2, args.token_id_range, args.seed, endpoint.chat)[0]
        extra = await _probe(session, endpoint, model, probe_prompt)
        records = []
        for concurrency in args.concurrency:
            num_prompts = args.num_prompts or max(8, 4 * concurrency)
            prompts = make_prompts(num_prompts, args.input_len, args.token_id_range, args.seed, endpoint.chat)
            record = await run_level(session, endpoint, model, prompts, args.output_len, extra, concurrency)
            record.update(model_id=model, endpoint=args.endpoint, input_len=args.input_len,
                          output_len=args.output_len, num_prompts=num_prompts, ignore_eos="ignore_eos" in extra)
            print(format_record(record))
            records.append(record)
    return records


async def run_level(session, endpoint: Endpoint, model: str, prompts: list, output_len: int, extra: dict,
                    concurrency: int) -> dict:
    limit = asyncio.Semaphore(concurrency)

    async def one(prompt) -> RequestResult:
        async with limit:
            return await send(session, endpoint, endpoint.payload(model, prompt, output_len, extra))

    start = time.perf_counter()
    results = await asyncio.gather(*(one(p) for p in prompts))
    duration = time.perf_counter() - start
    errors = sorted({r.error for r in results if not r.success})
    if errors:
        print(f"{len(errors)} distinct errors, e.g. {errors[0]}", file=sys.stderr)
    return summarize(results, duration, concurrency)


def make_prompts(num_prompts: int, input_len: int, id_range, seed: int, text: bool) -> list:
    """Distinct prompts (distinct first token), so a prefix cache does not flatter the numbers."""
    low, high = id_range
    rng = np.random.default_rng(seed)
    if text:
        words = np.array("time year people way day man thing woman life child world school state family "
                         "student group country problem hand part place case week company system".split())
        return [f"{i} " + " ".join(rng.choice(words, input_len - 1)) for i in range(num_prompts)]
    ids = rng.integers(low, high, size=(num_prompts, input_len))
    ids[:, 0] = low + np.arange(num_prompts) % (high - low)
    return ids.tolist()


async def _first_model(session, base: str, headers: dict) -> str:
    try:
        async with session.get(base + "/v1/models", headers=headers) as response:
            body = await response.json()
        return body["data"][0]["id"]
    except (aiohttp.ClientError, KeyError, IndexError, ValueError) as e:
        raise BenchmarkError(f"cannot list the models of {base} ({e}); pass --model") from e


async def _probe(session, endpoint: Endpoint, model: str, prompt) -> dict:
    """One unmeasured request (it also warms the server); drops ignore_eos if the server refuses it."""
    extra = {"ignore_eos": True}
    result = await send(session, endpoint, endpoint.payload(model, prompt, 2, extra))
    if not result.success and result.status == 400 and "ignore_eos" in result.error:
        extra = {}
        result = await send(session, endpoint, endpoint.payload(model, prompt, 2, extra))
    if not result.success:
        raise BenchmarkError(f"the probe request to {endpoint.url} failed: {result.error}")
    return extra
