"""The responses store's bounds (count, bytes, age; least recently used out first) and the event builders of
both agent surfaces for output the tiny models rarely write (text, then a tool call)."""

from __future__ import annotations

import copy

import orjson

from compat.anthropic import MessageStream
from compat.assistant_turn import TextDelta, ToolCallArguments, ToolCallStart
from compat.responses import ResponseStream
from compat.responses.objects import usage
from gateway.response_store import ResponseStore, StoredResponse
from tests.openai_schema import RESPONSE_EVENTS, validate


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(response_id: str, text: str = "") -> StoredResponse:
    return StoredResponse({"id": response_id, "status": "completed", "output": [], "text": text}, [], [])


def store(max_entries: int = 10, max_bytes: int = 10_000, max_age: float = 60.0) -> tuple[ResponseStore, Clock]:
    clock = Clock()
    return ResponseStore(max_entries, max_bytes, max_age, clock), clock


def test_the_least_recently_used_response_leaves_first():
    responses, _ = store(max_entries=2)
    responses.put(entry("a"))
    responses.put(entry("b"))
    assert responses.get("a") is not None
    responses.put(entry("c"))
    assert [responses.get(k) is not None for k in "abc"] == [True, False, True]


def test_bytes_are_bounded_and_an_entry_over_the_bound_is_not_kept():
    one = len(orjson.dumps([entry("a", "x" * 100).response, [], []]))
    responses, _ = store(max_bytes=2 * one)
    assert not responses.put(entry("huge", "x" * 3 * one))
    for key in "abc":
        assert responses.put(entry(key, "x" * 100))
    assert len(responses) == 2 and responses.nbytes <= 2 * one and responses.get("a") is None


def test_responses_expire_with_age():
    responses, clock = store(max_age=60)
    responses.put(entry("old"))
    clock.now = 30
    responses.put(entry("young"))
    clock.now = 61
    assert responses.get("old") is None and responses.get("young") is not None
    clock.now = 200
    responses.put(entry("new"))  # a put sweeps what has aged out
    assert len(responses) == 1


def test_deleting_or_evicting_stops_a_background_response():
    stopped = []
    responses, _ = store(max_entries=1)
    running = entry("bg")
    running.on_evict = lambda: stopped.append("bg")
    responses.put(running)
    responses.put(entry("next"))
    assert stopped == ["bg"]


RESPONSE = {"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "error": None,
            "incomplete_details": None, "instructions": None, "model": "m", "output": [], "tools": [],
            "parallel_tool_calls": True, "metadata": {}, "tool_choice": "auto", "temperature": 1.0, "top_p": 1.0}
TEXT_THEN_CALL = [TextDelta("Let me look."), ToolCallStart("call_1", "lookup"), ToolCallArguments('{"q": '),
                  ToolCallArguments('"x"}')]


def test_response_events_close_the_message_before_a_call_opens():
    stream = ResponseStream(copy.deepcopy(RESPONSE))
    events = stream.start() + stream.add(TEXT_THEN_CALL) + stream.finish(usage(3, 5, 0), 2, length_cut=False)
    for event in events:
        validate(event, RESPONSE_EVENTS[event["type"]], strict=True)
    kinds = [e["type"] for e in events]
    assert kinds.index("response.output_item.done") < kinds.index("response.function_call_arguments.delta")
    message, call = stream.response["output"]
    assert message["content"][0]["text"] == "Let me look." and message["status"] == "completed"
    assert (call["call_id"], call["arguments"], call["status"]) == ("call_1", '{"q": "x"}', "completed")
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.done"] == [0, 1]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    validate(stream.response, "Response", strict=True)


def test_a_silent_response_still_has_its_one_empty_message():
    stream = ResponseStream(copy.deepcopy(RESPONSE))
    stream.start()
    stream.finish(usage(3, 1, 0), 2, length_cut=True)
    assert stream.response["status"] == "incomplete"
    assert [(i["type"], i["status"], i["content"][0]["text"]) for i in stream.response["output"]] == [
        ("message", "incomplete", "")]


def test_message_events_give_each_block_its_index_and_the_call_its_input():
    stream = MessageStream("msg_1", "m", 3)
    events = stream.start() + stream.add(TEXT_THEN_CALL) + stream.finish("tool_use", None, {"input_tokens": 3})
    starts = [(e["index"], e["content_block"]["type"]) for e in events if e["type"] == "content_block_start"]
    assert starts == [(0, "text"), (1, "tool_use")]
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1]
    assert stream.message["content"][1]["input"] == {"q": "x"}
    assert stream.called_tools and events[-1] == {"type": "message_stop"}
