"""The OpenAI Responses API (/v1/responses) as pure code: the request, its conversion to a chat request, and
the response object and streaming events."""

from compat.responses.chat_body import PARAMS, chat_body
from compat.responses.request import ResponsesRequest, parse_responses_request
from compat.responses.stream import ResponseStream

__all__ = ["PARAMS", "ResponseStream", "ResponsesRequest", "chat_body", "parse_responses_request"]
