"""Function tools: the request's `tools` and `tool_choice`, and the tool calls a response carries."""

from __future__ import annotations

from dataclasses import dataclass

from compat import errors, fields

TOOL_CHOICE_MODES = ("none", "auto", "required")


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str | None = None
    parameters: dict | None = None  # a JSON Schema object
    strict: bool | None = None

    def to_dict(self) -> dict:
        """The OpenAI form, which is also what HF chat templates read from `tools`."""
        function = {"name": self.name}
        if self.description is not None:
            function["description"] = self.description
        if self.parameters is not None:
            function["parameters"] = self.parameters
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class NamedToolChoice:
    name: str  # the function the model must call


ToolChoice = str | NamedToolChoice  # "none" | "auto" | "required" | a named function


@dataclass(frozen=True)
class ToolCall:
    """A call the model made, for the response builders."""

    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


def parse_tools(value: object) -> list[FunctionTool] | None:
    tools = fields.array(value, "tools")
    if not tools:
        return None
    return [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]


def parse_tool_choice(value: object, tools: list[FunctionTool] | None) -> ToolChoice:
    if value is None:
        return "auto" if tools else "none"
    if isinstance(value, str):
        mode = fields.choice(value, "tool_choice", TOOL_CHOICE_MODES)
        if mode != "none" and not tools:
            raise errors.invalid_parameter_combination(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                "tool_choice",
            )
        return mode
    choice = fields.obj(value, "tool_choice")
    kind = fields.required(choice, "type", "tool_choice.type")
    if kind != "function":
        raise errors.unsupported_value("tool_choice.type", f"tool_choice of type '{kind}' is not supported.")
    function = fields.required_object(choice, "function", "tool_choice.function")
    name = fields.required_string(function, "name", "tool_choice.function.name")
    if not any(tool.name == name for tool in tools or ()):
        raise errors.invalid_value(
            "tool_choice",
            f"Invalid value for 'tool_choice': no function named '{name}' was specified in 'tools'.",
        )
    return NamedToolChoice(name)


def _tool(tool: object, param: str) -> FunctionTool:
    tool = fields.obj(tool, param)
    if tool is None:
        raise errors.invalid_type(param, "an object", tool)
    kind = fields.required(tool, "type", f"{param}.type")
    if kind == "custom":
        raise errors.unsupported_value(f"{param}.type", "custom tools are not supported; use function tools.")
    fields.required_choice(tool, "type", f"{param}.type", ("function",))
    param = f"{param}.function"
    function = fields.required_object(tool, "function", param)
    return FunctionTool(
        name=fields.required_name(function, "name", f"{param}.name"),
        description=fields.string(function.get("description"), f"{param}.description"),
        parameters=fields.obj(function.get("parameters"), f"{param}.parameters"),
        strict=fields.boolean(function.get("strict"), f"{param}.strict"),
    )
