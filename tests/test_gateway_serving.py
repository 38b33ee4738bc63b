"""The server as a whole: model list, health, version, tokenizer endpoints, metrics, many concurrent streams,
clients that leave mid-stream, and `bench serve` against it."""

import argparse
import asyncio
import http.client
import json
import os
import time
from urllib.parse import urlsplit

import openai
import orjson
import pytest

from gateway.bench import serve as bench_serve
from tests.openai_schema import validate
from tests.server_fixture import DEFAULT_MODEL_NAME, error_of, post, post_ok, request, scrape_metrics, shared_server

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
M = "cortexstream:"


@pytest.fixture(scope="module")
def server():
    return shared_server()


def test_models_list_the_served_model(server):
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    models = client.models.with_raw_response.list()
    validate(models.http_response.json(), "ListModelsResponse")
    assert [m.id for m in models.parse().data] == [DEFAULT_MODEL_NAME]
    card = request(server, "GET", f"/v1/models/{DEFAULT_MODEL_NAME}").json()
    validate(card, "Model")
    assert card["id"] == DEFAULT_MODEL_NAME and card["max_model_len"] == 512


def test_health_and_version(server):
    assert request(server, "GET", "/health").status == 200
    reply = request(server, "GET", "/version")
    assert reply.status == 200 and isinstance(reply.json()["version"], str)


def test_request_id_is_echoed_or_generated(server):
    given = request(server, "GET", "/health", headers={"X-Request-Id": "trace-42"})
    assert given.headers["X-Request-Id"] == "trace-42"
    made = post(server, "/v1/completions", {"prompt": "Hi", "max_tokens": 1})
    assert len(made.headers["X-Request-Id"]) == 32
    assert made.headers["X-Request-Id"] in server.log()  # the access-log line


def test_tokenize_and_detokenize_match_transformers(server):
    with open(os.path.join(GOLDEN, "smollm2_tokens.json")) as f:
        texts = json.load(f)
    with open(os.path.join(GOLDEN, "smollm2_chat.json")) as f:
        chats = json.load(f)
    for case in texts[:4]:
        reply = post(server, "/tokenize", {"prompt": case["text"], "add_special_tokens": False}).json()
        assert reply["tokens"] == case["ids"] and reply["count"] == len(case["ids"])
        assert reply["max_model_len"] == 512 and reply["token_strs"] is None
        assert post(server, "/detokenize", {"tokens": case["ids"]}).json() == {"prompt": case["decoded"]}
    for case in chats[:2]:
        reply = post(server, "/tokenize", {"messages": case["messages"], "return_token_strs": True}).json()
        assert reply["tokens"] == case["ids"]
        assert "".join(reply["token_strs"]) == case["prompt"]


def test_tokenizer_info_serves_a_remote_tokenizer(server, tokenizer):
    """What lm-eval's `tokenizer_backend=remote` reads: the special tokens (their ids through /tokenize, without
    added specials) and the chat template."""
    info = request(server, "GET", "/tokenizer_info").json()
    assert (info["eos_token"], info["bos_token"]) == ("<|im_end|>", "<|im_start|>")
    assert info["chat_template"] == tokenizer.chat_template and info["model_max_length"] == 512
    eos = post(server, "/tokenize", {"prompt": info["eos_token"], "add_special_tokens": False}).json()["tokens"]
    assert eos == [tokenizer.eos_token_id]


def test_detokenize_refuses_ids_outside_the_vocabulary(server):
    error = error_of(post(server, "/detokenize", {"tokens": [1, 10**6]}))
    assert error["param"] == "tokens[1]"


def test_metrics_count_tokens_and_latencies_of_a_request(server):
    before = scrape_metrics(server)
    post_ok(server, "/v1/completions", {"prompt": [504, 2214, 282, 4649, 314], "max_tokens": 3,
                                        "temperature": 0, "ignore_eos": True}, "CreateCompletionResponse")
    after = scrape_metrics(server)

    def delta(name):
        return after.get(M + name, 0) - before.get(M + name, 0)

    assert delta("prompt_tokens_total") == 5
    assert delta("generation_tokens_total") == 3
    assert delta("request_success_total{length}") == 1
    assert delta("time_to_first_token_seconds_count") == 1
    assert delta("inter_token_latency_seconds_count") == 2
    assert delta("time_per_output_token_seconds_count") == 2
    assert delta("e2e_request_latency_seconds_count") == 1
    assert delta("request_generation_tokens_sum") == 3
    assert after[M + "num_requests_running"] == 0 and after[M + "num_requests_waiting"] == 0
    assert after[M + "kv_cache_usage_perc"] == 0


