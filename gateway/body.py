"""Reading a request's JSON body without holding the event loop for long, whatever its size, within the size
limit and the body deadline; and `Expect: 100-continue`."""

from __future__ import annotations

import asyncio

from aiohttp import HttpVersion11, web

from compat import OpenAIError, decode_json_body
from compat import errors as openai_errors
from gateway.http_errors import error_response
from gateway.state import SERVER_CONFIG
from gateway.worker_pool import WorkerPool

# Smaller bodies decode faster than a hop to a worker thread and back.
DECODE_IN_POOL_BYTES = 256 * 2**10


async def read_json(request: web.Request, workers: WorkerPool) -> dict:
    """The decoded JSON object; a body over --max-body-bytes is refused (413), one slower than
    --timeout-request-body gets 408."""
    config = request.app[SERVER_CONFIG]
    try:
        raw = await asyncio.wait_for(read_body(request, config.max_body_bytes), config.timeout_request_body)
    except asyncio.TimeoutError:
        request.protocol.close()  # what is left of the body is not worth reading
        raise openai_errors.request_timeout("request body", config.timeout_request_body) from None
    content_type = request.headers.get("Content-Type")
    if len(raw) < DECODE_IN_POOL_BYTES:
        return decode_json_body(raw, content_type)
    return await workers.run(decode_json_body, raw, content_type)


async def read_body(request: web.Request, limit: int) -> bytes | bytearray:
    """Chunk by chunk into a buffer sized from Content-Length: aiohttp's read() grows a bytearray and copies
    it whole at the end, tens of milliseconds of event loop for a 15 MB body."""
    length = request.content_length
    if length is not None and length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
    if length is None:  # chunked upload: its size is known only as it comes
        return await _read_chunked(request, limit)
    body = bytearray(length)
    view, received = memoryview(body), 0
    async for chunk in request.content.iter_any():
        view[received:received + len(chunk)] = chunk
        received += len(chunk)
    return body


async def _read_chunked(request: web.Request, limit: int) -> bytes:
    chunks, received = [], 0
    async for chunk in request.content.iter_any():
        received += len(chunk)
        if received > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=received)
        chunks.append(chunk)
    return b"".join(chunks)


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """Answer `Expect: 100-continue` with 413 when the declared body is over the limit, so the client never
    sends it; otherwise with 100 Continue."""
    if request.headers.get("Expect", "").lower() != "100-continue":
        return _closing(OpenAIError(417, f"Unsupported Expect header: {request.headers['Expect']!r}",
                                    openai_errors.INVALID_REQUEST, None, "expectation_failed"))
    limit = request.app[SERVER_CONFIG].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _closing(openai_errors.body_too_large(limit))
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
    return None


def _closing(error: OpenAIError) -> web.Response:
    response = error_response(error)
    response.force_close()
    return response
