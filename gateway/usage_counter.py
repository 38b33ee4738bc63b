"""Token counts of a request across its prompts and samples, for `usage` and the access log."""

from __future__ import annotations

from compat import usage
from jax_engine.outputs import RequestOutput


class UsageCounter:
    def __init__(self, count_completion: bool = True):
        self.count_completion = count_completion  # False: generation only served the echo (max_tokens 0)
        self._prompt: dict[int, int] = {}  # prompt position -> tokens
        self._cached: dict[int, int] = {}
        self._completion: dict[tuple[int, int], int] = {}  # (prompt position, sample index) -> tokens

    def add(self, position: int, out: RequestOutput) -> None:
        self._prompt[position] = out.num_prompt_tokens
        if out.index == 0:
            self._cached[position] = out.num_cached_tokens
        if self.count_completion:
            self._completion[(position, out.index)] = out.num_output_tokens

    def usage(self) -> dict:
        return usage(sum(self._prompt.values()), sum(self._completion.values()), sum(self._cached.values()))
