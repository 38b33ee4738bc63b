"""`cortexstream serve`: the OpenAI-compatible HTTP server.

The socket opens first and the engine loads and warms up in a thread behind it (/health: 503 until ready).
SIGTERM or SIGINT stops accepting connections and lets running requests finish for --shutdown-timeout
seconds; at that deadline (or at a second signal) the engine aborts what remains, each open stream gets one
error event and ends cleanly, and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal

from aiohttp import web

from gateway.app import create_app
from gateway.arg_types import non_negative_float, positive_float, positive_int, tcp_port
from gateway.connection import ConnectionLimits, GuardedAppRunner
from gateway.os_limits import RateLimitedLoopErrors, connection_cap, raise_nofile_limit
from gateway.server_config import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_SEQUENCES_PER_REQUEST,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TIMEOUT_REQUEST_BODY,
    WAITING_SEQUENCES_PER_SEQ_SLOT,
    ServerConfig,
    api_key_from_env,
    default_served_model_name,
)
from gateway.state import IN_FLIGHT, MODEL_SLOT
from jax_engine.config import EngineConfig

logger = logging.getLogger("gateway")

EXIT_LOAD_FAILED = 1
EXIT_CANNOT_LISTEN = 1
CLEANUP_GRACE = 1.0  # after the deadline: for aborted handlers to write their last event


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=tcp_port, default=8000, help="0: any free port (the log says which)")
    g.add_argument("--served-model-name", nargs="+", default=None,
                   help="the name(s) clients send in `model`; the first is reported (default: the model's "
                        "file or directory stem)")
    g.add_argument("--api-key", default=None,
                   help="require `Authorization: Bearer KEY` on every route but /health, /version and /metrics "
                        "(default: $CORTEXSTREAM_API_KEY)")
    g.add_argument("--api-key-protects-metrics", dest="protect_metrics", action="store_true",
                   help="with an API key, /metrics requires it too")
    g.add_argument("--allowed-origins", nargs="+", default=[],
                   help="turn CORS on for these origins ('*' for any)")
    g.add_argument("--max-waiting", type=positive_int, default=None,
                   help="bound on waiting sequences (every prompt times n counts); beyond it new requests get "
                        f"429 with Retry-After (default: {WAITING_SEQUENCES_PER_SEQ_SLOT} x --max-num-seqs)")
    g.add_argument("--max-sequences-per-request", type=positive_int, default=DEFAULT_MAX_SEQUENCES_PER_REQUEST,
                   help="bound on prompts x n in one request; beyond it, 400")
    g.add_argument("--max-body-bytes", type=positive_int, default=DEFAULT_MAX_BODY_BYTES)
    g.add_argument("--max-connections", type=positive_int, default=ConnectionLimits.max_connections,
                   help="open connections beyond this are answered 503 and closed")
    g.add_argument("--timeout-keep-alive", type=positive_float, default=ConnectionLimits.timeout_keep_alive,
                   help="seconds an idle connection stays open between requests (and before the first)")
    g.add_argument("--timeout-request-header", type=positive_float, default=ConnectionLimits.timeout_request_header,
                   help="seconds from a request's first byte to the end of its headers; then 408")
    g.add_argument("--timeout-request-body", type=positive_float, default=DEFAULT_TIMEOUT_REQUEST_BODY,
                   help="seconds for a request's whole body to arrive; then 408")
    g.add_argument("--timeout-write", type=positive_float, default=ConnectionLimits.timeout_write,
                   help="seconds a client may read nothing of its response before it is cut (and its request "
                        "aborted)")
    g.add_argument("--shutdown-timeout", type=non_negative_float, default=DEFAULT_SHUTDOWN_TIMEOUT,
                   help="seconds running requests may finish after SIGTERM before they are aborted")


def server_config(args: argparse.Namespace, engine_config: EngineConfig, nofile: int | None = None) -> ServerConfig:
    names = tuple(args.served_model_name or (default_served_model_name(engine_config.model),))
    max_waiting = args.max_waiting or WAITING_SEQUENCES_PER_SEQ_SLOT * engine_config.max_num_seqs
    limits = ConnectionLimits(
        max_connections=connection_cap(args.max_connections, nofile) if nofile else args.max_connections,
        timeout_keep_alive=args.timeout_keep_alive, timeout_request_header=args.timeout_request_header,
        timeout_write=args.timeout_write)
    return ServerConfig(
        served_model_name=names[0], extra_model_names=names[1:], host=args.host, port=args.port,
        api_key=api_key_from_env(args.api_key), allowed_origins=tuple(args.allowed_origins),
        max_waiting=max_waiting, max_body_bytes=args.max_body_bytes,
        max_sequences_per_request=args.max_sequences_per_request, timeout_request_body=args.timeout_request_body,
        connection_limits=limits, protect_metrics=args.protect_metrics, shutdown_timeout=args.shutdown_timeout)


def run(args: argparse.Namespace, engine_config: EngineConfig) -> int:
    from jax_engine.engine import AsyncEngine

    config = server_config(args, engine_config, raise_nofile_limit())
    return asyncio.run(serve(config, functools.partial(AsyncEngine.from_config, engine_config, config.max_waiting)))


async def serve(config: ServerConfig, engine) -> int:
    """Serve until a signal (exit 0) or until the model fails to load (exit 1)."""
    asyncio.get_running_loop().set_exception_handler(RateLimitedLoopErrors())
    app = create_app(engine, config)
    runner = GuardedAppRunner(app, config.connection_limits, handle_signals=False, access_log=None,
                              handler_cancellation=True, shutdown_timeout=CLEANUP_GRACE)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as e:
        logger.error("cannot listen on %s:%d: %s", config.host, config.port, e)
        await runner.cleanup()
        return EXIT_CANNOT_LISTEN
    for host, port, *_ in runner.addresses:
        logger.info("listening on http://%s:%d (model %s)", host, port, config.served_model_name)
    slot = app[MODEL_SLOT]
    signals = Signals()
    reason = await _wait_for_stop(slot, signals)
    if slot.error is not None:
        logger.error("shutting down: %s", reason)
    else:
        logger.info("shutting down (%s): finishing running requests for up to %g s", reason,
                    config.shutdown_timeout)
    await drain(runner, app, config.shutdown_timeout, signals)
    await runner.cleanup()
    logger.info("stopped")
    return EXIT_LOAD_FAILED if slot.error is not None else 0


class Signals:
    """SIGINT and SIGTERM as an event that counts: the first starts the drain, the next cuts it short."""

    def __init__(self):
        self.received: list[str] = []
        self.event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.received.append(sig.name)
        self.event.set()

    async def next(self) -> None:
        self.event.clear()
        await self.event.wait()


async def drain(runner: GuardedAppRunner, app, timeout: float, signals: Signals) -> None:
    """Stop listening, let in-flight requests finish until the deadline, then abort the rest in the engine:
    their handlers answer 503 (or end their streams with an error event) within CLEANUP_GRACE."""
    for site in list(runner.sites):
        await site.stop()
    runner.server.pre_shutdown()  # keep-alive connections close after their current request
    in_flight = app[IN_FLIGHT]
    if in_flight.count and not await _first_of(in_flight.wait_idle(), signals.next(), timeout=timeout):
        logger.warning("shutdown deadline: aborting %d unfinished requests", in_flight.count)
        app[MODEL_SLOT].abort_all()
        await _first_of(in_flight.wait_idle(), timeout=CLEANUP_GRACE)


async def _first_of(*coros, timeout: float) -> bool:
    """Wait for the first of `coros` or the timeout; True if the first coroutine finished in time."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return tasks[0].done()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _wait_for_stop(slot, signals: Signals) -> str:
    async def load_failed() -> None:
        await slot.settled.wait()
        if slot.error is None:
            await asyncio.Event().wait()

    await _first_of(signals.event.wait(), load_failed(), timeout=None)
    return signals.received[0] if signals.received else f"the model failed to load: {slot.error}"
