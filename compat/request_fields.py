"""Which top-level request fields each endpoint knows, and which it must refuse rather than ignore.

OpenAI's SDK and vLLM clients send fields this server does not implement. Those that only steer billing,
storage or latency (`store`, `metadata`, `service_tier`, `prediction`, ...) are accepted and dropped. Those
that would change the output (vLLM's `guided_json`, `use_beam_search`, ...) are refused with a 400 unless they
hold their do-nothing value: silently ignoring them would return an answer to a different question.
Fields nobody knows are ignored (as vLLM does) and listed on the request so the gateway can log them.
"""

from __future__ import annotations

from compat import errors

SAMPLING_EXTENSIONS = frozenset(
    (
        "top_k min_p repetition_penalty min_tokens ignore_eos stop_token_ids skip_special_tokens priority "
        "prompt_logprobs"
    ).split()
)

# vLLM request fields this server does not implement, with the values that mean "off".
UNIMPLEMENTED_VLLM: dict[str, tuple] = {
    "use_beam_search": (False,),
    "length_penalty": (1, 1.0),
    "include_stop_str_in_output": (False,),
    "spaces_between_special_tokens": (True,),
    "truncate_prompt_tokens": (),
    "prompt_embeds": (),
    "allowed_token_ids": (),
    "bad_words": ((), []),
    "logits_processors": (),
    "guided_json": (),
    "guided_regex": (),
    "guided_choice": (),
    "guided_grammar": (),
    "guided_decoding_backend": (),
    "guided_whitespace_pattern": (),
    "structured_outputs": (),
    "return_tokens_as_token_ids": (False,),
    "return_token_ids": (False,),
    "chat_template": (),
    "documents": (),
    "vllm_xargs": (),
}


def unknown_fields(body: dict, known: set[str] | frozenset[str]) -> tuple[str, ...]:
    return tuple(key for key in body if key not in known)


def reject_unimplemented(body: dict, unimplemented: dict[str, tuple]) -> None:
    for key, off_values in unimplemented.items():
        value = body.get(key)
        if value is not None and not any(value == off and type(value) is type(off) for off in off_values):
            raise errors.unsupported_parameter(key)
