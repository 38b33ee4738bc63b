"""The engine's token logprobs (ids) as compat's TokenLogprob (token text and bytes)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from compat import TokenLogprob, TopLogprob
from jax_engine import TokenLogprobs


class LogprobFormatter:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._describe = functools.lru_cache(maxsize=1 << 16)(self._describe_uncached)

    def token(self, token_id: int) -> str:
        return self._describe(token_id)[0]

    def token_bytes(self, token_id: int) -> bytes | None:
        return self._describe(token_id)[1]

    def _describe_uncached(self, token_id: int) -> tuple[str, bytes | None]:
        if self.tokenizer is None:  # dummy weights: no vocabulary to show
            return f"token_id:{token_id}", None
        return self.tokenizer.token_str(token_id), self.tokenizer.token_to_bytes(token_id)

    def chat(self, entries: Sequence[TokenLogprobs], top_logprobs: int) -> list[TokenLogprob]:
        """OpenAI's chat form: exactly `top_logprobs` alternatives per position."""
        return [self._position(e, e.top[:top_logprobs]) for e in entries]

    def completion(self, entries: Sequence[TokenLogprobs]) -> list[TokenLogprob]:
        """The legacy form (as vLLM sends it): the requested alternatives plus the sampled token."""
        return [self._position(e, _with_chosen(e)) for e in entries]

    def prompt(self, prompt_token_ids: Sequence[int],
               prompt_logprobs: Sequence[TokenLogprobs | None] | None) -> list[TokenLogprob]:
        """Echoed prompt positions; the first has no logprob (nothing precedes it)."""
        if not prompt_logprobs:
            return []
        positions = [TokenLogprob(self.token(prompt_token_ids[0]), None,
                                  token_bytes=self.token_bytes(prompt_token_ids[0]))]
        return positions + self.completion([e for e in prompt_logprobs[1:] if e is not None])

    def _position(self, entry: TokenLogprobs, top: Sequence[tuple[int, float]]) -> TokenLogprob:
        return TokenLogprob(self.token(entry.token_id), entry.logprob,
                            tuple(TopLogprob(self.token(t), logprob, self.token_bytes(t)) for t, logprob in top),
                            self.token_bytes(entry.token_id))


def _with_chosen(entry: TokenLogprobs) -> list[tuple[int, float]]:
    if any(token_id == entry.token_id for token_id, _ in entry.top):
        return list(entry.top)
    return [*entry.top, (entry.token_id, entry.logprob)]
