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
from collections.abc import Callable

from aiohttp import web

from gateway.app import create_app
from gateway.config_args import add_config_arguments, config_from_args
from gateway.connection import GuardedAppRunner
from gateway.os_limits import RateLimitedLoopErrors, connection_cap, raise_nofile_limit
from gateway.server_config import (
    WAITING_SEQUENCES_PER_SEQ_SLOT,
    ServerConfig,
    api_key_from_env,
    default_served_model_name,
)
from gateway.state import IN_FLIGHT, MODEL_SLOT
from jax_engine.config import EngineConfig
from jax_engine.engine_client import EngineClient

logger = logging.getLogger("gateway")

EXIT_LOAD_FAILED = 1
EXIT_CANNOT_LISTEN = 1
CLEANUP_GRACE = 1.0  # after the deadline: for aborted handlers to write their last event


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server")
    g.add_argument("--served-model-name", nargs="+", default=None,
                   help="the name(s) clients send in `model`; the first is reported (default: the model's "
                        "file or directory stem)")
    add_config_arguments(g, ServerConfig)


def server_config(args: argparse.Namespace, engine_config: EngineConfig, nofile: int | None = None) -> ServerConfig:
    names = tuple(args.served_model_name or (default_served_model_name(engine_config.model),))
    max_waiting = args.max_waiting or WAITING_SEQUENCES_PER_SEQ_SLOT * engine_config.max_num_seqs
    max_connections = connection_cap(args.max_connections, nofile) if nofile else args.max_connections
    return config_from_args(ServerConfig, args, served_model_name=names[0], extra_model_names=names[1:],
                            api_key=api_key_from_env(args.api_key), max_waiting=max_waiting,
                            max_connections=max_connections)


def run(args: argparse.Namespace, engine_config: EngineConfig) -> int:
    from jax_engine import AsyncEngine
    from jax_engine.data_parallel import DataParallelEngine

    config = server_config(args, engine_config, raise_nofile_limit())
    if config.num_processes > 1 and join_processes(config) > 0:
        return follow_process_0(engine_config)
    engine: Callable[[], EngineClient]
    if config.data_parallel_size > 1:
        engine = functools.partial(DataParallelEngine.from_config, engine_config, config.data_parallel_size,
                                   config.max_waiting)
    else:
        engine = functools.partial(AsyncEngine.from_config, engine_config, config.max_waiting)
    return asyncio.run(serve(config, engine))


def join_processes(config: ServerConfig) -> int:
    """Join a multi-host run (jax.distributed) and return this process's index."""
    from jax_engine.config import ConfigError
    from jax_engine.multihost import initialize

    if config.coordinator_address is None:
        raise ConfigError("--num-processes > 1 needs --coordinator-address HOST:PORT (process 0's)")
    if config.process_id >= config.num_processes:
        raise ConfigError(f"--process-id {config.process_id} must be below --num-processes {config.num_processes}")
    if config.data_parallel_size > 1:
        raise ConfigError("--data-parallel-size > 1 runs on one host; across hosts use --tensor-parallel-size")
    initialize(config.coordinator_address, config.num_processes, config.process_id)
    return config.process_id


def follow_process_0(engine_config: EngineConfig) -> int:
    """A process other than 0: load the same engine, then run each step process 0 sends until it stops."""
    from jax_engine.llm_engine import LLMEngine
    from jax_engine.multihost import follow

    engine = LLMEngine.from_config(engine_config)
    logger.info("following process 0's steps")
    follow(engine.runner)
    return 0


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
    if runner.server is not None:
        runner.server.pre_shutdown()  # keep-alive connections close after their current request
    in_flight = app[IN_FLIGHT]
    if in_flight.count and not await _first_of(in_flight.wait_idle(), signals.next(), timeout=timeout):
        logger.warning("shutdown deadline: aborting %d unfinished requests", in_flight.count)
        app[MODEL_SLOT].abort_all()
        await _first_of(in_flight.wait_idle(), timeout=CLEANUP_GRACE)


async def _first_of(*coros, timeout: float | None) -> bool:
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
