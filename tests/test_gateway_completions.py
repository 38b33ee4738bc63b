"""/v1/completions on a real server with the default model, through the official OpenAI SDK and raw HTTP.

References: HF transformers' greedy tokens and last-position logits for SmolLM2 (tests/golden).
"""

import os

import numpy as np
import openai
import pytest

from tests.openai_schema import validate
from tests.server_fixture import DEFAULT_MODEL_NAME, post_ok, stream_events

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "smollm2_golden.npz"))
PROMPT_TEXT = str(GOLDEN["text_0"])  # "The capital of France is"
PROMPT_IDS = GOLDEN["prompt_0"].tolist()
GREEDY_IDS = GOLDEN["greedy_tokens_0"].tolist()
GREEDY_TEXT = str(GOLDEN["greedy_text_0"])  # " Paris.\n\nThe answer is:"
LAST_LOGPROBS = GOLDEN["last_logits_0"] - np.logaddexp.reduce(GOLDEN["last_logits_0"].astype(np.float64))
LOGPROB_ATOL = 1e-4  # measured: within 3e-5 of transformers (float32 CPU)


def test_greedy_completion_matches_transformers(client):
    raw = client.completions.with_raw_response.create(
        model=DEFAULT_MODEL_NAME, prompt=PROMPT_TEXT, max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    validate(raw.http_response.json(), "CreateCompletionResponse")
    completion = raw.parse()
    assert completion.id.startswith("cmpl-") and completion.model == DEFAULT_MODEL_NAME
    assert completion.choices[0].text == GREEDY_TEXT
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].logprobs is None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (len(PROMPT_IDS), 8)
    assert completion.usage.total_tokens == len(PROMPT_IDS) + 8


def test_streamed_completion_equals_non_streamed(server):
    body = {"prompt": PROMPT_IDS, "max_tokens": 6, "temperature": 0}
    whole = post_ok(server, "/v1/completions", body, "CreateCompletionResponse")
    events = stream_events(server, "/v1/completions", {**body, "stream_options": {"include_usage": True}},
                           "CreateCompletionStreamResponse")
    *chunks, last = events
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in chunks)
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert [c["choices"][0]["finish_reason"] for c in chunks].count(None) == len(chunks) - 1
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert len({c["id"] for c in events}) == 1


def test_stream_without_include_usage_has_no_usage_field(server):
    events = stream_events(server, "/v1/completions", {"prompt": PROMPT_IDS, "max_tokens": 2},
                           "CreateCompletionStreamResponse")
    assert events and all("usage" not in e for e in events)


def test_logprobs_match_transformers(client, tokenizer):
    completion = client.completions.create(model=DEFAULT_MODEL_NAME, prompt=PROMPT_IDS, max_tokens=1,
                                           temperature=0, logprobs=5)
    logprobs = completion.choices[0].logprobs
    expected_ids = np.argsort(-LAST_LOGPROBS)[:5]
    assert logprobs.tokens == [tokenizer.token_str(GREEDY_IDS[0])]
    assert logprobs.token_logprobs[0] == pytest.approx(LAST_LOGPROBS[GREEDY_IDS[0]], abs=LOGPROB_ATOL)
    top = logprobs.top_logprobs[0]
    assert len(top) == 5
    for token_id in expected_ids:
        assert top[tokenizer.token_str(int(token_id))] == pytest.approx(LAST_LOGPROBS[token_id], abs=LOGPROB_ATOL)
    assert logprobs.text_offset == [0]


def test_echo_with_logprobs_scores_the_prompt(client, tokenizer):
    prompt = PROMPT_IDS + GREEDY_IDS[:2]
    raw = client.completions.with_raw_response.create(model=DEFAULT_MODEL_NAME, prompt=prompt, max_tokens=1,
                                                      temperature=0, logprobs=1, echo=True)
    validate(raw.http_response.json(), "CreateCompletionResponse")
    choice = raw.parse().choices[0]
    prompt_text = tokenizer.decode(prompt, skip_special_tokens=False)
    assert choice.text == prompt_text + tokenizer.decode([GREEDY_IDS[2]])
    lp = choice.logprobs
    assert lp.tokens == [tokenizer.token_str(t) for t in prompt + GREEDY_IDS[2:3]]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    # position 5 is the first greedy token, scored after the golden prompt
    assert lp.token_logprobs[5] == pytest.approx(LAST_LOGPROBS[GREEDY_IDS[0]], abs=LOGPROB_ATOL)
    assert all(isinstance(x, float) and x <= 0 for x in lp.token_logprobs[1:])
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0


def test_echo_with_max_tokens_zero_returns_the_prompt_only(client):
    completion = client.completions.create(model=DEFAULT_MODEL_NAME, prompt=PROMPT_TEXT, max_tokens=0, echo=True)
    assert completion.choices[0].text == PROMPT_TEXT
    assert completion.choices[0].finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (len(PROMPT_IDS), 0)


def test_seeded_sampling_is_reproducible_with_n_2(client):
    def sample():
        completion = client.completions.create(model=DEFAULT_MODEL_NAME, prompt=PROMPT_TEXT, max_tokens=8, n=2,
                                               temperature=1.0, seed=1234, extra_body={"ignore_eos": True})
        assert [c.index for c in completion.choices] == [0, 1]
        assert completion.usage.completion_tokens == 16
        return [c.text for c in completion.choices]

    first = sample()
    assert sample() == first
    assert first[0] != first[1]  # the choices are different samples, not one stream twice


def test_prompt_list_with_n_2_gives_each_prompt_n_choices_in_order(server):
    other = [504, 2214, 282]  # another short prompt
    body = {"prompt": [PROMPT_IDS, other], "n": 2, "max_tokens": 3, "temperature": 0, "ignore_eos": True}
    whole = post_ok(server, "/v1/completions", body, "CreateCompletionResponse")
    texts = [c["text"] for c in sorted(whole["choices"], key=lambda c: c["index"])]
    single = [post_ok(server, "/v1/completions", {**body, "prompt": p, "n": 1},
                      "CreateCompletionResponse")["choices"][0]["text"] for p in (PROMPT_IDS, other)]
    assert texts == [single[0], single[0], single[1], single[1]]
    assert whole["usage"]["prompt_tokens"] == len(PROMPT_IDS) + len(other)
    assert whole["usage"]["completion_tokens"] == 4 * 3


async def test_stop_string_ends_the_async_stream_before_it(server):
    client = openai.AsyncOpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    stream = await client.completions.create(model=DEFAULT_MODEL_NAME, prompt=PROMPT_TEXT, max_tokens=8,
                                             temperature=0, stop=["."], stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks) == GREEDY_TEXT.split(".")[0]
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    await client.close()
