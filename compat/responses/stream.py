"""A response as it is generated: the streaming events, in order with strictly increasing sequence numbers,
and the response object they add up to. The non-streaming path runs the same builder and keeps only the
object, so both give the same final response.

Each output item opens with `response.output_item.added` and closes with `response.output_item.done`, which
carries the complete item (as do content_part.done, output_text.done and function_call_arguments.done).
"""

from __future__ import annotations

import copy

from compat.assistant_turn import Delta, TextDelta, ToolCallArguments, ToolCallStart
from compat.errors import OpenAIError
from compat.responses import objects
from compat.responses.items import function_call, new_id, output_message, output_text

TERMINAL_EVENTS = {"completed": "response.completed", "incomplete": "response.incomplete",
                   "failed": "response.failed"}


class ResponseStream:
    def __init__(self, response: dict, with_logprobs: bool = False):
        self.response = response
        self.with_logprobs = with_logprobs
        self.sequence_number = 0
        self._item: dict | None = None  # the output item being written
        self._logprobs: list[dict] = []  # of the open message, as its output_text part has them
        self._event_logprobs: list[dict] = []  # the same, in the lighter form the text events carry

    @property
    def output(self) -> list[dict]:
        return self.response["output"]

    @property
    def done(self) -> bool:
        return self.response["status"] not in ("queued", "in_progress")

    def snapshot(self) -> dict:
        return copy.deepcopy(self.response)

    def start(self) -> list[dict]:
        """response.created (a background response is created queued), then response.in_progress."""
        created = self._event("response.created", response=self.snapshot())
        self.response["status"] = "in_progress"
        return [created, self._event("response.in_progress", response=self.snapshot())]

    def add(self, deltas: list[Delta]) -> list[dict]:
        events: list[dict] = []
        for delta in deltas:
            if isinstance(delta, TextDelta):
                events += self._text(delta)
            elif isinstance(delta, ToolCallStart):
                events += self._close_item("completed")
                events += self._open(function_call(new_id("fc"), delta.call_id, delta.name, "", "in_progress"))
            elif isinstance(delta, ToolCallArguments) and (call := self._open_item("function_call")) is not None:
                call["arguments"] += delta.delta
                events.append(self._item_event(call, "response.function_call_arguments.delta", delta=delta.delta))
        return events

    def finish(self, usage: dict, completed_at: int, length_cut: bool) -> list[dict]:
        """The model stopped (or, `length_cut`, ran out of output tokens): the open item closes, the response
        completes (or is incomplete). A response that said nothing still has its one, empty, message."""
        events = self._close_item("incomplete" if length_cut else "completed")
        if not self.output:
            events += self._open(output_message(new_id("msg"), "", "in_progress"))
            events += self._close_item("incomplete" if length_cut else "completed")
        self.response.update(usage=usage, completed_at=completed_at)
        if length_cut:
            self.response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
        else:
            self.response["status"] = "completed"
        return events + [self._terminal()]

    def fail(self, error: OpenAIError, usage: dict | None) -> list[dict]:
        """A failure after the stream started: an `error` event, then response.failed."""
        events = self._close_item("incomplete")
        self.response.update(status="failed", usage=usage or objects.usage(0, 0, 0),
                             error={"code": "server_error" if error.status >= 500 else "invalid_prompt",
                                    "message": error.message})
        error_event = self._event("error", code=error.code or error.type, message=error.message, param=error.param)
        return [*events, error_event, self._terminal()]

    def cancel(self) -> list[dict]:
        """A background response cancelled while it ran: what it wrote so far stays, marked incomplete. The
        API has no event for it; a stream that follows the response just ends."""
        events = self._close_item("incomplete")
        self.response["status"] = "cancelled"
        return events

    # ---- items -------------------------------------------------------------------------------------------
    def _open_item(self, kind: str) -> dict | None:
        """The item being written, if it is of this kind."""
        return self._item if self._item is not None and self._item["type"] == kind else None

    def _open(self, item: dict) -> list[dict]:
        """A message opens empty, then gains its one output_text part."""
        self._item = item
        self.output.append(item)
        if item["type"] == "message":
            item["content"] = []
        events = [self._event("response.output_item.added", output_index=len(self.output) - 1,
                              item=copy.deepcopy(item))]
        if item["type"] == "message":
            self._logprobs, self._event_logprobs = [], []
            item["content"].append(output_text(""))
            events.append(self._part_event(item, "response.content_part.added", part=output_text("")))
        return events

    def _text(self, delta: TextDelta) -> list[dict]:
        events: list[dict] = []
        message = self._open_item("message")
        if message is None:
            message = output_message(new_id("msg"), "", "in_progress")
            events = self._close_item("completed") + self._open(message)
        part = message["content"][0]
        part["text"] += delta.text
        delta_logprobs = objects.delta_logprobs(delta.logprobs) if self.with_logprobs else []
        self._event_logprobs += delta_logprobs
        self._logprobs += objects.logprobs(delta.logprobs) if self.with_logprobs else []
        return events + [self._part_event(message, "response.output_text.delta", delta=delta.text,
                                          logprobs=delta_logprobs)]

    def _close_item(self, status: str) -> list[dict]:
        item, self._item = self._item, None
        if item is None:
            return []
        item["status"] = status
        events = []
        if item["type"] == "message":
            part = item["content"][0]
            part["logprobs"] = self._logprobs
            events += [self._part_event(item, "response.output_text.done", text=part["text"],
                                        logprobs=self._event_logprobs),
                       self._part_event(item, "response.content_part.done", part=copy.deepcopy(part))]
        else:
            events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=len(self.output) - 1, name=item["name"],
                                      arguments=item["arguments"]))
        events.append(self._event("response.output_item.done", output_index=len(self.output) - 1,
                                  item=copy.deepcopy(item)))
        return events

    # ---- events ------------------------------------------------------------------------------------------
    def _terminal(self) -> dict:
        return self._event(TERMINAL_EVENTS[self.response["status"]], response=self.snapshot())

    def _item_event(self, item: dict, kind: str, **payload) -> dict:
        return self._event(kind, item_id=item["id"], output_index=len(self.output) - 1, **payload)

    def _part_event(self, item: dict, kind: str, **payload) -> dict:
        return self._item_event(item, kind, content_index=0, **payload)

    def _event(self, kind: str, **payload) -> dict:
        event = {"type": kind, "sequence_number": self.sequence_number, **payload}
        self.sequence_number += 1
        return event
