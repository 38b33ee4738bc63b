"""Validate response bodies against OpenAI's published schemas (a trimmed copy kept in openai_schemas.json).

Regenerate the copy from the official spec (github.com/openai/openai-openapi, MIT):
    python -m tests.openai_schema [path/to/openai-openapi.json]

The generator keeps the schemas named in ROOTS and everything they $ref, drops documentation keys, and turns
OpenAPI's `nullable: true` into JSON Schema type unions. Places where the published spec is stricter than
what api.openai.com (and vLLM) actually send are relaxed, each noted in PATCHES below.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path

import jsonschema

SCHEMA_FILE = Path(__file__).with_name("openai_schemas.json")
DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi.json"  # ../shared beside the repo
# The Responses stream's events this server sends, by `type`, each with its own schema (ResponseStreamEvent is
# their anyOf, whose errors say little).
RESPONSE_EVENTS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "error": "ResponseErrorEvent",
}
ROOTS = (
    "CreateCompletionResponse",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    "Response",
    "ResponseItemList",
    "TokenCountsResource",
    "CreateEmbeddingRequest",
    "CreateEmbeddingResponse",
    *RESPONSE_EVENTS.values(),
)
DOCUMENTATION_KEYS = frozenset(
    {
        "description",
        "example",
        "examples",
        "title",
        "x-oaiMeta",
        "x-oaiTypeLabel",
        "x-stainless-const",
        "discriminator",
    }
)
REF_PREFIX = "#/components/schemas/"


def validate(body: object, schema_name: str, strict: bool = False) -> None:
    """Raise jsonschema.ValidationError unless `body` matches the named schema.

    strict: also refuse properties the schema does not name (OpenAI's schemas allow extras), which catches
    misspelt optional fields.
    """
    _validator(schema_name, strict).validate(body)


@functools.cache
def _validator(schema_name: str, strict: bool) -> jsonschema.Draft202012Validator:
    document = json.loads(SCHEMA_FILE.read_text())
    if schema_name not in document["components"]["schemas"]:
        raise KeyError(f"{schema_name} is not in {SCHEMA_FILE.name}")
    if strict:
        document = _closed(document)
    root = {**document, "$ref": REF_PREFIX + schema_name}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root)


def _closed(document: dict) -> dict:
    """Every object schema refuses properties it does not evaluate. unevaluatedProperties (not
    additionalProperties) so that an `allOf` of parts (the Responses schemas are built so) is closed over the
    union of its parts' properties; the parts themselves, inline or named, stay open."""
    parts = {ref.removeprefix(REF_PREFIX) for ref in _allof_refs(document)}
    schemas = {name: _close(schema, name in parts) for name, schema in document["components"]["schemas"].items()}
    return {**document, "components": {"schemas": schemas}}


def _close(node, is_part: bool = False):
    if isinstance(node, list):
        return [_close(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: [_close(m, True) for m in value] if key == "allOf" else _close(value) for key, value in node.items()}
    if not is_part and ("properties" in closed or "allOf" in closed) and "additionalProperties" not in closed:
        closed["unevaluatedProperties"] = False
    return closed


def _allof_refs(node) -> list[str]:
    if isinstance(node, list):
        return [ref for item in node for ref in _allof_refs(item)]
    if not isinstance(node, dict):
        return []
    found = [m["$ref"] for m in node.get("allOf", ()) if isinstance(m, dict) and "$ref" in m]
    return found + [ref for value in node.values() for ref in _allof_refs(value)]


# The generator.


def trim(spec: dict) -> dict:
    schemas = spec["components"]["schemas"]
    kept = {name: _json_schema(schemas[name]) for name in _closure(schemas, ROOTS)}
    for patch in PATCHES:
        patch(kept)
    return {
        "$comment": (
            "Trimmed from the official OpenAI OpenAPI spec (https://github.com/openai/openai-openapi, MIT "
            f"license), version {spec['info']['version']}. Generated by `python -m tests.openai_schema`; "
            "do not edit by hand. nullable is translated to JSON Schema type unions; see PATCHES there for "
            "the places relaxed to match what the API actually sends."
        ),
        "components": {"schemas": dict(sorted(kept.items()))},
    }


def _closure(schemas: dict, roots: tuple[str, ...]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(schemas[name]))
    return seen


def _refs(node) -> list[str]:
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    if not isinstance(node, dict):
        return []
    found = [node["$ref"].removeprefix(REF_PREFIX)] if "$ref" in node else []
    return found + [ref for key, value in node.items() if key != "$ref" for ref in _refs(value)]


def _json_schema(node):
    """Documentation keys dropped and `nullable: true` made a JSON Schema union, all the way down."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: (value if key in ("properties", "enum", "required") else _json_schema(value))
        for key, value in node.items()
        if key not in DOCUMENTATION_KEYS and key != "nullable"
    }
    if "properties" in converted:
        converted["properties"] = {k: _json_schema(v) for k, v in converted["properties"].items()}
    return _nullable(converted) if node.get("nullable") else converted


def _nullable(schema: dict) -> dict:
    if "$ref" in schema:
        return {"anyOf": [{"$ref": schema.pop("$ref")}, {"type": "null"}], **schema}
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            schema[combinator] = [*schema[combinator], {"type": "null"}]
            return schema
    return schema


def _allow_null_first_echo_logprob(schemas: dict) -> None:
    """With echo and logprobs, the first prompt token has no logprob: the legacy API and vLLM send null there
    in token_logprobs and top_logprobs, where the spec says number and object (the SDK does not validate
    responses by default, so clients read the null)."""
    logprobs = schemas["CreateCompletionResponse"]["properties"]["choices"]["items"]["properties"]["logprobs"]
    fields = logprobs["anyOf"][0]["properties"]
    fields["token_logprobs"]["items"] = {"type": ["number", "null"]}
    top = fields["top_logprobs"]["items"]
    top["type"] = [top["type"], "null"]


def _add_completion_stream_response(schemas: dict) -> None:
    """Streamed completions reuse CreateCompletionResponse, but chunks carry finish_reason null until the
    choice ends, and "usage": null with include_usage; this derived schema says so (not in the spec)."""
    stream = copy.deepcopy(schemas["CreateCompletionResponse"])
    choice = stream["properties"]["choices"]["items"]["properties"]
    choice["finish_reason"] = _nullable(choice["finish_reason"])
    stream["properties"]["usage"] = _nullable(stream["properties"]["usage"])
    schemas["CreateCompletionStreamResponse"] = stream


def _add_store_to_response(schemas: dict) -> None:
    """api.openai.com's responses carry `store` (the spec's own example for POST /responses shows it), but the
    Response schema does not list it; strict validation would refuse it."""
    schemas["Response"]["allOf"][-1]["properties"]["store"] = {"type": ["boolean", "null"]}


def _allow_base64_embedding(schemas: dict) -> None:
    """With encoding_format base64 (the openai SDK asks for it by default) each embedding is a string, the
    base64 of its little-endian float32s; the spec lists only the array of floats."""
    properties = schemas["Embedding"]["properties"]
    properties["embedding"] = {"anyOf": [properties["embedding"], {"type": "string", "contentEncoding": "base64"}]}


PATCHES = (_allow_null_first_echo_logprob, _add_completion_stream_response, _add_store_to_response,
           _allow_base64_embedding)


def main(argv: list[str]) -> None:
    spec_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    trimmed = trim(json.loads(spec_path.read_text()))
    SCHEMA_FILE.write_text(json.dumps(trimmed, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(trimmed['components']['schemas'])} schemas to {SCHEMA_FILE}")


if __name__ == "__main__":
    main(sys.argv)
