"""/v1/completions: the request, parsed and validated, and the response and stream chunk builders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from compat import errors, fields, request_fields
from compat.envelope import chunk_body, response_body
from compat.logprobs import TokenLogprob, completion_logprobs
from compat.output_constraint import OutputConstraint
from compat.sampling import SamplingRequest, parse_sampling
from compat.stream_options import parse_stream_options

OBJECT = "text_completion"
DEFAULT_MAX_TOKENS = 16  # OpenAI's and vLLM's default for this endpoint
MAX_LOGPROBS = 5

KNOWN_FIELDS = request_fields.SAMPLING_EXTENSIONS.union(
    (
        "model prompt best_of echo frequency_penalty logit_bias logprobs max_tokens n presence_penalty "
        "seed stop stream stream_options suffix temperature top_p user"
    ).split()
)
UNIMPLEMENTED = {**request_fields.UNIMPLEMENTED_VLLM, "response_format": ({"type": "text"},)}


@dataclass(frozen=True)
class CompletionRequest:
    model: str | None  # None: the client left it out; the gateway serves its one model
    prompts: list[str | list[int]]  # each a text or token ids; choice index = prompt_index * n + sample_index
    sampling: SamplingRequest  # as sent: unset fields are None
    stream: bool = False
    include_usage: bool = False
    continuous_usage_stats: bool = False
    echo: bool = False
    user: str | None = None
    ignored_fields: tuple[str, ...] = ()  # top-level fields this server does not know; worth a log line

    @property
    def n(self) -> int:
        return self.sampling.n or 1

    @property
    def echo_only(self) -> bool:
        """max_tokens 0 (with echo): the prompt is scored, nothing is generated."""
        return self.sampling.max_tokens == 0

    def output_constraint(self) -> OutputConstraint | None:
        return None

    def param_for(self, field: str, prompt_index: int = 0) -> str:
        """The request field an engine refusal of `field` (SamplingParams' name, or "prompt") is about."""
        if field == "prompt":
            return "prompt" if len(self.prompts) == 1 else f"prompt[{prompt_index}]"
        return field


@dataclass(frozen=True)
class CompletionChoiceData:
    index: int
    text: str
    finish_reason: str | None  # "stop" | "length"; None while a stream is under way
    logprobs: Sequence[TokenLogprob] | None = None  # echoed prompt positions first, when echo is on
    text_offset: int = 0  # where logprobs[0].token starts in the choice's text (streams: text sent so far)


def parse_completion_request(body: dict) -> CompletionRequest:
    if not isinstance(body, dict):
        raise errors.invalid_type("body", "an object", body)
    request_fields.reject_unimplemented(body, UNIMPLEMENTED)
    stream = parse_stream_options(body)
    echo = bool(fields.boolean(body.get("echo"), "echo"))
    logprobs = fields.integer(body.get("logprobs"), "logprobs", 0, MAX_LOGPROBS)
    max_tokens = fields.integer(body.get("max_tokens"), "max_tokens", 0)
    # Unlike chat's, this endpoint's max_tokens has a default of its own (OpenAI's and vLLM's): no model
    # default could replace it, so it is set here.
    sampling = parse_sampling(body, DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens, logprobs,
                              prompt_logprobs=logprobs if echo else None)
    _check_best_of(body.get("best_of"), sampling.n or 1)
    _check_suffix(body.get("suffix"))
    return CompletionRequest(
        model=fields.string(body.get("model"), "model"),
        prompts=parse_prompts(body.get("prompt")),
        sampling=sampling,
        stream=stream.stream,
        include_usage=stream.include_usage,
        continuous_usage_stats=stream.continuous_usage_stats,
        echo=echo,
        user=fields.string(body.get("user"), "user"),
        ignored_fields=request_fields.unknown_fields(body, KNOWN_FIELDS | set(UNIMPLEMENTED)),
    )


def parse_prompts(value: object) -> list[str | list[int]]:
    """A string, an array of strings, an array of token ids or an array of token-id arrays."""
    if value is None:
        raise errors.missing_parameter("prompt")
    if isinstance(value, str):
        return [_text_prompt(value, "prompt")]
    value = fields.array(value, "prompt", min_length=1) or []
    if all(isinstance(item, str) for item in value):
        return [_text_prompt(item, f"prompt[{i}]") for i, item in enumerate(value)]
    if all(isinstance(item, list) for item in value):
        return [fields.token_ids(item, f"prompt[{i}]") for i, item in enumerate(value)]
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return [fields.token_ids(value, "prompt")]
    raise errors.invalid_type(
        "prompt", "a string, an array of strings, an array of token ids or an array of token-id arrays", value
    )


def _text_prompt(text: str, param: str) -> str:
    if not text:
        raise errors.invalid_value(param, f"Invalid '{param}': the prompt cannot be empty.")
    return text


def _check_best_of(value: object, n: int) -> None:
    best_of = fields.integer(value, "best_of", 1)
    if best_of is not None and best_of != n:
        raise errors.unsupported_value(
            "best_of", f"'best_of' must equal 'n' ({n}) on this server, but got {best_of}."
        )


def _check_suffix(value: object) -> None:
    if fields.string(value, "suffix"):
        raise errors.unsupported_parameter("suffix")


def completion_response(
    request_id: str,
    model: str,
    created: int,
    choices: Sequence[CompletionChoiceData],
    usage: dict,
    system_fingerprint: str | None = None,
) -> dict:
    return response_body(
        OBJECT, request_id, model, created, [_choice(c) for c in choices], usage, system_fingerprint
    )


def completion_chunk(
    request_id: str,
    model: str,
    created: int,
    choice: CompletionChoiceData,
    usage_null: bool = False,
    usage: dict | None = None,
    system_fingerprint: str | None = None,
) -> dict:
    """One stream event for one choice. `usage_null`: the client asked for include_usage, so the field is
    present and null until the usage chunk; `usage`: running usage (continuous_usage_stats)."""
    return chunk_body(OBJECT, request_id, model, created, [_choice(choice)], usage, usage_null, system_fingerprint)


def completion_usage_chunk(
    request_id: str, model: str, created: int, usage: dict, system_fingerprint: str | None = None
) -> dict:
    """The last event of a stream with include_usage: usage for the whole request and no choices."""
    return chunk_body(OBJECT, request_id, model, created, [], usage, True, system_fingerprint)


def _choice(choice: CompletionChoiceData) -> dict:
    logprobs = None if choice.logprobs is None else completion_logprobs(choice.logprobs, choice.text_offset)
    return {
        "index": choice.index,
        "text": choice.text,
        "logprobs": logprobs,
        "finish_reason": choice.finish_reason,
    }
