"""The HTTP connection's limits, in-process on a small app behind GuardedAppRunner (no engine): headers, bodies
and idle keep-alives have deadlines, a client that stops reading is cut, connections are capped, and what
aiohttp itself refuses still speaks OpenAI's error envelope."""

import asyncio
import contextlib
import socket
import time

import orjson
import pytest
from aiohttp import web

from gateway.body import expect_continue, read_json
from gateway.connection import ConnectionLimits, GuardedAppRunner
from gateway.os_limits import RateLimitedLoopErrors, connection_cap
from gateway.server_config import ServerConfig
from gateway.state import SERVER_CONFIG
from gateway.worker_pool import WorkerPool
from tests.openai_schema import validate

FAST = ConnectionLimits(max_connections=3, timeout_keep_alive=0.5, timeout_request_header=0.5, timeout_write=0.5)
WORKERS = WorkerPool(1)
stream_closed: asyncio.Event | None = None


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def echo(request: web.Request) -> web.Response:
    try:
        return web.json_response(await read_json(request, WORKERS))
    except Exception as e:  # the OpenAIError the real app's middleware would answer
        return web.Response(status=e.status, body=orjson.dumps(e.to_dict()), content_type="application/json")


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    try:
        while True:
            await response.write(b"x" * 65536)
    finally:
        stream_closed.set()


@contextlib.asynccontextmanager
async def serving(limits: ConnectionLimits = FAST, **config):
    global stream_closed
    stream_closed = asyncio.Event()
    app = web.Application(client_max_size=1000)
    app[SERVER_CONFIG] = ServerConfig(served_model_name="m", max_body_bytes=1000, **config)
    app.router.add_get("/health", health)
    app.router.add_get("/endless", endless)
    app.router.add_post("/echo", echo, expect_handler=expect_continue)
    runner = GuardedAppRunner(app, limits, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def open_connection(port: int, payload: bytes = b""):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if payload:
        writer.write(payload)
        await writer.drain()
    return reader, writer


async def read_all(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything until the server closes (reset counts as closed)."""
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            chunks.append(chunk)
    return b"".join(chunks)


def error_body(reply: bytes, status: int) -> dict:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), reply[:300]
    assert b"content-type: application/json" in head.lower()
    payload = orjson.loads(body)
    validate(payload, "ErrorResponse")
    return payload["error"]


async def test_a_silent_connection_is_closed_after_the_keep_alive_timeout():
    async with serving() as port:
        reader, _ = await open_connection(port)
        start = time.monotonic()
        assert await read_all(reader) == b""
        assert time.monotonic() - start < 2.0


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout():
    async with serving() as port:
        reader, _ = await open_connection(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        reply = await read_all(reader)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok")
        assert time.monotonic() - start < 2.0


async def test_headers_that_trickle_in_are_cut_at_the_header_deadline():
    async with serving(ConnectionLimits(timeout_keep_alive=30, timeout_request_header=0.5)) as port:
        reader, writer = await open_connection(port, b"GET /health HTTP/1.1\r\n")
        start = time.monotonic()
        for _ in range(20):
            if reader.at_eof() or writer.is_closing():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(b"X-A: b\r\n")
                await writer.drain()
            await asyncio.sleep(0.1)
        await read_all(reader)
        assert time.monotonic() - start < 2.0


async def test_a_body_slower_than_the_body_deadline_gets_408():
    async with serving(timeout_request_body=0.5) as port:
        reader, writer = await open_connection(
            port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
        start = time.monotonic()
        reply = await read_all(reader)
        assert error_body(reply, 408)["code"] == "request_timeout"
        assert time.monotonic() - start < 4.0


async def test_a_client_that_stops_reading_is_cut_after_the_write_timeout():
    async with serving() as port:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
        client.send(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            await asyncio.wait_for(stream_closed.wait(), 5.0)  # the handler was cancelled: the server let go
        finally:
            client.close()


async def test_connections_beyond_the_cap_get_503_and_are_closed(caplog):
    async with serving(ConnectionLimits(max_connections=2, timeout_keep_alive=30)) as port:
        held = [await open_connection(port) for _ in range(2)]
        reader, _ = await open_connection(port)
        error = error_body(await read_all(reader), 503)
        assert "too many open connections" in error["message"]
        for _ in range(20):
            reader, _ = await open_connection(port)
            await read_all(reader)
        for _, writer in held:
            writer.close()
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) <= 1  # not one line per refusal


@pytest.mark.parametrize("payload", [b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n",
                                     b"GET /health HTTP/1.1\r\nContent-Length: x\r\n\r\n"])
async def test_what_aiohttp_cannot_parse_gets_a_400_envelope(payload):
    async with serving() as port:
        reader, _ = await open_connection(port, payload)
        error = error_body(await read_all(reader), 400)
        assert error["type"] == "invalid_request_error" and error["message"].startswith("Malformed HTTP request")


async def test_expect_100_continue_over_the_body_limit_gets_413_before_the_body():
    async with serving() as port:
        reader, _ = await open_connection(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                                                b"Content-Type: application/json\r\nExpect: 100-continue\r\n\r\n")
        error = error_body(await read_all(reader), 413)
        assert error["code"] == "request_too_large"


async def test_expect_100_continue_within_the_limit_continues():
    async with serving() as port:
        reader, writer = await open_connection(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n"
                                                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b'{"a": 1}')
        reply = await read_all(reader)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"a": 1}')


def test_the_connection_cap_leaves_room_for_the_process_own_files():
    assert connection_cap(1000, 20000) == 1000
    assert connection_cap(1000, 1024) == 1024 - 128


def test_loop_errors_are_logged_once_per_interval(caplog):
    now = [0.0]
    handler = RateLimitedLoopErrors(interval=10.0, clock=lambda: now[0])
    context = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
    for _ in range(1000):
        handler(None, context)
    now[0] = 11.0
    handler(None, context)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "999 more like it" in lines[1]
