"""HF checkpoint directories: config.json plus one or sharded *.safetensors files."""

from __future__ import annotations

import json
import os

import numpy as np
from safetensors import safe_open
from tqdm import tqdm

from jax_engine.config import ConfigError, ModelConfig
from jax_engine.loader.errors import LoadError
from jax_engine.loader.weights import check_shapes, fuse_layer, stack_layers


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise LoadError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LoadError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise LoadError(f"{path}: expected a JSON object")
    return data


def load_hf_config(path: str) -> ModelConfig:
    try:
        return ModelConfig.from_hf_dict(read_json(os.path.join(path, "config.json")),
                                        source=os.path.join(path, "config.json"))
    except ConfigError as e:
        raise LoadError(str(e)) from None


def safetensors_files(path: str) -> list[str]:
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise LoadError(f"{index}: missing 'weight_map'")
        files = sorted(set(weight_map.values()))
    else:
        files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise LoadError(f"{path}: no *.safetensors weights found")
    full = [os.path.join(path, f) for f in files]
    for f in full:
        if not os.path.exists(f):
            raise LoadError(f"{f}: shard named in the index is missing")
    return full


def read_tensors(files: list[str]) -> dict[str, np.ndarray]:
    tensors = {}
    for file in tqdm(files, desc="Loading safetensors", unit="file", leave=False):
        try:
            with safe_open(file, framework="flax") as f:
                for name in f.keys():
                    tensors[name] = np.asarray(f.get_tensor(name).astype("float32"))
        except Exception as e:  # safetensors raises several types for corrupt or truncated files
            raise LoadError(f"{file}: corrupt or truncated safetensors file ({type(e).__name__}: {e})") from None
    return tensors


def load_hf_weights(cfg: ModelConfig, path: str) -> dict[str, np.ndarray]:
    tensors = read_tensors(safetensors_files(path))

    def get(name: str) -> np.ndarray:
        try:
            return tensors[name]
        except KeyError:
            raise LoadError(f"{path}: checkpoint has no tensor {name!r}") from None

    # A base model saved on its own (Qwen3Model: Qwen3-Embedding) names its tensors without the "model." prefix.
    prefix = "model." if "model.embed_tokens.weight" in tensors or "embed_tokens.weight" not in tensors else ""
    layers = [fuse_layer(cfg, lambda n, i=i: get(f"{prefix}layers.{i}.{n}")) for i in range(cfg.num_hidden_layers)]
    weights = {"embed_tokens": get(f"{prefix}embed_tokens.weight"), "norm": get(f"{prefix}norm.weight"),
               **stack_layers(cfg, layers)}
    if not cfg.tie_word_embeddings:
        weights["lm_head"] = get("lm_head.weight").T
    check_shapes(cfg, weights, path)
    return weights
