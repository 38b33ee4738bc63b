"""/v1/completions: request parsing, its errors, and responses checked against OpenAI's schema and SDK."""

import pytest
from openai.types import Completion

from compat.completion import (
    CompletionChoiceData,
    completion_chunk,
    completion_response,
    completion_usage_chunk,
    parse_completion_request,
)
from compat.errors import OpenAIError
from compat.logprobs import TokenLogprob, TopLogprob
from compat.usage import usage
from tests.openai_schema import validate


def request(**fields):
    return parse_completion_request({"model": "smollm2", "prompt": "Hello", **fields})


def error_of(body) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        parse_completion_request(body)
    error = caught.value
    validate(error.to_dict(), "ErrorResponse", strict=True)
    return error


class TestPrompt:
    def test_a_string_is_one_prompt(self):
        assert request(prompt="Once upon").prompts == ["Once upon"]

    def test_a_list_of_strings_is_a_batch(self):
        assert request(prompt=["a", "b"]).prompts == ["a", "b"]

    def test_a_list_of_token_ids_is_one_prompt(self):
        assert request(prompt=[1, 2, 3]).prompts == [[1, 2, 3]]

    def test_a_list_of_token_id_lists_is_a_batch(self):
        assert request(prompt=[[1, 2], [3]]).prompts == [[1, 2], [3]]

    @pytest.mark.parametrize(
        "prompt, param, code",
        [
            ("", "prompt", "invalid_value"),
            ([], "prompt", "empty_array"),
            (["ok", ""], "prompt[1]", "invalid_value"),
            ([[1], []], "prompt[1]", "empty_array"),
            ([1, "a"], "prompt", "invalid_type"),
            ([1, True], "prompt", "invalid_type"),
            ([[1], [2, "x"]], "prompt[1][1]", "invalid_type"),
            ([[1], [2, -3]], "prompt[1][1]", "integer_below_min_value"),
            ([1, -3], "prompt[1]", "integer_below_min_value"),
            (42, "prompt", "invalid_type"),
            ({"text": "hi"}, "prompt", "invalid_type"),
        ],
    )
    def test_bad_prompts_are_400_naming_the_position(self, prompt, param, code):
        error = error_of({"model": "m", "prompt": prompt})
        assert (error.status, error.type, error.param, error.code) == (
            400,
            "invalid_request_error",
            param,
            code,
        )

    def test_missing_prompt_is_a_missing_parameter(self):
        error = error_of({"model": "m"})
        assert (error.param, error.code) == ("prompt", "missing_required_parameter")


class TestFields:
    def test_defaults(self):
        parsed = request()
        assert parsed.model == "smollm2" and not parsed.stream and not parsed.echo and parsed.user is None
        assert parsed.sampling.max_tokens == 16  # the endpoint's default, unlike chat's
        assert parsed.sampling.logprobs is None and parsed.sampling.prompt_logprobs is None
        assert parsed.n == 1 and parsed.ignored_fields == ()

    def test_model_may_be_left_out(self):
        assert parse_completion_request({"prompt": "x"}).model is None

    def test_model_must_be_a_string(self):
        error = error_of({"model": 3, "prompt": "x"})
        assert (error.param, error.code) == ("model", "invalid_type")

    def test_max_tokens_reaches_the_sampling_params(self):
        assert request(max_tokens=100).sampling.max_tokens == 100

    def test_max_tokens_zero_is_allowed_as_openai_allows_it_for_scoring_with_echo(self):
        assert request(max_tokens=0, echo=True, logprobs=0).sampling.max_tokens == 0

    def test_negative_max_tokens_is_refused(self):
        error = error_of({"prompt": "x", "max_tokens": -1})
        assert (error.param, error.code) == ("max_tokens", "integer_below_min_value")

    def test_logprobs_is_the_number_of_alternatives(self):
        assert request(logprobs=3).sampling.logprobs == 3

    @pytest.mark.parametrize(
        "logprobs, code",
        [(6, "integer_above_max_value"), (-1, "integer_below_min_value"), (True, "invalid_type")],
    )
    def test_logprobs_out_of_range(self, logprobs, code):
        error = error_of({"prompt": "x", "logprobs": logprobs})
        assert (error.status, error.param, error.code) == (400, "logprobs", code)

    def test_echo_with_logprobs_asks_the_engine_for_prompt_logprobs(self):
        parsed = request(echo=True, logprobs=2)
        assert parsed.echo and parsed.sampling.prompt_logprobs == 2

    def test_logprobs_without_echo_needs_no_prompt_logprobs(self):
        assert request(logprobs=2).sampling.prompt_logprobs is None

    def test_best_of_equal_to_n_is_accepted(self):
        assert request(best_of=2, n=2).n == 2

    def test_best_of_other_than_n_is_refused(self):
        error = error_of({"prompt": "x", "best_of": 3, "n": 1})
        assert (error.status, error.param, error.code) == (400, "best_of", "unsupported_value")

    def test_suffix_is_not_supported(self):
        error = error_of({"prompt": "x", "suffix": "end"})
        assert (error.status, error.param, error.code) == (400, "suffix", "unsupported_parameter")
        assert "not supported" in error.message

    def test_empty_or_null_suffix_is_harmless(self):
        assert request(suffix=None).prompts == ["Hello"]
        assert request(suffix="").prompts == ["Hello"]

    def test_sampling_errors_surface_from_this_endpoint(self):
        error = error_of({"prompt": "x", "temperature": "hot"})
        assert (error.param, error.code) == ("temperature", "invalid_type")

    def test_user_is_kept(self):
        assert request(user="u-1").user == "u-1"


