"""/v1/embeddings: request parsing and its errors, against OpenAI's CreateEmbeddingRequest schema, and the
response against CreateEmbeddingResponse and the openai SDK's own decoding."""

import base64

import jsonschema
import numpy as np
import pytest
from openai.types import CreateEmbeddingResponse

from compat.embeddings import check_input_count, embedding_response, parse_embedding_request
from compat.errors import OpenAIError
from tests.openai_schema import validate


def request(**fields):
    body = {"model": "qwen3-embed", "input": "Hello", **fields}
    validate(body, "CreateEmbeddingRequest")  # what we accept, OpenAI's spec accepts
    return parse_embedding_request(body)


def error_of(body, spec_refuses: bool = True) -> OpenAIError:
    if spec_refuses:
        with pytest.raises(jsonschema.ValidationError):
            validate(body, "CreateEmbeddingRequest")
    with pytest.raises(OpenAIError) as caught:
        parse_embedding_request(body)
    error = caught.value
    validate(error.to_dict(), "ErrorResponse", strict=True)
    assert error.status == 400
    return error


class TestInput:
    def test_a_string_is_one_input(self):
        assert request(input="Once upon").inputs == ["Once upon"]

    def test_a_list_of_strings_is_a_batch(self):
        assert request(input=["a", "b"]).inputs == ["a", "b"]

    def test_token_ids_and_lists_of_them(self):
        assert request(input=[1, 2, 3]).inputs == [[1, 2, 3]]
        assert request(input=[[1, 2], [3]]).inputs == [[1, 2], [3]]

    def test_the_input_is_required(self):
        assert error_of({"model": "m"}).param == "input"

    def test_an_empty_string_is_refused(self):
        assert error_of({"model": "m", "input": ""}, spec_refuses=False).param == "input"
        assert error_of({"model": "m", "input": ["a", ""]}, spec_refuses=False).param == "input[1]"

    def test_an_empty_list_is_refused(self):
        error = error_of({"model": "m", "input": []})
        assert (error.param, error.code) == ("input", "empty_array")
        assert error_of({"model": "m", "input": [[1], []]}).param == "input[1]"

    def test_mixed_and_wrong_types_are_refused(self):
        assert error_of({"model": "m", "input": ["a", 1]}).code == "invalid_type"
        assert error_of({"model": "m", "input": 5}).param == "input"
        assert error_of({"model": "m", "input": [[1, "x"]]}).param == "input[0][1]"

    def test_negative_token_ids_are_refused(self):
        assert error_of({"model": "m", "input": [[1, -2]]}, spec_refuses=False).param == "input[0][1]"

    def test_more_than_2048_inputs_are_refused(self):
        error = error_of({"model": "m", "input": ["a"] * 2049})
        assert (error.param, error.code) == ("input", "array_above_max_length")

    def test_the_servers_bound_on_inputs(self):
        check_input_count(4, 4)
        with pytest.raises(OpenAIError) as caught:
            check_input_count(5, 4)
        assert caught.value.param == "input"

    def test_engine_refusals_name_the_input(self):
        assert request(input="a").param_for("prompt") == "input"
        assert request(input=["a", "b"]).param_for("prompt", 1) == "input[1]"
        assert request(input="a").param_for("dimensions") == "dimensions"


class TestOptions:
    def test_defaults(self):
        parsed = request()
        assert (parsed.encoding_format, parsed.dimensions, parsed.add_special_tokens) == ("float", None, True)

    def test_encoding_format_and_dimensions(self):
        parsed = request(encoding_format="base64", dimensions=16, user="u")
        assert (parsed.encoding_format, parsed.dimensions, parsed.user) == ("base64", 16, "u")

    def test_bad_encoding_format_and_dimensions_are_refused(self):
        assert error_of({"model": "m", "input": "a", "encoding_format": "int8"}).param == "encoding_format"
        error = error_of({"model": "m", "input": "a", "dimensions": 0})
        assert (error.param, error.code) == ("dimensions", "integer_below_min_value")

    def test_fields_that_would_change_the_result_are_refused_not_ignored(self):
        body = {"model": "m", "input": "a", "truncate_prompt_tokens": 8}
        assert error_of(body, spec_refuses=True).code == "unsupported_parameter"

    def test_unknown_fields_are_listed(self):
        assert parse_embedding_request({"input": "a", "foo": 1}).ignored_fields == ("foo",)


VECTORS = [[0.25, -1.5, 2.0**-20], [1.0, 0.0, -0.125]]  # float32 exactly


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_the_response_matches_openais_schema_and_sdk(encoding_format):
    body = embedding_response("qwen3-embed", VECTORS, encoding_format, prompt_tokens=7)
    validate(body, "CreateEmbeddingResponse", strict=True)
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    assert [d["index"] for d in body["data"]] == [0, 1]
    if encoding_format == "float":  # the SDK decodes base64 itself before building its model
        assert CreateEmbeddingResponse.model_validate(body).data[1].embedding == VECTORS[1]
    for d, expected in zip(body["data"], VECTORS, strict=True):
        values = (np.frombuffer(base64.b64decode(d["embedding"]), "<f4") if encoding_format == "base64"
                  else np.asarray(d["embedding"]))
        np.testing.assert_array_equal(values, np.asarray(expected, np.float32))
