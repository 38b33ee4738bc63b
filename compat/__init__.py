"""The OpenAI wire protocol as pure code: requests into dataclasses, engine results into response JSON."""

from compat.body import decode_json_body
from compat.chat import (
    ChatChoiceData,
    ChatRequest,
    chat_chunk,
    chat_response,
    chat_usage_chunk,
    content_delta,
    parse_chat_request,
    role_delta,
    tool_call_delta,
)
from compat.chat_template import DEFAULT_CHAT_TEMPLATE, ChatTemplate
from compat.completion import (
    CompletionChoiceData,
    CompletionRequest,
    completion_chunk,
    completion_response,
    completion_usage_chunk,
    parse_completion_request,
)
from compat.embeddings import EmbeddingRequest, check_input_count, embedding_response, parse_embedding_request
from compat.errors import OpenAIError
from compat.generation import GenerationRequest
from compat.logprobs import TokenLogprob, TopLogprob
from compat.models import model_card, model_list
from compat.output_constraint import OutputConstraint
from compat.sampling import SamplingRequest, check_sequences_per_request
from compat.tools import FunctionTool, NamedToolChoice, ToolCall
from compat.usage import usage

__all__ = [
    "ChatChoiceData",
    "ChatRequest",
    "ChatTemplate",
    "CompletionChoiceData",
    "CompletionRequest",
    "DEFAULT_CHAT_TEMPLATE",
    "EmbeddingRequest",
    "FunctionTool",
    "GenerationRequest",
    "NamedToolChoice",
    "OpenAIError",
    "OutputConstraint",
    "SamplingRequest",
    "TokenLogprob",
    "ToolCall",
    "TopLogprob",
    "chat_chunk",
    "chat_response",
    "chat_usage_chunk",
    "check_input_count",
    "completion_chunk",
    "completion_response",
    "completion_usage_chunk",
    "content_delta",
    "decode_json_body",
    "embedding_response",
    "model_card",
    "model_list",
    "parse_chat_request",
    "parse_completion_request",
    "parse_embedding_request",
    "check_sequences_per_request",
    "role_delta",
    "tool_call_delta",
    "usage",
]
