"""SIGTERM on a real server (the tiny llama, for a fast start): running streams finish within the shutdown
timeout; at the deadline the rest are aborted, each ending with one error event; new connections are refused,
and the process exits 0 within the timeout plus a little."""

import http.client
import signal
import time
from urllib.parse import urlsplit

import orjson
import pytest

from tests.server_fixture import TEST_COMPILATION_CACHE, TINY_LLAMA, ServerProcess

TINY_ARGS = ("--model", TINY_LLAMA, "--max-model-len", "256", "--max-num-seqs", "4", "--max-num-batched-tokens", "64",
             "--kv-cache-memory", "0.01", "--compilation-cache-dir", TEST_COMPILATION_CACHE)


def open_stream(server: ServerProcess, max_tokens: int) -> http.client.HTTPResponse:
    address = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    body = {"prompt": [5, 6, 7], "max_tokens": max_tokens, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    connection.request("POST", "/v1/completions", body=orjson.dumps(body),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.read(6) == b"data: "  # generation is under way
    return response


def test_sigterm_lets_a_running_stream_finish_then_exits_0():
    server = ServerProcess(*TINY_ARGS).start()
    try:
        response = open_stream(server, max_tokens=250)
        server.signal(signal.SIGTERM)
        rest = response.read().decode()
        assert server.wait(60) == 0
    finally:
        server.kill()
    assert rest.endswith("data: [DONE]\n\n")
    usage = orjson.loads(rest.removesuffix("\n\ndata: [DONE]\n\n").rsplit("data: ", 1)[1])["usage"]
    assert usage["completion_tokens"] == 250
    log = server.log()
    assert log.index("shutting down (SIGTERM)") < log.index('"POST /v1/completions" 200')
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(urlsplit(server.base_url).hostname, urlsplit(server.base_url).port).connect()


def test_sigterm_past_the_timeout_ends_the_stream_with_one_error_event_and_exits_promptly():
    server = ServerProcess(*TINY_ARGS, "--shutdown-timeout", "0").start()
    try:
        response = open_stream(server, max_tokens=250)
        server.signal(signal.SIGINT)
        start = time.monotonic()
        rest = response.read().decode()  # IncompleteRead if the chunked body is cut
        assert server.wait(60) == 0
        assert time.monotonic() - start < 2.0
    finally:
        server.kill()
    assert "[DONE]" not in rest
    events = [orjson.loads(block[len("data: "):]) for block in ("data: " + rest).split("\n\n") if block.strip()]
    errors = [e for e in events if "error" in e]
    assert len(errors) == 1 and events[-1] is errors[0]
    assert errors[0]["error"]["type"] == "server_error" and "shutting down" in errors[0]["error"]["message"]
    assert "shutdown deadline: aborting 1 unfinished requests" in server.log()
