"""The objects the Responses API answers with: the response, its usage and logprobs, the input item list,
token counts and deletions."""

from __future__ import annotations

from collections.abc import Sequence

from compat.logprobs import TokenLogprob, position_logprob, wire_logprob
from compat.responses.request import ResponsesRequest

OBJECT = "response"


def response_object(request: ResponsesRequest, response_id: str, model: str, created_at: int,
                    status: str = "in_progress") -> dict:
    """A response that has not produced anything yet (output empty; `usage` comes when it ends, as the schema
    has it not nullable); a background one is queued."""
    return {
        "id": response_id,
        "object": OBJECT,
        "created_at": created_at,
        "status": status,
        "background": request.background,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": request.prompt_cache_key,
        "reasoning": request.reasoning,
        "safety_identifier": request.safety_identifier,
        "service_tier": "default",
        "store": request.store,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": request.text,
        "tool_choice": request.tools.echo_tool_choice,
        "tools": request.tools.echo_tools,
        "top_logprobs": request.top_logprobs or 0,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation,
        "metadata": request.metadata,
        **({"user": request.user} if request.user is not None else {}),
    }


def usage(input_tokens: int, output_tokens: int, cached_tokens: int) -> dict:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def logprobs(positions: Sequence[TokenLogprob]) -> list[dict]:
    """output_text's `logprobs`, with token bytes."""
    return [
        {"token": p.token, "logprob": position_logprob(p), "bytes": list(_bytes(p.token, p.token_bytes)),
         "top_logprobs": [{"token": t.token, "logprob": wire_logprob(t.logprob),
                           "bytes": list(_bytes(t.token, t.token_bytes))} for t in p.top_logprobs]}
        for p in positions
    ]


def delta_logprobs(positions: Sequence[TokenLogprob]) -> list[dict]:
    """The lighter form a text delta event carries (no bytes)."""
    return [{"token": p.token, "logprob": position_logprob(p),
             "top_logprobs": [{"token": t.token, "logprob": wire_logprob(t.logprob)} for t in p.top_logprobs]}
            for p in positions]


def _bytes(token: str, token_bytes: bytes | None) -> bytes:
    return token_bytes if token_bytes is not None else token.encode()


def item_list(items: list[dict], has_more: bool) -> dict:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": has_more}


def input_tokens(count: int) -> dict:
    return {"object": "response.input_tokens", "input_tokens": count}


def deleted(response_id: str) -> dict:
    return {"id": response_id, "object": "response", "deleted": True}
