"""OpenAI's error envelope, and the status, type and code each failure carries."""

import pytest

from compat import errors
from compat.body import decode_json_body
from compat.errors import OpenAIError
from tests.openai_schema import validate

IRE = "invalid_request_error"
CASES = [
    # constructor call, status, type, param, code
    (lambda: errors.invalid_request("bad", "temperature"), 400, IRE, "temperature", None),
    (lambda: errors.missing_parameter("messages"), 400, IRE, "messages", "missing_required_parameter"),
    (lambda: errors.invalid_type("n", "an integer", "2"), 400, IRE, "n", "invalid_type"),
    (lambda: errors.context_length_exceeded(2048, 3000), 400, IRE, "messages", "context_length_exceeded"),
    (lambda: errors.invalid_parameter_combination("x", "n"), 400, IRE, "n", "invalid_parameter_combination"),
    (lambda: errors.unsupported_parameter("suffix"), 400, IRE, "suffix", "unsupported_parameter"),
    (lambda: errors.invalid_json(), 400, IRE, None, None),
    (lambda: errors.invalid_api_key(), 401, IRE, None, "invalid_api_key"),
    (lambda: errors.invalid_api_key(provided=False), 401, IRE, None, None),
    (lambda: errors.model_not_found("gpt-9"), 404, IRE, None, "model_not_found"),
    (lambda: errors.route_not_found("POST", "/v1/nope"), 404, IRE, None, None),
    (lambda: errors.method_not_allowed("GET", "/v1/models"), 405, IRE, None, None),
    (lambda: errors.body_too_large(1 << 20), 413, IRE, None, "request_too_large"),
    (lambda: errors.unsupported_media_type("text/plain"), 415, IRE, None, "unsupported_media_type"),
    (lambda: errors.rate_limited(), 429, "requests", None, "rate_limit_exceeded"),
    (lambda: errors.internal_error(), 500, "server_error", None, None),
    (lambda: errors.service_unavailable(), 503, "server_error", None, None),
]


@pytest.mark.parametrize("make, status, type_, param, code", CASES)
def test_error_carries_openai_status_type_param_and_code(make, status, type_, param, code):
    error = make()
    assert isinstance(error, OpenAIError) and isinstance(error, Exception)
    assert (error.status, error.type, error.param, error.code) == (status, type_, param, code)
    body = error.to_dict()
    validate(body, "ErrorResponse", strict=True)
    assert body == {"error": {"message": error.message, "type": type_, "param": param, "code": code}}
    assert error.message and str(error) == error.message


def test_messages_name_the_thing_that_went_wrong():
    assert "`gpt-9`" in errors.model_not_found("gpt-9").message
    assert errors.route_not_found("POST", "/v1/nope").message == "Invalid URL (POST /v1/nope)"
    assert "(GET /v1/chat/completions)" in errors.method_not_allowed("GET", "/v1/chat/completions").message
    assert "1048576 bytes" in errors.body_too_large(1 << 20).message
    assert "'text/plain'" in errors.unsupported_media_type("text/plain").message


def test_context_length_message_says_both_numbers():
    message = errors.context_length_exceeded(2048, 2000, 100, "prompt").message
    assert message == (
        "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens "
        "(2000 in the prompt, 100 in the completion). Please reduce the length of the prompt or completion."
    )


class TestJsonBody:
    def test_json_object(self):
        assert decode_json_body(b'{"model": "m"}', "application/json") == {"model": "m"}

    @pytest.mark.parametrize(
        "content_type", [None, "", "application/json; charset=utf-8", "application/vnd.x+json"]
    )
    def test_json_content_types_and_none(self, content_type):
        assert decode_json_body(b"{}", content_type) == {}

    @pytest.mark.parametrize(
        "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
    )
    def test_other_content_types_are_415(self, content_type):
        with pytest.raises(OpenAIError) as caught:
            decode_json_body(b"{}", content_type)
        assert (caught.value.status, caught.value.code) == (415, "unsupported_media_type")

    @pytest.mark.parametrize("raw", [b"", b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe", b"{'a': 1}"])
    def test_invalid_json_is_400(self, raw):
        with pytest.raises(OpenAIError) as caught:
            decode_json_body(raw, "application/json")
        assert (caught.value.status, caught.value.type) == (400, "invalid_request_error")
        assert "could not parse the JSON body" in caught.value.message

    @pytest.mark.parametrize("raw", [b"[]", b'"text"', b"3", b"null"])
    def test_json_that_is_not_an_object_is_400(self, raw):
        with pytest.raises(OpenAIError) as caught:
            decode_json_body(raw, "application/json")
        assert caught.value.status == 400 and "JSON object" in caught.value.message
