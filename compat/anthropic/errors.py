"""Anthropic's error envelope, `{"type": "error", "error": {"type", "message"}}`, with its status codes.

The surfaces share one error type (compat.errors.OpenAIError: status, message, param); this renders it as
Anthropic does. The param path goes into the message, since Anthropic's envelope has no field for it.
"""

from __future__ import annotations

from compat.errors import OpenAIError

OVERLOADED = 529
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    OVERLOADED: "overloaded_error",
}
# Statuses Anthropic's API does not use, as it would answer them.
STATUSES = {415: 400, 422: 400, 503: OVERLOADED}


def status(error: OpenAIError) -> int:
    return STATUSES.get(error.status, error.status)


def error_body(error: OpenAIError) -> dict:
    code = status(error)
    kind = ERROR_TYPES.get(code, "invalid_request_error" if code < 500 else "api_error")
    message = error.message
    if error.param and error.param not in message:
        message = f"{error.param}: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}
