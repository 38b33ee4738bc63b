"""/v1/embeddings end to end: `cortexstream serve --task embed` on tests/golden/qwen3_embed, through the
official openai SDK and raw HTTP, against transformers' pooled embeddings (embeddings.npz) and OpenAI's schemas;
and the 400s that keep each task's model off the other task's APIs."""

import base64
import os

import anthropic
import numpy as np
import openai
import pytest

from gateway import cli
from tests.openai_schema import validate
from tests.server_fixture import TEST_COMPILATION_CACHE, ServerProcess, error_of, post, post_ok, request, shared_server

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "qwen3_embed")
EMBEDDINGS = np.load(os.path.join(GOLDEN, "embeddings.npz"))
INDICES = [i for i in range(10) if f"input_ids_{i}" in EMBEDDINGS]
TEXTS = [str(EMBEDDINGS[f"text_{i}"]) for i in INDICES]
NAME = "qwen3-embed"
MAX_MODEL_LEN = 128
COSINE = 0.9999


@pytest.fixture(scope="module")
def server():
    process = ServerProcess("--model", GOLDEN, "--task", "embed", "--served-model-name", NAME,
                            "--max-model-len", str(MAX_MODEL_LEN), "--max-num-batched-tokens", "32",
                            "--max-num-seqs", "8", "--kv-cache-memory", "0.01", "--max-sequences-per-request", "8",
                            "--no-warmup", "--compilation-cache-dir", TEST_COMPILATION_CACHE).start()
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)


def assert_matches(actual, expected) -> None:
    actual = np.asarray(actual, np.float32)
    assert actual.shape == expected.shape
    assert float(actual @ expected / (np.linalg.norm(actual) * np.linalg.norm(expected))) > COSINE


@pytest.mark.parametrize("encoding_format", [None, "float", "base64"])  # None: the SDK asks for base64
def test_the_openai_sdk_embeds_a_batch_as_transformers_does(client, encoding_format):
    kw = {"encoding_format": encoding_format} if encoding_format else {}
    result = client.embeddings.create(model=NAME, input=TEXTS, **kw)
    assert result.model == NAME and [d.index for d in result.data] == list(range(len(TEXTS)))
    for d, i in zip(result.data, INDICES, strict=True):
        # asked for base64 by name, the SDK hands the string back undecoded
        vector = np.frombuffer(base64.b64decode(d.embedding), "<f4") if encoding_format == "base64" else d.embedding
        assert_matches(vector, EMBEDDINGS[f"last_{i}"])
    prompt_tokens = sum(len(EMBEDDINGS[f"input_ids_{i}"]) for i in INDICES)
    assert result.usage.prompt_tokens == result.usage.total_tokens == prompt_tokens


def test_matryoshka_dimensions_and_token_id_inputs(client):
    ids = [EMBEDDINGS[f"input_ids_{i}"].tolist() for i in INDICES]
    result = client.embeddings.create(model=NAME, input=ids, dimensions=16)
    for d, i in zip(result.data, INDICES, strict=True):
        assert_matches(d.embedding, EMBEDDINGS[f"last_dim16_{i}"])


def test_langchain_embeds_documents_and_queries(server):
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length off: it would tokenize with tiktoken, which is OpenAI's vocabulary, not ours
    embeddings = OpenAIEmbeddings(model=NAME, base_url=server.url("/v1"), api_key="unused", max_retries=0,
                                  check_embedding_ctx_length=False)
    for vector, i in zip(embeddings.embed_documents(TEXTS), INDICES, strict=True):
        assert_matches(vector, EMBEDDINGS[f"last_{i}"])
    assert_matches(embeddings.embed_query(TEXTS[0]), EMBEDDINGS[f"last_{INDICES[0]}"])


def test_add_special_tokens_false_leaves_the_suffix_out(server):
    """vLLM's extension: without the tokenizer's <|endoftext|> the last token, and so the embedding, differ."""
    body = {"model": NAME, "input": TEXTS[0]}
    plain = post(server, "/v1/embeddings", {**body, "add_special_tokens": False}).json()
    with_suffix = post(server, "/v1/embeddings", body).json()
    assert plain["usage"]["prompt_tokens"] == with_suffix["usage"]["prompt_tokens"] - 1
    assert plain["data"][0]["embedding"] != with_suffix["data"][0]["embedding"]


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_the_body_matches_openais_schema(server, encoding_format):
    body = post_ok(server, "/v1/embeddings", {"model": NAME, "input": TEXTS[0], "encoding_format": encoding_format},
                   "CreateEmbeddingResponse")
    validate(body, "CreateEmbeddingResponse", strict=True)
    assert body["object"] == "list" and len(body["data"]) == 1


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"input": ""}, "input", "invalid_value"),
    ({"input": []}, "input", "empty_array"),
    ({"input": ["a", ""]}, "input[1]", "invalid_value"),
    ({"input": [[5] * (MAX_MODEL_LEN + 1)]}, "input", "context_length_exceeded"),
    ({"input": ["a", [5] * (MAX_MODEL_LEN + 1)]}, None, "invalid_type"),
    ({"input": [[5], [5, 320]]}, "input[1][1]", "invalid_value"),
    ({"input": "a", "dimensions": 65}, "dimensions", None),
    ({"input": ["a"] * 9}, "input", "array_above_max_length"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
])
def test_bad_input_is_a_400_in_openais_envelope(server, body, param, code):
    reply = post(server, "/v1/embeddings", {"model": NAME, **body})
    assert reply.status == 400, reply.text
    error = error_of(reply)
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error


def test_an_unknown_model_is_a_404(server):
    assert post(server, "/v1/embeddings", {"model": "other", "input": "a"}).status == 404


def test_the_embedding_model_offers_no_generation(server, client):
    assert [m.id for m in client.models.list().data] == [NAME]
    for path, body in (("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/completions", {"prompt": "hi"}), ("/v1/responses", {"input": "hi"})):
        reply = post(server, path, {"model": NAME, **body})
        assert reply.status == 400, (path, reply.text)
        assert error_of(reply)["code"] == "model_not_supported"
    with pytest.raises(openai.BadRequestError, match="does not support the Chat Completions API"):
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}])
    messages = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="does not support the Messages API"):
        messages.messages.create(model=NAME, max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    assert request(server, "GET", "/health").status == 200


def test_a_generating_model_refuses_embeddings():
    generator = shared_server()
    reply = post(generator, "/v1/embeddings", {"input": "hello"})
    assert reply.status == 400
    error = error_of(reply)
    assert (error["param"], error["code"]) == ("model", "model_not_supported")
    assert "--task embed" in error["message"]


@pytest.mark.parametrize(("args", "message"), [
    (("serve", "--pooler-config", '{"pooling_type": "MEAN"}'), "--pooler-config applies to --task embed only"),
    (("serve", "--task", "embed", "--pooler-config", '{"pooling_type": "CLS"}'), "pooling_type 'CLS'"),
    (("generate", "hi", "--task", "embed"), "--task embed is served by `cortexstream serve`"),
])
def test_embedding_flags_are_checked_when_parsed(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([*args, "--model", GOLDEN])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
