"""What a request's output must match (vLLM's StructuredOutputsParams fields)."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass


@dataclass(frozen=True)
class StructuredOutputParams:
    """Exactly one of the constraints: a JSON Schema, any JSON object, a Lark grammar, a regex, or a choice."""

    json: dict | str | None = None  # a JSON Schema, as a dict or its text
    json_object: bool = False
    grammar: str | None = None  # Lark, in llguidance's dialect (which also takes `%json {...}` rules)
    regex: str | None = None
    choice: tuple[str, ...] | None = None

    def __post_init__(self):
        given = [self.json is not None, self.json_object, self.grammar is not None, self.regex is not None,
                 self.choice is not None]
        if sum(given) != 1:
            raise ValueError("StructuredOutputParams takes exactly one of json, json_object, grammar, regex, choice")
        if self.choice is not None:
            object.__setattr__(self, "choice", tuple(self.choice))

    @property
    def key(self) -> tuple[str, str]:
        """(kind, canonical text): equal constraints share one compiled grammar."""
        if self.json is not None:
            schema = self.json if isinstance(self.json, str) else jsonlib.dumps(self.json, sort_keys=True)
            return "json", schema
        if self.json_object:
            return "json_object", ""
        if self.grammar is not None:
            return "grammar", self.grammar
        if self.regex is not None:
            return "regex", self.regex
        return "choice", jsonlib.dumps(self.choice)
