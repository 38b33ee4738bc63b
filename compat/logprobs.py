"""Per-token log probabilities, and their two wire formats: the legacy completions one and the chat one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# JSON has no -inf; vLLM sends this floor for tokens the sampler ruled out, and so do we.
LOGPROB_FLOOR = -9999.0


@dataclass(frozen=True)
class TopLogprob:
    token: str
    logprob: float
    token_bytes: bytes | None = None  # raw bytes when `token` alone is not valid UTF-8; else token.encode()


@dataclass(frozen=True)
class TokenLogprob:
    """One position of a sequence: the token there, its logprob and the most likely alternatives."""

    token: str
    logprob: float | None  # None only for the first prompt token, which has no context to be scored in
    top_logprobs: Sequence[TopLogprob] = ()
    token_bytes: bytes | None = None


def wire_logprob(logprob: float) -> float:
    if math.isnan(logprob) or logprob < LOGPROB_FLOOR:
        return LOGPROB_FLOOR
    return float(logprob)


def position_logprob(position: TokenLogprob) -> float:
    """The position's logprob on a wire that has no null for it (chat, Responses): the unscored first prompt
    token gets the floor."""
    return wire_logprob(LOGPROB_FLOOR if position.logprob is None else position.logprob)


def completion_logprobs(positions: Sequence[TokenLogprob], text_offset: int = 0) -> dict:
    """The legacy /v1/completions `logprobs` object.

    `text_offset` is where the first position's token starts in the choice's text (for streaming: the
    length of the text sent so far). Offsets advance by each token's length, as OpenAI and vLLM count them.
    A position without a logprob (the first echoed prompt token) has null in token_logprobs and top_logprobs.
    """
    offsets = []
    for position in positions:
        offsets.append(text_offset)
        text_offset += len(position.token)
    return {
        "tokens": [p.token for p in positions],
        "token_logprobs": [None if p.logprob is None else wire_logprob(p.logprob) for p in positions],
        "top_logprobs": [_top_logprob_map(p) for p in positions],
        "text_offset": offsets,
    }


def chat_logprobs(positions: Sequence[TokenLogprob]) -> dict:
    """The chat `logprobs` object of a choice or a chunk."""
    return {"content": [_chat_token_logprob(p) for p in positions], "refusal": None}


def _top_logprob_map(position: TokenLogprob) -> dict[str, float] | None:
    if position.logprob is None:
        return None
    return {top.token: wire_logprob(top.logprob) for top in position.top_logprobs}


def _chat_token_logprob(position: TokenLogprob) -> dict:
    return {
        "token": position.token,
        "logprob": position_logprob(position),
        "bytes": _bytes(position.token, position.token_bytes),
        "top_logprobs": [
            {
                "token": top.token,
                "logprob": wire_logprob(top.logprob),
                "bytes": _bytes(top.token, top.token_bytes),
            }
            for top in position.top_logprobs
        ],
    }


def _bytes(token: str, token_bytes: bytes | None) -> list[int]:
    return list(token.encode("utf-8") if token_bytes is None else token_bytes)
