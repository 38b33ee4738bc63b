"""Tool calls parsed from model output, whole and streamed: the stream's deltas must add up to the
whole parse, and the arguments must be the JSON the model wrote (json.dumps of a known dict here)."""

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from compat.chat import chat_chunk
from compat.tool_parser import ToolCallParser, parse_tool_calls
from tests.openai_schema import validate

TOOLS = ("get_weather", "get_time")
WEATHER = {"city": "Paris", "unit": "celsius", "days": [1, 2], "nested": {"a": "}{][\\\"<tool_call>"}}
TIME = {"timezone": "Europe/Oslo"}


def ids():
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


def parse(text, **kw):
    return parse_tool_calls(text, TOOLS, new_id=ids(), **kw)


def hermes(name, args, key="arguments"):
    return f"<tool_call>\n{json.dumps({'name': name, key: args})}\n</tool_call>"


def reassemble(deltas):
    """Content and calls as an OpenAI client rebuilds them from stream deltas."""
    content, calls = "", {}
    for d in deltas:
        content += d.get("content", "")
        for piece in d.get("tool_calls", ()):
            call = calls.setdefault(piece["index"], {"id": None, "name": None, "arguments": ""})
            if "id" in piece:
                assert call["id"] is None and piece["type"] == "function"
                call["id"], call["name"] = piece["id"], piece["function"]["name"]
            call["arguments"] += piece.get("function", {}).get("arguments", "")
    return content or None, [calls[i] for i in sorted(calls)]


def streamed(text, cuts, **kw):
    parser = ToolCallParser(TOOLS, new_id=ids(), **kw)
    bounds = sorted({0, len(text), *[c % (len(text) + 1) for c in cuts]})
    deltas = [d for a, b in itertools.pairwise(bounds) for d in parser.feed(text[a:b])]
    return deltas + parser.finish()


def as_dicts(calls):
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]


# ---- whole output ------------------------------------------------------------------------------------


def test_hermes_call_after_content():
    content, calls = parse("Let me check.\n" + hermes("get_weather", WEATHER))
    assert content == "Let me check."
    assert [(c.id, c.name) for c in calls] == [("call_0", "get_weather")]
    assert json.loads(calls[0].arguments) == WEATHER


def test_parallel_hermes_calls_and_parallel_tool_calls_off():
    text = hermes("get_weather", WEATHER) + "\n" + hermes("get_time", TIME)
    _, calls = parse(text)
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.arguments) for c in calls] == [WEATHER, TIME]
    content, calls = parse(text, parallel_tool_calls=False)
    assert content is None and [c.name for c in calls] == ["get_weather"]


def test_bare_json_call_object_and_list():
    _, calls = parse(json.dumps({"name": "get_time", "parameters": TIME}))
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_time", TIME)]
    listed = json.dumps([{"name": "get_weather", "arguments": WEATHER}, {"name": "get_time", "arguments": TIME}])
    _, calls = parse(listed)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", WEATHER), ("get_time", TIME)]


def test_arguments_before_name_and_as_a_json_string():
    _, calls = parse(json.dumps({"arguments": WEATHER, "name": "get_weather"}))
    assert json.loads(calls[0].arguments) == WEATHER
    _, calls = parse(hermes("get_time", json.dumps(TIME)))
    assert json.loads(calls[0].arguments) == TIME


def test_missing_arguments_are_an_empty_object():
    _, calls = parse('<tool_call>{"name": "get_time"}</tool_call>')
    assert calls[0].arguments == "{}"


def test_json_that_is_not_a_call_stays_content():
    for text in ('{"name": "Bob", "age": 3}', '{"city": "Paris"}', '[1, 2, {"name": "get_time"}]',
                 json.dumps({"name": "unknown_tool", "arguments": {}})):
        assert parse(text) == (text, [])


def test_plain_text_is_content_verbatim_but_stripped():
    text = "  Use <tools> and <tool_call wisely; a < b.\n\n"
    assert parse(text) == (text.strip(), [])


def test_broken_json_in_tags_is_content():
    content, calls = parse('<tool_call>{"name": "get_time", oops}</tool_call>')
    assert calls == [] and '"get_time"' in content


def test_a_call_cut_short_is_not_a_call_and_gets_no_invented_arguments():
    text = hermes("get_weather", WEATHER)
    assert parse(text[:75]) == (None, [])  # cut mid-arguments
    assert parse(text[:40]) == (None, [])  # cut before the arguments began
    assert parse(text[:5]) == (None, [])  # a partial tag is markup, not content


def test_a_complete_call_then_a_cut_one_keeps_the_complete_one():
    text = hermes("get_weather", WEATHER) + "\n" + hermes("get_time", TIME)
    content, calls = parse(text[:len(text) - 20])
    assert content is None and [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", WEATHER)]
    assert parse("Hello.\n<tool")[0] == "Hello."


def test_a_stream_cut_mid_call_adds_nothing_at_the_end():
    text = hermes("get_weather", WEATHER)[:75]
    parser = ToolCallParser(["get_weather"])
    sent = parser.feed(text)
    assert sent and all("tool_calls" in d for d in sent)
    assert parser.finish() == [] and parser.calls == []


# ---- streaming ------------------------------------------------------------------------------------------

SAMPLES = [
    "Sure.\n" + hermes("get_weather", WEATHER) + "\n" + hermes("get_time", TIME) + "\nDone.",
    json.dumps([{"name": "get_weather", "arguments": WEATHER}, {"name": "get_time", "parameters": TIME}]),
    json.dumps({"arguments": TIME, "name": "get_time"}),
    hermes("get_time", json.dumps(TIME)),
    '{"name": "Bob", "tags": ["<tool_call>"]}',
    "The answer is <b>42</b>. <tool_call>",
    hermes("get_weather", WEATHER) + "\n<tool_ca",
]


@settings(max_examples=60, deadline=None)
@given(sample=st.sampled_from(SAMPLES), cuts=st.lists(st.integers(0, 400), max_size=30),
       parallel=st.booleans())
def test_stream_deltas_add_up_to_the_whole_parse(sample, cuts, parallel):
    content, calls = parse(sample, parallel_tool_calls=parallel)
    assert reassemble(streamed(sample, cuts, parallel_tool_calls=parallel)) == (content, as_dicts(calls))


def test_stream_sends_name_first_then_arguments_as_they_come():
    text = hermes("get_weather", WEATHER)
    deltas = streamed(text, range(len(text)))
    first = deltas[0]["tool_calls"][0]
    assert first == {"index": 0, "id": "call_0", "type": "function",
                     "function": {"name": "get_weather", "arguments": ""}}
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:]]
    assert len(pieces) > 10 and json.loads("".join(pieces)) == WEATHER


def test_stream_chunks_match_openai_schema():
    for delta in streamed(SAMPLES[0], [5, 17, 40, 90]):
        validate(chat_chunk("chatcmpl-1", "m", 1, 0, delta), "CreateChatCompletionStreamResponse", strict=True)
