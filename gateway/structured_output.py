"""What a chat request has the engine enforce (a forced tool call, or its response_format) and how its
tools reach the prompt."""

from __future__ import annotations

from compat import ChatRequest, OpenAIError
from compat.tools import forced_tool_call_grammar, template_supports_tools, with_tool_prompt
from jax_engine.structured_output import StructuredOutputParams


def offers_tools(chat: ChatRequest) -> bool:
    """The model may call tools, so its output is parsed for calls."""
    return bool(chat.tools) and chat.tool_choice != "none"


def chat_constraint(chat: ChatRequest) -> StructuredOutputParams | None:
    """tool_choice "required" or a named function forces a call; otherwise response_format, if structured."""
    if offers_tools(chat):
        grammar = forced_tool_call_grammar(chat.tools, chat.tool_choice, chat.parallel_tool_calls)
        if grammar is not None:
            return StructuredOutputParams(grammar=grammar)
    response_format = chat.response_format
    if response_format is None or not response_format.is_structured:
        return None
    if response_format.type == "json_object":
        return StructuredOutputParams(json_object=True)
    return StructuredOutputParams(json=response_format.schema)


def blame_tools(error: OpenAIError, constraint: StructuredOutputParams | None) -> OpenAIError:
    """The engine names response_format for any grammar it cannot compile; a forced call's comes from `tools`."""
    if constraint is not None and constraint.grammar is not None and error.param == "response_format":
        error.param = "tools"
    return error


def template_inputs(chat: ChatRequest, template_source: str) -> tuple[list[dict], list[dict] | None]:
    """(messages, tools) for the chat template. A template that reads `tools` gets them as HF templates
    expect; any other gets the fallback prompt, and tool calls and results written into its messages."""
    offered = chat.tools if offers_tools(chat) else None
    if template_supports_tools(template_source):
        return chat.messages, None if offered is None else [tool.to_dict() for tool in offered]
    return with_tool_prompt(chat.messages, offered), None
