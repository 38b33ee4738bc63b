"""POST /v1/messages (and /v1/messages/count_tokens): Anthropic's Messages request, validated, and the
/v1/chat/completions body it asks for, so it reaches the engine by the same path as every other surface.

Messages: user and assistant turns, and `system` messages between them (Claude Code sends those). Content
blocks: `text`, `tool_use` and `tool_result` (with `is_error`); `thinking` blocks from earlier turns are dropped
(this model does not reason); images and documents are refused with a 400. Server tools (web search, bash, text
editor, ...) are accepted and not offered; `output_config.format` (a JSON schema) is enforced by the grammar
engine; `thinking`, `output_config.effort`, `context_management` and `metadata` are accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from compat import errors, fields
from compat.tools import FunctionTool

ROLES = ("user", "assistant", "system")
TOOL_CHOICES = ("auto", "any", "tool", "none")
DROPPED_BLOCKS = ("thinking", "redacted_thinking")
MEDIA_BLOCKS = ("image", "document", "search_result", "container_upload")
MAX_STOP_SEQUENCES = 4  # the chat path's limit; Anthropic documents none
# Fields read above, or accepted for what they steer here: nothing (caching, effort, context editing, routing).
KNOWN_FIELDS = frozenset(
    (
        "model max_tokens messages system stop_sequences stream temperature top_p top_k tools tool_choice metadata "
        "thinking output_config context_management cache_control service_tier container mcp_servers inference_geo "
        "speed diagnostics"
    ).split()
)
# Where an error about a chat field points in a Messages request.
PARAMS = {"stop": "stop_sequences", "response_format": "output_config.format"}


@dataclass(frozen=True)
class MessagesRequest:
    model: str | None
    max_tokens: int | None  # None only when counting tokens
    messages: tuple[dict, ...]  # chat messages, system first
    tools: tuple[FunctionTool, ...]
    tool_choice: str | dict  # the chat form
    parallel_tool_calls: bool
    stop_sequences: tuple[str, ...]
    response_format: dict | None  # the chat response_format output_config.format asks for
    temperature: float | None
    top_p: float | None
    top_k: int | None
    user: str | None
    stream: bool
    ignored_fields: tuple[str, ...] = ()  # top-level fields this server does not know; worth a log line


def parse_messages_request(body: dict, counting: bool = False) -> MessagesRequest:
    max_tokens = fields.integer(body.get("max_tokens"), "max_tokens", 1)
    if max_tokens is None and not counting:
        raise errors.missing_parameter("max_tokens")
    fields.obj(body.get("thinking"), "thinking")
    tools = _tools(body.get("tools"))
    tool_choice, parallel = _tool_choice(body.get("tool_choice"), tools)
    metadata = fields.obj(body.get("metadata"), "metadata") or {}
    return MessagesRequest(
        model=fields.required_string(body, "model", "model"),
        max_tokens=max_tokens,
        messages=tuple(_system(body.get("system")) + _messages(body.get("messages"))),
        tools=tools if tool_choice != "none" else (),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        stop_sequences=_stop_sequences(body.get("stop_sequences")),
        response_format=_output_format(body.get("output_config")),
        temperature=fields.number(body.get("temperature"), "temperature", 0.0, 1.0),
        top_p=fields.number(body.get("top_p"), "top_p", 0.0, 1.0, exclusive_minimum=True),
        top_k=fields.integer(body.get("top_k"), "top_k", 0),
        user=fields.string(metadata.get("user_id"), "metadata.user_id"),
        stream=bool(fields.boolean(body.get("stream"), "stream")),
        ignored_fields=tuple(key for key in body if key not in KNOWN_FIELDS),
    )


def chat_body(request: MessagesRequest) -> dict:
    body: dict = {"messages": list(request.messages)}
    if request.tools:
        body.update(tools=[tool.to_dict() for tool in request.tools], tool_choice=request.tool_choice,
                    parallel_tool_calls=request.parallel_tool_calls)
    optional: dict = {"max_tokens": request.max_tokens, "temperature": request.temperature, "top_p": request.top_p,
                "top_k": request.top_k, "user": request.user, "stop": list(request.stop_sequences) or None,
                "response_format": request.response_format}
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def _system(value: object, param: str = "system") -> list[dict]:
    """A system prompt (the top-level one, or a system message): a string or text blocks."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}] if value else []
    if not isinstance(value, list):
        raise errors.invalid_type(param, "a string or an array of text blocks", value)
    text = "\n".join(_text_block(block, f"{param}[{i}]") for i, block in enumerate(value))
    return [{"role": "system", "content": text}] if text else []


def _text_block(block: object, param: str) -> str:
    block = _block(block, param)
    fields.required_choice(block, "type", f"{param}.type", ("text",))
    return fields.required_string(block, "text", f"{param}.text")


def _block(block: object, param: str) -> dict:
    if not isinstance(block, dict):
        raise errors.invalid_type(param, "an object", block)
    return block


