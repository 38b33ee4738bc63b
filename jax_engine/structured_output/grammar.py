"""A request's grammar state: which tokens may come next, advanced by each sampled token."""

from __future__ import annotations

import llguidance


class Grammar:
    """One request's matcher. Its state follows the request's output tokens, which survive preemption by
    recompute, so it needs no rollback; it is dropped when the request finishes."""

    def __init__(self, matcher: llguidance.LLMatcher):
        self.matcher = matcher

    def accept_token(self, token_id: int) -> bool:
        """Advance past a sampled token; False if the grammar does not allow it."""
        return self.matcher.consume_token(token_id)

    @property
    def is_terminated(self) -> bool:
        """The output is complete: nothing but end-of-sequence may follow."""
        return self.matcher.is_stopped()

    @property
    def error(self) -> str:
        return self.matcher.get_error()
