"""Function tools: the request's `tools` and `tool_choice`, and the tool calls a response carries."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from compat import errors, fields
from compat.body import decode_json_text

TOOL_CHOICE_MODES = ("none", "auto", "required")
# The Hermes/Qwen tool-call format: what the fallback prompt teaches and the forcing grammar emits.
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
# JSON layout inside forced calls (llguidance options): fixed separators, no free whitespace to ramble in.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
FALLBACK_TOOL_PROMPT = """You can call functions. Each is described in JSON inside <tools></tools>:
<tools>
{tools}
</tools>

To call a function, reply with a JSON object holding its name and arguments inside \
<tool_call></tool_call> tags, one block per call:
<tool_call>
{{"name": "function_name", "arguments": {{"argument": "value"}}}}
</tool_call>
Otherwise, answer the user directly."""


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str | None = None
    parameters: dict | None = None  # a JSON Schema object
    strict: bool | None = None

    def to_dict(self) -> dict:
        """The OpenAI form, which is also what HF chat templates read from `tools`."""
        function: dict[str, object] = {"name": self.name}
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
        mode = fields.choice_value(value, "tool_choice", TOOL_CHOICE_MODES)
        if mode != "none" and not tools:
            raise errors.invalid_parameter_combination(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                "tool_choice",
            )
        return mode
    choice = fields.object_value(value, "tool_choice")
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


# Prompting and forcing tool calls.


def forced_tool_call_grammar(
    tools: list[FunctionTool], tool_choice: ToolChoice, parallel_tool_calls: bool = True
) -> str | None:
    """For tool_choice "required" or a named function: a Lark grammar (llguidance's dialect, with `%json`
    rules) for Hermes blocks whose JSON names a chosen tool and whose arguments follow its parameters
    schema. None for "auto" and "none", which do not force anything.

    Parallel calls are bounded by the number of tools offered: with `call ("\\n" call)*` a newline commits
    the model to another call, and a small model, once it writes one, repeats its call until max_tokens."""
    if isinstance(tool_choice, NamedToolChoice):
        chosen, max_calls = [t for t in tools if t.name == tool_choice.name], 1
    elif tool_choice == "required":
        chosen, max_calls = tools, len(tools) if parallel_tool_calls else 1
    else:
        return None
    schemas = [_call_schema(tool) for tool in chosen]
    schema = {**(schemas[0] if len(schemas) == 1 else {"anyOf": schemas}), "x-guidance": JSON_LAYOUT}
    call = f"call: {json.dumps(CALL_OPEN + chr(10))} %json {json.dumps(schema)} {json.dumps(chr(10) + CALL_CLOSE)}"
    more = ' ("\\n" call' * (max_calls - 1) + ")?" * (max_calls - 1)
    return f"start: call{more}\n{call}\n"


def _call_schema(tool: FunctionTool) -> dict:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": tool.parameters or {"type": "object"}},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def template_supports_tools(template_source: str) -> bool:
    """Whether a chat template reads the `tools` variable (else it needs the fallback prompt)."""
    return re.search(r"\btools\b", template_source) is not None


def with_tool_prompt(messages: list[dict], tools: list[FunctionTool] | None) -> list[dict]:
    """Messages for a chat template that knows nothing of tools: the fallback prompt describing `tools`
    joins the system message, assistant tool calls become Hermes blocks in the content, and each run of
    tool results becomes one user turn of <tool_response> blocks (templates often insist on alternation)."""
    rendered: list[dict] = []
    for message in messages:
        if message["role"] == "tool":
            block = f"{RESPONSE_OPEN}\n{message.get('content', '')}\n{RESPONSE_CLOSE}"
            if rendered and rendered[-1].get("tool_responses"):
                rendered[-1]["content"] += "\n" + block
            else:
                rendered.append({"role": "user", "content": block, "tool_responses": True})
        elif message["role"] == "assistant" and message.get("tool_calls"):
            blocks = [_hermes_block(call["function"]) for call in message["tool_calls"]]
            text = message.get("content")
            rendered.append({"role": "assistant", "content": "\n".join([text, *blocks] if text else blocks)})
        else:
            rendered.append(message)
    rendered = [{k: v for k, v in m.items() if k != "tool_responses"} for m in rendered]
    return _with_system_prompt(rendered, tools) if tools else rendered


def _hermes_block(function: dict) -> str:
    arguments = function["arguments"]
    if isinstance(arguments, str):
        arguments = _json_or_text(arguments)
    call = json.dumps({"name": function["name"], "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{call}\n{CALL_CLOSE}"


def _json_or_text(text: str):
    try:
        return decode_json_text(text)
    except ValueError:
        return text


def _with_system_prompt(messages: list[dict], tools: list[FunctionTool]) -> list[dict]:
    listing = "\n".join(json.dumps(tool.to_dict(), ensure_ascii=False) for tool in tools)
    prompt = FALLBACK_TOOL_PROMPT.format(tools=listing)
    if messages and messages[0]["role"] in ("system", "developer") and messages[0].get("content"):
        return [{**messages[0], "content": messages[0]["content"] + "\n\n" + prompt}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]
