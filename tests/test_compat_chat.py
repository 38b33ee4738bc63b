"""/v1/chat/completions: request parsing, its errors, and responses checked against the schema and SDK."""

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from compat.chat import (
    ChatChoiceData,
    chat_chunk,
    chat_response,
    chat_usage_chunk,
    content_delta,
    parse_chat_request,
    role_delta,
    tool_call_delta,
)
from compat.errors import OpenAIError
from compat.logprobs import TokenLogprob, TopLogprob
from compat.response_format import JsonSchemaFormat, ResponseFormat
from compat.tools import FunctionTool, NamedToolChoice, ToolCall
from compat.usage import usage
from tests.openai_schema import validate

USER = {"role": "user", "content": "Hi"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def request(messages=(USER,), **fields):
    return parse_chat_request({"model": "smollm2", "messages": list(messages), **fields})


def error_of(body, **switches) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        parse_chat_request(body, **switches)
    error = caught.value
    validate(error.to_dict(), "ErrorResponse", strict=True)
    return error


def message_error(*messages) -> OpenAIError:
    return error_of({"model": "m", "messages": list(messages)})


def assert_error(error, param, code, status=400):
    assert (error.status, error.type, error.param, error.code) == (
        status,
        "invalid_request_error",
        param,
        code,
    )


class TestMessages:
    def test_string_content_is_kept(self):
        assert request().messages == [{"role": "user", "content": "Hi"}]

    def test_text_parts_are_joined_with_newlines_as_vllm_does(self):
        parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
        assert request([{"role": "user", "content": parts}]).messages[0]["content"] == "one\ntwo"

    def test_every_role_is_accepted(self):
        messages = [
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": "You are kind."},
            USER,
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Hello"}, {"type": "refusal", "refusal": "no"}],
            },
            {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        ]
        parsed = request(messages).messages
        assert [m["role"] for m in parsed] == ["developer", "system", "user", "assistant", "tool"]
        assert parsed[3]["content"] == "Hello\nno"
        assert parsed[4] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}

    def test_name_is_kept(self):
        assert request([{"role": "user", "content": "x", "name": "ann"}]).messages[0]["name"] == "ann"

    def test_assistant_tool_call_without_content_is_template_ready(self):
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": '{"city": "Oslo"}'},
        }
        parsed = request([USER, {"role": "assistant", "content": None, "tool_calls": [call]}]).messages[1]
        assert parsed == {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"city": "Oslo"}}}
            ],
        }

    def test_tool_call_arguments_that_are_not_a_json_object_stay_text(self):
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}
        parsed = request([USER, {"role": "assistant", "tool_calls": [call]}]).messages[1]
        assert parsed["tool_calls"][0]["function"]["arguments"] == "not json"

    def test_unknown_message_keys_are_dropped(self):
        assert request([{"role": "user", "content": "x", "weird": 1}]).messages == [
            {"role": "user", "content": "x"}
        ]

    def test_missing_messages(self):
        assert_error(error_of({"model": "m"}), "messages", "missing_required_parameter")

    def test_empty_messages(self):
        assert_error(error_of({"model": "m", "messages": []}), "messages", "empty_array")

    def test_messages_must_be_an_array(self):
        assert_error(error_of({"model": "m", "messages": "hi"}), "messages", "invalid_type")

    def test_message_must_be_an_object(self):
        assert_error(message_error(USER, "hello"), "messages[1]", "invalid_type")

    def test_missing_role(self):
        assert_error(message_error({"content": "x"}), "messages[0].role", "missing_required_parameter")

    def test_unknown_role(self):
        error = message_error(USER, {"role": "robot", "content": "x"})
        assert_error(error, "messages[1].role", "invalid_value")
        assert "'robot'" in error.message and "'developer'" in error.message

    def test_function_role_is_not_supported(self):
        assert_error(
            message_error({"role": "function", "content": "x", "name": "f"}),
            "messages[0].role",
            "unsupported_value",
        )

    def test_user_content_is_required(self):
        assert_error(message_error({"role": "user"}), "messages[0].content", "missing_required_parameter")
        assert_error(
            message_error({"role": "user", "content": None}),
            "messages[0].content",
            "missing_required_parameter",
        )

    def test_content_of_the_wrong_type(self):
        assert_error(
            message_error(USER, {"role": "user", "content": 5}), "messages[1].content", "invalid_type"
        )

    def test_empty_content_part_list(self):
        assert_error(message_error({"role": "user", "content": []}), "messages[0].content", "empty_array")

    def test_image_parts_are_not_supported(self):
        parts = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "x"}}]
        error = message_error(USER, {"role": "user", "content": parts})
        assert_error(error, "messages[1].content[1].type", "unsupported_value")
        assert "not supported" in error.message

    def test_image_parts_outside_user_messages_are_invalid(self):
        parts = [{"type": "image_url", "image_url": {"url": "x"}}]
        assert_error(
            message_error({"role": "system", "content": parts}),
            "messages[0].content[0].type",
            "invalid_value",
        )

    def test_unknown_part_type(self):
        assert_error(
            message_error({"role": "user", "content": [{"type": "blob"}]}),
            "messages[0].content[0].type",
            "invalid_value",
        )

    def test_text_part_without_text(self):
        assert_error(
            message_error({"role": "user", "content": [{"type": "text"}]}),
            "messages[0].content[0].text",
            "missing_required_parameter",
        )

    def test_text_part_with_non_string_text(self):
        assert_error(
            message_error({"role": "user", "content": [{"type": "text", "text": 3}]}),
            "messages[0].content[0].text",
            "invalid_type",
        )

    def test_assistant_needs_content_or_tool_calls(self):
        assert_error(
            message_error(USER, {"role": "assistant", "content": None}),
            "messages[1].content",
            "missing_required_parameter",
        )

    def test_tool_message_needs_tool_call_id(self):
        assert_error(
            message_error(USER, {"role": "tool", "content": "42"}),
            "messages[1].tool_call_id",
            "missing_required_parameter",
        )

    def test_tool_call_needs_a_function_name(self):
        call = {"id": "c", "type": "function", "function": {"arguments": "{}"}}
        assert_error(
            message_error(USER, {"role": "assistant", "tool_calls": [call]}),
            "messages[1].tool_calls[0].function.name",
            "missing_required_parameter",
        )

    def test_name_must_be_a_string(self):
        assert_error(
            message_error({"role": "user", "content": "x", "name": 1}), "messages[0].name", "invalid_type"
        )


