"""OpenAI error bodies as aiohttp responses, and the engine's exceptions in OpenAI's terms."""

from __future__ import annotations

import orjson
from aiohttp import web

from compat import EmbeddingRequest, GenerationRequest, OpenAIError
from compat import anthropic as messages_api
from compat import errors as openai_errors
from jax_engine import (
    ContextLengthExceeded,
    EngineDead,
    EngineError,
    EngineShutdown,
    QueueFull,
    RequestValidationError,
)

RETRY_AFTER_SECONDS = 1


def error_response(error: OpenAIError, retry_after: int = RETRY_AFTER_SECONDS) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if error.status in (429, 503) else None
    return web.Response(status=error.status, body=orjson.dumps(error.to_dict()),
                        content_type="application/json", headers=headers)


def surface_error_response(request: web.Request, error: OpenAIError) -> web.Response:
    """The error in the envelope of the API the request speaks: Anthropic's on /v1/messages, else OpenAI's."""
    if not speaks_anthropic(request):
        return error_response(error)
    status = messages_api.status(error)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, messages_api.OVERLOADED) else None
    return web.Response(status=status, body=orjson.dumps(messages_api.error_body(error)),
                        content_type="application/json", headers=headers)


def speaks_anthropic(request: web.Request) -> bool:
    return request.path == "/v1/messages" or request.path.startswith("/v1/messages/")


def internal_error(request_id: str) -> OpenAIError:
    """A fault inside the server: the request id to find it in the log, and no detail."""
    return openai_errors.internal_error(
        f"The server had an error while processing your request (request id {request_id}).")


def from_http_exception(exc: web.HTTPException, request: web.Request, max_body_bytes: int) -> OpenAIError:
    """aiohttp's own refusals (no route, wrong method, body too large) in OpenAI's error shape."""
    if exc.status == 404:
        return openai_errors.route_not_found(request.method, request.path)
    if exc.status == 405:
        return openai_errors.method_not_allowed(request.method, request.path)
    if exc.status == 413:
        return openai_errors.body_too_large(max_body_bytes)
    return OpenAIError(exc.status, exc.reason, openai_errors.INVALID_REQUEST if exc.status < 500
                       else openai_errors.SERVER_ERROR)


def from_refusal(exc: Exception, request: GenerationRequest | EmbeddingRequest, prompt_index: int = 0) -> OpenAIError:
    """Why the engine would not admit a request, in OpenAI's terms: the one place an engine field becomes
    the request's `param` (each API surface names its own fields)."""
    if isinstance(exc, ContextLengthExceeded):
        param = request.param_for(exc.field.value, prompt_index)
        return openai_errors.context_length_exceeded(exc.max_model_len, exc.num_prompt_tokens, exc.max_tokens, param)
    if isinstance(exc, RequestValidationError):
        param = request.param_for(exc.field.value, prompt_index)
        if exc.position is not None:
            param = f"{param}[{exc.position}]"
            return openai_errors.invalid_value(param, f"Invalid '{param}': {exc}.")
        return openai_errors.invalid_request(str(exc), param)
    return from_engine_error(exc)


def from_engine_error(exc: Exception) -> OpenAIError:
    """The engine could not take or finish a request for reasons of its own."""
    if isinstance(exc, QueueFull):
        return openai_errors.rate_limited(f"The server's waiting queue is full ({exc}). Please retry shortly.")
    if isinstance(exc, EngineShutdown):
        return openai_errors.service_unavailable("The server is shutting down. Please retry on another instance.")
    if isinstance(exc, EngineDead):
        return openai_errors.service_unavailable("The engine has failed; the server cannot serve requests.")
    if isinstance(exc, EngineError):
        return openai_errors.internal_error(f"The engine failed while serving this request: {exc}")
    return openai_errors.internal_error()
