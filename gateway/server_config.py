"""What the HTTP server needs to know besides the engine: address, names, limits, auth, CORS."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

DEFAULT_MAX_BODY_BYTES = 16 * 2**20
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
DEFAULT_WORKER_THREADS = 4
API_KEY_ENV = "CORTEXSTREAM_API_KEY"

# GGUF file names carry the quantization after the model name: SmolLM2-135M-Instruct.Q4_1.gguf
_QUANT_SUFFIX = re.compile(r"[.-](?:I?Q\d\w*|F16|F32|BF16)$", re.IGNORECASE)


@dataclass(frozen=True)
class ServerConfig:
    """A field whose metadata has a "help" is also a `serve` flag (see gateway/config_args.py)."""

    served_model_name: str
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on; 0: any free port (the log says which)"})
    api_key: str | None = field(default=None, metadata={
        "help": f"require `Authorization: Bearer KEY` on /v1/* (default: ${API_KEY_ENV})"})
    allowed_origins: tuple[str, ...] = field(default=(), metadata={
        "help": "turn CORS on for these origins ('*' for any)"})
    max_waiting: int | None = field(default=None, metadata={
        "help": "bound on waiting requests; beyond it new requests get 429 with Retry-After (default: none)"})
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata={
        "help": "largest request body; a bigger one gets 413"})
    shutdown_timeout: float = field(default=DEFAULT_SHUTDOWN_TIMEOUT, metadata={
        "help": "seconds running requests may finish after SIGTERM before they are aborted"})
    worker_threads: int = field(default=DEFAULT_WORKER_THREADS, metadata={
        "help": "threads for chat templates, tokenization and grammar compiles, off the event loop"})
    retry_after_seconds: int = 1
    extra_model_names: tuple[str, ...] = ()  # aliases clients may also send in `model`

    @property
    def model_names(self) -> tuple[str, ...]:
        return (self.served_model_name, *self.extra_model_names)


def default_served_model_name(model: str | None) -> str:
    """The checkpoint's file or directory stem, without a GGUF quantization tag."""
    if model is None:
        from jax_engine.loader import DEFAULT_MODEL_FILE

        model = DEFAULT_MODEL_FILE
    name = os.path.basename(os.path.normpath(model))
    if name.lower().endswith(".gguf"):
        name = _QUANT_SUFFIX.sub("", name[: -len(".gguf")])
    elif name.lower().endswith(".json"):
        name = os.path.basename(os.path.dirname(os.path.abspath(model)))
    return name


def api_key_from_env(flag_value: str | None) -> str | None:
    return flag_value or os.environ.get(API_KEY_ENV) or None