class TestSamplingFields:
    def test_defaults(self):
        parsed = request()
        assert parsed.sampling.max_tokens is None  # until the context ends
        assert parsed.sampling.logprobs is None and not parsed.logprobs and parsed.top_logprobs == 0
        assert parsed.n == 1 and parsed.seed is None and not parsed.stream and not parsed.include_usage
        assert parsed.add_generation_prompt and not parsed.continue_final_message and not parsed.echo
        assert parsed.chat_template_kwargs == {} and parsed.tools is None and parsed.tool_choice == "none"
        assert parsed.response_format is None and parsed.ignored_fields == ()

    def test_max_completion_tokens(self):
        assert request(max_completion_tokens=50).sampling.max_tokens == 50

    def test_max_tokens_deprecated_alias(self):
        assert request(max_tokens=40).sampling.max_tokens == 40

    def test_both_max_tokens_fields_are_an_invalid_combination(self):
        error = error_of({"messages": [USER], "max_tokens": 10, "max_completion_tokens": 10})
        assert_error(error, "max_tokens", "invalid_parameter_combination")

    def test_zero_max_completion_tokens_is_refused(self):
        error = error_of({"messages": [USER], "max_completion_tokens": 0})
        assert_error(error, "max_completion_tokens", "integer_below_min_value")

    def test_logprobs_alone_asks_for_the_sampled_token_only(self):
        parsed = request(logprobs=True)
        assert parsed.logprobs and parsed.top_logprobs == 0 and parsed.sampling.logprobs == 0

    def test_top_logprobs_sets_the_number_of_alternatives(self):
        parsed = request(logprobs=True, top_logprobs=20)
        assert parsed.top_logprobs == 20 and parsed.sampling.logprobs == 20

    def test_top_logprobs_without_logprobs_is_refused(self):
        assert_error(
            error_of({"messages": [USER], "top_logprobs": 2}), "top_logprobs", "invalid_parameter_combination"
        )
        assert_error(
            error_of({"messages": [USER], "top_logprobs": 2, "logprobs": False}),
            "top_logprobs",
            "invalid_parameter_combination",
        )

    @pytest.mark.parametrize("top, code", [(21, "integer_above_max_value"), (-1, "integer_below_min_value")])
    def test_top_logprobs_range(self, top, code):
        assert_error(
            error_of({"messages": [USER], "logprobs": True, "top_logprobs": top}), "top_logprobs", code
        )

    def test_logprobs_must_be_a_boolean(self):
        assert_error(error_of({"messages": [USER], "logprobs": 3}), "logprobs", "invalid_type")

    def test_n_and_seed(self):
        parsed = request(n=4, seed=123)
        assert parsed.n == 4 and parsed.seed == 123 and parsed.sampling.n == 4

    def test_sampling_errors_surface_from_this_endpoint(self):
        assert_error(error_of({"messages": [USER], "top_p": 0}), "top_p", "decimal_below_min_value")

    def test_stream_options(self):
        parsed = request(stream=True, stream_options={"include_usage": True})
        assert parsed.stream and parsed.include_usage

    def test_stream_options_without_stream_is_refused(self):
        error = error_of({"messages": [USER], "stream": False, "stream_options": {"include_usage": True}})
        assert (error.status, error.param) == (400, "stream_options")


