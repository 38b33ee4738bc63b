"""GET /v1/models and GET /v1/models/{model}."""

from __future__ import annotations

import orjson
from aiohttp import web

from compat import errors as openai_errors
from compat import model_card, model_list
from gateway.state import serving_model


def _json(body: dict) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def list_models(request: web.Request) -> web.Response:
    model = serving_model(request)
    return _json(model_list([model_card(model.name, model.created, max_model_len=model.max_model_len)]))


async def retrieve_model(request: web.Request) -> web.Response:
    model = serving_model(request)
    requested = request.match_info["model"]
    if requested not in model.names:
        raise openai_errors.model_not_found(requested)
    return _json(model_card(model.name, model.created, max_model_len=model.max_model_len))
