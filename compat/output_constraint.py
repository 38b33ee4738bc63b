"""What a request's output must match, as the protocol states it: the engine compiles it into a grammar."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutputConstraint:
    """One of: a JSON Schema, any JSON object, or a Lark grammar (a forced tool call)."""

    json_schema: dict | None = None
    json_object: bool = False
    grammar: str | None = None
    param: str = "response_format"  # the request field it comes from, named when it cannot be enforced