def test_metrics_count_prefix_cache_hits(server):
    prompt = list(range(1000, 1040))  # 40 tokens: two full 16-token blocks
    before = scrape_metrics(server)
    for _ in range(2):
        post(server, "/v1/completions", {"prompt": prompt, "max_tokens": 1})
    after = scrape_metrics(server)
    assert after[M + "prefix_cache_queries_total"] - before[M + "prefix_cache_queries_total"] == 80
    assert after[M + "prefix_cache_hits_total"] - before[M + "prefix_cache_hits_total"] == 32


async def test_64_concurrent_streams_equal_their_sequential_runs(server):
    client = openai.AsyncOpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    prompts = [[100 + i, 2000 + 7 * i, 300 + 3 * i] for i in range(64)]
    params = dict(model=DEFAULT_MODEL_NAME, max_tokens=4, temperature=0, extra_body={"ignore_eos": True})

    async def streamed(prompt):
        stream = await client.completions.create(prompt=prompt, stream=True, **params)
        chunks = [c async for c in stream]
        assert chunks[-1].choices[0].finish_reason == "length"
        return "".join(c.choices[0].text for c in chunks)

    sequential = [(await client.completions.create(prompt=p, **params)).choices[0].text for p in prompts]
    concurrent = await asyncio.gather(*(streamed(p) for p in prompts))
    assert concurrent == sequential
    assert len(set(sequential)) > 1
    await client.close()


def _wait_until_idle(server, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        metrics = scrape_metrics(server)
        if metrics[M + "num_requests_running"] == 0 and metrics[M + "kv_cache_usage_perc"] == 0:
            return metrics
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)


def test_client_leaving_mid_stream_aborts_and_frees_its_blocks(server):
    baseline = _wait_until_idle(server)
    address = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    body = orjson.dumps({"prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": True, "stream": True})
    connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.read(6) == b"data: "  # generation is under way
    busy = scrape_metrics(server)
    assert busy[M + "num_requests_running"] == 1 and busy[M + "kv_cache_usage_perc"] > 0
    connection.sock.close()
    connection.close()
    after = _wait_until_idle(server)
    aborted = after.get(M + "request_success_total{abort}", 0) - baseline.get(M + "request_success_total{abort}", 0)
    assert aborted == 1
    assert after[M + "generation_tokens_total"] - baseline.get(M + "generation_tokens_total", 0) < 400


def test_bench_serve_reports_what_the_server_counted(server, tmp_path):
    parser = argparse.ArgumentParser()
    bench_serve.add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--base-url", server.base_url, "--concurrency", "1", "4", "--num-prompts", "4",
                              "--input-len", "8", "--output-len", "3", "--output-json", str(out)])
    before = scrape_metrics(server)
    assert bench_serve.run(args) == 0
    after = scrape_metrics(server)
    records = json.loads(out.read_text())
    assert [r["concurrency"] for r in records] == [1, 4]
    for r in records:
        assert (r["completed"], r["failed"]) == (4, 0)
        assert (r["total_input_tokens"], r["total_output_tokens"]) == (32, 12)
        assert r["output_throughput"] == pytest.approx(12 / r["duration"])
        assert r["request_throughput"] == pytest.approx(4 / r["duration"])
        assert 0 < r["median_ttft_ms"] <= r["p99_ttft_ms"] <= 1000 * r["duration"]
        assert 0 < r["median_itl_ms"] <= r["p99_itl_ms"] and r["median_tpot_ms"] > 0
    probe = 2  # one unmeasured request of 2 prompt and 2 output tokens
    assert after[M + "generation_tokens_total"] - before.get(M + "generation_tokens_total", 0) == 2 * 12 + probe
    assert after[M + "prompt_tokens_total"] - before.get(M + "prompt_tokens_total", 0) == 2 * 32 + probe
