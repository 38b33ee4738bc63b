"""A Responses request as the /v1/chat/completions body it asks for: one conversion path to the engine.

The conversation is the items of the responses it continues (`previous_response_id`), then its own input;
`instructions` lead as a system message and are not inherited from earlier responses, as OpenAI does.
"""

from __future__ import annotations

from compat import errors
from compat.responses.items import chat_messages
from compat.responses.request import ResponsesRequest
from compat.responses.tools import chat_tools

# Where an error about a chat field points in a Responses request.
PARAMS = {"messages": "input", "max_tokens": "max_output_tokens", "response_format": "text.format"}


def chat_body(request: ResponsesRequest, history: list[dict], truncated: int = 0) -> dict:
    """`truncated`: how many of the conversation's oldest items to leave out (truncation "auto")."""
    messages = chat_messages([*history, *request.input_items][truncated:])
    if not messages:
        raise errors.missing_parameter("input")
    if request.instructions:
        messages.insert(0, {"role": "system", "content": request.instructions})
    body = {"messages": messages, **request.sampling, **chat_tools(request.tools)}
    if "tools" in body:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    optional = {
        "response_format": request.response_format,
        "max_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "user": request.user,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if request.logprobs:
        body.update(logprobs=True, top_logprobs=request.top_logprobs or 0)
    return body
