"""POST /v1/chat/completions."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from compat import (
    ChatChoiceData,
    ChatRequest,
    chat_chunk,
    chat_response,
    chat_usage_chunk,
    check_sequences_per_request,
    content_delta,
    parse_chat_request,
    role_delta,
)
from compat.tool_parser import ToolCallParser, parse_tool_calls
from gateway.body import read_json
from gateway.request_stream import RequestStream, wire_finish_reason
from gateway.request_summary import RequestSummary
from gateway.sampling import to_sampling_params
from gateway.serving_model import ServingModel
from gateway.sse import stream_events
from gateway.state import REQUEST_ID, SERVER_CONFIG, SUMMARY, serving_model
from jax_engine import RequestOutput

logger = logging.getLogger(__name__)


async def create_chat_completion(request: web.Request) -> web.StreamResponse:
    model = serving_model(request)
    body = await read_json(request, model.workers)
    chat = parse_chat_request(body, allow_structured_output=True, allow_tools=True)
    model.check_model(chat.model)
    check_sequences_per_request(1, chat.n, request.app[SERVER_CONFIG].max_sequences_per_request)
    if chat.ignored_fields:
        logger.debug("request %s: ignoring unknown fields %s", request[REQUEST_ID], chat.ignored_fields)
    prompt_ids = await model.workers.run(model.chat_prompt_ids, chat)
    stream = await model.admit(chat, prompt_ids, to_sampling_params(chat, model.defaults, len(prompt_ids)))
    call = ChatCall(model, chat, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()))
    try:
        if chat.stream:
            return await stream_events(request, call.events(stream))
        return await call.respond(stream)
    finally:
        await stream.aclose()
        request[SUMMARY] = call.summary


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    logprobs: list = field(default_factory=list)
    finish_reason: str | None = None


class ChatCall:
    def __init__(self, model: ServingModel, chat: ChatRequest, response_id: str, created: int):
        self.model = model
        self.chat = chat
        self.response_id = response_id
        self.created = created
        self.summary = RequestSummary()
        self.echo = _echo_text(chat)
        self.tool_names = [tool.name for tool in chat.tools or []] if chat.offers_tools else None
        self.tool_parsers = ([ToolCallParser(self.tool_names, chat.parallel_tool_calls) for _ in range(chat.n)]
                             if self.tool_names is not None else None)

    def _logprobs(self, out: RequestOutput) -> list | None:
        if not self.chat.logprobs:
            return None
        return self.model.logprobs.chat(out.new_logprobs or (), self.chat.top_logprobs)

    async def respond(self, stream: RequestStream) -> web.Response:
        choices = [_Choice(text=[self.echo]) for _ in range(self.chat.n)]
        async for out in stream:
            self.summary.add(0, out)
            choice = choices[out.index]
            choice.text.append(out.new_text)
            choice.logprobs.extend(self._logprobs(out) or ())
            choice.finish_reason = wire_finish_reason(out) or choice.finish_reason
        data = [self._choice_data(i, c) for i, c in enumerate(choices)]
        body = chat_response(self.response_id, self.model.name, self.created, data, self.summary.usage())
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _choice_data(self, index: int, choice: _Choice) -> ChatChoiceData:
        text, finish_reason = "".join(choice.text), choice.finish_reason or "stop"
        logprobs = choice.logprobs if self.chat.logprobs else None
        if self.tool_names is None:
            return ChatChoiceData(index, text, finish_reason, logprobs)
        content, calls = parse_tool_calls(text, self.tool_names, self.chat.parallel_tool_calls)
        return ChatChoiceData(index, content, _with_tool_calls(finish_reason, calls), logprobs, calls)

    async def events(self, stream: RequestStream) -> AsyncGenerator[list[dict], None]:
        """The stream's chunks, a batch per engine output."""
        yield [self._chunk(i, role_delta()) for i in range(self.chat.n)]
        if self.echo:
            yield [self._chunk(i, content_delta(self.echo)) for i in range(self.chat.n)]
        async for out in stream:
            self.summary.add(0, out)
            parser = self.tool_parsers[out.index] if self.tool_parsers is not None else None
            yield self._tool_chunks(out, parser) if parser is not None else self._output_chunks(out)
        if self.chat.include_usage:
            yield [chat_usage_chunk(self.response_id, self.model.name, self.created, self.summary.usage())]

    def _output_chunks(self, out: RequestOutput) -> list[dict]:
        """This output's text and logprobs, then (when it is the last) the finish_reason on an empty delta, as
        OpenAI sends it."""
        logprobs = self._logprobs(out)
        finish_reason = wire_finish_reason(out)
        chunks = []
        if out.new_text or logprobs or (finish_reason is None and self.model.tokenizer is None):
            # a token that completes no character yet sends nothing (without a tokenizer, every token is sent)
            chunks.append(self._chunk(out.index, content_delta(out.new_text), None, logprobs))
        if finish_reason is not None:
            chunks.append(self._chunk(out.index, {}, finish_reason))
        return chunks

    def _tool_chunks(self, out: RequestOutput, parser: ToolCallParser) -> list[dict]:
        """The tool parser's content and tool_calls deltas; this output's logprobs ride on the first, and the
        finish_reason comes last on an empty delta, as OpenAI sends it."""
        deltas = parser.feed(out.new_text)
        finish_reason = wire_finish_reason(out)
        if finish_reason is not None:
            deltas += parser.finish()
            finish_reason = _with_tool_calls(finish_reason, parser.calls)
        logprobs = self._logprobs(out)
        if logprobs and not deltas:
            deltas = [{}]
        chunks = [self._chunk(out.index, delta, None, logprobs if i == 0 else None) for i, delta in enumerate(deltas)]
        if finish_reason is not None:
            chunks.append(self._chunk(out.index, {}, finish_reason))
        return chunks

    def _chunk(self, index: int, delta: dict, finish_reason: str | None = None,
               logprobs: list | None = None) -> dict:
        running = self.summary.usage() if self.chat.continuous_usage_stats else None
        return chat_chunk(self.response_id, self.model.name, self.created, index, delta, finish_reason, logprobs,
                          usage_null=self.chat.include_usage, usage=running)


def _with_tool_calls(finish_reason: str, calls) -> str:
    return "tool_calls" if calls and finish_reason == "stop" else finish_reason


def _echo_text(chat: ChatRequest) -> str:
    """vLLM's `echo`: a final assistant message (being continued) is repeated at the start of the reply."""
    last = chat.messages[-1]
    if chat.echo and last.get("role") == "assistant" and isinstance(last.get("content"), str):
        return last["content"]
    return ""
