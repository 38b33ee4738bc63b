"""Reading a request's JSON body."""

from __future__ import annotations

from aiohttp import web

from compat import decode_json_body
from gateway.worker_pool import WorkerPool

# Smaller bodies decode faster than a hop to a worker thread and back.
DECODE_IN_POOL_BYTES = 256 * 2**10


async def read_json(request: web.Request, workers: WorkerPool) -> dict:
    """The decoded JSON object; aiohttp refuses a body over the app's client_max_size (413) while reading."""
    raw = await request.read()
    content_type = request.headers.get("Content-Type")
    if len(raw) < DECODE_IN_POOL_BYTES:
        return decode_json_body(raw, content_type)
    return await workers.run(decode_json_body, raw, content_type)
