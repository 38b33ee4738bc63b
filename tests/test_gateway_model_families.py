"""`cortexstream serve` on a tiny Gemma 2, Gemma 3 and Phi-3 checkpoint, chatted with through the OpenAI SDK.

References: the chat template's prompt and the greedy continuation transformers computes for each checkpoint
(`chat_*` in tests/golden/<name>/golden.npz).
"""

import json
import os

import numpy as np
import openai
import pytest

from tests.server_fixture import TEST_COMPILATION_CACHE, ServerProcess

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


@pytest.fixture(scope="module", params=["gemma2", "gemma3", "phi3"])
def served(request):
    name = request.param
    process = ServerProcess("--model", os.path.join(GOLDEN, name), "--served-model-name", name,
                            "--max-model-len", "32", "--max-num-seqs", "4", "--max-num-batched-tokens", "32",
                            "--kv-cache-memory", "0.01", "--no-warmup", "--quantization", "none",
                            "--compilation-cache-dir", TEST_COMPILATION_CACHE).start()
    yield name, openai.OpenAI(base_url=process.url("/v1"), api_key="unused", max_retries=0)
    assert process.stop() == 0


def chat_golden(name: str):
    golden = np.load(os.path.join(GOLDEN, name, "golden.npz"))
    return json.loads(str(golden["chat_messages"])), golden["chat_prompt"], str(golden["chat_greedy_text"])


def test_chat_is_transformers_greedy_continuation(served):
    name, client = served
    messages, prompt, greedy_text = chat_golden(name)
    completion = client.chat.completions.create(
        model=name, messages=messages, max_tokens=8, temperature=0,
        extra_body={"ignore_eos": True, "skip_special_tokens": False})
    assert completion.choices[0].message.content == greedy_text
    assert completion.choices[0].finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (len(prompt), 8)


def test_streamed_chat_equals_the_whole_answer(served):
    name, client = served
    messages, _, greedy_text = chat_golden(name)
    stream = client.chat.completions.create(
        model=name, messages=messages, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True, "skip_special_tokens": False})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == greedy_text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.completion_tokens == 8
