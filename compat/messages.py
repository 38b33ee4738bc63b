"""Chat `messages`: validated and turned into the plain dicts that HF chat templates read.

A template-ready message has `role`, `content` (a string; text parts joined with "\\n", as vLLM does for
string-content templates) and, when given, `name`, `tool_calls` and `tool_call_id`. Keys whose value would be
None are left out (as transformers does): templates test for a missing key more often than for none.
Tool-call `arguments` that hold a JSON object are decoded into a dict, as templates expect to `tojson` them.
"""

from __future__ import annotations

from compat import errors, fields
from compat.body import decode_json_text

ROLES = ("system", "developer", "user", "assistant", "tool")
TEXT_PARTS = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text",),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}
MEDIA_PARTS = ("image_url", "input_audio", "file", "video_url", "audio_url")


def parse_messages(value: object) -> list[dict]:
    messages = fields.array(value, "messages", min_length=1)
    if messages is None:
        raise errors.missing_parameter("messages")
    return [parse_message(m, f"messages[{i}]") for i, m in enumerate(messages)]


def parse_message(message: object, param: str) -> dict:
    if not isinstance(message, dict):
        raise errors.invalid_type(param, "an object", message)
    role = _role(message, param)
    parsed: dict[str, object] = {"role": role}
    content = _content(message, role, param)
    if content is not None:
        parsed["content"] = content
    name = fields.string(message.get("name"), f"{param}.name")
    if name is not None:
        parsed["name"] = name
    if role == "assistant":
        tool_calls = _tool_calls(message.get("tool_calls"), f"{param}.tool_calls")
        if tool_calls:
            parsed["tool_calls"] = tool_calls
        elif content is None:
            raise errors.missing_parameter(f"{param}.content")
        if message.get("function_call") is not None:
            raise errors.unsupported_parameter(f"{param}.function_call", "Use 'tool_calls'.")
        if message.get("audio") is not None:
            raise errors.unsupported_parameter(f"{param}.audio")
    if role == "tool":
        parsed["tool_call_id"] = fields.required_string(message, "tool_call_id", f"{param}.tool_call_id")
    return parsed


def _role(message: dict, param: str) -> str:
    role = fields.required(message, "role", f"{param}.role")
    if role == "function":
        raise errors.unsupported_value(
            f"{param}.role", "the deprecated 'function' role is not supported; use 'tool' messages."
        )
    return fields.choice_value(role, f"{param}.role", ROLES)


def _content(message: dict, role: str, param: str) -> str | None:
    param = f"{param}.content"
    content = message.get("content")
    if content is None:
        if role == "assistant":
            return None
        raise errors.missing_parameter(param)
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise errors.invalid_type(param, "a string or an array of content parts", content)
    fields.array(content, param, min_length=1)
    return "\n".join(_text_part(part, role, f"{param}[{i}]") for i, part in enumerate(content))


def _text_part(part: object, role: str, param: str) -> str:
    if not isinstance(part, dict):
        raise errors.invalid_type(param, "an object", part)
    kind = fields.required(part, "type", f"{param}.type")
    if kind in MEDIA_PARTS and role == "user":
        raise errors.unsupported_value(
            f"{param}.type",
            f"content parts of type '{kind}' are not supported; this server serves text-only models.",
        )
    kind = fields.choice_value(kind, f"{param}.type", TEXT_PARTS[role])
    return fields.required_string(part, kind, f"{param}.{kind}")


def _tool_calls(value: object, param: str) -> list[dict]:
    calls = fields.array(value, param) or []
    return [_tool_call(call, f"{param}[{i}]") for i, call in enumerate(calls)]


def _tool_call(call: object, param: str) -> dict:
    if not isinstance(call, dict):
        raise errors.invalid_type(param, "an object", call)
    fields.required_choice(call, "type", f"{param}.type", ("function",))
    function = fields.required_object(call, "function", f"{param}.function")
    arguments = fields.required_string(function, "arguments", f"{param}.function.arguments")
    return {
        "id": fields.required_string(call, "id", f"{param}.id"),
        "type": "function",
        "function": {
            "name": fields.required_string(function, "name", f"{param}.function.name"),
            "arguments": _decoded(arguments),
        },
    }


def _decoded(arguments: str) -> dict | str:
    try:
        decoded = decode_json_text(arguments)
    except ValueError:
        return arguments
    return decoded if isinstance(decoded, dict) else arguments
