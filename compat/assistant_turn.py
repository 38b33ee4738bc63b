"""The assistant's turn as it streams in, in terms every API surface shares: text, and tool calls when tools
are offered. The Responses and Messages surfaces build their events from these deltas, so both read the
model's output the same way the chat endpoint does (compat.tool_parser)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from compat.logprobs import TokenLogprob
from compat.tool_parser import ToolCallParser, new_tool_call_id


@dataclass(frozen=True)
class TextDelta:
    text: str
    logprobs: Sequence[TokenLogprob] = ()  # of the tokens that produced it (when the client asked for them)


@dataclass(frozen=True)
class ToolCallStart:
    call_id: str
    name: str


@dataclass(frozen=True)
class ToolCallArguments:
    delta: str  # the next piece of the call's JSON arguments


Delta = TextDelta | ToolCallStart | ToolCallArguments


class AssistantTurn:
    """Feed the generated text as it comes; get deltas. `tool_names` None: no tools offered, all is text."""

    def __init__(self, tool_names: Collection[str] | None, parallel_tool_calls: bool = True,
                 new_call_id: Callable[[], str] = new_tool_call_id):
        self._parser = None if tool_names is None else ToolCallParser(tool_names, parallel_tool_calls, new_call_id)
        self._logprobs: list[TokenLogprob] = []  # read but not yet attached to text

    def feed(self, text: str, logprobs: Sequence[TokenLogprob] = ()) -> list[Delta]:
        self._logprobs.extend(logprobs)
        if self._parser is None:
            return self._text([text] if text else [])
        return self._deltas(self._parser.feed(text))

    def finish(self) -> list[Delta]:
        return [] if self._parser is None else self._deltas(self._parser.finish())

    def _deltas(self, chat_deltas: list[dict]) -> list[Delta]:
        deltas: list[Delta] = []
        for chat_delta in chat_deltas:
            if "content" in chat_delta:
                deltas += self._text([chat_delta["content"]])
            for call in chat_delta.get("tool_calls", ()):
                function = call.get("function", {})
                if "id" in call:
                    deltas.append(ToolCallStart(call["id"], function["name"]))
                    self._logprobs = []
                if function.get("arguments"):
                    deltas.append(ToolCallArguments(function["arguments"]))
        return deltas

    def _text(self, pieces: list[str]) -> list[Delta]:
        """Logprobs ride on the next text delta; those of text the parser took for a call are dropped."""
        deltas: list[Delta] = []
        for piece in pieces:
            deltas.append(TextDelta(piece, tuple(self._logprobs)))
            self._logprobs = []
        return deltas
