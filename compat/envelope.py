"""What every response body and stream chunk of the generation endpoints carries around its choices."""

from __future__ import annotations


def response_body(
    object_type: str,
    request_id: str,
    model: str,
    created: int,
    choices: list[dict],
    usage: dict,
    system_fingerprint: str | None,
) -> dict:
    body = _head(object_type, request_id, model, created, choices)
    body["usage"] = usage
    if system_fingerprint is not None:
        body["system_fingerprint"] = system_fingerprint
    return body


def chunk_body(
    object_type: str,
    request_id: str,
    model: str,
    created: int,
    choices: list[dict],
    usage: dict | None,
    usage_null: bool,
    system_fingerprint: str | None,
) -> dict:
    """`usage_null`: the field is present even while `usage` is None (the client asked for include_usage)."""
    chunk = _head(object_type, request_id, model, created, choices)
    if system_fingerprint is not None:
        chunk["system_fingerprint"] = system_fingerprint
    if usage is not None or usage_null:
        chunk["usage"] = usage
    return chunk


def _head(object_type: str, request_id: str, model: str, created: int, choices: list[dict]) -> dict:
    return {"id": request_id, "object": object_type, "created": created, "model": model, "choices": choices}
