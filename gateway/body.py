"""Reading a request's body: within the size limit and the body deadline, and `Expect: 100-continue`."""

from __future__ import annotations

import asyncio

from aiohttp import HttpVersion11, web

from compat import OpenAIError, decode_json_body
from compat import errors as openai_errors
from gateway.http_errors import error_response
from gateway.state import SERVER_CONFIG


async def read_json(request: web.Request) -> dict:
    """The decoded JSON object. A declared length over the limit is refused before reading; aiohttp refuses
    an undeclared one (chunked) once it passes the limit; a body slower than the deadline gets 408."""
    config = request.app[SERVER_CONFIG]
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise openai_errors.body_too_large(config.max_body_bytes)
    try:
        raw = await asyncio.wait_for(request.read(), config.timeout_request_body)
    except asyncio.TimeoutError:
        request.protocol.close()  # what is left of the body is not worth reading
        raise openai_errors.request_timeout("request body", config.timeout_request_body) from None
    return decode_json_body(raw, request.headers.get("Content-Type"))


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
