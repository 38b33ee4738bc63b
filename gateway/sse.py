"""Server-sent events as OpenAI streams them: `data: {json}\\n\\n` per event, then `data: [DONE]\\n\\n`."""

from __future__ import annotations

import orjson
from aiohttp import web

from compat import OpenAIError

DONE = b"data: [DONE]\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not hold events back
}


def event(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class EventStream:
    """A prepared streaming response. Writes raise ConnectionResetError once the client has gone."""

    def __init__(self, response: web.StreamResponse):
        self.response = response

    @classmethod
    async def open(cls, request: web.Request) -> EventStream:
        response = web.StreamResponse(status=200, headers=HEADERS)
        await response.prepare(request)
        return cls(response)

    async def send(self, payload: dict) -> None:
        await self.response.write(event(payload))

    async def send_many(self, payloads: list[dict]) -> None:
        if payloads:
            await self.response.write(b"".join(event(p) for p in payloads))

    async def send_error(self, error: OpenAIError) -> None:
        """An error after the stream started: one error event, then the stream ends (no [DONE])."""
        await self.response.write(event(error.to_dict()))
        await self.response.write_eof()

    async def close(self) -> None:
        await self.response.write(DONE)
        await self.response.write_eof()
