"""The request body: bytes and a Content-Type in, the decoded JSON object out; and JSON carried inside it as text.

JSON nested deeper than MAX_JSON_DEPTH is refused: no real request comes near it, and values that deep would
exhaust Python's recursion wherever they are walked again (json.dumps for a prompt or a grammar, jinja's tojson).
"""

from __future__ import annotations

import orjson

from compat import errors

MAX_JSON_DEPTH = 64


def decode_json_body(raw: bytes | bytearray, content_type: str | None) -> dict:
    """A body without a Content-Type is read as JSON; any media type other than JSON is a 415 (like vLLM,
    which refuses curl -d's default form encoding). A body that is not a JSON object is a 400; NaN and
    Infinity are not JSON and are refused."""
    if content_type and not _is_json(content_type):
        raise errors.unsupported_media_type(content_type)
    if not raw:
        raise errors.invalid_json("the body is empty")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.invalid_json(str(e)) from e
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    if nesting_depth(body) > MAX_JSON_DEPTH:
        raise errors.invalid_request(f"The request body nests JSON more than {MAX_JSON_DEPTH} levels deep.")
    return body


def decode_json_text(text: str) -> object:
    """A JSON value held in a string (tool-call arguments, say); ValueError if it is not JSON or nests deeper
    than MAX_JSON_DEPTH."""
    value = orjson.loads(text)
    if nesting_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def nesting_depth(value: object) -> int:
    """Levels of arrays and objects: 0 for a scalar, 1 for [] or {}. Walked level by level, not recursively."""
    depth, level = 0, [value]
    while True:
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            return depth
        depth += 1
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
