"""The one error type of the OpenAI wire protocol, and constructors for the cases the API meets.

Status codes, `type` and `code` values follow what api.openai.com sends, so clients that branch on them
(the openai SDK maps status to exception classes; retry logic reads `code`) behave as they do against OpenAI.
"""

from __future__ import annotations

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def __repr__(self) -> str:
        fields = f"type={self.type!r}, param={self.param!r}, code={self.code!r}"
        return f"OpenAIError({self.status}, {self.message!r}, {fields})"


# 400: the request itself is wrong.


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, INVALID_REQUEST, param, code)


def missing_parameter(param: str) -> OpenAIError:
    return invalid_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def invalid_type(param: str, expected: str, value: object) -> OpenAIError:
    message = f"Invalid type for '{param}': expected {expected}, but got {json_type_name(value)} instead."
    return invalid_request(message, param, "invalid_type")


def invalid_value(param: str, message: str) -> OpenAIError:
    return invalid_request(message, param, "invalid_value")


def below_minimum(
    param: str, kind: str, minimum: float, value: float, exclusive: bool = False
) -> OpenAIError:
    relation = ">" if exclusive else ">="
    message = (
        f"Invalid '{param}': {kind} below minimum value. "
        f"Expected a value {relation} {minimum}, but got {value} instead."
    )
    return invalid_request(message, param, f"{kind}_below_min_value")


def above_maximum(param: str, kind: str, maximum: float, value: float) -> OpenAIError:
    message = (
        f"Invalid '{param}': {kind} above maximum value. "
        f"Expected a value <= {maximum}, but got {value} instead."
    )
    return invalid_request(message, param, f"{kind}_above_max_value")


def array_too_short(param: str, minimum: int, length: int) -> OpenAIError:
    problem, code = (
        ("empty array", "empty_array") if length == 0 else ("array too short", "array_below_min_length")
    )
    message = (
        f"Invalid '{param}': {problem}. Expected an array with minimum length {minimum}, "
        f"but got an array with length {length} instead."
    )
    return invalid_request(message, param, code)


def array_too_long(param: str, maximum: int, length: int) -> OpenAIError:
    message = (
        f"Invalid '{param}': array too long. Expected an array with maximum length {maximum}, "
        f"but got an array with length {length} instead."
    )
    return invalid_request(message, param, "array_above_max_length")


def unsupported_parameter(param: str, detail: str = "") -> OpenAIError:
    message = f"Unsupported parameter: '{param}' is not supported by this server."
    if detail:
        message += f" {detail}"
    return invalid_request(message, param, "unsupported_parameter")


def unsupported_value(param: str, message: str) -> OpenAIError:
    return invalid_request(f"Unsupported value: {message}", param, "unsupported_value")


def invalid_parameter_combination(message: str, param: str | None = None) -> OpenAIError:
    return invalid_request(message, param, "invalid_parameter_combination")


def context_length_exceeded(
    max_model_len: int, num_prompt_tokens: int, max_tokens: int | None = None, param: str = "messages"
) -> OpenAIError:
    """The prompt (plus `max_tokens`, when the client asked for a number) does not fit the model's context."""
    what = "messages" if param == "messages" else "prompt"
    limit = f"This model's maximum context length is {max_model_len} tokens."
    if max_tokens is None:
        message = (
            f"{limit} However, your {what} resulted in {num_prompt_tokens} tokens. "
            f"Please reduce the length of the {what}."
        )
    else:
        message = (
            f"{limit} However, you requested {num_prompt_tokens + max_tokens} tokens "
            f"({num_prompt_tokens} in the {what}, {max_tokens} in the completion). "
            f"Please reduce the length of the {what} or completion."
        )
    return invalid_request(message, param, "context_length_exceeded")


def prompt_too_large(max_model_len: int, max_bytes: int, param: str = "messages") -> OpenAIError:
    """Text so long that no tokenization of it fits the context: refused before it is tokenized."""
    what = "messages" if param == "messages" else "prompt"
    message = (
        f"This model's maximum context length is {max_model_len} tokens. However, your {what} is longer than "
        f"{max_model_len} tokens of this model can be ({max_bytes} bytes of text). Please reduce the length of "
        f"the {what}."
    )
    return invalid_request(message, param, "context_length_exceeded")


def api_not_supported(model: str, api: str, task: str) -> OpenAIError:
    """The model is served for another task (vLLM answers so for a route its runner has no handler for)."""
    if task == "embed":
        detail = "it is served with --task embed, for /v1/embeddings only"
    else:
        detail = "it is served for generation; an embedding model is served with --task embed"
    return invalid_request(f"The model `{model}` does not support the {api}: {detail}.", "model",
                           "model_not_supported")


def invalid_json(detail: str | None = None) -> OpenAIError:
    message = (
        "We could not parse the JSON body of your request. The API expects a JSON payload, "
        "but what was sent was not valid JSON."
    )
    return invalid_request(message + (f" ({detail})" if detail else ""))


def unsupported_media_type(content_type: str) -> OpenAIError:
    message = f"Unsupported Content-Type '{content_type}'. The API expects 'application/json'."
    return OpenAIError(415, message, INVALID_REQUEST, None, "unsupported_media_type")


def body_too_large(limit_bytes: int) -> OpenAIError:
    message = f"Request body too large: the limit is {limit_bytes} bytes."
    return OpenAIError(413, message, INVALID_REQUEST, None, "request_too_large")


# 401, 404, 405: who is asking, and for what.


def invalid_api_key(provided: bool = True) -> OpenAIError:
    if not provided:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return OpenAIError(401, message, INVALID_REQUEST, None, None)
    return OpenAIError(401, "Incorrect API key provided.", INVALID_REQUEST, None, "invalid_api_key")


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(404, f"The model `{model}` does not exist.", INVALID_REQUEST, None, "model_not_found")


def route_not_found(method: str, path: str) -> OpenAIError:
    return OpenAIError(404, f"Invalid URL ({method} {path})", INVALID_REQUEST, None, None)


def method_not_allowed(method: str, path: str) -> OpenAIError:
    return OpenAIError(405, f"Invalid method for URL ({method} {path})", INVALID_REQUEST, None, None)


# 429, 500, 503: the server cannot serve it now.


def rate_limited(message: str = "Too many requests. Please retry after a short wait.") -> OpenAIError:
    return OpenAIError(429, message, "requests", None, "rate_limit_exceeded")


def internal_error(message: str = "The server had an error while processing your request.") -> OpenAIError:
    return OpenAIError(500, message, SERVER_ERROR, None, None)


def service_unavailable(
    message: str = "The server is currently overloaded with other requests. Please retry your request.",
) -> OpenAIError:
    return OpenAIError(503, message, SERVER_ERROR, None, None)


# 408, and HTTP the server could not parse: the connection itself was wrong.


def request_timeout(what: str, seconds: float) -> OpenAIError:
    message = f"Request timed out: the {what} did not arrive within {seconds:g} seconds."
    return OpenAIError(408, message, INVALID_REQUEST, None, "request_timeout")


def malformed_http(detail: str) -> OpenAIError:
    return invalid_request(f"Malformed HTTP request: {detail}", None, "malformed_request")


def json_type_name(value: object) -> str:
    """The JSON name of a decoded value's type, as error messages say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
