"""Parse Anthropic Messages payloads strictly with the anthropic SDK's own typed models (the reference for that
API's wire format): pydantic validation without coercion, no field the model does not declare (its models
accept extras silently), and nothing lost or changed in the round trip."""

from __future__ import annotations

import functools

import pydantic
from anthropic import types

STREAM_EVENT = types.RawMessageStreamEvent


def parse_strictly(payload: dict, model_type=types.Message):
    parsed = _adapter(model_type).validate_python(payload, strict=True)
    _no_extras(parsed, "$")
    dumped = _adapter(model_type).dump_python(parsed, mode="json", exclude_unset=True, by_alias=True)
    assert dumped == payload, f"the SDK read {dumped}\nfrom {payload}"
    return parsed


@functools.cache
def _adapter(model_type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(model_type)


def _no_extras(value, path: str) -> None:
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{path}: fields the SDK does not know: {sorted(value.model_extra)}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _no_extras(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_extras(item, f"{path}.{key}")
