"""/v1/models: the model card and the list of them."""

from __future__ import annotations

from collections.abc import Sequence


def model_card(
    model_id: str, created: int, owned_by: str = "cortexstream", max_model_len: int | None = None
) -> dict:
    """`max_model_len` is vLLM's extension; clients use it to size prompts."""
    card = {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}
    if max_model_len is not None:
        card["max_model_len"] = max_model_len
    return card


def model_list(cards: Sequence[dict]) -> dict:
    return {"object": "list", "data": list(cards)}
