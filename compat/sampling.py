"""Sampling fields shared by /v1/completions and /v1/chat/completions, validated as the client sent them.

The fields carry vLLM's SamplingParams names. A field the client left out (or sent as null) stays None: the
model's generation_config.json, then the engine, supply its default when the request becomes SamplingParams
(gateway/sampling.py). The endpoint resolves `max_tokens` and `logprobs` (their wire forms differ) and passes
them in.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from compat import errors
from compat import fields as read

MAX_N = 128
MAX_STOP_SEQUENCES = 4
MAX_PROMPT_LOGPROBS = 20
LOGIT_BIAS_LIMIT = 100.0
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1  # the engine's per-row top_k is an int32
MAX_TOKEN_ID_DIGITS = 18  # a longer logit_bias key is no model's token id (and int() stops at 4300 digits)


@dataclass(frozen=True)
class SamplingRequest:
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # 0: off (the client's -1 or 0)
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logit_bias: dict[int, float] | None = None
    seed: int | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None
    stop: list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool | None = None
    logprobs: int | None = None  # how many top alternatives per sampled token
    prompt_logprobs: int | None = None
    skip_special_tokens: bool | None = None
    priority: int | None = None

    def sent(self) -> dict[str, Any]:
        """The fields the client set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def parse_sampling(body: dict, max_tokens: int | None, logprobs: int | None,
                   prompt_logprobs: int | None = None) -> SamplingRequest:
    """`prompt_logprobs`: what the endpoint implies when the client sends none (completions' echo)."""
    return SamplingRequest(
        n=read.integer(body.get("n"), "n", 1, MAX_N),
        temperature=read.number(body.get("temperature"), "temperature", 0.0, 2.0),
        top_p=read.number(body.get("top_p"), "top_p", 0.0, 1.0, exclusive_minimum=True),
        top_k=_top_k(body.get("top_k")),
        min_p=read.number(body.get("min_p"), "min_p", 0.0, 1.0),
        presence_penalty=_penalty(body, "presence_penalty"),
        frequency_penalty=_penalty(body, "frequency_penalty"),
        repetition_penalty=read.number(body.get("repetition_penalty"), "repetition_penalty", 0.0,
                                       exclusive_minimum=True),
        logit_bias=_logit_bias(body.get("logit_bias")),
        seed=read.integer(body.get("seed"), "seed", INT64_MIN, INT64_MAX),
        max_tokens=max_tokens,
        min_tokens=_min_tokens(body.get("min_tokens"), max_tokens),
        stop=_stop(body.get("stop")),
        stop_token_ids=_stop_token_ids(body.get("stop_token_ids")),
        ignore_eos=read.boolean(body.get("ignore_eos"), "ignore_eos"),
        logprobs=logprobs,
        prompt_logprobs=_or(read.integer(body.get("prompt_logprobs"), "prompt_logprobs", 0, MAX_PROMPT_LOGPROBS),
                            prompt_logprobs),
        skip_special_tokens=read.boolean(body.get("skip_special_tokens"), "skip_special_tokens"),
        priority=read.integer(body.get("priority"), "priority", INT64_MIN, INT64_MAX),
    )


def _or(value, default):
    return default if value is None else value


def _penalty(body: dict, key: str) -> float | None:
    return read.number(body.get(key), key, -2.0, 2.0)


def _top_k(value: object) -> int | None:
    top_k = read.integer(value, "top_k", maximum=INT32_MAX)
    if top_k is None:
        return None
    if top_k in (0, -1):
        return 0
    if top_k < 0:
        message = f"Invalid 'top_k': expected -1 or 0 (no top-k) or a positive integer, but got {top_k}."
        raise errors.invalid_value("top_k", message)
    return top_k


def _min_tokens(value: object, max_tokens: int | None) -> int | None:
    min_tokens = read.integer(value, "min_tokens", 0)
    if min_tokens is not None and max_tokens is not None and min_tokens > max_tokens:
        raise errors.invalid_parameter_combination(
            f"'min_tokens' ({min_tokens}) must be less than or equal to the maximum number of tokens to "
            f"generate ({max_tokens}).",
            "min_tokens",
        )
    return min_tokens


def _stop(value: object) -> list[str] | None:
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list):
        raise errors.invalid_type("stop", "a string or an array of strings", value)
    read.array(stops, "stop", max_length=MAX_STOP_SEQUENCES)
    for i, stop in enumerate(stops):
        param = "stop" if isinstance(value, str) else f"stop[{i}]"
        read.string(stop, param)
        if stop is None:
            raise errors.invalid_type(param, "a string", stop)
        if stop == "":
            raise errors.invalid_value(param, f"Invalid '{param}': stop sequences cannot be empty strings.")
    return list(stops)


def _stop_token_ids(value: object) -> list[int] | None:
    ids = read.array(value, "stop_token_ids")
    if ids is None:
        return None
    for i, token_id in enumerate(ids):
        if token_id is None:
            raise errors.invalid_type(f"stop_token_ids[{i}]", "an integer", token_id)
        read.integer(token_id, f"stop_token_ids[{i}]", 0)
    return [int(t) for t in ids]


def _logit_bias(value: object) -> dict[int, float] | None:
    biases = read.obj(value, "logit_bias")
    if not biases:
        return None
    parsed = {}
    for key, bias in biases.items():
        token_id = _token_id_key(key)
        param = f"logit_bias.{key}"
        number = read.number(bias, param, -LOGIT_BIAS_LIMIT, LOGIT_BIAS_LIMIT)
        if number is None:
            raise errors.invalid_type(param, "a decimal", bias)
        parsed[token_id] = number
    return parsed


def _token_id_key(key: str) -> int:
    # JSON object keys are strings; OpenAI's own message for a key that is not a token id.
    if not (key.isascii() and key.isdigit()):
        raise errors.invalid_value(
            "logit_bias", f"Invalid key in 'logit_bias': {key}. Keys must be token ids."
        )
    digits = key.lstrip("0") or "0"
    if len(digits) > MAX_TOKEN_ID_DIGITS:
        raise errors.invalid_value(
            "logit_bias",
            f"Invalid key in 'logit_bias': a token id of {len(digits)} digits is outside every vocabulary.",
        )
    return int(digits)


def check_sequences_per_request(num_prompts: int, n: int, limit: int) -> None:
    """Each prompt times n is one sequence in the engine's queue: a small body must not queue thousands."""
    if num_prompts * n > limit:
        raise errors.invalid_request(
            f"This request asks for {num_prompts * n} sequences ({num_prompts} prompt(s) x n={n}); this server "
            f"allows at most {limit} per request. Lower 'n' or send fewer prompts per request.", "n",
            "too_many_sequences")
