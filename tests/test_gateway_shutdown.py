"""SIGTERM on a real server (the tiny llama, for a fast start): running streams finish within the shutdown
timeout, later ones are cut and aborted, new connections are refused, and the process exits 0."""

import http.client
import signal
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


def test_sigterm_past_the_timeout_cuts_the_stream_and_aborts_it():
    server = ServerProcess(*TINY_ARGS, "--shutdown-timeout", "0").start()
    try:
        response = open_stream(server, max_tokens=250)
        server.signal(signal.SIGINT)
        try:
            rest = response.read().decode()
        except http.client.IncompleteRead as e:
            rest = e.partial.decode()
        assert server.wait(60) == 0
    finally:
        server.kill()
    assert "[DONE]" not in rest
    assert '"POST /v1/completions" 499' in server.log()
