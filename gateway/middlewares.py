"""Request ids with the access log, OpenAI-shaped errors, and API keys."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid

from aiohttp import web

from compat import OpenAIError
from compat import errors as openai_errors
from gateway.http_errors import from_http_exception, internal_error, surface_error_response
from gateway.state import IN_FLIGHT, REQUEST_ID, SERVER_CONFIG, SUMMARY

logger = logging.getLogger("gateway")
access_logger = logging.getLogger("gateway.access")

REQUEST_ID_HEADER = "X-Request-Id"
_CLIENT_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII: safe to echo and to log
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the response was complete
OPEN_PATHS = frozenset({"/health", "/version"})  # no API key needed; /metrics too unless protected


@web.middleware
async def request_id_and_access_log(request: web.Request, handler) -> web.StreamResponse:
    """Take the client's X-Request-Id or make one; log one line per request when it is over. Counts the
    request as in flight meanwhile (the shutdown drain waits for that count)."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request[REQUEST_ID] = given if _CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    start = time.perf_counter()
    status = 500
    in_flight = request.app[IN_FLIGHT]
    in_flight.enter()
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:
        status = CLIENT_CLOSED_REQUEST
        raise
    finally:
        in_flight.leave()
        _log_access(request, status, time.perf_counter() - start)


def _log_access(request: web.Request, status: int, seconds: float) -> None:
    summary = request.get(SUMMARY)
    generation = f" {summary.log_fields()}" if summary is not None else ""
    access_logger.info('%s "%s %s" %d%s %.1fms request_id=%s', request.remote, request.method, request.path_qs,
                       status, generation, 1000 * seconds, request[REQUEST_ID])


@web.middleware
async def openai_errors_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Every failure leaves as the API's error JSON (OpenAI's, or Anthropic's on /v1/messages); a 500 is
    logged with the request id, never detailed."""
    try:
        return await handler(request)
    except OpenAIError as e:
        return surface_error_response(request, e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        error = from_http_exception(e, request, request.app[SERVER_CONFIG].max_body_bytes)
        return surface_error_response(request, error)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception("internal error in %s %s (request_id=%s)", request.method, request.path,
                         request[REQUEST_ID])
        return surface_error_response(request, internal_error(request[REQUEST_ID]))


@web.middleware
async def api_key_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Keys on every route but /health, /version and (unless --api-key-protects-metrics) /metrics, compared in
    constant time: `Authorization: Bearer` as OpenAI's clients send it, or `x-api-key` as Anthropic's do. CORS
    preflights carry no credentials and pass."""
    config = request.app[SERVER_CONFIG]
    api_key = config.api_key
    if api_key and _protected(request, config.api_key_protects_metrics):
        token = _presented_key(request)
        if not token:
            raise openai_errors.invalid_api_key(provided=False)
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            raise openai_errors.invalid_api_key()
    return await handler(request)


def _presented_key(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip()


def _protected(request: web.Request, protect_metrics: bool) -> bool:
    if request.method == "OPTIONS" or request.path in OPEN_PATHS:
        return False
    return protect_metrics or request.path != "/metrics"
