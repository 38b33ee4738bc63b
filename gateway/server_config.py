"""What the HTTP server needs to know besides the engine: address, names, limits, auth, CORS."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from gateway.connection import ConnectionLimits

DEFAULT_MAX_BODY_BYTES = 16 * 2**20
DEFAULT_RESPONSES_STORE_MAX_ENTRIES = 1024
DEFAULT_RESPONSES_STORE_MAX_BYTES = 256 * 2**20
DEFAULT_RESPONSES_STORE_MAX_AGE = 24 * 3600.0
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
DEFAULT_WORKER_THREADS = 4
DEFAULT_TIMEOUT_REQUEST_BODY = 10.0
DEFAULT_MAX_SEQUENCES_PER_REQUEST = 256
WAITING_SEQUENCES_PER_SEQ_SLOT = 16  # default --max-waiting: this many times --max-num-seqs
API_KEY_ENV = "CORTEXSTREAM_API_KEY"

# GGUF file names carry the quantization after the model name: SmolLM2-135M-Instruct.Q4_1.gguf
_QUANT_SUFFIX = re.compile(r"[.-](?:I?Q\d\w*|F16|F32|BF16)$", re.IGNORECASE)


@dataclass(frozen=True)
class ServerConfig:
    """A field whose metadata has a "help" is also a `serve` flag (see gateway/config_args.py)."""

    served_model_name: str
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on; 0: any free port (the log says which)",
                                              "min": 0, "max": 65535})
    api_key: str | None = field(default=None, metadata={
        "help": "require `Authorization: Bearer KEY` on every route but /health, /version and /metrics "
                f"(default: ${API_KEY_ENV})"})
    api_key_protects_metrics: bool = field(default=False, metadata={
        "help": "with an API key, /metrics requires it too"})
    allowed_origins: tuple[str, ...] = field(default=(), metadata={
        "help": "turn CORS on for these origins ('*' for any)"})
    max_waiting: int | None = field(default=None, metadata={
        "help": "bound on waiting sequences (every prompt times n counts); beyond it new requests get 429 with "
                f"Retry-After (default: {WAITING_SEQUENCES_PER_SEQ_SLOT} x --max-num-seqs)", "min": 1})
    max_sequences_per_request: int = field(default=DEFAULT_MAX_SEQUENCES_PER_REQUEST, metadata={
        "help": "bound on prompts x n in one request; beyond it, 400", "min": 1})
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata={
        "help": "largest request body; a bigger one gets 413", "min": 1})
    max_connections: int = field(default=ConnectionLimits.max_connections, metadata={
        "help": "open connections beyond this are answered 503 and closed", "min": 1})
    timeout_keep_alive: float = field(default=ConnectionLimits.timeout_keep_alive, metadata={
        "help": "seconds an idle connection stays open between requests (and before the first)", "above": 0})
    timeout_request_header: float = field(default=ConnectionLimits.timeout_request_header, metadata={
        "help": "seconds from a request's first byte to the end of its headers; then 408", "above": 0})
    timeout_request_body: float = field(default=DEFAULT_TIMEOUT_REQUEST_BODY, metadata={
        "help": "seconds for a request's whole body to arrive; then 408", "above": 0})
    timeout_write: float = field(default=ConnectionLimits.timeout_write, metadata={
        "help": "seconds a client may read nothing of its response before it is cut (and its request aborted)",
        "above": 0})
    shutdown_timeout: float = field(default=DEFAULT_SHUTDOWN_TIMEOUT, metadata={
        "help": "seconds running requests may finish after SIGTERM before they are aborted", "min": 0})
    worker_threads: int = field(default=DEFAULT_WORKER_THREADS, metadata={
        "help": "threads for chat templates, tokenization and grammar compiles, off the event loop", "min": 1})
    data_parallel_size: int = field(default=1, metadata={
        "min": 1, "help": "engine replicas, each on its own --tensor-parallel-size devices, behind this one server: "
                          "each request goes to the replica holding its longest cached prefix, else the least loaded"})
    coordinator_address: str | None = field(default=None, metadata={
        "help": "multi-host: host:port of process 0's coordinator (jax.distributed); every process gets the same"})
    num_processes: int = field(default=1, metadata={
        "min": 1, "help": "multi-host: processes (hosts) in the run; their devices together make one mesh"})
    process_id: int = field(default=0, metadata={
        "min": 0, "help": "multi-host: this process's index; 0 serves HTTP and schedules, the others follow it"})
    retry_after_seconds: int = 1
    extra_model_names: tuple[str, ...] = ()  # aliases clients may also send in `model`
    responses_store: bool = field(default=True, metadata={
        "help": "keep `store: true` responses of /v1/responses in memory, for previous_response_id, retrieval and "
                "background responses (--no-responses-store: keep none)"})
    responses_store_max_entries: int = field(default=DEFAULT_RESPONSES_STORE_MAX_ENTRIES, metadata={
        "help": "responses kept, least recently used out first", "min": 1})
    responses_store_max_bytes: int = field(default=DEFAULT_RESPONSES_STORE_MAX_BYTES, metadata={
        "help": "bytes of JSON the kept responses may take", "min": 1})
    responses_store_max_age: float = field(default=DEFAULT_RESPONSES_STORE_MAX_AGE, metadata={
        "help": "seconds a response is kept", "above": 0})

    @property
    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(self.max_connections, self.timeout_keep_alive, self.timeout_request_header,
                                self.timeout_write)

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
