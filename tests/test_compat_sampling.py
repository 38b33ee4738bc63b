"""Sampling fields shared by both endpoints: defaults, engine names, and OpenAI's errors for bad values."""

import math

import pytest

from compat import parse_chat_request, parse_completion_request
from compat.errors import OpenAIError
from compat.sampling import parse_sampling
from gateway.http_errors import from_refusal
from gateway.sampling import ModelDefaults, to_sampling_params
from jax_engine import EngineLimits, RequestValidationError
from jax_engine.validation import validate_request
from tests.openai_schema import validate

ENGINE_KEYS = {
    "n",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logit_bias",
    "seed",
    "max_tokens",
    "min_tokens",
    "stop",
    "stop_token_ids",
    "ignore_eos",
    "logprobs",
    "prompt_logprobs",
    "skip_special_tokens",
    "priority",
}


def parse(body, max_tokens=None, logprobs=None):
    return parse_sampling(body, max_tokens, logprobs)


def error_of(body) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        parse(body)
    error = caught.value
    validate(error.to_dict(), "ErrorResponse", strict=True)
    return error


def test_defaults_are_openai_and_vllm_defaults():
    chat = parse_chat_request({"messages": [{"role": "user", "content": "Hi"}]})
    params = to_sampling_params(chat, ModelDefaults({}, 2048), 10)
    assert {key: getattr(params, key) for key in ENGINE_KEYS} == {
        "n": 1,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "logit_bias": None,
        "seed": None,
        "max_tokens": 2038,  # until the context ends
        "min_tokens": 0,
        "stop": [],
        "stop_token_ids": [],
        "ignore_eos": False,
        "logprobs": None,
        "prompt_logprobs": None,
        "skip_special_tokens": True,
        "priority": 0,
    }


def test_null_means_default():
    body = {key: None for key in ENGINE_KEYS}
    assert parse(body) == parse({})


def test_every_field_reaches_the_engine_under_its_vllm_name():
    body = {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "repetition_penalty": 1.1,
        "logit_bias": {"50256": -100, "13": 2.5},
        "seed": 7,
        "min_tokens": 2,
        "stop": ["\n\n", "END"],
        "stop_token_ids": [2, 7],
        "ignore_eos": True,
        "prompt_logprobs": 3,
        "skip_special_tokens": False,
        "priority": -1,
    }
    params = parse(body, max_tokens=64, logprobs=2)
    assert set(params.sent()) == ENGINE_KEYS
    assert params.n == 3 and params.temperature == 0.7 and params.top_p == 0.9
    assert params.top_k == 40 and params.min_p == 0.05
    assert params.presence_penalty == 0.5 and params.frequency_penalty == -0.5
    assert params.repetition_penalty == 1.1
    assert params.logit_bias == {50256: -100.0, 13: 2.5}
    assert params.seed == 7 and params.max_tokens == 64 and params.min_tokens == 2
    assert params.stop == ["\n\n", "END"] and params.stop_token_ids == [2, 7]
    assert params.ignore_eos is True and params.skip_special_tokens is False
    assert params.logprobs == 2 and params.prompt_logprobs == 3 and params.priority == -1


def test_a_single_stop_string_becomes_a_list():
    assert parse({"stop": "###"}).stop == ["###"]


@pytest.mark.parametrize("top_k", [0, -1])
def test_top_k_off_values_map_to_zero(top_k):
    assert parse({"top_k": top_k}).top_k == 0


def test_integers_are_accepted_where_decimals_are_expected():
    params = parse({"temperature": 0, "top_p": 1, "presence_penalty": 2})
    assert params.temperature == 0.0 and isinstance(params.temperature, float)
    assert params.top_p == 1.0 and params.presence_penalty == 2.0


def test_integral_decimals_are_accepted_where_integers_are_expected():
    params = parse({"n": 2.0, "seed": 5.0})
    assert params.n == 2 and isinstance(params.n, int)
    assert params.seed == 5 and isinstance(params.seed, int)


