"""Logprobs in the legacy completions format and the chat format."""

import math

from compat.logprobs import LOGPROB_FLOOR, TokenLogprob, TopLogprob, chat_logprobs, completion_logprobs


def test_completion_text_offsets_advance_by_token_length_from_the_start_offset():
    positions = [TokenLogprob("Hello", -1.0), TokenLogprob(",", -2.0), TokenLogprob(" wörld", -3.0)]
    assert completion_logprobs(positions, text_offset=10)["text_offset"] == [10, 15, 16]


def test_completion_top_logprobs_map_token_text_to_logprob():
    position = TokenLogprob(" a", -0.5, [TopLogprob(" a", -0.5), TopLogprob(" the", -1.25)])
    assert completion_logprobs([position])["top_logprobs"] == [{" a": -0.5, " the": -1.25}]


def test_completion_position_without_logprob_is_null_in_both_lists():
    result = completion_logprobs(
        [TokenLogprob("<s>", None, [TopLogprob("x", -1.0)]), TokenLogprob("a", -1.0)]
    )
    assert result["token_logprobs"] == [None, -1.0]
    assert result["top_logprobs"] == [None, {}]


def test_impossible_tokens_get_the_json_safe_floor():
    position = TokenLogprob("a", -math.inf, [TopLogprob("b", -math.inf), TopLogprob("c", math.nan)])
    completion = completion_logprobs([position])
    assert completion["token_logprobs"] == [LOGPROB_FLOOR]
    assert completion["top_logprobs"] == [{"b": LOGPROB_FLOOR, "c": LOGPROB_FLOOR}]
    chat = chat_logprobs([position])["content"][0]
    assert (
        chat["logprob"] == LOGPROB_FLOOR
        and [t["logprob"] for t in chat["top_logprobs"]] == [LOGPROB_FLOOR] * 2
    )


def test_chat_bytes_are_the_utf8_of_the_token_unless_raw_bytes_are_given():
    positions = [
        TokenLogprob("é", -0.1),
        TokenLogprob("\ufffd", -0.2, [TopLogprob("\ufffd", -0.2, b"\xe2")], b"\xe2\x82"),
    ]
    content = chat_logprobs(positions)["content"]
    assert content[0]["bytes"] == [0xC3, 0xA9]
    assert content[1]["bytes"] == [0xE2, 0x82] and content[1]["top_logprobs"][0]["bytes"] == [0xE2]


def test_chat_logprobs_object_has_content_and_null_refusal():
    assert chat_logprobs([]) == {"content": [], "refusal": None}
    entry = chat_logprobs([TokenLogprob("x", -1.0)])["content"][0]
    assert entry == {"token": "x", "logprob": -1.0, "bytes": [120], "top_logprobs": []}
