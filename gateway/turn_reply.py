"""The reply to one agent-surface turn (Responses, Anthropic Messages): its run's events as a stream, or one
JSON body once the run has finished. Either way the engine request is closed and the turn's usage recorded."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol

import orjson
from aiohttp import web

from compat import OpenAIError
from gateway.chat_turn import ChatTurn
from gateway.sse import Framing, stream_events
from gateway.state import SUMMARY


class TurnRun(Protocol):
    error: OpenAIError | None

    def batches(self) -> AsyncGenerator[list[dict], None]: ...

    async def run(self) -> None: ...


async def reply(request: web.Request, turn: ChatTurn, run: TurnRun, stream: bool, framing: Framing,
                final_body: Callable[[], dict]) -> web.StreamResponse:
    try:
        if stream:
            return await stream_events(request, run.batches(), framing)
        await run.run()
    finally:
        await turn.aclose()
        request[SUMMARY] = turn.summary
    if run.error is not None:
        raise run.error
    return json_response(final_body())


def json_response(payload: dict) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")
