"""Anthropic's Messages API: POST /v1/messages (Claude Code adds ?beta=true) and POST /v1/messages/count_tokens.
Errors on these routes leave in Anthropic's envelope (gateway.http_errors)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

from aiohttp import web

from compat import OpenAIError
from compat import anthropic as messages_api
from compat import errors as openai_errors
from gateway.body import read_json
from gateway.chat_turn import ChatTurn, count_prompt_tokens, start_turn
from gateway.keepalive import with_keepalive
from gateway.sse import Framing, named_event
from gateway.state import REQUEST_ID, serving_model
from gateway.turn_reply import json_response, reply

logger = logging.getLogger(__name__)

EVENTS = Framing(named_event, b"", messages_api.error_body)
PING = {"type": "ping"}
PING_INTERVAL_SECONDS = 15.0  # while a long prompt is prefilled, as Anthropic's API pings its streams


def new_tool_use_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


async def create_message(request: web.Request) -> web.StreamResponse:
    model = serving_model(request)
    body = await read_json(request, model.workers)
    messages_request = messages_api.parse_messages_request(body)
    model.check_model(messages_request.model)
    if messages_request.ignored_fields:
        logger.debug("request %s: ignoring unknown fields %s", request[REQUEST_ID], messages_request.ignored_fields)
    turn = await start_turn(model, messages_api.chat_body(messages_request), messages_api.PARAMS, new_tool_use_id)
    run = MessageRun(turn, messages_api.MessageStream(f"msg_{uuid.uuid4().hex}", model.name, turn.num_prompt_tokens),
                     messages_request.stop_sequences, PING_INTERVAL_SECONDS)
    return await reply(request, turn, run, messages_request.stream, EVENTS, lambda: run.message.message)


async def count_tokens(request: web.Request) -> web.Response:
    model = serving_model(request)
    body = await read_json(request, model.workers)
    messages_request = messages_api.parse_messages_request(body, counting=True)
    model.check_model(messages_request.model)
    count = await count_prompt_tokens(model, messages_api.chat_body(messages_request), messages_api.PARAMS)
    return json_response({"input_tokens": count})


class MessageRun:
    def __init__(self, turn: ChatTurn, message: messages_api.MessageStream, stop_sequences: tuple[str, ...],
                 ping_interval: float):
        self.turn = turn
        self.ping_interval = ping_interval
        self.message = message
        self.stop_sequences = stop_sequences
        self.error: OpenAIError | None = None

    async def batches(self) -> AsyncGenerator[list[dict], None]:
        """message_start to message_stop, with a ping whenever the engine has been quiet for ping_interval; a
        failure of the engine mid-stream is an `error` event. The engine request is closed on every way out."""
        try:
            yield self.message.start()
            try:
                # closed before the turn is, so that no wait for the engine is left running when it is aborted
                async with aclosing(with_keepalive(self.turn.deltas(), self.ping_interval)) as outputs:
                    async for deltas in outputs:
                        yield [PING] if deltas is None else self.message.add(deltas)
            except OpenAIError as e:
                self.error = e
            except Exception:
                logger.exception("message %s failed", self.message.message["id"])
                self.error = openai_errors.internal_error()
            if self.error is not None:
                yield [messages_api.error_body(self.error)]
                return
            turn = self.turn
            reason, sequence = messages_api.stop_reason(turn.finish_reason, turn.stop_reason, self.stop_sequences,
                                                        self.message.called_tools)
            usage = messages_api.usage(turn.num_prompt_tokens, turn.num_output_tokens, turn.num_cached_tokens)
            yield self.message.finish(reason, sequence, usage)
        finally:
            await self.turn.aclose()

    async def run(self) -> None:
        async for _ in self.batches():
            pass