class TestStreamOptions:
    def test_include_usage(self):
        parsed = request(stream=True, stream_options={"include_usage": True})
        assert parsed.stream and parsed.include_usage and not parsed.continuous_usage_stats

    def test_continuous_usage_stats_vllm_extension(self):
        parsed = request(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True})
        assert parsed.continuous_usage_stats

    def test_continuous_usage_stats_needs_include_usage(self):
        parsed = request(stream=True, stream_options={"continuous_usage_stats": True})
        assert not parsed.include_usage and not parsed.continuous_usage_stats

    def test_stream_options_without_stream_is_refused(self):
        error = error_of({"prompt": "x", "stream_options": {"include_usage": True}})
        assert (error.status, error.param) == (400, "stream_options")

    def test_null_stream_options_without_stream_is_fine(self):
        assert not request(stream_options=None).include_usage

    def test_include_usage_must_be_a_boolean(self):
        error = error_of({"prompt": "x", "stream": True, "stream_options": {"include_usage": "yes"}})
        assert (error.param, error.code) == ("stream_options.include_usage", "invalid_type")


class TestFieldPolicy:
    def test_unknown_fields_are_ignored_and_reported(self):
        assert request(foo=1, bar=None).ignored_fields == ("foo", "bar")

    def test_vllm_sampling_extensions_are_known(self):
        parsed = request(
            top_k=5,
            min_p=0.1,
            repetition_penalty=1.2,
            min_tokens=1,
            ignore_eos=True,
            stop_token_ids=[3],
            skip_special_tokens=False,
            priority=2,
        )
        assert parsed.ignored_fields == ()
        assert parsed.sampling.top_k == 5 and parsed.sampling.priority == 2

    @pytest.mark.parametrize(
        "field, value",
        [
            ("use_beam_search", True),
            ("guided_json", {"type": "object"}),
            ("length_penalty", 0.5),
            ("include_stop_str_in_output", True),
            ("prompt_embeds", "AAAA"),
            ("response_format", {"type": "json_object"}),
        ],
    )
    def test_unimplemented_vllm_fields_that_change_the_output_are_refused(self, field, value):
        error = error_of({"prompt": "x", field: value})
        assert (error.status, error.param, error.code) == (400, field, "unsupported_parameter")

    @pytest.mark.parametrize(
        "field, value",
        [
            ("use_beam_search", False),
            ("length_penalty", 1.0),
            ("include_stop_str_in_output", False),
            ("response_format", {"type": "text"}),
            ("guided_json", None),
        ],
    )
    def test_unimplemented_fields_at_their_off_value_are_accepted(self, field, value):
        assert request(**{field: value}).ignored_fields == ()

    def test_body_must_be_an_object(self):
        error = error_of(["prompt"])
        assert error.status == 400


