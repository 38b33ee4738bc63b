"""Engine flags shared by `serve`, `generate` and `bench throughput`: EngineConfig's fields (vLLM's names)."""

from __future__ import annotations

import argparse

from gateway.config_args import add_config_arguments, config_from_args
from jax_engine.config import EngineConfig


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p.add_argument_group("engine"), EngineConfig)


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return config_from_args(EngineConfig, args)
