"""API keys on a real server process (the tiny llama), set through CORTEXSTREAM_API_KEY, seen by the OpenAI
SDK (Authorization: Bearer) and the Anthropic SDK (x-api-key)."""

import anthropic
import openai
import pytest
from anthropic import types

from tests.anthropic_strict import parse_strictly
from tests.server_fixture import TEST_COMPILATION_CACHE, TINY_LLAMA, ServerProcess, error_of, request

KEY = "sk-cortexstream-test"


@pytest.fixture(scope="module")
def server():
    process = ServerProcess("--model", TINY_LLAMA, "--max-model-len", "256", "--max-num-seqs", "4",
                            "--max-num-batched-tokens", "64", "--kv-cache-memory", "0.01",
                            "--compilation-cache-dir", TEST_COMPILATION_CACHE, "--served-model-name", "tiny",
                            env={"CORTEXSTREAM_API_KEY": KEY}).start()
    yield process
    assert process.stop() == 0


def test_sdk_with_the_key_is_served(server):
    client = openai.OpenAI(base_url=server.url("/v1"), api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    completion = client.completions.create(model="tiny", prompt="hello", max_tokens=2)
    assert completion.usage.completion_tokens == 2


def test_sdk_with_a_wrong_key_is_refused(server):
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.completions.create(model="tiny", prompt="hello", max_tokens=2)
    assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"


def test_health_and_metrics_stay_open(server):
    assert request(server, "GET", "/health").status == 200
    assert request(server, "GET", "/metrics").status == 200
    assert error_of(request(server, "GET", "/v1/models"))["message"].startswith("You didn't provide an API key")


@pytest.mark.parametrize("method, path, body", [("POST", "/tokenize", {"prompt": "hi"}),
                                                ("POST", "/detokenize", {"tokens": [1]}),
                                                ("GET", "/tokenizer_info", None)])
def test_tokenizer_routes_need_the_key(server, method, path, body):
    assert request(server, method, path, body).status == 401
    assert request(server, method, path, body, headers={"Authorization": f"Bearer {KEY}"}).status == 200


def test_version_stays_open(server):
    assert request(server, "GET", "/version").status == 200


def test_anthropic_sdk_sends_x_api_key_and_is_served(server):
    claude = anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0)
    assert claude.messages.count_tokens(model="tiny", messages=[{"role": "user", "content": "hi"}]).input_tokens > 0


def test_anthropic_sdk_with_a_wrong_key_gets_an_authentication_error(server):
    claude = anthropic.Anthropic(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        claude.messages.count_tokens(model="tiny", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 401
    assert refused.value.body["error"]["type"] == "authentication_error"
    parse_strictly(refused.value.response.json(), types.ErrorResponse)
