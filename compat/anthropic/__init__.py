"""Anthropic's Messages API (/v1/messages) as pure code: the request and its conversion to a chat request,
the message and its streaming events, and Anthropic's error envelope."""

from compat.anthropic.errors import OVERLOADED, error_body, status
from compat.anthropic.request import PARAMS, MessagesRequest, chat_body, parse_messages_request
from compat.anthropic.stream import MessageStream, stop_reason, usage

__all__ = ["OVERLOADED", "PARAMS", "MessageStream", "MessagesRequest", "chat_body", "error_body",
           "parse_messages_request", "status", "stop_reason", "usage"]
