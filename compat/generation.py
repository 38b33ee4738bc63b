"""What every API surface's generating request offers the one conversion into engine requests."""

from __future__ import annotations

from typing import Protocol

from compat.output_constraint import OutputConstraint
from compat.sampling import SamplingRequest


class GenerationRequest(Protocol):
    @property
    def sampling(self) -> SamplingRequest: ...

    def output_constraint(self) -> OutputConstraint | None: ...

    def param_for(self, field: str, prompt_index: int = 0) -> str:
        """This surface's name for the request field an engine refusal is about: `field` is SamplingParams'
        name, "prompt", or "structured_output"; `prompt_index` picks among several prompts."""
