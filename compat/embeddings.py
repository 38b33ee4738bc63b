"""/v1/embeddings: the request, parsed and validated, and the response builder."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from compat import errors, fields, request_fields

OBJECT = "list"
ENCODING_FORMATS = ("float", "base64")
MAX_INPUTS = 2048  # OpenAI's bound on the array of inputs
KNOWN_FIELDS = frozenset("model input encoding_format dimensions user add_special_tokens priority".split())
# vLLM's pooling fields that would change the result, with the values that mean "off".
UNIMPLEMENTED: dict[str, tuple] = {
    "truncate_prompt_tokens": (),
    "normalize": (),
    "use_activation": (),
    "embed_dtype": ("float32",),
}


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str | None  # None: the client left it out; the gateway serves its one model
    inputs: list[str | list[int]]  # each a text or token ids; data[i] embeds inputs[i]
    encoding_format: str = "float"
    dimensions: int | None = None  # Matryoshka truncation, for models trained for it
    user: str | None = None
    add_special_tokens: bool = True  # vLLM's extension: the tokenizer's BOS/EOS around each text input
    priority: int = 0  # vLLM's extension: lower is scheduled first
    ignored_fields: tuple[str, ...] = ()  # top-level fields this server does not know; worth a log line

    def param_for(self, field: str, prompt_index: int = 0) -> str:
        """The request field an engine refusal of `field` ("prompt", "dimensions", ...) is about."""
        if field == "prompt":
            return "input" if len(self.inputs) == 1 else f"input[{prompt_index}]"
        return field


def parse_embedding_request(body: object) -> EmbeddingRequest:
    if not isinstance(body, dict):
        raise errors.invalid_type("body", "an object", body)
    request_fields.reject_unimplemented(body, UNIMPLEMENTED)
    encoding_format = fields.choice(body.get("encoding_format"), "encoding_format", ENCODING_FORMATS)
    add_special_tokens = fields.boolean(body.get("add_special_tokens"), "add_special_tokens")
    return EmbeddingRequest(
        model=fields.string(body.get("model"), "model"),
        inputs=parse_inputs(body.get("input")),
        encoding_format=encoding_format or "float",
        dimensions=fields.integer(body.get("dimensions"), "dimensions", 1),
        user=fields.string(body.get("user"), "user"),
        add_special_tokens=True if add_special_tokens is None else add_special_tokens,
        priority=fields.integer(body.get("priority"), "priority") or 0,
        ignored_fields=request_fields.unknown_fields(body, KNOWN_FIELDS | set(UNIMPLEMENTED)),
    )


def parse_inputs(value: object) -> list[str | list[int]]:
    """A string, an array of strings, an array of token ids or an array of token-id arrays; none empty."""
    if value is None:
        raise errors.missing_parameter("input")
    if isinstance(value, str):
        return [_text(value, "input")]
    items = fields.array(value, "input", min_length=1, max_length=MAX_INPUTS) or []
    if all(isinstance(item, str) for item in items):
        return [_text(item, f"input[{i}]") for i, item in enumerate(items)]
    if all(isinstance(item, list) for item in items):
        return [fields.token_ids(item, f"input[{i}]") for i, item in enumerate(items)]
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return [fields.token_ids(items, "input")]
    raise errors.invalid_type(
        "input", "a string, an array of strings, an array of token ids or an array of token-id arrays", value)


def _text(text: str, param: str) -> str:
    if not text:
        raise errors.invalid_value(param, f"Invalid '{param}': the input cannot be an empty string.")
    return text


def check_input_count(num_inputs: int, limit: int) -> None:
    """Each input is one sequence in the engine's queue (the server's --max-sequences-per-request)."""
    if num_inputs > limit:
        raise errors.array_too_long("input", limit, num_inputs)


def encode_embedding(vector: Sequence[float], encoding_format: str) -> list[float] | str:
    """float: a JSON array; base64: the little-endian float32 bytes, base64-encoded (what OpenAI sends)."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return [float(x) for x in vector]


def embedding_response(model: str, embeddings: Sequence[Sequence[float]], encoding_format: str,
                       prompt_tokens: int) -> dict:
    data = [{"object": "embedding", "index": i, "embedding": encode_embedding(vector, encoding_format)}
            for i, vector in enumerate(embeddings)]
    return {"object": OBJECT, "data": data, "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