class TestTemplateFields:
    def test_chat_template_kwargs_are_kept(self):
        assert request(chat_template_kwargs={"enable_thinking": False}).chat_template_kwargs == {
            "enable_thinking": False
        }

    def test_chat_template_kwargs_must_be_an_object(self):
        assert_error(
            error_of({"messages": [USER], "chat_template_kwargs": "x"}),
            "chat_template_kwargs",
            "invalid_type",
        )

    def test_continue_final_message(self):
        parsed = request(
            [USER, {"role": "assistant", "content": "Once"}],
            add_generation_prompt=False,
            continue_final_message=True,
        )
        assert parsed.continue_final_message and not parsed.add_generation_prompt

    def test_continue_final_message_with_generation_prompt_is_refused(self):
        error = error_of({"messages": [USER], "continue_final_message": True})
        assert_error(error, "continue_final_message", "invalid_parameter_combination")

    def test_echo_vllm_extension(self):
        assert request(echo=True).echo


class TestResponseFormat:
    def test_text_is_accepted(self):
        assert request(response_format={"type": "text"}).response_format == ResponseFormat("text")

    def test_json_object_is_not_supported_yet(self):
        error = error_of({"messages": [USER], "response_format": {"type": "json_object"}})
        assert_error(error, "response_format.type", "unsupported_value")
        assert "not supported yet" in error.message

    def test_json_schema_is_not_supported_yet(self):
        body = {"messages": [USER], "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}
        assert_error(error_of(body), "response_format.type", "unsupported_value")

    def test_json_schema_is_parsed_for_structured_output(self):
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema, "strict": True},
        }
        body = {"messages": [USER], "response_format": response_format}
        parsed = parse_chat_request(body, allow_structured_output=True)
        assert parsed.response_format == ResponseFormat(
            "json_schema", JsonSchemaFormat("thing", schema, None, True)
        )

    def test_json_object_is_parsed_for_structured_output(self):
        body = {"messages": [USER], "response_format": {"type": "json_object"}}
        assert parse_chat_request(body, allow_structured_output=True).response_format == ResponseFormat(
            "json_object"
        )

    def test_json_schema_needs_its_spec(self):
        body = {"messages": [USER], "response_format": {"type": "json_schema"}}
        assert_error(
            error_of(body, allow_structured_output=True),
            "response_format.json_schema",
            "missing_required_parameter",
        )

    def test_json_schema_name_pattern(self):
        body = {
            "messages": [USER],
            "response_format": {"type": "json_schema", "json_schema": {"name": "a b"}},
        }
        assert_error(
            error_of(body, allow_structured_output=True), "response_format.json_schema.name", "invalid_value"
        )

    def test_unknown_type(self):
        body = {"messages": [USER], "response_format": {"type": "yaml"}}
        assert_error(error_of(body), "response_format.type", "invalid_value")


