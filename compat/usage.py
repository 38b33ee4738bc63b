"""The `usage` object of responses and final stream chunks."""

from __future__ import annotations


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> dict:
    """Token counts of a whole request, all choices together.

    `cached_tokens`: how many prompt tokens the prefix cache served.
    """
    result: dict[str, int | dict[str, int]] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        result["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return result