def logprob_positions():
    return [
        TokenLogprob("Hello", None),  # first echoed prompt token: nothing to score it against
        TokenLogprob(",", -1.5, [TopLogprob(",", -1.5), TopLogprob("!", -2.0)]),
        TokenLogprob(" world", -0.25, [TopLogprob(" world", -0.25), TopLogprob(" there", -1.75)]),
    ]


class TestResponse:
    def test_response_matches_openai_schema_and_sdk(self):
        choices = [CompletionChoiceData(0, " world", "length"), CompletionChoiceData(1, "!", "stop")]
        body = completion_response("cmpl-abc", "smollm2", 1700000000, choices, usage(5, 3))
        validate(body, "CreateCompletionResponse", strict=True)
        parsed = Completion.model_validate(body)
        assert parsed.object == "text_completion" and parsed.id == "cmpl-abc"
        assert [c.text for c in parsed.choices] == [" world", "!"]
        assert [c.finish_reason for c in parsed.choices] == ["length", "stop"]
        assert parsed.choices[0].logprobs is None
        assert parsed.usage.total_tokens == 8

    def test_echo_logprobs_in_legacy_format(self):
        choice = CompletionChoiceData(0, "Hello, world", "length", logprob_positions())
        body = completion_response("cmpl-1", "m", 1, [choice], usage(2, 1))
        validate(body, "CreateCompletionResponse", strict=True)
        logprobs = body["choices"][0]["logprobs"]
        assert logprobs == {
            "tokens": ["Hello", ",", " world"],
            "token_logprobs": [None, -1.5, -0.25],
            "top_logprobs": [None, {",": -1.5, "!": -2.0}, {" world": -0.25, " there": -1.75}],
            "text_offset": [0, 5, 6],
        }

    def test_system_fingerprint_only_when_given(self):
        choice = CompletionChoiceData(0, "x", "stop")
        assert "system_fingerprint" not in completion_response("c", "m", 1, [choice], usage(1, 1))
        body = completion_response("c", "m", 1, [choice], usage(1, 1), system_fingerprint="fp_1")
        assert body["system_fingerprint"] == "fp_1"
        validate(body, "CreateCompletionResponse", strict=True)


class TestChunks:
    def test_chunk_in_flight_has_null_finish_reason(self):
        chunk = completion_chunk("cmpl-1", "m", 1, CompletionChoiceData(0, "Hel", None))
        validate(chunk, "CreateCompletionStreamResponse", strict=True)
        assert chunk["object"] == "text_completion"
        assert chunk["choices"] == [{"index": 0, "text": "Hel", "logprobs": None, "finish_reason": None}]
        assert "usage" not in chunk

    def test_chunk_with_include_usage_carries_usage_null(self):
        chunk = completion_chunk("cmpl-1", "m", 1, CompletionChoiceData(0, "a", None), usage_null=True)
        assert "usage" in chunk and chunk["usage"] is None
        validate(chunk, "CreateCompletionStreamResponse", strict=True)

    def test_chunk_with_running_usage(self):
        chunk = completion_chunk("cmpl-1", "m", 1, CompletionChoiceData(0, "a", None), usage=usage(3, 1))
        assert chunk["usage"]["total_tokens"] == 4
        validate(chunk, "CreateCompletionStreamResponse", strict=True)

    def test_streamed_logprobs_continue_the_text_offset(self):
        positions = [TokenLogprob(" world", -0.25, [TopLogprob(" world", -0.25)])]
        chunk = completion_chunk("cmpl-1", "m", 1, CompletionChoiceData(0, " world", "stop", positions, 6))
        validate(chunk, "CreateCompletionStreamResponse", strict=True)
        assert chunk["choices"][0]["logprobs"]["text_offset"] == [6]

    def test_final_usage_chunk_has_no_choices(self):
        chunk = completion_usage_chunk("cmpl-1", "m", 1, usage(4, 6))
        validate(chunk, "CreateCompletionStreamResponse", strict=True)
        validate(chunk, "CreateCompletionResponse", strict=True)
        assert chunk["choices"] == [] and chunk["usage"] == {
            "prompt_tokens": 4,
            "completion_tokens": 6,
            "total_tokens": 10,
        }