def _messages(value: object) -> list[dict]:
    messages = fields.array(value, "messages", min_length=1)
    if messages is None:
        raise errors.missing_parameter("messages")
    chat: list[dict] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        message = _block(message, param)
        role = fields.required_choice(message, "role", f"{param}.role", ROLES)
        content = fields.required(message, "content", f"{param}.content")
        if role == "system":
            chat += _system(content, f"{param}.content")
            continue
        if isinstance(content, str):
            chat.append({"role": role, "content": content})
            continue
        blocks = fields.array_value(content, f"{param}.content")
        convert = _assistant_turn if role == "assistant" else _user_turn
        chat += convert(blocks, f"{param}.content")
    return chat


def _user_turn(blocks: list, param: str) -> list[dict]:
    """Tool results become tool messages; runs of text blocks, user messages."""
    turn: list[dict] = []
    for i, block in enumerate(blocks):
        block, where = _block(block, f"{param}[{i}]"), f"{param}[{i}]"
        kind = _kind(block, where, ("text", "tool_result"))
        if kind == "tool_result":
            turn.append({"role": "tool", "content": _tool_result(block, where),
                         "tool_call_id": fields.required_string(block, "tool_use_id", f"{where}.tool_use_id")})
        elif kind == "text":
            text = fields.required_string(block, "text", f"{where}.text")
            if turn and turn[-1]["role"] == "user":
                turn[-1]["content"] += "\n" + text
            else:
                turn.append({"role": "user", "content": text})
    return turn


def _assistant_turn(blocks: list, param: str) -> list[dict]:
    texts, calls = [], []
    for i, block in enumerate(blocks):
        block, where = _block(block, f"{param}[{i}]"), f"{param}[{i}]"
        kind = _kind(block, where, ("text", "tool_use"))
        if kind == "text":
            texts.append(fields.required_string(block, "text", f"{where}.text"))
        elif kind == "tool_use":
            arguments = fields.required_object(block, "input", f"{where}.input")
            calls.append({"id": fields.required_string(block, "id", f"{where}.id"), "type": "function",
                          "function": {"name": fields.required_string(block, "name", f"{where}.name"),
                                       "arguments": json.dumps(arguments, ensure_ascii=False)}})
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _kind(block: dict, param: str, allowed: tuple[str, ...]) -> str | None:
    kind = fields.required(block, "type", f"{param}.type")
    if kind in DROPPED_BLOCKS:
        return None
    if kind in MEDIA_BLOCKS:
        raise errors.unsupported_value(
            f"{param}.type", f"content blocks of type '{kind}' are not supported; this server serves text-only models.")
    return fields.choice(kind, f"{param}.type", allowed)


def _tool_result(block: dict, param: str) -> str:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = fields.array_value(content, f"{param}.content")
        text = "\n".join(_text_block(part, f"{param}.content[{i}]") for i, part in enumerate(parts))
    if fields.boolean(block.get("is_error"), f"{param}.is_error"):
        return f"Error: {text}"
    return text


def _tools(value: object) -> tuple[FunctionTool, ...]:
    tools = []
    for i, tool in enumerate(fields.array(value, "tools") or ()):
        param = f"tools[{i}]"
        tool = _block(tool, param)
        kind = fields.string(tool.get("type"), f"{param}.type")
        if kind not in (None, "custom"):
            continue  # a server tool: accepted, not offered
        tools.append(FunctionTool(
            name=fields.required_name(tool, "name", f"{param}.name"),
            description=fields.string(tool.get("description"), f"{param}.description"),
            parameters=fields.required_object(tool, "input_schema", f"{param}.input_schema"),
        ))
    return tuple(tools)


def _tool_choice(value: object, tools: tuple[FunctionTool, ...]) -> tuple[str | dict, bool]:
    """(the chat tool_choice, parallel_tool_calls)."""
    if value is None:
        return ("auto" if tools else "none"), True
    choice = fields.object_value(value, "tool_choice")
    kind = fields.required_choice(choice, "type", "tool_choice.type", TOOL_CHOICES)
    parallel = not fields.boolean(choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use")
    if kind == "none" or not tools:
        if kind in ("any", "tool"):
            raise errors.invalid_parameter_combination(
                f"tool_choice.type '{kind}' needs at least one tool in 'tools'.", "tool_choice")
        return "none", parallel
    if kind == "tool":
        name = fields.required_string(choice, "name", "tool_choice.name")
        if not any(tool.name == name for tool in tools):
            raise errors.invalid_value("tool_choice.name", f"Tool '{name}' not found in 'tools'.")
        return {"type": "function", "function": {"name": name}}, parallel
    return ("required" if kind == "any" else "auto"), parallel


def _output_format(value: object) -> dict | None:
    config = fields.obj(value, "output_config") or {}
    fields.string(config.get("effort"), "output_config.effort")
    form = fields.obj(config.get("format"), "output_config.format")
    if form is None:
        return None
    fields.required_choice(form, "type", "output_config.format.type", ("json_schema",))
    schema = fields.required_object(form, "schema", "output_config.format.schema")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}


def _stop_sequences(value: object) -> tuple[str, ...]:
    stops = fields.array(value, "stop_sequences", max_length=MAX_STOP_SEQUENCES) or []
    for i, stop in enumerate(stops):
        if not fields.string(stop, f"stop_sequences[{i}]"):
            raise errors.invalid_value(f"stop_sequences[{i}]", "stop sequences must be non-empty strings.")
    return tuple(stops)
