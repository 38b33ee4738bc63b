"""Operations endpoints: GET /health, GET /metrics, GET /version."""

from __future__ import annotations

import functools
from importlib import metadata

import orjson
from aiohttp import web

from compat import errors as openai_errors
from gateway.http_errors import error_response
from gateway.metrics import CONTENT_TYPE
from gateway.state import METRICS, MODEL_SLOT


async def health(request: web.Request) -> web.Response:
    """200 once the model is loaded and warmed up and the engine is alive; 503 before and after."""
    slot = request.app[MODEL_SLOT]
    if slot.ready:
        return web.Response(status=200)
    if slot.error is not None or slot.model is not None:
        return error_response(openai_errors.service_unavailable("The engine is not running."))
    return error_response(openai_errors.service_unavailable("The model is loading."))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].exposition(), headers={"Content-Type": CONTENT_TYPE})


async def version(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps({"version": package_version()}), content_type="application/json")


@functools.cache
def package_version() -> str:
    try:
        return metadata.version("cortexstream")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"
