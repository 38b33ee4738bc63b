"""The trimmed OpenAI schema file and its validator: regenerated from the spec, and actually strict."""

import json

import jsonschema
import pytest

from tests import openai_schema
from tests.openai_schema import validate


def test_committed_file_is_what_the_generator_makes_from_the_spec():
    if not openai_schema.DEFAULT_SPEC.exists():
        pytest.skip(f"{openai_schema.DEFAULT_SPEC} is not on this machine")
    spec = json.loads(openai_schema.DEFAULT_SPEC.read_text())
    assert openai_schema.trim(spec) == json.loads(openai_schema.SCHEMA_FILE.read_text())


def test_trimmed_file_keeps_the_roots_and_no_openapi_nullable():
    text = openai_schema.SCHEMA_FILE.read_text()
    schemas = json.loads(text)["components"]["schemas"]
    assert set(openai_schema.ROOTS) <= set(schemas)
    assert '"nullable"' not in text
    assert "openai/openai-openapi" in json.loads(text)["$comment"]


@pytest.mark.parametrize(
    "schema, nullable",
    [
        ({"type": "string", "nullable": True}, {"type": ["string", "null"]}),
        (
            {"type": "string", "enum": ["a"], "nullable": True},
            {"type": ["string", "null"], "enum": ["a", None]},
        ),
        ({"$ref": "#/x", "nullable": True}, {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}),
        (
            {"oneOf": [{"type": "string"}], "nullable": True},
            {"oneOf": [{"type": "string"}, {"type": "null"}]},
        ),
        ({"type": "string", "description": "doc"}, {"type": "string"}),
    ],
)
def test_nullable_becomes_a_json_schema_union(schema, nullable):
    assert openai_schema._json_schema(schema) == nullable


def test_property_named_like_a_documentation_key_survives():
    schema = {"type": "object", "properties": {"title": {"type": "string", "description": "d"}}}
    assert openai_schema._json_schema(schema) == {
        "type": "object",
        "properties": {"title": {"type": "string"}},
    }


def chat_body():
    message = {"role": "assistant", "content": "x", "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}


def test_a_valid_body_passes():
    validate(chat_body(), "CreateChatCompletionResponse", strict=True)


def test_a_missing_required_field_fails():
    body = chat_body()
    del body["choices"][0]["message"]["refusal"]
    with pytest.raises(jsonschema.ValidationError):
        validate(body, "CreateChatCompletionResponse")


def test_a_wrong_enum_value_fails():
    body = chat_body()
    body["choices"][0]["finish_reason"] = "abort"
    with pytest.raises(jsonschema.ValidationError):
        validate(body, "CreateChatCompletionResponse")


def test_strict_mode_refuses_fields_the_schema_does_not_name():
    body = chat_body()
    body["choices"][0]["finish_reson"] = "stop"
    validate(body, "CreateChatCompletionResponse")
    with pytest.raises(jsonschema.ValidationError):
        validate(body, "CreateChatCompletionResponse", strict=True)


def test_unknown_schema_name():
    with pytest.raises(KeyError):
        validate({}, "NoSuchSchema")
