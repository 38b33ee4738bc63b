"""Does one huge request stall everybody else? The event-loop stall benchmark.

Against a live `cortexstream serve` (the default model), keep 8 completion streams running and, in turn:
nothing else (idle), one 15 MB POST /tokenize, one 8 MB chat message. For each phase it reports the other
streams' inter-token gap p99 (chunk arrival times, as the client sees them) and GET /health latency
(probed every 20 ms), so a handler that blocks the event loop shows up in both.

    cortexstream serve &                      # wait for "listening on ..." and /health 200
    python benchmarks/event_loop_stall.py --base-url http://127.0.0.1:8000

The issue's bar: each heavy phase keeps the gap p99 under 2x idle and every /health under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import orjson

HEALTH_PERIOD_S = 0.02
SETTLE_S = 3.0  # streams reach steady decode (every one has sent tokens) before a phase is measured
MIN_WINDOW_S = 5.0  # a phase lasts at least this long, so idle has as many gaps as the heavy phases
TAIL_S = 2.0  # and goes on this long after the heavy request, so tokens it held back are counted


@dataclass
class Phase:
    name: str
    gaps_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    heavy_status: int | None = None
    heavy_seconds: float = 0.0

    def row(self, idle_p99: float | None) -> str:
        p99 = float(np.percentile(self.gaps_ms, 99)) if self.gaps_ms else float("nan")
        ratio = f"{p99 / idle_p99:.2f}x" if idle_p99 else "1.00x"
        health = (f"{np.percentile(self.health_ms, 99):.1f} / {max(self.health_ms):.1f}" if self.health_ms
                  else "none answered")
        heavy = "-" if self.heavy_status is None else f"{self.heavy_status} in {self.heavy_seconds:.2f} s"
        return (f"| {self.name} | {len(self.gaps_ms)} | {np.median(self.gaps_ms):.1f} | {p99:.1f} | {ratio} | "
                f"{health} | {heavy} |")


async def stream(session: aiohttp.ClientSession, url: str, model: str, arrivals: list[float],
                 stop: asyncio.Event) -> None:
    """One long completion stream; every chunk's arrival time goes into `arrivals` until `stop`."""
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True,
            "temperature": 0.0, "stream": True}
    async with session.post(url + "/v1/completions", data=orjson.dumps(body),
                            headers={"Content-Type": "application/json"}) as response:
        response.raise_for_status()
        async for line in response.content:
            if stop.is_set():
                return
            if line.startswith(b"data: {"):
                arrivals.append(time.perf_counter())


async def probe_health(session: aiohttp.ClientSession, url: str, phase: Phase, stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        async with session.get(url + "/health") as response:
            await response.read()
        phase.health_ms.append(1000 * (time.perf_counter() - start))
        await asyncio.sleep(HEALTH_PERIOD_S)


async def run_phase(session: aiohttp.ClientSession, args, model: str, name: str, heavy) -> Phase:
    """Start the streams, let them settle, then measure while `heavy` (a request, or None) runs."""
    phase = Phase(name)
    stop = asyncio.Event()
    arrivals: list[list[float]] = [[] for _ in range(args.streams)]
    streams = [asyncio.ensure_future(stream(session, args.base_url, model, a, stop)) for a in arrivals]
    await asyncio.sleep(SETTLE_S)
    start = time.perf_counter()
    prober = asyncio.ensure_future(probe_health(session, args.base_url, phase, stop))
    if heavy is not None:
        phase.heavy_status = await heavy(session)
        phase.heavy_seconds = time.perf_counter() - start
    await asyncio.sleep(max(TAIL_S, start + MIN_WINDOW_S - time.perf_counter()))
    end = time.perf_counter()
    stop.set()
    await asyncio.gather(prober, return_exceptions=True)
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    for times in arrivals:  # a gap counts when it ends inside the window (a stall starts before it ends)
        phase.gaps_ms += [1000 * (b - a) for a, b in zip(times, times[1:], strict=False) if start <= b <= end]
    return phase


def post_json(path: str, body: dict):
    """A heavy request, serialized now: the client's own loop must not stall while measuring the server's."""
    data = orjson.dumps(body)

    async def send(session: aiohttp.ClientSession) -> int:
        async with session.post(path, data=data, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            return r.status
    return send


async def main(args) -> None:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(args.base_url + "/v1/models") as response:
            model = (await response.json())["data"][0]["id"]
        text = "The quick brown fox jumps over the lazy dog. "
        huge_prompt = text * (args.tokenize_mb * 2**20 // len(text))
        huge_message = text * (args.chat_mb * 2**20 // len(text))
        heavies = [
            ("idle", None),
            (f"{args.tokenize_mb} MB /tokenize", post_json(args.base_url + "/tokenize",
                                                           {"model": model, "prompt": huge_prompt})),
            (f"{args.chat_mb} MB chat message", post_json(args.base_url + "/v1/chat/completions", {
                "model": model, "max_tokens": 4, "messages": [{"role": "user", "content": huge_message}]})),
        ]
        phases = [await run_phase(session, args, model, name, heavy) for name, heavy in heavies]
    idle_p99 = float(np.percentile(phases[0].gaps_ms, 99))
    print(f"{args.streams} streams against {args.base_url} ({model})\n")
    print("| phase | gaps | gap p50 ms | gap p99 ms | p99 vs idle | /health p99 / max ms | heavy request |")
    print("|---|---|---|---|---|---|---|")
    for phase in phases:
        print(phase.row(idle_p99))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--tokenize-mb", type=int, default=15)
    p.add_argument("--chat-mb", type=int, default=8)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
