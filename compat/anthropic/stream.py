"""A Messages response as it is generated: Anthropic's stream events (message_start, content_block_start /
_delta / _stop, message_delta, message_stop) and the message they add up to. The non-streaming path runs the
same builder and keeps only the message, so both give the same final object."""

from __future__ import annotations

import copy

from compat.assistant_turn import Delta, TextDelta, ToolCallArguments, ToolCallStart
from compat.body import decode_json_text


def usage(input_tokens: int, output_tokens: int, cached_tokens: int) -> dict:
    """Anthropic counts the prompt tokens the cache served apart from input_tokens; the three add up to the
    prompt."""
    return {"input_tokens": input_tokens - cached_tokens, "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached_tokens}


def stop_reason(finish_reason: str | None, stop: str | int | None, stop_sequences: tuple[str, ...],
                called_tools: bool) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for the engine's finish_reason and the stop string or token that ended it."""
    if finish_reason == "length":
        return "max_tokens", None
    if isinstance(stop, str) and stop in stop_sequences:
        return "stop_sequence", stop
    return ("tool_use" if called_tools else "end_turn"), None


class MessageStream:
    def __init__(self, message_id: str, model: str, num_prompt_tokens: int):
        self.message: dict = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
                              "stop_reason": None, "stop_sequence": None, "usage": usage(num_prompt_tokens, 0, 0)}
        self._block: dict | None = None  # the content block being written
        self._arguments = ""  # the open tool_use block's JSON input, as streamed

    @property
    def content(self) -> list[dict]:
        return self.message["content"]

    @property
    def called_tools(self) -> bool:
        return any(block["type"] == "tool_use" for block in self.content)

    def start(self) -> list[dict]:
        return [{"type": "message_start", "message": copy.deepcopy(self.message)}, {"type": "ping"}]

    def add(self, deltas: list[Delta]) -> list[dict]:
        events: list[dict] = []
        for delta in deltas:
            if isinstance(delta, TextDelta):
                block = self._block
                if block is None or block["type"] != "text":
                    block = {"type": "text", "text": ""}
                    events += self._close() + self._open(block)
                block["text"] += delta.text
                events.append(self._delta({"type": "text_delta", "text": delta.text}))
            elif isinstance(delta, ToolCallStart):
                events += self._close() + self._open({"type": "tool_use", "id": delta.call_id, "name": delta.name,
                                                      "input": {}})
                self._arguments = ""
            elif isinstance(delta, ToolCallArguments) and self._block is not None:
                self._arguments += delta.delta
                events.append(self._delta({"type": "input_json_delta", "partial_json": delta.delta}))
        return events

    def finish(self, reason: str, sequence: str | None, final_usage: dict) -> list[dict]:
        events = self._close()
        self.message.update(stop_reason=reason, stop_sequence=sequence, usage=final_usage)
        return events + [{"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                          "usage": dict(final_usage)},
                         {"type": "message_stop"}]

    def _open(self, block: dict) -> list[dict]:
        self._block = block
        self.content.append(block)
        return [{"type": "content_block_start", "index": len(self.content) - 1, "content_block": copy.deepcopy(block)}]

    def _delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": len(self.content) - 1, "delta": delta}

    def _close(self) -> list[dict]:
        block, self._block = self._block, None
        if block is None:
            return []
        if block["type"] == "tool_use":
            block["input"] = _tool_input(self._arguments)
        return [{"type": "content_block_stop", "index": len(self.content) - 1}]


def _tool_input(arguments: str) -> dict:
    """The call's arguments as the object Anthropic's `input` is; arguments cut short or not an object: {}."""
    try:
        value = decode_json_text(arguments) if arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
