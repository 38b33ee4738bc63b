"""Reading a request's JSON body."""

from __future__ import annotations

from aiohttp import web

from compat import decode_json_body


async def read_json(request: web.Request) -> dict:
    """The decoded JSON object; aiohttp refuses a body over the app's client_max_size (413) while reading."""
    raw = await request.read()
    return decode_json_body(raw, request.headers.get("Content-Type"))
