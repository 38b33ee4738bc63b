"""What the engine hands back per step and request: deltas, not the whole text so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from jax_engine.model_runner import TokenLogprobs


@dataclass
class RequestOutput:
    request_id: str  # the caller's id (shared by the n samples)
    index: int  # which of the n samples
    new_token_ids: list[int] = field(default_factory=list)
    new_text: str = ""
    new_logprobs: list[TokenLogprobs] | None = None
    prompt_token_ids: list[int] | None = None  # set on each sample's first output
    prompt_logprobs: list[TokenLogprobs | None] | None = None  # first entry None, like vLLM
    finished: bool = False
    finish_reason: str | None = None  # stop | length | abort | error
    stop_reason: str | int | None = None  # the stop string or stop token id that ended it
    num_prompt_tokens: int = 0
    num_output_tokens: int = 0
    num_cached_tokens: int = 0
    error: str | None = None
