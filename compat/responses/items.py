"""Responses `input`: a string or a list of items, validated with param paths (`input[2].content[0].text`) and
kept as the item resources OpenAI lists under /input_items; and a conversation of items as chat messages.

Items this server reads: `message` (roles user, system, developer, assistant; content a string or text parts),
`function_call` and `function_call_output`. `reasoning` items from other models are accepted and dropped: they
carry nothing this model can read.
"""

from __future__ import annotations

import uuid

from compat import errors, fields

INPUT_ROLES = ("user", "system", "developer", "assistant")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
TEXT_PARTS = ("input_text", "output_text")
MEDIA_PARTS = ("input_image", "input_file", "input_audio")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def parse_input(value: object) -> list[dict]:
    if value is None:
        return []  # fine when continuing a previous response
    if isinstance(value, str):
        return [input_message("user", [value])]
    items = fields.array_value(value, "input")
    parsed = (_item(item, f"input[{i}]") for i, item in enumerate(items))
    return [item for item in parsed if item is not None]


def input_message(role: str, texts: list[str], item_id: str | None = None) -> dict:
    """Assistant messages are kept in their output form (output_text parts), the others as input_text."""
    item_id = item_id or new_id("msg")
    if role == "assistant":
        content = [output_text(text) for text in texts]
    else:
        content = [{"type": "input_text", "text": text} for text in texts]
    return {"id": item_id, "type": "message", "role": role, "content": content, "status": "completed"}


def output_message(item_id: str, text: str, status: str, logprobs: list | None = None) -> dict:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [output_text(text, logprobs)]}


def output_text(text: str, logprobs: list | None = None) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def function_call(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def _item(item: object, param: str) -> dict | None:
    if not isinstance(item, dict):
        raise errors.invalid_type(param, "an object", item)
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"
    if kind == "item_reference":
        raise errors.unsupported_value(f"{param}.type", "item references are not supported; send the item itself.")
    kind = fields.choice(kind, f"{param}.type", ITEM_TYPES)
    if kind is None:
        raise errors.missing_parameter(f"{param}.type")
    if kind == "reasoning":
        return None
    item_id = fields.string(item.get("id"), f"{param}.id")
    if kind == "message":
        role = fields.required_choice(item, "role", f"{param}.role", INPUT_ROLES)
        return input_message(role, _content_texts(item.get("content"), f"{param}.content"), item_id)
    call_id = fields.required_string(item, "call_id", f"{param}.call_id")
    if kind == "function_call":
        return function_call(item_id or new_id("fc"), call_id, fields.required_string(item, "name", f"{param}.name"),
                             fields.required_string(item, "arguments", f"{param}.arguments"), "completed")
    output = _output_text(fields.required(item, "output", f"{param}.output"), f"{param}.output")
    return {"id": item_id or new_id("fco"), "type": "function_call_output", "call_id": call_id, "output": output,
            "status": "completed"}


def _content_texts(content: object, param: str) -> list[str]:
    if content is None:
        raise errors.missing_parameter(param)
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise errors.invalid_type(param, "a string or an array of content parts", content)
    return [_text_part(part, f"{param}[{i}]") for i, part in enumerate(content)]


def _output_text(output: object, param: str) -> str:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise errors.invalid_type(param, "a string or an array of content parts", output)
    return "\n".join(_text_part(part, f"{param}[{i}]") for i, part in enumerate(output))


def _text_part(part: object, param: str) -> str:
    if not isinstance(part, dict):
        raise errors.invalid_type(param, "an object", part)
    kind = fields.required(part, "type", f"{param}.type")
    if kind in MEDIA_PARTS:
        raise errors.unsupported_value(
            f"{param}.type", f"content parts of type '{kind}' are not supported; this server serves text-only models.")
    if kind == "refusal":
        return fields.required_string(part, "refusal", f"{param}.refusal")
    fields.choice(kind, f"{param}.type", (*TEXT_PARTS, "refusal"))
    return fields.required_string(part, "text", f"{param}.text")


# A conversation of item resources as chat messages.


def chat_messages(items: list[dict]) -> list[dict]:
    """Messages for /v1/chat/completions' `messages`. Consecutive function calls join the assistant message
    before them, as one turn with several tool_calls; each function_call_output becomes a tool message."""
    messages: list[dict] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": "\n".join(part_text(p) for p in item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if not (messages and messages[-1]["role"] == "assistant"):
                messages.append({"role": "assistant", "content": None})
            messages[-1].setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def part_text(part: dict) -> str:
    return part.get("text", part.get("refusal", ""))