class TestTools:
    def test_tools_are_not_supported_yet(self):
        error = error_of({"messages": [USER], "tools": [WEATHER_TOOL]})
        assert_error(error, "tools", "unsupported_parameter")
        assert "not supported yet" in error.message

    def test_tools_with_tool_choice_none_are_accepted(self):
        parsed = request(tools=[WEATHER_TOOL], tool_choice="none")
        assert parsed.tool_choice == "none" and parsed.tools[0].name == "get_weather"

    def test_tools_are_parsed_for_tool_calling(self):
        parsed = parse_chat_request(
            {"messages": [USER], "tools": [WEATHER_TOOL], "parallel_tool_calls": False}, allow_tools=True
        )
        tool = parsed.tools[0]
        assert tool == FunctionTool(
            "get_weather", "Weather in a city", WEATHER_TOOL["function"]["parameters"]
        )
        assert parsed.tool_choice == "auto" and parsed.parallel_tool_calls is False
        assert parsed.template_tools() == [WEATHER_TOOL]

    def test_named_tool_choice(self):
        body = {
            "messages": [USER],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
        assert parse_chat_request(body, allow_tools=True).tool_choice == NamedToolChoice("get_weather")

    def test_named_tool_choice_must_name_a_given_tool(self):
        body = {
            "messages": [USER],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "nope"}},
        }
        assert_error(error_of(body, allow_tools=True), "tool_choice", "invalid_value")

    def test_tool_choice_required_without_tools(self):
        error = error_of({"messages": [USER], "tool_choice": "required"})
        assert_error(error, "tool_choice", "invalid_parameter_combination")

    def test_tool_choice_none_without_tools_is_fine(self):
        assert request(tool_choice="none").tool_choice == "none"

    def test_unknown_tool_choice(self):
        assert_error(
            error_of({"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": "sometimes"}),
            "tool_choice",
            "invalid_value",
        )

    def test_tool_function_name_pattern(self):
        tool = {"type": "function", "function": {"name": "get weather"}}
        assert_error(
            error_of({"messages": [USER], "tools": [tool]}), "tools[0].function.name", "invalid_value"
        )

    def test_custom_tools_are_not_supported(self):
        tool = {"type": "custom", "custom": {"name": "x"}}
        assert_error(error_of({"messages": [USER], "tools": [tool]}), "tools[0].type", "unsupported_value")

    def test_legacy_functions_are_not_supported(self):
        body = {"messages": [USER], "functions": [WEATHER_TOOL["function"]]}
        assert_error(error_of(body), "functions", "unsupported_parameter")


class TestFieldPolicy:
    def test_unknown_fields_are_ignored_and_reported(self):
        assert request(foo=1).ignored_fields == ("foo",)

    def test_openai_fields_that_do_not_change_the_output_are_accepted_silently(self):
        parsed = request(
            store=True,
            metadata={"k": "v"},
            service_tier="auto",
            prompt_cache_key="k",
            safety_identifier="s",
            reasoning_effort="low",
            prediction=None,
        )
        assert parsed.ignored_fields == ()

    @pytest.mark.parametrize(
        "field, value",
        [
            ("audio", {"voice": "alloy", "format": "wav"}),
            ("modalities", ["text", "audio"]),
            ("web_search_options", {}),
            ("guided_regex", "a+"),
            ("use_beam_search", True),
        ],
    )
    def test_fields_that_would_change_the_output_are_refused(self, field, value):
        assert_error(error_of({"messages": [USER], field: value}), field, "unsupported_parameter")

    def test_text_modality_is_fine(self):
        assert request(modalities=["text"]).ignored_fields == ()


def sampled(token, logprob, *alternatives):
    return TokenLogprob(token, logprob, [TopLogprob(t, lp) for t, lp in alternatives])


class TestResponse:
    def test_plain_response_matches_schema_and_sdk(self):
        body = chat_response(
            "chatcmpl-1", "smollm2", 1700000000, [ChatChoiceData(0, "Hello!", "stop")], usage(9, 3)
        )
        validate(body, "CreateChatCompletionResponse", strict=True)
        assert body["choices"][0] == {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
        parsed = ChatCompletion.model_validate(body)
        assert parsed.object == "chat.completion" and parsed.usage.total_tokens == 12

    def test_logprobs_shape(self):
        positions = [sampled("Hi", -0.5, ("Hi", -0.5), ("Hey", -1.0)), TokenLogprob("é", -0.1, (), b"\xc3")]
        body = chat_response("c", "m", 1, [ChatChoiceData(0, "Hié", "length", positions)], usage(1, 2))
        validate(body, "CreateChatCompletionResponse", strict=True)
        assert body["choices"][0]["logprobs"] == {
            "content": [
                {
                    "token": "Hi",
                    "logprob": -0.5,
                    "bytes": [72, 105],
                    "top_logprobs": [
                        {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]},
                        {"token": "Hey", "logprob": -1.0, "bytes": [72, 101, 121]},
                    ],
                },
                {"token": "é", "logprob": -0.1, "bytes": [0xC3], "top_logprobs": []},
            ],
            "refusal": None,
        }
        ChatCompletion.model_validate(body)

    def test_tool_calls_shape(self):
        choice = ChatChoiceData(
            0, None, "tool_calls", tool_calls=[ToolCall("call_9", "get_weather", '{"city":"Oslo"}')]
        )
        body = chat_response("c", "m", 1, [choice], usage(1, 2))
        validate(body, "CreateChatCompletionResponse", strict=True)
        message = ChatCompletion.model_validate(body).choices[0].message
        assert message.content is None and message.tool_calls[0].function.arguments == '{"city":"Oslo"}'
        assert body["choices"][0]["message"]["tool_calls"] == [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ]

    def test_tool_calls_key_is_absent_without_calls(self):
        body = chat_response("c", "m", 1, [ChatChoiceData(0, "x", "stop")], usage(1, 1))
        assert "tool_calls" not in body["choices"][0]["message"]

    def test_several_choices_and_system_fingerprint(self):
        choices = [ChatChoiceData(i, f"answer {i}", "stop") for i in range(3)]
        body = chat_response("c", "m", 1, choices, usage(5, 6), system_fingerprint="fp_x")
        validate(body, "CreateChatCompletionResponse", strict=True)
        assert [c["index"] for c in body["choices"]] == [0, 1, 2] and body["system_fingerprint"] == "fp_x"


