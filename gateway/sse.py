"""Server-sent events as OpenAI streams them: `data: {json}\\n\\n` per event, then `data: [DONE]\\n\\n`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass

import orjson
from aiohttp import web

from compat import OpenAIError
from gateway.http_errors import internal_error
from gateway.state import REQUEST_ID

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not hold events back
}


def event(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def named_event(payload: dict) -> bytes:
    return b"event: " + payload["type"].encode() + b"\n" + event(payload)


@dataclass(frozen=True)
class Framing:
    encode: Callable[[dict], bytes]
    done: bytes  # the terminator, or b"" for none
    error: Callable[[OpenAIError], dict]  # the event a failure mid-stream becomes


DATA_EVENTS = Framing(event, DONE, OpenAIError.to_dict)


class EventStream:
    """A prepared streaming response. Writes raise ConnectionResetError once the client has gone."""

    def __init__(self, response: web.StreamResponse, framing: Framing = DATA_EVENTS):
        self.response = response
        self.framing = framing

    @classmethod
    async def open(cls, request: web.Request, framing: Framing = DATA_EVENTS) -> EventStream:
        response = web.StreamResponse(status=200, headers=HEADERS)
        await response.prepare(request)
        return cls(response, framing)

    async def send_many(self, payloads: list[dict]) -> None:
        if payloads:
            await self.response.write(b"".join(self.framing.encode(p) for p in payloads))

    async def send_error(self, error: OpenAIError) -> None:
        """An error after the stream started: one error event, then the stream ends (no terminator)."""
        await self.response.write(self.framing.encode(self.framing.error(error)))
        await self.response.write_eof()

    async def close(self) -> None:
        if self.framing.done:
            await self.response.write(self.framing.done)
        await self.response.write_eof()


async def stream_events(request: web.Request, batches: AsyncGenerator[list[dict], None],
                        framing: Framing = DATA_EVENTS) -> web.StreamResponse:
    """Open the stream and send each batch of events as it comes, then [DONE].

    Once the headers are out, a failure can only be told in an event: an OpenAIError (the engine failed the
    request) is sent as it is, anything else is logged and sent as a bare server error. A client that left
    ends the stream quietly. `batches` is closed on every way out, so what it holds open is released at once.
    """
    events = await EventStream.open(request, framing)
    try:
        async with aclosing(batches):
            async for payloads in batches:
                await events.send_many(payloads)
        await events.close()
    except ConnectionResetError:
        logger.info("request %s: client disconnected", request[REQUEST_ID])
    except OpenAIError as e:
        logger.error("request %s failed mid-stream: %s", request[REQUEST_ID], e.message)
        await _end_with(events, e)
    except Exception:
        logger.exception("internal error mid-stream in %s (request_id=%s)", request.path, request[REQUEST_ID])
        await _end_with(events, internal_error(request[REQUEST_ID]))
    return events.response


async def _end_with(events: EventStream, error: OpenAIError) -> None:
    with contextlib.suppress(ConnectionResetError):
        await events.send_error(error)
