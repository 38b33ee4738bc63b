"""The one conversion from any API surface's request to the engine's SamplingParams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from compat import GenerationRequest, OutputConstraint
from jax_engine import SamplingParams, StructuredOutputParams

# generation_config.json fields that fill in what the client did not send (as vLLM does).
DEFAULTABLE_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


@dataclass(frozen=True)
class ModelDefaults:
    """What fills the fields a request leaves unset."""

    sampling: Mapping[str, float | int]  # the checkpoint's generation_config.json
    max_model_len: int  # an unset max_tokens is what the context leaves after the prompt

    @classmethod
    def of(cls, generation_defaults: Mapping[str, float | int], max_model_len: int) -> ModelDefaults:
        return cls({k: v for k, v in generation_defaults.items() if k in DEFAULTABLE_FIELDS}, max_model_len)


def to_sampling_params(request: GenerationRequest, model_defaults: ModelDefaults,
                       num_prompt_tokens: int) -> SamplingParams:
    """The client's fields, else the model's defaults, else the engine's (which are OpenAI's); max_tokens, if
    unset, runs to the end of the context. Whether it all fits is the engine's call, at admission."""
    fields = {**model_defaults.sampling, **request.sampling.sent()}
    if fields.get("max_tokens") is None:
        fields["max_tokens"] = max(model_defaults.max_model_len - num_prompt_tokens, 1)
    return SamplingParams(**fields, structured_output=_structured_output(request.output_constraint()))


def _structured_output(constraint: OutputConstraint | None) -> StructuredOutputParams | None:
    if constraint is None:
        return None
    if constraint.grammar is not None:
        return StructuredOutputParams(grammar=constraint.grammar)
    if constraint.json_object:
        return StructuredOutputParams(json_object=True)
    return StructuredOutputParams(json=constraint.json_schema if constraint.json_schema is not None else {})
