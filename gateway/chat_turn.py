"""One assistant turn for the surfaces that lower their requests to a chat completions body (Responses,
Anthropic Messages): parse it as chat, render and tokenize it, admit it to the engine, and read the output as
text and tool-call deltas. The one place those surfaces meet the engine seam.

Unlike /v1/chat/completions, a max_tokens beyond what the context leaves is an upper bound here, not an
error: agent clients send their own large defaults (Claude Code asks for 32000), and both APIs answer with
stop reason max_tokens / status incomplete when the context runs out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncGenerator, Callable, Mapping

from compat import ChatRequest, OpenAIError, parse_chat_request
from compat import errors as openai_errors
from compat.assistant_turn import AssistantTurn, Delta
from compat.tool_parser import new_tool_call_id
from gateway.request_stream import RequestStream
from gateway.request_summary import RequestSummary
from gateway.sampling import to_sampling_params
from gateway.serving_model import ServingModel


class ChatTurn:
    def __init__(self, model: ServingModel, chat: ChatRequest, stream: RequestStream, num_prompt_tokens: int,
                 new_call_id: Callable[[], str]):
        self.model = model
        self.chat = chat
        self.stream = stream
        self.num_prompt_tokens = num_prompt_tokens
        tool_names = [tool.name for tool in chat.tools or ()] if chat.offers_tools else None
        self.assistant = AssistantTurn(tool_names, chat.parallel_tool_calls, new_call_id)
        self.summary = RequestSummary()  # usage and the access log's line
        self.num_output_tokens = 0
        self.num_cached_tokens = 0
        self.finish_reason: str | None = None  # stop | length, once finished
        self.stop_reason: str | int | None = None  # the stop string or token id that ended it
        self._closed = False

    async def deltas(self) -> AsyncGenerator[list[Delta], None]:
        """The output's deltas, a batch per engine output, until the turn finishes."""
        async for out in self.stream:
            self.summary.add(0, out)
            self.num_output_tokens = out.num_output_tokens
            self.num_cached_tokens = out.num_cached_tokens
            logprobs = self.model.logprobs.chat(out.new_logprobs or (), self.chat.top_logprobs) \
                if self.chat.logprobs else ()
            deltas = self.assistant.feed(out.new_text, logprobs)
            if out.finished:
                deltas += self.assistant.finish()
                self.finish_reason = "length" if out.finish_reason == "length" else "stop"
                self.stop_reason = out.stop_reason
            yield deltas

    async def aclose(self) -> None:
        """Aborts the engine request if it has not finished; closing twice does nothing."""
        if not self._closed:
            self._closed = True
            await self.stream.aclose()


def parse_chat(chat_body: dict, params: Mapping[str, str]) -> ChatRequest:
    try:
        return parse_chat_request(chat_body, allow_structured_output=True, allow_tools=True)
    except OpenAIError as e:
        raise renamed(e, params) from None


async def count_prompt_tokens(model: ServingModel, chat_body: dict, params: Mapping[str, str]) -> int:
    chat = parse_chat(chat_body, params)
    try:
        return len(await model.workers.run(model.chat_prompt_ids, chat))
    except OpenAIError as e:
        raise renamed(e, params) from None


async def start_turn(model: ServingModel, chat_body: dict, params: Mapping[str, str],
                     new_call_id: Callable[[], str] = new_tool_call_id) -> ChatTurn:
    """Admit the turn; raises OpenAIError (params renamed for the surface) if it cannot be served."""
    chat = parse_chat(chat_body, params)
    try:
        prompt_ids = await model.workers.run(model.chat_prompt_ids, chat)
        chat = _within_context(chat, len(prompt_ids), model.defaults.max_model_len)
        stream = await model.admit(chat, prompt_ids, to_sampling_params(chat, model.defaults, len(prompt_ids)))
    except OpenAIError as e:
        raise renamed(e, params) from None
    return ChatTurn(model, chat, stream, len(prompt_ids), new_call_id)


def _within_context(chat: ChatRequest, num_prompt_tokens: int, max_model_len: int) -> ChatRequest:
    """max_tokens cut to what the context leaves after the prompt; a prompt that fills it is refused."""
    room = max_model_len - num_prompt_tokens
    if room < 1:
        raise openai_errors.context_length_exceeded(max_model_len, num_prompt_tokens, None, "messages")
    requested = chat.sampling.max_tokens
    max_tokens = room if requested is None else min(requested, room)
    return dataclasses.replace(chat, sampling=dataclasses.replace(chat.sampling, max_tokens=max_tokens))


def renamed(error: OpenAIError, params: Mapping[str, str]) -> OpenAIError:
    """The error with its param named as the surface's request names it: a chat field's path
    (`messages[2].content`) does not carry over, so it becomes the surface's field (`input`)."""
    head = re.split(r"[.\[]", error.param or "", maxsplit=1)[0]
    if head in params:
        error.param = params[head]
    return error
