"""POST /v1/responses (and /v1/responses/input_tokens): the body, validated into a frozen request.

Fields that only steer storage, caching, billing or reasoning models are accepted and echoed or dropped;
fields that would change the answer and that this server cannot honour are refused with a 400.
"""

from __future__ import annotations

from dataclasses import dataclass

from compat import errors, fields, request_fields
from compat.responses.items import parse_input
from compat.responses.tools import ToolSet, parse_text, parse_tools

LOGPROBS_INCLUDE = "message.output_text.logprobs"
MIN_MAX_OUTPUT_TOKENS = 16  # as api.openai.com enforces it
MAX_MAX_OUTPUT_TOKENS = 2**31 - 1  # echoed in the response: it must stay a JSON integer every client reads
MAX_TOP_LOGPROBS = 20
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
# The chat endpoint's sampling fields, passed through under the same names (vLLM takes them here too).
SAMPLING_PASSTHROUGH = (request_fields.SAMPLING_EXTENSIONS - {"prompt_logprobs"}) | {
    "seed", "presence_penalty", "frequency_penalty", "logit_bias", "stop"}
ACCEPTED_FIELDS = frozenset(
    (
        "model input instructions tools tool_choice parallel_tool_calls text max_output_tokens temperature top_p "
        "top_logprobs truncation metadata user stream stream_options store background previous_response_id "
        "reasoning include prompt_cache_key prompt_cache_retention prompt_cache_options client_metadata "
        "safety_identifier service_tier moderation personality"
    ).split()
)
UNIMPLEMENTED = {"conversation": (), "prompt": (), "max_tool_calls": (), "context_management": ()}


@dataclass(frozen=True)
class ResponsesRequest:
    model: str | None
    input_items: tuple[dict, ...]  # item resources, ids assigned
    instructions: str | None
    tools: ToolSet
    parallel_tool_calls: bool
    text: dict  # as the response reports it
    response_format: dict | None  # the chat response_format that text.format asks for
    max_output_tokens: int | None
    temperature: float | None
    top_p: float | None
    top_logprobs: int | None
    logprobs: bool  # include has message.output_text.logprobs
    truncation: str  # "disabled" | "auto"
    metadata: dict
    user: str | None
    reasoning: dict | None
    stream: bool
    store: bool
    background: bool
    previous_response_id: str | None
    prompt_cache_key: str | None
    safety_identifier: str | None
    sampling: dict  # the chat endpoint's sampling fields, as sent
    ignored_fields: tuple[str, ...] = ()


def parse_responses_request(body: dict) -> ResponsesRequest:
    request_fields.reject_unimplemented(body, UNIMPLEMENTED)
    include = fields.array(body.get("include"), "include") or []
    for i, value in enumerate(include):
        fields.string(value, f"include[{i}]")
    top_logprobs = fields.integer(body.get("top_logprobs"), "top_logprobs", 0, MAX_TOP_LOGPROBS)
    text, response_format = parse_text(body.get("text"))
    request = ResponsesRequest(
        model=fields.string(body.get("model"), "model"),
        input_items=tuple(parse_input(body.get("input"))),
        instructions=fields.string(body.get("instructions"), "instructions"),
        tools=parse_tools(body.get("tools"), body.get("tool_choice")),
        parallel_tool_calls=_flag(body, "parallel_tool_calls", True),
        text=text,
        response_format=response_format,
        max_output_tokens=fields.integer(body.get("max_output_tokens"), "max_output_tokens", MIN_MAX_OUTPUT_TOKENS,
                                         MAX_MAX_OUTPUT_TOKENS),
        temperature=fields.number(body.get("temperature"), "temperature", 0.0, 2.0),
        top_p=fields.number(body.get("top_p"), "top_p", 0.0, 1.0, exclusive_minimum=True),
        top_logprobs=top_logprobs,
        logprobs=LOGPROBS_INCLUDE in include,
        truncation=fields.choice(body.get("truncation"), "truncation", ("auto", "disabled")) or "disabled",
        metadata=_metadata(body.get("metadata")),
        user=fields.string(body.get("user"), "user"),
        reasoning=_reasoning(body.get("reasoning")),
        stream=_flag(body, "stream", False),
        store=_flag(body, "store", True),
        background=_flag(body, "background", False),
        previous_response_id=fields.string(body.get("previous_response_id"), "previous_response_id"),
        prompt_cache_key=fields.string(body.get("prompt_cache_key"), "prompt_cache_key"),
        safety_identifier=fields.string(body.get("safety_identifier"), "safety_identifier"),
        sampling={key: body[key] for key in SAMPLING_PASSTHROUGH if body.get(key) is not None},
        ignored_fields=request_fields.unknown_fields(body, ACCEPTED_FIELDS | SAMPLING_PASSTHROUGH | set(UNIMPLEMENTED)),
    )
    if request.background and not request.store:
        raise errors.invalid_parameter_combination("Background responses must be stored: 'store' cannot be false "
                                                   "when 'background' is true.", "background")
    return request


def _flag(body: dict, key: str, default: bool) -> bool:
    value = fields.boolean(body.get(key), key)
    return default if value is None else value


def _metadata(value: object) -> dict:
    metadata = fields.obj(value, "metadata") or {}
    if len(metadata) > MAX_METADATA_PAIRS:
        raise errors.invalid_value("metadata", f"Invalid 'metadata': at most {MAX_METADATA_PAIRS} key-value pairs.")
    for key, item in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise errors.invalid_value("metadata", f"Invalid 'metadata': keys are at most {MAX_METADATA_KEY} "
                                                   "characters long.")
        if fields.string(item, f"metadata.{key}") is None or len(item) > MAX_METADATA_VALUE:
            raise errors.invalid_value(f"metadata.{key}", f"Invalid 'metadata.{key}': values are strings of at most "
                                                          f"{MAX_METADATA_VALUE} characters.")
    return metadata


def _reasoning(value: object) -> dict | None:
    """Accepted for clients that always send it; this model does not reason, so only echoed."""
    reasoning = fields.obj(value, "reasoning")
    if reasoning is None:
        return None
    return {"effort": fields.string(reasoning.get("effort"), "reasoning.effort"),
            "summary": fields.string(reasoning.get("summary"), "reasoning.summary")}
