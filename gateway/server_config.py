"""What the HTTP server needs to know besides the engine: address, names, limits, auth, CORS."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from gateway.connection import ConnectionLimits

DEFAULT_MAX_BODY_BYTES = 16 * 2**20
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
DEFAULT_TIMEOUT_REQUEST_BODY = 10.0
DEFAULT_MAX_SEQUENCES_PER_REQUEST = 256
WAITING_SEQUENCES_PER_SEQ_SLOT = 16  # default --max-waiting: this many times --max-num-seqs
API_KEY_ENV = "CORTEXSTREAM_API_KEY"

# GGUF file names carry the quantization after the model name: SmolLM2-135M-Instruct.Q4_1.gguf
_QUANT_SUFFIX = re.compile(r"[.-](?:I?Q\d\w*|F16|F32|BF16)$", re.IGNORECASE)


@dataclass(frozen=True)
class ServerConfig:
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    allowed_origins: tuple[str, ...] = ()  # empty: CORS off
    max_waiting: int | None = None  # bounded waiting queue (in sequences); beyond it, 429
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_sequences_per_request: int = DEFAULT_MAX_SEQUENCES_PER_REQUEST  # prompts x n; beyond it, 400
    timeout_request_body: float = DEFAULT_TIMEOUT_REQUEST_BODY  # the whole body must arrive within this
    connection_limits: ConnectionLimits = ConnectionLimits()
    protect_metrics: bool = False  # /metrics needs the API key too
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT  # how long running streams may finish on SIGTERM
    retry_after_seconds: int = 1
    extra_model_names: tuple[str, ...] = field(default=())  # aliases clients may also send in `model`

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