@pytest.mark.parametrize(
    "body, param, code",
    [
        ({"temperature": "hot"}, "temperature", "invalid_type"),
        ({"temperature": "0.7"}, "temperature", "invalid_type"),
        ({"temperature": True}, "temperature", "invalid_type"),
        ({"temperature": [1]}, "temperature", "invalid_type"),
        ({"temperature": math.nan}, "temperature", "invalid_value"),
        ({"temperature": math.inf}, "temperature", "invalid_value"),
        ({"temperature": -0.1}, "temperature", "decimal_below_min_value"),
        ({"temperature": 2.01}, "temperature", "decimal_above_max_value"),
        ({"top_p": 0}, "top_p", "decimal_below_min_value"),
        ({"top_p": 1.5}, "top_p", "decimal_above_max_value"),
        ({"top_k": -2}, "top_k", "invalid_value"),
        ({"top_k": 1.5}, "top_k", "invalid_type"),
        ({"min_p": 1.1}, "min_p", "decimal_above_max_value"),
        ({"presence_penalty": -2.5}, "presence_penalty", "decimal_below_min_value"),
        ({"frequency_penalty": 3}, "frequency_penalty", "decimal_above_max_value"),
        ({"frequency_penalty": False}, "frequency_penalty", "invalid_type"),
        ({"repetition_penalty": 0}, "repetition_penalty", "decimal_below_min_value"),
        ({"n": 0}, "n", "integer_below_min_value"),
        ({"n": 129}, "n", "integer_above_max_value"),
        ({"n": 1.5}, "n", "invalid_type"),
        ({"n": True}, "n", "invalid_type"),
        ({"n": "2"}, "n", "invalid_type"),
        ({"seed": 2**63}, "seed", "integer_above_max_value"),
        ({"seed": "42"}, "seed", "invalid_type"),
        ({"min_tokens": -1}, "min_tokens", "integer_below_min_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({"stop": 5}, "stop", "invalid_type"),
        ({"stop": ["ok", 5]}, "stop[1]", "invalid_type"),
        ({"stop": ["ok", None]}, "stop[1]", "invalid_type"),
        ({"stop": ""}, "stop", "invalid_value"),
        ({"stop": ["a", ""]}, "stop[1]", "invalid_value"),
        ({"stop_token_ids": 2}, "stop_token_ids", "invalid_type"),
        ({"stop_token_ids": [2, -1]}, "stop_token_ids[1]", "integer_below_min_value"),
        ({"stop_token_ids": [True]}, "stop_token_ids[0]", "invalid_type"),
        ({"logit_bias": [1, 2]}, "logit_bias", "invalid_type"),
        ({"logit_bias": {"hello": 1}}, "logit_bias", "invalid_value"),
        ({"logit_bias": {"-5": 1}}, "logit_bias", "invalid_value"),
        ({"logit_bias": {"5": 101}}, "logit_bias.5", "decimal_above_max_value"),
        ({"logit_bias": {"5": -100.5}}, "logit_bias.5", "decimal_below_min_value"),
        ({"logit_bias": {"5": "1"}}, "logit_bias.5", "invalid_type"),
        ({"ignore_eos": "yes"}, "ignore_eos", "invalid_type"),
        ({"skip_special_tokens": 1}, "skip_special_tokens", "invalid_type"),
        ({"prompt_logprobs": 21}, "prompt_logprobs", "integer_above_max_value"),
        ({"prompt_logprobs": -1}, "prompt_logprobs", "integer_below_min_value"),
        ({"priority": 0.5}, "priority", "invalid_type"),
    ],
)
def test_bad_values_are_400_invalid_request_naming_the_field(body, param, code):
    error = error_of(body)
    assert (error.status, error.type, error.param, error.code) == (400, "invalid_request_error", param, code)


def test_type_error_message_says_what_was_expected_and_what_came():
    assert error_of({"temperature": "hot"}).message == (
        "Invalid type for 'temperature': expected a decimal, but got a string instead."
    )


def test_range_error_message_states_the_bound_and_the_value():
    message = error_of({"temperature": 3}).message
    assert "<= 2.0" in message and "got 3" in message


def test_boundary_values_are_accepted():
    params = parse({"temperature": 2, "top_p": 1, "n": 128, "presence_penalty": -2, "logit_bias": {"0": 100}})
    assert params.temperature == 2.0 and params.n == 128 and params.logit_bias == {0: 100.0}
    assert len(parse({"stop": ["a", "b", "c", "d"]}).stop) == 4


def test_min_tokens_above_max_tokens_is_a_parameter_combination_error():
    with pytest.raises(OpenAIError) as caught:
        parse({"min_tokens": 10}, max_tokens=5)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, "min_tokens", "invalid_parameter_combination")


def test_min_tokens_equal_to_max_tokens_is_fine():
    assert parse({"min_tokens": 5}, max_tokens=5).min_tokens == 5


def admitted_max_tokens(num_prompt_tokens: int, max_tokens: int | None, max_model_len: int,
                        param: str = "messages") -> int:
    """max_tokens as the conversion resolves it and admission accepts it; a refusal as the client gets it."""
    body = {"max_tokens": max_tokens}
    if param == "messages":
        request = parse_chat_request({"messages": [{"role": "user", "content": "Hi"}], **body})
    else:
        request = parse_completion_request({"prompt": "Hi", **body})
    params = to_sampling_params(request, ModelDefaults({}, max_model_len), num_prompt_tokens)
    try:
        validate_request([1] * num_prompt_tokens, params, EngineLimits(max_model_len, 100, 10**9), None)
    except RequestValidationError as e:
        raise from_refusal(e, request) from e
    return params.max_tokens


class TestResolveMaxTokens:
    def test_unset_max_tokens_fills_the_rest_of_the_context(self):
        assert admitted_max_tokens(100, None, 2048) == 1948

    def test_requested_max_tokens_that_fits_is_kept(self):
        assert admitted_max_tokens(100, 1948, 2048) == 1948

    def test_prompt_plus_completion_over_the_context_says_both_numbers(self):
        with pytest.raises(OpenAIError) as caught:
            admitted_max_tokens(100, 2000, 2048, "messages")
        error = caught.value
        assert (error.status, error.param, error.code) == (400, "messages", "context_length_exceeded")
        assert "maximum context length is 2048 tokens" in error.message
        assert "2100 tokens (100 in the messages, 2000 in the completion)" in error.message

    def test_scoring_a_full_context_prompt_with_max_tokens_zero_fits(self):
        completion = parse_completion_request({"prompt": "Hi", "max_tokens": 0, "echo": True})
        assert to_sampling_params(completion, ModelDefaults({}, 2048), 2048).max_tokens == 0

    def test_prompt_alone_filling_the_context_is_refused(self):
        with pytest.raises(OpenAIError) as caught:
            admitted_max_tokens(2048, None, 2048, "prompt")
        error = caught.value
        assert (error.param, error.code) == ("prompt", "context_length_exceeded")
        assert "your prompt resulted in 2048 tokens" in error.message
