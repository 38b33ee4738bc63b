"""`response_format`: plain text, any JSON object, or JSON that follows a given schema."""

from __future__ import annotations

from dataclasses import dataclass

from compat import fields

TYPES = ("text", "json_object", "json_schema")


@dataclass(frozen=True)
class JsonSchemaFormat:
    name: str
    schema: dict | None = None  # None: any JSON, as OpenAI reads a json_schema without one
    description: str | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class ResponseFormat:
    type: str  # "text" | "json_object" | "json_schema"
    json_schema: JsonSchemaFormat | None = None

    @property
    def is_structured(self) -> bool:
        return self.type != "text"

    @property
    def schema(self) -> dict | None:
        """The JSON Schema the output must follow: any object for json_object, any JSON for a json_schema
        without a schema, None for text."""
        if self.type == "json_object":
            return {"type": "object"}
        if self.json_schema is not None:  # type json_schema
            return self.json_schema.schema if self.json_schema.schema is not None else {}
        return None


def parse_response_format(value: object) -> ResponseFormat | None:
    response_format = fields.obj(value, "response_format")
    if response_format is None:
        return None
    kind = fields.required_choice(response_format, "type", "response_format.type", TYPES)
    if kind != "json_schema":
        return ResponseFormat(kind)
    return ResponseFormat(kind, _json_schema(response_format))


def _json_schema(response_format: dict) -> JsonSchemaFormat:
    param = "response_format.json_schema"
    spec = fields.required_object(response_format, "json_schema", param)
    return JsonSchemaFormat(
        name=fields.required_name(spec, "name", f"{param}.name"),
        schema=fields.obj(spec.get("schema"), f"{param}.schema"),
        description=fields.string(spec.get("description"), f"{param}.description"),
        strict=fields.boolean(spec.get("strict"), f"{param}.strict"),
    )
