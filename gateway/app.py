"""The aiohttp application: routes, middlewares, and the engine's lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway import (
    cors,
    middlewares,
    routes_chat,
    routes_completions,
    routes_embeddings,
    routes_messages,
    routes_models,
    routes_ops,
    routes_responses,
    routes_tokenize,
)
from gateway.body import expect_continue
from gateway.in_flight import InFlight
from gateway.metrics import Metrics
from gateway.model_slot import EngineOrFactory, ModelSlot
from gateway.response_store import ResponseStore
from gateway.responses_state import ResponsesState
from gateway.server_config import ServerConfig
from gateway.state import IN_FLIGHT, METRICS, MODEL_SLOT, REQUEST_ID, RESPONSES, SERVER_CONFIG, serving_model
from gateway.worker_pool import WorkerPool

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(engine: EngineOrFactory, config: ServerConfig) -> web.Application:
    """`engine`: an EngineClient (the caller owns it), or a zero-argument factory that builds one; the
    factory runs in a thread after start-up so /health can answer 503 while the model loads and warms up."""
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[
            middlewares.request_id_and_access_log,
            middlewares.openai_errors_middleware,
            cors.cors_preflight,
            middlewares.api_key_middleware,
        ],
    )
    app[SERVER_CONFIG] = config
    metrics = Metrics(config.served_model_name, lambda: slot.stats())
    slot = ModelSlot(config.model_names, metrics, WorkerPool(config.worker_threads))
    app[MODEL_SLOT] = slot
    app[METRICS] = metrics
    app[IN_FLIGHT] = InFlight()
    app[RESPONSES] = ResponsesState(_response_store(config))
    app.cleanup_ctx.append(_engine_lifetime(engine))
    app.on_response_prepare.append(_common_headers)
    _add_routes(app)
    return app


def _add_routes(app: web.Application) -> None:
    app.router.add_get("/health", routes_ops.health)
    app.router.add_get("/metrics", routes_ops.metrics)
    app.router.add_get("/version", routes_ops.version)
    app.router.add_get("/tokenizer_info", routes_tokenize.tokenizer_info)
    app.router.add_get("/v1/models", routes_models.list_models)
    app.router.add_get("/v1/models/{model:.+}", routes_models.retrieve_model)
    for path, handler in (("/tokenize", routes_tokenize.tokenize), ("/detokenize", routes_tokenize.detokenize),
                          ("/v1/completions", _generating(routes_completions.create_completion, "Completions API")),
                          ("/v1/chat/completions", _generating(routes_chat.create_chat_completion,
                                                               "Chat Completions API")),
                          ("/v1/responses", _generating(routes_responses.create_response, "Responses API")),
                          ("/v1/responses/input_tokens", routes_responses.count_input_tokens),
                          ("/v1/messages", _generating(routes_messages.create_message, "Messages API")),
                          ("/v1/messages/count_tokens", routes_messages.count_tokens),
                          ("/v1/embeddings", routes_embeddings.create_embedding)):
        app.router.add_post(path, handler, expect_handler=expect_continue)
    app.router.add_get("/v1/responses/{response_id}", routes_responses.retrieve_response)
    app.router.add_delete("/v1/responses/{response_id}", routes_responses.delete_response)
    app.router.add_post("/v1/responses/{response_id}/cancel", routes_responses.cancel_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", routes_responses.list_input_items)


def _generating(handler: Handler, api: str) -> Handler:
    """A generation route: on a model served with --task embed it answers 400 before reading the body."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        serving_model(request).require_task("generate", api)
        return await handler(request)

    return guarded


def _response_store(config: ServerConfig) -> ResponseStore | None:
    if not config.responses_store:
        return None
    return ResponseStore(config.responses_store_max_entries, config.responses_store_max_bytes,
                         config.responses_store_max_age)


def _engine_lifetime(engine: EngineOrFactory) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        slot = app[MODEL_SLOT]
        loading = asyncio.ensure_future(slot.load(engine))
        yield
        if not loading.done():
            loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        await app[RESPONSES].shutdown()
        await slot.shutdown()

    return lifetime


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[middlewares.REQUEST_ID_HEADER] = request_id
    cors.add_cors_headers(request, response)
