"""Typed readers for decoded JSON values: each returns the value (None for JSON null) or raises OpenAIError.

`param` is the OpenAI-style path of the value (`temperature`, `messages[1].content`), reported in the error.
JSON booleans are never numbers here, and numbers are never parsed from strings, as OpenAI's API does.
"""

from __future__ import annotations

import math
import re

from compat import errors

NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # OpenAI's pattern for function and schema names


def number(
    value: object,
    param: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise errors.invalid_type(param, "a decimal", value)
    if not math.isfinite(value):
        raise errors.invalid_value(param, f"Invalid '{param}': expected a finite number, but got {value}.")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        raise errors.below_minimum(param, "decimal", minimum, value, exclusive_minimum)
    if maximum is not None and value > maximum:
        raise errors.above_maximum(param, "decimal", maximum, value)
    return float(value)


def integer(value: object, param: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
    return None if value is None else integer_value(value, param, minimum, maximum)


def integer_value(value: object, param: str, minimum: int | None = None, maximum: int | None = None) -> int:
    # 5.0 is accepted as 5 (as pydantic, and so vLLM, do); 5.5 is not an integer.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_type(param, "an integer", value)
    if minimum is not None and value < minimum:
        raise errors.below_minimum(param, "integer", minimum, value)
    if maximum is not None and value > maximum:
        raise errors.above_maximum(param, "integer", maximum, value)
    return value


def boolean(value: object, param: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise errors.invalid_type(param, "a boolean", value)


def string(value: object, param: str) -> str | None:
    return None if value is None else string_value(value, param)


def obj(value: object, param: str) -> dict | None:
    return None if value is None else object_value(value, param)


def string_value(value: object, param: str) -> str:
    """`value`, which the caller knows is present, as a string."""
    if isinstance(value, str):
        return value
    raise errors.invalid_type(param, "a string", value)


def object_value(value: object, param: str) -> dict:
    if isinstance(value, dict):
        return value
    raise errors.invalid_type(param, "an object", value)


def array(value: object, param: str, min_length: int = 0, max_length: int | None = None) -> list | None:
    return None if value is None else array_value(value, param, min_length, max_length)


def array_value(value: object, param: str, min_length: int = 0, max_length: int | None = None) -> list:
    if not isinstance(value, list):
        raise errors.invalid_type(param, "an array", value)
    if len(value) < min_length:
        raise errors.array_too_short(param, min_length, len(value))
    if max_length is not None and len(value) > max_length:
        raise errors.array_too_long(param, max_length, len(value))
    return value


def token_ids(value: list, param: str) -> list[int]:
    """A prompt or input given as token ids: a non-empty array of integers >= 0."""
    array_value(value, param, min_length=1)
    for i, token_id in enumerate(value):
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise errors.invalid_type(f"{param}[{i}]", "an integer", token_id)
        if token_id < 0:
            raise errors.below_minimum(f"{param}[{i}]", "integer", 0, token_id)
    return list(value)


def choice(value: object, param: str, allowed: tuple[str, ...]) -> str | None:
    return None if value is None else choice_value(value, param, allowed)


def choice_value(value: object, param: str, allowed: tuple[str, ...]) -> str:
    value = string_value(value, param)
    if value not in allowed:
        supported = ", ".join(f"'{a}'" for a in allowed)
        raise errors.invalid_value(
            param, f"Invalid value for '{param}': '{value}'. Supported values are: {supported}."
        )
    return value


def required(body: dict, key: str, param: str | None = None) -> object:
    """The value under `key`; absent and null both count as missing."""
    value = body.get(key)
    if value is None:
        raise errors.missing_parameter(param or key)
    return value


def required_string(body: dict, key: str, param: str) -> str:
    return string_value(required(body, key, param), param)


def required_object(body: dict, key: str, param: str) -> dict:
    return object_value(required(body, key, param), param)


def required_array(body: dict, key: str, param: str) -> list:
    return array_value(required(body, key, param), param)


def required_choice(body: dict, key: str, param: str, allowed: tuple[str, ...]) -> str:
    return choice_value(required(body, key, param), param, allowed)


def required_name(body: dict, key: str, param: str) -> str:
    name = required_string(body, key, param)
    if not NAME.fullmatch(name):
        raise errors.invalid_value(
            param,
            f"Invalid '{param}': string does not match pattern. "
            f"Expected a string that matches the pattern '^{NAME.pattern}$'.",
        )
    return name
