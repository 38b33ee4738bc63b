"""One HTTP connection, with the limits a server facing unknown clients needs.

aiohttp's RequestHandler keeps a connection as long as its keep-alive (an hour by default), reads headers
without a deadline, waits forever on a client that stops reading, and answers what it cannot parse in
text/plain. Here: a connection cap (beyond it, 503 and close), a deadline on each request's headers (408),
an idle keep-alive timeout, a write timeout (a client that reads nothing for that long is cut, which
cancels its handler and so aborts its engine request), and OpenAI's error envelope on aiohttp's own 400s.
The body's deadline is enforced where handlers read it (gateway/body.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from compat import OpenAIError
from compat import errors as openai_errors
from gateway.http_errors import RETRY_AFTER_SECONDS, error_response

logger = logging.getLogger("gateway.connection")
REFUSAL_LOG_INTERVAL = 10.0
LINGERING_TIME = 2.0  # after a response that left its body unread, how long aiohttp reads and drops the rest


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    timeout_keep_alive: float = 5.0  # idle between requests (and before the first)
    timeout_request_header: float = 5.0  # from a request's first byte to the end of its headers
    timeout_write: float = 30.0  # a response the client does not read for this long is cut


def raw_response(error: OpenAIError) -> bytes:
    """A complete HTTP/1.1 error response for a connection that has no request object to answer."""
    body = orjson.dumps(error.to_dict())
    retry = f"Retry-After: {RETRY_AFTER_SECONDS}\r\n" if error.status in (429, 503) else ""
    head = (f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{retry}Connection: close\r\n\r\n")
    return head.encode() + body


_refusals = {"last": -REFUSAL_LOG_INTERVAL, "since": 0}


def _log_refusal(cap: int) -> None:
    """One line per interval: a flood of refused connections must not become a flood of log lines."""
    _refusals["since"] += 1
    now = time.monotonic()
    if now - _refusals["last"] >= REFUSAL_LOG_INTERVAL:
        logger.warning("refused %d connection(s): %d are open (--max-connections)", _refusals["since"], cap)
        _refusals["last"], _refusals["since"] = now, 0


class GuardedRequestHandler(RequestHandler):
    def __init__(self, manager: web.Server, *, limits: ConnectionLimits, **kwargs):
        super().__init__(manager, keepalive_timeout=limits.timeout_keep_alive, lingering_time=LINGERING_TIME,
                         **kwargs)
        self._connections = manager
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if len(self._connections.connections) > self._limits.max_connections:
            _log_refusal(self._limits.max_connections)
            self._close_with(openai_errors.service_unavailable(
                "The server has too many open connections. Please retry shortly."))

    def data_received(self, data: bytes) -> None:
        if data and self._header_timer is None and not self._request_in_progress and not self._messages:
            self._start_header_timer()
        super().data_received(data)
        if self._messages:
            self._cancel_timer("_header_timer")

    def _start_header_timer(self) -> None:
        if self._keepalive_handle is not None:  # no longer idle: the header deadline takes over
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        self._header_timer = self._loop.call_later(self._limits.timeout_request_header, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self._messages and self._waiter is not None and not self._waiter.done():
            logger.info("closing a connection from %s: request headers incomplete after %g s", self.peername,
                        self._limits.timeout_request_header)
            self._close_with(openai_errors.request_timeout("request headers", self._limits.timeout_request_header))

    def pause_writing(self) -> None:
        super().pause_writing()
        self._write_timer = self._loop.call_later(self._limits.timeout_write, self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_timer("_write_timer")

    def _write_timed_out(self) -> None:
        self._write_timer = None
        logger.info("aborting a connection from %s: the client read nothing for %g s", self.peername,
                    self._limits.timeout_write)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timer("_header_timer")
        self._cancel_timer("_write_timer")
        super().connection_lost(exc)

    def _cancel_timer(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _close_with(self, error: OpenAIError) -> None:
        if self.transport is not None:
            self.transport.write(raw_response(error))
        self.force_close()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's answer to what it could not parse (400) or a handler that escaped every middleware."""
        if request.writer.output_size > 0:
            raise ConnectionError("a response is already under way; it cannot become an error")
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            error = openai_errors.internal_error()
        else:
            logger.info("malformed request from %s: %s", request.remote, message or status)
            error = openai_errors.malformed_http(message or HTTPStatus(status).phrase)
            error.status = status
        response = error_response(error)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's low-level server, making GuardedRequestHandlers."""

    def __init__(self, *args, limits: ConnectionLimits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, limits=self.limits, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs):
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation, loop=plain._loop,
                             limits=self.limits, **plain._kwargs)
