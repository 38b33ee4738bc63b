"""/v1/chat/completions on a real server with the default model, through the official OpenAI SDK and raw HTTP.

References: HF transformers' chat prompt, greedy tokens and last-position logits for SmolLM2 (tests/golden).
"""

import os

import numpy as np
import openai
import pytest

from tests.openai_schema import validate
from tests.server_fixture import DEFAULT_MODEL_NAME, post_ok, stream_events

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "smollm2_golden.npz"))
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PROMPT_IDS = GOLDEN["prompt_1"].tolist()
GREEDY_IDS = GOLDEN["greedy_tokens_1"].tolist()  # "The capital of France is Paris.<|im_end|>"
ANSWER = "The capital of France is Paris."
LAST_LOGPROBS = GOLDEN["last_logits_1"] - np.logaddexp.reduce(GOLDEN["last_logits_1"].astype(np.float64))
LOGPROB_ATOL = 1e-4  # measured: within 3e-5 of transformers (float32 CPU)


def test_greedy_chat_matches_transformers(client):
    raw = client.chat.completions.with_raw_response.create(model=DEFAULT_MODEL_NAME, messages=MESSAGES,
                                                           max_tokens=16, temperature=0)
    body = raw.http_response.json()
    validate(body, "CreateChatCompletionResponse", strict=True)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": ANSWER, "refusal": None}
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    usage = raw.parse().usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (len(PROMPT_IDS), len(GREEDY_IDS))


def test_stream_equals_non_stream_for_each_of_n_choices(server):
    body = {"messages": MESSAGES, "max_completion_tokens": 5, "temperature": 0, "n": 2}
    whole = post_ok(server, "/v1/chat/completions", body, "CreateChatCompletionResponse")
    events = stream_events(server, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}},
                           "CreateChatCompletionStreamResponse")
    *chunks, last = events
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in chunks)
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert all("role" not in c["delta"] for c in mine[1:])
        assert [c["finish_reason"] for c in mine if c["finish_reason"]] == ["length"]
        assert mine[-1]["finish_reason"] == "length" and mine[-1]["delta"] == {}  # as OpenAI sends it
        text = "".join(c["delta"].get("content", "") for c in mine)
        assert text == whole["choices"][index]["message"]["content"] == "The capital of France is"


def test_top_logprobs_match_transformers(client, tokenizer):
    raw = client.chat.completions.with_raw_response.create(
        model=DEFAULT_MODEL_NAME, messages=MESSAGES, max_tokens=1, temperature=0, logprobs=True, top_logprobs=3)
    validate(raw.http_response.json(), "CreateChatCompletionResponse", strict=True)
    content = raw.parse().choices[0].logprobs.content
    assert len(content) == 1
    position = content[0]
    assert position.token == tokenizer.token_str(GREEDY_IDS[0])
    assert position.logprob == pytest.approx(LAST_LOGPROBS[GREEDY_IDS[0]], abs=LOGPROB_ATOL)
    assert position.bytes == list(tokenizer.token_to_bytes(GREEDY_IDS[0]))
    expected_ids = np.argsort(-LAST_LOGPROBS)[:3]
    assert [t.token for t in position.top_logprobs] == [tokenizer.token_str(int(i)) for i in expected_ids]
    for top, token_id in zip(position.top_logprobs, expected_ids, strict=True):
        assert top.logprob == pytest.approx(LAST_LOGPROBS[token_id], abs=LOGPROB_ATOL)


def test_streamed_logprobs_cover_every_token(server):
    events = stream_events(server, "/v1/chat/completions",
                           {"messages": MESSAGES, "max_tokens": 4, "temperature": 0, "logprobs": True},
                           "CreateChatCompletionStreamResponse")
    positions = [p for e in events if e["choices"][0]["logprobs"] for p in e["choices"][0]["logprobs"]["content"]]
    assert len(positions) == 4
    assert all(p["top_logprobs"] == [] for p in positions)
    assert "".join(p["token"] for p in positions) == "The capital of France"


def test_stop_string_is_not_in_the_answer(client):
    completion = client.chat.completions.create(model=DEFAULT_MODEL_NAME, messages=MESSAGES, max_tokens=16,
                                                temperature=0, stop=[" Paris"])
    assert completion.choices[0].message.content == "The capital of France is"
    assert completion.choices[0].finish_reason == "stop"


async def test_async_seeded_stream_is_reproducible(server):
    client = openai.AsyncOpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)

    async def sample() -> str:
        stream = await client.chat.completions.create(model=DEFAULT_MODEL_NAME, messages=MESSAGES, max_tokens=6,
                                                      temperature=1.0, seed=99, stream=True)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    first = await sample()
    assert first and await sample() == first
    await client.close()


def test_model_may_be_left_out(server):
    body = post_ok(server, "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 1},
                   "CreateChatCompletionResponse")
    assert body["model"] == DEFAULT_MODEL_NAME
