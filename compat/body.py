"""The request body: bytes and a Content-Type in, the decoded JSON object out."""

from __future__ import annotations

import orjson

from compat import errors


def decode_json_body(raw: bytes, content_type: str | None) -> dict:
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
    return body


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
