"""How much a long prompt's prefill slows a running stream: its inter-token gaps alone, then with a long prompt
arriving beside it (issue 9's target: the stream's ITL p99 stays within 3x of its idle value).

    python benchmarks/prefill_interference.py [--base-url http://127.0.0.1:8000] [--prompt-len 1500]

Needs a running server (`cortexstream serve`). The stream is a chat completion with ignore_eos; the long prompt
is random token ids sent to /v1/completions with max_tokens 1, started once the stream is flowing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

import aiohttp


async def stream_gaps(session, url: str, model: str, max_tokens: int) -> list[float]:
    body = {"model": model, "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse."}],
            "max_tokens": max_tokens, "ignore_eos": True, "stream": True, "temperature": 0.0}
    gaps, last = [], None
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        async for line in response.content:
            if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                if last is not None:
                    gaps.append(now - last)
                last = now
    return gaps


async def long_prompt(session, url: str, model: str, prompt_len: int, delay: float) -> float:
    await asyncio.sleep(delay)
    ids = [random.Random(0).randrange(1000, 30000) for _ in range(prompt_len)]
    start = time.perf_counter()
    async with session.post(f"{url}/v1/completions",
                            json={"model": model, "prompt": ids, "max_tokens": 1}) as response:
        await response.read()
    return time.perf_counter() - start


def summary(gaps: list[float]) -> dict:
    gaps_ms = sorted(1e3 * g for g in gaps)
    return {"p50_ms": statistics.median(gaps_ms), "p99_ms": gaps_ms[int(0.99 * (len(gaps_ms) - 1))],
            "max_ms": gaps_ms[-1]}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--prompt-len", type=int, default=1500)
    p.add_argument("--max-tokens", type=int, default=300)
    args = p.parse_args()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{args.base_url}/v1/models") as r:
            model = (await r.json())["data"][0]["id"]
        idle = summary(await stream_gaps(session, args.base_url, model, args.max_tokens))
        gaps, prefill_s = await asyncio.gather(stream_gaps(session, args.base_url, model, args.max_tokens),
                                               long_prompt(session, args.base_url, model, args.prompt_len, 2.0))
        busy = summary(gaps)
    print(json.dumps({"idle": idle, "with_long_prompt": busy, "long_prompt_seconds": prefill_s,
                      "p99_ratio": busy["p99_ms"] / idle["p99_ms"]}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
