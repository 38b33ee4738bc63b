"""`cortexstream serve`: the OpenAI-compatible HTTP server.

The socket opens first and the engine loads and warms up in a thread behind it (/health: 503 until ready).
SIGTERM or SIGINT stops accepting connections, lets running requests finish for --shutdown-timeout seconds,
cancels the rest (which aborts them in the engine), stops the engine and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal

from aiohttp import web

from gateway.app import create_app
from gateway.config_args import add_config_arguments, config_from_args
from gateway.server_config import ServerConfig, api_key_from_env, default_served_model_name
from gateway.state import MODEL_SLOT
from jax_engine.config import EngineConfig

logger = logging.getLogger("gateway")

EXIT_LOAD_FAILED = 2
EXIT_CANNOT_LISTEN = 1
MIN_SHUTDOWN_TIMEOUT = 0.01


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server")
    g.add_argument("--served-model-name", nargs="+", default=None,
                   help="the name(s) clients send in `model`; the first is reported (default: the model's "
                        "file or directory stem)")
    add_config_arguments(g, ServerConfig)


def server_config(args: argparse.Namespace, engine_config: EngineConfig) -> ServerConfig:
    names = tuple(args.served_model_name or (default_served_model_name(engine_config.model),))
    return config_from_args(ServerConfig, args, served_model_name=names[0], extra_model_names=names[1:],
                            api_key=api_key_from_env(args.api_key))


def run(args: argparse.Namespace, engine_config: EngineConfig) -> int:
    from jax_engine import AsyncEngine

    config = server_config(args, engine_config)
    return asyncio.run(serve(config, functools.partial(AsyncEngine.from_config, engine_config, config.max_waiting)))


async def serve(config: ServerConfig, engine) -> int:
    """Serve until a signal (exit 0) or until the model fails to load (exit 2)."""
    app = create_app(engine, config)
    # aiohttp reads a shutdown timeout of 0 as "wait forever"
    runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True,
                           shutdown_timeout=max(config.shutdown_timeout, MIN_SHUTDOWN_TIMEOUT))
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
    reason = await _wait_for_stop(slot)
    logger.info("shutting down (%s): finishing running requests for up to %.0f s", reason,
                config.shutdown_timeout)
    await runner.cleanup()
    logger.info("stopped")
    return EXIT_LOAD_FAILED if slot.error is not None else 0


async def _wait_for_stop(slot) -> str:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []
    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    async def load_failed() -> None:
        await slot.settled.wait()
        if slot.error is None:
            await asyncio.Event().wait()

    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(load_failed())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
    return received[0] if received else f"the model failed to load: {slot.error}"