def stream(*chunks):
    """Feed chunks to the SDK's own stream accumulator; returns the completion it assembles."""
    state = ChatCompletionStreamState()
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse", strict=True)
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.get_final_completion()


class TestChunks:
    def test_first_chunk_carries_the_role_and_empty_content(self):
        chunk = chat_chunk("c", "m", 1, 0, role_delta())
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["choices"] == [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ]
        assert "usage" not in chunk

    def test_text_stream_assembles_in_the_sdk(self):
        final = stream(
            chat_chunk("c", "m", 1, 0, role_delta()),
            chat_chunk("c", "m", 1, 0, content_delta("Hel")),
            chat_chunk("c", "m", 1, 0, content_delta("lo"), finish_reason="stop"),
        )
        assert final.choices[0].message.content == "Hello" and final.choices[0].finish_reason == "stop"
        assert final.choices[0].message.role == "assistant"

    def test_logprobs_stream_assembles_in_the_sdk(self):
        final = stream(
            chat_chunk("c", "m", 1, 0, role_delta()),
            chat_chunk("c", "m", 1, 0, content_delta("Hi"), logprobs=[sampled("Hi", -0.5, ("Hi", -0.5))]),
            chat_chunk("c", "m", 1, 0, content_delta("!"), "stop", [sampled("!", -0.25, ("!", -0.25))]),
        )
        content = final.choices[0].logprobs.content
        assert [(t.token, t.logprob) for t in content] == [("Hi", -0.5), ("!", -0.25)]
        assert content[1].top_logprobs[0].bytes == [33]

    def test_tool_call_stream_assembles_in_the_sdk(self):
        final = stream(
            chat_chunk("c", "m", 1, 0, role_delta()),
            chat_chunk("c", "m", 1, 0, tool_call_delta(0, "call_1", "get_weather", "")),
            chat_chunk("c", "m", 1, 0, tool_call_delta(0, arguments='{"city": ')),
            chat_chunk("c", "m", 1, 0, tool_call_delta(0, arguments='"Oslo"}'), finish_reason="tool_calls"),
        )
        call = final.choices[0].message.tool_calls[0]
        assert (call.id, call.function.name, call.function.arguments) == (
            "call_1",
            "get_weather",
            '{"city": "Oslo"}',
        )
        assert final.choices[0].finish_reason == "tool_calls"

    def test_several_choices_interleave(self):
        final = stream(
            chat_chunk("c", "m", 1, 0, role_delta()),
            chat_chunk("c", "m", 1, 1, role_delta()),
            chat_chunk("c", "m", 1, 1, content_delta("B"), "stop"),
            chat_chunk("c", "m", 1, 0, content_delta("A"), "stop"),
        )
        assert [(c.index, c.message.content) for c in final.choices] == [(0, "A"), (1, "B")]

    def test_include_usage_puts_null_usage_on_chunks_and_a_usage_chunk_last(self):
        chunks = [
            chat_chunk("c", "m", 1, 0, role_delta(), usage_null=True),
            chat_chunk("c", "m", 1, 0, content_delta("x"), "stop", usage_null=True),
            chat_usage_chunk("c", "m", 1, usage(7, 1)),
        ]
        assert [("usage" in c, c["usage"]) for c in chunks[:2]] == [(True, None), (True, None)]
        assert chunks[2]["choices"] == [] and chunks[2]["usage"]["total_tokens"] == 8
        assert stream(*chunks).usage.total_tokens == 8

    def test_continuous_usage_on_a_chunk(self):
        chunk = chat_chunk("c", "m", 1, 0, content_delta("x"), usage=usage(3, 1))
        validate(chunk, "CreateChatCompletionStreamResponse", strict=True)
        assert chunk["usage"]["completion_tokens"] == 1

    def test_tool_call_delta_pieces(self):
        assert tool_call_delta(1, "call_2", "f", "") == {
            "tool_calls": [
                {"index": 1, "id": "call_2", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
        assert tool_call_delta(1, arguments="{}") == {
            "tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]
        }
