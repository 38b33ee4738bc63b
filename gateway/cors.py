"""CORS for browser clients, off unless --allowed-origins names some (or "*")."""

from __future__ import annotations

from aiohttp import web

from gateway.state import SERVER_CONFIG

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-Id"
EXPOSE_HEADERS = "X-Request-Id, Retry-After"
MAX_AGE_SECONDS = "600"


def allowed_origin(request: web.Request) -> str | None:
    """The value for Access-Control-Allow-Origin, or None when this origin gets no CORS headers."""
    origin = request.headers.get("Origin")
    allowed = request.app[SERVER_CONFIG].allowed_origins
    if not origin or not allowed:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


@web.middleware
async def cors_preflight(request: web.Request, handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        origin = allowed_origin(request)
        if origin is not None:
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers",
                                                                    ALLOW_HEADERS),
                "Access-Control-Max-Age": MAX_AGE_SECONDS,
                "Vary": "Origin",
            })
    return await handler(request)


def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """For on_response_prepare: streamed responses get their headers there too."""
    origin = allowed_origin(request)
    if origin is not None and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if origin != "*":
            response.headers["Vary"] = "Origin"
