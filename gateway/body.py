"""Reading a request's JSON body without holding the event loop for long, whatever its size."""

from __future__ import annotations

from aiohttp import web

from compat import decode_json_body
from gateway.state import SERVER_CONFIG
from gateway.worker_pool import WorkerPool

# Smaller bodies decode faster than a hop to a worker thread and back.
DECODE_IN_POOL_BYTES = 256 * 2**10


async def read_json(request: web.Request, workers: WorkerPool) -> dict:
    """The decoded JSON object; a body over --max-body-bytes is refused (413)."""
    raw = await read_body(request, request.app[SERVER_CONFIG].max_body_bytes)
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
