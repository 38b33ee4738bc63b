"""POST /v1/embeddings: every input is one pooling request to the engine, admitted all or none and batched
by its scheduler; the response lists their embeddings in input order."""

from __future__ import annotations

import logging
from contextlib import aclosing

import orjson
from aiohttp import web

from compat import EmbeddingRequest, check_input_count, embedding_response, parse_embedding_request
from gateway.body import read_json
from gateway.request_stream import RequestStream, merged
from gateway.request_summary import RequestSummary
from gateway.serving_model import ServingModel
from gateway.state import REQUEST_ID, SERVER_CONFIG, SUMMARY, serving_model
from jax_engine import PoolingParams

logger = logging.getLogger(__name__)

API = "Embeddings API"


async def create_embedding(request: web.Request) -> web.Response:
    model = serving_model(request)
    model.require_task("embed", API)
    body = await read_json(request, model.workers)
    embedding = parse_embedding_request(body)
    model.check_model(embedding.model)
    check_input_count(len(embedding.inputs), request.app[SERVER_CONFIG].max_sequences_per_request)
    if embedding.ignored_fields:
        logger.debug("request %s: ignoring unknown fields %s", request[REQUEST_ID], embedding.ignored_fields)
    prompts = await model.workers.run(_token_ids, model, embedding)
    params = PoolingParams(dimensions=embedding.dimensions, priority=embedding.priority)
    summary = RequestSummary(count_completion=False)
    streams = await model.admit_all(embedding, [(ids, params) for ids in prompts])
    try:
        vectors = await _embeddings(streams, summary)
    finally:
        for stream in streams:
            await stream.aclose()
        request[SUMMARY] = summary
    response = await model.workers.run(embedding_response, model.name, vectors, embedding.encoding_format,
                                       summary.usage()["prompt_tokens"])
    return web.Response(body=orjson.dumps(response), content_type="application/json")


def _token_ids(model: ServingModel, embedding: EmbeddingRequest) -> list[list[int]]:
    """Every input as token ids (worker thread: tokenizing can be slow)."""
    return [model.encode(item, embedding.add_special_tokens, param=embedding.param_for("prompt", i))
            if isinstance(item, str) else item for i, item in enumerate(embedding.inputs)]


async def _embeddings(streams: list[RequestStream], summary: RequestSummary) -> list[list[float]]:
    vectors: list[list[float]] = [[] for _ in streams]
    async with aclosing(merged(streams)) as outputs:
        async for position, out in outputs:
            summary.add(position, out)
            if out.embedding is not None:
                vectors[position] = out.embedding.tolist()
    return vectors
