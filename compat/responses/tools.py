"""Responses `tools`, `tool_choice` and `text.format`, and what they become in a chat request.

Function tools are offered to the model. Hosted tools (web_search, file_search, code_interpreter, mcp,
namespace, custom, local_shell, ...) are accepted and not offered: this server cannot run them, and agent
clients send them on every request (Codex: web_search and namespace), so refusing them would refuse the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from compat import errors, fields
from compat.tools import FunctionTool

TOOL_CHOICE_MODES = ("none", "auto", "required")
FORMAT_TYPES = ("text", "json_object", "json_schema")


@dataclass(frozen=True)
class ToolSet:
    offered: tuple[FunctionTool, ...]  # the function tools the model may call
    tool_choice: str | dict  # the chat request's: "none" | "auto" | "required" | a named function
    echo_tools: list[dict]  # `tools` as the response object reports them
    echo_tool_choice: str | dict


def parse_tools(tools_value: object, choice_value: object) -> ToolSet:
    parsed = (_function(tool, f"tools[{i}]") for i, tool in enumerate(fields.array(tools_value, "tools") or ()))
    functions = [f for f in parsed if f is not None]
    mode, allowed = _tool_choice(choice_value, functions)
    echo_choice = choice_value if isinstance(choice_value, (str, dict)) else "auto"  # validated; null is "auto"
    offered = tuple(f for f in functions if allowed is None or f.name in allowed)
    if mode == "required" and not offered:
        raise errors.invalid_parameter_combination(
            "Invalid value for 'tool_choice': 'required' needs at least one function tool in 'tools'.", "tool_choice")
    if not offered:
        mode = "none"
    return ToolSet(offered, mode, [function_tool(f) for f in functions], echo_choice)


def function_tool(tool: FunctionTool) -> dict:
    """A function tool as Responses writes it (flat, not nested under `function` as chat does)."""
    return {"type": "function", "name": tool.name, "description": tool.description, "parameters": tool.parameters,
            "strict": tool.strict if tool.strict is not None else True}


def chat_tools(tools: ToolSet) -> dict:
    """The chat request fields for these tools; none when no function is offered."""
    if not tools.offered or tools.tool_choice == "none":
        return {}
    return {"tools": [tool.to_dict() for tool in tools.offered], "tool_choice": tools.tool_choice}


def _function(tool: object, param: str) -> FunctionTool | None:
    if not isinstance(tool, dict):
        raise errors.invalid_type(param, "an object", tool)
    kind = fields.required(tool, "type", f"{param}.type")
    if not isinstance(kind, str):
        raise errors.invalid_type(f"{param}.type", "a string", kind)
    if kind != "function":
        return None  # a hosted tool: accepted, not offered
    return FunctionTool(
        name=fields.required_name(tool, "name", f"{param}.name"),
        description=fields.string(tool.get("description"), f"{param}.description"),
        parameters=fields.obj(tool.get("parameters"), f"{param}.parameters"),
        strict=fields.boolean(tool.get("strict"), f"{param}.strict"),
    )


def _tool_choice(value: object, functions: list[FunctionTool]) -> tuple[str | dict, set[str] | None]:
    """(the chat tool_choice, the names allowed_tools narrows the offer to, or None)."""
    if value is None:
        return "auto", None
    if isinstance(value, str):
        return fields.choice_value(value, "tool_choice", TOOL_CHOICE_MODES), None
    choice = fields.object_value(value, "tool_choice")
    kind = fields.required(choice, "type", "tool_choice.type")
    names = {f.name for f in functions}
    if kind == "function":
        name = fields.required_string(choice, "name", "tool_choice.name")
        if name not in names:
            raise errors.invalid_value(
                "tool_choice.name", f"Invalid value for 'tool_choice': no function named '{name}' is in 'tools'.")
        return {"type": "function", "function": {"name": name}}, None
    if kind == "allowed_tools":
        mode = fields.required_choice(choice, "mode", "tool_choice.mode", ("auto", "required"))
        listed = fields.required_array(choice, "tools", "tool_choice.tools")
        return mode, names & {_allowed_name(t, f"tool_choice.tools[{i}]") for i, t in enumerate(listed)}
    raise errors.unsupported_value(
        "tool_choice.type", f"tool_choice of type '{kind}' names a hosted tool, which this server cannot run.")


def _allowed_name(tool: object, param: str) -> str | None:
    if not isinstance(tool, dict):
        raise errors.invalid_type(param, "an object", tool)
    return fields.string(tool.get("name"), f"{param}.name")


def parse_text(value: object) -> tuple[dict, dict | None]:
    """(`text` as the response reports it, the chat response_format it asks for or None for plain text)."""
    text = fields.obj(value, "text") or {}
    verbosity = fields.choice(text.get("verbosity"), "text.verbosity", ("low", "medium", "high"))
    form = fields.obj(text.get("format"), "text.format") or {"type": "text"}
    kind = fields.required_choice(form, "type", "text.format.type", FORMAT_TYPES)
    echo = {"format": {"type": kind}, **({"verbosity": verbosity} if verbosity else {})}
    if kind == "text":
        return echo, None
    if kind == "json_object":
        return echo, {"type": "json_object"}
    spec = {
        "name": fields.required_name(form, "name", "text.format.name"),
        "schema": fields.required_object(form, "schema", "text.format.schema"),
        "strict": fields.boolean(form.get("strict"), "text.format.strict"),
    }
    description = fields.string(form.get("description"), "text.format.description")
    if description is not None:
        spec["description"] = description
    echo["format"] = {"type": kind, **{k: v for k, v in spec.items() if v is not None}}
    return echo, {"type": "json_schema", "json_schema": {k: v for k, v in spec.items() if v is not None}}
