"""Engine flags shared by `serve`, `generate` and `bench throughput` (vLLM's names)."""

from __future__ import annotations

import argparse
import os

from gateway.arg_types import fraction, non_negative_float, non_negative_int, positive_float, positive_int, power_of_two
from jax_engine.config import EngineConfig, default_cache_dir


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--model", default=None,
                   help="HF checkpoint directory or GGUF file (default: the embedded SmolLM2-135M-Instruct); "
                        "with --load-format dummy, a config.json or a built-in shape (llama-3-8b, llama-3.2-1b)")
    g.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="auto: float32 on CPU, bfloat16 on GPU")
    g.add_argument("--load-format", default="auto", choices=["auto", "dummy"])
    g.add_argument("--max-model-len", type=positive_int, default=None)
    g.add_argument("--block-size", type=power_of_two, default=16)
    g.add_argument("--kv-cache-memory", type=positive_float, default=None, help="KV cache size in GiB")
    g.add_argument("--gpu-memory-utilization", type=fraction, default=0.85)
    g.add_argument("--max-num-seqs", type=positive_int, default=32)
    g.add_argument("--max-num-batched-tokens", type=positive_int, default=512)
    g.add_argument("--no-enable-prefix-caching", dest="enable_prefix_caching", action="store_false")
    g.add_argument("--compilation-cache-dir", default=f"{default_cache_dir()}/jax")
    g.add_argument("--no-warmup", dest="warmup", action="store_false")
    g.add_argument("--seed", type=non_negative_int, default=0)
    g.add_argument("--batch-invariant", action="store_true",
                   help="fixed matmul and attention tiles, so a request's tokens never depend on what shares its "
                        "batch (CPU: 1.4-2x slower; default off)")
    g.add_argument("--max-decode-slowdown", type=non_negative_float, default=2.5,
                   help="while requests decode, size prefill chunks so a step's predicted time stays under this "
                        "many decode-only steps (learned from measured step times); 0: always "
                        "--max-num-batched-tokens")
    g.add_argument("--quantization", default="auto", choices=["auto", "none", "int8"],
                   help="int8: W8A8 matmuls on CPU (weights int8 per output channel, activations int8 per token); "
                        "auto: int8 on CPU when the checkpoint itself is quantised (GGUF Q4/Q5/Q8/K-quants), "
                        "else none")


def check_engine_args(args: argparse.Namespace) -> str | None:
    """What no single flag's type can see; None when the flags fit together."""
    if args.model is not None and args.load_format != "dummy" and not os.path.exists(args.model):
        return f"argument --model: {args.model}: no such file or directory"
    if args.max_num_batched_tokens < args.max_num_seqs:
        return (f"--max-num-batched-tokens ({args.max_num_batched_tokens}) must be at least --max-num-seqs "
                f"({args.max_num_seqs}): every running sequence needs a token per step")
    return None


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        model=args.model, dtype=args.dtype, load_format=args.load_format, max_model_len=args.max_model_len,
        block_size=args.block_size, kv_cache_memory=args.kv_cache_memory,
        gpu_memory_utilization=args.gpu_memory_utilization, max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens, enable_prefix_caching=args.enable_prefix_caching,
        compilation_cache_dir=args.compilation_cache_dir or None, seed=args.seed, warmup=args.warmup,
        batch_invariant=args.batch_invariant, quantization=args.quantization,
        max_decode_slowdown=args.max_decode_slowdown)
