"""Engine flags shared by `serve`, `generate` and `bench throughput`: EngineConfig's fields (vLLM's names)."""

from __future__ import annotations

import argparse
import os

from gateway.config_args import add_config_arguments, config_from_args
from jax_engine.config import EngineConfig


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p.add_argument_group("engine"), EngineConfig)


def check_engine_args(args: argparse.Namespace) -> str | None:
    """What no single flag's type can see; None when the flags fit together."""
    if args.model is not None and args.load_format != "dummy" and not os.path.exists(args.model):
        return f"argument --model: {args.model}: no such file or directory"
    if args.max_num_batched_tokens < args.max_num_seqs:
        return (f"--max-num-batched-tokens ({args.max_num_batched_tokens}) must be at least --max-num-seqs "
                f"({args.max_num_seqs}): every running sequence needs a token per step")
    if args.pooler_config is not None:
        if args.task != "embed":
            return "--pooler-config applies to --task embed only"
        from jax_engine.config import ConfigError
        from jax_engine.pooler import PoolerConfig
        try:
            PoolerConfig.from_dict(args.pooler_config)
        except ConfigError as e:
            return str(e)
    return None


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return config_from_args(EngineConfig, args)
