"""Tool calls in model output, parsed as the text streams in.

Two shapes: Hermes/Qwen blocks, `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` (any number,
text before them is content), and bare JSON, a call object or a list of them, taken as calls only when the
first call names one of the request's tools. A stream yields OpenAI deltas: the call's index, id, type and
function name first, then its arguments as the model writes them, so the pieces of a stream concatenate to
exactly what the non-streaming parse returns. Content is stripped of leading and trailing whitespace.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection

from compat.body import decode_json_text
from compat.chat import content_delta, tool_call_delta
from compat.tools import CALL_CLOSE, CALL_OPEN, ToolCall

ARGUMENT_KEYS = ("arguments", "parameters")
CALL_KEYS = ("name", *ARGUMENT_KEYS)
WHITESPACE = " \t\r\n"


def new_tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


class CallObject:
    """One JSON call object, scanned a character at a time: which top-level member is being read, where
    its value starts, and the raw text of the members read so far."""

    def __init__(self) -> None:
        self.text = ""
        self.members: dict[str, str] = {}  # key -> raw JSON text of its value
        self.key: str | None = None  # the member being read
        self.value_start: int | None = None
        self.done = False
        self.invalid = False
        self._expect = "open"  # open, key, colon, value, literal, nested, after
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._string_start = 0

    def feed(self, text: str) -> int:
        """Scan until the object closes; returns how many characters of `text` it took."""
        for i, c in enumerate(text):
            if self.done:
                return i
            self.text += c
            self._step(c, len(self.text) - 1)
        return len(text)

    @property
    def name(self) -> str | None:
        raw = self.members.get("name")
        value = _loads(raw) if raw is not None else None
        return value if isinstance(value, str) else None

    def arguments(self) -> tuple[str, bool]:
        """The arguments' raw text so far and whether it is complete. Arguments given as a JSON string
        (JSON-encoded arguments) come only once complete, decoded."""
        for key in ARGUMENT_KEYS:
            if key in self.members:
                raw = self.members[key]
                if raw[:1] in ("{", "["):
                    return raw, True
                value = _loads(raw)
                return (value if isinstance(value, str) else ""), True
        if self.key in ARGUMENT_KEYS and self._expect == "nested":
            return self.text[self.value_start:], False
        return "", False

    def _step(self, c: str, pos: int) -> None:
        if self._in_string:
            self._string_char(c, pos)
        elif c in WHITESPACE:
            if self._expect == "literal":
                self._end_member(pos)
        elif self._expect == "nested":
            self._nested_char(c, pos)
        else:
            self._top_char(c, pos)

    def _string_char(self, c: str, pos: int) -> None:
        if self._escaped:
            self._escaped = False
        elif c == "\\":
            self._escaped = True
        elif c == '"':
            self._in_string = False
            if self._expect == "key":
                self.key = _loads(self.text[self._string_start:pos + 1])
                self._expect = "colon"
            elif self._expect == "value":
                self._end_member(pos + 1)

    def _nested_char(self, c: str, pos: int) -> None:
        if c == '"':
            self._in_string = True
        elif c in "{[":
            self._depth += 1
        elif c in "}]":
            self._depth -= 1
            if self._depth == 1:
                self._end_member(pos + 1)

    def _top_char(self, c: str, pos: int) -> None:
        expect = self._expect
        if expect == "open" and c == "{":
            self._depth, self._expect = 1, "key"
        elif expect == "key" and c == '"':
            self._in_string, self._string_start = True, pos
        elif expect == "colon" and c == ":":
            self._expect = "value"
        elif expect == "value":
            self.value_start = pos
            if c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth, self._expect = 2, "nested"
            else:
                self._expect = "literal"
        elif expect in ("literal", "after") and c in ",}":
            if expect == "literal":
                self._end_member(pos)
            self._expect = "key"
            self.done = c == "}"
        elif expect == "key" and c == "}" and not self.members:
            self.done = True
        elif expect != "literal":
            self.done = self.invalid = True

    def _end_member(self, end: int) -> None:
        assert self.key is not None  # a member's value ends only after its key
        self.members[self.key] = self.text[self.value_start:end]
        self.key, self.value_start, self._expect = None, None, "after"


def _loads(raw: str):
    try:
        return decode_json_text(raw)
    except ValueError:
        return None


class ToolCallParser:
    """Feed generated text, get OpenAI delta dicts ({"content": ...} or {"tool_calls": [...]}) back."""

    def __init__(self, tool_names: Collection[str] = (), parallel_tool_calls: bool = True,
                 new_id: Callable[[], str] = new_tool_call_id):
        self.tool_names = set(tool_names)
        self.parallel_tool_calls = parallel_tool_calls
        self.new_id = new_id
        self.calls: list[ToolCall] = []
        self.content = ""  # content emitted so far
        self._buffer = ""  # text read but not yet handed out
        self._mode = "start"  # start, text, tag (inside <tool_call>), bare (a JSON object), list (of calls)
        self._call: CallObject | None = None
        self._call_id: str | None = None  # None: undecided; "": a call to drop (parallel_tool_calls off)
        self._emitted_args = 0
        self._pending_space = ""
        self._deltas: list[dict] = []

    def feed(self, text: str) -> list[dict]:
        self._buffer += text
        while self._buffer and getattr(self, f"_scan_{self._mode}")():
            pass
        return self._take()

    def finish(self) -> list[dict]:
        """The end of the output. A call cut short (max_tokens) is not a call: it is left out of `calls` and
        no arguments are invented for it (what a stream already sent of it stays sent, under finish_reason
        "length"); tool-call markup never becomes content, whole or partial; other undecided text is content."""
        if self._call is not None:
            if self._call.done:
                self._close_call()
            elif self._mode == "tag" or self._call_id:
                self._call, self._call_id = None, None
            else:
                self._give_up_call()
            if self._call is None and self._mode != "text":
                self._buffer = ""  # the rest of a closing tag or list
        if self._mode == "list":
            self._buffer = "" if self.calls else "[" + self._buffer
        if self._mode == "text":
            self._buffer = self._buffer[:len(self._buffer) - _partial_suffix(self._buffer, CALL_OPEN)]
        self._emit_content(self._buffer)
        self._buffer = ""
        return self._take()

    # ---- modes: each returns True when it made progress and the buffer should be scanned again ---------
    def _scan_start(self) -> bool:
        self._buffer = self._buffer.lstrip(WHITESPACE)
        if not self._buffer:
            return False
        self._mode = {"{": "bare", "[": "list"}.get(self._buffer[0], "text")
        if self._mode == "list":
            self._buffer = self._buffer[1:]
        return True

    def _scan_text(self) -> bool:
        at = self._buffer.find(CALL_OPEN)
        if at >= 0:
            self._emit_content(self._buffer[:at])
            self._buffer = self._buffer[at + len(CALL_OPEN):]
            self._mode = "tag"
            return True
        keep = _partial_suffix(self._buffer, CALL_OPEN)
        self._emit_content(self._buffer[:len(self._buffer) - keep])
        self._buffer = self._buffer[len(self._buffer) - keep:]
        return False

    def _scan_tag(self) -> bool:
        """Inside <tool_call>: one call object, then the closing tag."""
        if self._call is None:
            self._buffer = self._buffer.lstrip(WHITESPACE)
            if not self._buffer:
                return False
            self._call = CallObject()
        if not self._call.done:
            self._feed_call(accept_any_name=True)
            return self._call is None or self._call.done
        rest = self._buffer.lstrip(WHITESPACE)
        if rest and not CALL_CLOSE.startswith(rest[:len(CALL_CLOSE)]):
            self._buffer = rest  # no closing tag: what follows is text
        elif rest.startswith(CALL_CLOSE):
            self._buffer = rest[len(CALL_CLOSE):]
        else:
            return False
        self._close_call()
        self._mode = "text"
        return True

    def _scan_bare(self) -> bool:
        """A lone JSON object: a call if it names one of the tools, else content."""
        if self._call is None:
            self._call = CallObject()
        self._feed_call(accept_any_name=False)
        if self._call is None:
            return True
        if self._call.done:
            self._close_call()
            self._mode = "text"
            return True
        return False

    def _scan_list(self) -> bool:
        """A JSON list of call objects, decided by its first element."""
        if self._call is None:
            rest = self._buffer.lstrip(WHITESPACE + ",")
            if not rest:
                return False
            if rest[0] == "]" and self.calls:
                self._buffer, self._mode = rest[1:], "text"
                return True
            if rest[0] != "{":
                self._buffer, self._mode = ("[" + self._buffer if not self.calls else rest), "text"
                return True
            self._buffer = rest
            self._call = CallObject()
        self._feed_call(accept_any_name=bool(self.calls))
        if self._call is None:
            return True
        if self._call.done:
            self._close_call()
            return True
        return False

    # ---- calls ------------------------------------------------------------------------------------------
    @property
    def _open_call(self) -> CallObject:
        """The call being read; the methods below run only while there is one."""
        assert self._call is not None
        return self._call

    def _feed_call(self, accept_any_name: bool) -> None:
        taken = self._open_call.feed(self._buffer)
        self._buffer = self._buffer[taken:]
        if self._open_call.invalid or (self._call_id is None and not self._decide_call(accept_any_name)):
            return
        self._emit_arguments()

    def _decide_call(self, accept_any_name: bool) -> bool:
        """True once the call's name is known and it is a call; gives up on text that is not one."""
        call = self._open_call
        if not accept_any_name:
            keys = [*call.members, *([call.key] if call.key is not None else [])]
            unknown_name = "name" in call.members and (call.name is None or call.name not in self.tool_names)
            if any(k not in CALL_KEYS for k in keys) or unknown_name:
                self._give_up_call()
                return False
        if call.name is None:
            return False
        if self.calls and not self.parallel_tool_calls:
            self._call_id = ""
            return True
        self._call_id = self.new_id()
        self._emitted_args = 0
        self._deltas.append(tool_call_delta(len(self.calls), id=self._call_id, name=call.name, arguments=""))
        return True

    def _emit_arguments(self) -> None:
        if not self._call_id:
            return
        text, _ = self._open_call.arguments()
        if len(text) > self._emitted_args:
            self._deltas.append(tool_call_delta(len(self.calls), arguments=text[self._emitted_args:]))
            self._emitted_args = len(text)

    def _close_call(self) -> None:
        if self._call_id is None:
            self._give_up_call()
            return
        self._emit_arguments()
        call, call_id = self._open_call, self._call_id
        self._call, self._call_id = None, None
        if not call_id or call.name is None:  # a call id is only given once the name is known
            return
        arguments, _ = call.arguments()
        if not arguments:
            arguments = "{}"
            self._deltas.append(tool_call_delta(len(self.calls), arguments=arguments))
        self.calls.append(ToolCall(call_id, call.name, arguments))

    def _give_up_call(self) -> None:
        """Not a call after all: what was read goes back to be scanned as plain text."""
        prefix = "[" if self._mode == "list" and not self.calls else ""
        self._buffer = prefix + self._open_call.text + self._buffer
        self._call, self._call_id, self._mode = None, None, "text"

    # ---- content ----------------------------------------------------------------------------------------
    def _emit_content(self, text: str) -> None:
        """Drop leading whitespace, and hold back trailing whitespace until more content follows."""
        text = self._pending_space + text
        body = text.rstrip(WHITESPACE)
        self._pending_space = text[len(body):]
        if not self.content:
            body = body.lstrip(WHITESPACE)
        if body:
            self.content += body
            self._deltas.append(content_delta(body))

    def _take(self) -> list[dict]:
        deltas, self._deltas = self._deltas, []
        return deltas


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest tail of text that could grow into tag."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def parse_tool_calls(text: str, tool_names: Collection[str] = (), parallel_tool_calls: bool = True,
                     new_id: Callable[[], str] = new_tool_call_id) -> tuple[str | None, list[ToolCall]]:
    """The whole output at once: (content or None, calls), the same as the stream's deltas add up to."""
    parser = ToolCallParser(tool_names, parallel_tool_calls, new_id)
    parser.feed(text)
    parser.finish()
    return parser.content or None, parser.calls
