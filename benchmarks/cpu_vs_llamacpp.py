"""CortexStream vs llama.cpp's llama-server on the same GGUF, same load generator, one server at a time.

    python benchmarks/cpu_vs_llamacpp.py --llama-server PATH/llama-server [--model GGUF] [--output-json F]

Build llama-server from the llama-cpp-python==0.3.36 source distribution (vendor/llama.cpp, cmake, target
llama-server); never commit it. Each server runs `cortexstream bench serve` (chat, streaming, ignore_eos) at
--concurrency levels with --input-len/--output-len, then a long-prompt level; peak RSS is read from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def default_gguf() -> str:
    from jax_engine.loader import default_model_path

    return default_model_path()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError("server did not become healthy")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench(url: str, concurrency: list[int], input_len: int, output_len: int) -> list[dict]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [sys.executable, "-m", "gateway.cli", "bench", "serve", "--base-url", url, "--endpoint",
           "/v1/chat/completions", "--concurrency", *map(str, concurrency), "--input-len", str(input_len),
           "--output-len", str(output_len), "--output-json", out]
    subprocess.run(cmd, check=True, cwd=REPO)
    with open(out) as f:
        return json.load(f)


def run_server(name: str, cmd: list[str], url: str, args) -> dict:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(url, proc)
        levels = bench(url, args.concurrency, args.input_len, args.output_len)
        long_prompt = bench(url, [args.long_concurrency], args.long_input_len, args.long_output_len)
        return {"server": name, "levels": levels, "long_prompt": long_prompt[0], "peak_rss_mb": peak_rss_mb(proc.pid)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def summary(results: list[dict]) -> str:
    ours, peer = results
    lines = ["| output tok/s | " + " | ".join(f"c={r['concurrency']}" for r in ours["levels"]) +
             f" | long c={ours['long_prompt']['concurrency']} | ITL p50 c=1 | TTFT p50 long | peak RSS |",
             "|---|" + "---|" * (len(ours["levels"]) + 4)]
    for r in (peer, ours):
        lines.append(f"| {r['server']} | " + " | ".join(f"{x['output_throughput']:.1f}" for x in r["levels"]) +
                     f" | {r['long_prompt']['output_throughput']:.1f} | {r['levels'][0]['median_itl_ms']:.1f} ms"
                     f" | {r['long_prompt']['median_ttft_ms']:.0f} ms | {r['peak_rss_mb']:.0f} MB |")
    pairs = zip(ours["levels"], peer["levels"], strict=True)
    ratios = [o["output_throughput"] / p["output_throughput"] for o, p in pairs]
    ratios.append(ours["long_prompt"]["output_throughput"] / peer["long_prompt"]["output_throughput"])
    lines.append("| ratio | " + " | ".join(f"{x:.2f}x" for x in ratios) +
                 f" | | | {ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llama-server", required=True)
    p.add_argument("--model", default=None, help="GGUF file (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--input-len", type=int, default=80)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--long-concurrency", type=int, default=4)
    p.add_argument("--long-input-len", type=int, default=1500)
    p.add_argument("--long-output-len", type=int, default=64)
    p.add_argument("--cortexstream-args", default="", help="extra flags for cortexstream serve")
    p.add_argument("--output-json", default=None)
    args = p.parse_args()
    gguf = args.model or default_gguf()
    slots = max(args.concurrency)
    llama = [args.llama_server, "-m", gguf, "-np", str(slots), "-t", str(args.threads), "-c", str(slots * 2048),
             "--port", "8091", "--host", "127.0.0.1", "--no-webui"]
    ours = [sys.executable, "-m", "gateway.cli", "serve", "--model", gguf, "--port", "8092",
            *args.cortexstream_args.split()]
    results = [run_server("cortexstream serve", ours, "http://127.0.0.1:8092", args),
               run_server(f"llama-server -np {slots} -t {args.threads}", llama, "http://127.0.0.1:8091", args)]
    table = summary(results)
    print(table)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"cpu": cpu_model(), "results": results, "table": table}, f, indent=2)


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
