"""One assistant turn for the surfaces that lower their requests to a chat completions body (Responses,
Anthropic Messages): parse it as chat, render and tokenize it, admit it to the engine, and read the output as
text and tool-call deltas. The one place those surfaces meet the engine seam.

Unlike /v1/chat/completions, a max_tokens beyond what the context leaves is an upper bound here, not an
error: agent clients send their own large defaults (Claude Code asks for 32000), and both APIs answer with
stop reason max_tokens / status incomplete when the context runs out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping

from compat import ChatRequest, OpenAIError, parse_chat_request, resolve_max_tokens
from compat.assistant_turn import AssistantTurn, Delta
from compat.tool_parser import new_tool_call_id
from gateway.request_stream import RequestStream
from gateway.serving_model import ServingModel
from gateway.structured_output import blame_tools, chat_constraint, offers_tools


class ChatTurn:
    def __init__(self, model: ServingModel, chat: ChatRequest, stream: RequestStream, num_prompt_tokens: int,
                 new_call_id: Callable[[], str]):
        self.model = model
        self.chat = chat
        self.stream = stream
        self.num_prompt_tokens = num_prompt_tokens
        tool_names = [tool.name for tool in chat.tools] if offers_tools(chat) else None
        self.assistant = AssistantTurn(tool_names, chat.parallel_tool_calls, new_call_id)
        self.num_output_tokens = 0
        self.num_cached_tokens = 0
        self.finish_reason: str | None = None  # stop | length, once finished
        self.stop_reason: str | int | None = None  # the stop string or token id that ended it
        self._closed = False

    async def deltas(self) -> AsyncIterator[list[Delta]]:
        """The output's deltas, a batch per engine output, until the turn finishes."""
        async for out in self.stream:
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


def count_prompt_tokens(model: ServingModel, chat_body: dict, params: Mapping[str, str]) -> int:
    return len(model.chat_prompt_ids(parse_chat(chat_body, params)))


async def start_turn(model: ServingModel, chat_body: dict, params: Mapping[str, str],
                     new_call_id: Callable[[], str] = new_tool_call_id) -> ChatTurn:
    """Admit the turn; raises OpenAIError (params renamed for the surface) if it cannot be served."""
    chat = parse_chat(chat_body, params)
    prompt_ids = model.chat_prompt_ids(chat)
    prompt_param = params.get("messages", "messages")
    try:
        room = resolve_max_tokens(len(prompt_ids), None, model.max_model_len, prompt_param)
        requested = chat.sampling["max_tokens"]
        sampling = {**chat.sampling, "max_tokens": room if requested is None else min(requested, room)}
        sampling_params, priority = model.sampling_params(sampling, chat_body, len(prompt_ids), prompt_param)
        sampling_params.structured_output = chat_constraint(chat)
        stream = await model.admit(prompt_ids, sampling_params, priority, prompt_param)
    except OpenAIError as e:
        raise renamed(blame_tools(e, chat_constraint(chat)), params) from None
    return ChatTurn(model, chat, stream, len(prompt_ids), new_call_id)


def renamed(error: OpenAIError, params: Mapping[str, str]) -> OpenAIError:
    """The error with its param named as the surface's request names it: a chat field's path
    (`messages[2].content`) does not carry over, so it becomes the surface's field (`input`)."""
    head = re.split(r"[.\[]", error.param or "", maxsplit=1)[0]
    if head in params:
        error.param = params[head]
    return error
