"""A real `cortexstream serve` process on a free loopback port, and raw HTTP helpers for the gateway tests.

`shared_server()` starts the default model once per test session (small engine settings keep start-up
short) and stops it at exit; test modules wrap it in a fixture. `ServerProcess` starts others (an API key,
a tiny model, shutdown tests).
"""

from __future__ import annotations

import atexit
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.openai_schema import validate

REPO = Path(__file__).resolve().parents[1]
TINY_LLAMA = str(REPO / "tests" / "golden" / "llama")
TEST_COMPILATION_CACHE = "/tmp/cortexstream-test-jax-cache"
# Float32 and batch-invariant: the gateway tests compare against transformers token for token and
# concurrent streams against their sequential runs (int8 and the default mode are tested on the engine).
SMALL_ENGINE_ARGS = ("--max-model-len", "512", "--max-num-batched-tokens", "128", "--max-num-seqs", "32",
                     "--kv-cache-memory", "0.25", "--compilation-cache-dir", TEST_COMPILATION_CACHE,
                     "--quantization", "none", "--batch-invariant")
SHARED_SERVER_ARGS = (*SMALL_ENGINE_ARGS, "--max-body-bytes", "1000000")
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


class ServerProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if k != "CORTEXSTREAM_API_KEY"}
        self.env.update(env or {})
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="cortexstream-serve-", suffix=".log")[1])
        self.base_url = ""

    def start(self, timeout: float = 300.0) -> ServerProcess:
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", "0", *self.args],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.base_url:
            self._check_alive(deadline)
            match = _LISTENING.search(self.log())
            if match:
                self.base_url = f"http://{match.group(1)}:{match.group(2)}"
        while request(self, "GET", "/health").status != 200:
            self._check_alive(deadline)
        return self

    def _check_alive(self, deadline: float) -> None:
        if self.process.poll() is not None or time.monotonic() > deadline:
            self.kill()
            raise RuntimeError(f"cortexstream serve did not come up; its log:\n{self.log()[-4000:]}")
        time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self, path: str) -> str:
        return self.base_url + path

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_shared: ServerProcess | None = None


def shared_server() -> ServerProcess:
    """The default model behind one server for the whole session."""
    global _shared
    if _shared is None:
        _shared = ServerProcess(*SHARED_SERVER_ARGS).start()
        atexit.register(_shared.stop)
    return _shared


# ---- raw HTTP ------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage  # case-insensitive look-ups
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self):
        return orjson.loads(self.body)


def request(server: ServerProcess, method: str, path: str, body: dict | bytes | None = None,
            headers: dict | None = None, timeout: float = 120.0) -> Reply:
    """One request on a fresh connection; dict bodies are sent as JSON."""
    if isinstance(body, dict):
        body = orjson.dumps(body)
        headers = {"Content-Type": "application/json", **(headers or {})}
    address = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def post(server: ServerProcess, path: str, body: dict | bytes, headers: dict | None = None) -> Reply:
    return request(server, "POST", path, body, headers)


def post_ok(server: ServerProcess, path: str, body: dict, schema: str) -> dict:
    reply = post(server, path, body)
    assert reply.status == 200, reply.text
    payload = reply.json()
    validate(payload, schema)
    return payload


def stream_events(server: ServerProcess, path: str, body: dict, schema: str,
                  headers: dict | None = None) -> list[dict]:
    """The JSON events of an SSE response, each checked against `schema`; asserts the exact framing:
    `data: {json}` events separated by blank lines, ending with `data: [DONE]`."""
    reply = post(server, path, {**body, "stream": True}, headers)
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    raw = reply.text
    assert raw.endswith("\n\n"), raw[-200:]
    blocks = raw[:-2].split("\n\n")
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), raw[:500]
    assert blocks[-1] == "data: [DONE]"
    events = [orjson.loads(b[len("data: "):]) for b in blocks[:-1]]
    for e in events:
        validate(e, schema)
    return events


def error_of(reply: Reply) -> dict:
    """The `error` object of an error response, checked against OpenAI's ErrorResponse."""
    payload = reply.json()
    validate(payload, "ErrorResponse")
    return payload["error"]


def scrape_metrics(server: ServerProcess) -> dict[str, float]:
    """Prometheus samples by name, histogram buckets left out; request_success_total per finished_reason
    as `request_success_total{reason}`."""
    text = request(server, "GET", "/metrics").text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels:
                continue
            reason = sample.labels.get("finished_reason")
            samples[sample.name + (f"{{{reason}}}" if reason else "")] = sample.value
    return samples
